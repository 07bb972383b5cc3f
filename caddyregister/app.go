// Package caddyregister is the Caddy layer of caddyregister: the
// "register" app, which owns the shared state (store client, signing key,
// admins, password hasher, rate limits), and the http.handlers.register
// handler, which serves one contract's routes under a prefix.
package caddyregister

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddyregister/caddyregister/caddyregister/captcha"
	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/mail"
	"github.com/caddyregister/caddyregister/caddyregister/password"
	"github.com/caddyregister/caddyregister/caddyregister/ratelimit"
	"github.com/caddyregister/caddyregister/caddyregister/secretbox"
	"github.com/caddyregister/caddyregister/caddyregister/store"
	"github.com/caddyregister/caddyregister/caddyregister/store/boltstore"
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
	// KeyEncryptionKey encrypts the generated signing key where the store
	// keeps it, so that reading Redis is not enough to mint tokens; usually
	// a placeholder ({env.REGISTER_KEY_ENCRYPTION_KEY}) resolving to at
	// least 32 random bytes (openssl rand -base64 32). Every instance on
	// one store needs the same one. Empty: the key is stored in clear (a
	// warning at start on Redis; the embedded file is readable by Caddy's
	// user only).
	KeyEncryptionKey string `json:"key_encryption_key,omitempty"`
	// Issuer is the tokens' iss claim. Default "caddyregister".
	Issuer string `json:"issuer,omitempty"`
	// TokenTTL is the access token lifetime. Default 15m.
	TokenTTL caddy.Duration `json:"token_ttl,omitempty"`

	// Admins are the operator-declared principals, checked on HTTP Basic
	// credentials and on the tokens issued to them.
	Admins []AdminConfig `json:"admins,omitempty"`
	// AdminLoginLimit bounds password attempts (admin HTTP Basic, logins)
	// per client network, a flood guard that never locks an account.
	// Default 10 per minute.
	AdminLoginLimit *RateLimitConfig `json:"admin_login_limit,omitempty"`
	// Lockout is the per-account failure budget shared by every route that
	// checks a password; unset fields take engine.DefaultLockout's.
	Lockout *LockoutConfig `json:"lockout,omitempty"`
	// IPv6Prefix is the prefix length IPv6 clients are grouped by for
	// per-client limits and lockouts (IPv4 clients are keyed alone).
	// Default 64.
	IPv6Prefix int `json:"ipv6_prefix,omitempty"`
	// Sessions sets the lifetimes of the sessions the account contract's
	// logins start; unset fields keep the engine's defaults (idle 30
	// days, absolute 90 days, refresh grace 5s).
	Sessions *SessionsConfig `json:"sessions,omitempty"`

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
	// GlobalRateLimits are per route name ceilings over every client
	// together, which hold however many addresses a flood comes from.
	// Default GlobalLimitFactor times the route's per-client limit;
	// handlers override them.
	GlobalRateLimits map[string]*RateLimitConfig `json:"global_rate_limits,omitempty"`

	// SMTP is the mail server URL: smtp://[user:pass@]host[:port] (plain,
	// opportunistic STARTTLS) or smtps://… (implicit TLS); placeholders are
	// resolved. Empty: mails are written to the log instead.
	SMTP string `json:"smtp,omitempty"`
	// MailFrom is the sender address; default from the SMTP URL's ?from=
	// or noreply@<smtp host>.
	MailFrom string `json:"mail_from,omitempty"`
	// PublicURL is the default base of links in mails
	// (https://example.com); default the request's scheme and host.
	PublicURL string `json:"public_url,omitempty"`
	// CaptchaLength is the number of characters in a CAPTCHA. Default 5.
	CaptchaLength int `json:"captcha_length,omitempty"`
	// CaptchaTTL is how long a CAPTCHA may take to solve. Default 5m.
	CaptchaTTL caddy.Duration `json:"captcha_ttl,omitempty"`

	// MemoryLimit is "auto" (the default), "off" or a size ("256MiB"). Each
	// running hash holds its whole argon2 memory, and Go's collector lets
	// the heap grow to twice what is live, so under a flood of
	// registrations the process would swell far past what it uses. auto
	// lowers Go's soft memory limit to 128 MiB plus, where the hash memory
	// is on the Go heap (not on Linux, where argon2id's is mapped apart),
	// (hash_pool_size + the admin slot) × hash memory; at least the heap in use at start +
	// 64 MiB; unless GOMEMLIMIT is set.
	MemoryLimit string `json:"memory_limit,omitempty"`

	// Tenants are declared tenants, written to the store at start
	// (idempotently; declared groups are added to existing tenants).
	Tenants []TenantConfig `json:"tenants,omitempty"`

	// Webhooks are the endpoints told what happens to users
	// (webhooks.go).
	Webhooks []WebhookConfig `json:"webhooks,omitempty"`
	// BeforeRegister is the hook that can veto a signup.
	BeforeRegister *BeforeRegisterConfig `json:"before_register,omitempty"`
	// WebhookRetry are the waits before each retry of a webhook event;
	// default the Standard Webhooks schedule (mail.DefaultWebhookSchedule).
	WebhookRetry []caddy.Duration `json:"webhook_retry,omitempty"`

	engine   *engine.Engine
	worker   *mail.Worker
	hashHeap int64 // bytes of Go heap one running hash holds
	poolSize int
	storeKey string
	logger   *zap.Logger
	// sealed is whether a key_encryption_key is set (for the warning at
	// Start).
	sealed bool
	// box is the Box built from key_encryption_key (nil without one): the
	// import command re-seals moved secrets with it.
	box *secretbox.Box

	// Embedded mode: the store opens in Start (see deferredStore).
	embeddedPath string
	deferred     *deferredStore
	deferredLim  *deferredLimiter

	// For the link host check at Start (see checkLinkHosts).
	ctx      caddy.Context
	handlers []*Handler // provisioned with this config
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
	if a.logger == nil { // an operator command brings its own
		a.logger = ctx.Logger()
	}
	a.ctx = ctx
	repl := caddy.NewReplacer()
	a.PublicURL = repl.ReplaceKnown(a.PublicURL, "")
	if err := checkPublicURL(a.PublicURL); err != nil {
		return fmt.Errorf("register: %w", err)
	}
	registerMetrics(ctx, a.logger)

	if a.Store == nil {
		a.Store = &StoreConfig{Backend: "embedded"}
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
			if err := ar.Check(); err != nil {
				return fmt.Errorf("register: hash parameters: %w", err)
			}
			hasher = ar
		case "bcrypt":
			b := password.Bcrypt{Cost: h.Cost}
			if err := b.Check(); err != nil {
				return fmt.Errorf("register: hash parameters: %w", err)
			}
			hasher = b
		default:
			return fmt.Errorf("register: unknown hash algorithm %q (want argon2id or bcrypt)", h.Algorithm)
		}
	}
	a.hashHeap = 4 << 10 // bcrypt's state is a few KiB
	if ar, ok := hasher.(password.Argon2id); ok {
		a.hashHeap = 0 // mapped apart from the heap, where the platform allows
		if password.ScratchInHeap {
			m := ar.MemoryKiB
			if m == 0 {
				m = password.DefaultArgon2id().MemoryKiB
			}
			a.hashHeap = int64(m) << 10
		}
	}
	if err := a.checkMemoryLimit(); err != nil {
		return err
	}
	pool := password.NewPool(password.PoolConfig{
		Size:     a.HashPoolSize,
		MaxWait:  time.Duration(a.HashQueueWait),
		Observer: hashObserver{},
	})
	a.poolSize = pool.Size() + password.ReservedSlots

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
	lockout, err := a.Lockout.lockout()
	if err != nil {
		return err
	}
	sessions, err := a.Sessions.sessions()
	if err != nil {
		return fmt.Errorf("register: %w", err)
	}

	gen, err := captcha.New(captcha.Config{Length: a.CaptchaLength})
	if err != nil {
		return fmt.Errorf("register: captcha: %w", err)
	}
	var sender mail.Sender = mail.LogSender{Logger: a.logger.Named("mail")}
	from := repl.ReplaceKnown(a.MailFrom, "")
	if smtpURL := strings.TrimSpace(repl.ReplaceKnown(a.SMTP, "")); smtpURL != "" {
		var urlFrom string
		if sender, urlFrom, err = mail.ParseURL(smtpURL); err != nil {
			return fmt.Errorf("register: smtp: %w", err)
		}
		if from == "" {
			from = urlFrom
		}
	} else {
		a.logger.Warn("no smtp configured; mails are written to the log instead of being sent")
	}
	if from == "" {
		from = "noreply@localhost"
	}
	hooks, err := a.provisionWebhooks(repl)
	if err != nil {
		return err
	}
	wcfg := mail.WorkerConfig{
		Outbox:   st,
		Sender:   sender,
		From:     from,
		Logger:   a.logger.Named("mail"),
		Observer: mailObserver{},
		// a.engine is built below, before the worker starts.
		Sealer: func(ctx context.Context, keyID string) (*mail.Sealer, error) { return a.engine.MailOpener(ctx, keyID) },
	}
	hooks.worker(&wcfg)
	a.worker = mail.NewWorker(wcfg)

	var limiter ratelimit.Limiter
	if cs, ok := st.(*redisstore.ClusterStore); ok {
		// Every bucket and counter in a slot of its own.
		limiter = ratelimit.NewRedisCluster(cs.Client(), cs.Namespace())
	} else if rs, ok := st.(*redisstore.Store); ok {
		limiter = ratelimit.NewRedis(rs.Client(), "{"+rs.Namespace()+"}:")
	} else {
		limiter = a.deferredLim
	}
	var tenants []store.Tenant
	for _, tc := range a.Tenants {
		if !store.IsID(tc.ID) {
			return fmt.Errorf("register: tenant %s: id %q is not 24 lowercase hex digits", tc.Code, tc.ID)
		}
		if tc.Code == "" {
			return fmt.Errorf("register: tenant %s has no code", tc.ID)
		}
		tenants = append(tenants, store.Tenant{ID: tc.ID, Code: tc.Code, Name: tc.Name, Groups: tc.Groups})
	}
	sealer, err := a.provisionSealer(repl)
	if err != nil {
		return err
	}
	a.engine, err = engine.New(engine.Config{
		Sealer:          sealer,
		Tenants:         tenants,
		Store:           st,
		Limiter:         limiter,
		Hasher:          hasher,
		Pool:            pool,
		SigningKey:      key,
		Token:           token.Config{Issuer: a.Issuer, TTL: time.Duration(a.TokenTTL)},
		Admins:          admins,
		AdminLoginLimit: adminLimit,
		Lockout:         lockout,
		IPv6Prefix:      a.IPv6Prefix,
		Sessions:        sessions,
		Captcha:         gen,
		ChallengeTTL:    time.Duration(a.CaptchaTTL),
		MailQueued:      a.worker.Kick,
		Webhooks:        hooks.engineConfig(),
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
		url, err := sc.redisURL(repl)
		if err != nil {
			return nil, fmt.Errorf("register: store redis: %w", err)
		}
		ns := sc.Namespace
		if ns == "" {
			ns = redisstore.DefaultNamespace
		}
		a.storeKey = "redis|" + url + "|" + ns
		v, _, err := stores.LoadOrNew(a.storeKey, func() (caddy.Destructor, error) {
			s, err := redisstore.OpenStore(url, ns)
			if err != nil {
				return nil, err
			}
			if cs, ok := s.(*redisstore.ClusterStore); ok {
				log := a.logger.Named("store")
				cs.SetReconcileLog(func(st redisstore.ReconcileStats) {
					log.Warn("users reconciled after a cluster failover (entries the dead master lost)",
						zap.Int("restored", st.Restored), zap.Int("erased", st.Erased),
						zap.Strings("erased_user_ids", st.ErasedIDs), zap.Int("deferred", st.Deferred))
				})
			}
			return pooledStore{s}, nil
		})
		if err != nil {
			// The URL may hold a password: say what is wrong, not the URL.
			return nil, fmt.Errorf("register: store redis: %w", err)
		}
		return v.(pooledStore).Store, nil
	case "embedded":
		path := repl.ReplaceKnown(sc.Path, "")
		if path == "" {
			path = filepath.Join(caddy.AppDataDir(), "register", "register.db")
		}
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, fmt.Errorf("register: store embedded path: %w", err)
		}
		a.embeddedPath = abs
		a.deferred = new(deferredStore)
		a.deferredLim = new(deferredLimiter)
		return a.deferred, nil
	default:
		return nil, fmt.Errorf("register: unknown store backend %q (want redis or embedded)", sc.Backend)
	}
}

