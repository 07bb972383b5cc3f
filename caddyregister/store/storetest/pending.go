package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// Squatter is a pending user that expires, with what it owns: its
// activation token and two mails, one queued and one parked.
type Squatter struct {
	User           *store.User
	Token          *store.Token
	Queued, Parked *store.Mail
	// Expiry is when the user expires (its PendingUntil); its token
	// expires then too.
	Expiry time.Time
}

// CreateSquatter registers a pending user with email and login that
// expires at expiry, with a token and two mails (one of which it parks,
// claiming it at the real clock's now). expiry should be in the real
// future, so the backend's own expiry (Redis PEXPIREAT) keeps the token.
func CreateSquatter(t *testing.T, s store.Store, email, login string, expiry time.Time) *Squatter {
	t.Helper()
	u := NewTestUser(email, login)
	u.PendingUntil = expiry.UnixMilli()
	sq := &Squatter{
		User:   u,
		Token:  NewTestToken(u.ID, expiry),
		Queued: NewTestMail(u.ID, expiry.Add(time.Hour)), // due only after the tests' clocks
		Parked: NewTestMail(u.ID, time.Now().Add(-time.Hour)),
		Expiry: expiry,
	}
	create(t, s, store.NewUser{User: u, Token: sq.Token, Mails: []*store.Mail{sq.Queued, sq.Parked}})
	m, err := s.ClaimMail(ctx(t), time.Now(), time.Minute)
	if err != nil || m.ID != sq.Parked.ID {
		t.Fatalf("ClaimMail = %v, %v; want the squatter's due mail %s", m, err, sq.Parked.ID)
	}
	if err := s.ParkMail(ctx(t), m); err != nil {
		t.Fatalf("ParkMail: %v", err)
	}
	return sq
}

// newcomer is a registration made at `at` (its CreatedAt) with one mail
// and one token.
func newcomer(email, login string, at time.Time) store.NewUser {
	u := NewTestUser(email, login)
	u.CreatedAt = at
	return store.NewUser{User: u, Token: NewTestToken(u.ID, at.Add(time.Hour)), Mails: []*store.Mail{NewTestMail(u.ID, at.Add(2*time.Hour))}}
}

// WantSquatterGone asserts that nothing of sq is left that the Store
// interface can reach: its record, its index entries (unless now held by
// another user), its token and its mails.
func WantSquatterGone(t *testing.T, s store.Store, sq *Squatter) {
	t.Helper()
	wantAbsent(t, s.GetUser, sq.User.ID, "record of the replaced user")
	if id, err := s.UserIDByEmail(ctx(t), sq.User.EmailKey); err == nil && id == sq.User.ID {
		t.Fatal("e-mail index still names the replaced user")
	}
	if id, err := s.UserIDByLogin(ctx(t), sq.User.LoginKey); err == nil && id == sq.User.ID {
		t.Fatal("login index still names the replaced user")
	}
	_, err := s.UseToken(ctx(t), sq.Token.Hash, sq.Expiry.Add(-time.Minute), func(*store.User) error { return nil })
	wantNotFound(t, "UseToken with the replaced user's token", err)
	for {
		m, err := s.ClaimMail(ctx(t), sq.Expiry.Add(24*time.Hour), time.Minute)
		if errors.Is(err, store.ErrNotFound) {
			break
		}
		if err != nil {
			t.Fatalf("ClaimMail: %v", err)
		}
		if m.UserID == sq.User.ID {
			t.Fatalf("mail %s of the replaced user is still queued", m.ID)
		}
	}
	// RetryMail finds only a message that exists (parked or not).
	retry := *sq.Parked
	retry.NextAttempt = sq.Expiry
	wantNotFound(t, "RetryMail of the replaced user's parked mail", s.RetryMail(ctx(t), &retry))
}

