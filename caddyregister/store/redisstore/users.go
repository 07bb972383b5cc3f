package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// User management (store.Users).
//
//	{ns}:users            ZSET of every user id, score = creation time (unix ms, store.UserIndexScore);
//	                      equal scores order by id, so (score, id) is the total order ListUsers pages by
//	{ns}:users:indexed    marker: BackfillUserIndex ran (users written before the index existed are in it)
//
// The index is written by the create script, in the step that writes the
// user, and emptied of a user by drop_user (pending.go), in the step that
// deletes it; so on a single node it holds exactly the users that exist.
//
// One ZSET, in the namespace's slot, like every user key today: the
// create script that adds to it must stay in one slot. Issue "Scale out"
// moves user records into per-user slots; the index then becomes N shard
// ZSETs {ns:users:<k>}, k a hash of the id, written after the record (a
// reader skips an entry whose record is missing), and a page reads every
// shard after the same cursor and merges them: the cursor is a global
// (score, id) position, so the merge is exact. See README, "User
// management".
//
// Deleting a user ends its sessions in the same script. Those keys live in
// the user's slot ({ns:u:<id>}), the record in the namespace's: one
// script over both is valid on a single node (the only deployment the
// store opens today) and not on a cluster. The same holds for
// CreateSession, which checks the user record exists in its script, so a
// delete racing a login never leaves a session behind. Once records move
// into the user's slot (issue "Scale out") both scripts are one-slot
// again.

// deleteUserScript erases a user: drop_user (record, indexes, refs, list
// entry), then every session of the user and the session index.
//
// The messages from ARGV[5] on (outboxLua: the user.deleted event) are
// enqueued after the erasure; the user's webhook events are not its refs,
// so they stay queued ahead of it.
//
// KEYS = user record, refs, the user's session index; ARGV = key prefix
// "{ns}:", session key prefix "{ns:u:<id>}:session:", id, now (ms), then
// outboxArgs. Reply: {'notfound'} | {'mail_id'} | {'ok', record, live
// sids...}.
var deleteUserScript = redis.NewScript(`#!lua
` + dropUserLua + outboxLua + `
local rec = redis.call('GET', KEYS[1])
if not rec then
  return {'notfound'}
end
if not outbox_check(ARGV[1], ARGV, 5) then
  return {'mail_id'}
end
local ok, u = pcall(cjson.decode, rec)
if not ok or type(u) ~= 'table' then
  return redis.error_reply('ERR user ' .. ARGV[3] .. ' does not decode')
end
for i, want in ipairs({'set', 'zset'}) do
  local t = redis.call('TYPE', KEYS[i + 1])['ok']
  if t ~= 'none' and t ~= want then
    return redis.error_reply('WRONGTYPE ' .. KEYS[i + 1] .. ' is a ' .. t .. ', not a ' .. want)
  end
end
local t = redis.call('TYPE', ARGV[1] .. 'users')['ok']
if t ~= 'none' and t ~= 'zset' then
  return redis.error_reply('WRONGTYPE users index is a ' .. t)
end
drop_user(ARGV[1], ARGV[3])
local out = {'ok', rec}
local now = tonumber(ARGV[4])
for _, sid in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  local f = redis.pcall('HMGET', ARGV[2] .. sid, 'idle', 'abs')
  if f['err'] then
    f = {}
  end
  if redis.call('DEL', ARGV[2] .. sid) == 1 and tonumber(f[1]) and tonumber(f[2])
      and now < tonumber(f[1]) and now < tonumber(f[2]) then
    table.insert(out, sid)
  end
end
redis.call('DEL', KEYS[3])
outbox_put(ARGV[1], ARGV, 5)
return out
`)

