package ratelimit

import (
	"context"
	"hash/maphash"
	"math"
	"slices"
	"sync"
	"time"
)

// DefaultMemoryKeys is how many rate keys a [Memory] made by [NewMemory]
// holds: about 15 MiB, whatever the keys' length, since keys are kept as
// 128-bit hashes. It holds half as many lockout keys besides.
const DefaultMemoryKeys = 1 << 17

// Memory is a Limiter kept in this process's memory, for the embedded mode
// (no Redis). Its decisions follow redis_rate's GCRA exactly: Rate events per
// Period, bursts of up to Burst (Rate when unset), one theoretical arrival
// time (TAT) per key, shared by every Limit used with that key. Times are
// integer nanoseconds where redis_rate uses float seconds, which differs only
// in sub-microsecond rounding. It also keeps the failure counters of
// [Lockouts].
//
// In embedded mode limits are per process: two Caddy processes (or a restart)
// each start with full buckets. That is fine for the single-node deployments
// the embedded store targets; several instances need the Redis limiter.
//
// Keys are attacker-chosen strings (a login of up to the body limit), so
// Memory keeps only a 128-bit keyed hash of each (two maphash sums under
// random seeds: an attacker cannot aim two keys at one slot), and holds at
// most a fixed number of keys: when full, the least recently used key goes.
// A key is "used" when it is charged or read, so a key under attack stays;
// the keys that go are those nobody asked about for longest. Memory
// therefore stays within a fixed bound however many distinct keys arrive.
// An entry whose state has lapsed (a full bucket, failures past their reset
// time) counts as absent and is reused in place. Memory runs no goroutine
// and needs no Close.
//
// Rate buckets and lockout state live in separate tables, each bounded:
// rate keys cost an attacker nothing, so in one table a flood of them
// would evict a victim's failure count or lock. The lockout table evicts
// only entries holding neither a lock nor an attempt in flight (see
// insertLock), and refuses new attempts when it holds nothing else.
type Memory struct {
	seed0, seed1 maphash.Seed
	rates, locks memTable
	// now is the clock; tests replace it.
	now func() time.Time
}

const memoryShards = 64

// memTable is one bounded table, sharded by key hash.
type memTable [memoryShards]memoryShard

func (t *memTable) shard(k memKey) *memoryShard { return &t[k[0]%memoryShards] }

func (t *memTable) init(per int) {
	for i := range t {
		t[i] = memoryShard{idx: make(map[memKey]int32), head: -1, tail: -1, max: per}
	}
}

// memKey is a key's 128-bit hash.
type memKey [2]uint64

// memEntry is one key's state, a node of its shard's LRU list.
type memEntry struct {
	key        memKey
	prev, next int32
	// live is when the state lapses (GCRA: the TAT; failures: the reset
	// time, or the lock's end if later). At or after it the key is absent.
	live int64
	// a is GCRA's TAT, or the end of a lock; n counts failures, p the
	// attempts in flight since pt.
	a, n, p, pt int64
}

type memoryShard struct {
	mu      sync.Mutex
	idx     map[memKey]int32
	entries []memEntry
	// head is the most recently used entry, tail the least; -1 when empty.
	head, tail int32
	max        int
	_          [32]byte // keep shards on separate cache lines
}

// NewMemory returns an empty in-process limiter holding at most
// DefaultMemoryKeys keys.
func NewMemory() *Memory { return NewMemorySize(DefaultMemoryKeys) }

// NewMemorySize returns an empty in-process limiter holding at most about
// keys rate keys (rounded up to a multiple of its 64 shards) and half as
// many lockout keys.
func NewMemorySize(keys int) *Memory {
	per := max(1, (keys+memoryShards-1)/memoryShards)
	m := &Memory{seed0: maphash.MakeSeed(), seed1: maphash.MakeSeed(), now: time.Now}
	m.rates.init(per)
	m.locks.init(max(1, per/2))
	return m
}

func (m *Memory) hash(key string) memKey {
	return memKey{maphash.String(m.seed0, key), maphash.String(m.seed1, key)}
}

// Allow implements Limiter.
func (m *Memory) Allow(ctx context.Context, key string, l Limit) (Result, error) {
	return m.AllowAll(ctx, Check{Key: key, Limit: l})
}

