package password

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestPoolReservedSlot: with every slot held (a registration flood), a
// caller marked WithReserved (admin authentication) still hashes at once,
// an unmarked one is refused, and the reserved slot serves one at a time.
func TestPoolReservedSlot(t *testing.T) {
	p := NewPool(PoolConfig{Size: 2, MaxWait: 30 * time.Millisecond})
	h := newBlockingHasher()
	release := fillPool(t, p, h)

	if _, err := p.Hash(context.Background(), fastArgon, []byte("pw")); !errors.Is(err, ErrOverloaded) {
		t.Fatalf("unmarked caller: %v, want overload", err)
	}
	admin := WithReserved(context.Background())
	enc, err := p.Hash(admin, fastArgon, []byte("pw"))
	if err != nil {
		t.Fatalf("admin caller with every shared slot held: %v", err)
	}
	if ok, err := p.Verify(admin, enc, []byte("pw")); !ok || err != nil {
		t.Fatalf("admin verify: %v, %v", ok, err)
	}
	// The reserved slot is one slot: a second admin waits for it like
	// anyone else.
	done := make(chan error, 1)
	go func() { _, err := p.Hash(admin, h, nil); done <- err }()
	<-h.entered // holds the reserved slot
	if _, err := p.Hash(admin, fastArgon, []byte("pw")); !errors.Is(err, ErrOverloaded) {
		t.Fatalf("admin caller with the reserved slot held too: %v, want overload", err)
	}
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
