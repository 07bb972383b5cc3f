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

// store.Porter on the single-node layout. The cluster layout
// (cluster_porter.go) runs most of it unchanged: its secrets and
// sequences sit in the namespace's slot, and each of its outbox shards is
// a single-node outbox.
//
// The reads page through what grows with the store (the outbox, the
// parked set, a chain) portPage entries at a time, by a (score, id)
// cursor rather than by rank, so an entry removed behind the cursor
// shifts nothing; an export holds one page in memory, however many
// messages there are.

// portPage is how many entries an export reads per round.
const portPage = 100

// Secret implements store.Porter with a plain GET: unlike
// LoadOrCreateSecret it never writes.
func (s *Store) Secret(ctx context.Context, name string) ([]byte, error) {
	b, err := s.c.Get(ctx, s.Key("secret", name)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("secret %s: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return nil, store.Unavailable("secret", err)
	}
	return b, nil
}

// UserTokens implements store.Porter: the tokens the user's refs name,
// read with one MGET per page. Refs may be stale (a token expires by
// PEXPIREAT, its ref stays until the user's next reissue or erasure), so
// a missing or expired token is left out.
func (s *Store) UserTokens(ctx context.Context, userID string, now time.Time) ([]*store.Token, error) {
	if userID == "" {
		return nil, errors.New("user tokens: empty user id")
	}
	return userTokens(ctx, s.c, s.Key("user", userID, "refs"), func(h string) string { return s.Key("token", h) }, now)
}

// userTokens reads the tokens refs names; key builds a token's key from
// its hash. Every key is in one slot (the refs' own), so MGET is valid on
// a cluster.
func userTokens(ctx context.Context, c redis.Cmdable, refs string, key func(string) string, now time.Time) ([]*store.Token, error) {
	const op = "user tokens"
	members, err := c.SMembers(ctx, refs).Result()
	if err != nil {
		return nil, store.Unavailable(op, err)
	}
	var keys []string
	for _, m := range members {
		if h, ok := strings.CutPrefix(m, "token:"); ok && h != "" {
			keys = append(keys, key(h))
		}
	}
	var out []*store.Token
	for len(keys) > 0 {
		page := keys[:min(portPage, len(keys))]
		keys = keys[len(page):]
		vals, err := c.MGet(ctx, page...).Result()
		if err != nil {
			return nil, store.Unavailable(op, err)
		}
		for i, v := range vals {
			raw, ok := v.(string)
			if !ok {
				continue // expired since its ref was written
			}
			var t store.Token
			if err := json.Unmarshal([]byte(raw), &t); err != nil {
				return nil, fmt.Errorf("%s: decode %s: %w: %w", op, page[i], store.ErrCorrupt, err)
			}
			if now.Before(t.ExpiresAt) {
				out = append(out, &t)
			}
		}
	}
	return out, nil
}

// putTokenScript writes a token and its owner's ref in the owner's slot,
// as CreateUser does: the record with PXAT at its expiry, "token:<hash>"
// in the refs. -1: the owner's record is absent (or, on the cluster, a
// reservation); 0: the token is already stored; 1: written. Every check
// runs before the first write.
//
// KEYS = user record, refs, token record; ARGV = token JSON, expiry (unix
// ms), ref.
var putTokenScript = redis.NewScript(`#!lua
local rec = redis.call('GET', KEYS[1])
if not rec or string.sub(rec, 1, 2) == 'r:' then
  return -1
end
if redis.call('EXISTS', KEYS[3]) == 1 then
  return 0
end
local t = redis.call('TYPE', KEYS[2])['ok']
if t ~= 'none' and t ~= 'set' then
  return redis.error_reply('WRONGTYPE ' .. KEYS[2] .. ' is a ' .. t .. ', not a set')
end
redis.call('SET', KEYS[3], ARGV[1], 'PXAT', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
return 1
`)

// PutToken implements store.Porter in one script run (putTokenScript).
func (s *Store) PutToken(ctx context.Context, t *store.Token) (bool, error) {
	if err := store.CheckPutToken(t, time.Now()); err != nil {
		return false, err
	}
	keys := []string{s.Key("user", t.UserID), s.Key("user", t.UserID, "refs"), s.Key("token", t.Hash)}
	return runPutToken(ctx, s.c, keys, t)
}

// runPutToken runs putTokenScript on keys for t.
func runPutToken(ctx context.Context, c redis.Scripter, keys []string, t *store.Token) (bool, error) {
	const op = "put token"
	body, err := json.Marshal(t)
	if err != nil {
		return false, fmt.Errorf("%s: encode token: %w", op, err)
	}
	n, err := putTokenScript.Run(ctx, c, keys, body, t.ExpiresAt.UnixMilli(), "token:"+t.Hash).Int()
	if err != nil {
		return false, store.Unavailable(op, err)
	}
	if n < 0 {
		return false, fmt.Errorf("%s: user %s: %w", op, t.UserID, store.ErrNotFound)
	}
	return n == 1, nil
}

// EachMail implements store.Porter: the outbox in due order, each chain
// walked from its head (the one chained message in the outbox) down its
// list when the walk meets the head, then the parked set. A chained
// message in the outbox but out of its chain's list (a parked one that
// RetryMail requeued) comes as queued and Unchained; a chain whose head has no record
// left (every writer removes both together) is not walked: its messages
// could never be claimed in the source either.
func (s *Store) EachMail(ctx context.Context, fn func(*store.Mail, store.MailState) error) error {
	const op = "each mail"
	err := s.eachZPage(ctx, op, s.Key("outbox"), func(ids []string, scores []int64) error {
		mails, err := s.mailPage(ctx, op, ids)
		if err != nil {
			return err
		}
		// Where each chained message stands in its chain: 0 is the head,
		// -1 out of it (a parked one requeued by RetryMail).
		pos := make([]*redis.IntCmd, len(ids))
		if _, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, m := range mails {
				if m != nil && m.Chain != "" {
					pos[i] = p.LPos(ctx, s.Key("chain", m.Chain), m.ID, redis.LPosArgs{})
				}
			}
			return nil
		}); err != nil && !errors.Is(err, redis.Nil) {
			return store.Unavailable(op, err)
		}
		for i, m := range mails {
			if m == nil {
				continue // acked since the page was read
			}
			at := store.MailState{At: time.UnixMilli(scores[i])}
			if pos[i] == nil || errors.Is(pos[i].Err(), redis.Nil) {
				at.Unchained = m.Chain != "" // requeued out of its chain
				if err := fn(m, at); err != nil {
					return err
				}
				continue
			}
			n, err := pos[i].Result()
			if err != nil {
				return store.Unavailable(op, err)
			}
			if n != 0 {
				continue // queued behind another: its chain's walk gives it
			}
			if err := fn(m, at); err != nil {
				return err
			}
			if err := s.eachBehind(ctx, op, m.Chain, fn); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return s.eachZPage(ctx, op, s.Key("outbox", "parked"), func(ids []string, scores []int64) error {
		mails, err := s.mailPage(ctx, op, ids)
		if err != nil {
			return err
		}
		for i, m := range mails {
			if m == nil {
				continue
			}
			if err := fn(m, store.MailState{Parked: true, At: time.UnixMilli(scores[i])}); err != nil {
				return err
			}
		}
		return nil
	})
}

// eachBehind calls fn for the messages of chain behind its head, in
// order, a window of the list at a time.
func (s *Store) eachBehind(ctx context.Context, op, chain string, fn func(*store.Mail, store.MailState) error) error {
	key := s.Key("chain", chain)
	for start := int64(1); ; start += portPage {
		ids, err := s.c.LRange(ctx, key, start, start+portPage-1).Result()
		if err != nil {
			return store.Unavailable(op, err)
		}
		mails, err := s.mailPage(ctx, op, ids)
		if err != nil {
			return err
		}
		for _, m := range mails {
			if m == nil {
				continue
			}
			if err := fn(m, store.MailState{Behind: true}); err != nil {
				return err
			}
		}
		if len(ids) < portPage {
			return nil
		}
	}
}

// eachZPage calls page with successive pages of ZSET key in (score, id)
// order (userPageScript: the cursor is a position, not a rank).
func (s *Store) eachZPage(ctx context.Context, op, key string, page func(ids []string, scores []int64) error) error {
	score, id := "", ""
	for {
		flat, err := userPageScript.Run(ctx, s.c, []string{key}, score, id, portPage).StringSlice()
		if err != nil && !errors.Is(err, redis.Nil) {
			return store.Unavailable(op, err)
		}
		es, err := indexEntries(op, flat)
		if err != nil {
			return err
		}
		if len(es) == 0 {
			return nil
		}
		ids, scores := make([]string, len(es)), make([]int64, len(es))
		for i, e := range es {
			ids[i], scores[i] = e.ID, e.Score
		}
		if err := page(ids, scores); err != nil {
			return err
		}
		if len(es) < portPage {
			return nil
		}
		last := es[len(es)-1]
		score, id = strconv.FormatInt(last.Score, 10), last.ID
	}
}

// mailPage reads the records of ids with one MGET; a record that is gone
// is nil.
func (s *Store) mailPage(ctx context.Context, op string, ids []string) ([]*store.Mail, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = s.Key("mail", id)
	}
	vals, err := s.c.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, store.Unavailable(op, err)
	}
	out := make([]*store.Mail, len(vals))
	for i, v := range vals {
		raw, ok := v.(string)
		if !ok {
			continue
		}
		var m store.Mail
		if err := json.Unmarshal([]byte(raw), &m); err != nil {
			return nil, fmt.Errorf("%s: decode %s: %w: %w", op, keys[i], store.ErrCorrupt, err)
		}
		out[i] = &m
	}
	return out, nil
}

