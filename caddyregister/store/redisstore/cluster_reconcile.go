package redisstore

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// After a failover, asynchronous replication may have lost some keys of
// a registration and kept others: a user's record (in its slot) can
// survive while its e-mail or login entry (in another slot, on the master
// that died) is gone. The address then reads as free, a new registration
// takes it, and two records carry one e-mail. Reconcile settles that.

// ReconcileRetry is how long the janitor waits before walking again when
// a walk left users it could not settle yet (another registration of
// their address in flight).
const ReconcileRetry = time.Minute

// ReconcileStats is what one Reconcile walk did.
type ReconcileStats struct {
	// Restored users got a lost entry written back; Erased users lost
	// their address to another user (the acknowledgment asynchronous
	// replication lost); Deferred were left for a later walk (another
	// registration of the address in flight, or the user's own).
	Restored, Erased, Deferred int
	// ErasedIDs are the erased users (for the log), at most 100.
	ErasedIDs []string
}

// Reconcile walks every user (ListUsers, a page at a time: three round
// trips per 200 users with the entries' read; it writes only where an
// entry is off), and
// settles each whose e-mail or login entry does not name it:
//
//   - a user with an intent (a registration not settled yet) is the
//     janitor's, and a user whose entry is its own reservation is in
//     flight: both left alone;
//   - a missing entry is written back (SET NX GET): the user keeps its
//     address when nobody took it meanwhile (another walker that wrote it
//     first counts as written back);
//   - an entry naming a holder that may be replaced (its record is gone,
//     no longer carries the key, or expired pending) is taken over by
//     compare-and-set;
//   - an entry that is another registration's reservation defers the
//     user to a later walk (that registration may still fail);
//   - an entry held by another live user means this user lost its
//     address: the user is erased (README, Failover), so no two users
//     hold one address.
//
// Several instances may walk at once: every step is a compare-and-set,
// and a user is erased only when another user's final entry holds its
// address.
func (s *ClusterStore) Reconcile(ctx context.Context) (ReconcileStats, error) {
	const op = "reconcile"
	var st ReconcileStats
	f := store.UserFilter{Limit: store.MaxUserPage}
	for {
		// ListUsers skips records that are gone or still reservations.
		page, err := s.ListUsers(ctx, f)
		if err != nil {
			return st, err
		}
		users := page.Users
		// Every entry and intent of the page in one round.
		var keys []string
		for _, u := range users {
			keys = append(keys, userEntryKeys(s, u)...)
		}
		vals, pending, err := s.entries(ctx, op, keys, users)
		if err != nil {
			return st, err
		}
		for i, u := range users {
			n := len(userEntryKeys(s, u))
			uv := vals[:n]
			vals = vals[n:]
			if pending[i] {
				continue // the janitor settles it
			}
			if err := s.reconcileUser(ctx, op, u, uv, &st); err != nil {
				return st, err
			}
		}
		if page.Next == "" {
			return st, nil
		}
		f.Cursor = page.Next
	}
}

// userEntryKeys are the unique entries that must name u.
func userEntryKeys(s *ClusterStore, u *store.User) []string {
	keys := []string{s.EmailKey(u.EmailKey)}
	if u.LoginKey != "" {
		keys = append(keys, s.LoginKey(u.LoginKey))
	}
	return keys
}

// entries reads keys and whether each user has an intent, in one
// pipelined round; a missing key is "".
func (s *ClusterStore) entries(ctx context.Context, op string, keys []string, users []*store.User) ([]string, []bool, error) {
	cmds := make([]*redis.StringCmd, len(keys))
	intents := make([]*redis.FloatCmd, len(users))
	if _, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.Get(ctx, k)
		}
		for i, u := range users {
			intents[i] = p.ZScore(ctx, s.pendKey(Shard(u.ID)), u.ID)
		}
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return nil, nil, store.Unavailable(op, err)
	}
	out := make([]string, len(keys))
	for i, c := range cmds {
		v, err := c.Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, nil, store.Unavailable(op, err)
		}
		out[i] = v
	}
	pending := make([]bool, len(users))
	for i, c := range intents {
		err := c.Err()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, nil, store.Unavailable(op, err)
		}
		pending[i] = err == nil
	}
	return out, pending, nil
}

// settleResult is what reconcileUser decided for one entry.
type settleResult int

const (
	entryOK settleResult = iota
	entryRestored
	entryDeferred
	entryLost
)