// AllowAll implements Limiter. The shards of every key are locked together
// (in shard order, so callers cannot deadlock), making the all-or-nothing
// charge atomic as the Redis script's is.
func (m *Memory) AllowAll(_ context.Context, checks ...Check) (Result, error) {
	type step struct {
		k                     memKey
		emission, burstOffset int64
		newTAT                int64
	}
	// Callers pass one or two checks: keep them off the heap.
	var stepBuf [4]step
	var keyBuf [4]memKey
	steps, keys := stepBuf[:0], keyBuf[:0]
	for _, c := range checks {
		l := c.Limit
		if l.IsZero() {
			continue
		}
		burst := l.Burst
		if burst <= 0 {
			burst = l.Rate
		}
		// GCRA, as redis_rate's allowN script with cost 1.
		emission := max(int64(l.Period)/int64(l.Rate), 1)
		k := m.hash(c.Key)
		steps = append(steps, step{k: k, emission: emission, burstOffset: satMul(emission, int64(burst))})
		keys = append(keys, k)
	}
	if len(steps) == 0 {
		return Result{Allowed: true}, nil
	}
	defer m.rates.lockShards(keys)()
	now := m.now().UnixNano()
	var retry int64 = -1
	for i := range steps {
		st := &steps[i]
		tat := now
		if e := m.rates.shard(st.k).find(st.k, now); e != nil {
			tat = max(e.a, now)
		}
		st.newTAT = tat + st.emission
		if diff := now - (st.newTAT - st.burstOffset); diff < 0 {
			retry = max(retry, -diff)
		}
	}
	if retry >= 0 {
		// Denied: like redis_rate, leave every bucket as it is.
		return Result{Allowed: false, RetryAfter: max(time.Duration(retry), time.Second)}, nil
	}
	for i := range steps {
		// Looked up again: an insert for an earlier step may have evicted
		// or moved this step's entry.
		st := &steps[i]
		sh := m.rates.shard(st.k)
		e := sh.find(st.k, now)
		if e == nil {
			e = sh.insert(st.k)
		}
		e.a, e.live = st.newTAT, st.newTAT
	}
	return Result{Allowed: true}, nil
}

// lockShards locks the shards of keys in shard order (so concurrent
// callers cannot deadlock) and returns the unlock.
func (t *memTable) lockShards(keys []memKey) func() {
	var buf [4]int
	idx := buf[:0]
	for _, k := range keys {
		idx = append(idx, int(k[0]%memoryShards))
	}
	slices.Sort(idx)
	idx = slices.Compact(idx)
	for _, i := range idx {
		t[i].mu.Lock()
	}
	return func() {
		for _, i := range idx {
			t[i].mu.Unlock()
		}
	}
}

// find returns k's live entry, marked most recently used, or nil. The
// caller holds sh.mu.
func (sh *memoryShard) find(k memKey, now int64) *memEntry {
	i, ok := sh.idx[k]
	if !ok {
		return nil
	}
	sh.touch(i)
	e := &sh.entries[i]
	if e.live <= now {
		return nil
	}
	return e
}

// insert returns an entry for k, most recently used: k's own lapsed
// entry, a new one while the shard has room, else the least recently used
// one, evicted. The caller holds sh.mu and sets the state.
func (sh *memoryShard) insert(k memKey) *memEntry {
	if i, ok := sh.idx[k]; ok {
		sh.touch(i)
		return &sh.entries[i]
	}
	var i int32
	if len(sh.entries) < sh.max {
		i = int32(len(sh.entries))
		sh.entries = append(sh.entries, memEntry{prev: -1, next: -1})
		sh.pushFront(i)
	} else {
		i = sh.tail
		delete(sh.idx, sh.entries[i].key)
		sh.touch(i)
	}
	sh.idx[k] = i
	sh.entries[i].key = k
	return &sh.entries[i]
}

// touch moves entry i to the front of the LRU list.
func (sh *memoryShard) touch(i int32) {
	if sh.head == i {
		return
	}
	e := &sh.entries[i]
	// Unlink (i is not the head, so it has a prev).
	sh.entries[e.prev].next = e.next
	if e.next >= 0 {
		sh.entries[e.next].prev = e.prev
	} else {
		sh.tail = e.prev
	}
	sh.pushFront(i)
}

// pushFront links an unlinked entry i in as the head.
func (sh *memoryShard) pushFront(i int32) {
	e := &sh.entries[i]
	e.prev, e.next = -1, sh.head
	if sh.head >= 0 {
		sh.entries[sh.head].prev = i
	}
	sh.head = i
	if sh.tail < 0 {
		sh.tail = i
	}
}

// len returns how many rate keys m holds, lapsed or not (for tests).
func (m *Memory) len() int { return m.rates.len() }

func (t *memTable) len() int {
	n := 0
	for i := range t {
		sh := &t[i]
		sh.mu.Lock()
		n += len(sh.idx)
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
