package storetest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// NewTestIdempotency returns an idempotency record for key expiring in
// ttl, its Fingerprint the SHA-256 hex of body.
func NewTestIdempotency(key, body string, ttl time.Duration) *store.Idempotency {
	sum := sha256.Sum256([]byte(body))
	now := time.Now()
	return &store.Idempotency{
		Key:         key,
		Fingerprint: hex.EncodeToString(sum[:]),
		CreatedAt:   now,
		ExpiresAt:   now.Add(ttl),
	}
}

// seqOf returns u's Attributes[store.SeqAttr] as a number, failing the test
// when it is missing or not an integer.
func seqOf(t *testing.T, u *store.User) int64 {
	t.Helper()
	raw, ok := u.Attributes[store.SeqAttr]
	if !ok {
		t.Fatalf("user %s has no %q attribute (attributes %v)", u.ID, store.SeqAttr, u.Attributes)
	}
	var n int64
	if err := json.Unmarshal(raw, &n); err != nil {
		t.Fatalf("user %s: attribute %q = %s, want a JSON integer: %v", u.ID, store.SeqAttr, raw, err)
	}
	return n
}

// storedSeq is seqOf of the stored copy of u.
func storedSeq(t *testing.T, s store.Store, u *store.User) int64 {
	t.Helper()
	got, err := s.GetUser(ctx(t), u.ID)
	if err != nil {
		t.Fatalf("GetUser(%s): %v", u.ID, err)
	}
	return seqOf(t, got)
}

// createSeq registers a fresh user with e-mail email drawing from sequence
// name and returns it with the number it got, checked against the stored
// record.
func createSeq(t *testing.T, s store.Store, name, email string) (*store.User, int64) {
	t.Helper()
	u := NewTestUser(email, "")
	create(t, s, store.NewUser{User: u, Sequence: name})
	n := seqOf(t, u)
	if got := storedSeq(t, s, u); got != n {
		t.Fatalf("user %s: stored %s = %d, caller's copy %d", u.ID, store.SeqAttr, got, n)
	}
	return u, n
}

func wantIdempotency(t *testing.T, s store.Store, want *store.Idempotency) {
	t.Helper()
	got, err := s.GetIdempotency(ctx(t), want.Key)
	if err != nil {
		t.Fatalf("GetIdempotency(%q): %v", want.Key, err)
	}
	if got.Key != want.Key || got.Fingerprint != want.Fingerprint || got.UserID != want.UserID || got.Seq != want.Seq ||
		!got.CreatedAt.Equal(want.CreatedAt) || !got.ExpiresAt.Equal(want.ExpiresAt) {
		t.Fatalf("GetIdempotency(%q) =\n %+v\nwant\n %+v", want.Key, got, want)
	}
}

func testSequence(t *testing.T, s store.Store) {
	for i := int64(1); i <= 3; i++ {
		u, n := createSeq(t, s, "acct", fmt.Sprintf("seq%d@example.com", i))
		if n != i {
			t.Fatalf("create %d drew %d", i, n)
		}
		// The other attributes are kept, and the record round-trips.
		if string(u.Attributes["phone"]) != `"+34 600 000 000"` {
			t.Fatalf("attributes after create = %v", u.Attributes)
		}
		wantUser(t, s, u)
	}
	// Without a Sequence nothing is drawn, and a user without attributes
	// gets the one attribute.
	plain := NewTestUser("plain@example.com", "")
	create(t, s, store.NewUser{User: plain})
	if _, ok := plain.Attributes[store.SeqAttr]; ok {
		t.Fatalf("user created without a sequence has %s = %s", store.SeqAttr, plain.Attributes[store.SeqAttr])
	}
	bare := NewTestUser("bare@example.com", "")
	bare.Attributes = nil
	create(t, s, store.NewUser{User: bare, Sequence: "acct"})
	if n := seqOf(t, bare); n != 4 || len(bare.Attributes) != 1 {
		t.Fatalf("bare user: %s = %d, attributes %v; want 4 and nothing else", store.SeqAttr, n, bare.Attributes)
	}
	wantUser(t, s, bare)
	// A caller-set value is overwritten.
	forged := NewTestUser("forged@example.com", "")
	forged.Attributes[store.SeqAttr] = json.RawMessage(`999`)
	create(t, s, store.NewUser{User: forged, Sequence: "acct"})
	if n := storedSeq(t, s, forged); n != 5 {
		t.Fatalf("forged user stored %s = %d, want 5", store.SeqAttr, n)
	}
}

