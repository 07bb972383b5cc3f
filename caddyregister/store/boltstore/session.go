package boltstore

import (
	"bytes"

	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// Session buckets (see the package comment's layout):
//
//	sessions         <user id>\x00<sid>   -> session (JSON); a prefix scan lists a user's
//	session_expiry   <idle expiry><key>   -> empty; <expiry> as <due>, swept like token_expiry
var (
	bucketSessions   = []byte("sessions")
	bucketSessionExp = []byte("session_expiry")
)

func init() {
	allBuckets = append(allBuckets, bucketSessions, bucketSessionExp)
}

// sessionKey keys a session under its user, so one prefix scan finds every
// session of a user without a separate index.
func sessionKey(userID, sid string) []byte {
	k := make([]byte, 0, len(userID)+1+len(sid))
	k = append(k, userID...)
	k = append(k, 0)
	return append(k, sid...)
}

// sweepSessions deletes up to sweepBatch sessions whose idle expiry passed
// at nowMs (ClaimMail calls it with the token and idempotency sweeps).
func sweepSessions(tx *bolt.Tx, nowMs int64) error {
	return sweepExpired(tx, bucketSessions, bucketSessionExp, nowMs, sweepBatch, nil)
}

// putSession writes s and moves its expiry entry from old (zero: none).
func putSession(tx *bolt.Tx, s *store.Session, old time.Time) error {
	raw, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode session: %w", err)
	}
	bs, err := buckets(tx, bucketSessions, bucketSessionExp)
	if err != nil {
		return err
	}
	k := sessionKey(s.UserID, s.ID)
	if !old.IsZero() {
		if err := bs[1].Delete(timeKey(old, string(k))); err != nil {
			return err
		}
	}
	if err := bs[0].Put(k, raw); err != nil {
		return err
	}
	return bs[1].Put(timeKey(s.IdleExpiresAt, string(k)), nil)
}

// readSession returns the stored session under k, or nil.
func readSession(b *bolt.Bucket, k []byte) (*store.Session, error) {
	raw := b.Get(k)
	if raw == nil {
		return nil, nil
	}
	var s store.Session
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("decode session %q: %w", k, err)
	}
	return &s, nil
}

// CreateSession implements store.Store; the user must exist, and not be
// inactive, in the same transaction.
func (s *Store) CreateSession(ctx context.Context, sess *store.Session, outbox ...*store.Mail) error {
	const op = "create session"
	if err := store.CheckSession(sess); err != nil {
		return err
	}
	if err := store.CheckOutbox(op, outbox); err != nil {
		return err
	}
	var mailConflict *store.ConflictError
	if err := ctx.Err(); err != nil {
		return store.Unavailable(op, err)
	}
	var conflict bool
	var refused error
	err := s.db.Update(func(tx *bolt.Tx) error {
		conflict, refused = false, nil
		b, err := bucket(tx, bucketSessions)
		if err != nil {
			return err
		}
		switch u, err := readUser(tx, sess.UserID); {
		case err != nil:
			return err
		case u == nil:
			// Erased meanwhile (DeleteUser): no session for it.
			refused = store.ErrNotFound
			return errAbort
		case u.Status == store.StatusInactive:
			refused = store.ErrUserInactive // disabled meanwhile
			return errAbort
		}
		if has(b, sessionKey(sess.UserID, sess.ID)) {
			conflict = true
			return errAbort
		}
		mailConflict = nil
		if err := putOutbox(tx, outbox, &mailConflict); err != nil {
			return err
		}
		return putSession(tx, sess, time.Time{})
	})
	if mailConflict != nil {
		return mailConflict
	}
	if refused != nil {
		return fmt.Errorf("%s: user %s: %w", op, sess.UserID, refused)
	}
	if conflict {
		return &store.ConflictError{Field: "session_id"}
	}
	if err != nil {
		return store.Unavailable(op, err)
	}
	return nil
}

// RotateRefresh implements store.Store in one read-write transaction, so
// of concurrent rotations the first to commit wins and the others see the
// rotated session.
func (s *Store) RotateRefresh(ctx context.Context, r store.Rotation) (*store.Session, error) {
	const op = "rotate refresh token"
	if r.UserID == "" || r.SessionID == "" || r.Hash == "" {
		return nil, store.ErrNotFound
	}
	if r.NewHash == "" {
		return nil, errors.New("rotate refresh token: new hash is required")
	}
	if err := ctx.Err(); err != nil {
		return nil, store.Unavailable(op, err)
	}
	k := sessionKey(r.UserID, r.SessionID)
	var out *store.Session
	var result error
	err := s.db.Update(func(tx *bolt.Tx) error {
		out, result = nil, nil
		b, err := bucket(tx, bucketSessions)
		if err != nil {
			return err
		}
		cur, err := readSession(b, k)
		if err != nil {
			result = fmt.Errorf("%s: %w", op, err)
			return errAbort
		}
		if cur == nil || !cur.Live(r.Now) {
			result = store.ErrNotFound
			return errAbort
		}
		next, err := store.ApplyRotation(cur, r)
		switch {
		case errors.Is(err, store.ErrRefreshReused):
			result = err
			return deleteExpiring(tx, bucketSessions, bucketSessionExp, k, cur.IdleExpiresAt)
		case err != nil:
			result = err
			return errAbort
		}
		out = next
		return putSession(tx, next, cur.IdleExpiresAt)
	})
	if err != nil && !errors.Is(err, errAbort) {
		return nil, store.Unavailable(op, err)
	}
	if errors.Is(result, store.ErrRefreshReused) {
		s.feed.publish(r.SessionID)
	}
	return out, result
}