// testPendingNotExpiredHoldsKeys: a pending user holds its e-mail and
// login until its expiry, an active user and a pending one without
// expiry forever; refusals write nothing.
func testPendingNotExpiredHoldsKeys(t *testing.T, s store.Store) {
	expiry := time.Now().Add(time.Hour)
	sq := CreateSquatter(t, s, "squat@example.com", "squat", expiry)
	early := newcomer("SQUAT@example.com", "", expiry.Add(-time.Millisecond))
	wantConflict(t, s.CreateUser(ctx(t), early), "email")
	wantConflict(t, s.Taken(ctx(t), store.UniqueKeys{EmailKey: sq.User.EmailKey, Now: expiry.Add(-time.Millisecond)}), "email")
	wantConflict(t, s.Taken(ctx(t), store.UniqueKeys{LoginKey: sq.User.LoginKey, Now: expiry.Add(-time.Millisecond)}), "login")
	wantConflict(t, s.Taken(ctx(t), store.UniqueKeys{EmailKey: sq.User.EmailKey}), "email") // no Now: nothing expires
	wantUserAbsent(t, s, early.User)

	for i, mod := range []func(*store.User){
		func(u *store.User) { u.Status = store.StatusActive },   // confirmed
		func(u *store.User) { u.PendingUntil = 0 },              // pending without expiry (admin-made)
		func(u *store.User) { u.Status = store.StatusInactive }, // disabled
	} {
		email := fmt.Sprintf("keeper%d@example.com", i)
		u := NewTestUser(email, fmt.Sprintf("keeper%d", i))
		u.PendingUntil = expiry.UnixMilli()
		mod(u)
		create(t, s, store.NewUser{User: u})
		late := newcomer(email, "", expiry.Add(time.Hour))
		wantConflict(t, s.CreateUser(ctx(t), late), "email")
		wantConflict(t, s.Taken(ctx(t), store.UniqueKeys{EmailKey: u.EmailKey, Now: expiry.Add(time.Hour)}), "email")
		late = newcomer(fmt.Sprintf("other%d@example.com", i), u.Login, expiry.Add(time.Hour))
		wantConflict(t, s.CreateUser(ctx(t), late), "login")
		wantUser(t, s, u)
	}
	wantUser(t, s, sq.User)
}

// testPendingExpiredReplaced: once expired, a registration of the e-mail
// replaces the pending user and everything it owns; the login it held is
// free again.
func testPendingExpiredReplaced(t *testing.T, s store.Store) {
	expiry := time.Now().Add(time.Hour)
	sq := CreateSquatter(t, s, "victim@example.com", "squatter", expiry)
	if err := s.Taken(ctx(t), store.UniqueKeys{EmailKey: sq.User.EmailKey, LoginKey: sq.User.LoginKey, Now: expiry}); err != nil {
		t.Fatalf("Taken at the expiry = %v, want nil (the expired user's keys are free)", err)
	}
	n := newcomer(" Victim@Example.com", "victim", expiry)
	create(t, s, n)
	wantUser(t, s, n.User)
	wantEmailIndex(t, s, sq.User.EmailKey, n.User.ID)
	wantLoginIndex(t, s, n.User.LoginKey, n.User.ID)
	wantAbsent(t, s.UserIDByLogin, sq.User.LoginKey, "login index of the replaced user")
	WantSquatterGone(t, s, sq)
	// The newcomer's own records are whole.
	if _, err := s.UseToken(ctx(t), n.Token.Hash, expiry, func(*store.User) error { return nil }); err != nil {
		t.Fatalf("UseToken with the newcomer's token: %v", err)
	}
}

// testPendingExpiredLoginReplaced: a registration that claims only the
// expired user's login replaces it too, freeing its e-mail.
func testPendingExpiredLoginReplaced(t *testing.T, s store.Store) {
	expiry := time.Now().Add(time.Hour)
	sq := CreateSquatter(t, s, "first@example.com", "wanted", expiry)
	n := newcomer("second@example.com", "WANTED", expiry.Add(time.Second))
	create(t, s, n)
	wantLoginIndex(t, s, sq.User.LoginKey, n.User.ID)
	wantAbsent(t, s.UserIDByEmail, sq.User.EmailKey, "e-mail index of the replaced user")
	WantSquatterGone(t, s, sq)
}

