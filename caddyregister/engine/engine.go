// Package engine is the registration policy shared by every contract:
// validation that is not wire-specific, uniqueness, hashing, tokens, rate
// limits and admin authentication. It knows nothing of HTTP or Caddy;
// contracts translate their wire format into calls on an Engine.
package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/caddyregister/caddyregister/caddyregister/captcha"
	"github.com/caddyregister/caddyregister/caddyregister/mail"
	"github.com/caddyregister/caddyregister/caddyregister/password"
	"github.com/caddyregister/caddyregister/caddyregister/ratelimit"
	"github.com/caddyregister/caddyregister/caddyregister/secretbox"
	"github.com/caddyregister/caddyregister/caddyregister/store"
	"github.com/caddyregister/caddyregister/caddyregister/token"
)

// Metrics receives the engine's counters. The Caddy layer backs it with
// Prometheus collectors; nil disables metrics.
type Metrics interface {
	Registration(contract, outcome string)
	RateLimited(route string)
}

// Config assembles an Engine. Store, Hasher and Pool are required.
type Config struct {
	Store   store.Store
	Limiter ratelimit.Limiter
	Hasher  password.Hasher
	Pool    *password.Pool

	// SigningKey signs tokens. When nil, the engine loads the key stored
	// under SigningKeySecret, generating and storing one if there is none,
	// so every instance on one store signs with the same key, and reads it
	// again every 30s and on an unknown kid (see keys.go). With a Sealer,
	// a configured key is recorded under ConfiguredKeySecret so a change
	// of it keeps the previous key verifying (see configkeys.go).
	SigningKey *token.Key
	Token      token.Config
	// Sealer encrypts the stored signing key set (key_encryption_key);
	// nil stores it in clear. Instances on one store need the same one.
	Sealer *secretbox.Box

	Admins []Admin
	// AdminLoginLimit bounds password attempts (admin HTTP Basic that is
	// not served from the verified-credentials cache, and logins) per
	// client network: a coarse flood guard that never locks an account.
	AdminLoginLimit ratelimit.Limit
	// Lockout is the per-account failure budget; zero fields take
	// DefaultLockout's.
	Lockout Lockout
	// IPv6Prefix is the prefix length IPv6 clients are grouped by for
	// per-client limits and lockouts; 0 means DefaultIPv6Prefix.
	IPv6Prefix int

	// Captcha draws challenges; nil disables NewChallenge.
	Captcha *captcha.Generator
	// ChallengeTTL is how long a challenge lives; DefaultChallengeTTL
	// when zero.
	ChallengeTTL time.Duration
	// Tenants are declared by the operator and ensured into the store at
	// Start.
	Tenants []store.Tenant
	// Sessions tunes login sessions and their revocation (session.go).
	Sessions SessionConfig
	// ResendAccountLimit and ResendClientLimit bound ResendActivation;
	// zero takes the package defaults of the same names.
	ResendAccountLimit, ResendClientLimit ratelimit.Limit
	// ForgotAccountLimit and ForgotClientLimit bound ForgotPassword; zero
	// takes the package defaults of the same names.
	ForgotAccountLimit, ForgotClientLimit ratelimit.Limit
	// PasswordResetMail and PasswordChangedMail are the templates of the
	// password reset link and of the notice after a reset; nil takes
	// mail.PasswordResetTemplate and mail.PasswordChangedTemplate.
	PasswordResetMail, PasswordChangedMail *mail.Template
	// MailQueued is called after a registration put mail in the outbox, so
	// the delivery worker sends it at once instead of at its next poll.
	MailQueued func()
	// Webhooks are the events sent to the app and the before_register
	// hook (webhooks.go, hook.go).
	Webhooks WebhookConfig

	Logger  *zap.Logger
	Metrics Metrics
	Now     func() time.Time
}

// SigningKeySecret is the store secret holding the generated signing key.
const SigningKeySecret = "jwt-ed25519"

// StoreSecrets names every secret the engine keeps in the store, so that
// moving a store (package port) moves them all: tokens keep verifying and
// sealed mail bodies keep opening on the target.
var StoreSecrets = []string{SigningKeySecret, ConfiguredKeySecret, OutboxKeySecret}

// Engine is safe for concurrent use.
type Engine struct {
	cfg    Config
	log    *zap.Logger
	now    func() time.Time
	admins map[string]Admin
	// adminFingerprints are credentialFingerprint of each admin's
	// configured hash, by login: admin tokens carry it and must match.
	adminFingerprints map[string]string

	mu   sync.Mutex // serializes loading the key
	keys atomic.Pointer[keyState]
	// lastMiss is when (unix ns, engine clock) a token with an unknown kid
	// last made us re-read the key set; written under mu.
	lastMiss atomic.Int64
	// configuredClaimed is set once this instance has recorded its
	// configured signing_key in the store (see loadConfigured); under mu.
	configuredClaimed bool

	outbox outboxKeys // see MailSealer

	verified *verifiedCache
	// recent holds users read for Me for a second: clients poll /me with
	// their token, and a store round trip per poll would cost more than the
	// rest of the request (see README, Performance).
	recent *userCache

	basicCache *credCache
	// userBasicCache remembers users' verified Basic credentials
	// (AuthenticateUserBasic); its zero value is ready.
	userBasicCache userBasicCache

	// sessions caches session liveness for AuthenticateToken (session.go).
	sessions *sessionCache

	captcha      *captcha.Generator
	challengeTTL time.Duration
	// dummyAdminHash is verified for unknown admin logins.
	dummyAdminHash string

	lockout    Lockout
	ipv6Prefix int

	// resend holds the resenders and running resends (resend.go).
	resend resends
}

