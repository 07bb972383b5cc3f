package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddyregister/caddyregister/caddyregister/store"
	"github.com/caddyregister/caddyregister/caddyregister/store/redisstore"
	"github.com/caddyregister/caddyregister/caddyregister/store/storetest"
)

var errCrashed = errors.New("instance crashed")

// crashHook simulates an instance that dies in the middle of a
// registration's finalize round: that round reaches Redis without the
// commands on dropKey (a shard that failed), and every command after it
// fails, so the request can neither roll back nor clear its intent.
type crashHook struct {
	dropKey string
	crashed atomic.Bool
}

func (h *crashHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *crashHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if h.crashed.Load() {
			cmd.SetErr(errCrashed)
			return errCrashed
		}
		return next(ctx, cmd)
	}
}

func (h *crashHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if h.crashed.Load() {
			for _, c := range cmds {
				c.SetErr(errCrashed)
			}
			return errCrashed
		}
		// The finalize round is the one that adds to a user index shard.
		finalize := slices.ContainsFunc(cmds, func(c redis.Cmder) bool {
			a := c.Args()
			return len(a) > 1 && fmt.Sprint(a[0]) == "zadd" && strings.Contains(fmt.Sprint(a[1]), ":users:")
		})
		if !finalize {
			return next(ctx, cmds)
		}
		var keep []redis.Cmder
		for _, c := range cmds {
			if slices.ContainsFunc(c.Args(), func(a any) bool { return fmt.Sprint(a) == h.dropKey }) {
				c.SetErr(errCrashed)
				continue
			}
			keep = append(keep, c)
		}
		err := next(ctx, keep)
		h.crashed.Store(true)
		return err
	}
}

// crashedRegistration registers u on a store whose instance dies in the
// finalize round, losing the writes to dropKey(s), and returns a second
// instance on the same namespace.
func crashedRegistration(t *testing.T, u *store.User, dropKey func(s *redisstore.ClusterStore) string) (*redisstore.ClusterStore, *redisstore.ClusterStore) {
	t.Helper()
	dead := openCluster(t)
	redisstore.SetReserveTTL(dead, 300*time.Millisecond)
	h := &crashHook{dropKey: dropKey(dead)}
	dead.Client().AddHook(h)
	// Its answer does not matter (the client never got one); what
	// matters is what it left.
	dead.CreateUser(context.Background(), store.NewUser{User: u})
	if !h.crashed.Load() {
		t.Fatal("the instance did not reach the finalize round")
	}
	live := redisstore.NewCluster(cluster(t).NewClusterClient(), dead.Namespace())
	t.Cleanup(func() { live.Close() })
	return dead, live
}

// settle runs the janitor as it will run once the deadline (and its
// grace) passed.
func settle(t *testing.T, s *redisstore.ClusterStore) {
	t.Helper()
	n, err := s.Janitor(context.Background(), time.Now().Add(time.Minute))
	if err != nil || n != 1 {
		t.Fatalf("Janitor = %d, %v; want 1 registration settled", n, err)
	}
	if n, err := s.Janitor(context.Background(), time.Now().Add(time.Minute)); err != nil || n != 0 {
		t.Fatalf("second Janitor = %d, %v; want nothing left", n, err)
	}
}

// TestJanitorRollsBack: the record was written but the e-mail entry was
// not (its shard failed, then the instance died). The janitor erases the
// user, and the address is free once its reservation lapses.
func TestJanitorRollsBack(t *testing.T) {
	u := storetest.NewTestUser("halfmade@example.com", "halfmade")
	_, live := crashedRegistration(t, u, func(s *redisstore.ClusterStore) string { return s.EmailKey(u.EmailKey) })
	ctx := context.Background()
	if _, err := live.GetUser(ctx, u.ID); err != nil {
		t.Fatalf("before the janitor the half-made record should exist (the test's premise): %v", err)
	}
	settle(t, live)
	if _, err := live.GetUser(ctx, u.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetUser after the janitor: %v, want ErrNotFound", err)
	}
	if _, err := live.UserIDByLogin(ctx, u.LoginKey); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("login entry after the janitor: %v, want ErrNotFound", err)
	}
	// The address is free once the reservation lapses (300 ms here):
	// wait for that event, then register it again.
	again := storetest.NewTestUser("halfmade@example.com", "halfmade")
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := live.CreateUser(ctx, store.NewUser{User: again})
		if err == nil {
			break
		}
		var ce *store.ConflictError
		if !errors.As(err, &ce) || time.Now().After(deadline) {
			t.Fatalf("registering the address again: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if id, err := live.UserIDByEmail(ctx, u.EmailKey); err != nil || id != again.ID {
		t.Fatalf("UserIDByEmail = %q, %v; want the new user %s", id, err, again.ID)
	}
}

// TestJanitorRollsForward: everything but the user index entry was
// written. The janitor keeps the user and lists it.
func TestJanitorRollsForward(t *testing.T) {
	u := storetest.NewTestUser("nearlydone@example.com", "")
	_, live := crashedRegistration(t, u, func(s *redisstore.ClusterStore) string { return s.UsersShardKey(redisstore.Shard(u.ID)) })
	ctx := context.Background()
	page, err := live.ListUsers(ctx, store.UserFilter{})
	if err != nil || len(page.Users) != 0 {
		t.Fatalf("ListUsers before the janitor = %v, %v; want no user (the test's premise)", page, err)
	}
	settle(t, live)
	page, err = live.ListUsers(ctx, store.UserFilter{})
	if err != nil || len(page.Users) != 1 || page.Users[0].ID != u.ID {
		t.Fatalf("ListUsers after the janitor = %+v, %v; want the user", page, err)
	}
	if id, err := live.UserIDByEmail(ctx, u.EmailKey); err != nil || id != u.ID {
		t.Fatalf("UserIDByEmail = %q, %v", id, err)
	}
}