// pooledEmbedded is the embedded store and its in-process limiter, shared
// by every config on one file: bbolt locks the file, so a reload must reuse
// the open handle rather than open it again.
type pooledEmbedded struct {
	s *boltstore.Store
	l *ratelimit.Memory
}

// Destruct implements caddy.Destructor.
func (p pooledEmbedded) Destruct() error { return p.s.Close() }

// openEmbedded opens (or reuses) the embedded store.
func (a *App) openEmbedded() error {
	key := "embedded|" + a.embeddedPath
	v, _, err := stores.LoadOrNew(key, func() (caddy.Destructor, error) {
		s, err := boltstore.Open(a.embeddedPath)
		if err != nil {
			return nil, err
		}
		return pooledEmbedded{s: s, l: ratelimit.NewMemory()}, nil
	})
	if err != nil {
		return fmt.Errorf("register: %w", err)
	}
	a.storeKey = key
	pe := v.(pooledEmbedded)
	a.deferred.set(pe.s)
	a.deferredLim.l.Store(pe.l)
	a.logger.Info("embedded store open", zap.String("path", a.embeddedPath))
	return nil
}

func (a *App) checkMemoryLimit() error {
	switch a.MemoryLimit {
	case "", "auto", "off":
		return nil
	}
	if _, err := parseSize(a.MemoryLimit); err != nil {
		return fmt.Errorf("register: memory_limit: %w", err)
	}
	return nil
}

