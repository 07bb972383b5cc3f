package password

import (
	"sync"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/password/internal/argon2"
)

// Argon2id needs its whole memory cost (19 MiB by default) as working
// memory for every hash. Allocating it afresh each time, as
// golang.org/x/crypto/argon2 does, turns a few dozen hashes a second into
// more than a gigabyte a second of garbage: the collector then runs many
// times a second and the heap overshoots. Instead the memory comes from a
// sync.Pool per size, so steady-state hashing allocates only a few small
// objects.
//
// Memory bound: a sync.Pool only ever holds buffers that were in use at the
// same time, so each size pools at most as many buffers as hashes of that
// size once ran concurrently — through a [Pool], at most its Size — and
// whatever sits idle is released over the next two garbage collections
// (which the runtime forces at least every two minutes). Argon2id.Hash and
// Verify called directly, outside a Pool, are bounded only by their callers'
// concurrency, exactly as with per-call allocation. Pools are keyed by block
// count, and at most maxScratchSizes are kept: a new size evicts the least
// recently used one, whose buffers become ordinary garbage. So stored hashes
// with unusual parameters cannot grow the table, nor lock the configured
// size out of it; only rotating through more sizes than that falls back to
// allocating per hash.
//
// On Linux the buffers are mapped outside the Go heap, backed by huge pages
// (see internal/argon2's scratch_linux.go); a collected buffer is unmapped.
//
// Secrets: a buffer holds data derived from the password it last hashed,
// and after a single pass (time=1) its first blocks let a guess be checked
// with a couple of BLAKE2b calls. So no buffer sits idle unwiped for more
// than wipeDelay: a used buffer goes on its size's dirty list, the next hash
// of that size takes it from there (it overwrites every block before
// reading it, so a dirty buffer gives the same result), and a timer wipes
// whatever is still on the list wipeDelay later and only then pools it.
// Under load a buffer passes from hash to hash and is never wiped in
// between, which is the same exposure as a hash in progress; wiping 19 MiB
// after every hash cost about 7% of the hash rate, most of it evicting the
// concurrent hashes' memory from the CPU cache. When hashing stops, every
// buffer is wiped within wipeDelay.

// ScratchInHeap reports whether argon2id's working memory is part of the Go
// heap, and so counts against Go's memory limit. Where it is not (Linux),
// a memory limit meant to bound the rest of the process need not leave
// room for it.
const ScratchInHeap = !argon2.OffHeap

// wipeDelay is the longest a used buffer waits for the next hash before it
// is wiped.
const wipeDelay = 10 * time.Millisecond

// maxScratchSizes caps the number of distinct memory sizes with a pool.
const maxScratchSizes = 8

var scratchPools struct {
	mu    sync.Mutex
	uses  uint64                   // counts lookups, for LRU eviction
	pools map[uint32]*scratchEntry // by argon2.Blocks
}

// scratchEntry is the memory of one size: used buffers not yet wiped, and a
// sync.Pool of wiped ones.
type scratchEntry struct {
	pool    *sync.Pool
	lastUse uint64 // guarded by scratchPools.mu

	mu    sync.Mutex
	dirty []dirtyScratch // oldest first
	timer *time.Timer    // runs sweep; nil until first needed
	armed bool           // timer is pending
}

type dirtyScratch struct {
	s    *argon2.Scratch
	used time.Time
}

// scratchFor returns the entry for blocks-sized scratch memory.
func scratchFor(blocks uint32) *scratchEntry {
	scratchPools.mu.Lock()
	defer scratchPools.mu.Unlock()
	scratchPools.uses++
	if e, ok := scratchPools.pools[blocks]; ok {
		e.lastUse = scratchPools.uses
		return e
	}
	if scratchPools.pools == nil {
		scratchPools.pools = make(map[uint32]*scratchEntry)
	}
	if len(scratchPools.pools) >= maxScratchSizes {
		var lru uint32
		oldest := scratchPools.uses
		for k, e := range scratchPools.pools {
			if e.lastUse < oldest {
				lru, oldest = k, e.lastUse
			}
		}
		// Its dirty buffers are still wiped by its timer, then dropped
		// with its pool.
		delete(scratchPools.pools, lru)
	}
	// A block count is a valid memory size for one thread that rounds to
	// itself (a multiple of 4, at least 8), so this allocates exactly blocks.
	e := &scratchEntry{pool: &sync.Pool{New: func() any { return argon2.NewScratch(blocks, 1) }}, lastUse: scratchPools.uses}
	scratchPools.pools[blocks] = e
	return e
}

// get returns the most recently used dirty buffer (the likeliest to be
// still in cache), or else a wiped one.
func (e *scratchEntry) get() *argon2.Scratch {
	e.mu.Lock()
	if n := len(e.dirty); n > 0 {
		s := e.dirty[n-1].s
		e.dirty[n-1] = dirtyScratch{}
		e.dirty = e.dirty[:n-1]
		e.mu.Unlock()
		return s
	}
	e.mu.Unlock()
	return e.pool.Get().(*argon2.Scratch)
}

// put puts s, just used, on the dirty list and makes sure the sweep will
// see it.
func (e *scratchEntry) put(s *argon2.Scratch) {
	now := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.dirty = append(e.dirty, dirtyScratch{s: s, used: now})
	if e.armed {
		return
	}
	e.armed = true
	if e.timer == nil {
		e.timer = time.AfterFunc(wipeDelay, e.sweep)
	} else {
		e.timer.Reset(wipeDelay)
	}
}

// sweep wipes and pools the buffers idle for wipeDelay, and rearms itself
// for the rest.
func (e *scratchEntry) sweep() {
	now := time.Now()
	e.mu.Lock()
	k := 0
	for k < len(e.dirty) && now.Sub(e.dirty[k].used) >= wipeDelay {
		k++
	}
	idle := make([]*argon2.Scratch, k)
	for i := range k {
		idle[i] = e.dirty[i].s
	}
	e.dirty = append(e.dirty[:0], e.dirty[k:]...)
	clear(e.dirty[len(e.dirty):cap(e.dirty)]) // drop references to moved buffers
	if len(e.dirty) > 0 {
		e.timer.Reset(wipeDelay - now.Sub(e.dirty[0].used))
	} else {
		e.armed = false
	}
	e.mu.Unlock()
	for _, s := range idle {
		s.Wipe()
		e.pool.Put(s)
	}
}

// idKey is argon2.IDKey computed in scratch memory of its size, which goes
// back on the dirty list afterwards. If hashing panics, the buffer is
// simply not returned and is collected like any other garbage.
func idKey(pw, salt []byte, p argon2Params) []byte {
	e := scratchFor(argon2.Blocks(p.memory, p.threads))
	s := e.get()
	key := argon2.IDKeyInto(s, pw, salt, p.time, p.memory, p.threads, p.keyLen)
	e.put(s)
	return key
}
