package boltstore

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// idemSweepBatch bounds how many expired idempotency records one call
// deletes.
const idemSweepBatch = 100

// errEncode marks an encoding failure inside CreateUser's transaction: a
// bug or bad input, not a backend failure.
var errEncode = errors.New("encode")

// encodeUser encodes u with Attributes[SeqAttr] = seq (u itself is left
// alone).
func encodeUser(u *store.User, seq int64) ([]byte, error) {
	b, err := json.Marshal(store.UserWithSeq(u, store.SeqJSON(seq)))
	if err != nil {
		return nil, fmt.Errorf("%w user: %w", errEncode, err)
	}
	return b, nil
}

// nextSeq draws the next number of sequence name (the first is 1).
func nextSeq(tx *bolt.Tx, name string) (int64, error) {
	b, err := bucket(tx, bucketSeq)
	if err != nil {
		return 0, err
	}
	key := []byte(name)
	var cur uint64
	if v := b.Get(key); v != nil {
		if len(v) != 8 {
			return 0, fmt.Errorf("sequence %q: corrupt value of %d bytes", name, len(v))
		}
		cur = binary.BigEndian.Uint64(v)
	}
	if cur >= math.MaxInt64 {
		return 0, fmt.Errorf("sequence %q exhausted", name)
	}
	cur++
	if err := b.Put(key, binary.BigEndian.AppendUint64(nil, cur)); err != nil {
		return 0, err
	}
	return int64(cur), nil
}

// readIdem returns the record under key, or nil.
func readIdem(tx *bolt.Tx, key string) (*store.Idempotency, error) {
	b, err := bucket(tx, bucketIdem)
	if err != nil {
		return nil, err
	}
	raw := get(b, key)
	if raw == nil {
		return nil, nil
	}
	var r store.Idempotency
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("decode idempotency %q: %w", key, err)
	}
	return &r, nil
}

// idemTaken reports whether key is held by a record unexpired at now. An
// expired record is deleted (the caller's transaction overwrites it).
func idemTaken(tx *bolt.Tx, key string, now time.Time) (bool, error) {
	r, err := readIdem(tx, key)
	if err != nil || r == nil {
		return false, err
	}
	if now.Before(r.ExpiresAt) {
		return true, nil
	}
	return false, deleteIdem(tx, key, r.ExpiresAt)
}

func deleteIdem(tx *bolt.Tx, key string, expiresAt time.Time) error {
	return deleteExpiring(tx, bucketIdem, bucketIdemExp, []byte(key), expiresAt)
}

// putIdempotency stores r with Seq = seq, and its expiry entry.
func putIdempotency(tx *bolt.Tx, r *store.Idempotency, seq int64) error {
	bs, err := buckets(tx, bucketIdem, bucketIdemExp)
	if err != nil {
		return err
	}
	b, exp := bs[0], bs[1]
	c := *r
	c.Seq = seq
	body, err := json.Marshal(&c)
	if err != nil {
		return fmt.Errorf("%w idempotency: %w", errEncode, err)
	}
	if err := b.Put([]byte(c.Key), body); err != nil {
		return err
	}
	return exp.Put(timeKey(c.ExpiresAt, c.Key), []byte{})
}

// sweepIdempotency deletes up to idemSweepBatch records expired at nowMs.
func sweepIdempotency(tx *bolt.Tx, nowMs int64) error {
	return sweepExpired(tx, bucketIdem, bucketIdemExp, nowMs, idemSweepBatch, func(entry, raw []byte) bool {
		// The record may have been replaced by a newer one under the same
		// key (with another expiry entry): only delete it if it is this one.
		if raw == nil {
			return true
		}
		var r store.Idempotency
		return json.Unmarshal(raw, &r) == nil && max(r.ExpiresAt.UnixMilli(), 0) != keyMillis(entry)
	})
}

// GetIdempotency implements store.Store. A record expired by the wall
// clock reads as ErrNotFound.
func (s *Store) GetIdempotency(ctx context.Context, key string) (*store.Idempotency, error) {
	const op = "get idempotency"
	if key == "" {
		return nil, store.ErrNotFound
	}
	var r store.Idempotency
	if err := s.getJSON(ctx, op, bucketIdem, key, &r); err != nil {
		return nil, err
	}
	if !s.clock().Before(r.ExpiresAt) {
		return nil, store.ErrNotFound
	}
	return &r, nil
}
