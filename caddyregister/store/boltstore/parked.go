package boltstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// DropParkedBodies implements store.Store. Parked messages are few (each
// needs an operator) and the file is local, so it scans them in a
// read-only transaction, and writes only when a body is due to go: an idle
// sweep costs no write and no fsync.
func (s *Store) DropParkedBodies(ctx context.Context, now time.Time, limit int) (int, error) {
	const op = "drop parked bodies"
	if limit <= 0 {
		return 0, nil
	}
	if err := ctx.Err(); err != nil {
		return 0, store.Unavailable(op, err)
	}
	// A record that cannot be decoded is skipped and named, not allowed
	// to stop the sweep of the others; it stays for an operator.
	var corrupt []error
	expired := func(id, raw []byte) (*store.Mail, bool) {
		var m store.Mail
		if err := json.Unmarshal(raw, &m); err != nil {
			corrupt = append(corrupt, fmt.Errorf("mail %s: %w: %w", id, store.ErrCorrupt, err))
			return nil, false
		}
		return &m, m.HasBody() && !m.ExpiresAt.IsZero() && m.ExpiresAt.Before(now)
	}
	var due [][]byte
	err := s.db.View(func(tx *bolt.Tx) error {
		bs, err := buckets(tx, bucketParked, bucketMail)
		if err != nil {
			return err
		}
		return bs[0].ForEach(func(id, _ []byte) error {
			if len(due) >= limit {
				return nil
			}
			raw := bs[1].Get(id)
			if raw == nil {
				return nil
			}
			if _, ok := expired(id, raw); ok {
				due = append(due, append([]byte(nil), id...))
			}
			return nil
		})
	})
	if err != nil {
		return 0, wrapUnavailable(op, err)
	}
	if len(due) == 0 {
		return 0, corruptError(op, corrupt)
	}
	// Only what the scan found is reported: a record that went bad since
	// is skipped here too, without naming it twice.
	scanned := corrupt
	n := 0
	err = s.db.Update(func(tx *bolt.Tx) error {
		bs, err := buckets(tx, bucketParked, bucketMail)
		if err != nil {
			return err
		}
		for _, id := range due {
			raw := bs[1].Get(id)
			if raw == nil || bs[0].Get(id) == nil {
				continue // acknowledged or requeued meanwhile
			}
			m, ok := expired(id, raw)
			if !ok {
				continue
			}
			m.DropBody()
			b, err := json.Marshal(m)
			if err != nil {
				return fmt.Errorf("%s: encode mail: %w", op, err)
			}
			if err := bs[1].Put(id, b); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, wrapUnavailable(op, err)
	}
	return n, corruptError(op, scanned)
}

// corruptError names the records a sweep skipped, or is nil.
func corruptError(op string, corrupt []error) error {
	if len(corrupt) == 0 {
		return nil
	}
	return fmt.Errorf("%s: skipped %d: %w", op, len(corrupt), errors.Join(corrupt...))
}

// wrapUnavailable is store.Unavailable for a non-nil err.
func wrapUnavailable(op string, err error) error {
	if err == nil {
		return nil
	}
	return store.Unavailable(op, err)
}
