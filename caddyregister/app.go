// Package caddyregister is the Caddy layer of caddyregister: the
// "register" app, which owns the shared state (store client, signing key,
// admins, password hasher, rate limits), and the http.handlers.register
// handler, which serves one contract's routes under a prefix.
package caddyregister

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/password"
	"github.com/caddyregister/caddyregister/caddyregister/ratelimit"
	"github.com/caddyregister/caddyregister/caddyregister/store"
	"github.com/caddyregister/caddyregister/caddyregister/store/redisstore"
	"github.com/caddyregister/caddyregister/caddyregister/token"
)

func init() {
	caddy.RegisterModule(App{})
}

// App is the "register" app: state shared by every register handler.
type App struct {
	// Store selects the backend holding users, tenants and keys.
	Store *StoreConfig `json:"store,omitempty"`

	// SigningKey is an Ed25519 private key in PKCS#8 PEM, usually given as
	// a placeholder ({file./etc/caddy/jwt.pem} or {env.JWT_KEY}). Without
	// one, a key is generated on first start and kept in the store, so every
	// instance on one store signs alike.
	SigningKey string `json:"signing_key,omitempty"`
	// Issuer is the tokens' iss claim. Default "caddyregister".
	Issuer string `json:"issuer,omitempty"`
	// TokenTTL is the access token lifetime. Default 15m.
	TokenTTL caddy.Duration `json:"token_ttl,omitempty"`

	// Admins are the operator-declared principals, checked on HTTP Basic
	// credentials and on the tokens issued to them.
	Admins []AdminConfig `json:"admins,omitempty"`
	// AdminLoginLimit bounds admin login attempts per client IP and per
	// login. Default 10 per minute.
	AdminLoginLimit *RateLimitConfig `json:"admin_login_limit,omitempty"`

	// Hash selects the password hash for new passwords. Default argon2id
	// with m=19 MiB, t=2, p=1.
	Hash *HashConfig `json:"hash,omitempty"`
	// HashPoolSize is how many hashes run at once. Default GOMAXPROCS.
	HashPoolSize int `json:"hash_pool_size,omitempty"`
	// HashQueueWait is how long a request may wait for a hashing slot
	// before it is answered 503 with Retry-After. Default 2s.
	HashQueueWait caddy.Duration `json:"hash_queue_wait,omitempty"`

	// RateLimits are defaults per route name ("register", "me", ...) for
	// every handler; handlers override them.
	RateLimits map[string]*RateLimitConfig `json:"rate_limits,omitempty"`

	engine   *engine.Engine
	storeKey string
	logger   *zap.Logger
}

// StoreConfig selects a store backend.
type StoreConfig struct {
	// Backend is "redis".
	Backend string `json:"backend"`
	// URL is the redis:// or rediss:// URL; placeholders such as
	// {env.REDIS_URL} are resolved at provision time.
	URL string `json:"url,omitempty"`
	// Namespace prefixes every key (as the Redis Cluster hash tag {ns}).
	// Default "caddyregister".
	Namespace string `json:"namespace,omitempty"`
}

// AdminConfig declares an admin principal.
type AdminConfig struct {
	Login string `json:"login"`
	// Hash is a bcrypt hash (as `caddy hash-password` prints) or an
	// argon2id PHC string; placeholders are resolved. An admin whose hash
	// resolves empty is skipped with a warning, so a demo config runs with
	// no secrets set.
	Hash        string   `json:"hash"`
	Permissions []string `json:"permissions,omitempty"`
}

// HashConfig selects the password hash.
type HashConfig struct {
	// Algorithm is "argon2id" or "bcrypt".
	Algorithm string `json:"algorithm"`
	// MemoryKiB, Time and Threads are argon2id's m, t and p.
	MemoryKiB uint32 `json:"memory_kib,omitempty"`
	Time      uint32 `json:"time,omitempty"`
	Threads   uint8  `json:"threads,omitempty"`
	// Cost is bcrypt's cost. Default 10.
	Cost int `json:"cost,omitempty"`
}

// RateLimitConfig is Rate events per Period, with bursts up to Burst.
// Rate 0 turns limiting off.
type RateLimitConfig struct {
	Rate   int            `json:"rate"`
	Period caddy.Duration `json:"period,omitempty"`
	Burst  int            `json:"burst,omitempty"`
}

func (c *RateLimitConfig) limit() ratelimit.Limit {
	if c == nil {
		return ratelimit.Limit{}
	}
	p := time.Duration(c.Period)
	if p == 0 {
		p = time.Minute
	}
	return ratelimit.Limit{Rate: c.Rate, Period: p, Burst: c.Burst}
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "register",
		New: func() caddy.Module { return new(App) },
	}
}

// stores pools store clients across config reloads: a reload that keeps the
// same store reuses its connections instead of dropping them.
var stores = caddy.NewUsagePool()

type pooledStore struct{ store.Store }

// Destruct implements caddy.Destructor.
func (p pooledStore) Destruct() error { return p.Close() }