// userPageScript returns up to ARGV[3] index entries after the cursor
// (score ARGV[1], id ARGV[2]; ARGV[1] ” for the start), as a flat list
// id, score, id, score... Equal scores order by id, so the entries after
// the cursor start at rank ZCOUNT(-inf, (score) past the cursor's ties.
var userPageScript = redis.NewScript(`#!lua flags=no-writes
local count = tonumber(ARGV[3])
local start, cs = 0, nil
if ARGV[1] ~= '' then
  cs = tonumber(ARGV[1])
  start = redis.call('ZCOUNT', KEYS[1], '-inf', '(' .. ARGV[1])
end
local out = {}
while #out < 2 * count do
  local page = redis.call('ZRANGE', KEYS[1], start, start + count - 1, 'WITHSCORES')
  if #page == 0 then
    break
  end
  for i = 1, #page, 2 do
    local id, score = page[i], tonumber(page[i + 1])
    if not cs or score > cs or id > ARGV[2] then
      if #out < 2 * count then
        table.insert(out, id)
        table.insert(out, page[i + 1])
      end
    end
  end
  start = start + count
end
return out
`)

// backfillScript adds users to the index unless their record is gone
// meanwhile. KEYS[1] = index; ARGV = key prefix, then id, score pairs.
var backfillScript = redis.NewScript(`#!lua
local n = 0
for i = 2, #ARGV, 2 do
  if redis.call('EXISTS', ARGV[1] .. 'user:' .. ARGV[i]) == 1 then
    n = n + redis.call('ZADD', KEYS[1], 'NX', ARGV[i + 1], ARGV[i])
  end
end
return n
`)

// updateUserAttempts bounds UpdateUser's compare-and-set retries.
const updateUserAttempts = 10

// UpdateUser implements store.Store as a compare-and-set: read the record,
// apply the patch, and write it only if the record is still the one read
// (swapScript), retrying on a concurrent change. Two round trips.
func (s *Store) UpdateUser(ctx context.Context, id string, p store.UserPatch) (*store.User, error) {
	const op = "update user"
	if id == "" {
		return nil, store.ErrNotFound
	}
	key := s.Key("user", id)
	for range updateUserAttempts {
		raw, err := s.c.Get(ctx, key).Bytes()
		if errors.Is(err, redis.Nil) {
			return nil, store.ErrNotFound
		}
		if err != nil {
			return nil, store.Unavailable(op, err)
		}
		u, next, mails, err := patchUser(op, key, raw, p)
		if err != nil {
			return nil, err
		}
		var swapped int
		if len(mails) == 0 {
			swapped, err = swapScript.Run(ctx, s.c, []string{key}, raw, next).Int()
		} else {
			args, aerr := outboxArgs(mails)
			if aerr != nil {
				return nil, fmt.Errorf("%s: %w", op, aerr)
			}
			swapped, err = swapOutboxScript.Run(ctx, s.c, []string{key}, append([]any{raw, next, s.Key() + ":"}, args...)...).Int()
		}
		if err != nil {
			return nil, store.Unavailable(op, err)
		}
		if swapped == -1 {
			return nil, &store.ConflictError{Field: "mail_id"}
		}
		if swapped == 1 {
			return u, nil
		}
		// Changed or deleted since the read: read again.
	}
	return nil, store.Unavailable(op, fmt.Errorf("user %s: still contended after %d attempts", id, updateUserAttempts))
}

// patchUser decodes the user record raw (read from key), applies p and
// encodes the result, and runs p.Outbox on the change: the part of
// UpdateUser the two layouts share before their compare-and-set.
func patchUser(op, key string, raw []byte, p store.UserPatch) (u *store.User, next []byte, mails []*store.Mail, err error) {
	u = new(store.User)
	if err := json.Unmarshal(raw, u); err != nil {
		return nil, nil, nil, fmt.Errorf("%s: decode %s: %w: %w", op, key, errDecode, err)
	}
	before := *u
	if err := store.ApplyUserPatch(u, p); err != nil {
		return nil, nil, nil, err
	}
	if next, err = json.Marshal(u); err != nil {
		return nil, nil, nil, fmt.Errorf("%s: encode user: %w", op, err)
	}
	if mails, err = store.RunOutbox(op, p.Outbox, &before, u); err != nil {
		return nil, nil, nil, err
	}
	return u, next, mails, nil
}