// putMailScript writes a message as a fresh write leaves it (outboxLua's
// outbox_put, ParkMail), in the state an export found it, unless its id
// is taken (0; 1 when written). With a ref, the owner's refs gain it when
// the owner's record exists. Every check runs before the first write.
//
// KEYS = mail, outbox, parked, parked bodies, chain (or the mail again),
// user record (or the mail again), refs (or the mail again); ARGV =
// record, mode ("queued", "chain" or "parked"), score (unix ms: due, or
// parked at), id, body expiry (unix ms, "" for none), ref ("" for none).
var putMailScript = redis.NewScript(`#!lua
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
local want = {{KEYS[2], 'zset'}, {KEYS[3], 'zset'}, {KEYS[4], 'zset'}}
if ARGV[2] == 'chain' then
  table.insert(want, {KEYS[5], 'list'})
end
if ARGV[6] ~= '' then
  table.insert(want, {KEYS[7], 'set'})
end
for _, w in ipairs(want) do
  local t = redis.call('TYPE', w[1])['ok']
  if t ~= 'none' and t ~= w[2] then
    return redis.error_reply('WRONGTYPE ' .. w[1] .. ' is a ' .. t .. ', not a ' .. w[2])
  end
end
redis.call('SET', KEYS[1], ARGV[1])
if ARGV[2] == 'parked' then
  redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
  if ARGV[5] ~= '' then
    redis.call('ZADD', KEYS[4], ARGV[5], ARGV[4])
  end
elseif ARGV[2] == 'chain' then
  if redis.call('RPUSH', KEYS[5], ARGV[4]) == 1 then
    redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
  end
else
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
end
if ARGV[6] ~= '' and redis.call('EXISTS', KEYS[6]) == 1 then
  redis.call('SADD', KEYS[7], ARGV[6])
end
return 1
`)

