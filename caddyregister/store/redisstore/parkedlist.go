package redisstore

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// ParkedMails implements store.ParkedMails: the parked set is read whole
// (ids and times), one page of records with one MGET.
func (s *Store) ParkedMails(ctx context.Context, cursor string, limit int) ([]*store.Mail, string, error) {
	const op = "parked mails"
	zs, err := s.c.ZRangeWithScores(ctx, s.Key("outbox", "parked"), 0, -1).Result()
	if err != nil {
		return nil, "", store.Unavailable(op, err)
	}
	entries := make([]store.ParkedEntry, 0, len(zs))
	for _, z := range zs {
		if id, ok := z.Member.(string); ok {
			entries = append(entries, store.ParkedEntry{ID: id, At: int64(z.Score)})
		}
	}
	ids, next, err := store.PageParked(entries, cursor, limit)
	if err != nil || len(ids) == 0 {
		return nil, next, err
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = s.Key("mail", id)
	}
	vals, err := s.c.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, "", store.Unavailable(op, err)
	}
	out := make([]*store.Mail, 0, len(vals))
	for i, v := range vals {
		raw, ok := v.(string)
		if !ok {
			continue // acknowledged or requeued since the set was read
		}
		var m store.Mail
		if err := json.Unmarshal([]byte(raw), &m); err != nil {
			return nil, "", fmt.Errorf("%s: decode %s: %w", op, ids[i], err)
		}
		out = append(out, &m)
	}
	return out, next, nil
}

// GetMail implements store.ParkedMails.
func (s *Store) GetMail(ctx context.Context, id string) (*store.Mail, error) {
	if id == "" {
		return nil, store.ErrNotFound
	}
	var m store.Mail
	if err := s.getJSON(ctx, "get mail", s.Key("mail", id), &m); err != nil {
		return nil, err
	}
	return &m, nil
}

var _ store.ParkedMails = (*Store)(nil)
