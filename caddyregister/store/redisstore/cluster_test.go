package redisstore_test

import (
	"fmt"
	"sync/atomic"
	"testing"

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