// PutMail implements store.Porter in one script run (putMailScript): the
// record, its place (outbox, chain or parked set) and, for a message the
// user owns (store.Owned), the user's ref, all in the namespace's slot.
func (s *Store) PutMail(ctx context.Context, m *store.Mail, st store.MailState) (bool, error) {
	if err := store.CheckMailState(m, st); err != nil {
		return false, err
	}
	return s.putMail(ctx, m, st, true)
}

// putMail runs putMailScript for m in st; with ref, an owned message's
// ref joins its user's refs in the same step (the cluster layout, whose
// users live in other slots, passes false and writes the ref itself).
func (s *Store) putMail(ctx context.Context, m *store.Mail, st store.MailState, ref bool) (bool, error) {
	const op = "put mail"
	body, err := json.Marshal(m)
	if err != nil {
		return false, fmt.Errorf("%s %s: encode mail: %w", op, m.ID, err)
	}
	mailKey := s.Key("mail", m.ID)
	keys := []string{mailKey, s.Key("outbox"), s.Key("outbox", "parked"), s.Key("outbox", "parked", "bodies"), mailKey, mailKey, mailKey}
	mode, at, expiry, refArg := "queued", st.At, "", ""
	switch {
	case st.Parked:
		mode = "parked"
		if m.HasBody() && !m.ExpiresAt.IsZero() {
			expiry = strconv.FormatInt(m.ExpiresAt.UnixMilli(), 10) // as ParkMail lists it
		}
	case m.Chain != "" && !st.Unchained:
		mode = "chain"
		keys[4] = s.Key("chain", m.Chain)
		if at.IsZero() {
			at = time.Now() // behind one that has gone: due at once
		}
	}
	if ref && store.Owned(m) && m.UserID != "" {
		keys[5], keys[6] = s.Key("user", m.UserID), s.Key("user", m.UserID, "refs")
		refArg = "mail:" + m.ID
	}
	n, err := putMailScript.Run(ctx, s.c, keys, body, mode, at.UnixMilli(), m.ID, expiry, refArg).Int()
	if err != nil {
		return false, store.Unavailable(op, err)
	}
	return n == 1, nil
}

