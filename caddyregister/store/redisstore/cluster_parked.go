package redisstore

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// maxParkedPage bounds a page of ParkedMails.
const maxParkedPage = 1000

// parkedEntry is a parked message: id, when parked (unix ms), its shard.
type parkedEntry struct {
	id    string
	at    int64
	shard int
}

// ParkedMails lists parked messages for operators (`caddy register mail
// list`), oldest parked first, after cursor ("<parked ms>.<id>", "" from
// the start): the parked sets of every outbox shard are read in one
// pipelined round and merged (they are an operator's backlog, not a hot
// path), then the page's records in one more.
func (s *ClusterStore) ParkedMails(ctx context.Context, cursor string, limit int) ([]*store.Mail, string, error) {
	const op = "parked mails"
	if limit <= 0 || limit > maxParkedPage {
		return nil, "", fmt.Errorf("%s: limit %d is not 1..%d", op, limit, maxParkedPage)
	}
	var after parkedEntry
	if cursor != "" {
		at, id, ok := strings.Cut(cursor, ".")
		n, err := strconv.ParseInt(at, 10, 64)
		if !ok || err != nil || id == "" {
			return nil, "", fmt.Errorf("%s: cursor %q is not one this store returned", op, cursor)
		}
		after = parkedEntry{id: id, at: n}
	}
	sets := make([]*redis.ZSliceCmd, ClusterShards)
	if _, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for k := range sets {
			sets[k] = p.ZRangeWithScores(ctx, s.outboxShard(k).Key("outbox", "parked"), 0, -1)
		}
		return nil
	}); err != nil {
		return nil, "", store.Unavailable(op, err)
	}
	var entries []parkedEntry
	for k, c := range sets {
		for _, z := range c.Val() {
			if id, ok := z.Member.(string); ok {
				entries = append(entries, parkedEntry{id, int64(z.Score), k})
			}
		}
	}
	less := func(a, b parkedEntry) int { return cmp.Or(cmp.Compare(a.at, b.at), cmp.Compare(a.id, b.id)) }
	slices.SortFunc(entries, less)
	start := 0
	if cursor != "" {
		start, _ = slices.BinarySearchFunc(entries, after, less)
		if start < len(entries) && less(entries[start], after) == 0 {
			start++
		}
	}
	end := min(start+limit, len(entries))
	page := entries[start:end]
	next := ""
	if end < len(entries) && end > start {
		last := entries[end-1]
		next = strconv.FormatInt(last.at, 10) + "." + last.id
	}
	if len(page) == 0 {
		return nil, next, nil
	}
	gets := make([]*redis.StringCmd, len(page))
	if _, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, e := range page {
			gets[i] = p.Get(ctx, s.outboxShard(e.shard).Key("mail", e.id))
		}
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return nil, "", store.Unavailable(op, err)
	}
	out := make([]*store.Mail, 0, len(page))
	for i, e := range page {
		raw, err := gets[i].Bytes()
		if err != nil {
			continue // acknowledged or requeued since the sets were read
		}
		var m store.Mail
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, "", fmt.Errorf("%s: decode %s: %w", op, e.id, err)
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