// testPendingExpiredReplacementRefused: a replacement refused on another
// key (a login held by a live user) writes nothing and keeps the expired
// user whole.
func testPendingExpiredReplacementRefused(t *testing.T, s store.Store) {
	expiry := time.Now().Add(time.Hour)
	sq := CreateSquatter(t, s, "kept@example.com", "", expiry)
	live := NewTestUser("live@example.com", "taken")
	live.Status = store.StatusActive
	create(t, s, store.NewUser{User: live})
	n := newcomer("kept@example.com", "taken", expiry.Add(time.Second))
	wantConflict(t, s.CreateUser(ctx(t), n), "login")
	wantUserAbsent(t, s, n.User)
	wantUser(t, s, sq.User)
	wantEmailIndex(t, s, sq.User.EmailKey, sq.User.ID)
	if _, err := s.UseToken(ctx(t), sq.Token.Hash, expiry.Add(-time.Minute), func(*store.User) error { return nil }); err != nil {
		t.Fatalf("UseToken of the kept user's token: %v", err)
	}
}

// testConcurrentReplaceExpired: of concurrent registrations of an expired
// pending user's e-mail, exactly one wins.
func testConcurrentReplaceExpired(t *testing.T, s store.Store) {
	expiry := time.Now().Add(time.Hour)
	sq := CreateSquatter(t, s, "race@example.com", "", expiry)
	const n = 16
	regs := make([]store.NewUser, n)
	for i := range regs {
		regs[i] = newcomer("race@example.com", "", expiry.Add(time.Duration(i)*time.Millisecond))
	}
	errs := RunConcurrent(n, func(i int) error { return s.CreateUser(ctx(t), regs[i]) })
	w := OneWinner(t, errs, "email")
	wantEmailIndex(t, s, sq.User.EmailKey, regs[w].User.ID)
	for i, r := range regs {
		if i != w {
			wantUserAbsent(t, s, r.User)
		}
	}
	WantSquatterGone(t, s, sq)
}

// testActivationRacesReplacement: an activation with the expired user's
// token (from an instance whose clock is behind) racing a replacement
// either activates the old user (and the replacement is refused) or
// finds the token gone (and the new user stays pending): never both, and
// never the new user activated by the old link.
func testActivationRacesReplacement(t *testing.T, s store.Store) {
	for round := range 8 {
		expiry := time.Now().Add(time.Hour)
		email := fmt.Sprintf("contest%d@example.com", round)
		sq := CreateSquatter(t, s, email, "", expiry)
		n := newcomer(email, "", expiry)
		var used *store.User
		errs := RunConcurrent(2, func(i int) error {
			if i == 0 {
				var err error
				used, err = s.UseToken(ctx(t), sq.Token.Hash, expiry.Add(-time.Millisecond), activate(expiry))
				return err
			}
			return s.CreateUser(ctx(t), n)
		})
		switch activated, replaced := errs[0] == nil, errs[1] == nil; {
		case activated && !replaced:
			wantConflict(t, errs[1], "email")
			if used.ID != sq.User.ID {
				t.Fatalf("round %d: the old token activated user %s, not its own %s", round, used.ID, sq.User.ID)
			}
			wantEmailIndex(t, s, sq.User.EmailKey, sq.User.ID)
			wantUserAbsent(t, s, n.User)
		case replaced && !activated:
			wantNotFound(t, fmt.Sprintf("round %d: UseToken after the replacement", round), errs[0])
			got, err := s.GetUser(ctx(t), n.User.ID)
			if err != nil || got.Status != store.StatusPending {
				t.Fatalf("round %d: new user = %+v, %v; want it pending", round, got, err)
			}
			WantSquatterGone(t, s, sq)
		default:
			t.Fatalf("round %d: activation %v, replacement %v: want exactly one to succeed", round, errs[0], errs[1])
		}
	}
}
