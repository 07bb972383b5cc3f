package engine

import (
	"sync"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// userCacheTTL bounds how stale Me may be after a change made through
// another instance; changes made through this one are seen at once.
const userCacheTTL = time.Second

// userCache is a small read-through cache of user records for Me.
type userCache struct {
	ttl time.Duration
	max int
	mu  sync.RWMutex
	m   map[string]cachedUser
}

type cachedUser struct {
	u       *store.User
	expires time.Time
}

func newUserCache(ttl time.Duration, max int) *userCache {
	return &userCache{ttl: ttl, max: max, m: map[string]cachedUser{}}
}

func (c *userCache) get(id string, now time.Time) (*store.User, bool) {
	c.mu.RLock()
	e, ok := c.m[id]
	c.mu.RUnlock()
	if !ok || !now.Before(e.expires) {
		return nil, false
	}
	return e.u, true
}

func (c *userCache) put(id string, u *store.User, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for k, e := range c.m {
			if !now.Before(e.expires) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= c.max {
			clear(c.m)
		}
	}
	c.m[id] = cachedUser{u: u, expires: now.Add(c.ttl)}
}

func (c *userCache) forget(id string) {
	if id == "" {
		return
	}
	c.mu.Lock()
	delete(c.m, id)
	c.mu.Unlock()
}