// GetSession implements store.Store. An expired session reads as
// ErrNotFound (the sweep deletes it).
func (s *Store) GetSession(ctx context.Context, userID, sid string) (*store.Session, error) {
	const op = "get session"
	if userID == "" || sid == "" {
		return nil, store.ErrNotFound
	}
	if err := ctx.Err(); err != nil {
		return nil, store.Unavailable(op, err)
	}
	var out *store.Session
	var decodeErr error
	err := s.db.View(func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketSessions)
		if err != nil {
			return err
		}
		out, decodeErr = readSession(b, sessionKey(userID, sid))
		return nil
	})
	if err != nil {
		return nil, store.Unavailable(op, err)
	}
	if decodeErr != nil {
		return nil, fmt.Errorf("%s: %w", op, decodeErr)
	}
	if out == nil || !out.Live(time.Now()) {
		return nil, store.ErrNotFound
	}
	return out, nil
}

// ListSessions implements store.Store with one prefix scan of the user's
// keys.
func (s *Store) ListSessions(ctx context.Context, userID string) ([]*store.Session, error) {
	const op = "list sessions"
	if userID == "" {
		return nil, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, store.Unavailable(op, err)
	}
	now := time.Now()
	var out []*store.Session
	var decodeErr error
	err := s.db.View(func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketSessions)
		if err != nil {
			return err
		}
		prefix := sessionKey(userID, "")
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var sess store.Session
			if err := json.Unmarshal(v, &sess); err != nil {
				decodeErr = fmt.Errorf("decode session %q: %w", k, err)
				return nil
			}
			if sess.Live(now) {
				out = append(out, &sess)
			}
		}
		return nil
	})
	if err != nil {
		return nil, store.Unavailable(op, err)
	}
	if decodeErr != nil {
		return nil, fmt.Errorf("%s: %w", op, decodeErr)
	}
	store.SortSessions(out)
	return out, nil
}

// RevokeSession implements store.Store.
func (s *Store) RevokeSession(ctx context.Context, userID, sid string) error {
	if userID == "" || sid == "" {
		return store.ErrNotFound
	}
	revoked, err := s.revoke(ctx, "revoke session", userID, func(k []byte) bool {
		return bytes.Equal(k, sessionKey(userID, sid))
	})
	if err != nil {
		return err
	}
	if len(revoked) == 0 {
		return store.ErrNotFound
	}
	return nil
}

// RevokeUserSessions implements store.Store in one read-write transaction.
func (s *Store) RevokeUserSessions(ctx context.Context, userID, exceptSID string) ([]string, error) {
	if userID == "" {
		return nil, nil
	}
	except := sessionKey(userID, exceptSID)
	return s.revoke(ctx, "revoke user sessions", userID, func(k []byte) bool {
		return exceptSID == "" || !bytes.Equal(k, except)
	})
}

// revoke deletes, in one transaction, every session of userID whose key
// pick selects, publishes them to the feed and returns their ids. Expired
// sessions are deleted too but not returned.
func (s *Store) revoke(ctx context.Context, op, userID string, pick func(k []byte) bool) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, store.Unavailable(op, err)
	}
	now := time.Now()
	var sids []string
	err := s.db.Update(func(tx *bolt.Tx) error {
		var err error
		sids, err = dropSessions(tx, userID, now, pick)
		return err
	})
	if err != nil {
		return nil, store.Unavailable(op, err)
	}
	s.feed.publish(sids...)
	return sids, nil
}

// Revocations implements store.Store. The feed lives in process memory:
// one bbolt file serves one process, so every revocation passes through
// this Store; a restart empties it, as it empties every cache reading it.
func (s *Store) Revocations(ctx context.Context, after uint64, limit int) ([]store.Revocation, uint64, error) {
	if err := ctx.Err(); err != nil {
		return nil, after, store.Unavailable("revocations", err)
	}
	return s.feed.since(after, limit)
}

// revocationFeed is the in-memory revocation feed: the last
// store.RevocationFeedSize revocations, numbered from 1.
type revocationFeed struct {
	mu      sync.Mutex
	head    uint64 // Seq of the last entry
	entries []store.Revocation
}

func (f *revocationFeed) publish(sids ...string) {
	if len(sids) == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, sid := range sids {
		f.head++
		f.entries = append(f.entries, store.Revocation{Seq: f.head, SessionID: sid})
	}
	if n := len(f.entries); n > 2*store.RevocationFeedSize {
		// Trim in batches, so publishing stays amortized O(1).
		f.entries = slices.Clone(f.entries[n-store.RevocationFeedSize:])
	}
}

func (f *revocationFeed) since(after uint64, limit int) ([]store.Revocation, uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	floor := f.head - uint64(len(f.entries)) // entries up to floor were dropped
	if after < floor || after > f.head {
		return nil, f.head, store.ErrRevocationGap
	}
	first := int(after - floor)
	n := min(len(f.entries)-first, max(limit, 1))
	if n <= 0 {
		return nil, after, nil
	}
	out := slices.Clone(f.entries[first : first+n])
	return out, out[n-1].Seq, nil
}
