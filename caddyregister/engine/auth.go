package engine

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/caddyregister/caddyregister/caddyregister/password"
	"github.com/caddyregister/caddyregister/caddyregister/store"
	"github.com/caddyregister/caddyregister/caddyregister/token"
)

// Admin is a principal declared by the operator.
type Admin struct {
	Login       string
	Hash        string // bcrypt or argon2id PHC
	Permissions []string
}

// Principal kinds.
const (
	KindUser  = "user"
	KindAdmin = "admin"
)

// PermissionAll grants every permission.
const PermissionAll = "*"

// Principal is an authenticated caller.
type Principal struct {
	Kind        string
	ID          string // user id, or the admin login
	TenantID    string
	Status      string
	Permissions []string
	// SID is the session a user's token belongs to (empty for tokens
	// issued outside a session, and for admins).
	SID string
	// Email and Login of a user, from the token (empty for admins, whose
	// login is the ID, and for tokens issued before they were claims).
	Email, Login string
}

// Has reports whether p holds perm.
func (p *Principal) Has(perm string) bool {
	return p != nil && (slices.Contains(p.Permissions, perm) || slices.Contains(p.Permissions, PermissionAll))
}

// Require returns ErrForbidden unless p holds perm.
func (p *Principal) Require(perm string) error {
	if !p.Has(perm) {
		return fmt.Errorf("%w: needs %q", ErrForbidden, perm)
	}
	return nil
}

// ErrNoSession refuses a user's token without a sid, whose signature
// verified: every user token the engine issues belongs to a session.
var ErrNoSession = fmt.Errorf("%w: token has no session", ErrUnauthenticated)

// stringBytes views s as bytes without copying, for a hash that only
// reads them: a token is ~500 bytes, and every gated request hashes one
// (the copy was half of AuthenticateToken's allocation).
func stringBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// AuthenticateToken verifies an access token.
func (e *Engine) AuthenticateToken(ctx context.Context, tok string) (*Principal, error) {
	if tok == "" {
		return nil, ErrUnauthenticated
	}
	key := sha256.Sum256(stringBytes(tok))
	c, ok := e.verified.get(key, e.now())
	if !ok {
		iss, err := e.tokens(ctx)
		if err != nil {
			return nil, err
		}
		c, err = iss.Verify(tok)
		if errors.Is(err, token.ErrUnknownKey) {
			if fresh := e.tokensAfterMiss(ctx, iss); fresh != nil {
				c, err = fresh.Verify(tok)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUnauthenticated, err)
		}
		e.verified.put(key, c)
	}
	p := &Principal{Kind: c.Kind, ID: c.Subject, TenantID: c.Tenant, Status: c.Status, Permissions: slices.Clone(c.Permissions), Email: c.Email, Login: c.Login}
	if p.Kind == "" {
		p.Kind = KindUser
	}
	if p.Kind == KindAdmin {
		// Checked on every call, cache hit or not: the config is what an
		// admin token stands for. An admin removed from the config, or
		// whose hash changed, loses its tokens at once; permissions are
		// the configured ones now, not those the token was issued with.
		a, ok := e.admins[p.ID]
		if !ok {
			return nil, fmt.Errorf("%w: unknown admin", ErrUnauthenticated)
		}
		if subtle.ConstantTimeCompare([]byte(c.CredentialFingerprint), []byte(e.adminFingerprints[p.ID])) != 1 {
			return nil, fmt.Errorf("%w: admin credentials changed since the token was issued", ErrUnauthenticated)
		}
		p.Permissions = slices.Clone(a.Permissions)
	}
	if p.Kind == KindUser {
		// Every user token belongs to a session and dies with it
		// (session.go). One without a sid was issued before sessions
		// existed: refusing it costs its holder one login, at most a
		// token lifetime after an upgrade, and keeps a disable or an
		// erasure from missing it.
		if c.SID == "" {
			return nil, ErrNoSession
		}
		if err := e.sessionLive(ctx, p.ID, c.SID); err != nil {
			return nil, err
		}
		p.SID = c.SID
	}
	return p, nil
}

