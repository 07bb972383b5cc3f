package boltstore

import bolt "go.etcd.io/bbolt"

// PublishRevocations appends sids to the in-memory revocation feed, for
// tests of its trimming.
func PublishRevocations(s *Store, sids ...string) { s.feed.publish(sids...) }

// SessionCounts reports the records in the sessions and session_expiry
// buckets.
func SessionCounts(s *Store) (sessions, expiry int, err error) {
	return keyCounts(s, bucketSessions, bucketSessionExp)
}

// ForgetUserIndex empties users_by_created and removes the backfill
// marker, as a file written before the index existed.
func ForgetUserIndex(s *Store) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bucketUsersByCreated); err != nil {
			return err
		}
		if _, err := tx.CreateBucket(bucketUsersByCreated); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Delete(metaUserIndex)
	})
}
