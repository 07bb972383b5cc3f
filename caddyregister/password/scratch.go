package password

import (
	"sync"

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
// Secrets: a buffer is wiped before it goes back to the pool, so idle memory
// holds nothing derived from a password. Wiping 19 MiB costs about 0.6 ms,
// a few percent of the hash. Correctness does not depend on it: the argon2
// code writes every block before reading it, so a dirty buffer would give
// the same result.

// ScratchInHeap reports whether argon2id's working memory is part of the Go
// heap, and so counts against Go's memory limit. Where it is not (Linux),
// a memory limit meant to bound the rest of the process need not leave
// room for it.
const ScratchInHeap = !argon2.OffHeap

// maxScratchSizes caps the number of distinct memory sizes with a pool.
const maxScratchSizes = 8

var scratchPools struct {
	mu    sync.Mutex
	uses  uint64                   // counts lookups, for LRU eviction
	pools map[uint32]*scratchEntry // by argon2.Blocks
}

type scratchEntry struct {
	pool    *sync.Pool
	lastUse uint64
}

// scratchPool returns the pool for blocks-sized scratch memory.
func scratchPool(blocks uint32) *sync.Pool {
	scratchPools.mu.Lock()
	defer scratchPools.mu.Unlock()
	scratchPools.uses++
	if e, ok := scratchPools.pools[blocks]; ok {
		e.lastUse = scratchPools.uses
		return e.pool
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
		delete(scratchPools.pools, lru)
	}
	// A block count is a valid memory size for one thread that rounds to
	// itself (a multiple of 4, at least 8), so this allocates exactly blocks.
	p := &sync.Pool{New: func() any { return argon2.NewScratch(blocks, 1) }}
	scratchPools.pools[blocks] = &scratchEntry{pool: p, lastUse: scratchPools.uses}
	return p
}

// idKey is argon2.IDKey with the block memory taken from, and wiped and
// returned to, the scratch pool for its size.
func idKey(pw, salt []byte, p argon2Params) []byte {
	pool := scratchPool(argon2.Blocks(p.memory, p.threads))
	s := pool.Get().(*argon2.Scratch)
	key := argon2.IDKeyInto(s, pw, salt, p.time, p.memory, p.threads, p.keyLen)
	putScratch(pool, s)
	return key
}

// putScratch wipes s and returns it to pool. If hashing panics, s is simply
// not returned and is collected like any other garbage.
func putScratch(pool *sync.Pool, s *argon2.Scratch) {
	s.Wipe()
	pool.Put(s)
}
