package redisstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// The cluster outbox is ClusterShards outboxes of the single-node shape,
// shard k under the prefix {ns:ob:<k>}: (its mails, due ZSET, parked set
// and chains in one slot), so the single-node scripts run on each shard
// unchanged. A message lives in the shard of its chain (every message of
// one chain in one shard, so the chain rule stays one script) or, without
// a chain, of its id. 16 shards over three masters split about 5/5/6.
//
// ClaimMail reads the earliest due entry of every shard in one pipelined
// round and claims from the shard whose entry is earliest: the contract's
// due order holds across shards, and no shard is a hot slot.

// outboxShard is shard k's outbox, a single-node store whose namespace is
// "ns:ob:<k>".
func (s *ClusterStore) outboxShard(k int) *Store { return s.obs[k] }

// mailShard is the shard a message lives in.
func mailShard(m *store.Mail) int {
	if m.Chain != "" {
		return Shard(m.Chain)
	}
	return Shard(m.ID)
}

// MailKey is the key of a message's record (in its shard).
func (s *ClusterStore) MailKey(m *store.Mail) string {
	return s.outboxShard(mailShard(m)).Key("mail", m.ID)
}

// finalizeMailScript turns the reservation ARGV[1] of a message's record
// KEYS[1] into the message, queued (outbox_put). 1 when the message is
// queued afterwards (also when it already was: the janitor rolls
// forward), 0 when the key holds something else.
// ARGV = reservation, prefix, record, then outboxArgs of the one message.
var finalizeMailScript = redis.NewScript(`#!lua
` + outboxLua + `
local v = redis.call('GET', KEYS[1])
if v == ARGV[3] then
  return 1
end
if v ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
outbox_put(ARGV[2], ARGV, 4)
return 1
`)

// ClaimMail implements store.Store: one round reads every shard's
// earliest due entry, one claims from the earliest shard.
func (s *ClusterStore) ClaimMail(ctx context.Context, now time.Time, lease time.Duration) (*store.Mail, error) {
	const op = "claim mail"
	s.startJanitor() // the worker loop polls here: its instance settles intents too
	for range ClusterShards {
		cmds := make([]*redis.ZSliceCmd, ClusterShards)
		_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for k := range cmds {
				cmds[k] = p.ZRangeByScoreWithScores(ctx, s.outboxShard(k).Key("outbox"), &redis.ZRangeBy{
					Min: "-inf", Max: strconv.FormatInt(now.UnixMilli(), 10), Count: 1,
				})
			}
			return nil
		})
		if err != nil {
			return nil, store.Unavailable(op, err)
		}
		best, score := -1, math.Inf(1)
		for k, c := range cmds {
			if zs := c.Val(); len(zs) > 0 && zs[0].Score < score {
				best, score = k, zs[0].Score
			}
		}
		if best < 0 {
			return nil, store.ErrNotFound
		}
		m, err := s.outboxShard(best).ClaimMail(ctx, now, lease)
		if !errors.Is(err, store.ErrNotFound) {
			return m, err
		}
		// Another claimer took it: read the shards again.
	}
	return nil, store.ErrNotFound
}

// AckMail implements store.Store. Only the id is known, not the chain, so
// the ack runs on every shard in one pipelined round; it is a no-op where
// the message is not.
func (s *ClusterStore) AckMail(ctx context.Context, id string) error {
	return s.ackEverywhere(ctx, "ack mail", id)
}

func (s *ClusterStore) ackEverywhere(ctx context.Context, op string, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	now := nowMs()
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for k := range ClusterShards {
			sh := s.outboxShard(k)
			for _, id := range ids {
				keys := []string{sh.Key("mail", id), sh.Key("outbox"), sh.Key("outbox", "parked")}
				ackScript.Eval(ctx, p, keys, sh.Key()+":", id, now)
			}
		}
		return nil
	})
	if err != nil {
		return store.Unavailable(op, err)
	}
	return nil
}

