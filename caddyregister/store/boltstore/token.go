package boltstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// sweepBatch bounds how many expired tokens one ClaimMail deletes.
const sweepBatch = 1000

// tokenFor validates n.Token and returns the record to store: a copy with
// UserID filled in when the caller left it empty.
func tokenFor(n store.NewUser) (*store.Token, error) {
	if n.Token == nil {
		return nil, nil
	}
	t := *n.Token
	switch {
	case t.Hash == "":
		return nil, errors.New("create user: token without hash")
	case t.ExpiresAt.UnixMilli() <= 0:
		return nil, errors.New("create user: token without expiry")
	case t.UserID == "":
		t.UserID = n.User.ID
	case t.UserID != n.User.ID:
		return nil, fmt.Errorf("create user: token belongs to user %q, not %q", t.UserID, n.User.ID)
	}
	return &t, nil
}

// deleteToken removes a token and its expiry entry.
func deleteToken(tx *bolt.Tx, hash []byte, expiresAt time.Time) error {
	tokens, err := bucket(tx, bucketTokens)
	if err != nil {
		return err
	}
	exp, err := bucket(tx, bucketTokenExp)
	if err != nil {
		return err
	}
	if err := tokens.Delete(hash); err != nil {
		return err
	}
	return exp.Delete(timeKey(expiresAt, string(hash)))
}

// sweepTokens deletes up to sweepBatch tokens expired at nowMs (wall clock).
func sweepTokens(tx *bolt.Tx, nowMs int64) error {
	tokens, err := bucket(tx, bucketTokens)
	if err != nil {
		return err
	}
	exp, err := bucket(tx, bucketTokenExp)
	if err != nil {
		return err
	}
	var expired [][]byte
	c := exp.Cursor()
	for k, _ := c.First(); k != nil && keyMillis(k) <= nowMs && len(expired) < sweepBatch; k, _ = c.Next() {
		expired = append(expired, bytes.Clone(k))
	}
	for _, k := range expired {
		if err := tokens.Delete(k[8:]); err != nil {
			return err
		}
		if err := exp.Delete(k); err != nil {
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
func (s *Store) UseToken(ctx context.Context, tokenHash string, now time.Time, mutate func(*store.User) error) (*store.User, error) {
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
		tokens, err := bucket(tx, bucketTokens)
		if err != nil {
			return err
		}
		users, err := bucket(tx, bucketUsers)
		if err != nil {
			return err
		}
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
		if tok.UsedAt != nil {
			out, result = &u, store.ErrTokenUsed
			return errAbort
		}
		before := u
		if err := mutate(&u); err != nil {
			result = err
			return errAbort
		}
		if err := checkMutation(&before, &u); err != nil {
			result = err
			return errAbort
		}
		userJSON, err := json.Marshal(&u)
		if err != nil {
			result = fmt.Errorf("%s: encode user: %w", op, err)
			return errAbort
		}
		used := now
		tok.UsedAt = &used
		tokJSON, err := json.Marshal(&tok)
		if err != nil {
			result = fmt.Errorf("%s: encode token: %w", op, err)
			return errAbort
		}
		if err := users.Put([]byte(u.ID), userJSON); err != nil {
			return err
		}
		if err := tokens.Put(hash, tokJSON); err != nil {
			return err
		}
		out = &u
		return nil
	})
	if err != nil && !errors.Is(err, errAbort) {
		return nil, store.Unavailable(op, err)
	}
	return out, result
}

// checkMutation refuses changes UseToken cannot make: it rewrites the user
// record only, so the fields its indexes (and tenant) hang on must stay.
func checkMutation(before, after *store.User) error {
	var changed []string
	for _, f := range []struct {
		name     string
		old, new string
	}{
		{"ID", before.ID, after.ID},
		{"TenantID", before.TenantID, after.TenantID},
		{"Email", before.Email, after.Email},
		{"EmailKey", before.EmailKey, after.EmailKey},
		{"Login", before.Login, after.Login},
		{"LoginKey", before.LoginKey, after.LoginKey},
	} {
		if f.old != f.new {
			changed = append(changed, f.name)
		}
	}
	if len(changed) > 0 {
		return fmt.Errorf("use token: mutate changed %s, which UseToken may not change", strings.Join(changed, ", "))
	}
	return nil
}