// applyMemoryLimit sets Go's soft memory limit (see MemoryLimit). It is
// process-wide, so it only ever lowers the limit, and leaves one the
// operator chose with GOMEMLIMIT alone.
func (a *App) applyMemoryLimit() {
	if a.MemoryLimit == "off" {
		return
	}
	if os.Getenv("GOMEMLIMIT") != "" {
		return // the operator's choice
	}
	var limit int64
	if a.MemoryLimit == "" || a.MemoryLimit == "auto" {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		limit = max(int64(a.poolSize)*a.hashHeap+128<<20, int64(ms.HeapInuse)+64<<20)
	} else {
		limit, _ = parseSize(a.MemoryLimit)
	}
	// Caddy sets a limit from the cgroup or the machine's memory; only
	// ever lower it.
	if cur := debug.SetMemoryLimit(-1); cur <= limit {
		return
	}
	debug.SetMemoryLimit(limit)
	a.logger.Info("go memory limit set", zap.Int64("bytes", limit), zap.String("why", "bound memory under registration floods; set GOMEMLIMIT or memory_limit to change"))
}

// Engine returns the engine handlers serve with.
func (a *App) Engine() *engine.Engine { return a.engine }

// Start opens the embedded store, if that is the backend, and loads the
// signing key. A Redis that is down at start is logged, not fatal: the
// engine retries when a token is next needed. An embedded store that cannot
// be opened (locked by another process) is fatal, with that reason, as is a
// declared tenant whose code or id another tenant holds.
func (a *App) Start() error {
	// Before anything opens: a refused config must leave nothing running.
	if err := a.checkLinkHosts(a.ctx); err != nil {
		return err
	}
	if a.deferred != nil {
		if err := a.openEmbedded(); err != nil {
			return err
		}
	}
	a.applyMemoryLimit()
	a.warnKeyStorage()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.checkRedisDeployment(ctx); err != nil {
		return err
	}
	if err := a.engine.Start(ctx); errors.Is(err, engine.ErrKeyUnusable) || errors.Is(err, engine.ErrTenantClash) {
		// A configuration error, not an outage: say so, and do not start.
		return fmt.Errorf("register: %w", err)
	} else if err != nil {
		a.logger.Warn("store not reachable at start; will retry on demand", zap.Error(err))
	}
	a.worker.Start()
	return nil
}

// Stop stops the mail worker. Messages it had claimed but not sent come due
// again when their lease lapses, so stopping loses none.
func (a *App) Stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return a.worker.Stop(ctx)
}

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
