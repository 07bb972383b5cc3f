package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// clusterReissueScript is reissueScript for the user's slot: the record
// (compare-and-set), its refs and token records; the mails and the token
// index live in other slots and follow (ClusterStore.ReissueLink).
//
// KEYS = record, refs, new token record (or the record); ARGV = old
// record, new record, token JSON ("" for none), token PXAT, purpose ("" =
// every link), new token ref, new mail ref, token key prefix, then the
// mail refs to drop. Reply: {'changed'} | {'ok', {dropped token hashes}}.
var clusterReissueScript = redis.NewScript(`#!lua
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return {'changed'}
end
local t = redis.call('TYPE', KEYS[2])['ok']
if t ~= 'none' and t ~= 'set' then
  return redis.error_reply('WRONGTYPE ' .. KEYS[2] .. ' is a ' .. t .. ', not a set')
end
local dropped = {}
for _, m in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local kind, rest = string.match(m, '^(%a+):(.+)$')
  if kind == 'token' then
    local drop = true
    if ARGV[5] ~= '' then
      local raw = redis.call('GET', ARGV[8] .. rest)
      if raw then
        local ok, rec = pcall(cjson.decode, raw)
        drop = ok and type(rec) == 'table' and rec['purpose'] == ARGV[5]
      end
    end
    if drop then
      redis.call('DEL', ARGV[8] .. rest)
      redis.call('SREM', KEYS[2], m)
      table.insert(dropped, rest)
    end
  end
end
for i = 9, #ARGV do
  redis.call('SREM', KEYS[2], ARGV[i])
end
if ARGV[2] ~= ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
end
if ARGV[3] ~= '' then
  redis.call('SET', KEYS[3], ARGV[3], 'PXAT', ARGV[4])
  redis.call('SADD', KEYS[2], ARGV[6])
end
redis.call('SADD', KEYS[2], ARGV[7])
return {'ok', dropped}
`)

// ReissueLink implements store.Store on the cluster layout:
//
//  1. read the record, its refs, and the mails they name (each in every
//     outbox shard: a ref names the id, not the chain), pipelined;
//  2. reserve the new token's index entry and the new mail's id (SET NX);
//  3. one script in the user's slot: compare-and-set of the record (an
//     activation meanwhile restarts at 1 and finds the user no longer
//     eligible), the old tokens dropped, the new one written;
//  4. pipelined: the old mails acked, the old token index entries
//     released, the new index entry and mail finalized.
//
// A crash after 3 leaves a link whose index reservation lapses: that link
// does not work and its mail is not sent; the user asks again.
func (s *ClusterStore) ReissueLink(ctx context.Context, r store.LinkReissue) (*store.User, error) {
	const op = "reissue link"
	tok, m, err := store.CheckReissue(r)
	if err != nil {
		return nil, err
	}
	var tokJSON []byte
	var tokExpiry int64
	if tok != nil {
		if tokJSON, err = json.Marshal(tok); err != nil {
			return nil, fmt.Errorf("%s: encode token: %w", op, err)
		}
		tokExpiry = tok.ExpiresAt.UnixMilli()
	}
	margs, err := outboxArgs([]*store.Mail{m})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	var claims []claim
	if tok != nil {
		claims = append(claims, claim{field: "token", key: s.TokenIndexKey(tok.Hash), final: r.UserID, pxat: tokExpiry})
	}
	claims = append(claims, claim{field: "mail_id", key: s.MailKey(m), final: string(margs[2].([]byte)), mail: margs, shard: mailShard(m)})
	userKey := s.UserKey(r.UserID, "user")
	tokKey := userKey
	if tok != nil {
		tokKey = s.UserKey(r.UserID, "token", tok.Hash)
	}
	reserved := false
	deadline := time.Now().Add(s.reserveTTL).UnixMilli()
	res := reservation(r.UserID, deadline)
	for range useTokenAttempts {
		old, err := s.c.Get(ctx, userKey).Result()
		if errors.Is(err, redis.Nil) || err == nil && isReservation(old) {
			return nil, s.abandon(ctx, reserved, res, claims, fmt.Errorf("%s: user %s: %w", op, r.UserID, store.ErrNotFound))
		}
		if err != nil {
			return nil, s.abandon(ctx, reserved, res, claims, store.Unavailable(op, err))
		}
		u, userJSON, err := reissuedUser(op, r, old)
		if err != nil {
			return nil, s.abandon(ctx, reserved, res, claims, err)
		}
		if !reserved {
			field, err := s.reserveOnly(ctx, op, res, deadline, claims)
			if err != nil || field != "" {
				if err == nil {
					err = &store.ConflictError{Field: field}
				}
				return nil, errors.Join(err, s.releaseOnly(ctx, res, claims))
			}
			reserved = true
		}
		drop, err := s.oldMails(ctx, op, r.UserID, r.Purpose)
		if err != nil {
			return nil, s.abandon(ctx, reserved, res, claims, err)
		}
		args := []any{old, userJSON, string(tokJSON), tokExpiry, r.Purpose, "token:" + tokHash(tok), "mail:" + m.ID, s.UserKey(r.UserID, "token") + ":"}
		for _, d := range drop {
			args = append(args, "mail:"+d.id)
		}
		reply, err := clusterReissueScript.Run(ctx, s.c, []string{userKey, s.UserKey(r.UserID, "refs"), tokKey}, args...).Slice()
		if err != nil {
			return nil, s.abandon(ctx, reserved, res, claims, store.Unavailable(op, err))
		}
		if len(reply) == 1 && reply[0] == "changed" {
			continue
		}
		if len(reply) != 2 || reply[0] != "ok" {
			return nil, s.abandon(ctx, reserved, res, claims, store.Unavailable(op, fmt.Errorf("unexpected script reply %v", reply)))
		}
		fin := make([]*redis.Cmd, len(claims))
		_, err = s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			now := nowMs()
			for _, d := range drop {
				if d.shard < 0 {
					continue
				}
				sh := s.outboxShard(d.shard)
				ackScript.Eval(ctx, p, []string{sh.Key("mail", d.id), sh.Key("outbox"), sh.Key("outbox", "parked")}, sh.Key()+":", d.id, now)
			}
			for _, h := range stringsOf(reply[1]) {
				releaseScript.Eval(ctx, p, []string{s.TokenIndexKey(h)}, r.UserID)
			}
			for i, c := range claims {
				if c.mail != nil {
					fin[i] = finalizeMailScript.Eval(ctx, p, []string{c.key}, append([]any{res, s.outboxShard(c.shard).Key() + ":", c.final}, c.mail...)...)
					continue
				}
				fin[i] = finalizeScript.Eval(ctx, p, []string{c.key}, res, c.final, c.pxat)
			}
			return nil
		})
		if err != nil {
			return nil, store.Unavailable(op, err)
		}
		for i, c := range claims {
			if v, err := fin[i].Int(); err != nil || v != 1 {
				return nil, store.Unavailable(op, fmt.Errorf("reservation of %s lapsed before the link was written", c.field))
			}
		}
		return u, nil
	}
	return nil, s.abandon(ctx, reserved, res, claims, store.Unavailable(op, fmt.Errorf("user %s: still contended after %d attempts", r.UserID, useTokenAttempts)))
}

