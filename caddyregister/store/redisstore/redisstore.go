// Package redisstore is the Redis backend of the store.
//
// It holds two key layouts behind one contract suite (storetest). The
// single-node layout (Store, below) runs on one node and on Sentinel; the
// cluster layout (ClusterStore, cluster*.go) on Redis Cluster. OpenStore
// picks the one the URL calls for.
//
// Single-node key layout (every key of one namespace shares the hash tag
// {ns}, so the Lua scripts that write a user, its indexes, its tenant, its
// mails and its token run in one step; sessions carry the user's tag, see
// session.go). On Redis Cluster that would put a namespace on one shard,
// and three scripts span both tags (CROSSSLOT there), so Open refuses a
// cluster (ErrClusterLayout; TestSlotsPerOperation pins the list):
//
//	{ns}:user:<id>                   user record (JSON)
//	{ns}:user:<id>:refs              SET of what the user owns besides its record and indexes ("token:<hash>", "mail:<id>", see store.UserRefs)
//	{ns}:idx:email:<email key>       user id, unique on the normalized e-mail (store.EmailKey)
//	{ns}:idx:login:<login key>       user id, unique on the normalized login (store.LoginKey)
//	{ns}:tenant:<id>                 tenant record (JSON)
//	{ns}:idx:tenant_vat:<vat key>    tenant id, unique on the normalized VAT id
//	{ns}:idx:tenant_code:<code key>  tenant id, unique on the lowercased code
//	{ns}:tenants                     SET of every tenant id (for listing), added to in the step that writes the tenant
//	{ns}:users                       ZSET of every user id, score = creation time (unix ms): the ordered index ListUsers walks (users.go)
//	{ns}:users:indexed               marker: BackfillUserIndex ran
//	{ns}:secret:<name>               secrets shared by every instance (signing key PEM)
//	{ns}:mail:<id>                   outbox message (JSON), until delivered
//	{ns}:outbox                      ZSET of queued mail ids, score = due time (unix ms); a claim moves it to the lease's end
//	{ns}:outbox:parked               ZSET of parked mail ids, score = when parked (unix ms)
//	{ns}:token:<hash>                single-use token (JSON) by its SHA-256 hex, PEXPIREAT at its ExpiresAt
//	{ns}:challenge:<token>           CAPTCHA answer hash, PX ttl
//	{ns}:seq:<sequence>              store-wide sequence (integer string), INCRed by the create script only once every claim passed
//	{ns}:idem:<idempotency key>      idempotency record (JSON), PEXPIREAT at its ExpiresAt
//
// Rate-limit buckets live under "rate:{ns}:<hash>" and lockout counters
// under "fail:{ns}:<hash>" (package ratelimit); they carry the same hash
// tag, so they sit on the namespace's shard.
//
// Requires Redis 7 or later (script shebangs, SET ... PXAT, GETDEL).
package redisstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

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