// New returns an engine. It does no I/O; call Start to load the signing key.
func New(cfg Config) (*Engine, error) {
	if cfg.Store == nil || cfg.Hasher == nil || cfg.Pool == nil {
		return nil, errors.New("engine: store, hasher and pool are required")
	}
	e := &Engine{cfg: cfg, log: cfg.Logger, now: cfg.Now, admins: map[string]Admin{}, basicCache: newCredCache(5 * time.Minute), verified: newVerifiedCache(verifiedCacheSize), recent: newUserCache(userCacheTTL, 10000)}
	if e.log == nil {
		e.log = zap.NewNop()
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.cfg.Token.Now == nil {
		e.cfg.Token.Now = e.now
	}
	e.lockout = cfg.Lockout.withDefaults()
	e.ipv6Prefix = cfg.IPv6Prefix
	if e.ipv6Prefix == 0 {
		e.ipv6Prefix = DefaultIPv6Prefix
	}
	if e.ipv6Prefix < 1 || e.ipv6Prefix > 128 {
		return nil, fmt.Errorf("engine: ipv6 prefix /%d is outside 1..128", e.ipv6Prefix)
	}
	e.cfg.Sessions = cfg.Sessions.withDefaults()
	e.sessions = newSessionCache()
	e.captcha, e.challengeTTL = cfg.Captcha, cfg.ChallengeTTL
	if e.challengeTTL <= 0 {
		e.challengeTTL = DefaultChallengeTTL
	}
	for _, t := range cfg.Tenants {
		if err := CheckTenantCode(t.Code); err != nil {
			return nil, fmt.Errorf("engine: declared %w", err)
		}
	}
	e.adminFingerprints = make(map[string]string, len(cfg.Admins))
	for _, a := range cfg.Admins {
		if err := password.ParseHash(a.Hash); err != nil {
			return nil, fmt.Errorf("engine: admin %q: %w", a.Login, err)
		}
		e.admins[a.Login] = a
		e.adminFingerprints[a.Login] = credentialFingerprint(a.Hash)
		if e.dummyAdminHash == "" {
			e.dummyAdminHash = a.Hash
		}
	}
	if cfg.SigningKey != nil {
		// With a sealer the record of configured keys is read at the first
		// use (refreshAt is zero); the configured key signs meanwhile, so
		// a store that is down does not stop tokens.
		e.keys.Store(&keyState{iss: token.NewIssuer(e.cfg.Token, cfg.SigningKey)})
	}
	return e, nil
}

// Start loads the signing key and the outbox key from the store, ensures the declared tenants
// and backfills the ordered user index. A failure is not fatal: the
// engine retries on the next request that needs a token, so Caddy can start
// while the store is briefly down.
func (e *Engine) Start(ctx context.Context) error {
	var err error
	if e.cfg.SigningKey != nil && e.cfg.Sealer != nil {
		// The configured key signs whatever happens here; reading its
		// record now surfaces a wrong key_encryption_key at start.
		e.mu.Lock()
		_, err = e.loadConfigured(ctx)
		e.mu.Unlock()
	} else {
		_, err = e.tokens(ctx)
	}
	// The outbox key: a key_encryption_key that does not open it fails
	// here, like one that does not open the signing key.
	if _, oerr := e.MailSealer(ctx); oerr != nil {
		err = errors.Join(err, oerr)
	}
	if len(e.cfg.Tenants) > 0 {
		err = errors.Join(err, e.EnsureTenants(ctx))
	}
	// Users written before the ordered index existed (users.go).
	err = errors.Join(err, e.BackfillUserIndex(ctx))
	return err
}

// Store is the engine's store (contracts read through it).
func (e *Engine) Store() store.Store { return e.cfg.Store }

// Now is the engine's clock.
func (e *Engine) Now() time.Time { return e.now() }

// JWKS returns the public key set, loading the key if needed.
func (e *Engine) JWKS(ctx context.Context) ([]byte, error) {
	iss, err := e.tokens(ctx)
	if err != nil {
		return nil, err
	}
	return iss.JWKS(), nil
}

// Allow charges one event to the rate limit of route for client, returning
// *RateLimitedError when it is exhausted.
func (e *Engine) Allow(ctx context.Context, route, client string, l ratelimit.Limit) error {
	if l.IsZero() {
		return nil
	}
	return e.charge(ctx, route, ratelimit.Check{Key: route + ":" + client, Limit: l})
}

// charge charges checks in one step for route (all or none), counting a
// refusal in the metrics as route's.
func (e *Engine) charge(ctx context.Context, route string, checks ...ratelimit.Check) error {
	if e.cfg.Limiter == nil {
		return nil
	}
	res, err := e.cfg.Limiter.AllowAll(ctx, checks...)
	if err != nil {
		return store.Unavailable("rate limit", err)
	}
	if !res.Allowed {
		if e.cfg.Metrics != nil {
			e.cfg.Metrics.RateLimited(route)
		}
		return &RateLimitedError{RetryAfter: res.RetryAfter}
	}
	return nil
}

// Me returns the user a token belongs to. Admin tokens have no user record:
// the principal is returned with a nil user.
func (e *Engine) Me(ctx context.Context, tok string) (*store.User, *Principal, error) {
	p, err := e.AuthenticateToken(ctx, tok)
	if err != nil {
		return nil, nil, err
	}
	if p.Kind != KindUser {
		return nil, p, nil
	}
	u, err := e.recentUser(ctx, p.ID)
	if errors.Is(err, store.ErrNotFound) {
		// A valid token for a user that no longer exists.
		return nil, nil, ErrUnauthenticated
	}
	if err != nil {
		return nil, nil, err
	}
	return u, p, nil
}
