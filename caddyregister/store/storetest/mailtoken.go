package storetest

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// NewTestMail returns an outbox message for userID, due at due, with a
// fresh id.
func NewTestMail(userID string, due time.Time) *store.Mail {
	n := seq.Add(1)
	return &store.Mail{
		ID:          store.NewID(time.Now()),
		To:          []string{fmt.Sprintf("user%d@example.com", n), "copy@example.com"},
		Subject:     fmt.Sprintf("Welcome %d", n),
		Text:        "Activate your account: https://example.com/activate?t=secret",
		HTML:        "<p>Activate your account</p>",
		Contract:    "default",
		UserID:      userID,
		CreatedAt:   time.Now(),
		NextAttempt: due,
	}
}

// NewTestToken returns an unused activation token for userID expiring at
// expires; its Hash is the SHA-256 hex of a fresh random secret.
func NewTestToken(userID string, expires time.Time) *store.Token {
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	sum := sha256.Sum256(secret)
	return &store.Token{
		Hash:      hex.EncodeToString(sum[:]),
		Purpose:   "activation",
		UserID:    userID,
		ExpiresAt: expires,
	}
}

func normMail(m *store.Mail) store.Mail {
	c := *m
	c.CreatedAt = c.CreatedAt.UTC().Round(0)
	c.NextAttempt = c.NextAttempt.UTC().Round(0)
	if !c.ExpiresAt.IsZero() {
		c.ExpiresAt = c.ExpiresAt.UTC().Round(0)
	}
	return c
}

func wantSameMail(t *testing.T, what string, got, want *store.Mail) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: got no mail, want %s", what, want.ID)
	}
	if g, w := normMail(got), normMail(want); !reflect.DeepEqual(g, w) {
		t.Fatalf("%s: mail differs:\n got  %+v\n want %+v", what, g, w)
	}
}

// claim calls ClaimMail and fails the test unless a message comes back.
func claim(t *testing.T, s store.Store, now time.Time, lease time.Duration) *store.Mail {
	t.Helper()
	m, err := s.ClaimMail(ctx(t), now, lease)
	if err != nil {
		t.Fatalf("ClaimMail(%v): %v", now.Format(time.RFC3339Nano), err)
	}
	return m
}

// claimNone asserts nothing is due at now.
func claimNone(t *testing.T, s store.Store, now time.Time) {
	t.Helper()
	m, err := s.ClaimMail(ctx(t), now, time.Minute)
	if err == nil {
		t.Fatalf("ClaimMail(%v) returned mail %s, want nothing due", now.Format(time.RFC3339Nano), m.ID)
	}
	wantNotFound(t, "ClaimMail with nothing due", err)
}

func wantCounts(t *testing.T, s store.Store, queued, parked int) {
	t.Helper()
	q, p, err := s.MailCounts(ctx(t))
	if err != nil {
		t.Fatalf("MailCounts: %v", err)
	}
	if q != queued || p != parked {
		t.Fatalf("MailCounts = %d queued, %d parked; want %d, %d", q, p, queued, parked)
	}
}

// createWithMails registers a fresh user with one mail per due time and
// returns it and the mails.
func createWithMails(t *testing.T, s store.Store, email string, due ...time.Time) (*store.User, []*store.Mail) {
	t.Helper()
	u := NewTestUser(email, "")
	var mails []*store.Mail
	for _, d := range due {
		mails = append(mails, NewTestMail(u.ID, d))
	}
	create(t, s, store.NewUser{User: u, Mails: mails})
	return u, mails
}

