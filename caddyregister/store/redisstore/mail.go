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

// claimScript hands out the earliest due message and pushes its score to
// the end of the lease, in one step, so concurrent claimers never get the
// same message. A queued id whose record is gone is dropped (a few per
// call at most). The mail keys are built from ARGV[3]: they share the
// {ns} hash tag, hence the slot, with KEYS[1].
//
// KEYS[1] = outbox; ARGV = now (ms), lease end (ms), mail key prefix.
var claimScript = redis.NewScript(`#!lua
for i = 1, 10 do
  local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 1)
  if #ids == 0 then
    return false
  end
  local body = redis.call('GET', ARGV[3] .. ids[1])
  if body then
    redis.call('ZADD', KEYS[1], ARGV[2], ids[1])
    return body
  end
  redis.call('ZREM', KEYS[1], ids[1])
end
return false
`)

// ClaimMail implements store.Store in one script run. The lease is measured
// on the caller's clock (now), as is the due time, so instances should keep
// their clocks in sync (NTP); a skewed instance at worst sends a message
// early or twice.
func (s *Store) ClaimMail(ctx context.Context, now time.Time, lease time.Duration) (*store.Mail, error) {
	const op = "claim mail"
	nowMs := now.UnixMilli()
	body, err := claimScript.Run(ctx, s.c, []string{s.Key("outbox")},
		nowMs, nowMs+lease.Milliseconds(), s.Key("mail")+":").Text()
	if errors.Is(err, redis.Nil) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, store.Unavailable(op, err)
	}
	var m store.Mail
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		return nil, fmt.Errorf("%s: decode mail: %w", op, err)
	}
	return &m, nil
}

// AckMail implements store.Store: the record and its queue entries go in
// one script run, which queues the next message of a chain. Acknowledging an unknown message is not an error.
func (s *Store) AckMail(ctx context.Context, id string) error {
	if id == "" {
		return errors.New("ack mail: empty id")
	}
	keys := []string{s.Key("mail", id), s.Key("outbox"), s.Key("outbox", "parked")}
	if err := ackScript.Run(ctx, s.c, keys, s.Key()+":", id, nowMs()).Err(); err != nil {
		return store.Unavailable("ack mail", err)
	}
	return nil
}

// retryScript saves a message and queues it at its next attempt (taking it
// out of the parked set, so retrying a parked message requeues it), but
// only while the message exists: a message acknowledged meanwhile (its
// lease lapsed and another instance sent it) is not resurrected.
//
// KEYS = mail, outbox, parked; ARGV = mail JSON, due (ms), id.
var retryScript = redis.NewScript(`#!lua
if not redis.call('SET', KEYS[1], ARGV[1], 'XX') then
  return 0
end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
redis.call('ZREM', KEYS[3], ARGV[3])
return 1
`)

// parkScript saves a message and moves it from the outbox to the parked
// set, while the message exists. A message with a body that expires is
// also listed, by its expiry, in the bodies set DropParkedBodies reads.
//
// A parked message no longer holds up its chain (outbox_release).
//
// KEYS = mail, outbox, parked, parked bodies; ARGV = mail JSON, parked at
// (ms), id, body expiry (ms, or "" for none), prefix, chain.
var parkScript = redis.NewScript(`#!lua
` + outboxLua + `
if not redis.call('SET', KEYS[1], ARGV[1], 'XX') then
  return 0
end
outbox_release(ARGV[5], ARGV[6], ARGV[3], tonumber(ARGV[2]))
redis.call('ZREM', KEYS[2], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[3])
if ARGV[4] ~= '' then
  redis.call('ZADD', KEYS[4], ARGV[4], ARGV[3])
end
return 1
`)

// RetryMail implements store.Store. It returns ErrNotFound when the message
// no longer exists (acknowledged meanwhile).
func (s *Store) RetryMail(ctx context.Context, m *store.Mail) error {
	return s.saveMail(ctx, "retry mail", retryScript, m, dueMillis(m.NextAttempt))
}

// ParkMail implements store.Store. It returns ErrNotFound when the message
// no longer exists.
func (s *Store) ParkMail(ctx context.Context, m *store.Mail) error {
	expiry, chain := "", ""
	if m != nil && m.HasBody() && !m.ExpiresAt.IsZero() {
		expiry = strconv.FormatInt(m.ExpiresAt.UnixMilli(), 10)
	}
	if m != nil {
		chain = m.Chain
	}
	return s.saveMail(ctx, "park mail", parkScript, m, time.Now().UnixMilli(), expiry, s.Key()+":", chain)
}

func (s *Store) saveMail(ctx context.Context, op string, script *redis.Script, m *store.Mail, score int64, extra ...any) error {
	if m == nil || m.ID == "" {
		return fmt.Errorf("%s: mail without id", op)
	}
	body, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("%s: encode mail: %w", op, err)
	}
	keys := []string{s.Key("mail", m.ID), s.Key("outbox"), s.Key("outbox", "parked"), s.Key("outbox", "parked", "bodies")}
	ok, err := script.Run(ctx, s.c, keys, append([]any{body, score, m.ID}, extra...)...).Int()
	if err != nil {
		return store.Unavailable(op, err)
	}
	if ok == 0 {
		return store.ErrNotFound
	}
	return nil
}

// MailCounts implements store.Store in one round trip.
func (s *Store) MailCounts(ctx context.Context) (queued, parked int, err error) {
	pipe := s.c.Pipeline()
	q := pipe.ZCard(ctx, s.Key("outbox"))
	p := pipe.ZCard(ctx, s.Key("outbox", "parked"))
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, 0, store.Unavailable("mail counts", err)
	}
	return int(q.Val()), int(p.Val()), nil
}