// AuthenticateBasic checks admin credentials. Verified credentials are cached
// briefly (keyed by a hash of login and password) so clients that send Basic
// auth on every request do not pay a password hash each time. Attempts that
// miss the cache are limited per client network (a flood guard) and go
// through the account lockout shared with Login (checkPassword): only
// failures count, and a locked account is refused without a hash. Unknown
// logins cost, and lock, as known ones do. Only a configured admin's
// verification may use the hash pool's reserved slot: were unknown logins
// let in too, a Basic flood of random logins would take it and lock
// operators out again. (Under a flood a known login is thus answered
// sooner; that reveals admin logins only to someone who can already
// saturate the pool, and keeping operators in is worth more.)
func (e *Engine) AuthenticateBasic(ctx context.Context, clientIP, login, pass string) (*Principal, error) {
	ck := credKey(login, pass)
	a, known := e.admins[login]
	if known && e.basicCache.ok(ck, a.Hash) {
		return adminPrincipal(a), nil
	}
	if err := e.Allow(ctx, "admin-login-ip", e.Network(clientIP), e.cfg.AdminLoginLimit); err != nil {
		return nil, err
	}
	account := unknownAccount(login)
	if known {
		account = adminAccount(login)
	}
	err := e.checkPassword(ctx, account, clientIP, func() (bool, error) {
		if known {
			ok, err := e.cfg.Pool.Verify(password.WithReserved(ctx), a.Hash, []byte(pass))
			if err != nil {
				return false, verifyErr(err)
			}
			return ok, nil
		}
		// Verify against a configured admin hash, so an unknown login costs
		// what a known one does (same algorithm and parameters); the result
		// is ignored.
		if e.dummyAdminHash != "" {
			if _, err := e.cfg.Pool.Verify(ctx, e.dummyAdminHash, []byte(pass)); err != nil && errors.Is(err, password.ErrOverloaded) {
				return false, err
			}
		} else if err := e.cfg.Pool.DummyVerify(ctx, e.cfg.Hasher, []byte(pass)); err != nil {
			return false, err
		}
		return false, nil
	})
	if err != nil {
		return nil, err
	}
	e.basicCache.put(ck, a.Hash)
	return adminPrincipal(a), nil
}

// IssueToken signs an access token for p.
func (e *Engine) IssueToken(ctx context.Context, p *Principal) (string, error) {
	iss, err := e.tokens(ctx)
	if err != nil {
		return "", err
	}
	c := token.Claims{Kind: p.Kind, Tenant: p.TenantID, Status: p.Status, Permissions: p.Permissions, SID: p.SID, Email: p.Email, Login: p.Login}
	c.Subject = p.ID
	if p.Kind == KindAdmin {
		fp, ok := e.adminFingerprints[p.ID]
		if !ok {
			return "", fmt.Errorf("issue token: %q is not a configured admin", p.ID)
		}
		c.CredentialFingerprint = fp
	}
	tok, _, err := iss.Issue(c)
	if err != nil {
		return "", fmt.Errorf("issue token: %w", err)
	}
	return tok, nil
}

func adminPrincipal(a Admin) *Principal {
	return &Principal{Kind: KindAdmin, ID: a.Login, Status: "active", Permissions: slices.Clone(a.Permissions)}
}

func credKey(login, pass string) [32]byte {
	h := sha256.New()
	h.Write([]byte(login))
	h.Write([]byte{0})
	h.Write([]byte(pass))
	var k [32]byte
	copy(k[:], h.Sum(nil))
	return k
}

// credCache remembers recently verified credentials. Entries are bound to
// the admin's configured hash, so changing the hash invalidates them.
type credCache struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[[32]byte]credEntry
}

type credEntry struct {
	hash    string
	expires time.Time
}

