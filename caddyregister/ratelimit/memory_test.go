package ratelimit

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a settable clock, safe for concurrent use.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func newTestMemory() (*Memory, *fakeClock) {
	c := newFakeClock()
	m := NewMemory()
	m.now = c.Now
	return m, c
}

func allow(t *testing.T, m *Memory, key string, l Limit) Result {
	t.Helper()
	r, err := m.Allow(context.Background(), key, l)
	if err != nil {
		t.Fatalf("Allow(%q, %v): %v", key, l, err)
	}
	return r
}

func TestMemoryBurstExhaustion(t *testing.T) {
	m, _ := newTestMemory()
	l := Limit{Rate: 5, Period: time.Minute, Burst: 3} // one event per 12s
	for i := range 3 {
		if r := allow(t, m, "k", l); !r.Allowed || r.RetryAfter != 0 {
			t.Fatalf("call %d: got %+v, want allowed", i+1, r)
		}
	}
	r := allow(t, m, "k", l)
	if r.Allowed {
		t.Fatal("call 4 allowed past a burst of 3")
	}
	if r.RetryAfter != 12*time.Second {
		t.Fatalf("RetryAfter = %v, want 12s (one emission interval)", r.RetryAfter)
	}
	// Denials do not consume anything: still exactly 12s.
	if r := allow(t, m, "k", l); r.Allowed || r.RetryAfter != 12*time.Second {
		t.Fatalf("second denial: got %+v", r)
	}
}

func TestMemoryBurstDefaultsToRate(t *testing.T) {
	m, _ := newTestMemory()
	l := Limit{Rate: 4, Period: time.Hour}
	for i := range 4 {
		if !allow(t, m, "k", l).Allowed {
			t.Fatalf("call %d denied within the default burst (= rate)", i+1)
		}
	}
	if allow(t, m, "k", l).Allowed {
		t.Fatal("call 5 allowed past the default burst")
	}
}

func TestMemoryRefill(t *testing.T) {
	m, c := newTestMemory()
	l := Limit{Rate: 10, Period: time.Minute, Burst: 5} // emission interval 6s
	for range 5 {
		allow(t, m, "k", l)
	}
	if allow(t, m, "k", l).Allowed {
		t.Fatal("allowed past the burst")
	}
	c.Advance(6*time.Second - time.Millisecond)
	if allow(t, m, "k", l).Allowed {
		t.Fatal("allowed before Period/Rate elapsed")
	}
	c.Advance(time.Millisecond)
	if !allow(t, m, "k", l).Allowed {
		t.Fatal("denied after Period/Rate elapsed")
	}
	if allow(t, m, "k", l).Allowed {
		t.Fatal("one interval refilled more than one event")
	}
	// A long pause refills the bucket up to Burst, not beyond.
	c.Advance(time.Hour)
	for i := range 5 {
		if !allow(t, m, "k", l).Allowed {
			t.Fatalf("after refill, call %d denied", i+1)
		}
	}
	if allow(t, m, "k", l).Allowed {
		t.Fatal("refill exceeded the burst")
	}
}

func TestMemoryIndependentKeys(t *testing.T) {
	m, _ := newTestMemory()
	l := Limit{Rate: 1, Period: time.Minute, Burst: 1}
	if !allow(t, m, "a", l).Allowed {
		t.Fatal("a denied")
	}
	if allow(t, m, "a", l).Allowed {
		t.Fatal("a allowed twice")
	}
	for i := range 100 {
		if !allow(t, m, fmt.Sprintf("other-%d", i), l).Allowed {
			t.Fatalf("key other-%d denied by a's bucket", i)
		}
	}
}

func TestMemoryZeroLimit(t *testing.T) {
	m, _ := newTestMemory()
	for _, l := range []Limit{{}, {Rate: 5}, {Period: time.Second}, {Rate: -1, Period: time.Second}} {
		for range 1000 {
			if r := allow(t, m, "k", l); !r.Allowed {
				t.Fatalf("zero limit %+v denied", l)
			}
		}
	}
	if n := m.len(); n != 0 {
		t.Fatalf("zero limits stored %d buckets", n)
	}
}

