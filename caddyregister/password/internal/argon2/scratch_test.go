// caddyregister: tests for the reusable-memory additions, checking them
// against golang.org/x/crypto/argon2 itself.

package argon2

import (
	"bytes"
	"encoding/hex"
	"math/rand/v2"
	"runtime"
	"testing"

	xargon2 "golang.org/x/crypto/argon2"
)

type params struct {
	time, memory uint32
	threads      uint8
	keyLen       uint32
}

// randomParams covers odd memory sizes (including ones below the 8 KiB per
// lane minimum, which upstream rounds up), 1–4 lanes, 1–4 passes and key
// lengths on both sides of BLAKE2b's 64-byte output.
func randomParams(r *rand.Rand) params {
	keyLens := []uint32{4, 16, 31, 32, 33, 63, 64, 65, 100, 128, 129, 256}
	p := params{
		time:    1 + r.Uint32N(4),
		threads: uint8(1 + r.IntN(4)),
		keyLen:  keyLens[r.IntN(len(keyLens))],
	}
	switch r.IntN(4) {
	case 0:
		p.memory = 1 + r.Uint32N(40) // around and below the minimum
	case 1:
		p.memory = 8*uint32(p.threads) + r.Uint32N(16)
	default:
		p.memory = 1 + r.Uint32N(2048)
	}
	if r.IntN(8) == 0 {
		p.keyLen = 1 + r.Uint32N(300)
	}
	return p
}

func randomBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// dirty fills s with garbage, so that any block read before being written
// would change the result.
func dirty(r *rand.Rand, s *Scratch) {
	for i := range s.b {
		for j := range s.b[i] {
			s.b[i][j] = r.Uint64()
		}
	}
}

// TestIDKeyIntoMatchesUpstream is the correctness proof for the changes:
// for many random inputs and parameter sets, IDKeyInto gives exactly
// x/crypto's IDKey, with fresh, dirty, reused (grown and shrunk) and nil
// scratch memory, on both the SSE4 and the generic code paths.
func TestIDKeyIntoMatchesUpstream(t *testing.T) {
	n := 300
	if testing.Short() {
		n = 40
	}
	defer func(sse4 bool) { useSSE4 = sse4 }(useSSE4)
	impls := []bool{false}
	if useSSE4 {
		impls = append(impls, true)
	}
	for _, sse4 := range impls {
		useSSE4 = sse4
		r := rand.New(rand.NewPCG(1, uint64(n)))
		reused := new(Scratch)
		for i := range n {
			p := randomParams(r)
			pw := randomBytes(r, r.IntN(80))
			salt := randomBytes(r, r.IntN(70))
			want := xargon2.IDKey(pw, salt, p.time, p.memory, p.threads, p.keyLen)

			check := func(what string, got []byte) {
				t.Helper()
				if !bytes.Equal(got, want) {
					t.Fatalf("sse4=%v case %d %+v, %s scratch: got %s, want %s",
						sse4, i, p, what, hex.EncodeToString(got), hex.EncodeToString(want))
				}
			}
			check("nil", IDKeyInto(nil, pw, salt, p.time, p.memory, p.threads, p.keyLen))
			fresh := NewScratch(p.memory, p.threads)
			if got, want := uint32(fresh.Len()), Blocks(p.memory, p.threads); got != want {
				t.Fatalf("NewScratch(%d, %d).Len() = %d, want %d", p.memory, p.threads, got, want)
			}
			check("fresh", IDKeyInto(fresh, pw, salt, p.time, p.memory, p.threads, p.keyLen))
			// fresh now holds this hash's memory: hashing again in it is
			// the "previous hash left its state behind" case.
			check("used", IDKeyInto(fresh, pw, salt, p.time, p.memory, p.threads, p.keyLen))
			dirty(r, fresh)
			check("dirty", IDKeyInto(fresh, pw, salt, p.time, p.memory, p.threads, p.keyLen))
			// reused keeps its largest size, so later smaller hashes run in
			// a prefix of memory left dirty by earlier, larger ones.
			check("reused", IDKeyInto(reused, pw, salt, p.time, p.memory, p.threads, p.keyLen))
		}
	}
}

