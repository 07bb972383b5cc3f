// Package redisstore is the Redis backend of the store.
//
// Key layout (every key of one namespace shares the hash tag {ns}, so the
// Lua scripts that write a user, its indexes and its tenant in one step stay
// valid on Redis Cluster; the price is that one namespace lives on one shard):
//
//	{ns}:user:<id>                   user record (JSON)
//	{ns}:idx:email:<email key>       user id, unique on the normalized e-mail
//	{ns}:idx:login:<login key>       user id, unique on the lowercased login
//	{ns}:tenant:<id>                 tenant record (JSON)
//	{ns}:idx:tenant_vat:<vat key>    tenant id, unique on the normalized VAT id
//	{ns}:idx:tenant_code:<code key>  tenant id, unique on the lowercased code
//	{ns}:secret:<name>               secrets shared by every instance (signing key PEM)
//
// Rate-limit buckets live under "rate:{ns}:..." (one key each, redis_rate's
// layout), so they spread over the cluster.
package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// Store is the Redis backend. It is safe for concurrent use.
type Store struct {
	c  redis.UniversalClient
	ns string
}

// DefaultNamespace is the key namespace when none is configured.
const DefaultNamespace = "caddyregister"

// New returns a store on client c under namespace ns. The store owns the
// client: Close closes it.
func New(c redis.UniversalClient, ns string) *Store {
	if ns == "" {
		ns = DefaultNamespace
	}
	return &Store{c: c, ns: ns}
}

// Open parses a redis:// or rediss:// URL and returns a store on it. No
// connection is made until the first command, so Open is cheap.
func Open(url, ns string) (*Store, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("parse redis url: %w", err)
	}
	// Fail fast when Redis is down: go-redis' defaults (5 dial attempts,
	// 3 retries) hold a request ~2s before its 503.
	if !strings.Contains(url, "dial_retries=") {
		opt.DialerRetries = 1
	}
	if !strings.Contains(url, "max_retries=") {
		opt.MaxRetries = 1
	}
	return New(redis.NewClient(opt), ns), nil
}

// Client exposes the underlying client (the rate limiter shares it).
func (s *Store) Client() redis.UniversalClient { return s.c }

// Namespace is the key namespace, without braces.
func (s *Store) Namespace() string { return s.ns }

// Key builds a namespaced key; parts are joined with ':'.
func (s *Store) Key(parts ...string) string {
	k := "{" + s.ns + "}"
	for _, p := range parts {
		k += ":" + p
	}
	return k
}

// createScript claims every unique key and writes every record, or writes
// nothing. The shebang makes Redis refuse the whole script up front when it
// cannot write (OOM, min-replicas), instead of failing half-way.
//
// KEYS[1..n] are claims, KEYS[n+1..] are puts. ARGV[1] = n, then n field
// names, n claim values, and one value per put.
var createScript = redis.NewScript(`#!lua
local n = tonumber(ARGV[1])
for i = 1, n do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    return ARGV[1 + i]
  end
end
for i = 1, n do
  redis.call('SET', KEYS[i], ARGV[1 + n + i])
end
for i = n + 1, #KEYS do
  redis.call('SET', KEYS[i], ARGV[1 + n + i])
end
return ''
`)

type claim struct{ field, key, value string }

// CreateUser implements store.Store.
func (s *Store) CreateUser(ctx context.Context, n store.NewUser) error {
	u := n.User
	if u == nil || u.ID == "" || u.EmailKey == "" {
		return errors.New("create user: id and e-mail key are required")
	}
	userJSON, err := json.Marshal(u)
	if err != nil {
		return fmt.Errorf("encode user: %w", err)
	}
	claims := []claim{
		{"id", s.Key("user", u.ID), ""}, // placeholder value replaced below
		{"email", s.Key("idx", "email", u.EmailKey), u.ID},
	}
	if u.LoginKey != "" {
		claims = append(claims, claim{"login", s.Key("idx", "login", u.LoginKey), u.ID})
	}
	if t := n.Tenant; t != nil {
		tenantJSON, err := json.Marshal(t)
		if err != nil {
			return fmt.Errorf("encode tenant: %w", err)
		}
		claims = append(claims, claim{"tenant_id", s.Key("tenant", t.ID), string(tenantJSON)})
		keys := n.Of()
		if keys.TenantVATKey != "" {
			claims = append(claims, claim{"tenant_vat", s.Key("idx", "tenant_vat", keys.TenantVATKey), t.ID})
		}
		if keys.TenantCodeKey != "" {
			claims = append(claims, claim{"tenant_code", s.Key("idx", "tenant_code", keys.TenantCodeKey), t.ID})
		}
	}
	claims[0].value = string(userJSON)

	keys := make([]string, 0, len(claims))
	args := make([]any, 0, 1+2*len(claims))
	args = append(args, len(claims))
	for _, c := range claims {
		keys = append(keys, c.key)
		args = append(args, c.field)
	}
	for _, c := range claims {
		args = append(args, c.value)
	}

	field, err := createScript.Run(ctx, s.c, keys, args...).Text()
	if err != nil {
		return store.Unavailable("create user", err)
	}
	if field != "" {
		return &store.ConflictError{Field: field}
	}
	return nil
}