func newCredCache(ttl time.Duration) *credCache {
	return &credCache{ttl: ttl, m: map[[32]byte]credEntry{}}
}

func (c *credCache) ok(k [32]byte, hash string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	ent, found := c.m[k]
	if !found {
		return false
	}
	if time.Now().After(ent.expires) {
		delete(c.m, k)
		return false
	}
	return subtle.ConstantTimeCompare([]byte(ent.hash), []byte(hash)) == 1
}

func (c *credCache) put(k [32]byte, hash string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) > 1024 {
		// Only operator-declared admins ever get in, so the map stays tiny;
		// the bound is a guard, and a reset is harmless.
		clear(c.m)
	}
	c.m[k] = credEntry{hash: hash, expires: time.Now().Add(c.ttl)}
}

// ErrNotActivated means the credentials were right but the account has not
// been activated yet. It is said only after the password verified, so it
// tells nothing to someone guessing.
var ErrNotActivated = errors.New("account not activated")

// ErrAccountDisabled means the credentials were right but an admin
// disabled the account (status inactive). Like ErrNotActivated it is said
// only after the password verified.
var ErrAccountDisabled = errors.New("account disabled")

// Login checks admin or user credentials (login or e-mail) and issues an
// access token. Attempts are limited per client network (a flood guard that
// never locks an account) and go through the account lockout
// (checkPassword), shared with AuthenticateBasic and any later login: only
// failures count, per account and client network and per account, and a
// locked account is refused without a hash. An unknown identifier costs a
// password verification and locks like a known one, so neither timing nor
// the lockout tells which exist.
//
// There is no refresh token, for contracts whose login answers only the
// access token: a user's token belongs to a session that lasts as long as
// the token (tokenSession), so logout, disable, erasure and a password
// reset end it like any other. LoginSession is the refreshable login.
func (e *Engine) Login(ctx context.Context, clientIP, userAgent, identifier, pass string) (*Principal, string, error) {
	t, err := e.login(ctx, clientIP, userAgent, identifier, pass, nil)
	if err != nil {
		return nil, "", err
	}
	return t.Principal, t.Access, nil
}

// login is Login and LoginSession: a configured admin gets an admin
// access token and no session (admin tokens stand for the configuration,
// not for a stored user, so there is nothing to refresh or revoke); a user
// gets a session, refreshable within lim or, without lim, not.
func (e *Engine) login(ctx context.Context, clientIP, userAgent, identifier, pass string, lim *SessionLimits) (*SessionTokens, error) {
	p, err := e.verifyLogin(ctx, clientIP, identifier, pass)
	if err != nil {
		return nil, err
	}
	if p.Kind == KindAdmin {
		tok, err := e.IssueToken(ctx, p)
		if err != nil {
			return nil, err
		}
		return &SessionTokens{Principal: p, Access: tok, AccessTTL: e.TokenTTL()}, nil
	}
	return e.openSession(ctx, p.ID, clientIP, userAgent, lim, p)
}

// verifyLogin is Login's check of the credentials, without the token:
// LoginSession shares it.
func (e *Engine) verifyLogin(ctx context.Context, clientIP, identifier, pass string) (*Principal, error) {
	identifier = strings.TrimSpace(identifier)
	if identifier == "" || pass == "" {
		return nil, ErrUnauthenticated
	}
	if err := e.Allow(ctx, "login-ip", e.Network(clientIP), e.cfg.AdminLoginLimit); err != nil {
		return nil, err
	}
	var p *Principal
	if a, ok := e.admins[identifier]; ok {
		err := e.checkPassword(ctx, adminAccount(a.Login), clientIP, func() (bool, error) {
			ok, err := e.cfg.Pool.Verify(password.WithReserved(ctx), a.Hash, []byte(pass))
			if err != nil {
				return false, verifyErr(err)
			}
			return ok, nil
		})
		if err != nil {
			return nil, err
		}
		p = adminPrincipal(a)
	} else {
		u, err := e.findUser(ctx, identifier)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		account := unknownAccount(identifier)
		if u != nil {
			account = userAccount(u.ID)
		}
		err = e.checkPassword(ctx, account, clientIP, e.userPassword(ctx, u, pass))
		if err != nil {
			return nil, err
		}
		switch u.Status {
		case store.StatusActive:
		case store.StatusInactive:
			return nil, ErrAccountDisabled
		default:
			return nil, ErrNotActivated
		}
		c := userClaims(u)
		p = &Principal{Kind: KindUser, ID: u.ID, TenantID: u.TenantID, Status: string(u.Status), Permissions: c.Permissions, Email: u.Email, Login: u.Login}
	}
	return p, nil
}