func testSequenceNoGapOnConflict(t *testing.T, s store.Store) {
	first, n := createSeq(t, s, "acct", "taken@example.com")
	if n != 1 {
		t.Fatalf("first create drew %d", n)
	}
	tenant := NewTestTenant("SEQCO", "ES99999999Z")
	founder := NewTestFounder("founder@seq.example", "founder", tenant)
	create(t, s, store.NewUser{User: founder, Tenant: tenant, Sequence: "acct"})
	holder := NewTestUser("other@seq.example", "")
	tok := NewTestToken(holder.ID, time.Now().Add(time.Hour))
	mail := NewTestMail(holder.ID, time.Now())
	create(t, s, store.NewUser{User: holder, Token: tok, Mails: []*store.Mail{mail}})
	idem := NewTestIdempotency("held", "{}", time.Hour)
	create(t, s, store.NewUser{User: NewTestUser("idem@seq.example", ""), Idempotency: idem})

	rejected := []struct {
		field string
		n     func() store.NewUser
	}{
		{"email", func() store.NewUser { return store.NewUser{User: NewTestUser("TAKEN@example.com", "")} }},
		{"login", func() store.NewUser { return store.NewUser{User: NewTestUser("l@seq.example", "Founder")} }},
		{"tenant_code", func() store.NewUser {
			tt := NewTestTenant("seqco", "ES11111111Z")
			return store.NewUser{User: NewTestFounder("tc@seq.example", "", tt), Tenant: tt}
		}},
		{"tenant_vat", func() store.NewUser {
			tt := NewTestTenant("other", "es 99999999-z")
			return store.NewUser{User: NewTestFounder("tv@seq.example", "", tt), Tenant: tt}
		}},
		{"id", func() store.NewUser {
			u := NewTestUser("id@seq.example", "")
			u.ID = first.ID
			return store.NewUser{User: u}
		}},
		{"token", func() store.NewUser {
			u := NewTestUser("tok@seq.example", "")
			tk := *tok
			tk.UserID = u.ID
			return store.NewUser{User: u, Token: &tk}
		}},
		{"mail_id", func() store.NewUser {
			u := NewTestUser("mail@seq.example", "")
			m := NewTestMail(u.ID, time.Now())
			m.ID = mail.ID
			return store.NewUser{User: u, Mails: []*store.Mail{m}}
		}},
		{"idempotency", func() store.NewUser {
			return store.NewUser{User: NewTestUser("idem2@seq.example", ""), Idempotency: NewTestIdempotency("held", "{}", time.Hour)}
		}},
	}
	for _, r := range rejected {
		n := r.n()
		n.Sequence = "acct"
		wantConflict(t, s.CreateUser(ctx(t), n), r.field)
		if _, ok := n.User.Attributes[store.SeqAttr]; ok {
			t.Fatalf("create rejected on %s set %s = %s", r.field, store.SeqAttr, n.User.Attributes[store.SeqAttr])
		}
	}
	if _, n := createSeq(t, s, "acct", "next@example.com"); n != 3 {
		t.Fatalf("create after %d rejected creates drew %d, want 3", len(rejected), n)
	}
}

func testConcurrentSequence(t *testing.T, s store.Store) {
	const n = 50
	users := make([]*store.User, n)
	for i := range users {
		users[i] = NewTestUser(fmt.Sprintf("conc%d@example.com", i), "")
	}
	errs := RunConcurrent(n, func(i int) error {
		return s.CreateUser(ctx(t), store.NewUser{User: users[i], Sequence: "acct"})
	})
	var got []int64
	for i, err := range errs {
		if err != nil {
			t.Fatalf("CreateUser %d: %v", i, err)
		}
		n := seqOf(t, users[i])
		if st := storedSeq(t, s, users[i]); st != n {
			t.Fatalf("user %d: stored %d, caller's copy %d", i, st, n)
		}
		got = append(got, n)
	}
	slices.Sort(got)
	for i, v := range got {
		if v != int64(i+1) {
			t.Fatalf("numbers drawn %v, want exactly 1..%d", got, n)
		}
	}
	if _, next := createSeq(t, s, "acct", "after@example.com"); next != n+1 {
		t.Fatalf("create after the race drew %d, want %d", next, n+1)
	}
}