// Open parses a URL in one of the connection forms (connect.go) and
// returns a single-node layout store on it. No connection is made until
// the first command, so Open is cheap. A cluster URL is refused with
// ErrClusterLayout: OpenStore opens it on the cluster layout
// (ClusterStore). Sentinel runs this layout, as it is one master at a
// time.
func Open(url, ns string) (*Store, error) {
	c, mode, err := NewClient(url)
	if err != nil {
		return nil, fmt.Errorf("parse redis url: %w", err)
	}
	if mode == ModeCluster {
		c.Close()
		return nil, ErrClusterLayout
	}
	return New(c, ns), nil
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

// createScript claims every unique key, draws the optional sequence number
// and writes every record, or writes nothing. The shebang makes Redis
// refuse the whole script up front when it cannot write (OOM,
// min-replicas), instead of failing half-way; and every check that could
// fail (a taken key, a key of the wrong type) runs before the first write.
// The INCR of the sequence is that first write: it runs only once every
// claim passed, and if it fails (a corrupt, non-integer value) nothing else
// is written, so a rejected create never consumes a number.
//
// KEYS[1..n] are claims (they must not exist), KEYS[n+1..] further writes
// and requirements; every key but a requirement is written. ARGV[1] = n,
// ARGV[2] = now (unix ms), ARGV[3] = the namespace's key prefix ("{ns}:"),
// then n field names, then three arguments per key, op a b:
//
//	set    SET key a
//	claimu SET key a, a claim that a user expired pending at now may hold:
//	       that user is deleted first (below)
//	setpx  SET key a PXAT b   (b: unix ms, > 0)
//	zadd   ZADD key a b       (score a, member b)
//	sadd   SADD key a
//	incr   INCR key           (at most one; a is the placeholder)
//	need   nothing: key must exist, checked after the claims (a: its name)
//	hsetpx HSET key with the pairs of the JSON array of strings a, then
//	       PEXPIREAT key b
//	pexpat PEXPIREAT key a    (a key written earlier in the list)
//	chain  RPUSH key b, and ZADD {ns}:outbox a b when b is the list's
//	       only entry (a chained message queues at its chain's head)
//
// An expired user is deleted (drop_user, see dropUserLua) after the INCR,
// before the other writes.
//
// With an incr, the first occurrence of its placeholder (a random JSON
// string literal, so it cannot occur by accident) in every set and setpx
// value is replaced by the drawn number before the SET.
//
// The reply is {field, seq}: the taken claim's field name and 0, "!" plus
// the missing requirement's name and 0, or "" and the drawn number (0
// without an incr).
var createScript = redis.NewScript(`#!lua
` + expiredLua + dropUserLua + `
local n, now, pfx = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local base = 3 + n
local drop = {}
for i = 1, n do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    local holder = nil
    if ARGV[base + 3 * (i - 1) + 1] == 'claimu' then
      holder = expired(pfx, now, redis.call('GET', KEYS[i]))
    end
    if not holder then
      return {ARGV[3 + i], 0}
    end
    drop[holder] = true
  end
end
for id in pairs(drop) do
  local t = redis.call('TYPE', pfx .. 'user:' .. id .. ':refs')['ok']
  if t ~= 'none' and t ~= 'set' then
    return redis.error_reply('WRONGTYPE refs of user ' .. id .. ' is a ' .. t .. ', not a set')
  end
end
local seqi = 0
for i = 1, #KEYS do
  local op = ARGV[base + 3 * (i - 1) + 1]
  if op == 'need' then
    if redis.call('EXISTS', KEYS[i]) == 0 then
      return {'!' .. ARGV[base + 3 * (i - 1) + 2], 0}
    end
  elseif op == 'zadd' or op == 'sadd' or op == 'incr' then
    local want = 'zset'
    if op == 'sadd' then
      want = 'set'
    elseif op == 'incr' then
      if seqi ~= 0 then
        return redis.error_reply('ERR more than one incr')
      end
      seqi, want = i, 'string'
    end
    local t = redis.call('TYPE', KEYS[i])['ok']
    if t ~= 'none' and t ~= want then
      return redis.error_reply('WRONGTYPE ' .. KEYS[i] .. ' is a ' .. t .. ', not a ' .. want)
    end
  elseif op == 'hsetpx' or op == 'chain' then
    local want = 'hash'
    if op == 'chain' then
      want = 'list'
    end
    local t = redis.call('TYPE', KEYS[i])['ok']
    if t ~= 'none' and t ~= want then
      return redis.error_reply('WRONGTYPE ' .. KEYS[i] .. ' is a ' .. t .. ', not a ' .. want)
    end
  elseif op ~= 'set' and op ~= 'setpx' and op ~= 'claimu' and op ~= 'pexpat' then
    return redis.error_reply('ERR unknown op ' .. tostring(op))
  end
end
local seq, ph, num = 0, nil, nil
if seqi ~= 0 then
  seq = redis.call('INCR', KEYS[seqi])
  ph = ARGV[base + 3 * (seqi - 1) + 2]
  num = string.format('%d', seq)
end
for id in pairs(drop) do
  drop_user(pfx, id)
end
for i = 1, #KEYS do
  local j = base + 3 * (i - 1)
  local op, a, b = ARGV[j + 1], ARGV[j + 2], ARGV[j + 3]
  if ph and (op == 'set' or op == 'setpx' or op == 'claimu') then
    local from, to = string.find(a, ph, 1, true)
    if from then
      a = string.sub(a, 1, from - 1) .. num .. string.sub(a, to + 1)
    end
  end
  if op == 'set' or op == 'claimu' then
    redis.call('SET', KEYS[i], a)
  elseif op == 'setpx' then
    redis.call('SET', KEYS[i], a, 'PXAT', b)
  elseif op == 'zadd' then
    redis.call('ZADD', KEYS[i], a, b)
  elseif op == 'sadd' then
    redis.call('SADD', KEYS[i], a)
  elseif op == 'hsetpx' then
    redis.call('HSET', KEYS[i], unpack(cjson.decode(a)))
    redis.call('PEXPIREAT', KEYS[i], b)
  elseif op == 'pexpat' then
    redis.call('PEXPIREAT', KEYS[i], a)
  elseif op == 'chain' then
    if redis.call('RPUSH', KEYS[i], b) == 1 then
      redis.call('ZADD', pfx .. 'outbox', a, b)
    end
  end
end
return {'', seq}
`)

// write is one key createScript writes; field is set for claims.
type write struct {
	field string
	key   string
	op    string
	a, b  any
}

func set(field, key, value string) write { return write{field, key, "set", value, ""} }

// CreateUser implements store.Store in one round trip (one EVALSHA): the
// idempotency record, the user, its indexes, the optional tenant, the mails
// (queued in the outbox at their NextAttempt) and the token (expiring at
// its ExpiresAt) are written together, with the sequence number drawn in
// the same step, or nothing is. A mail id or token hash that is already
// stored is a conflict ("mail_id", "token") like any other unique key; the
// idempotency key is claimed first, so it is the conflict reported when
// it is taken. A founded tenant's id joins {ns}:tenants in the same step;
// a user joining an existing tenant is refused (ErrNotFound-wrapped, after
// the claims passed, nothing written) when that tenant's record is absent
// as the script runs.
func (s *Store) CreateUser(ctx context.Context, n store.NewUser) error {
	idem, err := store.PrepareIdempotency(n) // checks n.User first
	if err != nil {
		return err
	}
	u := n.User
	// With a sequence, the records that carry its number are encoded with
	// a placeholder the script replaces.
	var ph string
	if n.Sequence != "" {
		ph, err = placeholder()
		if err != nil {
			return err
		}
	}
	userJSON, err := encodeUser(u, ph)
	if err != nil {
		return err
	}
	var claims []write
	if idem != nil {
		idemJSON, err := encodeIdempotency(idem, ph)
		if err != nil {
			return err
		}
		claims = append(claims, write{"idempotency", s.Key("idem", idem.Key), "setpx", string(idemJSON), idem.ExpiresAt.UnixMilli()})
	}
	claims = append(claims,
		set("id", s.Key("user", u.ID), string(userJSON)),
		write{"email", s.Key("idx", "email", u.EmailKey), "claimu", u.ID, ""},
	)
	if u.LoginKey != "" {
		claims = append(claims, write{"login", s.Key("idx", "login", u.LoginKey), "claimu", u.ID, ""})
	}
	if t := n.Tenant; t != nil {
		tenantJSON, err := json.Marshal(t)
		if err != nil {
			return fmt.Errorf("encode tenant: %w", err)
		}
		claims = append(claims, set("tenant_id", s.Key("tenant", t.ID), string(tenantJSON)))
		keys := n.Of()
		if keys.TenantVATKey != "" {
			claims = append(claims, set("tenant_vat", s.Key("idx", "tenant_vat", keys.TenantVATKey), t.ID))
		}
		if keys.TenantCodeKey != "" {
			claims = append(claims, set("tenant_code", s.Key("idx", "tenant_code", keys.TenantCodeKey), t.ID))
		}
	}
	// Further writes and requirements, after the claims.
	var more []write
	if t := n.Tenant; t != nil {
		more = append(more, write{"", s.Key("tenants"), "sadd", t.ID, ""})
	} else if u.TenantID != "" {
		// Joining an existing tenant: it must exist at commit.
		more = append(more, write{"", s.Key("tenant", u.TenantID), "need", "tenant", ""})
	}
	tok, tokJSON, err := store.PrepareToken(n)
	if err != nil {
		return err
	}
	if tok != nil {
		claims = append(claims, write{"token", s.Key("token", tok.Hash), "setpx", string(tokJSON), tok.ExpiresAt.UnixMilli()})
	}
	mailJSON, err := store.PrepareMails(n.Mails)
	if err != nil {
		return err
	}
	var queue []write
	for i, m := range n.Mails {
		claims = append(claims, set("mail_id", s.Key("mail", m.ID), string(mailJSON[i])))
		if m.Chain != "" {
			// Queued only at the head of its chain (outbox.go).
			queue = append(queue, write{"", s.Key("chain", m.Chain), "chain", dueMillis(m.NextAttempt), m.ID})
			continue
		}
		queue = append(queue, write{"", s.Key("outbox"), "zadd", dueMillis(m.NextAttempt), m.ID})
	}
	more = append(queue, more...) // queue entries, then the tenant write or requirement
	for _, ref := range store.UserRefs(n) {
		more = append(more, write{"", s.Key("user", u.ID, "refs"), "sadd", ref, ""})
	}
	// The ordered user index (users.go): score = creation ms, member = id.
	more = append(more, write{"", s.Key("users"), "zadd", store.UserIndexScore(u), u.ID})
	sess, err := store.PrepareSession(n)
	if err != nil {
		return err
	}
	if sess != nil {
		// As CreateSession writes it (session.go); the user is new, so
		// there is no index whose later expiry to keep.
		fields, err := json.Marshal(sessionFields(sess))
		if err != nil {
			return fmt.Errorf("encode session: %w", err)
		}
		keys := s.sessionKeys(u.ID, sess.ID)
		more = append(more,
			write{"", keys[0], "hsetpx", string(fields), ms(sess.IdleExpiresAt)},
			write{"", keys[1], "zadd", ms(sess.LastUsedAt), sess.ID},
			write{"", keys[1], "pexpat", ms(sess.IdleExpiresAt), ""})
	}
	if n.Sequence != "" {
		more = append(more, write{"", s.Key("seq", n.Sequence), "incr", ph, ""})
	}

	field, seq, err := s.runCreate(ctx, "create user", u.CreatedAt, claims, more)
	if err != nil {
		return err
	}
	if what, ok := strings.CutPrefix(field, "!"); ok {
		return fmt.Errorf("create user: %s %s: %w", what, u.TenantID, store.ErrNotFound)
	}
	if field != "" {
		return &store.ConflictError{Field: field}
	}
	store.FinishCreate(n, idem, seq)
	return nil
}

// runCreate runs createScript, in one round trip, on the claims followed
// by the further writes and requirements more, and returns its reply: the
// field of a taken claim, "!" and the name of a missing requirement, or ""
// and the drawn sequence number. A failure to run it is ErrUnavailable.
func (s *Store) runCreate(ctx context.Context, op string, now time.Time, claims, more []write) (field string, seq int64, err error) {
	total := len(claims) + len(more)
	keys := make([]string, 0, total)
	args := make([]any, 0, 3+len(claims)+3*total)
	args = append(args, len(claims), nowMillis(now), s.Key()+":")
	for _, c := range claims {
		args = append(args, c.field)
	}
	for _, ws := range [][]write{claims, more} {
		for _, w := range ws {
			keys = append(keys, w.key)
			args = append(args, w.op, w.a, w.b)
		}
	}
	reply, err := createScript.Run(ctx, s.c, keys, args...).Slice()
	if err != nil {
		return "", 0, store.Unavailable(op, err)
	}
	if len(reply) == 2 {
		var ok1, ok2 bool
		field, ok1 = reply[0].(string)
		seq, ok2 = reply[1].(int64)
		if ok1 && ok2 {
			return field, seq, nil
		}
	}
	return "", 0, store.Unavailable(op, fmt.Errorf("unexpected script reply %v", reply))
}

// placeholder returns a fresh random JSON string literal that stands in for
// the sequence number until the script knows it.
func placeholder() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("create user: placeholder: %w", err)
	}
	return `"seq-` + hex.EncodeToString(b) + `"`, nil
}