// userPassword is checkPassword's verification of pass against user u: a
// missing user, or one without a password, costs a dummy verification, so
// timing does not tell them apart.
func (e *Engine) userPassword(ctx context.Context, u *store.User, pass string) func() (bool, error) {
	return func() (bool, error) {
		if u == nil || u.PasswordHash == "" {
			return false, e.cfg.Pool.DummyVerify(ctx, e.cfg.Hasher, []byte(pass))
		}
		ok, err := e.cfg.Pool.Verify(ctx, u.PasswordHash, []byte(pass))
		if err != nil {
			return false, verifyErr(err)
		}
		return ok, nil
	}
}

// findUser resolves an e-mail or a login.
func (e *Engine) findUser(ctx context.Context, identifier string) (*store.User, error) {
	id, err := e.cfg.Store.UserIDByEmail(ctx, store.EmailKey(identifier))
	if errors.Is(err, store.ErrNotFound) {
		id, err = e.cfg.Store.UserIDByLogin(ctx, store.LoginKey(identifier))
	}
	if err != nil {
		return nil, err
	}
	return e.cfg.Store.GetUser(ctx, id)
}

func verifyErr(err error) error {
	if errors.Is(err, password.ErrOverloaded) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	// A stored hash we cannot read: refuse without saying why.
	return fmt.Errorf("%w: %w", ErrUnauthenticated, err)
}

// TokenTTL is the lifetime of the access tokens the engine issues.
func (e *Engine) TokenTTL() time.Duration {
	if e.cfg.Token.TTL > 0 {
		return e.cfg.Token.TTL
	}
	return token.DefaultTTL
}

// verifiedCacheSize bounds the verified-token cache (entries of ~200 bytes).
const verifiedCacheSize = 10000

// verifiedCache remembers tokens whose signature verified, until they
// expire, so a client presenting its token on every request pays one
// Ed25519 verification, not one per request. Keys are SHA-256 of the whole
// token, so only a byte-identical token hits.
type verifiedCache struct {
	max int
	mu  sync.RWMutex
	m   map[[32]byte]*token.Claims
}

func newVerifiedCache(max int) *verifiedCache {
	return &verifiedCache{max: max, m: map[[32]byte]*token.Claims{}}
}

func (c *verifiedCache) get(k [32]byte, now time.Time) (*token.Claims, bool) {
	c.mu.RLock()
	cl, ok := c.m[k]
	c.mu.RUnlock()
	if !ok {
		return nil, false
	}
	// Expiry is checked on every hit, with no leeway: a cached token is
	// never accepted longer than it would verify.
	if cl.ExpiresAt == nil || !now.Before(cl.ExpiresAt.Time) {
		c.mu.Lock()
		delete(c.m, k)
		c.mu.Unlock()
		return nil, false
	}
	return cl, true
}

func (c *verifiedCache) put(k [32]byte, cl *token.Claims) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		// Evict an arbitrary half: cheap, and the cache only saves work.
		n := 0
		for key := range c.m {
			delete(c.m, key)
			if n++; n >= c.max/2 {
				break
			}
		}
	}
	c.m[k] = cl
}