func TestMemoryRetryAfter(t *testing.T) {
	m, c := newTestMemory()

	// Fast limits still ask for at least a second.
	fast := Limit{Rate: 100, Period: time.Second, Burst: 1}
	allow(t, m, "fast", fast)
	if r := allow(t, m, "fast", fast); r.Allowed || r.RetryAfter != time.Second {
		t.Fatalf("fast limit: got %+v, want denied with RetryAfter 1s", r)
	}

	// Slow limits: RetryAfter is exactly when the next event fits.
	slow := Limit{Rate: 3, Period: time.Hour, Burst: 2} // 20m interval
	allow(t, m, "slow", slow)
	allow(t, m, "slow", slow)
	c.Advance(7 * time.Minute)
	r := allow(t, m, "slow", slow)
	if r.Allowed || r.RetryAfter != 13*time.Minute {
		t.Fatalf("slow limit: got %+v, want denied with RetryAfter 13m", r)
	}
	c.Advance(r.RetryAfter - time.Nanosecond)
	if allow(t, m, "slow", slow).Allowed {
		t.Fatal("allowed before RetryAfter")
	}
	c.Advance(time.Nanosecond)
	if !allow(t, m, "slow", slow).Allowed {
		t.Fatal("denied at RetryAfter")
	}
}

func TestMemoryConcurrentExactBurst(t *testing.T) {
	m, _ := newTestMemory() // the clock never moves: one instant
	l := Limit{Rate: 10, Period: time.Minute, Burst: 25}
	const workers, perWorker = 64, 50
	keys := []string{"x", "y", "z"}
	var allowed [3]atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for w := range workers {
		wg.Go(func() {
			<-start
			for i := range perWorker {
				k := (w + i) % len(keys)
				r, err := m.Allow(context.Background(), keys[k], l)
				if err != nil {
					t.Error(err)
					return
				}
				if r.Allowed {
					allowed[k].Add(1)
				} else if r.RetryAfter < time.Second {
					t.Errorf("denied with RetryAfter %v", r.RetryAfter)
				}
			}
		})
	}
	close(start)
	wg.Wait()
	for i, k := range keys {
		if got := allowed[i].Load(); got != int64(l.Burst) {
			t.Errorf("key %s: %d allowed out of %d calls at one instant, want exactly %d", k, got, workers*perWorker/len(keys), l.Burst)
		}
	}
}

func TestMemoryLapsedBucketIsFull(t *testing.T) {
	m, c := newTestMemory()
	l := Limit{Rate: 1, Period: time.Second, Burst: 1}
	allow(t, m, "k1", l)
	if allow(t, m, "k1", l).Allowed {
		t.Fatal("second event within the period allowed")
	}
	c.Advance(2 * time.Second)
	if !allow(t, m, "k1", l).Allowed {
		t.Fatal("lapsed bucket not treated as full")
	}
}

// TestMemoryHeapBounded feeds 10^6 distinct long keys, each holding state
// for an hour, and measures the heap after a collection: it must stay
// within a bound set by DefaultMemoryKeys, not grow with the keys. (The
// unbounded map kept every key string: over 300 MiB here.)
func TestMemoryHeapBounded(t *testing.T) {
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	m := NewMemory()
	l := Limit{Rate: 1, Period: time.Hour}
	pad := strings.Repeat("x", 256) // a long Basic user name, say
	buf := make([]byte, 0, 300)
	for i := range 1_000_000 {
		buf = strconv.AppendInt(append(buf[:0], pad...), int64(i), 10)
		if _, err := m.Allow(context.Background(), string(buf), l); err != nil {
			t.Fatal(err)
		}
	}
	grew := int64(heap()) - int64(before)
	const bound = 24 << 20
	t.Logf("heap grew by %.1f MiB for 10^6 keys (%d held)", float64(grew)/(1<<20), m.len())
	if grew > bound {
		t.Fatalf("heap grew by %d bytes for 10^6 keys, want at most %d", grew, bound)
	}
	if n := m.len(); n > DefaultMemoryKeys+memoryShards {
		t.Fatalf("%d keys held, want at most about %d", n, DefaultMemoryKeys)
	}
	runtime.KeepAlive(m)
}

