package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// reissueScript writes a reissued link if the user record still holds
// what the caller read (a compare-and-set on the whole record, so the
// user is re-encoded by Go, never by cjson, which would turn an empty
// permissions list into an object).
//
// KEYS = user, refs, new token, new mail, outbox, parked; ARGV = the
// record read, the record to write, the key prefix ("{ns}:"), token JSON
// ("" for none: no token is written), token expiry (unix ms), mail JSON,
// mail due (unix ms), mail id, token ref, mail ref, purpose. An empty
// purpose replaces every link ref of the user; a purpose only the tokens
// and mails whose record's "purpose" is it (and refs whose record is gone:
// a lapsed token, a delivered mail).
//
// The reply is "" when written, "changed" when the record changed (or
// vanished) since it was read, "token" or "mail_id" when that key is taken.
// Every check runs before the first write.
var reissueScript = redis.NewScript(`#!lua
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 'changed'
end
local t = redis.call('TYPE', KEYS[2])['ok']
if t ~= 'none' and t ~= 'set' then
  return redis.error_reply('WRONGTYPE ' .. KEYS[2] .. ' is a ' .. t .. ', not a set')
end
if ARGV[4] ~= '' and redis.call('EXISTS', KEYS[3]) == 1 then
  return 'token'
end
if redis.call('EXISTS', KEYS[4]) == 1 then
  return 'mail_id'
end
for _, m in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local kind, rest = string.match(m, '^(%a+):(.+)$')
  local drop = kind == 'token' or kind == 'mail'
  if drop and ARGV[11] ~= '' then
    local raw = redis.call('GET', ARGV[3] .. m)
    if raw then
      local ok, rec = pcall(cjson.decode, raw)
      drop = ok and type(rec) == 'table' and rec['purpose'] == ARGV[11]
    end
  end
  if drop then
    redis.call('DEL', ARGV[3] .. m)
    if kind == 'mail' then
      redis.call('ZREM', KEYS[5], rest)
      redis.call('ZREM', KEYS[6], rest)
    end
    redis.call('SREM', KEYS[2], m)
  end
end
if ARGV[2] ~= ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
end
if ARGV[4] ~= '' then
  redis.call('SET', KEYS[3], ARGV[4], 'PXAT', ARGV[5])
  redis.call('SADD', KEYS[2], ARGV[9])
end
redis.call('SET', KEYS[4], ARGV[6])
redis.call('ZADD', KEYS[5], ARGV[7], ARGV[8])
redis.call('SADD', KEYS[2], ARGV[10])
return ''
`)

// ReissueLink implements store.Store: the user is read and checked here,
// then reissueScript writes everything in one step if the record is still
// the one read; a concurrent change (an activation, say) makes it read
// again, at most useTokenAttempts times.
func (s *Store) ReissueLink(ctx context.Context, r store.LinkReissue) (*store.User, error) {
	const op = "reissue link"
	tok, m, err := store.CheckReissue(r)
	if err != nil {
		return nil, err
	}
	var tokJSON []byte
	var tokHash string
	var tokExpiry int64
	if tok != nil {
		if tokJSON, err = json.Marshal(tok); err != nil {
			return nil, fmt.Errorf("%s: encode token: %w", op, err)
		}
		tokHash, tokExpiry = tok.Hash, tok.ExpiresAt.UnixMilli()
	}
	mailJSON, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("%s: encode mail: %w", op, err)
	}
	userKey := s.Key("user", r.UserID)
	keys := []string{userKey, s.Key("user", r.UserID, "refs"), s.Key("token", tokHash), s.Key("mail", m.ID), s.Key("outbox"), s.Key("outbox", "parked")}
	for range useTokenAttempts {
		old, err := s.c.Get(ctx, userKey).Result()
		if errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("%s: user %s: %w", op, r.UserID, store.ErrNotFound)
		}
		if err != nil {
			return nil, store.Unavailable(op, err)
		}
		u, userJSON, err := reissuedUser(op, r, old)
		if err != nil {
			return nil, err
		}
		reply, err := reissueScript.Run(ctx, s.c, keys, old, userJSON, s.Key()+":", tokJSON, tokExpiry,
			mailJSON, dueMillis(m.NextAttempt), m.ID, "token:"+tokHash, "mail:"+m.ID, r.Purpose).Text()
		if err != nil {
			return nil, store.Unavailable(op, err)
		}
		switch reply {
		case "":
			return u, nil
		case "changed":
			continue
		default:
			return nil, &store.ConflictError{Field: reply}
		}
	}
	return nil, store.Unavailable(op, fmt.Errorf("user %s: still contended after %d attempts", r.UserID, useTokenAttempts))
}

// reissuedUser decodes the user record old and checks that it awaits
// r's link; an unscoped reissue (r.Purpose "") also moves its pending
// deadline, so the record to write is re-encoded, while a scoped one
// leaves it as it is (userJSON is old).
func reissuedUser(op string, r store.LinkReissue, old string) (*store.User, []byte, error) {
	var u store.User
	if err := json.Unmarshal([]byte(old), &u); err != nil {
		return nil, nil, fmt.Errorf("%s: decode user %s: %w", op, r.UserID, err)
	}
	if !r.Eligible(&u) {
		return nil, nil, fmt.Errorf("%s: user %s awaits no such link: %w", op, r.UserID, store.ErrNotFound)
	}
	userJSON := []byte(old)
	if r.Purpose == "" {
		u.PendingUntil = r.PendingUntil
		u.UpdatedAt = r.Now
		var err error
		if userJSON, err = json.Marshal(&u); err != nil {
			return nil, nil, fmt.Errorf("%s: encode user: %w", op, err)
		}
	}
	return &u, userJSON, nil
}
