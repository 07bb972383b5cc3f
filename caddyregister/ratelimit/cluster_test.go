package ratelimit

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddyregister/caddyregister/internal/testredis"
)

// One Redis Cluster per test binary; TestMain stops it.
var (
	shared    testredis.SharedCluster
	clusterNS atomic.Int64
)

func TestMain(m *testing.M) {
	code := m.Run()
	shared.Stop()
	os.Exit(code)
}

func sharedCluster(t *testing.T) *testredis.Cluster { return shared.Get(t) }

// TestClusterKeysSpread: on a cluster each client's bucket and failure
// counter is a slot of its own, so 3,000 clients' keys land on all three
// masters (NewRedis's keys share the namespace's slot: one master).
func TestClusterKeysSpread(t *testing.T) {
	c := sharedCluster(t).ClusterClient(t)
	ctx := context.Background()
	ns := fmt.Sprintf("spread%d", clusterNS.Add(1))
	l := NewRedisCluster(c, ns)
	lim := Limit{Rate: 5, Period: time.Minute}
	p := LockPolicy{Failures: 3, WaitIncrement: time.Minute, MaxWait: time.Hour, Reset: time.Hour}
	for i := range 3000 {
		key := fmt.Sprintf("ip:%d", i)
		if r, err := l.AllowAll(ctx, Check{Key: key, Limit: lim}, Check{Key: "global", Limit: Limit{Rate: 1_000_000, Period: time.Minute}}); err != nil || !r.Allowed {
			t.Fatalf("AllowAll %d: %+v, %v", i, r, err)
		}
		if _, err := l.End(ctx, true, Failure{Key: key, Policy: p}); err != nil {
			t.Fatal(err)
		}
	}
	per := map[string]int{}
	var mu sync.Mutex
	err := c.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
		cnt := 0
		for _, pat := range []string{"rate:{" + ns + ":*", "fail:{" + ns + ":*"} {
			iter := n.Scan(ctx, 0, pat, 1000).Iterator()
			for iter.Next(ctx) {
				cnt++
			}
			if err := iter.Err(); err != nil {
				return err
			}
		}
		mu.Lock()
		per[n.Options().Addr] = cnt
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for addr, n := range per {
		t.Logf("master %s: %d keys", addr, n)
		if n < 1500 {
			t.Errorf("master %s holds %d of 6,001 keys: not spread", addr, n)
		}
		total += n
	}
	if total != 6001 {
		t.Errorf("found %d keys, want 6,001 (3,000 buckets, 3,000 counters, one global bucket)", total)
	}
}