func tokHash(t *store.Token) string {
	if t == nil {
		return ""
	}
	return t.Hash
}

// abandon releases a reissue's reservations (when it made them) and
// returns err.
func (s *ClusterStore) abandon(ctx context.Context, reserved bool, res string, claims []claim, err error) error {
	if !reserved {
		return err
	}
	return errors.Join(err, s.releaseOnly(ctx, res, claims))
}

// reserveOnly claims keys with SET NX (no intent: what the reissue
// writes before its claims are final is harmless if they lapse) and
// returns the first taken claim's field.
func (s *ClusterStore) reserveOnly(ctx context.Context, op, res string, deadline int64, claims []claim) (string, error) {
	cmds := make([]*redis.BoolCmd, len(claims))
	ttl := time.Until(time.UnixMilli(deadline))
	if _, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, c := range claims {
			cmds[i] = p.SetNX(ctx, c.key, res, ttl)
		}
		return nil
	}); err != nil {
		return "", store.Unavailable(op, err)
	}
	for i, c := range claims {
		if !cmds[i].Val() {
			return c.field, nil
		}
	}
	return "", nil
}

// releaseOnly is release without an intent.
func (s *ClusterStore) releaseOnly(ctx context.Context, res string, claims []claim) error {
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, c := range claims {
			releaseScript.Eval(ctx, p, []string{c.key}, res)
		}
		return nil
	})
	if err != nil {
		return store.Unavailable("release reservations", err)
	}
	return nil
}

// oldMail is a mail a reissue drops: its id and shard.
type oldMail struct {
	id    string
	shard int
}

// oldMails lists the user's mail refs a reissue for purpose drops (every
// one when purpose is ""): each ref's record is read in every shard, in
// one pipelined round with the refs. A ref whose record is gone is
// dropped too (shard -1: nothing to ack).
func (s *ClusterStore) oldMails(ctx context.Context, op, uid, purpose string) ([]oldMail, error) {
	refs, err := s.c.SMembers(ctx, s.UserKey(uid, "refs")).Result()
	if err != nil {
		return nil, store.Unavailable(op, err)
	}
	var ids []string
	for _, r := range refs {
		if id, ok := strings.CutPrefix(r, "mail:"); ok {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	gets := make([][]*redis.StringCmd, len(ids))
	if _, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			gets[i] = make([]*redis.StringCmd, ClusterShards)
			for k := range ClusterShards {
				gets[i][k] = p.Get(ctx, s.outboxShard(k).Key("mail", id))
			}
		}
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return nil, store.Unavailable(op, err)
	}
	var out []oldMail
	for i, id := range ids {
		found := -1
		drop := true
		for k, g := range gets[i] {
			raw, err := g.Bytes()
			if err != nil || isReservation(string(raw)) {
				continue
			}
			found = k
			if purpose != "" {
				var m store.Mail
				drop = json.Unmarshal(raw, &m) == nil && m.Purpose == purpose
			}
		}
		if drop {
			out = append(out, oldMail{id, found})
		}
	}
	return out, nil
}