// Sequences implements store.Porter: SCAN over {ns}:seq:*, the values
// read a page at a time with MGET.
func (s *Store) Sequences(ctx context.Context) (map[string]int64, error) {
	return s.sequences(ctx, s.c)
}

// sequences scans c, the node holding the namespace's slot.
func (s *Store) sequences(ctx context.Context, c redis.Cmdable) (map[string]int64, error) {
	const op = "sequences"
	prefix := s.Key("seq") + ":"
	out := map[string]int64{}
	var page []string
	flush := func() error {
		if len(page) == 0 {
			return nil
		}
		vals, err := c.MGet(ctx, page...).Result()
		if err != nil {
			return store.Unavailable(op, err)
		}
		for i, v := range vals {
			raw, ok := v.(string)
			if !ok {
				continue // gone since the scan, or not a string
			}
			n, err := strconv.ParseInt(raw, 10, 64)
			if err != nil {
				return fmt.Errorf("%s: %s holds %q: %w", op, page[i], raw, store.ErrCorrupt)
			}
			out[strings.TrimPrefix(page[i], prefix)] = n
		}
		page = page[:0]
		return nil
	}
	iter := c.Scan(ctx, 0, globEscape(prefix)+"*", 1000).Iterator()
	for iter.Next(ctx) {
		page = append(page, iter.Val())
		if len(page) == portPage {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	if err := iter.Err(); err != nil {
		return nil, store.Unavailable(op, err)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}

// raiseScript sets the integer KEYS[1] to ARGV[1] unless it holds that or
// more (absent counts as 0): an atomic max, so a sequence never goes
// back. 1 when raised.
var raiseScript = redis.NewScript(`#!lua
local v = redis.call('GET', KEYS[1])
local cur = 0
if v then
  cur = tonumber(v)
  if not cur or string.match(v, '^%-?%d+$') == nil then
    return redis.error_reply('ERR ' .. KEYS[1] .. ' holds no integer')
  end
end
if tonumber(ARGV[1]) > cur then
  redis.call('SET', KEYS[1], ARGV[1])
  return 1
end
return 0
`)

// RaiseSequence implements store.Porter in one script run (raiseScript).
func (s *Store) RaiseSequence(ctx context.Context, name string, n int64) error {
	const op = "raise sequence"
	switch {
	case name == "":
		return fmt.Errorf("%s: empty name", op)
	case n < 0:
		return fmt.Errorf("%s %s: negative number %d", op, name, n)
	}
	if err := raiseScript.Run(ctx, s.c, []string{s.Key("seq", name)}, strconv.FormatInt(n, 10)).Err(); err != nil {
		return store.Unavailable(op, err)
	}
	return nil
}

var _ store.Porter = (*Store)(nil)