// reconcileUser settles one user (see Reconcile) given the values of its
// entries.
func (s *ClusterStore) reconcileUser(ctx context.Context, op string, u *store.User, vals []string, st *ReconcileStats) error {
	keys := userEntryKeys(s, u)
	restored := false
	for i, key := range keys {
		field := "email"
		if i == 1 {
			field = "login"
		}
		r, err := s.settleEntry(ctx, op, u, claim{field: field, key: key}, vals[i])
		if err != nil {
			return err
		}
		switch r {
		case entryRestored:
			restored = true
		case entryDeferred:
			st.Deferred++
			return nil
		case entryLost:
			// erase releases every entry still naming the user, those
			// just written back included.
			if _, _, err := s.erase(ctx, op, u.ID, time.Time{}); err != nil {
				if !errors.Is(err, store.ErrNotFound) {
					return err
				}
				// Erased meanwhile (another walker): an entry this walk
				// wrote back after that erase must not stay naming it.
				if _, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
					for _, k := range keys {
						releaseScript.Eval(ctx, p, []string{k}, u.ID)
					}
					return nil
				}); err != nil {
					return store.Unavailable(op, err)
				}
				return nil
			}
			st.Erased++
			if len(st.ErasedIDs) < 100 {
				st.ErasedIDs = append(st.ErasedIDs, u.ID)
			}
			return nil
		}
	}
	if restored {
		st.Restored++
	}
	return nil
}

// settleEntry makes entry c name u when it may: v is what it held when
// read.
func (s *ClusterStore) settleEntry(ctx context.Context, op string, u *store.User, c claim, v string) (settleResult, error) {
	for range 3 {
		switch {
		case v == u.ID:
			return entryOK, nil
		case strings.HasPrefix(v, "r:"+u.ID+":"), isReservation(v):
			return entryDeferred, nil // a registration in flight
		case v == "":
			old, err := s.c.SetArgs(ctx, c.key, u.ID, redis.SetArgs{Mode: "NX", Get: true}).Result()
			if errors.Is(err, redis.Nil) {
				return entryRestored, nil
			}
			if err != nil {
				return 0, store.Unavailable(op, err)
			}
			v = old // taken meanwhile: look at the holder
			continue
		}
		ok, _, err := s.replaceable(ctx, c, v, time.Now())
		if err != nil {
			return 0, err
		}
		if !ok {
			return entryLost, nil // a live user holds the address
		}
		done, err := finalizeScript.Run(ctx, s.c, []string{c.key}, v, u.ID, "0").Int()
		if err != nil {
			return 0, store.Unavailable(op, err)
		}
		if done == 1 {
			return entryRestored, nil
		}
		if v, err = s.c.Get(ctx, c.key).Result(); err != nil && !errors.Is(err, redis.Nil) {
			return 0, store.Unavailable(op, err)
		}
	}
	return entryDeferred, nil // it keeps changing: a later walk
}

// Reconciles is how many Reconcile walks this store's janitor completed
// after it saw the cluster's masters change, for tests and operators.
func (s *ClusterStore) Reconciles() int64 { return s.reconciles.Load() }

// masterSet names the masters the client serves slots from now (their
// addresses, sorted), from its own slot map, without a round trip: a
// failover changes it once the client re-read the map (on the errors
// and MOVED replies the failover causes, see reloadHook, or when the map
// is ten seconds old).
func (s *ClusterStore) masterSet(ctx context.Context) (string, error) {
	cc, ok := s.c.(*redis.ClusterClient)
	if !ok {
		return "", nil
	}
	var mu sync.Mutex
	var addrs []string
	err := cc.ForEachMaster(ctx, func(_ context.Context, c *redis.Client) error {
		mu.Lock()
		addrs = append(addrs, c.Options().Addr)
		mu.Unlock()
		return nil
	})
	if err != nil {
		return "", err
	}
	slices.Sort(addrs)
	return strings.Join(addrs, ","), nil
}

// maybeReconcile runs from the janitor: when the client's masters differ
// from those of the last walk (a failover: a replica took over), it walks
// (Reconcile). The first look only records them. A walk that fails (the
// cluster still failing over) is tried again at the next tick; one that
// deferred users, after ReconcileRetry.
func (s *ClusterStore) maybeReconcile(ctx context.Context, now time.Time) {
	if now.Before(s.reconcileAfter) {
		return
	}
	m, err := s.masterSet(ctx)
	if err != nil || m == "" {
		return
	}
	if s.masters == "" {
		s.masters = m
		return
	}
	if m == s.masters && !s.reconcileAgain {
		return
	}
	st, err := s.Reconcile(ctx)
	if err != nil {
		return
	}
	s.masters, s.reconcileAgain = m, st.Deferred > 0
	if st.Deferred > 0 {
		s.reconcileAfter = now.Add(ReconcileRetry)
	}
	s.reconciles.Add(1)
	if s.onReconcile != nil {
		s.onReconcile(st)
	}
}
