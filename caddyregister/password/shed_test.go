package password

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"
)

// gatedHasher signals when a hash starts and runs until released, standing
// in for an expensive hash so the pool's wait prediction can be tested
// without burning CPU, and without depending on how fast a loaded machine
// schedules the callers.
type gatedHasher struct {
	started chan struct{}
	release chan struct{}
}

func (h gatedHasher) Hash([]byte) (string, error) {
	h.started <- struct{}{}
	<-h.release
	return "x", nil
}
func (h gatedHasher) Name() string { return "gated" }

func TestPoolShedsHopelessWaitersAtOnce(t *testing.T) {
	// A hash is known to take 5 minutes. With MaxWait 16m a caller may
	// queue 14m - 5m = 9m: the second caller (5m ahead of it) fits, the
	// third (10m ahead) does not.
	p := NewPool(PoolConfig{Size: 1, MaxWait: 16 * time.Minute})
	p.avgNanos.Store(int64(5 * time.Minute))
	h := gatedHasher{started: make(chan struct{}), release: make(chan struct{})}
	ctx := context.Background()
	done := make(chan error, 2)
	go func() { _, err := p.Hash(ctx, h, nil); done <- err }()
	<-h.started // the first caller holds the slot
	go func() { _, err := p.Hash(ctx, h, nil); done <- err }()
	for p.waiting.Load() != 1 { // the second caller queues
		runtime.Gosched()
	}
	// The third caller is refused after ShedDelay, not after its
	// budget: had it queued, it would wait 9 minutes.
	third := make(chan error, 1)
	go func() { _, err := p.Hash(ctx, h, nil); third <- err }()
	select {
	case err := <-third:
		if !errors.Is(err, ErrOverloaded) {
			t.Fatalf("third caller: %v, want overload", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the third caller queued instead of being refused at once")
	}
	// Refused while both served callers were still in the pool.
	select {
	case err := <-done:
		t.Fatalf("a served caller finished before the refusal: %v", err)
	default:
	}
	if n := p.waiting.Load(); n != 1 {
		t.Fatalf("%d callers queued after the refusal, want 1", n)
	}
	close(h.release)
	<-h.started // the second caller got the slot
	for i := 0; i < 2; i++ {
		if err := <-done; err != nil {
			t.Fatalf("served caller %d: %v", i, err)
		}
	}
}