// TestMemoryEvictsLeastRecentlyUsed fills a small limiter past its bound:
// a key in use keeps its state, the oldest idle ones go.
func TestMemoryEvictsLeastRecentlyUsed(t *testing.T) {
	c := newFakeClock()
	m := NewMemorySize(memoryShards * 4)
	m.now = c.Now
	l := Limit{Rate: 1, Period: time.Hour}
	allow(t, m, "idle", l)
	allow(t, m, "hot", l)
	for i := range 10_000 {
		allow(t, m, fmt.Sprintf("churn%d", i), l)
		if i%3 == 0 && allow(t, m, "hot", l).Allowed {
			t.Fatalf("after %d other keys, the hot key lost its state", i)
		}
	}
	if n := m.len(); n > memoryShards*4 {
		t.Fatalf("%d keys held, want at most %d", n, memoryShards*4)
	}
	if !allow(t, m, "idle", l).Allowed {
		t.Fatal("the least recently used key was not evicted")
	}
}

// TestMemoryMatchesRedisRate replays random traffic against a port of
// redis_rate's allowN Lua script (float seconds) and expects the same
// decisions and retry times. Times and intervals are multiples of 1/8 s so
// both number systems are exact and boundary cases do occur.
func TestMemoryMatchesRedisRate(t *testing.T) {
	limits := []Limit{
		{Rate: 4, Period: time.Second, Burst: 1},
		{Rate: 4, Period: time.Second, Burst: 3},
		{Rate: 2, Period: time.Second, Burst: 5},
		{Rate: 1, Period: 2 * time.Second, Burst: 2},
	}
	for _, l := range limits {
		t.Run(l.String(), func(t *testing.T) {
			m, c := newTestMemory()
			ref := newRefGCRA()
			rng := rand.New(rand.NewPCG(1, uint64(l.Rate*100+l.Burst)))
			elapsed := 0.0
			for i := range 5000 {
				if step := rng.IntN(6); step > 0 && rng.IntN(2) == 0 {
					c.Advance(time.Duration(step) * 125 * time.Millisecond)
					elapsed += float64(step) * 0.125
				}
				got := allow(t, m, "k", l)
				wantAllowed, wantRetry := ref.allow(elapsed, l)
				if got.Allowed != wantAllowed {
					t.Fatalf("step %d at %.3fs: allowed = %v, redis_rate says %v", i, elapsed, got.Allowed, wantAllowed)
				}
				if !wantAllowed {
					want := time.Duration(wantRetry * float64(time.Second))
					want = max(want, time.Second)
					if got.RetryAfter != want {
						t.Fatalf("step %d: RetryAfter = %v, redis_rate says %v", i, got.RetryAfter, want)
					}
				}
			}
		})
	}
}

// refGCRA is redis_rate's allowN script with cost 1, in float seconds, for
// one key; the key's expiry is modelled too.
type refGCRA struct {
	tat    float64
	expire float64 // when the key disappears; -inf: absent
}

func newRefGCRA() *refGCRA { return &refGCRA{expire: math.Inf(-1)} }

func (r *refGCRA) allow(now float64, l Limit) (bool, float64) {
	burst := float64(l.Burst)
	if burst <= 0 {
		burst = float64(l.Rate)
	}
	emission := l.Period.Seconds() / float64(l.Rate)
	increment := emission
	burstOffset := emission * burst
	tat := now
	if now < r.expire {
		tat = r.tat
	}
	tat = math.Max(tat, now)
	newTAT := tat + increment
	allowAt := newTAT - burstOffset
	diff := now - allowAt
	if diff/emission < 0 {
		return false, -diff
	}
	if resetAfter := newTAT - now; resetAfter > 0 {
		r.tat = newTAT
		r.expire = now + math.Ceil(resetAfter)
	}
	return true, -1
}

func BenchmarkMemoryAllow(b *testing.B) {
	m := NewMemory()
	l := Limit{Rate: 1000000, Period: time.Second, Burst: 1000000}
	var n atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		i := n.Add(1) << 32
		for pb.Next() {
			i++
			_, _ = m.Allow(context.Background(), fmt.Sprint(i%1024), l)
		}
	})
}
