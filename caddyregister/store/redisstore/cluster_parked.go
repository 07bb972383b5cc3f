package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// ParkedMails lists parked messages for operators (`caddy register mail
// list`), oldest parked first, after cursor (store.PageParked): the
// parked sets of every outbox shard are read in one pipelined round and
// merged (they are an operator's backlog, not a hot path), then the
// page's records in one more.
func (s *ClusterStore) ParkedMails(ctx context.Context, cursor string, limit int) ([]*store.Mail, string, error) {
	const op = "parked mails"
	sets := make([]*redis.ZSliceCmd, ClusterShards)
	if _, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for k := range sets {
			sets[k] = p.ZRangeWithScores(ctx, s.outboxShard(k).Key("outbox", "parked"), 0, -1)
		}
		return nil
	}); err != nil {
		return nil, "", store.Unavailable(op, err)
	}
	var entries []store.ParkedEntry
	shardOf := map[string]int{}
	for k, c := range sets {
		for _, z := range c.Val() {
			if id, ok := z.Member.(string); ok {
				entries = append(entries, store.ParkedEntry{ID: id, At: int64(z.Score)})
				shardOf[id] = k
			}
		}
	}
	page, next, err := store.PageParked(entries, cursor, limit)
	if err != nil {
		return nil, "", err
	}
	if len(page) == 0 {
		return nil, next, nil
	}
	gets := make([]*redis.StringCmd, len(page))
	if _, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range page {
			gets[i] = p.Get(ctx, s.outboxShard(shardOf[id]).Key("mail", id))
		}
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return nil, "", store.Unavailable(op, err)
	}
	out := make([]*store.Mail, 0, len(page))
	for i, id := range page {
		raw, err := gets[i].Bytes()
		if err != nil {
			continue // acknowledged or requeued since the sets were read
		}
		var m store.Mail
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, "", fmt.Errorf("%s: decode %s: %w", op, id, err)
		}
		out = append(out, &m)
	}
	return out, next, nil
}

// GetMail returns the message with id, queued or parked, or ErrNotFound:
// only the id is known, so every shard is read, in one pipelined round.
func (s *ClusterStore) GetMail(ctx context.Context, id string) (*store.Mail, error) {
	if id == "" {
		return nil, store.ErrNotFound
	}
	gets := make([]*redis.StringCmd, ClusterShards)
	if _, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for k := range gets {
			gets[k] = p.Get(ctx, s.outboxShard(k).Key("mail", id))
		}
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return nil, store.Unavailable("get mail", err)
	}
	for _, g := range gets {
		raw, err := g.Bytes()
		if err != nil || isReservation(string(raw)) {
			continue
		}
		var m store.Mail
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, fmt.Errorf("get mail: decode %s: %w: %w", id, errDecode, err)
		}
		return &m, nil
	}
	return nil, store.ErrNotFound
}

var _ store.ParkedMails = (*ClusterStore)(nil)