func testCreateWithMailsAndToken(t *testing.T, s store.Store) {
	now := time.Now()
	u := NewTestUser("outbox@example.com", "outbox")
	due := NewTestMail(u.ID, now.Add(-time.Second))
	later := NewTestMail(u.ID, now.Add(time.Hour))
	tok := NewTestToken(u.ID, now.Add(time.Hour))
	wantCounts(t, s, 0, 0)
	create(t, s, store.NewUser{User: u, Mails: []*store.Mail{due, later}, Token: tok})
	wantUser(t, s, u)
	wantCounts(t, s, 2, 0)

	wantSameMail(t, "first claim", claim(t, s, now, 2*time.Hour), due)
	claimNone(t, s, now)
	wantSameMail(t, "claim an hour later", claim(t, s, now.Add(time.Hour), time.Minute), later)

	got, err := s.UseToken(ctx(t), tok.Hash, now, func(*store.User) error { return nil })
	if err != nil {
		t.Fatalf("UseToken of the token written with the user: %v", err)
	}
	if got.ID != u.ID {
		t.Fatalf("UseToken returned user %s, want %s", got.ID, u.ID)
	}
}

func testCreateConflictWritesNoMailOrToken(t *testing.T, s store.Store) {
	now := time.Now()
	first := NewTestUser("taken@example.com", "")
	firstMail := NewTestMail(first.ID, now)
	create(t, s, store.NewUser{User: first, Mails: []*store.Mail{firstMail}, Token: NewTestToken(first.ID, now.Add(time.Hour))})

	tenant := NewTestTenant("NOMAIL", "PT123456789")
	second := NewTestFounder("taken@example.com", "second", tenant)
	mails := []*store.Mail{NewTestMail(second.ID, now), NewTestMail(second.ID, now.Add(-time.Minute))}
	tok := NewTestToken(second.ID, now.Add(time.Hour))
	n := store.NewUser{User: second, Tenant: tenant, Mails: mails, Token: tok}
	wantConflict(t, s.CreateUser(ctx(t), n), "email")

	wantUserAbsent(t, s, second)
	wantCounts(t, s, 1, 0)
	wantSameMail(t, "only mail after rejected create", claim(t, s, now.Add(24*time.Hour), time.Hour), firstMail)
	claimNone(t, s, now.Add(24*time.Hour))
	called := false
	_, err := s.UseToken(ctx(t), tok.Hash, now, func(*store.User) error { called = true; return nil })
	wantNotFound(t, "UseToken of a rejected registration's token", err)
	if called {
		t.Fatal("mutate called for a token that was never written")
	}

	// The rejected mail ids and token hash were not claimed either.
	second.Email, second.EmailKey = "free@example.com", store.EmailKey("free@example.com")
	create(t, s, n)
	wantCounts(t, s, 3, 0)
	if _, err := s.UseToken(ctx(t), tok.Hash, now, func(*store.User) error { return nil }); err != nil {
		t.Fatalf("UseToken after the retried create: %v", err)
	}
}

func testTokenAndMailIDConflict(t *testing.T, s store.Store) {
	now := time.Now()
	first := NewTestUser("first@example.com", "")
	firstMail := NewTestMail(first.ID, now)
	firstTok := NewTestToken(first.ID, now.Add(time.Hour))
	create(t, s, store.NewUser{User: first, Mails: []*store.Mail{firstMail}, Token: firstTok})

	second := NewTestUser("second@example.com", "second")
	tok := NewTestToken(second.ID, now.Add(time.Hour))
	tok.Hash = firstTok.Hash
	err := s.CreateUser(ctx(t), store.NewUser{User: second, Mails: []*store.Mail{NewTestMail(second.ID, now)}, Token: tok})
	wantConflict(t, err, "token")
	wantUserAbsent(t, s, second)
	wantAbsent(t, s.UserIDByEmail, second.EmailKey, "e-mail index of user rejected on token")
	wantCounts(t, s, 1, 0)

	third := NewTestUser("third@example.com", "")
	dup := NewTestMail(third.ID, now.Add(-time.Hour))
	dup.ID = firstMail.ID
	err = s.CreateUser(ctx(t), store.NewUser{User: third, Mails: []*store.Mail{dup}, Token: NewTestToken(third.ID, now.Add(time.Hour))})
	wantConflict(t, err, "mail_id")
	wantUserAbsent(t, s, third)
	wantCounts(t, s, 1, 0)
	wantSameMail(t, "mail after id conflict", claim(t, s, now, time.Minute), firstMail)

	// The first user's token is untouched.
	if _, err := s.UseToken(ctx(t), firstTok.Hash, now, func(*store.User) error { return nil }); err != nil {
		t.Fatalf("UseToken of the first token: %v", err)
	}
}