// GetUser implements store.Store.
func (s *Store) GetUser(ctx context.Context, id string) (*store.User, error) {
	var u store.User
	if err := s.getJSON(ctx, "get user", s.Key("user", id), &u); err != nil {
		return nil, err
	}
	return &u, nil
}

// GetTenant implements store.Store.
func (s *Store) GetTenant(ctx context.Context, id string) (*store.Tenant, error) {
	var t store.Tenant
	if err := s.getJSON(ctx, "get tenant", s.Key("tenant", id), &t); err != nil {
		return nil, err
	}
	return &t, nil
}

func (s *Store) getJSON(ctx context.Context, op, key string, v any) error {
	b, err := s.c.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return store.ErrNotFound
	}
	if err != nil {
		return store.Unavailable(op, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: decode %s: %w", op, key, err)
	}
	return nil
}

func (s *Store) getString(ctx context.Context, op, key string) (string, error) {
	v, err := s.c.Get(ctx, key).Result()
	if errors.Is(err, redis.Nil) {
		return "", store.ErrNotFound
	}
	if err != nil {
		return "", store.Unavailable(op, err)
	}
	return v, nil
}

// UserIDByEmail implements store.Store.
func (s *Store) UserIDByEmail(ctx context.Context, emailKey string) (string, error) {
	return s.getString(ctx, "user by email", s.Key("idx", "email", emailKey))
}

// UserIDByLogin implements store.Store.
func (s *Store) UserIDByLogin(ctx context.Context, loginKey string) (string, error) {
	return s.getString(ctx, "user by login", s.Key("idx", "login", loginKey))
}

// TenantIDByVAT implements store.Store.
func (s *Store) TenantIDByVAT(ctx context.Context, vatKey string) (string, error) {
	return s.getString(ctx, "tenant by vat", s.Key("idx", "tenant_vat", vatKey))
}

// Taken implements store.Store in one round trip.
func (s *Store) Taken(ctx context.Context, k store.UniqueKeys) error {
	type check struct{ field, key string }
	var checks []check
	if k.EmailKey != "" {
		checks = append(checks, check{"email", s.Key("idx", "email", k.EmailKey)})
	}
	if k.LoginKey != "" {
		checks = append(checks, check{"login", s.Key("idx", "login", k.LoginKey)})
	}
	if k.TenantVATKey != "" {
		checks = append(checks, check{"tenant_vat", s.Key("idx", "tenant_vat", k.TenantVATKey)})
	}
	if k.TenantCodeKey != "" {
		checks = append(checks, check{"tenant_code", s.Key("idx", "tenant_code", k.TenantCodeKey)})
	}
	if len(checks) == 0 {
		return nil
	}
	pipe := s.c.Pipeline()
	cmds := make([]*redis.IntCmd, len(checks))
	for i, c := range checks {
		cmds[i] = pipe.Exists(ctx, c.key)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return store.Unavailable("check unique keys", err)
	}
	for i, c := range cmds {
		if c.Val() > 0 {
			return &store.ConflictError{Field: checks[i].field}
		}
	}
	return nil
}

// LoadOrCreateSecret implements store.Store with SET NX GET (Redis 7), one
// round trip whether this caller wins or not.
func (s *Store) LoadOrCreateSecret(ctx context.Context, name string, value []byte) ([]byte, error) {
	old, err := s.c.SetArgs(ctx, s.Key("secret", name), value, redis.SetArgs{Mode: "NX", Get: true}).Bytes()
	if errors.Is(err, redis.Nil) {
		return value, nil
	}
	if err != nil {
		return nil, store.Unavailable("load or create secret", err)
	}
	return old, nil
}

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.c.Ping(ctx).Err(); err != nil {
		return store.Unavailable("ping", err)
	}
	return nil
}

// Close implements store.Store.
func (s *Store) Close() error { return s.c.Close() }

var _ store.Store = (*Store)(nil)
