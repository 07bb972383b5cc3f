package redisstore

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// eraseScript erases a user's slot in one step: record, refs, the token
// records its refs name, and every session; the index entries in other
// slots follow (ClusterStore.erase). With ARGV[4] = "expired" it erases
// only a user pending whose confirmation window closed at ARGV[5], so an
// activation racing a replacement either commits first (the user is kept)
// or finds its token gone.
//
// KEYS = record, refs, session index; ARGV = session key prefix, token
// key prefix, now (ms), mode ("any" | "expired"), expiry instant (ms).
// Reply: {'notfound'} | {'live'} | {'ok', record, {refs}, {live sids}}.
var eraseScript = redis.NewScript(`#!lua
local rec = redis.call('GET', KEYS[1])
if not rec or string.sub(rec, 1, 2) == 'r:' then
  return {'notfound'}
end
if ARGV[4] == 'expired' then
  local ok, u = pcall(cjson.decode, rec)
  local until_ms = ok and type(u) == 'table' and tonumber(u.pending_until)
  if not until_ms or u.status ~= 'pending' or until_ms <= 0 or until_ms > tonumber(ARGV[5]) then
    return {'live'}
  end
end
local refs = {}
if redis.call('TYPE', KEYS[2])['ok'] == 'set' then
  refs = redis.call('SMEMBERS', KEYS[2])
end
for _, r in ipairs(refs) do
  if string.sub(r, 1, 6) == 'token:' then
    redis.call('DEL', ARGV[2] .. string.sub(r, 7))
  end
end
redis.call('DEL', KEYS[1], KEYS[2])
local sids = {}
local now = tonumber(ARGV[3])
if redis.call('TYPE', KEYS[3])['ok'] == 'zset' then
  for _, sid in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
    local f = redis.pcall('HMGET', ARGV[1] .. sid, 'idle', 'abs')
    if f['err'] then
      f = {}
    end
    if redis.call('DEL', ARGV[1] .. sid) == 1 and tonumber(f[1]) and tonumber(f[2])
        and now < tonumber(f[1]) and now < tonumber(f[2]) then
      table.insert(sids, sid)
    end
  end
end
redis.call('DEL', KEYS[3])
return {'ok', rec, refs, sids}
`)

// errLive is erase's answer when mode "expired" finds the user live.
var errLive = errors.New("user is not expired")

// erase deletes user id: its slot in one script (eraseScript), then, in
// one pipelined round, its index entries (compare-and-delete: only those
// still naming it), its user index entry, its queued mails, and finally
// publishes its ended sessions. A crash between the two rounds leaves
// index entries naming a user that is gone: readers treat them as absent
// and a registration takes them over (replaceable), so nothing stays
// blocked. With expiredAt set it erases only a user expired pending by
// then (errLive otherwise).
func (s *ClusterStore) erase(ctx context.Context, op, id string, expiredAt time.Time) (*store.User, []string, error) {
	mode, at := "any", int64(0)
	if !expiredAt.IsZero() {
		mode, at = "expired", expiredAt.UnixMilli()
	}
	keys := []string{s.UserKey(id, "user"), s.UserKey(id, "refs"), s.UserKey(id, "sessions")}
	reply, err := eraseScript.Run(ctx, s.c, keys, s.UserKey(id, "session")+":", s.UserKey(id, "token")+":", time.Now().UnixMilli(), mode, at).Slice()
	if err != nil {
		return nil, nil, store.Unavailable(op, err)
	}
	if len(reply) == 1 {
		switch reply[0] {
		case "notfound":
			return nil, nil, store.ErrNotFound
		case "live":
			return nil, nil, errLive
		}
	}
	if len(reply) != 4 || reply[0] != "ok" {
		return nil, nil, store.Unavailable(op, fmt.Errorf("unexpected script reply %v", reply))
	}
	rec, _ := reply[1].(string)
	refs, sids := stringsOf(reply[2]), stringsOf(reply[3])
	var u store.User
	if err := json.Unmarshal([]byte(rec), &u); err != nil {
		return nil, nil, fmt.Errorf("%s: decode erased user %s: %w: %w", op, id, errDecode, err)
	}
	var mails []string
	_, err = s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		releaseScript.Eval(ctx, p, []string{s.EmailKey(u.EmailKey)}, id)
		if u.LoginKey != "" {
			releaseScript.Eval(ctx, p, []string{s.LoginKey(u.LoginKey)}, id)
		}
		for _, r := range refs {
			if h, ok := strings.CutPrefix(r, "token:"); ok {
				releaseScript.Eval(ctx, p, []string{s.TokenIndexKey(h)}, id)
			} else if m, ok := strings.CutPrefix(r, "mail:"); ok {
				mails = append(mails, m)
			}
		}
		p.ZRem(ctx, s.UsersShardKey(Shard(id)), id)
		return nil
	})
	if err != nil {
		return &u, sids, store.Unavailable(op, err)
	}
	if err := s.ackEverywhere(ctx, op, mails...); err != nil {
		return &u, sids, err
	}
	return &u, sids, s.base.publish(ctx, sids...)
}

