package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// Sessions live in their user's slot, not the namespace's (issue "Scale
// out": per-user data spreads over a cluster):
//
//	{ns:u:<user id>}:session:<sid>   HASH: id uid ip ua cur prev old (comma-separated), and created used idle abs rotated (unix ms); PEXPIREAT its idle expiry
//	{ns:u:<user id>}:sessions        ZSET of the user's sids, score = last used (unix ms); PEXPIREAT the latest session expiry
//	{ns}:revoked                     ZSET of recently revoked sids, score = feed sequence number (the last store.RevocationFeedSize)
//	{ns}:revoked:head                last feed sequence number drawn (INCR)
//	{ns}:revoked:floor               highest sequence number trimmed from the feed
//
// The refresh token carries the user id and the sid (see package engine),
// so one key names the session and every script touches one slot
// (but CreateSession's, which also checks the user record: see users.go). The
// refresh token itself is never stored: cur and prev are its hex SHA-256.
// The feed keys carry the namespace's tag: publishing is a second round
// trip after the per-user script (a cluster cannot run one script over
// both slots), see Revocations.

// userKey builds a key in userID's slot: {ns:u:<user id>}:parts...
func (s *Store) userKey(userID string, parts ...string) string {
	k := "{" + s.ns + ":u:" + userID + "}"
	for _, p := range parts {
		k += ":" + p
	}
	return k
}

// UserKeyPattern matches every key kept in a user's slot (tests scan with
// it to find orphans).
func (s *Store) UserKeyPattern() string { return "{" + s.ns + ":u:*" }

// indexExpiry moves KEYS[2] (the user's session index) to expire no
// earlier than the session expiry `exp` (ms), keeping a later one.
const indexExpiry = `
local function extend(key, exp)
  local cur = redis.call('PEXPIRETIME', key)
  if cur == -1 or cur < tonumber(exp) then
    redis.call('PEXPIREAT', key, exp)
  end
end
`

// createSessionScript writes a session unless its key exists, or the
// user's record does not (-1: a user erased meanwhile gets no session;
// KEYS[3] is in the namespace's slot, see users.go) or says inactive (-2:
// disabled meanwhile).
// The messages in ARGV (outboxLua: the session.created event) are
// enqueued in the same step; -3 when a message id is taken.
// KEYS = session, index, user record; ARGV = sid, used (ms), idle expiry
// (ms), key prefix "{ns}:", then outboxArgs, then field/value pairs.
var createSessionScript = redis.NewScript(`#!lua
` + indexExpiry + outboxLua + `
local rec = redis.call('GET', KEYS[3])
if not rec then
  return -1
end
local ok, u = pcall(cjson.decode, rec)
if ok and type(u) == 'table' and u.status == 'inactive' then
  return -2
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
if not outbox_check(ARGV[4], ARGV, 5) then
  return -3
end
outbox_put(ARGV[4], ARGV, 5)
redis.call('HSET', KEYS[1], unpack(ARGV, 6 + 4 * tonumber(ARGV[5])))
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
extend(KEYS[2], ARGV[3])
return 1
`)

// liveLua is a session's liveness at now (ms) from its idle and abs
// fields (HMGET), as store.Session.Live; unreadable fields are not live.
const liveLua = `
local function live(idle, abs, now)
  return tonumber(idle) ~= nil and tonumber(abs) ~= nil and now < tonumber(idle) and now < tonumber(abs)
end
`

// rotateScript is store.ApplyRotation in one step.
// KEYS = session, index; ARGV = presented hash, new hash, now (ms),
// idle ttl (ms), grace (ms), client ip, user agent, sid.
// Reply: {'ok', HGETALL} | {'notfound'} | {'conflict'} | {'reused'}.
var rotateScript = redis.NewScript(`#!lua
` + indexExpiry + `
local history = ` + strconv.Itoa(store.RefreshHistory) + `
local f = redis.call('HMGET', KEYS[1], 'cur', 'prev', 'rotated', 'idle', 'abs', 'old')
if not f[1] then
  return {'notfound'}
end
local now = tonumber(ARGV[3])
local abs = tonumber(f[5])
if now >= tonumber(f[4]) or now >= abs then
  return {'notfound'}
end
local old = {}
for h in string.gmatch(f[6] or '', '[^,]+') do
  table.insert(old, h)
end
if ARGV[1] == f[1] then
  local idle = string.format('%d', math.min(now + tonumber(ARGV[4]), abs))
  local keep = {}
  if f[2] and f[2] ~= '' then
    table.insert(keep, f[2])
  end
  for _, h in ipairs(old) do
    if #keep < history then
      table.insert(keep, h)
    end
  end
  redis.call('HSET', KEYS[1], 'cur', ARGV[2], 'prev', ARGV[1], 'old', table.concat(keep, ','),
    'rotated', ARGV[3], 'used', ARGV[3], 'idle', idle)
  if ARGV[6] ~= '' then redis.call('HSET', KEYS[1], 'ip', ARGV[6]) end
  if ARGV[7] ~= '' then redis.call('HSET', KEYS[1], 'ua', ARGV[7]) end
  redis.call('PEXPIREAT', KEYS[1], idle)
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[8])
  extend(KEYS[2], idle)
  return {'ok', redis.call('HGETALL', KEYS[1])}
end
local spent = f[2] and ARGV[1] == f[2]
if spent and now < tonumber(f[3]) + tonumber(ARGV[5]) then
  return {'conflict'}
end
for _, h in ipairs(old) do
  if h == ARGV[1] then
    spent = true
  end
end
if not spent then
  -- never issued to this session: no proof of reuse, nothing revoked
  return {'notfound'}
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[8])
return {'reused'}
`)

