package password

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	xargon2 "golang.org/x/crypto/argon2"

	"github.com/caddyregister/caddyregister/caddyregister/password/internal/argon2"
)

// TestIDKeyMatchesXCrypto checks the pooled hashing against
// golang.org/x/crypto/argon2.IDKey for random inputs and parameters; the
// internal argon2 package has the exhaustive version of this test.
func TestIDKeyMatchesXCrypto(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	keyLens := []uint32{16, 32, 33, 64, 65, 128}
	for i := range 60 {
		p := argon2Params{
			time:    1 + r.Uint32N(3),
			threads: uint8(1 + r.IntN(4)),
			keyLen:  keyLens[r.IntN(len(keyLens))],
		}
		// A handful of sizes (odd ones included), so that buffers are
		// reused across hashes with different contents and parameters.
		p.memory = []uint32{8, 13, 33, 64, 257, 1023}[r.IntN(6)] * uint32(p.threads)
		pw := make([]byte, r.IntN(64))
		salt := make([]byte, 8+r.IntN(56))
		for _, b := range [][]byte{pw, salt} {
			for j := range b {
				b[j] = byte(r.Uint32())
			}
		}
		want := xargon2.IDKey(pw, salt, p.time, p.memory, p.threads, p.keyLen)
		if got := idKey(pw, salt, p); !bytes.Equal(got, want) {
			t.Fatalf("case %d %+v: got %x, want %x", i, p, got, want)
		}
	}
}

// TestArgon2idHashMatchesXCrypto checks whole encoded hashes: the key in a
// hash from Argon2id.Hash is x/crypto's IDKey of the password and the
// encoded salt and parameters, and Verify accepts hashes whose key x/crypto
// computed.
func TestArgon2idHashMatchesXCrypto(t *testing.T) {
	pw := []byte("correct horse battery staple")
	for _, a := range []Argon2id{
		{MemoryKiB: 64, Time: 1, Threads: 1},
		{MemoryKiB: 1001, Time: 3, Threads: 3, SaltLen: 8, KeyLen: 17},
		{MemoryKiB: 4096, Time: 2, Threads: 4, SaltLen: 64, KeyLen: 128},
		DefaultArgon2id(),
	} {
		encoded, err := a.Hash(pw)
		if err != nil {
			t.Fatal(err)
		}
		h, err := parseArgon2id(encoded)
		if err != nil {
			t.Fatal(err)
		}
		p := h.params
		if want := xargon2.IDKey(pw, h.salt, p.time, p.memory, p.threads, p.keyLen); !bytes.Equal(h.key, want) {
			t.Errorf("%s: key %x, x/crypto computes %x", encoded, h.key, want)
		}
		h.key = xargon2.IDKey([]byte("another password"), h.salt, p.time, p.memory, p.threads, p.keyLen)
		if ok, err := Verify(h.String(), []byte("another password")); !ok || err != nil {
			t.Errorf("Verify of x/crypto hash %s = %v, %v; want true, nil", h, ok, err)
		}
		if ok, err := Verify(h.String(), pw); ok || err != nil {
			t.Errorf("Verify of x/crypto hash %s with wrong password = %v, %v; want false, nil", h, ok, err)
		}
	}
}