// encodeUser encodes u; with a placeholder ph, Attributes[SeqAttr] is ph
// (u itself is left alone).
func encodeUser(u *store.User, ph string) ([]byte, error) {
	if ph != "" {
		u = store.UserWithSeq(u, json.RawMessage(ph))
	}
	b, err := json.Marshal(u)
	if err != nil {
		return nil, fmt.Errorf("encode user: %w", err)
	}
	if ph != "" && bytes.Count(b, []byte(ph)) != 1 {
		return nil, errors.New("encode user: sequence placeholder not found once")
	}
	return b, nil
}

// encodeIdempotency encodes r; with a placeholder ph, its seq field is ph.
func encodeIdempotency(r *store.Idempotency, ph string) ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode idempotency: %w", err)
	}
	if ph == "" {
		return b, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("encode idempotency: %w", err)
	}
	m["seq"] = json.RawMessage(ph)
	if b, err = json.Marshal(m); err != nil {
		return nil, fmt.Errorf("encode idempotency: %w", err)
	}
	if bytes.Count(b, []byte(ph)) != 1 {
		return nil, errors.New("encode idempotency: sequence placeholder not found once")
	}
	return b, nil
}

// GetIdempotency implements store.Store. Expiry is Redis's (PEXPIREAT), so
// a record reads as found exactly as long as its key can not be claimed.
func (s *Store) GetIdempotency(ctx context.Context, key string) (*store.Idempotency, error) {
	if key == "" {
		return nil, store.ErrNotFound
	}
	var r store.Idempotency
	if err := s.getJSON(ctx, "get idempotency", s.Key("idem", key), &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// nowMillis is t in unix ms, 0 for the zero time (so nothing has
// expired by it).
func nowMillis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// dueMillis is t as an outbox score (unix ms).
func dueMillis(t time.Time) int64 { return t.UnixMilli() }

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
	return getJSON(ctx, s.c, op, key, v)
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

// swapScript sets KEYS[1] to ARGV[2] if it holds ARGV[1]: a
// compare-and-set, which Redis has no single command for.
var swapScript = redis.NewScript(`#!lua
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return 1
end
return 0
`)

// SwapSecret implements store.Store with a compare-and-set script.
func (s *Store) SwapSecret(ctx context.Context, name string, old, value []byte) (bool, error) {
	n, err := swapScript.Run(ctx, s.c, []string{s.Key("secret", name)}, old, value).Int()
	if err != nil {
		return false, store.Unavailable("swap secret", err)
	}
	return n == 1, nil
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

var errDecode = errors.New("corrupt record")

// getJSON reads key through c (a client or a WATCH transaction).
func getJSON(ctx context.Context, c redis.StringCmdable, op, key string, v any) error {
	b, err := c.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return store.ErrNotFound
	}
	if err != nil {
		return store.Unavailable(op, err)
	}
	return decodeJSON(op, key, b, v)
}

// decodeJSON unmarshals b, read from key, into v; a record that does not
// decode is errDecode.
func decodeJSON(op, key string, b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: decode %s: %w: %w", op, key, errDecode, err)
	}
	return nil
}

var _ store.Store = (*Store)(nil)
