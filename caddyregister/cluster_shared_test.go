package caddyregister

import (
	"os"
	"testing"

	"github.com/caddyregister/caddyregister/internal/testredis"
)

// One Redis Cluster per test binary; TestMain stops it.
var sharedClu testredis.SharedCluster

func TestMain(m *testing.M) {
	code := m.Run()
	sharedClu.Stop()
	os.Exit(code)
}

// sharedCluster starts the binary's cluster on first use.
func sharedCluster(t *testing.T) *testredis.Cluster { return sharedClu.Get(t) }
