package ratelimit

import (
	"context"
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Memory is a Limiter kept in this process's memory, for the embedded mode
// (no Redis). Its decisions follow redis_rate's GCRA exactly: Rate events per
// Period, bursts of up to Burst (Rate when unset), one theoretical arrival
// time (TAT) per key, shared by every Limit used with that key. Times are
// integer nanoseconds where redis_rate uses float seconds, which differs only
// in sub-microsecond rounding.
//
// In embedded mode limits are per process: two Caddy processes (or a restart)
// each start with full buckets. That is fine for the single-node deployments
// the embedded store targets; several instances need the Redis limiter.
//
// A bucket whose TAT is not in the future is full again and holds no state,
// so it is dropped: lazily (a dead bucket counts as absent and is
// overwritten when its key is next seen), and by sweeps. Buckets are split
// over 64 mutex-guarded shards; each time a shard has served as many calls
// as it holds buckets (at least 64), the caller sweeps the next shard in
// round-robin order after releasing its own lock. Sweeps therefore cost O(1)
// per call amortized, and every shard keeps being swept as long as any key
// sees traffic. Memory runs no goroutine and needs no Close.
type Memory struct {
	seed   maphash.Seed
	shards [memoryShards]memoryShard
	// sweepNext picks the next shard to sweep, round-robin.
	sweepNext atomic.Uint32
	// now is the clock; tests replace it.
	now func() time.Time
}

const (
	memoryShards = 64
	// minSweepEvery is the fewest calls between two sweeps of a shard, so
	// small shards are not rescanned on every call.
	minSweepEvery = 64
)

type memoryShard struct {
	mu sync.Mutex
	// tat is each key's theoretical arrival time, in Unix nanoseconds.
	tat map[string]int64
	// calls served since this shard last triggered a sweep.
	calls int
	_     [40]byte // keep shards on separate cache lines
}

// NewMemory returns an empty in-process limiter.
func NewMemory() *Memory {
	m := &Memory{seed: maphash.MakeSeed(), now: time.Now}
	for i := range m.shards {
		m.shards[i].tat = make(map[string]int64)
	}
	return m
}

// Allow implements Limiter.
func (m *Memory) Allow(_ context.Context, key string, l Limit) (Result, error) {
	if l.IsZero() {
		return Result{Allowed: true}, nil
	}
	burst := l.Burst
	if burst <= 0 {
		burst = l.Rate
	}
	// GCRA, as redis_rate's allowN script with cost 1.
	emission := int64(l.Period) / int64(l.Rate)
	if emission <= 0 {
		emission = 1
	}
	burstOffset := satMul(emission, int64(burst))

	sh := &m.shards[maphash.String(m.seed, key)%memoryShards]
	sh.mu.Lock()
	now := m.now().UnixNano()
	res := sh.allow(key, now, emission, burstOffset)
	sh.calls++
	sweep := sh.calls >= max(minSweepEvery, len(sh.tat))
	if sweep {
		sh.calls = 0
	}
	sh.mu.Unlock()

	if sweep {
		m.sweepOne(now)
	}
	return res, nil
}

// allow is one GCRA step for key at now. The caller holds sh.mu.
func (sh *memoryShard) allow(key string, now, emission, burstOffset int64) Result {
	tat, ok := sh.tat[key]
	if !ok || tat < now { // absent or dead: a full bucket
		tat = now
	}
	newTAT := tat + emission
	allowAt := newTAT - burstOffset
	if diff := now - allowAt; diff < 0 {
		// Denied: like redis_rate, leave the bucket as it is. (A denial
		// implies a stored TAT in the future, so there is nothing to drop.)
		retry := time.Duration(-diff)
		if retry < time.Second {
			retry = time.Second
		}
		return Result{Allowed: false, RetryAfter: retry}
	}
	sh.tat[key] = newTAT
	return Result{Allowed: true}
}

// sweepOne drops the dead buckets of the next shard in round-robin order.
// The caller holds no shard lock.
func (m *Memory) sweepOne(now int64) {
	sh := &m.shards[m.sweepNext.Add(1)%memoryShards]
	sh.mu.Lock()
	for k, tat := range sh.tat {
		if tat <= now {
			delete(sh.tat, k)
		}
	}
	sh.mu.Unlock()
}

// len returns how many buckets m holds (for tests).
func (m *Memory) len() int {
	n := 0
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		n += len(sh.tat)
		sh.mu.Unlock()
	}
	return n
}

// satMul returns a*b for positive a, b, saturating at a quarter of MaxInt64
// so that TAT arithmetic on Unix nanoseconds cannot overflow.
func satMul(a, b int64) int64 {
	const limit = math.MaxInt64 / 4
	if a != 0 && b > limit/a {
		return limit
	}
	return a * b
}

var _ Limiter = (*Memory)(nil)
