// Package redisstore is the Redis backend of the store.
//
// Key layout (every key of one namespace shares the hash tag {ns}, so the
// Lua scripts that write a user, its indexes, its tenant, its mails and its
// token in one step stay valid on Redis Cluster; the price is that one
// namespace lives on one shard):
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
	"strconv"
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
  elseif op ~= 'set' and op ~= 'setpx' and op ~= 'claimu' then
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
		queue = append(queue, write{"", s.Key("outbox"), "zadd", dueMillis(m.NextAttempt), m.ID})
	}
	more = append(queue, more...) // queue entries, then the tenant write or requirement
	for _, ref := range store.UserRefs(n) {
		more = append(more, write{"", s.Key("user", u.ID, "refs"), "sadd", ref, ""})
	}
	// The ordered user index (users.go): score = creation ms, member = id.
	more = append(more, write{"", s.Key("users"), "zadd", store.UserIndexScore(u), u.ID})
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

// PutChallenge implements store.Store with SET PX.
func (s *Store) PutChallenge(ctx context.Context, token string, answerHash []byte, ttl time.Duration) error {
	if token == "" {
		return errors.New("put challenge: empty token")
	}
	if ttl < time.Millisecond {
		return fmt.Errorf("put challenge: ttl %v is below 1ms", ttl)
	}
	if err := s.c.Set(ctx, s.Key("challenge", token), answerHash, ttl).Err(); err != nil {
		return store.Unavailable("put challenge", err)
	}
	return nil
}

// TakeChallenge implements store.Store with GETDEL, so of concurrent takers
// exactly one gets the answer.
func (s *Store) TakeChallenge(ctx context.Context, token string) ([]byte, error) {
	if token == "" {
		return nil, store.ErrNotFound
	}
	b, err := s.c.GetDel(ctx, s.Key("challenge", token)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, store.Unavailable("take challenge", err)
	}
	return b, nil
}

// useTokenAttempts bounds UseToken's optimistic retries under contention.
const useTokenAttempts = 10

// UseToken implements store.Store as an optimistic transaction: WATCH the
// token and its user, read both, apply mutate, and write both in MULTI/EXEC;
// a concurrent change to either key fails the EXEC and the whole attempt is
// redone on fresh data (at most useTokenAttempts times). mutate may
// therefore run more than once, each time on a fresh copy of the user, but
// its result is written at most once.
//
// mutate may change only what does not live in an index (status, password
// hash, permissions, names, attributes, UpdatedAt...): a change to ID,
// TenantID, Email, EmailKey, Login or LoginKey is refused with an error and
// nothing is written.
func (s *Store) UseToken(ctx context.Context, tokenHash string, now time.Time, mutate func(*store.User) error) (*store.User, error) {
	const op = "use token"
	if tokenHash == "" {
		return nil, store.ErrNotFound
	}
	tokKey := s.Key("token", tokenHash)
	var out *store.User
	var result error // the outcome once an attempt ran to its end
	attempt := func(tx *redis.Tx) error {
		out, result = nil, nil
		var tok store.Token
		if err := getJSON(ctx, tx, op, tokKey, &tok); err != nil {
			return err
		}
		if !now.Before(tok.ExpiresAt) {
			return store.ErrNotFound
		}
		userKey := s.Key("user", tok.UserID)
		if err := tx.Watch(ctx, userKey).Err(); err != nil {
			return err
		}
		var u store.User
		if err := getJSON(ctx, tx, op, userKey, &u); err != nil {
			return err
		}
		var use store.TokenUse
		if out, use, result = store.ApplyTokenUse(&tok, &u, now, mutate); result != nil {
			return nil // answered; nothing to write
		}
		_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, userKey, use.User, 0)
			p.SetArgs(ctx, tokKey, use.Token, redis.SetArgs{KeepTTL: true})
			return nil
		})
		return err
	}
	for range useTokenAttempts {
		err := s.c.Watch(ctx, attempt, tokKey)
		switch {
		case errors.Is(err, redis.TxFailedErr):
			continue // a watched key changed: redo on fresh data
		case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrUnavailable):
			return nil, err
		case err != nil:
			if !errors.Is(err, errDecode) {
				err = store.Unavailable(op, err)
			}
			return nil, err
		}
		return out, result
	}
	return nil, store.Unavailable(op, fmt.Errorf("token %s: still contended after %d attempts", tokenHash, useTokenAttempts))
}

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
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: decode %s: %w: %w", op, key, errDecode, err)
	}
	return nil
}

// claimScript hands out the earliest due message and pushes its score to
// the end of the lease, in one step, so concurrent claimers never get the
// same message. A queued id whose record is gone is dropped (a few per
// call at most). The mail keys are built from ARGV[3]: they share the
// {ns} hash tag, hence the slot, with KEYS[1].
//
// KEYS[1] = outbox; ARGV = now (ms), lease end (ms), mail key prefix.
var claimScript = redis.NewScript(`#!lua
for i = 1, 10 do
  local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 1)
  if #ids == 0 then
    return false
  end
  local body = redis.call('GET', ARGV[3] .. ids[1])
  if body then
    redis.call('ZADD', KEYS[1], ARGV[2], ids[1])
    return body
  end
  redis.call('ZREM', KEYS[1], ids[1])
end
return false
`)

