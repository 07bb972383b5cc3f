package boltstore

import "time"

// SetClock replaces the store's wall clock (the batching decision and
// idempotency expiry).
func SetClock(s *Store, now func() time.Time) { s.clock = now }

// SetBatchLimits sets bbolt's batch delay and size, so a test decides
// when a batch commits instead of racing the delay.
func SetBatchLimits(s *Store, delay time.Duration, size int) {
	s.db.MaxBatchDelay, s.db.MaxBatchSize = delay, size
}

// SyncDisabled reports whether bbolt skips the fdatasync of its commits.
func SyncDisabled(s *Store) bool { return s.db.NoSync }
