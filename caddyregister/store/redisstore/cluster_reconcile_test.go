package redisstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/store"
	"github.com/caddyregister/caddyregister/caddyregister/store/storetest"
)

// TestClusterReconcile: what a failover's lost writes leave, made by
// hand (the entries deleted as a dead master would have lost them), and
// settled by Reconcile: a user whose e-mail entry was lost gets it back;
// one whose address another user took meanwhile is erased (so no two
// users hold one address); one whose login was taken loses its e-mail
// entry too; a registration in flight (its entry a reservation) is left
// alone; a second walk changes nothing.
func TestClusterReconcile(t *testing.T) {
	s := openCluster(t)
	ctx := context.Background()
	c := s.Client()
	create := func(email, login string) *store.User {
		t.Helper()
		u := storetest.NewTestUser(email, login)
		if err := s.CreateUser(ctx, store.NewUser{User: u, Token: storetest.NewTestToken(u.ID, time.Now().Add(time.Hour))}); err != nil {
			t.Fatal(err)
		}
		return u
	}
	lose := func(key string) {
		t.Helper()
		if err := c.Del(ctx, key).Err(); err != nil {
			t.Fatal(err)
		}
	}
	kept := create("kept@example.com", "kept")
	lose(s.EmailKey(kept.EmailKey))
	lose(s.LoginKey(kept.LoginKey))
	old := create("taken@example.com", "")
	lose(s.EmailKey(old.EmailKey))
	taker := create("taken@example.com", "") // the address read as free
	half := create("half@example.com", "halflogin")
	lose(s.EmailKey(half.EmailKey))
	lose(s.LoginKey(half.LoginKey))
	other := create("other@example.com", "halflogin")
	inflight := create("inflight@example.com", "")
	reservation := "r:" + inflight.ID + ":" + "99999999999999"
	if err := c.Set(ctx, s.EmailKey(inflight.EmailKey), reservation, 0).Err(); err != nil {
		t.Fatal(err)
	}
	fine := create("fine@example.com", "")

	restored, erased, err := s.Reconcile(ctx)
	if err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	if restored != 1 || erased != 2 {
		t.Errorf("Reconcile restored %d and erased %d, want 1 and 2", restored, erased)
	}
	for _, w := range []struct {
		what string
		get  func(context.Context, string) (string, error)
		key  string
		want string
	}{
		{"kept's e-mail", s.UserIDByEmail, kept.EmailKey, kept.ID},
		{"kept's login", s.UserIDByLogin, kept.LoginKey, kept.ID},
		{"the taken address", s.UserIDByEmail, taker.EmailKey, taker.ID},
		{"the taken login", s.UserIDByLogin, other.LoginKey, other.ID},
		{"fine's e-mail", s.UserIDByEmail, fine.EmailKey, fine.ID},
	} {
		if id, err := w.get(ctx, w.key); err != nil || id != w.want {
			t.Errorf("%s resolves to %q, %v; want %s", w.what, id, err, w.want)
		}
	}
	for _, u := range []*store.User{old, half} {
		if _, err := s.GetUser(ctx, u.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("user %s (%s) that lost its address is still there: %v", u.ID, u.Email, err)
		}
		if toks, err := s.UserTokens(ctx, u.ID, time.Now()); err != nil || len(toks) != 0 {
			t.Errorf("tokens of erased %s: %d, %v", u.Email, len(toks), err)
		}
	}
	if v, _ := c.Get(ctx, s.EmailKey(half.EmailKey)).Result(); v != "" {
		t.Errorf("the erased user's e-mail entry written back stays: %q", v)
	}
	if v, _ := c.Get(ctx, s.EmailKey(inflight.EmailKey)).Result(); v != reservation {
		t.Errorf("the in-flight reservation became %q", v)
	}
	if _, err := s.GetUser(ctx, inflight.ID); err != nil {
		t.Errorf("the user in flight was touched: %v", err)
	}
	if r, e, err := s.Reconcile(ctx); err != nil || r != 0 || e != 0 {
		t.Errorf("second walk: restored %d, erased %d, %v; want nothing", r, e, err)
	}
}
