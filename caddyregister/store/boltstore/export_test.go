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
	return keyCounts(s, bucketTokens, bucketTokenExp)
}

// IdemCounts reports the records in the idem and idem_expiry buckets.
func IdemCounts(s *Store) (records, expiry int, err error) {
	return keyCounts(s, bucketIdem, bucketIdemExp)
}

// keyCounts reports the keys in buckets a and b.
func keyCounts(s *Store, a, b []byte) (na, nb int, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		na = tx.Bucket(a).Stats().KeyN
		nb = tx.Bucket(b).Stats().KeyN
		return nil
	})
	return na, nb, err
}

// LastTxID reports the id of the last committed write transaction: it
// grows by one per commit.
func LastTxID(s *Store) (id int, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		id = tx.ID()
		return nil
	})
	return id, err
}

// BatchWindow is batchWindow, for tests.
const BatchWindow = batchWindow

// BucketCounts reports the records in every bucket, by name.
func BucketCounts(s *Store) (map[string]int, error) {
	counts := map[string]int{}
	err := s.db.View(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			counts[string(name)] = tx.Bucket(name).Stats().KeyN
		}
		return nil
	})
	return counts, err
}

// CorruptMail overwrites the stored record of mail id with bytes that do
// not decode.
func CorruptMail(s *Store, id string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMail).Put([]byte(id), []byte("{not json"))
	})
}