// stringsOf converts a script's array reply.
func stringsOf(v any) []string {
	a, _ := v.([]any)
	out := make([]string, 0, len(a))
	for _, x := range a {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// DeleteUser implements store.Store: the user's slot in one script, then
// its index entries and mails in one pipelined round, the revocation feed
// and the messages (the user.deleted event) after.
func (s *ClusterStore) DeleteUser(ctx context.Context, id string, outbox ...*store.Mail) (*store.User, []string, error) {
	const op = "delete user"
	if id == "" {
		return nil, nil, store.ErrNotFound
	}
	if err := store.CheckOutbox(op, outbox); err != nil {
		return nil, nil, err
	}
	if err := s.mailsFree(ctx, op, outbox); err != nil {
		return nil, nil, err
	}
	u, sids, err := s.erase(ctx, op, id, time.Time{})
	if u == nil {
		return nil, nil, err
	}
	return u, sids, errors.Join(err, s.enqueue(ctx, op, outbox))
}

// ListUsers implements store.Store over the ClusterShards index shards:
// each batch reads every shard after the same global (score, id) cursor
// in one pipelined round and merges them (exact: the first n of the
// union are among the first n of each shard), then the batch's records
// in one more.
func (s *ClusterStore) ListUsers(ctx context.Context, f store.UserFilter) (*store.UserPage, error) {
	const op = "list users"
	entries := func(score, id string, n int) ([]store.UserCursor, error) { return s.userPage(ctx, op, score, id, n) }
	return listUsers(ctx, s.c, op, f, entries, func(id string) string { return s.UserKey(id, "user") })
}

// userPage returns the first n index entries after the cursor across
// every shard, in (score, id) order.
func (s *ClusterStore) userPage(ctx context.Context, op, score, id string, n int) ([]store.UserCursor, error) {
	cmds := make([]*redis.Cmd, ClusterShards)
	if _, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for k := range cmds {
			cmds[k] = userPageScript.Eval(ctx, p, []string{s.UsersShardKey(k)}, score, id, n)
		}
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return nil, store.Unavailable(op, err)
	}
	var all []store.UserCursor
	for _, c := range cmds {
		flat, err := c.StringSlice()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, store.Unavailable(op, err)
		}
		es, err := indexEntries(op, flat)
		if err != nil {
			return nil, err
		}
		all = append(all, es...)
	}
	slices.SortFunc(all, func(a, b store.UserCursor) int {
		return cmp.Or(cmp.Compare(a.Score, b.Score), cmp.Compare(a.ID, b.ID))
	})
	return all[:min(n, len(all))], nil
}

// BackfillUserIndex implements store.Store. Every user the cluster layout
// ever wrote entered its index shard when it was created (there is no
// older cluster data without an index), so there is nothing to backfill.
// It is the engine's start-up step on the store, so the janitor starts
// here (as on the first registration or mail claim).
func (s *ClusterStore) BackfillUserIndex(ctx context.Context) (int, error) {
	s.startJanitor()
	return 0, nil
}
