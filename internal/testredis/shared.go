package testredis

import (
	"sync"
	"testing"
)

// SharedCluster is one Redis Cluster for a whole test binary (six
// processes are dear on two cores), started by the first test that needs
// it: tests call Get, TestMain calls Stop after m.Run. The zero value is
// ready to use.
type SharedCluster struct {
	once sync.Once
	c    *Cluster
	err  error
}

// Get returns the cluster, starting it on first use; the test fails when
// it cannot start.
func (s *SharedCluster) Get(tb testing.TB) *Cluster {
	tb.Helper()
	s.once.Do(func() { s.c, s.err = StartClusterServer() })
	if s.err != nil {
		tb.Fatalf("testredis: %v", s.err)
	}
	return s.c
}

// Stop stops the cluster if a test started it.
func (s *SharedCluster) Stop() {
	if s.c != nil {
		s.c.Stop()
	}
}