// RetryMail implements store.Store in the message's shard.
func (s *ClusterStore) RetryMail(ctx context.Context, m *store.Mail) error {
	return s.outboxShard(mailShard(m)).RetryMail(ctx, m)
}

// ParkMail implements store.Store in the message's shard.
func (s *ClusterStore) ParkMail(ctx context.Context, m *store.Mail) error {
	return s.outboxShard(mailShard(m)).ParkMail(ctx, m)
}

// MailCounts implements store.Store: both counts of every shard in one
// pipelined round.
func (s *ClusterStore) MailCounts(ctx context.Context) (queued, parked int, err error) {
	qs := make([]*redis.IntCmd, ClusterShards)
	ps := make([]*redis.IntCmd, ClusterShards)
	if _, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for k := range ClusterShards {
			qs[k] = p.ZCard(ctx, s.outboxShard(k).Key("outbox"))
			ps[k] = p.ZCard(ctx, s.outboxShard(k).Key("outbox", "parked"))
		}
		return nil
	}); err != nil {
		return 0, 0, store.Unavailable("mail counts", err)
	}
	for k := range ClusterShards {
		queued += int(qs[k].Val())
		parked += int(ps[k].Val())
	}
	return queued, parked, nil
}

// DropParkedBodies implements store.Store shard by shard, limit in all.
func (s *ClusterStore) DropParkedBodies(ctx context.Context, now time.Time, limit int) (int, error) {
	total := 0
	var errs []error
	for k := range ClusterShards {
		if total >= limit {
			break
		}
		n, err := s.outboxShard(k).DropParkedBodies(ctx, now, limit-total)
		total += n
		if err != nil {
			if !errors.Is(err, store.ErrCorrupt) {
				return total, err
			}
			errs = append(errs, err)
		}
	}
	return total, errors.Join(errs...)
}

// enqueue queues messages after the write they belong to (UseToken,
// UpdateUser, CreateSession, DeleteUser): each shard's share in one
// script, pipelined. On the cluster the user's slot and the outbox
// shard are two steps: a crash between them loses these messages (the
// write stands), the price of not sending an event for a write that did
// not happen. A taken id is refused before anything is written
// (mailsFree), so a 0 here means a race on a fresh random id.
func (s *ClusterStore) enqueue(ctx context.Context, op string, mails []*store.Mail) error {
	if len(mails) == 0 {
		return nil
	}
	by := map[int][]*store.Mail{}
	for _, m := range mails {
		by[mailShard(m)] = append(by[mailShard(m)], m)
	}
	var cmds []*redis.Cmd
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for k, ms := range by {
			args, err := outboxArgs(ms)
			if err != nil {
				return fmt.Errorf("%s: %w", op, err)
			}
			sh := s.outboxShard(k)
			cmds = append(cmds, enqueueScript.Eval(ctx, p, []string{sh.Key("outbox")}, append([]any{sh.Key() + ":"}, args...)...))
		}
		return nil
	})
	if err != nil {
		return store.Unavailable(op, err)
	}
	for _, c := range cmds {
		if n, _ := c.Int(); n != 1 {
			return &store.ConflictError{Field: "mail_id"}
		}
	}
	return nil
}

// mailsFree reports a *ConflictError when a message id is taken: one
// pipelined round of EXISTS.
func (s *ClusterStore) mailsFree(ctx context.Context, op string, mails []*store.Mail) error {
	if len(mails) == 0 {
		return nil
	}
	cmds := make([]*redis.IntCmd, len(mails))
	if _, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, m := range mails {
			cmds[i] = p.Exists(ctx, s.MailKey(m))
		}
		return nil
	}); err != nil {
		return store.Unavailable(op, err)
	}
	for _, c := range cmds {
		if c.Val() > 0 {
			return &store.ConflictError{Field: "mail_id"}
		}
	}
	return nil
}