// ClaimMail implements store.Store in one script run. The lease is measured
// on the caller's clock (now), as is the due time, so instances should keep
// their clocks in sync (NTP); a skewed instance at worst sends a message
// early or twice.
func (s *Store) ClaimMail(ctx context.Context, now time.Time, lease time.Duration) (*store.Mail, error) {
	const op = "claim mail"
	nowMs := now.UnixMilli()
	body, err := claimScript.Run(ctx, s.c, []string{s.Key("outbox")},
		nowMs, nowMs+lease.Milliseconds(), s.Key("mail")+":").Text()
	if errors.Is(err, redis.Nil) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, store.Unavailable(op, err)
	}
	var m store.Mail
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		return nil, fmt.Errorf("%s: decode mail: %w", op, err)
	}
	return &m, nil
}

// AckMail implements store.Store: the record and its queue entries go in
// one MULTI/EXEC. Acknowledging an unknown message is not an error.
func (s *Store) AckMail(ctx context.Context, id string) error {
	if id == "" {
		return errors.New("ack mail: empty id")
	}
	_, err := s.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, s.Key("mail", id))
		p.ZRem(ctx, s.Key("outbox"), id)
		p.ZRem(ctx, s.Key("outbox", "parked"), id)
		return nil
	})
	if err != nil {
		return store.Unavailable("ack mail", err)
	}
	return nil
}

// retryScript saves a message and queues it at its next attempt (taking it
// out of the parked set, so retrying a parked message requeues it), but
// only while the message exists: a message acknowledged meanwhile (its
// lease lapsed and another instance sent it) is not resurrected.
//
// KEYS = mail, outbox, parked; ARGV = mail JSON, due (ms), id.
var retryScript = redis.NewScript(`#!lua
if not redis.call('SET', KEYS[1], ARGV[1], 'XX') then
  return 0
end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
redis.call('ZREM', KEYS[3], ARGV[3])
return 1
`)

// parkScript saves a message and moves it from the outbox to the parked
// set, while the message exists. A message with a body that expires is
// also listed, by its expiry, in the bodies set DropParkedBodies reads.
//
// KEYS = mail, outbox, parked, parked bodies; ARGV = mail JSON, parked at
// (ms), id, body expiry (ms, or "" for none).
var parkScript = redis.NewScript(`#!lua
if not redis.call('SET', KEYS[1], ARGV[1], 'XX') then
  return 0
end
redis.call('ZREM', KEYS[2], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[3])
if ARGV[4] ~= '' then
  redis.call('ZADD', KEYS[4], ARGV[4], ARGV[3])
end
return 1
`)

// RetryMail implements store.Store. It returns ErrNotFound when the message
// no longer exists (acknowledged meanwhile).
func (s *Store) RetryMail(ctx context.Context, m *store.Mail) error {
	return s.saveMail(ctx, "retry mail", retryScript, m, dueMillis(m.NextAttempt))
}

// ParkMail implements store.Store. It returns ErrNotFound when the message
// no longer exists.
func (s *Store) ParkMail(ctx context.Context, m *store.Mail) error {
	expiry := ""
	if m != nil && m.HasBody() && !m.ExpiresAt.IsZero() {
		expiry = strconv.FormatInt(m.ExpiresAt.UnixMilli(), 10)
	}
	return s.saveMail(ctx, "park mail", parkScript, m, time.Now().UnixMilli(), expiry)
}

func (s *Store) saveMail(ctx context.Context, op string, script *redis.Script, m *store.Mail, score int64, extra ...any) error {
	if m == nil || m.ID == "" {
		return fmt.Errorf("%s: mail without id", op)
	}
	body, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("%s: encode mail: %w", op, err)
	}
	keys := []string{s.Key("mail", m.ID), s.Key("outbox"), s.Key("outbox", "parked"), s.Key("outbox", "parked", "bodies")}
	ok, err := script.Run(ctx, s.c, keys, append([]any{body, score, m.ID}, extra...)...).Int()
	if err != nil {
		return store.Unavailable(op, err)
	}
	if ok == 0 {
		return store.ErrNotFound
	}
	return nil
}

// MailCounts implements store.Store in one round trip.
func (s *Store) MailCounts(ctx context.Context) (queued, parked int, err error) {
	pipe := s.c.Pipeline()
	q := pipe.ZCard(ctx, s.Key("outbox"))
	p := pipe.ZCard(ctx, s.Key("outbox", "parked"))
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, 0, store.Unavailable("mail counts", err)
	}
	return int(q.Val()), int(p.Val()), nil
}

var _ store.Store = (*Store)(nil)
