package boltstore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// User management buckets (store.Users):
//
//	users_by_created  <created><user id>  -> empty; <created> = 8 bytes big-endian unix ms (store.UserIndexScore),
//	                                        so a cursor walks users by creation time, then id (ListUsers)
//	meta              user_index          -> "1" once BackfillUserIndex ran
//
// CreateUser adds the entry in its transaction and dropUser (pending.go)
// removes it in the deleting one, so the index holds exactly the users.
var (
	bucketUsersByCreated = []byte("users_by_created")
	bucketMeta           = []byte("meta")

	metaUserIndex = []byte("user_index")
)

func init() {
	allBuckets = append(allBuckets, bucketUsersByCreated, bucketMeta)
}

// userIndexKey is u's key in users_by_created. It depends on CreatedAt,
// which nothing changes after creation (store.CheckMutation).
func userIndexKey(u *store.User) []byte { return timeKey(u.CreatedAt, u.ID) }

// readUser decodes the user under id, or returns nil when there is none.
func readUser(tx *bolt.Tx, id string) (*store.User, error) {
	b, err := bucket(tx, bucketUsers)
	if err != nil {
		return nil, err
	}
	raw := get(b, id)
	if raw == nil {
		return nil, nil
	}
	var u store.User
	if err := json.Unmarshal(raw, &u); err != nil {
		return nil, fmt.Errorf("decode user %s: %w", id, err)
	}
	return &u, nil
}

// UpdateUser implements store.Store in one read-write transaction.
func (s *Store) UpdateUser(ctx context.Context, id string, p store.UserPatch) (*store.User, error) {
	const op = "update user"
	if id == "" {
		return nil, store.ErrNotFound
	}
	if err := ctx.Err(); err != nil {
		return nil, store.Unavailable(op, err)
	}
	var out *store.User
	var result error
	var conflict *store.ConflictError
	err := s.db.Update(func(tx *bolt.Tx) error {
		out, result, conflict = nil, nil, nil
		u, err := readUser(tx, id)
		switch {
		case err != nil:
			result = fmt.Errorf("%s: %w", op, err)
			return errAbort
		case u == nil:
			result = store.ErrNotFound
			return errAbort
		}
		before := *u
		if err := store.ApplyUserPatch(u, p); err != nil {
			result = err
			return errAbort
		}
		raw, err := json.Marshal(u)
		if err != nil {
			result = fmt.Errorf("%s: encode user: %w", op, err)
			return errAbort
		}
		mails, err := store.RunOutbox(op, p.Outbox, &before, u)
		if err != nil {
			result = err
			return errAbort
		}
		if err := putOutbox(tx, mails, &conflict); err != nil {
			return err
		}
		out = u
		return tx.Bucket(bucketUsers).Put([]byte(id), raw)
	})
	if conflict != nil {
		return nil, conflict
	}
	if result != nil {
		return nil, result
	}
	if err != nil {
		return nil, store.Unavailable(op, err)
	}
	return out, nil
}

// DeleteUser implements store.Store in one read-write transaction: dropUser
// (record, indexes, refs, list entry) and every session of the user. The
// ended sessions are published to the in-memory feed after the commit.
func (s *Store) DeleteUser(ctx context.Context, id string, outbox ...*store.Mail) (*store.User, []string, error) {
	const op = "delete user"
	if id == "" {
		return nil, nil, store.ErrNotFound
	}
	if err := store.CheckOutbox(op, outbox); err != nil {
		return nil, nil, err
	}
	var conflict *store.ConflictError
	if err := ctx.Err(); err != nil {
		return nil, nil, store.Unavailable(op, err)
	}
	now := time.Now()
	var out *store.User
	var sids []string
	var result error
	err := s.db.Update(func(tx *bolt.Tx) error {
		out, sids, result = nil, nil, nil
		u, err := readUser(tx, id)
		switch {
		case err != nil:
			result = fmt.Errorf("%s: %w", op, err)
			return errAbort
		case u == nil:
			result = store.ErrNotFound
			return errAbort
		}
		if err := dropUser(tx, u); err != nil {
			return err
		}
		if sids, err = dropSessions(tx, id, now, nil); err != nil {
			return err
		}
		if err := putOutbox(tx, outbox, &conflict); err != nil {
			return err
		}
		out = u
		return nil
	})
	if conflict != nil {
		return nil, nil, conflict
	}
	if result != nil {
		return nil, nil, result
	}
	if err != nil {
		return nil, nil, store.Unavailable(op, err)
	}
	s.feed.publish(sids...)
	return out, sids, nil
}

