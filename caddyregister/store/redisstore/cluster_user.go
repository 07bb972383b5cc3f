package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// UseToken implements store.Store: the token index ({ns:k:<hash>}) names
// the user, then one optimistic transaction in the user's slot marks the
// token used and saves the user, as the single-node layout does in the
// namespace's slot. Messages from outbox are queued once the
// transaction committed (ClusterStore.enqueue says what a crash costs).
func (s *ClusterStore) UseToken(ctx context.Context, tokenHash string, now time.Time, mutate func(*store.User) error, outbox ...store.OutboxFunc) (*store.User, error) {
	const op = "use token"
	if tokenHash == "" {
		return nil, store.ErrNotFound
	}
	uid, err := s.c.Get(ctx, s.TokenIndexKey(tokenHash)).Result()
	if errors.Is(err, redis.Nil) || err == nil && isReservation(uid) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, store.Unavailable(op, err)
	}
	tokKey, userKey := s.UserKey(uid, "token", tokenHash), s.UserKey(uid, "user")
	var out *store.User
	var result error
	var mails []*store.Mail
	attempt := func(tx *redis.Tx) error {
		out, result = nil, nil
		var tok store.Token
		if err := getJSON(ctx, tx, op, tokKey, &tok); err != nil {
			return err
		}
		if !now.Before(tok.ExpiresAt) {
			return store.ErrNotFound
		}
		u, err := s.getUser(ctx, tx, uid)
		if err != nil {
			return err
		}
		before := *u
		var use store.TokenUse
		if out, use, result = store.ApplyTokenUse(&tok, u, now, mutate); result != nil {
			return nil
		}
		if mails, err = store.RunOutboxes(op, outbox, &before, out); err != nil {
			out, result = nil, err
			return nil
		}
		if err := s.mailsFree(ctx, op, mails); err != nil {
			out, result = nil, err
			return nil
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, userKey, use.User, 0)
			p.SetArgs(ctx, tokKey, use.Token, redis.SetArgs{KeepTTL: true})
			return nil
		})
		return err
	}
	for range useTokenAttempts {
		err := s.c.Watch(ctx, attempt, tokKey, userKey)
		switch {
		case errors.Is(err, redis.TxFailedErr):
			continue
		case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrUnavailable):
			return nil, err
		case err != nil:
			if !errors.Is(err, errDecode) {
				err = store.Unavailable(op, err)
			}
			return nil, err
		}
		if result == nil {
			if err := s.enqueue(ctx, op, mails); err != nil {
				return nil, err
			}
		}
		return out, result
	}
	return nil, store.Unavailable(op, fmt.Errorf("token %s: still contended after %d attempts", tokenHash, useTokenAttempts))
}

// UpdateUser implements store.Store with a compare-and-set on the record
// (its slot alone: indexes do not follow a patch); messages from
// p.Outbox are queued after it.
func (s *ClusterStore) UpdateUser(ctx context.Context, id string, p store.UserPatch) (*store.User, error) {
	const op = "update user"
	if id == "" {
		return nil, store.ErrNotFound
	}
	key := s.UserKey(id, "user")
	for range updateUserAttempts {
		raw, err := s.c.Get(ctx, key).Bytes()
		if errors.Is(err, redis.Nil) || err == nil && isReservation(string(raw)) {
			return nil, store.ErrNotFound
		}
		if err != nil {
			return nil, store.Unavailable(op, err)
		}
		u, next, mails, err := patchUser(op, key, raw, p)
		if err != nil {
			return nil, err
		}
		if err := s.mailsFree(ctx, op, mails); err != nil {
			return nil, err
		}
		swapped, err := swapScript.Run(ctx, s.c, []string{key}, raw, next).Int()
		if err != nil {
			return nil, store.Unavailable(op, err)
		}
		if swapped == 1 {
			return u, s.enqueue(ctx, op, mails)
		}
	}
	return nil, store.Unavailable(op, fmt.Errorf("user %s: still contended after %d attempts", id, updateUserAttempts))
}

// CreateSession implements store.Store with the single-node script: the
// session, its index and the user record it checks are all in the user's
// slot here; the messages are queued after it.
func (s *ClusterStore) CreateSession(ctx context.Context, sess *store.Session, outbox ...*store.Mail) error {
	if err := store.CheckSession(sess); err != nil {
		return err
	}
	if err := store.CheckOutbox("create session", outbox); err != nil {
		return err
	}
	if err := s.mailsFree(ctx, "create session", outbox); err != nil {
		return err
	}
	// The messages go to the outbox shards afterwards, not into the
	// script: the user's slot is not theirs.
	if err := s.base.runCreateSession(ctx, sess, s.UserKey(sess.UserID, "user"), nil); err != nil {
		return err
	}
	return s.enqueue(ctx, "create session", outbox)
}

// RotateRefresh implements store.Store (the user's slot, as single-node).
func (s *ClusterStore) RotateRefresh(ctx context.Context, r store.Rotation) (*store.Session, error) {
	return s.base.RotateRefresh(ctx, r)
}

// GetSession implements store.Store.
func (s *ClusterStore) GetSession(ctx context.Context, userID, sid string) (*store.Session, error) {
	return s.base.GetSession(ctx, userID, sid)
}

// ListSessions implements store.Store.
func (s *ClusterStore) ListSessions(ctx context.Context, userID string) ([]*store.Session, error) {
	return s.base.ListSessions(ctx, userID)
}

// RevokeSession implements store.Store; the revocation feed stays in the
// namespace's slot (a second round trip, as single-node).
func (s *ClusterStore) RevokeSession(ctx context.Context, userID, sid string) error {
	return s.base.RevokeSession(ctx, userID, sid)
}

// RevokeUserSessions implements store.Store.
func (s *ClusterStore) RevokeUserSessions(ctx context.Context, userID, exceptSID string) ([]string, error) {
	return s.base.RevokeUserSessions(ctx, userID, exceptSID)
}

// Revocations implements store.Store.
func (s *ClusterStore) Revocations(ctx context.Context, after uint64, limit int) ([]store.Revocation, uint64, error) {
	return s.base.Revocations(ctx, after, limit)
}