// Concurrent creates half of which lose on their e-mail leave no gap.
func testConcurrentSequenceWithConflicts(t *testing.T, s store.Store) {
	const emails, n = 20, 40
	users := make([]*store.User, n)
	for i := range users {
		users[i] = NewTestUser(fmt.Sprintf("pair%d@example.com", i%emails), "")
	}
	errs := RunConcurrent(n, func(i int) error {
		return s.CreateUser(ctx(t), store.NewUser{User: users[i], Sequence: "acct"})
	})
	var got []int64
	for i, err := range errs {
		if err != nil {
			wantConflict(t, err, "email")
			continue
		}
		got = append(got, storedSeq(t, s, users[i]))
	}
	slices.Sort(got)
	if len(got) != emails {
		t.Fatalf("%d creates succeeded, want %d", len(got), emails)
	}
	for i, v := range got {
		if v != int64(i+1) {
			t.Fatalf("numbers drawn %v, want exactly 1..%d", got, emails)
		}
	}
}

func testSequencesIndependent(t *testing.T, s store.Store) {
	want := []struct {
		name string
		n    int64
	}{{"a", 1}, {"b", 1}, {"a", 2}, {"a", 3}, {"b", 2}, {"c", 1}, {"b", 3}}
	for i, w := range want {
		if _, n := createSeq(t, s, w.name, fmt.Sprintf("ind%d@example.com", i)); n != w.n {
			t.Fatalf("create %d on sequence %q drew %d, want %d", i, w.name, n, w.n)
		}
	}
}

func testIdempotency(t *testing.T, s store.Store) {
	c := ctx(t)
	wantAbsent(t, s.GetIdempotency, "k1", "GetIdempotency(unknown)")
	wantAbsent(t, s.GetIdempotency, "", `GetIdempotency("")`)

	u := NewTestUser("idem@example.com", "idem")
	idem := NewTestIdempotency("k1", `{"email":"idem@example.com"}`, 24*time.Hour)
	create(t, s, store.NewUser{User: u, Sequence: "acct", Idempotency: idem})
	if idem.UserID != u.ID || idem.Seq != 1 || seqOf(t, u) != 1 {
		t.Fatalf("after create: record %+v, user seq %s; want user %s, seq 1", idem, u.Attributes[store.SeqAttr], u.ID)
	}
	wantIdempotency(t, s, idem)
	wantUser(t, s, u)

	// The same key again: rejected on the key, before the e-mail is looked
	// at, and nothing is written or drawn.
	for _, email := range []string{"other@example.com", "idem@example.com"} {
		dup := NewTestUser(email, "")
		again := NewTestIdempotency("k1", `{"email":"`+email+`"}`, 24*time.Hour)
		wantConflict(t, s.CreateUser(c, store.NewUser{User: dup, Sequence: "acct", Idempotency: again}), "idempotency")
		wantUserAbsent(t, s, dup)
		if again.UserID != "" || again.Seq != 0 {
			t.Fatalf("rejected create filled in its record: %+v", again)
		}
	}
	wantAbsent(t, s.UserIDByEmail, store.EmailKey("other@example.com"), "e-mail index of user rejected on idempotency")
	wantIdempotency(t, s, idem)
	wantEmailIndex(t, s, u.EmailKey, u.ID)

	// Without a sequence, Seq stays 0; another key is independent.
	v := NewTestUser("nosq@example.com", "")
	other := NewTestIdempotency("k2", "{}", time.Hour)
	create(t, s, store.NewUser{User: v, Idempotency: other})
	if other.UserID != v.ID || other.Seq != 0 {
		t.Fatalf("record without sequence = %+v", other)
	}
	wantIdempotency(t, s, other)
	if _, n := createSeq(t, s, "acct", "next@example.com"); n != 2 {
		t.Fatalf("sequence after idempotency conflicts drew %d, want 2", n)
	}
}

