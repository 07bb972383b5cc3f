package redisstore_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/caddyregister/caddyregister/caddyregister/store/redisstore"
	"github.com/caddyregister/caddyregister/internal/testredis"
)

// TestDurability: testredis runs with no RDB snapshots and appendonly no, so both
// CONFIG GET and, for a user whose ACL forbids CONFIG, INFO report no
// persistence; the eviction policy is read either way.
func TestDurability(t *testing.T) {
	ctx := context.Background()
	srv := testredis.Start(t)
	admin := srv.Client(t)

	s := open(t, srv)
	d, err := s.Durability(ctx)
	if err != nil || d.Persistent || d.EvictionPolicy != "noeviction" || d.Source != "config" {
		t.Fatalf("Durability = %+v, %v; want not persistent, noeviction, from config", d, err)
	}

	if err := admin.Do(ctx, "ACL", "SETUSER", "noconfig", "on", ">pw", "~*", "&*", "+@all", "-config").Err(); err != nil {
		t.Fatal(err)
	}
	if err := admin.ConfigSet(ctx, "maxmemory-policy", "allkeys-lru").Err(); err != nil {
		t.Fatal(err)
	}
	limited, err := redisstore.Open(fmt.Sprintf("redis://noconfig:pw@%s/0", srv.Addr), "dur")
	if err != nil {
		t.Fatal(err)
	}
	defer limited.Close()
	d, err = limited.Durability(ctx)
	if err != nil || d.Persistent || d.EvictionPolicy != "allkeys-lru" || d.Source != "info" {
		t.Fatalf("Durability without CONFIG = %+v, %v; want not persistent, allkeys-lru, from info", d, err)
	}

	// AOF on: persistent, by either route.
	if err := admin.ConfigSet(ctx, "appendonly", "yes").Err(); err != nil {
		t.Fatal(err)
	}
	if d, err := s.Durability(ctx); err != nil || !d.Persistent {
		t.Fatalf("Durability with AOF = %+v, %v; want persistent", d, err)
	}
	if d, err := limited.Durability(ctx); err != nil || !d.Persistent {
		t.Fatalf("Durability with AOF, by INFO = %+v, %v; want persistent", d, err)
	}

	// Neither CONFIG nor INFO: an error that says both failed.
	if err := admin.Do(ctx, "ACL", "SETUSER", "noconfig", "-info").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := limited.Durability(ctx); err == nil || !strings.Contains(err.Error(), "info") {
		t.Fatalf("Durability with neither = %v, want an error", err)
	}
}
