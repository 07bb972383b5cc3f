package password

import (
	"context"
	"errors"
	"testing"
	"time"
)

// sleepHasher takes a fixed time, standing in for an expensive hash so the
// pool's wait prediction can be tested without burning CPU.
type sleepHasher struct{ d time.Duration }

func (h sleepHasher) Hash([]byte) (string, error) { time.Sleep(h.d); return "x", nil }
func (h sleepHasher) Name() string                { return "sleep" }

func TestPoolShedsHopelessWaitersAtOnce(t *testing.T) {
	p := NewPool(PoolConfig{Size: 1, MaxWait: 2500 * time.Millisecond})
	h := sleepHasher{d: time.Second}
	ctx := context.Background()
	// Teach the pool how long a hash takes.
	if _, err := p.Hash(ctx, h, nil); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 2)
	go func() { _, err := p.Hash(ctx, h, nil); done <- err }() // runs
	time.Sleep(20 * time.Millisecond)
	go func() { _, err := p.Hash(ctx, h, nil); done <- err }() // waits ~1s, hashes by ~2s: fits 2.5s
	time.Sleep(20 * time.Millisecond)
	// A third caller would wait ~2s and finish by ~3s > 2.5s: refused after ShedDelay, not
	// after its whole budget.
	_, err := p.Hash(ctx, h, nil)
	if !errors.Is(err, ErrOverloaded) {
		t.Fatalf("third caller: %v, want overload", err)
	}
	// Refused before either served caller finished: it did not sit out
	// its budget first.
	select {
	case <-done:
		t.Fatal("the refusal came only after a served caller finished")
	default:
	}
	for i := 0; i < 2; i++ {
		if err := <-done; err != nil {
			t.Fatalf("served caller %d: %v", i, err)
		}
	}
}