// Provision sets the app up. It does no network I/O (caddy validate runs
// it): clients connect lazily, and the signing key is loaded in Start.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	repl := caddy.NewReplacer()
	registerMetrics(ctx, a.logger)

	if a.Store == nil {
		a.Store = &StoreConfig{Backend: "redis", URL: "redis://127.0.0.1:6379/0"}
	}
	st, err := a.provisionStore(repl)
	if err != nil {
		return err
	}

	var hasher password.Hasher = password.DefaultArgon2id()
	if h := a.Hash; h != nil {
		switch strings.ToLower(h.Algorithm) {
		case "", "argon2id":
			ar := password.DefaultArgon2id()
			if h.MemoryKiB != 0 {
				ar.MemoryKiB = h.MemoryKiB
			}
			if h.Time != 0 {
				ar.Time = h.Time
			}
			if h.Threads != 0 {
				ar.Threads = h.Threads
			}
			hasher = ar
		case "bcrypt":
			hasher = password.Bcrypt{Cost: h.Cost}
		default:
			return fmt.Errorf("register: unknown hash algorithm %q (want argon2id or bcrypt)", h.Algorithm)
		}
		// Hash once with an empty password to reject bad parameters now
		// rather than on the first registration.
		if _, err := hasher.Hash(nil); err != nil && !errors.Is(err, password.ErrPasswordTooLong) {
			return fmt.Errorf("register: hash parameters: %w", err)
		}
	}
	pool := password.NewPool(password.PoolConfig{
		Size:     a.HashPoolSize,
		MaxWait:  time.Duration(a.HashQueueWait),
		Observer: hashObserver{},
	})

	var admins []engine.Admin
	for _, ac := range a.Admins {
		hash := strings.TrimSpace(repl.ReplaceKnown(ac.Hash, ""))
		login := repl.ReplaceKnown(ac.Login, "")
		if hash == "" || login == "" {
			a.logger.Warn("admin has no login or password hash; skipped", zap.String("login", login))
			continue
		}
		admins = append(admins, engine.Admin{Login: login, Hash: hash, Permissions: ac.Permissions})
	}

	var key *token.Key
	if a.SigningKey != "" {
		pemText := repl.ReplaceKnown(a.SigningKey, "")
		if key, err = token.ParsePrivateKeyPEM([]byte(pemText)); err != nil {
			return fmt.Errorf("register: signing_key: %w", err)
		}
	}
	adminLimit := ratelimit.Limit{Rate: 10, Period: time.Minute, Burst: 10}
	if a.AdminLoginLimit != nil {
		adminLimit = a.AdminLoginLimit.limit()
	}

	var limiter ratelimit.Limiter
	if rs, ok := st.(*redisstore.Store); ok {
		limiter = ratelimit.NewRedis(rs.Client(), "{"+rs.Namespace()+"}:")
	}
	a.engine, err = engine.New(engine.Config{
		Store:           st,
		Limiter:         limiter,
		Hasher:          hasher,
		Pool:            pool,
		SigningKey:      key,
		Token:           token.Config{Issuer: a.Issuer, TTL: time.Duration(a.TokenTTL)},
		Admins:          admins,
		AdminLoginLimit: adminLimit,
		Logger:          a.logger,
		Metrics:         promMetrics{},
	})
	if err != nil {
		return fmt.Errorf("register: %w", err)
	}
	return nil
}

func (a *App) provisionStore(repl *caddy.Replacer) (store.Store, error) {
	sc := a.Store
	switch sc.Backend {
	case "redis":
		url := repl.ReplaceKnown(sc.URL, "")
		if url == "" {
			return nil, errors.New("register: store redis needs a url")
		}
		ns := sc.Namespace
		if ns == "" {
			ns = redisstore.DefaultNamespace
		}
		a.storeKey = "redis|" + url + "|" + ns
		v, _, err := stores.LoadOrNew(a.storeKey, func() (caddy.Destructor, error) {
			s, err := redisstore.Open(url, ns)
			if err != nil {
				return nil, err
			}
			return pooledStore{s}, nil
		})
		if err != nil {
			// The URL may hold a password: say what is wrong, not the URL.
			return nil, fmt.Errorf("register: store redis: %w", err)
		}
		return v.(pooledStore).Store, nil
	default:
		return nil, fmt.Errorf("register: unknown store backend %q (want redis)", sc.Backend)
	}
}

// Engine returns the engine handlers serve with.
func (a *App) Engine() *engine.Engine { return a.engine }

// Start loads the signing key. A store that is down at start is logged, not
// fatal: the engine retries when a token is next needed.
func (a *App) Start() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.engine.Start(ctx); err != nil {
		a.logger.Warn("store not reachable at start; will retry on demand", zap.Error(err))
	}
	return nil
}

// Stop implements caddy.App.
func (a *App) Stop() error { return nil }

// Cleanup releases this config's hold on the pooled store.
func (a *App) Cleanup() error {
	if a.storeKey != "" {
		_, err := stores.Delete(a.storeKey)
		return err
	}
	return nil
}

// Interface guards.
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)
