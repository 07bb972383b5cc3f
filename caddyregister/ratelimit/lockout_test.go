package ratelimit

import (
	"context"
	"strings"
	"sync"
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

// attempt runs one attempt that fails: Begin, then End(failed). It
// returns Begin's wait (the attempt was refused) or End's lock.
func attempt(t *testing.T, l Limiter, fails ...Failure) (refused, lock time.Duration) {
	t.Helper()
	ctx := context.Background()
	d, err := l.Begin(ctx, fails...)
	if err != nil {
		t.Fatal(err)
	}
	if d > 0 {
		return d, 0
	}
	lock, err = l.End(ctx, true, fails...)
	if err != nil {
		t.Fatal(err)
	}
	return 0, lock
}

func TestLockoutLocksAfterFailures(t *testing.T) {
	lockBackends(t, func(t *testing.T, l Limiter) {
		ctx := context.Background()
		p := LockPolicy{Failures: 3, WaitIncrement: time.Minute, MaxWait: 15 * time.Minute, Reset: time.Hour}
		acct := Failure{Key: "acct", Policy: p}
		for i := 1; i <= 2; i++ {
			if refused, lock := attempt(t, l, acct); refused != 0 || lock != 0 {
				t.Fatalf("failure %d: refused %v, lock %v; want neither", i, refused, lock)
			}
		}
		if _, lock := attempt(t, l, acct); lock <= 59*time.Second || lock > time.Minute {
			t.Fatalf("third failure: lock %v; want a minute", lock)
		}
		refused, _ := attempt(t, l, Failure{Key: "other", Policy: p}, acct)
		if refused <= 59*time.Second || refused > time.Minute {
			t.Fatalf("Begin on a locked key = %v; want about a minute", refused)
		}
		// A refused Begin starts nothing under the other key either: it
		// locks after its own three failures, not earlier.
		other := Failure{Key: "other", Policy: p}
		for i := 1; i <= 2; i++ {
			if refused, lock := attempt(t, l, other); refused != 0 || lock != 0 {
				t.Fatalf("other key, failure %d: refused %v, lock %v", i, refused, lock)
			}
		}
		// Each key counts with its own policy; the longest lock is returned.
		strict := LockPolicy{Failures: 1, WaitIncrement: 5 * time.Minute, MaxWait: 15 * time.Minute, Reset: time.Hour}
		if _, lock := attempt(t, l, other, Failure{Key: "net", Policy: strict}); lock <= 4*time.Minute || lock > 5*time.Minute {
			t.Fatalf("longest lock %v, want about 5m", lock)
		}
		// A success counts nothing.
		ok := Failure{Key: "fine", Policy: p}
		for range 10 {
			if d, err := l.Begin(ctx, ok); err != nil || d != 0 {
				t.Fatalf("Begin = %v, %v", d, err)
			}
			if lock, err := l.End(ctx, false, ok); err != nil || lock != 0 {
				t.Fatalf("End(success) = %v, %v", lock, err)
			}
		}
		if refused, lock := attempt(t, l, ok); refused != 0 || lock != 0 {
			t.Fatalf("after 10 successes, a failure: refused %v, lock %v", refused, lock)
		}
		if err := l.Forget(ctx, "acct"); err != nil {
			t.Fatal(err)
		}
		if refused, _ := attempt(t, l, acct); refused != 0 {
			t.Fatalf("refused %v after Forget", refused)
		}
	})
}

// TestLockoutConcurrentAttemptsCannotOvershoot: attempts that arrive at
// once are admitted only as far as their failures could not pass a lock,
// so exactly Failures attempts are decided before the key locks, however
// many race. (Checking the lock, then counting the failure after the
// hash, let every concurrent attempt through.)
func TestLockoutConcurrentAttemptsCannotOvershoot(t *testing.T) {
	lockBackends(t, func(t *testing.T, l Limiter) {
		ctx := context.Background()
		f := Failure{Key: "acct", Policy: LockPolicy{Failures: 5, WaitIncrement: time.Minute, MaxWait: 15 * time.Minute, Reset: time.Hour}}
		decided := 0
		for round := 0; ; round++ {
			if round > 20 {
				t.Fatal("never locked")
			}
			// Twenty attempts Begin at once; only then do the admitted
			// ones fail.
			var wg sync.WaitGroup
			var mu sync.Mutex
			var admitted int
			var locked bool
			for range 20 {
				wg.Go(func() {
					d, err := l.Begin(ctx, f)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					defer mu.Unlock()
					switch {
					case d == 0:
						admitted++
					case d > BusyRetry:
						locked = true
					}
				})
			}
			wg.Wait()
			for range admitted {
				if _, err := l.End(ctx, true, f); err != nil {
					t.Fatal(err)
				}
			}
			decided += admitted
			if locked {
				break
			}
		}
		if decided != 5 {
			t.Fatalf("%d attempts decided before the lock, want exactly 5", decided)
		}
	})
}

// TestMemoryLostAttemptIsForgotten: an attempt that never Ends (its
// instance died) stops holding the key back once presumed lost.
func TestMemoryLostAttemptIsForgotten(t *testing.T) {
	m, c := newTestMemory()
	ctx := context.Background()
	f := Failure{Key: "acct", Policy: LockPolicy{Failures: 1, WaitIncrement: time.Minute, MaxWait: time.Minute, Reset: time.Hour}}
	if d, _ := m.Begin(ctx, f); d != 0 {
		t.Fatalf("first Begin: %v", d)
	}
	if d, _ := m.Begin(ctx, f); d != BusyRetry {
		t.Fatalf("second Begin with the first in flight: %v, want BusyRetry", d)
	}
	c.Advance(inFlightStale + time.Second)
	if d, _ := m.Begin(ctx, f); d != 0 {
		t.Fatalf("Begin after the first was presumed lost: %v", d)
	}
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
	attempt(t, r, Failure{Key: long, Policy: keycloak})
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
	f := Failure{Key: "a", Policy: keycloak}
	// fail counts a failure, stepping past any lock first.
	fail := func() time.Duration {
		t.Helper()
		if d, _ := m.Begin(ctx, f); d > 0 {
			c.Advance(d)
			if d, _ = m.Begin(ctx, f); d != 0 {
				t.Fatalf("Begin right after the lock: %v", d)
			}
		}
		lock, _ := m.End(ctx, true, f)
		return lock
	}
	var d time.Duration
	for range 29 {
		if d = fail(); d != 0 {
			t.Fatalf("locked %v before 30 failures", d)
		}
	}
	if d = fail(); d != time.Minute {
		t.Fatalf("30th failure: lock %v, want 1m", d)
	}
	for range 30 {
		d = fail()
	}
	if d != 2*time.Minute {
		t.Fatalf("after 60 failures: lock %v, want 2m", d)
	}
	for range 1000 {
		d = fail()
	}
	if d != 15*time.Minute {
		t.Fatalf("after 1060 failures: lock %v, want the 15m cap", d)
	}
	c.Advance(15 * time.Minute)
	// The count survives the lock: the next failure locks again at once.
	if d = fail(); d != 15*time.Minute {
		t.Fatalf("failure after the lock: %v, want 15m", d)
	}
	c.Advance(15*time.Minute + 12*time.Hour + time.Second)
	if d = fail(); d != 0 {
		t.Fatalf("failure 12h after the last: lock %v, want a fresh count", d)
	}
}

// TestMemoryResetCountsFromLastFailure: successes in between do not keep
// failures alive past their reset time.
func TestMemoryResetCountsFromLastFailure(t *testing.T) {
	m, c := newTestMemory()
	ctx := context.Background()
	f := Failure{Key: "a", Policy: LockPolicy{Failures: 2, WaitIncrement: time.Minute, MaxWait: time.Minute, Reset: time.Hour}}
	if _, lock := attempt(t, m, f); lock != 0 {
		t.Fatal("locked after one failure")
	}
	c.Advance(50 * time.Minute)
	if d, _ := m.Begin(ctx, f); d != 0 {
		t.Fatalf("Begin: %v", d)
	}
	if _, err := m.End(ctx, false, f); err != nil {
		t.Fatal(err)
	}
	c.Advance(11 * time.Minute)
	if _, lock := attempt(t, m, f); lock != 0 {
		t.Fatalf("a failure 61 minutes after the first locked %v: the success kept it alive", lock)
	}
}
