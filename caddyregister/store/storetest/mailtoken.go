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