func testClaimMailDueOnly(t *testing.T, s store.Store) {
	now := time.Now()
	claimNone(t, s, now)
	_, mails := createWithMails(t, s, "due@example.com", now.Add(time.Hour))
	claimNone(t, s, now)
	claimNone(t, s, now.Add(time.Hour-time.Millisecond))
	wantSameMail(t, "claim when due", claim(t, s, now.Add(time.Hour), time.Minute), mails[0])
}

func testClaimMailOrder(t *testing.T, s store.Store) {
	now := time.Now()
	_, mails := createWithMails(t, s, "order@example.com",
		now.Add(-3*time.Second), now.Add(-time.Second), now.Add(-2*time.Second))
	for i, want := range []*store.Mail{mails[0], mails[2], mails[1]} {
		wantSameMail(t, fmt.Sprintf("claim %d", i), claim(t, s, now, time.Hour), want)
	}
	claimNone(t, s, now)
}

func testClaimMailLease(t *testing.T, s store.Store) {
	now := time.Now()
	_, mails := createWithMails(t, s, "lease@example.com", now.Add(-time.Second))
	const lease = time.Minute
	wantSameMail(t, "first claim", claim(t, s, now, lease), mails[0])
	claimNone(t, s, now)
	claimNone(t, s, now.Add(lease-time.Second))
	wantCounts(t, s, 1, 0) // leased, still queued
	// The claimer died: the lease lapses and the message is due again.
	again := now.Add(lease + time.Millisecond)
	wantSameMail(t, "claim after the lease lapsed", claim(t, s, again, lease), mails[0])
	claimNone(t, s, again)
}

func testConcurrentClaimOne(t *testing.T, s store.Store) {
	now := time.Now()
	_, mails := createWithMails(t, s, "claimrace@example.com", now.Add(-time.Second))
	got, errs := claimConcurrently(t, s, now, 20)
	var winners []*store.Mail
	for i, err := range errs {
		switch {
		case err == nil:
			winners = append(winners, got[i])
		case errors.Is(err, store.ErrNotFound):
		default:
			t.Fatalf("ClaimMail %d: %v", i, err)
		}
	}
	if len(winners) != 1 {
		t.Fatalf("%d claimers got the single message, want exactly 1", len(winners))
	}
	wantSameMail(t, "winner's mail", winners[0], mails[0])
}

func testConcurrentClaimDistinct(t *testing.T, s store.Store) {
	now := time.Now()
	_, mails := createWithMails(t, s, "claimmany@example.com",
		now.Add(-5*time.Second), now.Add(-4*time.Second), now.Add(-3*time.Second), now.Add(-2*time.Second), now.Add(-time.Second))
	got, errs := claimConcurrently(t, s, now, 20)
	var ids []string
	for i, err := range errs {
		switch {
		case err == nil:
			ids = append(ids, got[i].ID)
		case errors.Is(err, store.ErrNotFound):
		default:
			t.Fatalf("ClaimMail %d: %v", i, err)
		}
	}
	var want []string
	for _, m := range mails {
		want = append(want, m.ID)
	}
	slices.Sort(ids)
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Fatalf("claimed ids %q, want each of %q exactly once", ids, want)
	}
}

func claimConcurrently(t *testing.T, s store.Store, now time.Time, n int) ([]*store.Mail, []error) {
	c := ctx(t)
	return runConcurrentResults(n, func(int) (*store.Mail, error) {
		return s.ClaimMail(c, now, time.Minute)
	})
}

