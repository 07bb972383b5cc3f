package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// Secret implements store.Porter.
func (s *Store) Secret(ctx context.Context, name string) ([]byte, error) {
	var out []byte
	err := s.lookup(ctx, "read secret", bucketSecrets, name, func(v []byte) { out = bytes.Clone(v) })
	return out, err
}

// UserTokens implements store.Porter: the user's refs name its tokens.
func (s *Store) UserTokens(ctx context.Context, userID string, now time.Time) ([]*store.Token, error) {
	const op = "list user tokens"
	if err := ctx.Err(); err != nil {
		return nil, store.Unavailable(op, err)
	}
	var out []*store.Token
	err := s.db.View(func(tx *bolt.Tx) error {
		out = nil
		bs, err := buckets(tx, bucketUserRefs, bucketTokens)
		if err != nil {
			return err
		}
		p := refKey(userID, "token:")
		c := bs[0].Cursor()
		for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
			raw := bs[1].Get(k[len(p):])
			if raw == nil {
				continue // swept since; the ref is stale
			}
			var t store.Token
			if err := json.Unmarshal(raw, &t); err != nil {
				return fmt.Errorf("%w: token of user %s: %w", errCorrupt, userID, err)
			}
			if t.ExpiresAt.After(now) {
				out = append(out, &t)
			}
		}
		return nil
	})
	if err != nil {
		return nil, boltErr(op, err)
	}
	return out, nil
}

// PutToken implements store.Porter in one read-write transaction.
func (s *Store) PutToken(ctx context.Context, t *store.Token) (bool, error) {
	const op = "put token"
	if err := store.CheckPutToken(t, s.clock()); err != nil {
		return false, err
	}
	body, err := json.Marshal(t)
	if err != nil {
		return false, fmt.Errorf("%s: encode: %w", op, err)
	}
	if err := ctx.Err(); err != nil {
		return false, store.Unavailable(op, err)
	}
	var wrote bool
	var missing bool
	err = s.db.Update(func(tx *bolt.Tx) error {
		wrote, missing = false, false
		bs, err := buckets(tx, bucketUsers, bucketTokens, bucketTokenExp, bucketUserRefs)
		if err != nil {
			return err
		}
		if !has(bs[0], []byte(t.UserID)) {
			missing = true
			return nil
		}
		hash := []byte(t.Hash)
		if has(bs[1], hash) {
			return nil
		}
		wrote = true
		return putAll(tx, []claim{
			{"", bucketTokens, hash, body},
			{"", bucketTokenExp, timeKey(t.ExpiresAt, t.Hash), []byte{}},
			{"", bucketUserRefs, refKey(t.UserID, "token:"+t.Hash), []byte{}},
		})
	})
	switch {
	case err != nil:
		return false, boltErr(op, err)
	case missing:
		return false, fmt.Errorf("%s: user %s: %w", op, t.UserID, store.ErrNotFound)
	}
	return wrote, nil
}

// EachMail implements store.Porter in one read transaction: the chains
// first (each head queued, the rest behind it), then the other queued
// messages in due order (a chained one that is not its chain's head was
// parked and queued again: Unchained), then the parked ones.
func (s *Store) EachMail(ctx context.Context, fn func(*store.Mail, store.MailState) error) error {
	const op = "list outbox"
	if err := ctx.Err(); err != nil {
		return store.Unavailable(op, err)
	}
	var stop error // fn's error, returned as it is
	err := s.db.View(func(tx *bolt.Tx) error {
		bs, err := buckets(tx, bucketMail, bucketOutbox, bucketOutboxByID, bucketParked, bucketChain)
		if err != nil {
			return err
		}
		recs, q, byID, parked, chains := bs[0], bs[1], bs[2], bs[3], bs[4]
		emit := func(id []byte, st store.MailState) error {
			raw := recs.Get(id)
			if raw == nil {
				return nil // a dangling entry; ClaimMail drops those
			}
			var m store.Mail
			if err := json.Unmarshal(raw, &m); err != nil {
				return fmt.Errorf("%w: mail %s: %w", errCorrupt, id, err)
			}
			if err := fn(&m, st); err != nil {
				stop = err
				return errAbort
			}
			return ctx.Err()
		}
		var chain []byte // the chain prefix of the entry before
		c := chains.Cursor()
		for k, id := c.First(); k != nil; k, id = c.Next() {
			if len(k) < 9 {
				continue
			}
			p := k[:len(k)-8]
			st := store.MailState{Behind: true}
			if !bytes.Equal(p, chain) {
				chain = bytes.Clone(p)
				st = store.MailState{At: time.UnixMilli(keyMillis(byID.Get(id)))}
				if !has(byID, id) {
					// A head not queued (it cannot happen, but an import
					// must not lose it): due at once.
					st.At = time.Now()
				}
			}
			if err := emit(id, st); err != nil {
				return err
			}
		}
		qc := q.Cursor()
		for k, id := qc.First(); k != nil; k, id = qc.Next() {
			st := store.MailState{At: time.UnixMilli(keyMillis(k))}
			if chain := mailChain(tx, id); chain != "" {
				p := chainPrefix(chain)
				if hk, head := chains.Cursor().Seek(p); hk != nil && bytes.HasPrefix(hk, p) && bytes.Equal(head, id) {
					continue // a chain's head: emitted with its chain
				}
				st.Unchained = true // a parked one queued again
			}
			if err := emit(id, st); err != nil {
				return err
			}
		}
		pc := parked.Cursor()
		for id, at := pc.First(); id != nil; id, at = pc.Next() {
			if err := emit(id, store.MailState{Parked: true, At: time.UnixMilli(keyMillis(at))}); err != nil {
				return err
			}
		}
		return nil
	})
	if stop != nil {
		return stop
	}
	return boltErr(op, err)
}

