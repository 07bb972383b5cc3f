package engine

import (
	"context"
	"crypto/subtle"
	"errors"
	"sync"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// userBasicCacheSize bounds the users' Basic credential cache; a full
// cache drops half its entries (each is one password check away).
const userBasicCacheSize = 10000

// userBasicTTL is how long verified user credentials are remembered. An
// entry is bound to the user's password hash and the user's status is
// read again on every hit (through the one-second user cache), so a
// password change, a reset, a disable or an erasure takes effect within
// a second, whatever this TTL.
const userBasicTTL = 5 * time.Minute

// AuthenticateUserBasic checks HTTP Basic credentials of a user (login or
// e-mail) or of a configured admin (AuthenticateBasic), for the gate in
// front of an app, whose clients send them on every request. A miss costs
// a login's check (verifyLogin: the flood guard per client network, the
// account lockout, a dummy hash for unknown accounts; only active users
// pass); verified credentials are then remembered keyed by a hash of
// identifier and password, bound to the stored password hash.
func (e *Engine) AuthenticateUserBasic(ctx context.Context, clientIP, identifier, pass string) (*Principal, error) {
	if _, ok := e.admins[identifier]; ok {
		return e.AuthenticateBasic(ctx, clientIP, identifier, pass)
	}
	ck := credKey(identifier, pass)
	if ent, ok := e.userBasic().get(ck, e.now()); ok {
		u, err := e.recentUser(ctx, ent.userID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			e.userBasic().drop(ck)
			return nil, ErrUnauthenticated
		case err != nil:
			return nil, err
		}
		if subtle.ConstantTimeCompare([]byte(u.PasswordHash), []byte(ent.hash)) == 1 {
			switch u.Status {
			case store.StatusActive:
				return basicPrincipal(u), nil
			case store.StatusInactive:
				return nil, ErrAccountDisabled
			default:
				return nil, ErrNotActivated
			}
		}
		e.userBasic().drop(ck) // the password changed: check it again
	}
	p, err := e.verifyLogin(ctx, clientIP, identifier, pass)
	if err != nil {
		return nil, err
	}
	if p.Kind != KindUser {
		return p, nil
	}
	u, err := e.recentUser(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	e.userBasic().put(ck, userBasicEntry{userID: u.ID, hash: u.PasswordHash, expires: e.now().Add(userBasicTTL)})
	return basicPrincipal(u), nil
}

func basicPrincipal(u *store.User) *Principal {
	c := userClaims(u)
	return &Principal{Kind: KindUser, ID: u.ID, TenantID: u.TenantID, Status: string(u.Status), Permissions: c.Permissions, Email: u.Email, Login: u.Login}
}

// userBasicCache remembers verified user credentials.
type userBasicCache struct {
	mu sync.Mutex
	m  map[[32]byte]userBasicEntry
}

type userBasicEntry struct {
	userID, hash string
	expires      time.Time
}

func (e *Engine) userBasic() *userBasicCache { return &e.userBasicCache }

func (c *userBasicCache) get(k [32]byte, now time.Time) (userBasicEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ent, ok := c.m[k]
	if ok && !now.Before(ent.expires) {
		delete(c.m, k)
		return ent, false
	}
	return ent, ok
}

func (c *userBasicCache) put(k [32]byte, ent userBasicEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[[32]byte]userBasicEntry{}
	}
	if len(c.m) >= userBasicCacheSize {
		n := 0
		for key := range c.m {
			delete(c.m, key)
			if n++; n >= userBasicCacheSize/2 {
				break
			}
		}
	}
	c.m[k] = ent
}

func (c *userBasicCache) drop(k [32]byte) {
	c.mu.Lock()
	delete(c.m, k)
	c.mu.Unlock()
}