func testAckMail(t *testing.T, s store.Store) {
	now := time.Now()
	_, mails := createWithMails(t, s, "ack@example.com", now.Add(-time.Second), now.Add(-time.Second))
	m := claim(t, s, now, time.Minute)
	if err := s.AckMail(ctx(t), m.ID); err != nil {
		t.Fatalf("AckMail: %v", err)
	}
	wantCounts(t, s, 1, 0)
	other := claim(t, s, now.Add(time.Hour), time.Minute)
	if other.ID == m.ID {
		t.Fatalf("acknowledged mail %s claimed again", m.ID)
	}
	if err := s.AckMail(ctx(t), other.ID); err != nil {
		t.Fatalf("AckMail: %v", err)
	}
	wantCounts(t, s, 0, 0)
	claimNone(t, s, now.Add(24*time.Hour))
	// Acknowledging twice is harmless.
	if err := s.AckMail(ctx(t), mails[0].ID); err != nil {
		t.Fatalf("second AckMail: %v", err)
	}
}

func testRetryMail(t *testing.T, s store.Store) {
	now := time.Now()
	createWithMails(t, s, "retry@example.com", now.Add(-time.Second))
	m := claim(t, s, now, time.Minute)
	m.Attempts = 1
	m.LastError = "421 4.7.0 try again later"
	m.NextAttempt = now.Add(10 * time.Minute)
	if err := s.RetryMail(ctx(t), m); err != nil {
		t.Fatalf("RetryMail: %v", err)
	}
	wantCounts(t, s, 1, 0)
	claimNone(t, s, now.Add(2*time.Minute)) // past the lease, before the retry
	wantSameMail(t, "claim at the retry time", claim(t, s, now.Add(10*time.Minute), time.Minute), m)
}

func testParkMail(t *testing.T, s store.Store) {
	now := time.Now()
	createWithMails(t, s, "park@example.com", now.Add(-time.Second))
	m := claim(t, s, now, time.Minute)
	m.Attempts = 8
	m.LastError = "550 5.1.1 mailbox unavailable"
	if err := s.ParkMail(ctx(t), m); err != nil {
		t.Fatalf("ParkMail: %v", err)
	}
	wantCounts(t, s, 0, 1)
	claimNone(t, s, now.Add(24*time.Hour))

	// An operator requeues it: RetryMail takes it out of the parked set.
	m.NextAttempt = now.Add(time.Hour)
	if err := s.RetryMail(ctx(t), m); err != nil {
		t.Fatalf("RetryMail of a parked mail: %v", err)
	}
	wantCounts(t, s, 1, 0)
	wantSameMail(t, "requeued mail", claim(t, s, now.Add(time.Hour), time.Minute), m)
	if err := s.AckMail(ctx(t), m.ID); err != nil {
		t.Fatalf("AckMail: %v", err)
	}
	wantCounts(t, s, 0, 0)
}

// Parked messages lose their bodies once their link has expired: only
// those, only parked ones, each once, at most limit per call.
func testDropParkedBodies(t *testing.T, s store.Store) {
	now := time.Now()
	_, mails := createWithMails(t, s, "drop@example.com", now.Add(-4*time.Second), now.Add(-3*time.Second), now.Add(-2*time.Second), now.Add(-time.Second))
	expiries := []time.Time{now.Add(-time.Minute), now.Add(-time.Minute), now.Add(time.Hour), {}}
	for i := range mails {
		m := claim(t, s, now, time.Minute)
		if m.ID != mails[i].ID {
			t.Fatalf("claimed %s, want %s", m.ID, mails[i].ID)
		}
		m.ExpiresAt = expiries[i]
		m.Attempts, m.LastError = 10, "550 no such user"
		if err := s.ParkMail(ctx(t), m); err != nil {
			t.Fatalf("ParkMail: %v", err)
		}
		mails[i] = m
	}
	drop := func(at time.Time, limit, want int) {
		t.Helper()
		n, err := s.DropParkedBodies(ctx(t), at, limit)
		if err != nil || n != want {
			t.Fatalf("DropParkedBodies(+%v, %d) = %d, %v; want %d", at.Sub(now), limit, n, err, want)
		}
	}
	drop(now, 1, 1)
	drop(now, 10, 1)
	drop(now, 10, 0) // each once
	wantCounts(t, s, 0, 4)
	// A requeued message is the worker's to check, not the sweep's.
	mails[2].NextAttempt = now.Add(24 * time.Hour)
	if err := s.RetryMail(ctx(t), mails[2]); err != nil {
		t.Fatalf("RetryMail: %v", err)
	}
	drop(now.Add(2*time.Hour), 10, 0)
	// Requeued, claimed: the body is there, and parking it again lists it.
	m := claim(t, s, now.Add(24*time.Hour), time.Minute)
	if m.ID != mails[2].ID || m.Text == "" {
		t.Fatalf("requeued mail: %+v", m)
	}
	if err := s.ParkMail(ctx(t), m); err != nil {
		t.Fatalf("ParkMail: %v", err)
	}
	drop(now.Add(2*time.Hour), 10, 1)
}