// DeleteUser implements store.Store: one script erases the user and its
// sessions (see the file comment on slots), a second round trip publishes
// the ended sessions to the revocation feed.
func (s *Store) DeleteUser(ctx context.Context, id string, outbox ...*store.Mail) (*store.User, []string, error) {
	const op = "delete user"
	if id == "" {
		return nil, nil, store.ErrNotFound
	}
	if err := store.CheckOutbox(op, outbox); err != nil {
		return nil, nil, err
	}
	margs, err := outboxArgs(outbox)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", op, err)
	}
	keys := []string{s.Key("user", id), s.Key("user", id, "refs"), s.userKey(id, "sessions")}
	args := append([]any{s.Key() + ":", s.userKey(id, "session") + ":", id, time.Now().UnixMilli()}, margs...)
	reply, err := deleteUserScript.Run(ctx, s.c, keys, args...).StringSlice()
	if err != nil {
		return nil, nil, store.Unavailable(op, err)
	}
	if len(reply) == 1 && reply[0] == "notfound" {
		return nil, nil, store.ErrNotFound
	}
	if len(reply) == 1 && reply[0] == "mail_id" {
		return nil, nil, &store.ConflictError{Field: "mail_id"}
	}
	if len(reply) < 2 || reply[0] != "ok" {
		return nil, nil, store.Unavailable(op, fmt.Errorf("unexpected script reply %v", reply))
	}
	var u store.User
	if err := json.Unmarshal([]byte(reply[1]), &u); err != nil {
		return nil, nil, fmt.Errorf("%s: decode erased user %s: %w: %w", op, id, errDecode, err)
	}
	sids := reply[2:]
	if err := s.publish(ctx, sids...); err != nil {
		return &u, sids, err
	}
	return &u, sids, nil
}

// ListUsers implements store.Store: it reads the index in batches after
// the cursor (one script run each), then the batch's records (one
// pipeline of GETs), filtering as it goes, until the page is full,
// UserScanBudget entries were examined or the index ends (listUsers).
// Without a filter a page costs two round trips.
func (s *Store) ListUsers(ctx context.Context, f store.UserFilter) (*store.UserPage, error) {
	const op = "list users"
	entries := func(score, id string, n int) ([]store.UserCursor, error) {
		flat, err := userPageScript.Run(ctx, s.c, []string{s.Key("users")}, score, id, n).StringSlice()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, store.Unavailable(op, err)
		}
		return indexEntries(op, flat)
	}
	return listUsers(ctx, s.c, op, f, entries, func(id string) string { return s.Key("user", id) })
}

// indexEntries decodes userPageScript's reply: id, score, id, score...
func indexEntries(op string, flat []string) ([]store.UserCursor, error) {
	out := make([]store.UserCursor, 0, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		sc, err := strconv.ParseInt(flat[i+1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: index score %q: %w", op, flat[i+1], err)
		}
		out = append(out, store.UserCursor{Score: sc, ID: flat[i]})
	}
	return out, nil
}

// listUsers is ListUsers over an ordered user index, for both layouts:
// entries returns the next n index entries after (score, id) in (score,
// id) order, and key names a user's record. A record that is gone (erased
// since the index was read) or still a reservation (the cluster layout's
// registration in flight) is skipped.
func listUsers(ctx context.Context, c redis.Cmdable, op string, f store.UserFilter,
	entries func(score, id string, n int) ([]store.UserCursor, error), key func(id string) string) (*store.UserPage, error) {
	limit, err := store.CheckUserFilter(f)
	if err != nil {
		return nil, err
	}
	cur, started, err := store.ParseUserCursor(f.Cursor)
	if err != nil {
		return nil, err
	}
	page := &store.UserPage{Users: []*store.User{}}
	examined := 0
	for examined < store.UserScanBudget {
		batch := min(store.UserScanBudget-examined, limit-len(page.Users)+1)
		if f.Status != "" || f.TenantID != "" || f.EmailPrefix != "" {
			batch = min(store.UserScanBudget-examined, max(batch, 100))
		}
		score := ""
		if started {
			score = strconv.FormatInt(cur.Score, 10)
		}
		es, err := entries(score, cur.ID, batch)
		if err != nil {
			return nil, err
		}
		if len(es) == 0 {
			return page, nil // the end of the index
		}
		gets := make([]*redis.StringCmd, len(es))
		if _, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, e := range es {
				gets[i] = p.Get(ctx, key(e.ID))
			}
			return nil
		}); err != nil && !errors.Is(err, redis.Nil) {
			return nil, store.Unavailable(op, err)
		}
		for i, e := range es {
			cur, started = e, true
			examined++
			raw, err := gets[i].Bytes()
			if errors.Is(err, redis.Nil) || err == nil && isReservation(string(raw)) {
				continue
			}
			if err != nil {
				return nil, store.Unavailable(op, err)
			}
			var u store.User
			if err := json.Unmarshal(raw, &u); err != nil {
				return nil, fmt.Errorf("%s: decode user %s: %w: %w", op, e.ID, errDecode, err)
			}
			if !f.Match(&u) {
				continue
			}
			if len(page.Users) == limit {
				// A match beyond the page: there is more, from the last
				// user returned.
				last := page.Users[limit-1]
				page.Next = store.UserCursor{Score: store.UserIndexScore(last), ID: last.ID}.String()
				return page, nil
			}
			page.Users = append(page.Users, &u)
		}
		if len(es) < batch {
			return page, nil // the end of the index
		}
	}
	page.Next = cur.String()
	return page, nil
}

