package redisstore_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/store"
	"github.com/caddyregister/caddyregister/caddyregister/store/redisstore"
	"github.com/caddyregister/caddyregister/caddyregister/store/storetest"
)

var clusterNS atomic.Int64

// openCluster returns a cluster-layout store on the shared cluster under
// a fresh namespace, so every contract case starts empty.
func openCluster(t *testing.T) *redisstore.ClusterStore {
	t.Helper()
	clu := cluster(t)
	s := redisstore.NewCluster(clu.NewClusterClient(), fmt.Sprintf("clu%d", clusterNS.Add(1)))
	t.Cleanup(func() { s.Close() })
	return s
}

// TestContractCluster runs the whole store contract suite on the
// cluster layout, on a real six-node cluster (three masters, three
// replicas): every script and transaction stays in one slot (a CROSSSLOT
// would fail it), and every promise holds across slots.
func TestContractCluster(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openCluster(t) })
}

// TestClusterIdempotentRaceReplays: on one node the idempotency claim and
// its record appear in one step, so the loser of a race reads the
// winner's record at once (the engine replays it). On the cluster the
// claim is a reservation until the winner finalizes: the loser's
// CreateUser waits for that before it reports the conflict.
func TestClusterIdempotentRaceReplays(t *testing.T) {
	s := openCluster(t)
	for round := range 5 {
		key := fmt.Sprintf("race-%d", round)
		const n = 8
		errs := storetest.RunConcurrent(n, func(i int) error {
			u := storetest.NewTestUser(fmt.Sprintf("idem%d-%d@example.com", round, i), "")
			err := s.CreateUser(context.Background(), store.NewUser{User: u, Idempotency: storetest.NewTestIdempotency(key, "same body", time.Hour)})
			if err == nil {
				return nil
			}
			// The loser replays at once.
			if _, gerr := s.GetIdempotency(context.Background(), key); gerr != nil {
				return fmt.Errorf("conflict %v, then GetIdempotency: %w", err, gerr)
			}
			return err
		})
		storetest.OneWinner(t, errs, "idempotency")
	}
}