// A claimer whose lease lapsed while another instance delivered and
// acknowledged the message must not bring it back.
func testRetryAfterAck(t *testing.T, s store.Store) {
	now := time.Now()
	createWithMails(t, s, "late@example.com", now.Add(-time.Second))
	slow := claim(t, s, now, time.Minute)
	fast := claim(t, s, now.Add(2*time.Minute), time.Minute)
	if err := s.AckMail(ctx(t), fast.ID); err != nil {
		t.Fatalf("AckMail: %v", err)
	}
	slow.Attempts, slow.NextAttempt = 1, now.Add(5*time.Minute)
	wantNotFound(t, "RetryMail of an acknowledged mail", s.RetryMail(ctx(t), slow))
	wantNotFound(t, "ParkMail of an acknowledged mail", s.ParkMail(ctx(t), slow))
	wantCounts(t, s, 0, 0)
	claimNone(t, s, now.Add(24*time.Hour))
}

func testChallenge(t *testing.T, s store.Store) {
	c := ctx(t)
	answer := []byte{0, 1, 2, 0xfe, 0xff, 'a'}
	if err := s.PutChallenge(c, "tok-1", answer, time.Minute); err != nil {
		t.Fatalf("PutChallenge: %v", err)
	}
	if err := s.PutChallenge(c, "tok-2", []byte("other"), time.Minute); err != nil {
		t.Fatalf("PutChallenge: %v", err)
	}
	got, err := s.TakeChallenge(c, "tok-1")
	if err != nil {
		t.Fatalf("TakeChallenge: %v", err)
	}
	if !slices.Equal(got, answer) {
		t.Fatalf("TakeChallenge = %q, want %q", got, answer)
	}
	_, err = s.TakeChallenge(c, "tok-1")
	wantNotFound(t, "second TakeChallenge", err)
	_, err = s.TakeChallenge(c, "unknown")
	wantNotFound(t, "TakeChallenge(unknown)", err)
	got, err = s.TakeChallenge(c, "tok-2")
	if err != nil || string(got) != "other" {
		t.Fatalf("TakeChallenge(tok-2) = %q, %v; want \"other\"", got, err)
	}
}

func testChallengeExpiry(t *testing.T, s store.Store) {
	c := ctx(t)
	if err := s.PutChallenge(c, "short", []byte("a"), 50*time.Millisecond); err != nil {
		t.Fatalf("PutChallenge: %v", err)
	}
	if err := s.PutChallenge(c, "long", []byte("b"), time.Minute); err != nil {
		t.Fatalf("PutChallenge: %v", err)
	}
	time.Sleep(120 * time.Millisecond)
	_, err := s.TakeChallenge(c, "short")
	wantNotFound(t, "TakeChallenge of an expired challenge", err)
	if got, err := s.TakeChallenge(c, "long"); err != nil || string(got) != "b" {
		t.Fatalf("TakeChallenge(long) = %q, %v", got, err)
	}
}

