package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// store.Porter on the cluster layout. Secrets and sequences are the
// single-node keys in the namespace's slot, and each outbox shard is a
// single-node outbox, so those run the single-node code. What spans
// slots is a token (record and refs in the user's slot, its index
// {ns:k:<hash>} in a slot of its own) and an owned message (in an outbox
// shard, its ref in the user's slot): those are written in two steps,
// each atomic, ordered so that a crash between them leaves nothing an
// import rerun does not finish (see PutToken and PutMail). An import runs
// with no instance serving the store, so no reader sees the state
// between the steps, and no registration races them.

// Secret implements store.Porter (namespace slot).
func (s *ClusterStore) Secret(ctx context.Context, name string) ([]byte, error) {
	return s.base.Secret(ctx, name)
}

// UserTokens implements store.Porter: the user's slot holds its refs and
// token records, so this is the single-node read on the user's keys.
func (s *ClusterStore) UserTokens(ctx context.Context, userID string, now time.Time) ([]*store.Token, error) {
	if userID == "" {
		return nil, errors.New("user tokens: empty user id")
	}
	return userTokens(ctx, s.c, s.UserKey(userID, "refs"), func(h string) string { return s.UserKey(userID, "token", h) }, now)
}

// PutToken implements store.Porter in two steps, as CreateUser writes a
// token: the index entry {ns:k:<hash>} (the user's id, PXAT the expiry)
// with SET NX, then the record and the ref in the user's slot
// (putTokenScript). An index entry held by anyone else means the hash is
// stored: false, nothing written. One naming the same user is what an
// interrupted earlier run left: the second step completes it. When the
// user turns out not to exist, the entry this call made is released
// (compare-and-delete), so nothing stays. A record found stored while its
// index entry was missing (no writer leaves that; a hand-edited store
// might) is reported as stored, the entry now restored.
func (s *ClusterStore) PutToken(ctx context.Context, t *store.Token) (bool, error) {
	const op = "put token"
	if err := store.CheckPutToken(t, time.Now()); err != nil {
		return false, err
	}
	idx := s.TokenIndexKey(t.Hash)
	err := s.c.SetArgs(ctx, idx, t.UserID, redis.SetArgs{Mode: "NX", ExpireAt: t.ExpiresAt}).Err()
	claimed := err == nil
	switch {
	case errors.Is(err, redis.Nil):
		holder, err := s.c.Get(ctx, idx).Result()
		if errors.Is(err, redis.Nil) {
			return false, store.Unavailable(op, fmt.Errorf("token index %s vanished while read", idx))
		}
		if err != nil {
			return false, store.Unavailable(op, err)
		}
		if holder != t.UserID {
			return false, nil // another user's token, or a reservation
		}
	case err != nil:
		return false, store.Unavailable(op, err)
	}
	keys := []string{s.UserKey(t.UserID, "user"), s.UserKey(t.UserID, "refs"), s.UserKey(t.UserID, "token", t.Hash)}
	ok, err := runPutToken(ctx, s.c, keys, t)
	if err != nil && claimed {
		if rerr := releaseScript.Run(ctx, s.c, []string{idx}, t.UserID).Err(); rerr != nil {
			err = errors.Join(err, store.Unavailable(op, rerr))
		}
	}
	return ok, err
}

// EachMail implements store.Porter shard by shard: a chain lives in one
// shard, so each chain still comes in order.
func (s *ClusterStore) EachMail(ctx context.Context, fn func(*store.Mail, store.MailState) error) error {
	for k := range ClusterShards {
		if err := s.outboxShard(k).EachMail(ctx, fn); err != nil {
			return err
		}
	}
	return nil
}

// addRefScript adds ARGV[1] to the refs KEYS[2] of the user whose record
// is KEYS[1], if that user exists (a reservation is no user). 1 when
// added or already there, 0 without the user.
var addRefScript = redis.NewScript(`#!lua
local rec = redis.call('GET', KEYS[1])
if not rec or string.sub(rec, 1, 2) == 'r:' then
  return 0
end
local t = redis.call('TYPE', KEYS[2])['ok']
if t ~= 'none' and t ~= 'set' then
  return redis.error_reply('WRONGTYPE ' .. KEYS[2] .. ' is a ' .. t .. ', not a set')
end
redis.call('SADD', KEYS[2], ARGV[1])
return 1
`)

// PutMail implements store.Porter: a message whose id is in its shard
// already is left alone; an owned one's ref joins its user's refs first
// (addRefScript, the user's slot), then the message is written in its
// shard (putMailScript). In that order a crash between the two leaves a
// ref naming no message, which the user's erasure and reissues already
// treat as delivered, and the rerun writes the message; the other order
// would leave a message the user's erasure does not find, which the rerun
// would then skip as already stored.
func (s *ClusterStore) PutMail(ctx context.Context, m *store.Mail, st store.MailState) (bool, error) {
	const op = "put mail"
	if err := store.CheckMailState(m, st); err != nil {
		return false, err
	}
	sh := s.outboxShard(mailShard(m))
	n, err := s.c.Exists(ctx, sh.Key("mail", m.ID)).Result()
	if err != nil {
		return false, store.Unavailable(op, err)
	}
	if n > 0 {
		return false, nil
	}
	if store.Owned(m) && m.UserID != "" {
		keys := []string{s.UserKey(m.UserID, "user"), s.UserKey(m.UserID, "refs")}
		if err := addRefScript.Run(ctx, s.c, keys, "mail:"+m.ID).Err(); err != nil {
			return false, store.Unavailable(op, err)
		}
	}
	return sh.putMail(ctx, m, st, false)
}

// Sequences implements store.Porter: every {ns}:seq:* key is in the
// namespace's slot, so one master holds them all and is scanned alone.
// (A slot moved while the scan runs may hide some: an export runs on a
// settled cluster.)
func (s *ClusterStore) Sequences(ctx context.Context) (map[string]int64, error) {
	cc, ok := s.c.(*redis.ClusterClient)
	if !ok {
		return s.base.Sequences(ctx)
	}
	node, err := cc.MasterForKey(ctx, s.base.Key("seq", "_"))
	if err != nil {
		return nil, store.Unavailable("sequences", err)
	}
	return s.base.sequences(ctx, node)
}

// RaiseSequence implements store.Porter (namespace slot).
func (s *ClusterStore) RaiseSequence(ctx context.Context, name string, n int64) error {
	return s.base.RaiseSequence(ctx, name, n)
}

var _ store.Porter = (*ClusterStore)(nil)
