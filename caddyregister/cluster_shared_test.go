package caddyregister

import (
	"os"
	"sync"
	"testing"

	"github.com/caddyregister/caddyregister/internal/testredis"
)

// One Redis Cluster per test binary (six processes); TestMain stops it.
var (
	clusterOnce sync.Once
	sharedClu   *testredis.Cluster
	cluErr      error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedClu != nil {
		sharedClu.Stop()
	}
	os.Exit(code)
}

// sharedCluster starts the binary's cluster on first use.
func sharedCluster(t *testing.T) *testredis.Cluster {
	t.Helper()
	clusterOnce.Do(func() { sharedClu, cluErr = testredis.StartClusterServer() })
	if cluErr != nil {
		t.Fatalf("testredis: %v", cluErr)
	}
	return sharedClu
}