func testConcurrentTakeChallenge(t *testing.T, s store.Store) {
	c := ctx(t)
	if err := s.PutChallenge(c, "race", []byte("answer"), time.Minute); err != nil {
		t.Fatalf("PutChallenge: %v", err)
	}
	const n = 50
	got, errs := runConcurrentResults(n, func(int) ([]byte, error) {
		return s.TakeChallenge(c, "race")
	})
	winners := 0
	for i, err := range errs {
		switch {
		case err == nil:
			winners++
			if string(got[i]) != "answer" {
				t.Errorf("taker %d got %q", i, got[i])
			}
		case errors.Is(err, store.ErrNotFound):
		default:
			t.Fatalf("TakeChallenge %d: %v", i, err)
		}
	}
	if winners != 1 {
		t.Fatalf("%d takers got the challenge, want exactly 1", winners)
	}
}

// createWithToken registers a pending user with a token expiring at expires.
func createWithToken(t *testing.T, s store.Store, email, login string, expires time.Time) (*store.User, *store.Token) {
	t.Helper()
	u := NewTestUser(email, login)
	tok := NewTestToken(u.ID, expires)
	create(t, s, store.NewUser{User: u, Token: tok})
	return u, tok
}

// activate is the mutate of an activation.
func activate(now time.Time) func(*store.User) error {
	return func(u *store.User) error {
		u.Status = store.StatusActive
		u.PasswordHash = "$argon2id$v=19$new"
		u.Permissions = append(u.Permissions, "activated")
		u.Attributes["activated_via"] = []byte(`"token"`)
		u.UpdatedAt = now
		return nil
	}
}

func testUseToken(t *testing.T, s store.Store) {
	now := time.Now()
	u, tok := createWithToken(t, s, "Use.Token@example.com", "usetoken", now.Add(time.Hour))
	w := *u
	want := &w
	want.Permissions = slices.Clone(u.Permissions)
	want.Attributes = store.Attrs{}
	for k, v := range u.Attributes {
		want.Attributes[k] = v
	}
	if err := activate(now)(want); err != nil {
		t.Fatal(err)
	}

	got, err := s.UseToken(ctx(t), tok.Hash, now, activate(now))
	if err != nil {
		t.Fatalf("UseToken: %v", err)
	}
	if g, w := normUser(got), normUser(want); !reflect.DeepEqual(g, w) {
		t.Fatalf("UseToken returned:\n got  %+v\n want %+v", g, w)
	}
	wantUser(t, s, want)
	wantEmailIndex(t, s, u.EmailKey, u.ID)
	wantLoginIndex(t, s, u.LoginKey, u.ID)

	called := false
	got, err = s.UseToken(ctx(t), tok.Hash, now.Add(time.Minute), func(*store.User) error { called = true; return nil })
	if !errors.Is(err, store.ErrTokenUsed) {
		t.Fatalf("second UseToken: got %v, want ErrTokenUsed", err)
	}
	if called {
		t.Fatal("second UseToken called mutate")
	}
	if got == nil {
		t.Fatal("second UseToken returned no user")
	}
	if g, w := normUser(got), normUser(want); !reflect.DeepEqual(g, w) {
		t.Fatalf("second UseToken returned:\n got  %+v\n want %+v", g, w)
	}
	wantUser(t, s, want)
}

func testUseTokenNotFound(t *testing.T, s store.Store) {
	now := time.Now()
	called := false
	mutate := func(*store.User) error { called = true; return nil }

	_, err := s.UseToken(ctx(t), NewTestToken("", now).Hash, now, mutate)
	wantNotFound(t, "UseToken(unknown)", err)

	u, tok := createWithToken(t, s, "expired@example.com", "", now.Add(time.Hour))
	_, err = s.UseToken(ctx(t), tok.Hash, now.Add(2*time.Hour), mutate)
	wantNotFound(t, "UseToken after ExpiresAt", err)
	_, err = s.UseToken(ctx(t), tok.Hash, now.Add(time.Hour), mutate)
	wantNotFound(t, "UseToken at ExpiresAt", err)
	wantUser(t, s, u)

	// A token that is already expired when written is never usable.
	old, oldTok := createWithToken(t, s, "old@example.com", "", time.Now().Add(-time.Minute))
	_, err = s.UseToken(ctx(t), oldTok.Hash, time.Now(), mutate)
	wantNotFound(t, "UseToken of a token expired at creation", err)
	wantUser(t, s, old)
	if called {
		t.Fatal("mutate called for an unknown or expired token")
	}
}