// listScript returns every indexed session of a user, the most recently
// used first, dropping index entries whose session expired.
// KEYS = index; ARGV = session key prefix.
var listScript = redis.NewScript(`#!lua
local out = {}
for _, sid in ipairs(redis.call('ZREVRANGE', KEYS[1], 0, -1)) do
  local h = redis.call('HGETALL', ARGV[1] .. sid)
  if #h == 0 then
    redis.call('ZREM', KEYS[1], sid)
  else
    table.insert(out, h)
  end
end
return out
`)

// delLiveLua deletes a session key and reports whether it held a session
// live at now (ms): an expired one (its key outlived its PEXPIREAT only
// by clock skew between Redis and the instances) is deleted but counts as
// gone already, as on bbolt.
const delLiveLua = liveLua + `
local function del_live(key, now)
  local f = redis.pcall('HMGET', key, 'idle', 'abs')
  if type(f) ~= 'table' or f['err'] then
    f = {}
  end
  return redis.call('DEL', key) == 1 and live(f[1], f[2], now)
end
`

// revokeAllScript deletes every session of a user but one and returns the
// sids of the live ones it deleted.
// KEYS = index; ARGV = session key prefix, kept sid, now (ms).
var revokeAllScript = redis.NewScript(`#!lua
` + delLiveLua + `
local out = {}
local now = tonumber(ARGV[3])
for _, sid in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if sid ~= ARGV[2] then
    if del_live(ARGV[1] .. sid, now) then
      table.insert(out, sid)
    end
    redis.call('ZREM', KEYS[1], sid)
  end
end
return out
`)

// revokeScript deletes one session; 1 when it was live.
// KEYS = session, index; ARGV = sid, now (ms).
var revokeScript = redis.NewScript(`#!lua
` + delLiveLua + `
redis.call('ZREM', KEYS[2], ARGV[1])
if del_live(KEYS[1], tonumber(ARGV[2])) then
  return 1
end
return 0
`)

// publishScript appends sids to the revocation feed and trims it to
// ARGV[1] entries, recording the highest trimmed number as the floor.
// KEYS = revoked, head, floor; ARGV = size, sids...
var publishScript = redis.NewScript(`#!lua
for i = 2, #ARGV do
  local seq = redis.call('INCR', KEYS[2])
  redis.call('ZADD', KEYS[1], seq, ARGV[i])
end
local n = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[1])
if n > 0 then
  local cut = redis.call('ZRANGE', KEYS[1], n - 1, n - 1, 'WITHSCORES')
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, n - 1)
  redis.call('SET', KEYS[3], cut[2])
end
return 1
`)

