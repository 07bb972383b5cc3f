package storetest

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// The secrets' cases: written once, swapped by compare and set.

func testLoadOrCreateSecret(t *testing.T, s store.Store) {
	c := ctx(t)
	first := []byte("-----BEGIN PRIVATE KEY-----\nfirst\x00\xff\n-----END PRIVATE KEY-----\n")
	got, err := s.LoadOrCreateSecret(c, "signing", first)
	if err != nil {
		t.Fatalf("first LoadOrCreateSecret: %v", err)
	}
	if !bytes.Equal(got, first) {
		t.Fatalf("first LoadOrCreateSecret = %q, want %q", got, first)
	}
	got, err = s.LoadOrCreateSecret(c, "signing", []byte("second"))
	if err != nil {
		t.Fatalf("second LoadOrCreateSecret: %v", err)
	}
	if !bytes.Equal(got, first) {
		t.Fatalf("second LoadOrCreateSecret = %q, want the first value %q", got, first)
	}
	// Names are independent.
	got, err = s.LoadOrCreateSecret(c, "other", []byte("other"))
	if err != nil || string(got) != "other" {
		t.Fatalf("LoadOrCreateSecret(other) = %q, %v; want \"other\"", got, err)
	}
}

func testConcurrentSecret(t *testing.T, s store.Store) {
	const n = 20
	c := ctx(t)
	got, errs := runConcurrentResults(n, func(i int) ([]byte, error) {
		return s.LoadOrCreateSecret(c, "race", fmt.Appendf(nil, "value-%02d", i))
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("LoadOrCreateSecret %d: %v", i, err)
		}
	}
	if !bytes.HasPrefix(got[0], []byte("value-")) {
		t.Fatalf("winner value %q is none of the offered values", got[0])
	}
	for i := range got {
		if !bytes.Equal(got[i], got[0]) {
			t.Fatalf("caller %d got %q, caller 0 got %q: want one winner", i, got[i], got[0])
		}
	}
	again, err := s.LoadOrCreateSecret(c, "race", []byte("late"))
	if err != nil || !bytes.Equal(again, got[0]) {
		t.Fatalf("LoadOrCreateSecret after race = %q, %v; want %q", again, err, got[0])
	}
}

func testSwapSecret(t *testing.T, s store.Store) {
	c := ctx(t)
	// Absent: nothing to compare with, nothing written.
	if ok, err := s.SwapSecret(c, "swap", []byte("a"), []byte("b")); err != nil || ok {
		t.Fatalf("SwapSecret on absent secret = %v, %v; want false, nil", ok, err)
	}
	if got, err := s.LoadOrCreateSecret(c, "swap", []byte("a")); err != nil || string(got) != "a" {
		t.Fatalf("secret after failed swap = %q, %v; want it still absent (a created now)", got, err)
	}
	// Mismatch: left as it is.
	if ok, err := s.SwapSecret(c, "swap", []byte("x"), []byte("b")); err != nil || ok {
		t.Fatalf("SwapSecret with wrong old = %v, %v; want false, nil", ok, err)
	}
	// A prefix of the stored value is not the stored value.
	if ok, err := s.SwapSecret(c, "swap", []byte(""), []byte("b")); err != nil || ok {
		t.Fatalf("SwapSecret with empty old = %v, %v; want false, nil", ok, err)
	}
	if ok, err := s.SwapSecret(c, "swap", []byte("a"), []byte("b\x00\xff")); err != nil || !ok {
		t.Fatalf("SwapSecret with right old = %v, %v; want true, nil", ok, err)
	}
	if got, err := s.LoadOrCreateSecret(c, "swap", []byte("z")); err != nil || string(got) != "b\x00\xff" {
		t.Fatalf("secret after swap = %q, %v; want b\\x00\\xff", got, err)
	}
	// Other names are untouched.
	if got, err := s.LoadOrCreateSecret(c, "swap-other", []byte("o")); err != nil || string(got) != "o" {
		t.Fatalf("other secret = %q, %v", got, err)
	}
}

// testConcurrentSwapSecret races swaps from one old value: exactly one
// wins, as two instances migrating or rotating the key at once must not
// both believe they wrote it.
func testConcurrentSwapSecret(t *testing.T, s store.Store) {
	const n = 20
	c := ctx(t)
	if _, err := s.LoadOrCreateSecret(c, "swap-race", []byte("old")); err != nil {
		t.Fatal(err)
	}
	won, errs := runConcurrentResults(n, func(i int) (bool, error) {
		return s.SwapSecret(c, "swap-race", []byte("old"), fmt.Appendf(nil, "new-%02d", i))
	})
	winner := -1
	for i, err := range errs {
		if err != nil {
			t.Fatalf("SwapSecret %d: %v", i, err)
		}
		if won[i] {
			if winner >= 0 {
				t.Fatalf("swaps %d and %d both won", winner, i)
			}
			winner = i
		}
	}
	if winner < 0 {
		t.Fatal("no swap won")
	}
	got, err := s.LoadOrCreateSecret(c, "swap-race", []byte("late"))
	if want := fmt.Sprintf("new-%02d", winner); err != nil || string(got) != want {
		t.Fatalf("secret after race = %q, %v; want %q", got, err, want)
	}
}