// dropSessions deletes the sessions of userID whose key pick selects (nil:
// every one) with their expiry entries, and returns the ids of those live
// at now. A record it cannot read is still the user's: it is deleted too
// (its expiry entry stays until the sweep finds no record).
func dropSessions(tx *bolt.Tx, userID string, now time.Time, pick func(k []byte) bool) ([]string, error) {
	b, err := bucket(tx, bucketSessions)
	if err != nil {
		return nil, err
	}
	type gone struct {
		k   []byte
		exp time.Time
	}
	var del []gone
	var sids []string
	prefix := sessionKey(userID, "")
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if pick != nil && !pick(k) {
			continue
		}
		var sess store.Session
		if json.Unmarshal(v, &sess) != nil {
			del = append(del, gone{k: bytes.Clone(k)})
			continue
		}
		del = append(del, gone{bytes.Clone(k), sess.IdleExpiresAt})
		if sess.Live(now) {
			sids = append(sids, sess.ID)
		}
	}
	for _, g := range del {
		if err := deleteExpiring(tx, bucketSessions, bucketSessionExp, g.k, g.exp); err != nil {
			return nil, err
		}
	}
	return sids, nil
}

// ListUsers implements store.Store with one cursor walk of
// users_by_created in a read-only transaction, reading each entry's
// record and filtering, until the page is full, UserScanBudget entries
// were examined or the bucket ends.
func (s *Store) ListUsers(ctx context.Context, f store.UserFilter) (*store.UserPage, error) {
	const op = "list users"
	limit, err := store.CheckUserFilter(f)
	if err != nil {
		return nil, err
	}
	cur, started, err := store.ParseUserCursor(f.Cursor)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, store.Unavailable(op, err)
	}
	var page *store.UserPage
	var result error
	err = s.db.View(func(tx *bolt.Tx) error {
		page, result = &store.UserPage{Users: []*store.User{}}, nil
		bs, err := buckets(tx, bucketUsersByCreated, bucketUsers)
		if err != nil {
			return err
		}
		idx, users := bs[0], bs[1]
		c := idx.Cursor()
		var k []byte
		if started {
			// Seek to the cursor's own key, then past it (it may be gone).
			from := timeKey(time.UnixMilli(cur.Score), cur.ID)
			k, _ = c.Seek(from)
			if k != nil && bytes.Equal(k, from) {
				k, _ = c.Next()
			}
		} else {
			k, _ = c.First()
		}
		examined := 0
		for ; k != nil; k, _ = c.Next() {
			if examined == store.UserScanBudget {
				page.Next = cur.String()
				return nil
			}
			cur = store.UserCursor{Score: keyMillis(k), ID: string(k[8:])}
			examined++
			raw := users.Get(k[8:])
			if raw == nil {
				continue
			}
			var u store.User
			if err := json.Unmarshal(raw, &u); err != nil {
				result = fmt.Errorf("%s: decode user %s: %w", op, k[8:], err)
				return nil
			}
			if !f.Match(&u) {
				continue
			}
			if len(page.Users) == limit {
				last := page.Users[limit-1]
				page.Next = store.UserCursor{Score: store.UserIndexScore(last), ID: last.ID}.String()
				return nil
			}
			page.Users = append(page.Users, &u)
		}
		return nil
	})
	if err != nil {
		return nil, store.Unavailable(op, err)
	}
	if result != nil {
		return nil, result
	}
	return page, nil
}

// BackfillUserIndex implements store.Store in one read-write transaction:
// unless meta records that it ran, it walks the users bucket and adds the
// users missing from users_by_created.
func (s *Store) BackfillUserIndex(ctx context.Context) (int, error) {
	const op = "backfill user index"
	if err := ctx.Err(); err != nil {
		return 0, store.Unavailable(op, err)
	}
	// Done already (every start after the first): a read, not a commit.
	done := false
	err := s.db.View(func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketMeta)
		if err == nil {
			done = b.Get(metaUserIndex) != nil
		}
		return err
	})
	if err != nil {
		return 0, store.Unavailable(op, err)
	}
	if done {
		return 0, nil
	}
	added := 0
	err = s.db.Update(func(tx *bolt.Tx) error {
		added = 0
		bs, err := buckets(tx, bucketMeta, bucketUsers, bucketUsersByCreated)
		if err != nil {
			return err
		}
		meta, users, idx := bs[0], bs[1], bs[2]
		if meta.Get(metaUserIndex) != nil {
			return nil
		}
		err = users.ForEach(func(k, v []byte) error {
			var u store.User
			if err := json.Unmarshal(v, &u); err != nil {
				return fmt.Errorf("decode user %s: %w", k, err)
			}
			key := userIndexKey(&u)
			if !has(idx, key) {
				added++
				return idx.Put(key, []byte{})
			}
			return nil
		})
		if err != nil {
			return err
		}
		return meta.Put(metaUserIndex, []byte("1"))
	})
	if err != nil {
		return 0, store.Unavailable(op, err)
	}
	return added, nil
}
