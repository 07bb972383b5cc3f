package boltstore

import (
	"bytes"
	"context"
	"errors"

	bolt "go.etcd.io/bbolt"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// The secrets (signing key set, outbox key): written once, swapped by
// compare and set.

// LoadOrCreateSecret implements store.Store in one read-write transaction:
// the first caller's value is stored, and every caller gets the stored one.
func (s *Store) LoadOrCreateSecret(ctx context.Context, name string, value []byte) ([]byte, error) {
	const op = "load or create secret"
	if name == "" {
		return nil, errors.New("load or create secret: empty name")
	}
	if err := ctx.Err(); err != nil {
		return nil, store.Unavailable(op, err)
	}
	var out []byte
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketSecrets)
		if err != nil {
			return err
		}
		key := []byte(name)
		if k, v := b.Cursor().Seek(key); bytes.Equal(k, key) {
			out = bytes.Clone(v) // v is only valid inside the transaction
			if out == nil {
				out = []byte{}
			}
			return nil
		}
		if err := b.Put(key, value); err != nil {
			return err
		}
		out = value
		return nil
	})
	if err != nil {
		return nil, store.Unavailable(op, err)
	}
	return out, nil
}

// SwapSecret implements store.Store in one read-write transaction.
func (s *Store) SwapSecret(ctx context.Context, name string, old, value []byte) (bool, error) {
	const op = "swap secret"
	if name == "" {
		return false, errors.New("swap secret: empty name")
	}
	if err := ctx.Err(); err != nil {
		return false, store.Unavailable(op, err)
	}
	swapped := false
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketSecrets)
		if err != nil {
			return err
		}
		key := []byte(name)
		k, v := b.Cursor().Seek(key)
		if !bytes.Equal(k, key) || !bytes.Equal(v, old) {
			return nil
		}
		swapped = true
		return b.Put(key, value)
	})
	if err != nil {
		return false, store.Unavailable(op, err)
	}
	return swapped, nil
}