// TestModesWithDirtyScratch covers all three modes on dirty memory with the
// RFC 9106 section 5 inputs (secret and associated data included; TestArgon2
// checks fresh memory against the RFC's tags) and, for argon2i, random
// inputs against upstream Key.
func TestModesWithDirtyScratch(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	s := NewScratch(64, 4)
	for _, mode := range []int{argon2d, argon2i, argon2id} {
		dirty(r, s)
		want := deriveKey(mode, genKatPassword, genKatSalt, genKatSecret, genKatAAD, 3, 32, 4, 32)
		got := deriveKeyInto(s, mode, genKatPassword, genKatSalt, genKatSecret, genKatAAD, 3, 32, 4, 32)
		if !bytes.Equal(got, want) {
			t.Errorf("mode %d: dirty scratch gives %x, want %x", mode, got, want)
		}
	}
	for i := range 50 {
		p := randomParams(r)
		pw, salt := randomBytes(r, r.IntN(40)), randomBytes(r, 8+r.IntN(40))
		dirty(r, s)
		got := deriveKeyInto(s, argon2i, pw, salt, nil, nil, p.time, p.memory, p.threads, p.keyLen)
		if want := xargon2.Key(pw, salt, p.time, p.memory, p.threads, p.keyLen); !bytes.Equal(got, want) {
			t.Fatalf("argon2i case %d %+v: got %x, want %x", i, p, got, want)
		}
	}
}

func TestBlocks(t *testing.T) {
	for _, tc := range []struct {
		memory  uint32
		threads uint8
		want    uint32
	}{
		{0, 1, 8}, {1, 1, 8}, {8, 1, 8}, {9, 1, 8}, {11, 1, 8}, {12, 1, 12},
		{19456, 1, 19456}, {19457, 1, 19456}, {19459, 1, 19456}, {19460, 1, 19460},
		{15, 2, 16}, {16, 2, 16}, {23, 2, 16}, {24, 2, 24},
		{31, 4, 32}, {47, 4, 32}, {48, 4, 48}, {100, 3, 96},
	} {
		if got := Blocks(tc.memory, tc.threads); got != tc.want {
			t.Errorf("Blocks(%d, %d) = %d, want %d", tc.memory, tc.threads, got, tc.want)
		}
	}
}

func TestScratchWipe(t *testing.T) {
	s := NewScratch(64, 1)
	if !s.IsZero() {
		t.Fatal("new scratch is not zero")
	}
	IDKeyInto(s, []byte("password"), []byte("somesalt"), 1, 64, 1, 32)
	if s.IsZero() {
		t.Fatal("scratch is zero after hashing")
	}
	s.Wipe()
	if !s.IsZero() {
		t.Fatal("scratch is not zero after Wipe")
	}
	var zero Scratch
	if !zero.IsZero() || zero.Len() != 0 {
		t.Fatal("zero Scratch is not empty")
	}
	want := xargon2.IDKey([]byte("pw"), []byte("saltsalt"), 1, 64, 1, 32)
	if got := IDKeyInto(&zero, []byte("pw"), []byte("saltsalt"), 1, 64, 1, 32); !bytes.Equal(got, want) || zero.Len() != 64 {
		t.Fatalf("zero Scratch: got %x (len %d), want %x (len 64)", got, zero.Len(), want)
	}
}

// TestIDKeyIntoAllocations checks that hashing in a Scratch allocates only
// small bookkeeping, not the block memory.
func TestIDKeyIntoAllocations(t *testing.T) {
	const memory = 4096 // KiB
	s := NewScratch(memory, 1)
	pw, salt := []byte("password"), []byte("somesalt")
	IDKeyInto(s, pw, salt, 1, memory, 1, 32)
	const runs = 5
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		IDKeyInto(s, pw, salt, 1, memory, 1, 32)
	}
	runtime.ReadMemStats(&after)
	if perRun := (after.TotalAlloc - before.TotalAlloc) / runs; perRun > 64<<10 {
		t.Errorf("IDKeyInto allocated %d bytes per run with a Scratch, want < 64 KiB (memory is %d KiB)", perRun, memory)
	}
}

func BenchmarkIDKeyInto(b *testing.B) {
	pw, salt := []byte("password"), []byte("somesalt")
	b.Run("scratch", func(b *testing.B) {
		s := NewScratch(19456, 1)
		b.ReportAllocs()
		for b.Loop() {
			IDKeyInto(s, pw, salt, 2, 19456, 1, 32)
		}
	})
	b.Run("upstream", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			xargon2.IDKey(pw, salt, 2, 19456, 1, 32)
		}
	})
}
