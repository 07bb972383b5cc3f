package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// dropBodyScript replaces a parked message's record with its bodiless
// copy if the record is still the one read (compare and set), and takes
// it off the bodies set. A message no longer parked (acknowledged or
// requeued) just leaves the set; one changed since the read stays listed
// for the next sweep.
//
// KEYS = mail, parked, parked bodies; ARGV = record read, new record, id.
var dropBodyScript = redis.NewScript(`#!lua
local cur = redis.call('GET', KEYS[1])
if not cur or not redis.call('ZSCORE', KEYS[2], ARGV[3]) then
  redis.call('ZREM', KEYS[3], ARGV[3])
  return 0
end
if cur ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[3])
return 1
`)

// DropParkedBodies implements store.Store. ParkMail lists each parked
// message with a body by its expiry, so this reads only the expired ones.
// An entry whose message was acknowledged or requeued since is just
// removed: a requeued message's expiry is the worker's to check.
func (s *Store) DropParkedBodies(ctx context.Context, now time.Time, limit int) (int, error) {
	const op = "drop parked bodies"
	if limit <= 0 {
		return 0, nil
	}
	bodies := s.Key("outbox", "parked", "bodies")
	ids, err := s.c.ZRangeByScore(ctx, bodies, &redis.ZRangeBy{
		Min: "-inf", Max: "(" + strconv.FormatInt(now.UnixMilli(), 10), Count: int64(limit),
	}).Result()
	if err != nil {
		return 0, store.Unavailable(op, err)
	}
	n := 0
	var corrupt []error
	for _, id := range ids {
		key := s.Key("mail", id)
		raw, err := s.c.Get(ctx, key).Result()
		if errors.Is(err, redis.Nil) {
			if err := s.c.ZRem(ctx, bodies, id).Err(); err != nil {
				return n, store.Unavailable(op, err)
			}
			continue
		}
		if err != nil {
			return n, store.Unavailable(op, err)
		}
		var m store.Mail
		if err := json.Unmarshal([]byte(raw), &m); err != nil {
			// Not listed any more, so it neither stalls this sweep nor
			// takes a slot of every later one; the record stays for an
			// operator, whom the caller tells.
			if err := s.c.ZRem(ctx, bodies, id).Err(); err != nil {
				return n, store.Unavailable(op, err)
			}
			corrupt = append(corrupt, fmt.Errorf("mail %s (%s): %w: %w", id, key, store.ErrCorrupt, err))
			continue
		}
		m.DropBody()
		b, err := json.Marshal(&m)
		if err != nil {
			return n, fmt.Errorf("%s: encode mail %s: %w", op, id, err)
		}
		done, err := dropBodyScript.Run(ctx, s.c, []string{key, s.Key("outbox", "parked"), bodies}, raw, b, id).Int()
		if err != nil {
			return n, store.Unavailable(op, err)
		}
		n += done
	}
	if len(corrupt) > 0 {
		return n, fmt.Errorf("%s: skipped %d: %w", op, len(corrupt), errors.Join(corrupt...))
	}
	return n, nil
}
