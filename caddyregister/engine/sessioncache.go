package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// Revocation design (README, "Sessions"): a token with a sid is accepted
// only while its session lives, and AuthenticateToken must know that
// without a store round trip per request. Each engine keeps a liveness
// cache by sid and follows the store's revocation feed (every revoke
// appends the sid; store.Sessions.Revocations):
//
//   - a sid seen for the first time (or whose entry is older than
//     CheckMaxAge, or past the session's idle expiry) is read from the
//     store once (GetSession) and cached;
//   - a busy engine reads the feed every RevocationPoll in the background
//     and marks the sids it lists dead; when its last feed read is older
//     than RevocationStale, the request reads the feed itself before
//     answering (so an idle instance needs no timer, and a revocation
//     anywhere is seen within RevocationStale plus one feed read: 3 s and
//     a round trip by default, under the 5 s bound);
//   - revocations made through this engine mark the sid dead at once;
//   - dead wins: a read that raced a revocation can never resurrect a sid,
//     and a feed gap (a reader too far behind) or a failed feed read (the
//     store may have lost data meanwhile) empties the cache.
//
// The hot path is an atomic load, the clock and a map read under RLock.

// sessionCacheSize bounds the liveness cache; a full cache is emptied
// (every entry is one store read away from being rebuilt).
const sessionCacheSize = 200_000

// feedPage is how many feed entries one read asks for.
const feedPage = 1000

// sessionCache is an engine's view of which sessions live.
type sessionCache struct {
	mu sync.RWMutex
	m  map[string]sessionEntry
	// epoch grows on every flush; a store read started in an older epoch
	// is not cached (it may predate a revocation the flush forgot).
	epoch uint64

	pollMu sync.Mutex // one feed read at a time
	cursor uint64     // under pollMu
	// lost (under pollMu) records a failed feed read: the store may have
	// lost data meanwhile (a Redis restarted without persistence starts
	// an empty feed, with no gap to see), so the next successful read
	// empties the cache and every sid is read again.
	lost     bool
	lastPoll atomic.Int64
	polling  atomic.Bool
}

// sessionEntry is one sid's liveness; a dead entry is final.
type sessionEntry struct {
	live  bool
	until time.Time // a live entry is trusted until then
}

func newSessionCache() *sessionCache {
	c := &sessionCache{m: map[string]sessionEntry{}}
	// lastPoll 0 (1970): the first check reads the feed.
	return c
}

func (c *sessionCache) get(sid string) (sessionEntry, bool, uint64) {
	c.mu.RLock()
	e, ok := c.m[sid]
	epoch := c.epoch
	c.mu.RUnlock()
	return e, ok, epoch
}

// put records a store read made in epoch, unless a flush came since or
// the sid is already dead.
func (c *sessionCache) put(sid string, e sessionEntry, epoch uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.epoch != epoch {
		return
	}
	if old, ok := c.m[sid]; ok && !old.live {
		return
	}
	if len(c.m) >= sessionCacheSize {
		c.flushLocked()
		return
	}
	c.m[sid] = e
}

// kill marks sids dead, for good.
func (c *sessionCache) kill(sids ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m)+len(sids) > sessionCacheSize {
		c.flushLocked()
	}
	for _, sid := range sids {
		c.m[sid] = sessionEntry{}
	}
}

func (c *sessionCache) flushLocked() {
	clear(c.m)
	c.epoch++
}

// sessionLive refuses a token whose session is revoked or expired (see
// the design above).
func (e *Engine) sessionLive(ctx context.Context, userID, sid string) error {
	c := e.sessions
	now := e.now()
	if err := e.followFeed(ctx, now); err != nil {
		return err
	}
	ent, ok, epoch := c.get(sid)
	if ok && !ent.live {
		return ErrSessionRevoked
	}
	if ok && now.Before(ent.until) {
		return nil
	}
	sess, err := e.cfg.Store.GetSession(ctx, userID, sid)
	switch {
	case errors.Is(err, store.ErrNotFound):
		c.put(sid, sessionEntry{}, epoch)
		return ErrSessionRevoked
	case err != nil:
		return fmt.Errorf("check session: %w", err)
	case !sess.Live(now):
		return ErrSessionRevoked
	}
	until := now.Add(e.cfg.Sessions.CheckMaxAge)
	if sess.IdleExpiresAt.Before(until) {
		until = sess.IdleExpiresAt
	}
	c.put(sid, sessionEntry{live: true, until: until}, epoch)
	return nil
}

// followFeed keeps the cache within RevocationStale of the feed: a stale
// cache is brought up to date before the caller trusts it; a cache older
// than RevocationPoll is refreshed in the background.
func (e *Engine) followFeed(ctx context.Context, now time.Time) error {
	c := e.sessions
	age := now.Sub(time.Unix(0, c.lastPoll.Load()))
	cfg := e.cfg.Sessions
	switch {
	case age < cfg.RevocationPoll:
		return nil
	case age < cfg.RevocationStale:
		if c.polling.CompareAndSwap(false, true) {
			go func() {
				defer c.polling.Store(false)
				pctx, cancel := context.WithTimeout(context.Background(), cfg.RevocationStale)
				defer cancel()
				if err := e.pollRevocations(pctx, false); err != nil {
					e.log.Warn("reading the revocation feed", zap.Error(err))
				}
			}()
		}
		return nil
	}
	if err := e.pollRevocations(ctx, true); err != nil {
		return fmt.Errorf("check session: %w", err)
	}
	return nil
}

// PollRevocations reads the store's revocation feed now and applies it to
// this engine's session cache. The engine does so by itself as requests
// come (followFeed); this is for tests and for a caller that wants a
// revocation made elsewhere seen at once.
func (e *Engine) PollRevocations(ctx context.Context) error {
	return e.pollRevocations(ctx, false)
}

// pollRevocations reads the feed to its end. With ifStale, a read that
// finds the cache made fresh meanwhile (another caller read the feed
// while this one waited) returns at once.
func (e *Engine) pollRevocations(ctx context.Context, ifStale bool) error {
	c := e.sessions
	c.pollMu.Lock()
	defer c.pollMu.Unlock()
	start := e.now()
	if ifStale && start.Sub(time.Unix(0, c.lastPoll.Load())) < e.cfg.Sessions.RevocationStale {
		return nil
	}
	gaps := 0
	for {
		revs, next, err := e.cfg.Store.Revocations(ctx, c.cursor, feedPage)
		if err == nil && c.lost {
			c.mu.Lock()
			c.flushLocked()
			c.mu.Unlock()
			c.lost = false
		}
		if errors.Is(err, store.ErrRevocationGap) {
			if gaps++; gaps > 1 {
				// The feed contradicts itself (its floor past its head: a
				// damaged or concurrently reset store): no answer to trust,
				// a store fault (503), not the client's (401, 500).
				c.lost = true
				return store.Unavailable("revocation feed", fmt.Errorf("gap again at its head %d", next))
			}
			c.mu.Lock()
			c.flushLocked()
			c.mu.Unlock()
			c.cursor = next
			continue
		}
		if err != nil {
			c.lost = true
			return err
		}
		if len(revs) > 0 {
			sids := make([]string, len(revs))
			for i, r := range revs {
				sids[i] = r.SessionID
			}
			c.kill(sids...)
		}
		c.cursor = next
		if len(revs) < feedPage {
			break
		}
	}
	// The feed read started at start: everything revoked before then is
	// applied.
	c.lastPoll.Store(start.UnixNano())
	return nil
}

func zapSession(userID, sid string) zap.Field {
	return zap.Dict("session", zap.String("user_id", userID), zap.String("sid", sid))
}
