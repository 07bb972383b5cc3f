package redisstore

import (
	"context"

	"github.com/redis/go-redis/v9"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// This file holds what lets a user that expired pending give up its
// e-mail and login (store.User.PendingExpired): the Lua test both scripts
// share, the Lua deletion of a user createScript runs on such a user, and
// Taken, which must agree with the create script on what is taken.

// expiredLua defines expired(pfx, now, id): id when the user record
// {pfx}user:<id> is pending with a pending_until (Unix ms) at or before
// now, else nil. A record that does not decode is not expired.
const expiredLua = `
local function expired(pfx, now, id)
  if not id then
    return nil
  end
  local rec = redis.call('GET', pfx .. 'user:' .. id)
  if not rec then
    return nil
  end
  local ok, u = pcall(cjson.decode, rec)
  if ok and type(u) == 'table' and u.status == 'pending' and type(u.pending_until) == 'number'
      and u.pending_until > 0 and u.pending_until <= now then
    return id
  end
  return nil
end
`

// dropUserLua defines drop_user(pfx, id): it deletes the user record
// {pfx}user:<id>, the e-mail and login index entries that still point at
// it, every key its refs set ({pfx}user:<id>:refs, see store.UserRefs)
// names, its mails' outbox and parked entries, its entry in the ordered
// user index {pfx}users (users.go), and the refs set. The
// record must exist and decode, and the refs key be a set or absent: the
// caller checks that before its first write. Tenants stay. Written for
// createScript's replacement of a user expired pending; DeleteUser's
// script (users.go) runs it too, then ends the user's sessions.
const dropUserLua = `
local function drop_user(pfx, id)
  local ukey = pfx .. 'user:' .. id
  local u = cjson.decode(redis.call('GET', ukey))
  for _, f in ipairs({{'email', u.email_key}, {'login', u.login_key}}) do
    if type(f[2]) == 'string' and f[2] ~= '' then
      local ik = pfx .. 'idx:' .. f[1] .. ':' .. f[2]
      if redis.call('GET', ik) == id then
        redis.call('DEL', ik)
      end
    end
  end
  local rk = ukey .. ':refs'
  for _, m in ipairs(redis.call('SMEMBERS', rk)) do
    redis.call('DEL', pfx .. m)
    local mid = string.match(m, '^mail:(.+)$')
    if mid then
      redis.call('ZREM', pfx .. 'outbox', mid)
      redis.call('ZREM', pfx .. 'outbox:parked', mid)
      redis.call('ZREM', pfx .. 'outbox:parked:bodies', mid)
    end
  end
  redis.call('ZREM', pfx .. 'users', id)
  redis.call('DEL', rk, ukey)
end
`

// takenScript reports the first taken index key, as Taken does.
//
// KEYS = index keys; ARGV[1] = now (unix ms), ARGV[2] = key prefix, then
// per key its field name and "1" when a user expired pending at now does
// not hold it (e-mail and login), else "0".
//
// The reply is the field of the first key taken, or "".
var takenScript = redis.NewScript(`#!lua flags=no-writes
` + expiredLua + `
local now, pfx = tonumber(ARGV[1]), ARGV[2]
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    if ARGV[2 * i + 2] ~= '1' or not expired(pfx, now, redis.call('GET', KEYS[i])) then
      return ARGV[2 * i + 1]
    end
  end
end
return ''
`)

// Taken implements store.Store in one round trip (takenScript).
func (s *Store) Taken(ctx context.Context, k store.UniqueKeys) error {
	var keys []string
	args := []any{nowMillis(k.Now), s.Key() + ":"}
	add := func(field, kind, key, expires string) {
		if key != "" {
			keys = append(keys, s.Key("idx", kind, key))
			args = append(args, field, expires)
		}
	}
	add("email", "email", k.EmailKey, "1")
	add("login", "login", k.LoginKey, "1")
	add("tenant_vat", "tenant_vat", k.TenantVATKey, "0")
	add("tenant_code", "tenant_code", k.TenantCodeKey, "0")
	if len(keys) == 0 {
		return nil
	}
	field, err := takenScript.Run(ctx, s.c, keys, args...).Text()
	if err != nil {
		return store.Unavailable("check unique keys", err)
	}
	if field != "" {
		return &store.ConflictError{Field: field}
	}
	return nil
}
