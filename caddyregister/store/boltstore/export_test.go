package boltstore

import bolt "go.etcd.io/bbolt"

// SetChallengeLimit lowers the in-memory challenge bound for tests.
func SetChallengeLimit(s *Store, n int) {
	s.challenges.mu.Lock()
	s.challenges.limit = n
	s.challenges.mu.Unlock()
}

// TokenCounts reports the records in the tokens and token_expiry buckets.
func TokenCounts(s *Store) (tokens, expiry int, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		tokens = tx.Bucket(bucketTokens).Stats().KeyN
		expiry = tx.Bucket(bucketTokenExp).Stats().KeyN
		return nil
	})
	return tokens, expiry, err
}

// IdemCounts reports the records in the idem and idem_expiry buckets.
func IdemCounts(s *Store) (records, expiry int, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		records = tx.Bucket(bucketIdem).Stats().KeyN
		expiry = tx.Bucket(bucketIdemExp).Stats().KeyN
		return nil
	})
	return records, expiry, err
}
