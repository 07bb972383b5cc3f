package ratelimit

import (
	"context"
	"fmt"
	"strconv"
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
	}{{1, 0}, {29, 0}, {30, time.Minute}, {31, 0}, {59, 0}, {60, 2 * time.Minute}, {420, 14 * time.Minute}, {449, 0}, {450, 15 * time.Minute}, {451, 0}, {480, 15 * time.Minute}, {30 << 40, 15 * time.Minute}} {
		if got := keycloak.Wait(c.n); got != c.want {
			t.Errorf("Wait(%d) = %v, want %v", c.n, got, c.want)
		}
	}
	if got := (LockPolicy{}).Wait(100); got != 0 {
		t.Errorf("zero policy locks: %v", got)
	}
}

// lockBackends runs f on the in-memory and the Redis lockouts, the
// latter on one node and, with every key in a slot of its own, on a
// cluster.
func lockBackends(t *testing.T, f func(t *testing.T, l Limiter)) {
	t.Run("memory", func(t *testing.T) { f(t, NewMemory()) })
	t.Run("redis", func(t *testing.T) {
		srv := testredis.Start(t)
		c := redis.NewClient(&redis.Options{Addr: srv.Addr})
		t.Cleanup(func() { c.Close() })
		f(t, NewRedis(c, "{t}:"))
	})
	t.Run("redis-cluster", func(t *testing.T) {
		f(t, NewRedisCluster(sharedCluster(t).ClusterClient(t), fmt.Sprintf("t%d", clusterNS.Add(1))))
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
	for range 990 {
		d = fail()
	}
	if d != 15*time.Minute {
		t.Fatalf("after 1050 failures: lock %v, want the 15m cap", d)
	}
	c.Advance(15 * time.Minute)
	// The count survives the lock, but only the next multiple locks again.
	for range 29 {
		if d = fail(); d != 0 {
			t.Fatalf("failure after the lock, short of the next multiple: lock %v", d)
		}
	}
	if d = fail(); d != 15*time.Minute {
		t.Fatalf("1080th failure: lock %v, want 15m", d)
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

// expireLock ends key's lock now, keeping its count, as time passing would
// (Redis takes its clock from the server, so the test cannot advance it).
func expireLock(t *testing.T, l Limiter, key string) {
	t.Helper()
	switch l := l.(type) {
	case *Memory:
		k := l.hash(key)
		sh := l.locks.shard(k)
		sh.mu.Lock()
		if i, ok := sh.idx[k]; ok {
			sh.entries[i].a = 0
		}
		sh.mu.Unlock()
	case *Redis:
		if err := l.c.HSet(context.Background(), l.lockKey(key), "u", 0).Err(); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("unknown limiter %T", l)
	}
}

// TestLockoutFailuresPastThresholdDoNotRelock: once a lock is over, the
// failures after the threshold do not lock again until the next multiple.
// (Each one locked anew: one failure per lock period kept the account
// locked for good.)
func TestLockoutFailuresPastThresholdDoNotRelock(t *testing.T) {
	lockBackends(t, func(t *testing.T, l Limiter) {
		f := Failure{Key: "acct", Policy: LockPolicy{Failures: 3, WaitIncrement: time.Minute, MaxWait: 15 * time.Minute, Reset: time.Hour}}
		for range 2 {
			attempt(t, l, f)
		}
		if _, lock := attempt(t, l, f); lock <= 59*time.Second {
			t.Fatalf("third failure: lock %v, want a minute", lock)
		}
		expireLock(t, l, "acct")
		for i := 4; i <= 5; i++ {
			if refused, lock := attempt(t, l, f); refused != 0 || lock != 0 {
				t.Fatalf("failure %d after the lock: refused %v, lock %v; want neither", i, refused, lock)
			}
		}
		if _, lock := attempt(t, l, f); lock <= 119*time.Second || lock > 2*time.Minute {
			t.Fatalf("sixth failure: lock %v, want two minutes", lock)
		}
	})
}

// TestLockoutCountOnly: a count-only key lets the attempt past its lock
// and holds nothing in flight, yet counts the failure.
func TestLockoutCountOnly(t *testing.T) {
	lockBackends(t, func(t *testing.T, l Limiter) {
		ctx := context.Background()
		p := LockPolicy{Failures: 2, WaitIncrement: time.Minute, MaxWait: 15 * time.Minute, Reset: time.Hour}
		acct := Failure{Key: "acct", Policy: p}
		attempt(t, l, acct)
		// An attempt in flight under acct: one more failure would lock it.
		if d, err := l.Begin(ctx, acct); err != nil || d != 0 {
			t.Fatalf("Begin = %v, %v", d, err)
		}
		known := Failure{Key: "acct", Policy: p, CountOnly: true}
		if refused, lock := attempt(t, l, Failure{Key: "net1", Policy: p}, known); refused != 0 || lock <= 59*time.Second {
			t.Fatalf("count-only attempt: refused %v, lock %v; want admitted, and its failure to lock", refused, lock)
		}
		if refused, _ := attempt(t, l, acct); refused <= 59*time.Second {
			t.Fatalf("gated attempt after the count-only failure: refused %v, want the lock", refused)
		}
		if refused, _ := attempt(t, l, Failure{Key: "net2", Policy: p}, known); refused != 0 {
			t.Fatalf("count-only attempt on a locked key refused %v", refused)
		}
		// The count-only End took nothing from the attempt in flight.
		if _, err := l.End(ctx, false, acct); err != nil {
			t.Fatal(err)
		}
	})
}

// TestLockoutRemember: a mark is there for its time, and only its key.
func TestLockoutRemember(t *testing.T) {
	lockBackends(t, func(t *testing.T, l Limiter) {
		ctx := context.Background()
		if ok, err := l.Remembered(ctx, "k"); err != nil || ok {
			t.Fatalf("Remembered before Remember = %v, %v", ok, err)
		}
		if err := l.Remember(ctx, "k", time.Hour); err != nil {
			t.Fatal(err)
		}
		if ok, err := l.Remembered(ctx, "k"); err != nil || !ok {
			t.Fatalf("Remembered = %v, %v; want true", ok, err)
		}
		if ok, _ := l.Remembered(ctx, "other"); ok {
			t.Fatal("another key is remembered")
		}
	})
}

// TestMemoryRateFloodKeepsLocks: 10^6 distinct rate keys (which cost an
// attacker nothing) leave a lock and a failure count in place. (Rate
// buckets and lockout state shared one LRU: the flood evicted both.)
func TestMemoryRateFloodKeepsLocks(t *testing.T) {
	m, _ := newTestMemory() // a still clock: the flood takes no time
	ctx := context.Background()
	p := LockPolicy{Failures: 3, WaitIncrement: time.Minute, MaxWait: 15 * time.Minute, Reset: time.Hour}
	locked, counted := Failure{Key: "locked", Policy: p}, Failure{Key: "counted", Policy: p}
	for range 3 {
		attempt(t, m, locked)
	}
	for range 2 {
		attempt(t, m, counted)
	}
	l := Limit{Rate: 1, Period: time.Hour}
	buf := make([]byte, 0, 32)
	for i := range 1_000_000 {
		buf = strconv.AppendInt(append(buf[:0], "flood"...), int64(i), 10)
		if _, err := m.Allow(ctx, string(buf), l); err != nil {
			t.Fatal(err)
		}
	}
	if refused, _ := attempt(t, m, locked); refused <= 59*time.Second {
		t.Fatalf("after the flood: refused %v, want still locked", refused)
	}
	if _, lock := attempt(t, m, counted); lock <= 59*time.Second {
		t.Fatalf("third failure after the flood: lock %v, want the count kept", lock)
	}
	if n := m.len(); n > DefaultMemoryKeys+memoryShards {
		t.Fatalf("%d rate keys held, want at most about %d", n, DefaultMemoryKeys)
	}
}

// TestMemoryLockTableFullFailsClosed: when every entry of the lockout
// table holds a live lock, a new key's attempt is refused (BusyRetry), and
// no lock is dropped for it.
func TestMemoryLockTableFullFailsClosed(t *testing.T) {
	m := NewMemorySize(memoryShards * 2) // one lockout entry per shard
	p := LockPolicy{Failures: 1, WaitIncrement: time.Hour, MaxWait: time.Hour, Reset: time.Hour}
	var held []string
	busy := 0
	for i := range 1000 {
		key := fmt.Sprintf("k%d", i)
		switch refused, lock := attempt(t, m, Failure{Key: key, Policy: p}); {
		case lock > 0:
			held = append(held, key)
		case refused == BusyRetry:
			busy++
		default:
			t.Fatalf("%s: refused %v, lock %v", key, refused, lock)
		}
	}
	if busy == 0 || len(held) > memoryShards {
		t.Fatalf("%d keys locked, %d refused busy; want at most one lock per shard and the rest refused", len(held), busy)
	}
	for _, key := range held {
		if refused, _ := attempt(t, m, Failure{Key: key, Policy: p}); refused <= 59*time.Minute {
			t.Fatalf("%s: refused %v, want its lock kept", key, refused)
		}
	}
	// Entries without a lock may go: once the locks lapse, new keys fit.
	for _, key := range held {
		expireLock(t, m, key)
	}
	if refused, lock := attempt(t, m, Failure{Key: "late", Policy: p}); refused != 0 || lock == 0 {
		t.Fatalf("new key after the locks ended: refused %v, lock %v", refused, lock)
	}
}
