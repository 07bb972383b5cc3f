package boltstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// sweepBatch bounds how many expired tokens one ClaimMail deletes.
const sweepBatch = 1000

// deleteToken removes a token and its expiry entry.
func deleteToken(tx *bolt.Tx, hash []byte, expiresAt time.Time) error {
	return deleteExpiring(tx, bucketTokens, bucketTokenExp, hash, expiresAt)
}

// sweepTokens deletes up to sweepBatch tokens expired at nowMs (wall clock).
func sweepTokens(tx *bolt.Tx, nowMs int64) error {
	return sweepExpired(tx, bucketTokens, bucketTokenExp, nowMs, sweepBatch, nil)
}

// deleteExpiring deletes the record under key from bucket recs and its
// entry (a timeKey of expiresAt and key) from the expiry index exp.
func deleteExpiring(tx *bolt.Tx, recs, exp []byte, key []byte, expiresAt time.Time) error {
	bs, err := buckets(tx, recs, exp)
	if err != nil {
		return err
	}
	if err := bs[0].Delete(key); err != nil {
		return err
	}
	return bs[1].Delete(timeKey(expiresAt, string(key)))
}

// sweepExpired deletes up to limit entries of the expiry index exp due at
// nowMs, and with each the record under its key in recs, unless keep
// (when not nil) holds for the entry and the record (nil when absent).
func sweepExpired(tx *bolt.Tx, recs, exp []byte, nowMs int64, limit int, keep func(entry, record []byte) bool) error {
	bs, err := buckets(tx, recs, exp)
	if err != nil {
		return err
	}
	r, e := bs[0], bs[1]
	var expired [][]byte
	c := e.Cursor()
	for k, _ := c.First(); k != nil && keyMillis(k) <= nowMs && len(expired) < limit; k, _ = c.Next() {
		expired = append(expired, bytes.Clone(k))
	}
	for _, k := range expired {
		if keep == nil || !keep(k, r.Get(k[8:])) {
			if err := r.Delete(k[8:]); err != nil {
				return err
			}
		}
		if err := e.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// errAbort rolls a transaction back without being a backend failure.
var errAbort = errors.New("abort")

// UseToken implements store.Store in one read-write transaction. mutate runs
// inside it, holding bbolt's single writer lock, so it must be quick: hash
// a new password before calling UseToken, not in mutate.
//
// mutate may change only what does not live in an index (status, password
// hash, permissions, names, attributes, UpdatedAt...): a change to ID,
// TenantID, Email, EmailKey, Login or LoginKey is refused with an error and
// nothing is written.
func (s *Store) UseToken(ctx context.Context, tokenHash string, now time.Time, mutate func(*store.User) error, outbox ...store.OutboxFunc) (*store.User, error) {
	const op = "use token"
	if tokenHash == "" {
		return nil, store.ErrNotFound
	}
	if err := ctx.Err(); err != nil {
		return nil, store.Unavailable(op, err)
	}
	hash := []byte(tokenHash)
	var out *store.User
	var result error
	err := s.db.Update(func(tx *bolt.Tx) error {
		out, result = nil, nil
		bs, err := buckets(tx, bucketTokens, bucketUsers)
		if err != nil {
			return err
		}
		tokens, users := bs[0], bs[1]
		raw := tokens.Get(hash)
		if raw == nil {
			result = store.ErrNotFound
			return errAbort
		}
		var tok store.Token
		if err := json.Unmarshal(raw, &tok); err != nil {
			result = fmt.Errorf("%s: decode token: %w", op, err)
			return errAbort
		}
		if !now.Before(tok.ExpiresAt) {
			result = store.ErrNotFound
			if time.Now().Before(tok.ExpiresAt) {
				return errAbort // expired for the caller, not yet by the clock
			}
			return deleteToken(tx, hash, tok.ExpiresAt) // lazy delete, committed
		}
		raw = users.Get([]byte(tok.UserID))
		if raw == nil {
			result = store.ErrNotFound
			return errAbort
		}
		var u store.User
		if err := json.Unmarshal(raw, &u); err != nil {
			result = fmt.Errorf("%s: decode user %s: %w", op, tok.UserID, err)
			return errAbort
		}
		var use store.TokenUse
		before := u
		if out, use, result = store.ApplyTokenUse(&tok, &u, now, mutate); result != nil {
			return errAbort
		}
		var conflict *store.ConflictError
		for _, f := range outbox {
			mails, err := store.RunOutbox(op, f, &before, out)
			if err != nil {
				out, result = nil, err
				return errAbort
			}
			if err := putOutbox(tx, mails, &conflict); err != nil {
				if conflict != nil {
					out, result = nil, conflict
				}
				return err
			}
		}
		if err := users.Put([]byte(u.ID), use.User); err != nil {
			return err
		}
		return tokens.Put(hash, use.Token)
	})
	if err != nil && !errors.Is(err, errAbort) {
		return nil, store.Unavailable(op, err)
	}
	return out, result
}
