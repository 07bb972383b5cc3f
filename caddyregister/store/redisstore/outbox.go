package redisstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// Chained outbox messages (store.Mail.Chain, see store/outbox.go):
//
//	{ns}:chain:<chain>               LIST of the chain's message ids, oldest first; only the first is in {ns}:outbox
//
// Acking or parking a chain's head (outbox_release) removes it and queues
// the next, due at once. A chain names one user and endpoint, so when
// per-user data moves into the user's slot (issue "Scale out") its key can
// carry the user's hash tag, with the outbox sharded the same way.

// outboxLua is what the scripts that enqueue messages in their atomic step
// share. The messages come in ARGV from index at: their count, then for
// each its id, JSON record, due time (ms) and chain ("" for none), as
// outboxArgs lays them out; keys are built from the prefix pfx ("{ns}:"),
// in the namespace's slot like every key these scripts touch.
//
// outbox_check is the read-only step (true when every id is free and every
// chain key a list or absent), to call before the script writes anything;
// outbox_put the write; outbox_release takes id out of its chain and, when
// it was the head, queues the next message at now.
const outboxLua = `
local function outbox_check(pfx, argv, at)
  local n = tonumber(argv[at]) or 0
  for i = 0, n - 1 do
    local j = at + 1 + 4 * i
    if redis.call('EXISTS', pfx .. 'mail:' .. argv[j]) == 1 then
      return false
    end
    if argv[j + 3] ~= '' then
      local t = redis.call('TYPE', pfx .. 'chain:' .. argv[j + 3])['ok']
      if t ~= 'none' and t ~= 'list' then
        return false
      end
    end
  end
  return true
end
local function outbox_put(pfx, argv, at)
  local n = tonumber(argv[at]) or 0
  for i = 0, n - 1 do
    local j = at + 1 + 4 * i
    local id, chain = argv[j], argv[j + 3]
    redis.call('SET', pfx .. 'mail:' .. id, argv[j + 1])
    if chain == '' or redis.call('RPUSH', pfx .. 'chain:' .. chain, id) == 1 then
      redis.call('ZADD', pfx .. 'outbox', argv[j + 2], id)
    end
  end
end
local function outbox_release(pfx, chain, id, now)
  if type(chain) ~= 'string' or chain == '' then
    return
  end
  local ck = pfx .. 'chain:' .. chain
  if redis.call('TYPE', ck)['ok'] ~= 'list' then
    return
  end
  local head = redis.call('LINDEX', ck, 0)
  if redis.call('LREM', ck, 1, id) == 1 and head == id then
    local nxt = redis.call('LINDEX', ck, 0)
    if nxt then
      redis.call('ZADD', pfx .. 'outbox', 'NX', now, nxt)
    end
  end
end
`

// outboxArgs lays out mails for outboxLua: count, then id, record, due
// (ms) and chain of each.
func outboxArgs(mails []*store.Mail) ([]any, error) {
	args := make([]any, 0, 1+4*len(mails))
	args = append(args, len(mails))
	for _, m := range mails {
		body, err := json.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("encode mail: %w", err)
		}
		args = append(args, m.ID, body, dueMillis(m.NextAttempt), m.Chain)
	}
	return args, nil
}

// ackScript deletes a message and its queue entries; a chained one
// releases its chain first.
//
// KEYS = mail, outbox, parked; ARGV = prefix, id, now (ms).
var ackScript = redis.NewScript(`#!lua
` + outboxLua + `
local rec = redis.call('GET', KEYS[1])
if rec then
  local ok, m = pcall(cjson.decode, rec)
  if ok and type(m) == 'table' then
    outbox_release(ARGV[1], m.chain, ARGV[2], tonumber(ARGV[3]))
  end
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[2])
return 1
`)

// enqueueScript writes messages (outboxLua), refusing them all with 0
// when an id is taken. UseToken runs it inside its MULTI, having checked
// the ids under WATCH.
//
// ARGV = prefix, then outboxArgs.
var enqueueScript = redis.NewScript(`#!lua
` + outboxLua + `
if not outbox_check(ARGV[1], ARGV, 2) then
  return 0
end
outbox_put(ARGV[1], ARGV, 2)
return 1
`)

// swapOutboxScript is swapScript that also enqueues messages: the record
// KEYS[1] becomes ARGV[2] if it holds ARGV[1], and the messages are written
// in the same step. 1: done; 0: the record changed; -1: a message id is
// taken.
//
// ARGV = old, new, prefix, then outboxArgs.
var swapOutboxScript = redis.NewScript(`#!lua
` + outboxLua + `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if not outbox_check(ARGV[3], ARGV, 4) then
  return -1
end
redis.call('SET', KEYS[1], ARGV[2])
outbox_put(ARGV[3], ARGV, 4)
return 1
`)

// enqueueIn queues mails in p, a MULTI the caller WATCHes the mail keys
// for (mailKeys), so a taken id was seen before it.
func (s *Store) enqueueIn(ctx context.Context, p redis.Pipeliner, mails []*store.Mail) error {
	if len(mails) == 0 {
		return nil
	}
	args, err := outboxArgs(mails)
	if err != nil {
		return err
	}
	// Eval, not EvalSha: inside MULTI a NOSCRIPT cannot be retried.
	return enqueueScript.Eval(ctx, p, nil, append([]any{s.Key() + ":"}, args...)...).Err()
}

// mailKeys are the record keys of mails.
func (s *Store) mailKeys(mails []*store.Mail) []string {
	keys := make([]string, len(mails))
	for i, m := range mails {
		keys[i] = s.Key("mail", m.ID)
	}
	return keys
}

// nowMs is the wall clock in unix ms, for the scripts that queue the
// next message of a chain.
func nowMs() int64 { return time.Now().UnixMilli() }
