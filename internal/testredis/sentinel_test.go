package testredis_test

import (
	"context"
	"testing"
	"time"

	"github.com/caddyregister/caddyregister/internal/testredis"
)

// TestSentinel: a failover client writes through the master the sentinel
// names, and after a forced failover finds the promoted replica, which
// holds what was written before.
func TestSentinel(t *testing.T) {
	start := time.Now()
	s := testredis.StartSentinel(t, "regmaster", 1)
	t.Logf("sentinel setup up in %s", time.Since(start).Round(time.Millisecond))
	ctx := context.Background()
	c := s.FailoverClient(t)
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	m, err := s.Master()
	if err != nil {
		t.Fatal(err)
	}
	if n, err := m.Client(t).Do(ctx, "WAIT", 1, 10000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT: %d, %v", n, err)
	}
	t0 := time.Now()
	next, err := s.Failover()
	t.Logf("failover in %s", time.Since(t0).Round(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if next == m {
		t.Fatal("failover kept the master")
	}
	// The same client finds the new master through the sentinels.
	if err := c.Set(ctx, "k2", "v2", 0).Err(); err != nil {
		t.Fatalf("SET after failover: %v", err)
	}
	for k, want := range map[string]string{"k": "v", "k2": "v2"} {
		if v, err := next.Client(t).Get(ctx, k).Result(); err != nil || v != want {
			t.Errorf("new master GET %s = %q, %v", k, v, err)
		}
	}
}