func testUseTokenMutateError(t *testing.T, s store.Store) {
	now := time.Now()
	u, tok := createWithToken(t, s, "mutate@example.com", "mutate", now.Add(time.Hour))
	abort := errors.New("password too weak")
	_, err := s.UseToken(ctx(t), tok.Hash, now, func(u *store.User) error {
		u.Status = store.StatusActive // must not be written
		return fmt.Errorf("check: %w", abort)
	})
	if !errors.Is(err, abort) {
		t.Fatalf("UseToken with failing mutate: got %v, want it to wrap the mutate error", err)
	}
	wantUser(t, s, u)

	// Changes to indexed fields are refused and leave everything as it was.
	for _, tc := range []struct {
		name   string
		mutate func(*store.User)
	}{
		{"Email", func(u *store.User) { u.Email = "other@example.com" }},
		{"EmailKey", func(u *store.User) { u.EmailKey = "other@example.com" }},
		{"Login", func(u *store.User) { u.Login, u.LoginKey = "other", "other" }},
		{"ID", func(u *store.User) { u.ID = store.NewID(now) }},
		{"TenantID", func(u *store.User) { u.TenantID = store.NewID(now) }},
	} {
		_, err := s.UseToken(ctx(t), tok.Hash, now, func(u *store.User) error {
			u.Status = store.StatusActive
			tc.mutate(u)
			return nil
		})
		if err == nil || errors.Is(err, store.ErrTokenUsed) || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("UseToken with mutate changing %s: got %v, want a refusal", tc.name, err)
		}
		wantUser(t, s, u)
		wantEmailIndex(t, s, u.EmailKey, u.ID)
		wantAbsent(t, s.UserIDByEmail, "other@example.com", "e-mail index after refused mutate")
	}

	// The token is still usable.
	if _, err := s.UseToken(ctx(t), tok.Hash, now, activate(now)); err != nil {
		t.Fatalf("UseToken after aborted uses: %v", err)
	}
	got, err := s.GetUser(ctx(t), u.ID)
	if err != nil || got.Status != store.StatusActive {
		t.Fatalf("GetUser after use = %+v, %v; want active", got, err)
	}
}

func testConcurrentUseToken(t *testing.T, s store.Store) {
	now := time.Now()
	u, tok := createWithToken(t, s, "userace@example.com", "", now.Add(time.Hour))
	const n = 20
	c := ctx(t)
	got, errs := runConcurrentResults(n, func(int) (*store.User, error) {
		return s.UseToken(c, tok.Hash, now, activate(now))
	})
	winners := 0
	for i, err := range errs {
		switch {
		case err == nil:
			winners++
		case errors.Is(err, store.ErrTokenUsed):
			if got[i] == nil || got[i].ID != u.ID || got[i].Status != store.StatusActive {
				t.Errorf("UseToken %d: ErrTokenUsed with user %+v, want the activated user", i, got[i])
			}
		default:
			t.Fatalf("UseToken %d: %v", i, err)
		}
	}
	if winners != 1 {
		t.Fatalf("%d concurrent UseToken calls succeeded, want exactly 1", winners)
	}
	stored, err := s.GetUser(c, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if k := slices.Index(stored.Permissions, "activated"); k < 0 || slices.Contains(stored.Permissions[k+1:], "activated") {
		t.Fatalf("permissions after the race %q, want \"activated\" exactly once", stored.Permissions)
	}
}
