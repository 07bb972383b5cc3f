// Package ratelimit limits request rates with GCRA (redis_rate's), on Redis
// (shared by every instance on one Redis) or in memory, and counts failures that lock a key out for a while ([Lockouts]),
// on the same two backends.
//
// Keys are often attacker-chosen (a login, a client address), so both
// backends keep only a hash of each: neither an unbounded Redis key name
// nor an unbounded map key ever holds the string itself.
package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Limit is Rate events per Period with bursts of up to Burst.
type Limit struct {
	Rate   int           `json:"rate"`
	Period time.Duration `json:"period"`
	Burst  int           `json:"burst,omitempty"`
}

// IsZero reports whether l is unset (no limiting).
func (l Limit) IsZero() bool { return l.Rate <= 0 || l.Period <= 0 }

// String renders l in the form ParseLimit reads.
func (l Limit) String() string {
	s := strconv.Itoa(l.Rate) + "/" + l.Period.String()
	if l.Burst > 0 {
		s += " burst " + strconv.Itoa(l.Burst)
	}
	return s
}

// ParseLimit reads "10/m", "5/s", "100/h", "3/1m30s" (events per duration).
// Burst defaults to Rate.
func ParseLimit(s string) (Limit, error) {
	n, per, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return Limit{}, fmt.Errorf("rate limit %q: want <events>/<period>, like 10/m", s)
	}
	rate, err := strconv.Atoi(n)
	if err != nil || rate <= 0 {
		return Limit{}, fmt.Errorf("rate limit %q: events must be a positive integer", s)
	}
	var d time.Duration
	switch per {
	case "s", "sec", "second":
		d = time.Second
	case "m", "min", "minute":
		d = time.Minute
	case "h", "hour":
		d = time.Hour
	case "d", "day":
		d = 24 * time.Hour
	default:
		d, err = time.ParseDuration(per)
		if err != nil || d <= 0 {
			return Limit{}, fmt.Errorf("rate limit %q: period must be s, m, h, d or a duration", s)
		}
	}
	return Limit{Rate: rate, Period: d, Burst: rate}, nil
}

// Result is one decision.
type Result struct {
	Allowed    bool
	RetryAfter time.Duration
}

// Limiter decides whether one more event fits the limits, and keeps
// failure counters on the same backend.
type Limiter interface {
	// Allow charges one event under key, if l allows it.
	Allow(ctx context.Context, key string, l Limit) (Result, error)
	// AllowAll charges one event under every check's key, or under none:
	// when any limit is exhausted nothing is charged, and RetryAfter is the
	// longest wait. (A request refused by one limit spends no other.)
	// Zero limits are skipped.
	AllowAll(ctx context.Context, checks ...Check) (Result, error)
	Lockouts
}

// Check is one limit to charge under a key.
type Check struct {
	Key   string
	Limit Limit
}

// HashKey is the fixed-length form a key takes in Redis: 128 bits of its
// SHA-256, in hex. A keyless hash is enough there: Redis hashes key names
// itself with its own seed, and 128 bits cannot be made to collide.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:16])
}

// Redis is a Limiter shared by every instance on one Redis. Keys are
// hashed (HashKey): rate buckets live at rate:<prefix><hash>, each holding
// its TAT in float seconds as redis_rate writes it (the script below is
// redis_rate's GCRA, over several keys at once), failure counters at
// fail:<prefix><hash>.
type Redis struct {
	c      redis.UniversalClient
	prefix string
	// spread: each key in a hash slot of its own (NewRedisCluster).
	spread bool
}

// NewRedis returns a Redis limiter; prefix namespaces its keys.
func NewRedis(c redis.UniversalClient, prefix string) *Redis {
	return &Redis{c: c, prefix: prefix}
}

// NewRedisCluster returns a Redis limiter for Redis Cluster: every bucket
// and counter is a hash slot of its own (rate:{ns:<hash>},
// fail:{ns:<hash>}, known:{ns:<hash>}), so the checks of many clients
// spread over the masters instead of sitting in the namespace's slot. A
// call over several keys then runs one script per key, pipelined (one
// round trip), and keeps all-or-nothing by refunding: when one key
// refuses, the keys that admitted are given back their charge (a second
// round, only then). Between the two rounds a concurrent request may see
// those keys charged and be refused too: under contention the limiter is
// briefly stricter, never looser.
func NewRedisCluster(c redis.UniversalClient, ns string) *Redis {
	return &Redis{c: c, prefix: ns + ":", spread: true}
}

// key is kind:<prefix><hash of key>, the hash in braces when spread.
func (r *Redis) key(kind, key string) string {
	if r.spread {
		return kind + ":{" + r.prefix + HashKey(key) + "}"
	}
	return kind + ":" + r.prefix + HashKey(key)
}

// refundScript gives one bucket back the emission interval allowScript
// charged it. KEYS[1]; ARGV = burst, rate, period (seconds).
var refundScript = redis.NewScript(`
local jan_1_2017 = 1483228800
local t = redis.call('TIME')
local now = (t[1] - jan_1_2017) + (t[2] / 1000000)
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat then return 0 end
local new_tat = tat - tonumber(ARGV[3]) / tonumber(ARGV[2])
if new_tat > now then
  redis.call('SET', KEYS[1], new_tat, 'EX', math.ceil(new_tat - now))
else
  redis.call('DEL', KEYS[1])
end
return 1
`)

