package boltstore

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// ParkedMails implements store.ParkedMails: the parked bucket (id →
// parked at) is read whole, then one page of records, in one read
// transaction.
func (s *Store) ParkedMails(ctx context.Context, cursor string, limit int) ([]*store.Mail, string, error) {
	const op = "parked mails"
	if err := ctx.Err(); err != nil {
		return nil, "", store.Unavailable(op, err)
	}
	var out []*store.Mail
	var next string
	err := s.db.View(func(tx *bolt.Tx) error {
		parked, mails := tx.Bucket(bucketParked), tx.Bucket(bucketMail)
		if parked == nil || mails == nil {
			return nil
		}
		var entries []store.ParkedEntry
		if err := parked.ForEach(func(k, v []byte) error {
			var at int64
			if len(v) == 8 {
				at = int64(binary.BigEndian.Uint64(v))
			}
			entries = append(entries, store.ParkedEntry{ID: string(k), At: at})
			return nil
		}); err != nil {
			return err
		}
		ids, n, err := store.PageParked(entries, cursor, limit)
		if err != nil {
			return err
		}
		next = n
		for _, id := range ids {
			raw := mails.Get([]byte(id))
			if raw == nil {
				continue
			}
			var m store.Mail
			if err := json.Unmarshal(raw, &m); err != nil {
				return fmt.Errorf("%s: decode %s: %w", op, id, err)
			}
			out = append(out, &m)
		}
		return nil
	})
	return out, next, err
}

// GetMail implements store.ParkedMails.
func (s *Store) GetMail(ctx context.Context, id string) (*store.Mail, error) {
	if id == "" {
		return nil, store.ErrNotFound
	}
	var m store.Mail
	if err := s.getJSON(ctx, "get mail", bucketMail, id, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

var _ store.ParkedMails = (*Store)(nil)
