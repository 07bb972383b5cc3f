package boltstore

// PublishRevocations appends sids to the in-memory revocation feed, for
// tests of its trimming.
func PublishRevocations(s *Store, sids ...string) { s.feed.publish(sids...) }

// SessionCounts reports the records in the sessions and session_expiry
// buckets.
func SessionCounts(s *Store) (sessions, expiry int, err error) {
	return keyCounts(s, bucketSessions, bucketSessionExp)
}