// TestIDKeyConcurrent hashes with several parameter sets from many
// goroutines at once (run it with -race): buffers must never be shared by
// two hashes.
func TestIDKeyConcurrent(t *testing.T) {
	sets := []argon2Params{
		{memory: 256, time: 1, threads: 1, keyLen: 32},
		{memory: 256, time: 2, threads: 2, keyLen: 32}, // same size, other lanes
		{memory: 515, time: 1, threads: 4, keyLen: 64},
	}
	type job struct {
		p        argon2Params
		pw, salt []byte
		want     []byte
	}
	var jobs []job
	for i := range 24 {
		p := sets[i%len(sets)]
		pw, salt := fmt.Appendf(nil, "password %d", i), fmt.Appendf(nil, "salt for %d", i)
		jobs = append(jobs, job{p, pw, salt, xargon2.IDKey(pw, salt, p.time, p.memory, p.threads, p.keyLen)})
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for k := range 3 * len(jobs) {
				j := jobs[(g+k)%len(jobs)]
				if got := idKey(j.pw, j.salt, j.p); !bytes.Equal(got, j.want) {
					t.Errorf("%+v %q: got %x, want %x", j.p, j.pw, got, j.want)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestScratchWipedWhenIdle: a buffer that no hash takes within wipeDelay
// is wiped, and only wiped buffers are pooled.
func TestScratchWipedWhenIdle(t *testing.T) {
	p := argon2Params{memory: 68, time: 1, threads: 1, keyLen: 32}
	e := scratchFor(argon2.Blocks(p.memory, p.threads))
	idKey([]byte("pw"), []byte("saltsalt"), p)
	e.mu.Lock()
	if len(e.dirty) != 1 || e.dirty[0].s.IsZero() {
		t.Errorf("after a hash: %d dirty buffers, want 1 holding the hash's memory", len(e.dirty))
	}
	s := e.dirty[0].s
	e.mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for {
		e.mu.Lock()
		n, armed := len(e.dirty), e.armed
		e.mu.Unlock()
		if n == 0 && !armed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d buffers still dirty 5s after the last hash (wipeDelay %s)", n, wipeDelay)
		}
		time.Sleep(wipeDelay / 2)
	}
	if !s.IsZero() {
		t.Fatal("the idle buffer was not wiped")
	}
	got := e.pool.Get().(*argon2.Scratch)
	if !got.IsZero() || got.Len() != 68 {
		t.Fatalf("pooled scratch: zero %v, len %d; want zero, 68", got.IsZero(), got.Len())
	}
	e.pool.Put(got)
}

// TestDirtyScratchReused: a hash right after another takes the buffer the
// first left, unwiped, and still computes upstream's result.
func TestDirtyScratchReused(t *testing.T) {
	p := argon2Params{memory: 72, time: 1, threads: 1, keyLen: 32}
	e := scratchFor(argon2.Blocks(p.memory, p.threads))
	s := e.get()
	argon2.IDKeyInto(s, []byte("first"), []byte("saltsalt"), p.time, p.memory, p.threads, p.keyLen)
	e.put(s)
	if got := e.get(); got != s || got.IsZero() {
		t.Fatalf("get after put: same buffer %v, zero %v; want the dirty buffer", got == s, got.IsZero())
	}
	e.put(s)
	want := xargon2.IDKey([]byte("second"), []byte("saltsalt"), p.time, p.memory, p.threads, p.keyLen)
	if got := idKey([]byte("second"), []byte("saltsalt"), p); !bytes.Equal(got, want) {
		t.Fatalf("on a dirty buffer: %x, want %x", got, want)
	}
}

// TestScratchSweepKeepsRecent: the sweep wipes only what has been idle
// wipeDelay, leaves newer buffers dirty and comes back for them.
func TestScratchSweepKeepsRecent(t *testing.T) {
	p := argon2Params{memory: 76, time: 1, threads: 1, keyLen: 32}
	e := scratchFor(argon2.Blocks(p.memory, p.threads))
	old, recent := argon2.NewScratch(p.memory, 1), argon2.NewScratch(p.memory, 1)
	for _, s := range []*argon2.Scratch{old, recent} {
		argon2.IDKeyInto(s, []byte("pw"), []byte("saltsalt"), p.time, p.memory, p.threads, p.keyLen)
	}
	e.mu.Lock()
	now := time.Now()
	e.dirty = append(e.dirty, dirtyScratch{s: old, used: now.Add(-wipeDelay)}, dirtyScratch{s: recent, used: now.Add(time.Hour)})
	e.armed = true
	if e.timer == nil {
		e.timer = time.AfterFunc(time.Hour, e.sweep)
	}
	e.mu.Unlock()
	e.sweep()
	e.mu.Lock()
	dirty, armed := len(e.dirty), e.armed
	e.timer.Stop()
	e.dirty, e.armed = nil, false
	e.mu.Unlock()
	if !old.IsZero() || recent.IsZero() {
		t.Errorf("after sweep: old wiped %v, recent wiped %v; want true, false", old.IsZero(), recent.IsZero())
	}
	if dirty != 1 || !armed {
		t.Errorf("after sweep: %d dirty, armed %v; want 1, true", dirty, armed)
	}
}

func TestScratchPoolsBounded(t *testing.T) {
	for m := uint32(8); m < 8+4*(maxScratchSizes+4); m += 4 {
		p := argon2Params{memory: m, time: 1, threads: 1, keyLen: 16}
		want := xargon2.IDKey([]byte("pw"), []byte("saltsalt"), p.time, p.memory, p.threads, p.keyLen)
		if got := idKey([]byte("pw"), []byte("saltsalt"), p); !bytes.Equal(got, want) {
			t.Fatalf("memory %d: got %x, want %x", m, got, want)
		}
	}
	scratchPools.mu.Lock()
	n := len(scratchPools.pools)
	_, newest := scratchPools.pools[argon2.Blocks(8+4*(maxScratchSizes+3), 1)]
	scratchPools.mu.Unlock()
	if n > maxScratchSizes {
		t.Errorf("%d scratch pools, want at most %d", n, maxScratchSizes)
	}
	if !newest {
		t.Error("the most recently used size has no pool")
	}
	first := scratchFor(8)
	if first == scratchFor(12) || first != scratchFor(8) {
		t.Error("pools are not per size")
	}
}

// BenchmarkArgon2idKey compares the pooled key derivation with
// x/crypto's, which allocates the whole memory on every call. Run with
// -benchmem: B/op is the difference that matters.
func BenchmarkArgon2idKey(b *testing.B) {
	p := DefaultArgon2id().params()
	pw, salt := []byte("correct horse battery staple"), []byte("0123456789abcdef")
	b.Run("pooled", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				idKey(pw, salt, p)
			}
		})
	})
	b.Run("xcrypto", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				xargon2.IDKey(pw, salt, p.time, p.memory, p.threads, p.keyLen)
			}
		})
	})
}