// BackfillUserIndex implements store.Store: unless the marker is set, it
// SCANs the namespace once for user records (the only keyspace scan in the
// store, run at start until it completes once) and adds each to the index
// with its creation time, in batches of scanBatch; then sets the marker.
// A user deleted meanwhile is not added (the script checks its record).
func (s *Store) BackfillUserIndex(ctx context.Context) (int, error) {
	const op = "backfill user index"
	marker := s.Key("users", "indexed")
	done, err := s.c.Exists(ctx, marker).Result()
	if err != nil {
		return 0, store.Unavailable(op, err)
	}
	if done == 1 {
		return 0, nil
	}
	const scanBatch = 500
	prefix := s.Key("user") + ":"
	added := 0
	var ids []string
	flush := func() error {
		if len(ids) == 0 {
			return nil
		}
		pipe := s.c.Pipeline()
		gets := make([]*redis.StringCmd, len(ids))
		for i, id := range ids {
			gets[i] = pipe.Get(ctx, prefix+id)
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return store.Unavailable(op, err)
		}
		args := []any{s.Key() + ":"}
		for i, id := range ids {
			raw, err := gets[i].Bytes()
			if err != nil {
				continue // gone since the scan
			}
			var u store.User
			if err := json.Unmarshal(raw, &u); err != nil {
				return fmt.Errorf("%s: decode user %s: %w: %w", op, id, errDecode, err)
			}
			args = append(args, id, store.UserIndexScore(&u))
		}
		ids = ids[:0]
		if len(args) == 1 {
			return nil
		}
		n, err := backfillScript.Run(ctx, s.c, []string{s.Key("users")}, args...).Int()
		if err != nil {
			return store.Unavailable(op, err)
		}
		added += n
		return nil
	}
	iter := s.c.Scan(ctx, 0, globEscape(prefix)+"*", scanBatch).Iterator()
	for iter.Next(ctx) {
		id := strings.TrimPrefix(iter.Val(), prefix)
		if strings.Contains(id, ":") {
			continue // {ns}:user:<id>:refs
		}
		if ids = append(ids, id); len(ids) == scanBatch {
			if err := flush(); err != nil {
				return added, err
			}
		}
	}
	if err := iter.Err(); err != nil {
		return added, store.Unavailable(op, err)
	}
	if err := flush(); err != nil {
		return added, err
	}
	if err := s.c.Set(ctx, marker, "1", 0).Err(); err != nil {
		return added, store.Unavailable(op, err)
	}
	return added, nil
}

// globEscape escapes the glob metacharacters of a SCAN MATCH pattern.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
