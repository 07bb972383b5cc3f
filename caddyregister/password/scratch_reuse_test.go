//go:build !race

// Under -race sync.Pool drops objects at random, so a buffer that went
// through the pool may be allocated again; this file is left out of race
// builds like alloc_test.go, and make test runs it without -race.

package password

import (
	"context"
	"sync"
	"testing"

	"github.com/caddyregister/caddyregister/caddyregister/password/internal/argon2"
)

// TestArgon2idScratchReused counts the argon2 block memory hashing
// allocates. On Linux it is mapped off the Go heap, so the heap
// statistics of TestArgon2idHashAllocations cannot see it: a hash that
// allocated its 8 MiB afresh would pass that test.
func TestArgon2idScratchReused(t *testing.T) {
	a := Argon2id{MemoryKiB: 8200, Time: 1, Threads: 1} // a size no other test uses
	pw := []byte("correct horse battery staple")
	before := argon2.Allocations()
	if _, err := a.Hash(pw); err != nil { // warm the pool
		t.Fatal(err)
	}
	if n := argon2.Allocations() - before; n > 1 {
		t.Fatalf("one hash allocated block memory %d times", n)
	}

	// One after another: every hash reuses the one buffer. (One spare
	// allocation is tolerated: a garbage collection may empty the pool
	// while the buffer waits there.)
	const runs = 20
	before = argon2.Allocations()
	for range runs {
		if _, err := a.Hash(pw); err != nil {
			t.Fatal(err)
		}
	}
	if n := argon2.Allocations() - before; n > 1 {
		t.Errorf("%d sequential hashes allocated block memory %d times, want at most 1", runs, n)
	}

	// Through a Pool of 2 slots, from 8 goroutines: no more buffers than
	// hashes that ran at once.
	p := NewPool(PoolConfig{Size: 2})
	before = argon2.Allocations()
	var wg sync.WaitGroup
	errs := make(chan error, 8*5)
	for range 8 {
		wg.Go(func() {
			for range 5 {
				_, err := p.Hash(context.Background(), a, pw)
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := argon2.Allocations() - before; n > 2 {
		t.Errorf("40 hashes through a pool of 2 allocated block memory %d times, want at most 2", n)
	}
}