func ms(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

// CreateSession implements store.Store in one script run, which also
// checks that the user exists and is not inactive.
func (s *Store) CreateSession(ctx context.Context, sess *store.Session, outbox ...*store.Mail) error {
	if err := store.CheckSession(sess); err != nil {
		return err
	}
	if err := store.CheckOutbox("create session", outbox); err != nil {
		return err
	}
	return s.runCreateSession(ctx, sess, s.Key("user", sess.UserID), outbox)
}

// runCreateSession runs createSessionScript for sess against the user
// record at userKey (whose key differs between the layouts), enqueuing
// mails in the same step, and turns its reply into an error.
func (s *Store) runCreateSession(ctx context.Context, sess *store.Session, userKey string, mails []*store.Mail) error {
	margs, err := outboxArgs(mails)
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	args := append([]any{sess.ID, ms(sess.LastUsedAt), ms(sess.IdleExpiresAt), s.Key() + ":"}, margs...)
	for _, f := range sessionFields(sess) {
		args = append(args, f)
	}
	keys := append(s.sessionKeys(sess.UserID, sess.ID), userKey)
	ok, err := createSessionScript.Run(ctx, s.c, keys, args...).Int()
	if err != nil {
		return store.Unavailable("create session", err)
	}
	switch ok {
	case -1:
		return fmt.Errorf("create session: user %s: %w", sess.UserID, store.ErrNotFound)
	case -2:
		return fmt.Errorf("create session: user %s: %w", sess.UserID, store.ErrUserInactive)
	case -3:
		return &store.ConflictError{Field: "mail_id"}
	case 0:
		return &store.ConflictError{Field: "session_id"}
	}
	return nil
}

// sessionFields are the field/value pairs of a session's hash.
func sessionFields(sess *store.Session) []string {
	f := []string{"id", sess.ID, "uid", sess.UserID, "ip", sess.ClientIP, "ua", sess.UserAgent,
		"cur", sess.RefreshHash, "prev", sess.PrevHash, "old", strings.Join(sess.OldHashes, ","),
		"created", ms(sess.CreatedAt), "used", ms(sess.LastUsedAt),
		"idle", ms(sess.IdleExpiresAt), "abs", ms(sess.ExpiresAt)}
	if !sess.RotatedAt.IsZero() {
		f = append(f, "rotated", ms(sess.RotatedAt))
	}
	return f
}

func (s *Store) sessionKeys(userID, sid string) []string {
	return []string{s.userKey(userID, "session", sid), s.userKey(userID, "sessions")}
}

// RotateRefresh implements store.Store in one script run; a reuse costs a
// second round trip, to publish the revocation.
func (s *Store) RotateRefresh(ctx context.Context, r store.Rotation) (*store.Session, error) {
	const op = "rotate refresh token"
	if r.UserID == "" || r.SessionID == "" || r.Hash == "" {
		return nil, store.ErrNotFound
	}
	if r.NewHash == "" || strings.Contains(r.NewHash, ",") {
		return nil, errors.New("rotate refresh token: new hash is required, without commas")
	}
	reply, err := rotateScript.Run(ctx, s.c, s.sessionKeys(r.UserID, r.SessionID),
		r.Hash, r.NewHash, ms(r.Now), r.IdleTTL.Milliseconds(), r.Grace.Milliseconds(),
		r.ClientIP, r.UserAgent, r.SessionID).Slice()
	if err != nil {
		return nil, store.Unavailable(op, err)
	}
	outcome, _ := reply[0].(string)
	switch outcome {
	case "ok":
		if len(reply) == 2 {
			return decodeSession(reply[1])
		}
	case "notfound":
		return nil, store.ErrNotFound
	case "conflict":
		return nil, store.ErrRefreshConflict
	case "reused":
		if err := s.publish(ctx, r.SessionID); err != nil {
			return nil, errors.Join(store.ErrRefreshReused, err)
		}
		return nil, store.ErrRefreshReused
	}
	return nil, store.Unavailable(op, fmt.Errorf("unexpected script reply %v", reply))
}

// GetSession implements store.Store (one HGETALL).
func (s *Store) GetSession(ctx context.Context, userID, sid string) (*store.Session, error) {
	if userID == "" || sid == "" {
		return nil, store.ErrNotFound
	}
	h, err := s.c.HGetAll(ctx, s.userKey(userID, "session", sid)).Result()
	if err != nil {
		return nil, store.Unavailable("get session", err)
	}
	if len(h) == 0 {
		return nil, store.ErrNotFound
	}
	sess, err := sessionFromMap(h)
	if err != nil {
		return nil, err
	}
	if !sess.Live(time.Now()) {
		return nil, store.ErrNotFound
	}
	return sess, nil
}

// ListSessions implements store.Store in one script run over the user's
// index (never a keyspace scan).
func (s *Store) ListSessions(ctx context.Context, userID string) ([]*store.Session, error) {
	if userID == "" {
		return nil, nil
	}
	reply, err := listScript.Run(ctx, s.c, []string{s.userKey(userID, "sessions")}, s.userKey(userID, "session")+":").Slice()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, store.Unavailable("list sessions", err)
	}
	now := time.Now()
	out := make([]*store.Session, 0, len(reply))
	for _, r := range reply {
		sess, err := decodeSession(r)
		if err != nil {
			return nil, err
		}
		if sess.Live(now) {
			out = append(out, sess)
		}
	}
	store.SortSessions(out)
	return out, nil
}

