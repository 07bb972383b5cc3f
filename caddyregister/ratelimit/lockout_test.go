package ratelimit

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddyregister/caddyregister/internal/testredis"
)

// keycloak is Keycloak's brute force default, the engine's account policy.
var keycloak = LockPolicy{Failures: 30, WaitIncrement: time.Minute, MaxWait: 15 * time.Minute, Reset: 12 * time.Hour}

func TestLockPolicyWait(t *testing.T) {
	for _, c := range []struct {
		n    int64
		want time.Duration
	}{{1, 0}, {29, 0}, {30, time.Minute}, {59, time.Minute}, {60, 2 * time.Minute}, {449, 14 * time.Minute}, {450, 15 * time.Minute}, {1 << 40, 15 * time.Minute}} {
		if got := keycloak.Wait(c.n); got != c.want {
			t.Errorf("Wait(%d) = %v, want %v", c.n, got, c.want)
		}
	}
	if got := (LockPolicy{}).Wait(100); got != 0 {
		t.Errorf("zero policy locks: %v", got)
	}
}

// lockBackends runs f on the in-memory and the Redis lockouts.
func lockBackends(t *testing.T, f func(t *testing.T, l Limiter)) {
	t.Run("memory", func(t *testing.T) { f(t, NewMemory()) })
	t.Run("redis", func(t *testing.T) {
		srv := testredis.Start(t)
		c := redis.NewClient(&redis.Options{Addr: srv.Addr})
		t.Cleanup(func() { c.Close() })
		f(t, NewRedis(c, "{t}:"))
	})
}

func TestLockoutLocksAfterFailures(t *testing.T) {
	lockBackends(t, func(t *testing.T, l Limiter) {
		ctx := context.Background()
		p := LockPolicy{Failures: 3, WaitIncrement: time.Minute, MaxWait: 15 * time.Minute, Reset: time.Hour}
		for i := 1; i <= 2; i++ {
			if d, err := l.Fail(ctx, Failure{Key: "acct", Policy: p}); err != nil || d != 0 {
				t.Fatalf("failure %d: lock %v, %v; want none", i, d, err)
			}
		}
		if d, _ := l.Locked(ctx, "acct"); d != 0 {
			t.Fatalf("locked %v after 2 of 3 failures", d)
		}
		d, err := l.Fail(ctx, Failure{Key: "acct", Policy: p})
		if err != nil || d <= 59*time.Second || d > time.Minute {
			t.Fatalf("third failure: lock %v, %v; want a minute", d, err)
		}
		got, err := l.Locked(ctx, "other", "acct")
		if err != nil || got <= 59*time.Second || got > time.Minute {
			t.Fatalf("Locked = %v, %v; want about a minute", got, err)
		}
		// Keys are independent.
		if d, _ := l.Locked(ctx, "other"); d != 0 {
			t.Fatalf("an untouched key is locked %v", d)
		}
		// Each key counts with its own policy; the longest lock is returned.
		strict := LockPolicy{Failures: 1, WaitIncrement: 5 * time.Minute, MaxWait: 15 * time.Minute, Reset: time.Hour}
		d, _ = l.Fail(ctx, Failure{Key: "acct", Policy: p}, Failure{Key: "net", Policy: strict})
		if d <= 4*time.Minute || d > 5*time.Minute {
			t.Fatalf("longest lock %v, want about 5m", d)
		}
		if err := l.Forget(ctx, "acct"); err != nil {
			t.Fatal(err)
		}
		if d, _ := l.Locked(ctx, "acct"); d != 0 {
			t.Fatalf("locked %v after Forget", d)
		}
	})
}

// TestLockoutKeysHashedInRedis: an attacker's string is never a Redis key
// name, however long.
func TestLockoutKeysHashedInRedis(t *testing.T) {
	srv := testredis.Start(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { c.Close() })
	r := NewRedis(c, "{t}:")
	ctx := context.Background()
	long := strings.Repeat("attacker", 8000)
	if _, err := r.Fail(ctx, Failure{Key: long, Policy: keycloak}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Allow(ctx, long, Limit{Rate: 1, Period: time.Hour}); err != nil {
		t.Fatal(err)
	}
	keys, err := c.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 {
		t.Fatalf("keys %q, want a rate key and a lock key", keys)
	}
	for _, k := range keys {
		if len(k) > 64 || strings.Contains(k, "attacker") {
			t.Fatalf("key %q holds the caller's string", k)
		}
	}
	// The lock key expires at the reset time after the last failure.
	ttl, err := c.PTTL(ctx, "fail:{t}:"+HashKey(long)).Result()
	if err != nil || ttl <= 11*time.Hour || ttl > 12*time.Hour {
		t.Fatalf("lock key TTL %v, %v; want the 12h reset", ttl, err)
	}
}

// TestMemoryLockoutGrowsAndResets walks Keycloak's schedule on a fake
// clock: a minute per 30 failures, capped at 15, forgotten 12 h after the
// last failure.
func TestMemoryLockoutGrowsAndResets(t *testing.T) {
	m, c := newTestMemory()
	ctx := context.Background()
	var d time.Duration
	for range 60 {
		d, _ = m.Fail(ctx, Failure{Key: "a", Policy: keycloak})
	}
	if d != 2*time.Minute {
		t.Fatalf("after 60 failures: lock %v, want 2m", d)
	}
	for range 1000 {
		d, _ = m.Fail(ctx, Failure{Key: "a", Policy: keycloak})
	}
	if d != 15*time.Minute {
		t.Fatalf("after 1060 failures: lock %v, want the 15m cap", d)
	}
	c.Advance(15 * time.Minute)
	if d, _ := m.Locked(ctx, "a"); d != 0 {
		t.Fatalf("still locked %v after the wait", d)
	}
	// The count survives the lock: the next failure locks again at once.
	if d, _ = m.Fail(ctx, Failure{Key: "a", Policy: keycloak}); d != 15*time.Minute {
		t.Fatalf("failure after the lock: %v, want 15m", d)
	}
	c.Advance(12*time.Hour + time.Second)
	if d, _ = m.Fail(ctx, Failure{Key: "a", Policy: keycloak}); d != 0 {
		t.Fatalf("failure 12h after the last: lock %v, want a fresh count", d)
	}
}
