package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// PutChallenge implements store.Store with SET PX.
func (s *Store) PutChallenge(ctx context.Context, token string, answerHash []byte, ttl time.Duration) error {
	if token == "" {
		return errors.New("put challenge: empty token")
	}
	if ttl < time.Millisecond {
		return fmt.Errorf("put challenge: ttl %v is below 1ms", ttl)
	}
	if err := s.c.Set(ctx, s.Key("challenge", token), answerHash, ttl).Err(); err != nil {
		return store.Unavailable("put challenge", err)
	}
	return nil
}

// TakeChallenge implements store.Store with GETDEL, so of concurrent takers
// exactly one gets the answer.
func (s *Store) TakeChallenge(ctx context.Context, token string) ([]byte, error) {
	if token == "" {
		return nil, store.ErrNotFound
	}
	b, err := s.c.GetDel(ctx, s.Key("challenge", token)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, store.Unavailable("take challenge", err)
	}
	return b, nil
}

// useTokenAttempts bounds UseToken's optimistic retries under contention.
const useTokenAttempts = 10

// UseToken implements store.Store as an optimistic transaction: WATCH the
// token and its user, read both, apply mutate, and write both in MULTI/EXEC;
// a concurrent change to either key fails the EXEC and the whole attempt is
// redone on fresh data (at most useTokenAttempts times). mutate may
// therefore run more than once, each time on a fresh copy of the user, but
// its result is written at most once.
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
	tokKey := s.Key("token", tokenHash)
	var out *store.User
	var result error // the outcome once an attempt ran to its end
	attempt := func(tx *redis.Tx) error {
		out, result = nil, nil
		var tok store.Token
		if err := getJSON(ctx, tx, op, tokKey, &tok); err != nil {
			return err
		}
		if !now.Before(tok.ExpiresAt) {
			return store.ErrNotFound
		}
		userKey := s.Key("user", tok.UserID)
		if err := tx.Watch(ctx, userKey).Err(); err != nil {
			return err
		}
		var u store.User
		if err := getJSON(ctx, tx, op, userKey, &u); err != nil {
			return err
		}
		var use store.TokenUse
		before := u
		if out, use, result = store.ApplyTokenUse(&tok, &u, now, mutate); result != nil {
			return nil // answered; nothing to write
		}
		mails, err := store.RunOutboxes(op, outbox, &before, out)
		if err != nil {
			out, result = nil, err
			return nil
		}
		if len(mails) > 0 {
			// Watched, so an id taken between this check and EXEC
			// fails the transaction (redone) instead of overwriting.
			keys := s.mailKeys(mails)
			if err := tx.Watch(ctx, keys...).Err(); err != nil {
				return err
			}
			if n, err := tx.Exists(ctx, keys...).Result(); err != nil {
				return err
			} else if n > 0 {
				out, result = nil, &store.ConflictError{Field: "mail_id"}
				return nil
			}
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, userKey, use.User, 0)
			p.SetArgs(ctx, tokKey, use.Token, redis.SetArgs{KeepTTL: true})
			return s.enqueueIn(ctx, p, mails)
		})
		return err
	}
	for range useTokenAttempts {
		err := s.c.Watch(ctx, attempt, tokKey)
		switch {
		case errors.Is(err, redis.TxFailedErr):
			continue // a watched key changed: redo on fresh data
		case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrUnavailable):
			return nil, err
		case err != nil:
			if !errors.Is(err, errDecode) {
				err = store.Unavailable(op, err)
			}
			return nil, err
		}
		return out, result
	}
	return nil, store.Unavailable(op, fmt.Errorf("token %s: still contended after %d attempts", tokenHash, useTokenAttempts))
}
