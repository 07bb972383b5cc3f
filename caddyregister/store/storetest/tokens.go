package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// The cases of single-use secrets: CAPTCHA challenges and link tokens.

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
