package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// After a failover, asynchronous replication may have lost some keys of
// a registration and kept others: a user's record (in its slot) can
// survive while its e-mail or login entry (in another slot, on the master
// that died) is gone. The address then reads as free, a new registration
// takes it, and two records carry one e-mail. Reconcile settles that.

// ReconcileEvery bounds how often one store runs Reconcile: a failover
// makes every request against the dead master fail, and each failure
// asks for a walk.
const ReconcileEvery = time.Minute

// Reconcile walks every user of the index shards, a page at a time, and
// settles each whose e-mail or login entry does not name it:
//
//   - an entry that is missing is written again (SET NX), so the user
//     keeps its address when nobody took it meanwhile;
//   - an entry held by another user (who registered the address while it
//     read as free) means this user lost it: the user is erased, as an
//     acknowledgment asynchronous replication lost (README, Failover), so
//     that no two users hold one address;
//   - an entry that is a reservation of the user itself belongs to a
//     registration in flight, which the janitor settles: left alone.
//
// It returns how many users it gave their entries back and how many it
// erased. A registration racing it is safe either way round: an entry
// written back makes the racing claim a conflict; a claim that won first
// makes the walk erase the older record.
func (s *ClusterStore) Reconcile(ctx context.Context) (restored, erased int, err error) {
	const op = "reconcile"
	score, after := "", ""
	for {
		page, err := s.userPage(ctx, op, score, after, store.MaxUserPage)
		if err != nil || len(page) == 0 {
			return restored, erased, err
		}
		users, err := s.pageUsers(ctx, op, page)
		if err != nil {
			return restored, erased, err
		}
		// Every entry of the page in one round: the walk costs three
		// round trips per page, and writes only where an entry is off.
		var keys []string
		for _, u := range users {
			keys = append(keys, userEntryKeys(s, u)...)
		}
		vals, err := s.entries(ctx, op, keys)
		if err != nil {
			return restored, erased, err
		}
		for _, u := range users {
			n := len(userEntryKeys(s, u))
			r, e, err := s.reconcileUser(ctx, op, u, vals[:n])
			if err != nil {
				return restored, erased, err
			}
			vals = vals[n:]
			restored, erased = restored+r, erased+e
		}
		last := page[len(page)-1]
		score, after = strconv.FormatInt(last.Score, 10), last.ID
	}
}

// pageUsers reads the records of a page of index entries in one pipelined
// round; a record that is gone or still a reservation is left out.
func (s *ClusterStore) pageUsers(ctx context.Context, op string, page []store.UserCursor) ([]*store.User, error) {
	cmds := make([]*redis.StringCmd, len(page))
	if _, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, e := range page {
			cmds[i] = p.Get(ctx, s.UserKey(e.ID, "user"))
		}
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return nil, store.Unavailable(op, err)
	}
	var out []*store.User
	for _, c := range cmds {
		raw, err := c.Bytes()
		if errors.Is(err, redis.Nil) || len(raw) == 0 || raw[0] != '{' {
			continue
		}
		if err != nil {
			return nil, store.Unavailable(op, err)
		}
		var u store.User
		if err := json.Unmarshal(raw, &u); err != nil || u.ID == "" {
			continue // a record that does not decode is not this walk's to settle
		}
		out = append(out, &u)
	}
	return out, nil
}

// userEntryKeys are the unique entries that must name u.
func userEntryKeys(s *ClusterStore, u *store.User) []string {
	keys := []string{s.EmailKey(u.EmailKey)}
	if u.LoginKey != "" {
		keys = append(keys, s.LoginKey(u.LoginKey))
	}
	return keys
}

// reconcileUser settles one user (see Reconcile) given the values of its
// entries: 1, 0 when it wrote an entry back; 0, 1 when it erased the
// user.
func (s *ClusterStore) reconcileUser(ctx context.Context, op string, u *store.User, vals []string) (restored, erased int, err error) {
	keys := userEntryKeys(s, u)
	own := "r:" + u.ID + ":"
	lost := false
	var missing []string
	for i, v := range vals {
		switch {
		case v == u.ID:
		case strings.HasPrefix(v, own):
			return 0, 0, nil // in flight: the janitor's
		case v == "":
			missing = append(missing, keys[i])
		default:
			lost = true
		}
	}
	if !lost && len(missing) > 0 {
		for _, k := range missing {
			ok, err := s.c.SetNX(ctx, k, u.ID, 0).Result()
			if err != nil {
				return 0, 0, store.Unavailable(op, err)
			}
			if !ok {
				lost = true // taken between the read and the write
			}
		}
		if !lost {
			return 1, 0, nil
		}
	}
	if !lost {
		return 0, 0, nil
	}
	// erase releases every entry still naming the user, those just
	// written back included.
	if _, _, err := s.erase(ctx, op, u.ID, time.Time{}); err != nil && !errors.Is(err, store.ErrNotFound) {
		return 0, 0, err
	}
	return 0, 1, nil
}

// entries reads keys in one pipelined round; a missing key is "".
func (s *ClusterStore) entries(ctx context.Context, op string, keys []string) ([]string, error) {
	cmds := make([]*redis.StringCmd, len(keys))
	if _, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.Get(ctx, k)
		}
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return nil, store.Unavailable(op, err)
	}
	out := make([]string, len(keys))
	for i, c := range cmds {
		v, err := c.Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, store.Unavailable(op, err)
		}
		out[i] = v
	}
	return out, nil
}

// Reconciles is how many Reconcile walks this store's janitor completed
// (after a failover it saw), for tests and operators.
func (s *ClusterStore) Reconciles() int64 { return s.reconciles.Load() }

// maybeReconcile runs Reconcile from the janitor when the client saw a
// failover (reloadHook) and the last walk started ReconcileEvery ago or
// more. A walk that fails (the cluster still failing over) is retried at
// the next tick.
func (s *ClusterStore) maybeReconcile(ctx context.Context, now time.Time) {
	if !s.reconcileWanted.Load() || now.Sub(s.lastReconcile) < ReconcileEvery && s.reconciles.Load() > 0 {
		return
	}
	s.reconcileWanted.Store(false)
	if _, _, err := s.Reconcile(ctx); err != nil {
		s.reconcileWanted.Store(true)
		return
	}
	s.lastReconcile = now
	s.reconciles.Add(1)
}