// RevokeSession implements store.Store: the delete, then the publication.
func (s *Store) RevokeSession(ctx context.Context, userID, sid string) error {
	if userID == "" || sid == "" {
		return store.ErrNotFound
	}
	n, err := revokeScript.Run(ctx, s.c, s.sessionKeys(userID, sid), sid, time.Now().UnixMilli()).Int()
	if err != nil {
		return store.Unavailable("revoke session", err)
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return s.publish(ctx, sid)
}

// RevokeUserSessions implements store.Store: one script deletes them, a
// second round trip publishes them.
func (s *Store) RevokeUserSessions(ctx context.Context, userID, exceptSID string) ([]string, error) {
	if userID == "" {
		return nil, nil
	}
	sids, err := revokeAllScript.Run(ctx, s.c, []string{s.userKey(userID, "sessions")}, s.userKey(userID, "session")+":", exceptSID, time.Now().UnixMilli()).StringSlice()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, store.Unavailable("revoke user sessions", err)
	}
	return sids, s.publish(ctx, sids...)
}

// publish appends sids to the revocation feed; a failure is a
// *store.PublishError naming them (they are deleted already). go-redis
// retries the round trip on a network error (the script is idempotent
// enough: a sid published twice is killed twice); beyond that, other
// instances fall back on their cached check's expiry.
func (s *Store) publish(ctx context.Context, sids ...string) error {
	if len(sids) == 0 {
		return nil
	}
	args := make([]any, 0, 1+len(sids))
	args = append(args, store.RevocationFeedSize)
	for _, sid := range sids {
		args = append(args, sid)
	}
	keys := []string{s.Key("revoked"), s.Key("revoked", "head"), s.Key("revoked", "floor")}
	if err := publishScript.Run(ctx, s.c, keys, args...).Err(); err != nil {
		return &store.PublishError{SessionIDs: sids, Err: store.Unavailable("publish revocation", err)}
	}
	return nil
}

// Revocations implements store.Store in one MULTI/EXEC, so the floor, the
// head and the entries read are one consistent state. A cursor beyond the
// head (the namespace was flushed) is a gap too.
func (s *Store) Revocations(ctx context.Context, after uint64, limit int) ([]store.Revocation, uint64, error) {
	const op = "revocations"
	var head, floor *redis.StringCmd
	var rng *redis.ZSliceCmd
	_, err := s.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		head = p.Get(ctx, s.Key("revoked", "head"))
		floor = p.Get(ctx, s.Key("revoked", "floor"))
		rng = p.ZRangeByScoreWithScores(ctx, s.Key("revoked"), &redis.ZRangeBy{
			Min: "(" + strconv.FormatUint(after, 10), Max: "+inf", Count: int64(max(limit, 1)),
		})
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, after, store.Unavailable(op, err)
	}
	h, err := feedNumber(head)
	if err != nil {
		return nil, after, store.Unavailable(op, err)
	}
	f, err := feedNumber(floor)
	if err != nil {
		return nil, after, store.Unavailable(op, err)
	}
	if after < f || after > h {
		return nil, h, store.ErrRevocationGap
	}
	zs := rng.Val()
	if len(zs) == 0 {
		return nil, after, nil
	}
	out := make([]store.Revocation, len(zs))
	for i, z := range zs {
		sid, _ := z.Member.(string)
		out[i] = store.Revocation{Seq: uint64(z.Score), SessionID: sid}
	}
	return out, out[len(out)-1].Seq, nil
}

// feedNumber reads a feed counter; absent is 0.
func feedNumber(c *redis.StringCmd) (uint64, error) {
	v, err := c.Uint64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	return v, err
}

// decodeSession decodes an HGETALL reply (a flat field/value list).
func decodeSession(v any) (*store.Session, error) {
	flat, ok := v.([]any)
	if !ok || len(flat)%2 != 0 {
		return nil, fmt.Errorf("decode session: %w: unexpected reply %T", errDecode, v)
	}
	m := make(map[string]string, len(flat)/2)
	for i := 0; i < len(flat); i += 2 {
		k, _ := flat[i].(string)
		val, _ := flat[i+1].(string)
		m[k] = val
	}
	return sessionFromMap(m)
}

// sessionFromMap builds a session from its hash fields.
func sessionFromMap(m map[string]string) (*store.Session, error) {
	var err error
	t := func(field string) time.Time {
		v, ok := m[field]
		if !ok || v == "" {
			return time.Time{}
		}
		n, perr := strconv.ParseInt(v, 10, 64)
		if perr != nil && err == nil {
			err = fmt.Errorf("decode session %s: %w: field %s: %w", m["id"], errDecode, field, perr)
		}
		return time.UnixMilli(n).UTC()
	}
	sess := &store.Session{
		ID: m["id"], UserID: m["uid"], ClientIP: m["ip"], UserAgent: m["ua"],
		RefreshHash: m["cur"], PrevHash: m["prev"],
		CreatedAt: t("created"), LastUsedAt: t("used"), IdleExpiresAt: t("idle"),
		ExpiresAt: t("abs"), RotatedAt: t("rotated"),
	}
	if err != nil {
		return nil, err
	}
	if old := m["old"]; old != "" {
		sess.OldHashes = strings.Split(old, ",")
	}
	return sess, nil
}
