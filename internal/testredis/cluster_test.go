package testredis_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddyregister/caddyregister/internal/testredis"
)

// TestCluster runs on one cluster (six processes are dear on two cores),
// so its steps are ordered: a healthy cluster first, then a reshard, then
// a failover, which leaves one master without a replica.
func TestCluster(t *testing.T) {
	start := time.Now()
	c := testredis.StartCluster(t)
	t.Logf("cluster of 6 up in %s", time.Since(start).Round(time.Millisecond))
	ctx := context.Background()

	// Keys in many slots, so that every master holds some.
	keys := make([]string, 60)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%d", i)
	}
	cc := c.ClusterClient(t)
	for _, k := range keys {
		if err := cc.Set(ctx, k, "v-"+k, 0).Err(); err != nil {
			t.Fatalf("SET %s: %v", k, err)
		}
	}

	t.Run("healthy", func(t *testing.T) {
		ms, rs := c.Masters(), c.Replicas()
		if len(ms) != 3 || len(rs) != 3 {
			t.Fatalf("masters %d replicas %d, want 3 and 3", len(ms), len(rs))
		}
		total := 0
		for _, m := range ms {
			total += m.Slots
			n := 0
			for _, r := range rs {
				if r.MasterID == m.ID {
					n++
				}
			}
			if n != 1 {
				t.Errorf("master %s has %d replicas, want 1", m.Addr, n)
			}
		}
		if total != 16384 {
			t.Errorf("masters serve %d slots, want 16384", total)
		}
		if len(c.Seeds()) != 6 {
			t.Errorf("seeds %v, want 6", c.Seeds())
		}
	})

	t.Run("any node seeds the client", func(t *testing.T) {
		// A key written through one client is read through a client that
		// knows only one node, for every node: the client follows the
		// cluster's slot map, wherever it starts.
		for _, n := range c.Nodes {
			one := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{n.Addr}})
			for _, k := range keys {
				v, err := one.Get(ctx, k).Result()
				if err != nil || v != "v-"+k {
					t.Errorf("via %s: GET %s = %q, %v", n.Addr, k, v, err)
				}
			}
			one.Close()
		}
		// A plain client on a master that does not own a key is
		// redirected: this is a real cluster, not one node.
		moved := 0
		for _, m := range c.Masters() {
			err := m.Server.Client(t).Get(ctx, keys[0]).Err()
			if err != nil && strings.HasPrefix(err.Error(), "MOVED ") {
				moved++
			}
		}
		if moved != 2 {
			t.Errorf("%d masters answered MOVED for %s, want 2", moved, keys[0])
		}
	})

	t.Run("reshard", func(t *testing.T) {
		before := c.Masters()
		if err := c.Reshard(0, 1, 100); err != nil {
			t.Fatal(err)
		}
		after := c.Masters()
		if after[0].Slots != before[0].Slots-100 || after[1].Slots != before[1].Slots+100 {
			t.Fatalf("slots %d,%d → %d,%d; want 100 moved", before[0].Slots, before[1].Slots, after[0].Slots, after[1].Slots)
		}
		for _, k := range keys {
			if v, err := cc.Get(ctx, k).Result(); err != nil || v != "v-"+k {
				t.Errorf("after reshard GET %s = %q, %v", k, v, err)
			}
		}
	})

	t.Run("failover", func(t *testing.T) {
		// Every write reached a replica (WAIT), so the promotion loses none.
		for _, m := range c.Masters() {
			if n, err := m.Server.Client(t).Do(ctx, "WAIT", 1, 10000).Int(); err != nil || n != 1 {
				t.Fatalf("WAIT on %s: %d, %v", m.Addr, n, err)
			}
		}
		victim := c.Masters()[0]
		promoted, err := c.KillMaster(0)
		if err != nil {
			t.Fatal(err)
		}
		if promoted.Addr == victim.Addr || promoted.Slots != victim.Slots {
			t.Fatalf("promoted %s with %d slots; killed %s had %d", promoted.Addr, promoted.Slots, victim.Addr, victim.Slots)
		}
		if ms := c.Masters(); len(ms) != 3 {
			t.Fatalf("%d masters after failover, want 3", len(ms))
		}
		if rs := c.Replicas(); len(rs) != 2 {
			t.Fatalf("%d replicas after failover, want 2", len(rs))
		}
		// A fresh client seeded with the live nodes reads every key and
		// writes again.
		fresh := c.ClusterClient(t)
		for _, k := range keys {
			if v, err := fresh.Get(ctx, k).Result(); err != nil || v != "v-"+k {
				t.Errorf("after failover GET %s = %q, %v", k, v, err)
			}
			if err := fresh.Set(ctx, k, "w", 0).Err(); err != nil {
				t.Errorf("after failover SET %s: %v", k, err)
			}
		}
	})
}