func testIdempotencyExpiry(t *testing.T, s store.Store) {
	const ttl = 300 * time.Millisecond
	u := NewTestUser("exp1@example.com", "")
	idem := NewTestIdempotency("short", "body-1", ttl)
	create(t, s, store.NewUser{User: u, Sequence: "acct", Idempotency: idem})
	wantIdempotency(t, s, idem)
	time.Sleep(time.Until(idem.ExpiresAt) + 100*time.Millisecond)

	wantAbsent(t, s.GetIdempotency, "short", "GetIdempotency of an expired record")
	v := NewTestUser("exp2@example.com", "")
	again := NewTestIdempotency("short", "body-2", time.Hour)
	create(t, s, store.NewUser{User: v, Sequence: "acct", Idempotency: again})
	if again.UserID != v.ID || again.Seq != 2 {
		t.Fatalf("record claimed again = %+v, want user %s seq 2", again, v.ID)
	}
	wantIdempotency(t, s, again)
	wantUser(t, s, u)
	wantUser(t, s, v)
}

func testConcurrentIdempotency(t *testing.T, s store.Store) {
	const n = 20
	users := make([]*store.User, n)
	recs := make([]*store.Idempotency, n)
	for i := range users {
		users[i] = NewTestUser(fmt.Sprintf("same-key%d@example.com", i), "")
		recs[i] = NewTestIdempotency("race", "same body", time.Hour)
	}
	errs := RunConcurrent(n, func(i int) error {
		return s.CreateUser(ctx(t), store.NewUser{User: users[i], Sequence: "acct", Idempotency: recs[i]})
	})
	winner := OneWinner(t, errs, "idempotency")
	for i, u := range users {
		if i == winner {
			continue
		}
		wantUserAbsent(t, s, u)
		wantAbsent(t, s.UserIDByEmail, u.EmailKey, "e-mail index of a loser")
	}
	if seqOf(t, users[winner]) != 1 {
		t.Fatalf("winner drew %s, want 1", users[winner].Attributes[store.SeqAttr])
	}
	wantUser(t, s, users[winner])
	wantIdempotency(t, s, recs[winner])
	if _, next := createSeq(t, s, "acct", "after-race@example.com"); next != 2 {
		t.Fatalf("create after the race drew %d, want 2", next)
	}
}

func testFailedCreateWritesNoIdempotency(t *testing.T, s store.Store) {
	first := NewTestUser("first@example.com", "")
	create(t, s, store.NewUser{User: first})
	dup := NewTestUser("first@example.com", "")
	idem := NewTestIdempotency("k", "body", time.Hour)
	wantConflict(t, s.CreateUser(ctx(t), store.NewUser{User: dup, Sequence: "acct", Idempotency: idem}), "email")
	wantAbsent(t, s.GetIdempotency, "k", "GetIdempotency after a create rejected on its e-mail")

	// The key is still free.
	u := NewTestUser("second@example.com", "")
	create(t, s, store.NewUser{User: u, Sequence: "acct", Idempotency: idem})
	if idem.UserID != u.ID || idem.Seq != 1 {
		t.Fatalf("record = %+v, want user %s seq 1", idem, u.ID)
	}
	wantIdempotency(t, s, idem)
}

func testIdempotencyInvalid(t *testing.T, s store.Store) {
	u := NewTestUser("invalid@example.com", "")
	long := make([]byte, store.MaxIdempotencyKeyLen+1)
	for i := range long {
		long[i] = 'k'
	}
	noExpiry := NewTestIdempotency("k", "b", time.Hour)
	noExpiry.ExpiresAt = time.Time{}
	otherUser := NewTestIdempotency("k", "b", time.Hour)
	otherUser.UserID = "someone-else"
	for name, r := range map[string]*store.Idempotency{
		"no key":     NewTestIdempotency("", "b", time.Hour),
		"long key":   NewTestIdempotency(string(long), "b", time.Hour),
		"no expiry":  noExpiry,
		"other user": otherUser,
	} {
		err := s.CreateUser(ctx(t), store.NewUser{User: u, Sequence: "acct", Idempotency: r})
		var ce *store.ConflictError
		if err == nil || errors.As(err, &ce) || errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("%s: CreateUser = %v, want a plain error", name, err)
		}
		wantUserAbsent(t, s, u)
	}
	if _, n := createSeq(t, s, "acct", "valid@example.com"); n != 1 {
		t.Fatalf("create after invalid ones drew %d, want 1", n)
	}
}