// perKey runs script once per key (its arguments: head, then width per
// key), pipelined, and returns each reply.
func (r *Redis) perKey(ctx context.Context, script *redis.Script, keys []string, head []any, width int, args []any) ([]*redis.Cmd, error) {
	cmds := make([]*redis.Cmd, len(keys))
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			a := append(append([]any{}, head...), args[i*width:(i+1)*width]...)
			cmds[i] = script.Eval(ctx, p, []string{k}, a...)
		}
		return nil
	})
	return cmds, err
}

// allowScript is redis_rate's allowN GCRA script with cost 1 (Copyright
// (c) 2017 Pavel Pravosud, github.com/rwz/redis-gcra), made all-or-nothing
// over KEYS: every bucket is computed first, and only when all allow is
// any of them charged. ARGV holds burst, rate and period (seconds) per
// key. It returns -1 when allowed, else the longest retry in seconds.
var allowScript = redis.NewScript(`
local jan_1_2017 = 1483228800
local t = redis.call('TIME')
local now = (t[1] - jan_1_2017) + (t[2] / 1000000)
local new_tats = {}
local retry = -1
for i, key in ipairs(KEYS) do
  local b = (i - 1) * 3
  local burst, rate, period = tonumber(ARGV[b+1]), tonumber(ARGV[b+2]), tonumber(ARGV[b+3])
  local emission = period / rate
  local tat = redis.call('GET', key)
  if not tat then tat = now else tat = tonumber(tat) end
  tat = math.max(tat, now)
  local new_tat = tat + emission
  local diff = now - (new_tat - emission * burst)
  if diff < 0 and -diff > retry then retry = -diff end
  new_tats[i] = new_tat
end
if retry >= 0 then return tostring(retry) end
for i, key in ipairs(KEYS) do
  local reset_after = new_tats[i] - now
  if reset_after > 0 then
    redis.call('SET', key, new_tats[i], 'EX', math.ceil(reset_after))
  end
end
return '-1'
`)

// Allow implements Limiter.
func (r *Redis) Allow(ctx context.Context, key string, l Limit) (Result, error) {
	return r.AllowAll(ctx, Check{Key: key, Limit: l})
}

// AllowAll implements Limiter, in one round trip.
func (r *Redis) AllowAll(ctx context.Context, checks ...Check) (Result, error) {
	keys := make([]string, 0, len(checks))
	args := make([]any, 0, 3*len(checks))
	for _, c := range checks {
		l := c.Limit
		if l.IsZero() {
			continue
		}
		burst := l.Burst
		if burst <= 0 {
			burst = l.Rate
		}
		keys = append(keys, r.key("rate", c.Key))
		args = append(args, burst, l.Rate, strconv.FormatFloat(l.Period.Seconds(), 'g', -1, 64))
	}
	if len(keys) == 0 {
		return Result{Allowed: true}, nil
	}
	if r.spread && len(keys) > 1 {
		return r.allowSpread(ctx, keys, args)
	}
	out, err := allowScript.Run(ctx, r.c, keys, args...).Text()
	if err != nil {
		return Result{}, fmt.Errorf("rate limit: %w", err)
	}
	retry, err := strconv.ParseFloat(out, 64)
	if err != nil {
		return Result{}, fmt.Errorf("rate limit: script answered %q", out)
	}
	if retry < 0 {
		return Result{Allowed: true}, nil
	}
	return Result{Allowed: false, RetryAfter: max(time.Duration(retry*float64(time.Second)), time.Second)}, nil
}

// allowSpread is AllowAll over keys in several slots: allowScript per
// key, then a refund of the keys that admitted when another refused.
func (r *Redis) allowSpread(ctx context.Context, keys []string, args []any) (Result, error) {
	cmds, err := r.perKey(ctx, allowScript, keys, nil, 3, args)
	if err != nil {
		return Result{}, fmt.Errorf("rate limit: %w", err)
	}
	retry := -1.0
	var admitted []int
	for i, c := range cmds {
		out, err := c.Text()
		if err != nil {
			return Result{}, fmt.Errorf("rate limit: %w", err)
		}
		v, err := strconv.ParseFloat(out, 64)
		if err != nil {
			return Result{}, fmt.Errorf("rate limit: script answered %q", out)
		}
		if v < 0 {
			admitted = append(admitted, i)
		} else if v > retry {
			retry = v
		}
	}
	if retry < 0 {
		return Result{Allowed: true}, nil
	}
	if len(admitted) > 0 {
		var ks []string
		var as []any
		for _, i := range admitted {
			ks = append(ks, keys[i])
			as = append(as, args[3*i:3*i+3]...)
		}
		if _, err := r.perKey(ctx, refundScript, ks, nil, 3, as); err != nil {
			return Result{}, fmt.Errorf("rate limit: refund: %w", err)
		}
	}
	return Result{Allowed: false, RetryAfter: max(time.Duration(retry*float64(time.Second)), time.Second)}, nil
}

var _ Limiter = (*Redis)(nil)
