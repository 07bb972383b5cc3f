package redisstore_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddyregister/caddyregister/caddyregister/store"
	"github.com/caddyregister/caddyregister/caddyregister/store/redisstore"
	"github.com/caddyregister/caddyregister/caddyregister/store/storetest"
)

// TestClusterReconcile: what a failover's lost writes leave, made by
// hand (the entries deleted as a dead master would have lost them), and
// settled by Reconcile: a user whose e-mail entry was lost gets it back;
// one whose address another user took meanwhile is erased (so no two
// users hold one address); one whose login was taken loses its e-mail
// entry too; a registration in flight (its entry a reservation) is left
// alone, as is one whose address another registration has in flight and
// one with an intent (the janitor's); an entry naming a user that is gone
// is taken over; two walks at once end the same; another walk changes
// nothing.
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
	// An entry naming a user whose record is gone (a delete that crashed
	// half-way) is taken over.
	orphaned := create("orphaned@example.com", "")
	if err := c.Set(ctx, s.EmailKey(orphaned.EmailKey), "6b0000000000000000000001", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// Another registration of the address in flight: wait for it.
	raced := create("raced@example.com", "")
	theirs := "r:6b0000000000000000000002:99999999999999"
	if err := c.Set(ctx, s.EmailKey(raced.EmailKey), theirs, 0).Err(); err != nil {
		t.Fatal(err)
	}
	// A user whose registration has an intent is the janitor's, even
	// with its entry lost.
	unsettled := create("unsettled@example.com", "")
	lose(s.EmailKey(unsettled.EmailKey))
	if err := c.ZAdd(ctx, "{"+s.Namespace()+":pend:"+strconv.Itoa(redisstore.Shard(unsettled.ID))+"}", redis.Z{Score: 1, Member: unsettled.ID}).Err(); err != nil {
		t.Fatal(err)
	}

	// Two instances walk at once: each user ends the same either way.
	var stats [2]redisstore.ReconcileStats
	errs := storetest.RunConcurrent(2, func(i int) (err error) {
		stats[i], err = s.Reconcile(ctx)
		return err
	})
	for _, err := range errs {
		if err != nil {
			t.Fatalf("Reconcile: %v", err)
		}
	}
	if r := stats[0].Restored + stats[1].Restored; r < 2 || r > 4 {
		t.Errorf("the walks restored %d users, want kept and orphaned (each by one walk or both)", r)
	}
	if e := stats[0].Erased + stats[1].Erased; e != 2 {
		t.Errorf("the walks erased %d users (%v, %v), want old and half, once", e, stats[0].ErasedIDs, stats[1].ErasedIDs)
	}
	if stats[0].Deferred != 2 || stats[1].Deferred != 2 {
		t.Errorf("deferred %d and %d, want the raced and the in-flight user in each walk", stats[0].Deferred, stats[1].Deferred)
	}
	if id, err := s.UserIDByEmail(ctx, orphaned.EmailKey); err != nil || id != orphaned.ID {
		t.Errorf("the orphaned entry resolves to %q, %v; want %s", id, err, orphaned.ID)
	}
	if v, _ := c.Get(ctx, s.EmailKey(raced.EmailKey)).Result(); v != theirs {
		t.Errorf("the other registration's reservation became %q", v)
	}
	if v, _ := c.Get(ctx, s.EmailKey(unsettled.EmailKey)).Result(); v != "" {
		t.Errorf("the walk wrote the entry of a user with an intent: %q", v)
	}
	for _, u := range []*store.User{raced, unsettled} {
		if _, err := s.GetUser(ctx, u.ID); err != nil {
			t.Errorf("%s was touched: %v", u.Email, err)
		}
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
	if st, err := s.Reconcile(ctx); err != nil || st.Restored != 0 || st.Erased != 0 || st.Deferred != 2 {
		t.Errorf("another walk: %+v, %v; want nothing but the raced and in-flight users deferred", st, err)
	}
}
