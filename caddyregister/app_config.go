package caddyregister

import (
	"errors"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/ratelimit"
)

// The register app's configuration blocks (JSON and Caddyfile alike),
// and their translation into the engine's types.

// StoreConfig selects a store backend.
type StoreConfig struct {
	// Backend is "redis" or "embedded" (the default when no store is
	// configured).
	Backend string `json:"backend"`
	// URL is the Redis URL in any connection form: redis:// or rediss://
	// (one node), redis+cluster:// or rediss+cluster:// (seed nodes,
	// comma-separated), redis+sentinel:// or rediss+sentinel://
	// (sentinels, ?master=name); placeholders such as {env.REDIS_URL} are
	// resolved at provision time. Instead of a URL, the connection can be
	// given by parts: Cluster or Sentinels, with Master, Username, Password
	// and TLS.
	URL string `json:"url,omitempty"`
	// Cluster lists Redis Cluster seed nodes (host:port).
	Cluster []string `json:"cluster,omitempty"`
	// Sentinels lists Sentinel addresses (host:port); Master names the
	// monitored master.
	Sentinels []string `json:"sentinels,omitempty"`
	Master    string   `json:"master,omitempty"`
	// Username and Password are the ACL user the store runs as on the
	// Redis nodes (with Sentinel: on the master and replicas, not on the
	// sentinels). Use a placeholder for the password.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// TLS connects over TLS (rediss).
	TLS bool `json:"tls,omitempty"`
	// Path is the embedded store's file. Default: register/register.db in
	// Caddy's data directory (which follows XDG_DATA_HOME).
	Path string `json:"path,omitempty"`
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

// TenantConfig declares a tenant.
type TenantConfig struct {
	// ID is ObjectID-shaped: 24 hex digits.
	ID     string   `json:"id"`
	Code   string   `json:"code"`
	Name   string   `json:"name,omitempty"`
	Groups []string `json:"groups,omitempty"`
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

// LockoutConfig sets the account lockout (engine.Lockout); zero fields
// keep the defaults.
type LockoutConfig struct {
	// NetworkFailures locks an account for one client network. Default 5.
	NetworkFailures int `json:"network_failures,omitempty"`
	// Failures locks an account for everyone. Default 30.
	Failures int `json:"failures,omitempty"`
	// WaitIncrement is the first lock, added for each further multiple of
	// the threshold. Default 1m.
	WaitIncrement caddy.Duration `json:"wait_increment,omitempty"`
	// MaxWait caps the lock. Default 15m.
	MaxWait caddy.Duration `json:"max_wait,omitempty"`
	// Reset forgets failures this long after the last one. Default 12h.
	Reset caddy.Duration `json:"reset,omitempty"`
}

// SessionsConfig sets session lifetimes.
type SessionsConfig struct {
	// Idle ends a session this long after its last use (refresh).
	Idle caddy.Duration `json:"idle,omitempty"`
	// Lifetime ends a session this long after it started, used or not.
	Lifetime caddy.Duration `json:"lifetime,omitempty"`
	// RefreshGrace is how long a refresh token just rotated, presented
	// again (a client retrying after a lost answer), gets a conflict
	// instead of revoking its session; negative turns the window off.
	RefreshGrace caddy.Duration `json:"refresh_grace,omitempty"`
}

func (c *SessionsConfig) sessions() (engine.SessionConfig, error) {
	if c == nil {
		return engine.SessionConfig{}, nil
	}
	s := engine.SessionConfig{IdleTTL: time.Duration(c.Idle), AbsoluteTTL: time.Duration(c.Lifetime), RefreshGrace: time.Duration(c.RefreshGrace)}
	if s.IdleTTL < 0 || s.AbsoluteTTL < 0 {
		return s, fmt.Errorf("sessions: idle and lifetime must be positive")
	}
	if s.IdleTTL > 0 && s.AbsoluteTTL > 0 && s.IdleTTL > s.AbsoluteTTL {
		return s, fmt.Errorf("sessions: idle (%s) is longer than lifetime (%s)", s.IdleTTL, s.AbsoluteTTL)
	}
	return s, nil
}

func (c *LockoutConfig) lockout() (engine.Lockout, error) {
	if c == nil {
		return engine.Lockout{}, nil
	}
	l := engine.Lockout{NetworkFailures: c.NetworkFailures, Failures: c.Failures,
		WaitIncrement: time.Duration(c.WaitIncrement), MaxWait: time.Duration(c.MaxWait), Reset: time.Duration(c.Reset)}
	if l.NetworkFailures < 0 || l.Failures < 0 || l.WaitIncrement < 0 || l.MaxWait < 0 || l.Reset < 0 {
		return l, errors.New("register: lockout: values must not be negative")
	}
	return l, nil
}

// GlobalLimitFactor scales a route's per-client limit (rate and burst) to
// its default global ceiling.
const GlobalLimitFactor = 20

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
