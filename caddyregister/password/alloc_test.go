//go:build !race

// Allocation counts mean little under -race, where sync.Pool deliberately
// drops objects, so this file is left out of race builds; make test runs it
// in a separate step without -race.

package password

import (
	"runtime"
	"testing"
)

// TestArgon2idHashAllocations checks that steady-state hashing does not
// allocate the block memory.
func TestArgon2idHashAllocations(t *testing.T) {
	a := Argon2id{MemoryKiB: 8192, Time: 1, Threads: 1}
	pw := []byte("correct horse battery staple")
	if _, err := a.Hash(pw); err != nil { // warm the pool
		t.Fatal(err)
	}
	const runs = 5
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		if _, err := a.Hash(pw); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	if perHash := (after.TotalAlloc - before.TotalAlloc) / runs; perHash > 64<<10 {
		t.Errorf("Argon2id.Hash allocated %d bytes per hash, want < 64 KiB (memory is %d KiB)", perHash, a.MemoryKiB)
	}
}