// PutMail implements store.Porter in one read-write transaction.
func (s *Store) PutMail(ctx context.Context, m *store.Mail, st store.MailState) (bool, error) {
	const op = "put mail"
	if err := store.CheckMailState(m, st); err != nil {
		return false, err
	}
	body, err := json.Marshal(m)
	if err != nil {
		return false, fmt.Errorf("%s: encode: %w", op, err)
	}
	if err := ctx.Err(); err != nil {
		return false, store.Unavailable(op, err)
	}
	at := st.At
	if at.IsZero() {
		at = time.Now() // behind a chain that has gone since
	}
	var wrote bool
	err = s.db.Update(func(tx *bolt.Tx) error {
		wrote = false
		bs, err := buckets(tx, bucketMail, bucketOutbox, bucketOutboxByID, bucketChain, bucketParked, bucketUsers, bucketUserRefs)
		if err != nil {
			return err
		}
		recs, q, byID, chains, parked, users, refs := bs[0], bs[1], bs[2], bs[3], bs[4], bs[5], bs[6]
		id := []byte(m.ID)
		if has(recs, id) {
			return nil
		}
		wrote = true
		if err := recs.Put(id, body); err != nil {
			return err
		}
		if store.Owned(m) && m.UserID != "" && has(users, []byte(m.UserID)) {
			if err := refs.Put(refKey(m.UserID, "mail:"+m.ID), []byte{}); err != nil {
				return err
			}
		}
		switch {
		case st.Parked:
			return parked.Put(id, binary.BigEndian.AppendUint64(nil, uint64(max(at.UnixMilli(), 0))))
		case st.Unchained:
			return enqueue(q, byID, id, at)
		}
		return chainOrQueue(q, byID, chains, m, id, at)
	})
	if err != nil {
		return false, boltErr(op, err)
	}
	return wrote, nil
}

// Sequences implements store.Porter.
func (s *Store) Sequences(ctx context.Context) (map[string]int64, error) {
	const op = "list sequences"
	if err := ctx.Err(); err != nil {
		return nil, store.Unavailable(op, err)
	}
	out := map[string]int64{}
	err := s.db.View(func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketSeq)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("%w: sequence %q: a value of %d bytes", errCorrupt, k, len(v))
			}
			out[string(k)] = int64(binary.BigEndian.Uint64(v))
			return nil
		})
	})
	if err != nil {
		return nil, boltErr(op, err)
	}
	return out, nil
}

// RaiseSequence implements store.Porter in one read-write transaction.
func (s *Store) RaiseSequence(ctx context.Context, name string, n int64) error {
	const op = "raise sequence"
	if name == "" || n < 0 {
		return fmt.Errorf("%s: bad sequence %q or number %d", op, name, n)
	}
	if err := ctx.Err(); err != nil {
		return store.Unavailable(op, err)
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketSeq)
		if err != nil {
			return err
		}
		if v := b.Get([]byte(name)); v != nil {
			if len(v) != 8 {
				return fmt.Errorf("%w: sequence %q: a value of %d bytes", errCorrupt, name, len(v))
			}
			if int64(binary.BigEndian.Uint64(v)) >= n {
				return nil
			}
		}
		return b.Put([]byte(name), binary.BigEndian.AppendUint64(nil, uint64(n)))
	})
	return boltErr(op, err)
}

// boltErr wraps a transaction's error for op: a record that does not
// decode or encode stays apart from the store being unavailable (retrying
// will not help it); nil stays nil.
func boltErr(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errCorrupt) || errors.Is(err, errEncode):
		return fmt.Errorf("%s: %w", op, err)
	}
	return store.Unavailable(op, err)
}

var _ store.Porter = (*Store)(nil)
