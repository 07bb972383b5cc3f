package ratelimit

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Lockouts count failures per key and lock a key that failed too often,
// with waits that grow with the failures (Keycloak's brute force
// detection). Only failures count, so a caller that succeeds never spends
// a budget, and a locked key is refused before any work.
//
// An attempt is bracketed by Begin and End so that concurrent attempts
// cannot overshoot a lock: attempts in flight count as possible failures,
// and an attempt that would lock the key if it and every attempt in flight
// failed is admitted only when none is in flight. So no more attempts are
// ever decided than the policy allows, however many arrive at once.
type Lockouts interface {
	// Begin starts one attempt under every key of fails, or under none: it
	// returns how long to wait when a key is locked (the lock's remaining
	// time) or is at its limit with attempts in flight (BusyRetry), else 0.
	Begin(ctx context.Context, fails ...Failure) (time.Duration, error)
	// End finishes an attempt Begin admitted; failed counts one failure
	// under every key, each with its policy. It returns the longest lock
	// the keys now have (0: none).
	End(ctx context.Context, failed bool, fails ...Failure) (time.Duration, error)
	// Forget drops key's failures and lock.
	Forget(ctx context.Context, key string) error
	// Remember marks key for ttl (a fact, such as "the owner logged in
	// from this network", that Remembered then reports).
	Remember(ctx context.Context, key string, ttl time.Duration) error
	// Remembered reports whether key is marked.
	Remembered(ctx context.Context, key string) (bool, error)
}

// BusyRetry is the wait Begin asks for when a key is at its limit with an
// attempt in flight: that attempt decides within a hash's time.
const BusyRetry = time.Second

// inFlightStale is how long an attempt may stay in flight before it is
// presumed lost (its instance died between Begin and End): far longer than
// a queued verification can take.
const inFlightStale = 30 * time.Second

// Failure names a key and the policy its failures count under.
type Failure struct {
	Key    string
	Policy LockPolicy
	// CountOnly counts the attempt's failure under Key but lets the
	// attempt past Key's lock: Begin neither checks the key nor holds the
	// attempt in flight under it. (An account's owner on a network known
	// to be theirs is not stopped by the account-wide lock, yet their
	// failures still count towards it.)
	CountOnly bool
}

// LockPolicy says when failures lock a key, and for how long.
type LockPolicy struct {
	// Failures is how many failures lock the key. Only the failure that
	// brings the count to a multiple of it locks; those in between do
	// not lengthen or renew the lock. Zero never locks.
	Failures int `json:"failures,omitempty"`
	// WaitIncrement is the lock after Failures failures; the failure that
	// makes k×Failures locks for k×WaitIncrement.
	WaitIncrement time.Duration `json:"wait_increment,omitempty"`
	// MaxWait caps the lock.
	MaxWait time.Duration `json:"max_wait,omitempty"`
	// Reset is how long after the last failure the count is forgotten.
	Reset time.Duration `json:"reset,omitempty"`
}

// Wait is the lock that the failures-th failure imposes, from its time:
// none unless failures is a multiple of p.Failures. (Locking again on
// every failure past the threshold let an attacker keep an account locked
// for good with one failure per lock period.)
func (p LockPolicy) Wait(failures int64) time.Duration {
	if p.Failures <= 0 || failures < int64(p.Failures) || failures%int64(p.Failures) != 0 {
		return 0
	}
	k := failures / int64(p.Failures)
	if p.WaitIncrement <= 0 || k > int64(p.MaxWait/p.WaitIncrement) {
		return p.MaxWait
	}
	return min(time.Duration(k)*p.WaitIncrement, p.MaxWait)
}

// admits reports whether one more attempt may start with n failures and
// inFlight attempts undecided: unless it could lock the key (it and the
// attempts in flight failing would reach a locking count), or nothing
// else is in flight.
func (p LockPolicy) admits(n, inFlight int64) bool {
	if inFlight <= 0 || p.Failures <= 0 {
		return true
	}
	next := (n/int64(p.Failures) + 1) * int64(p.Failures) // the next locking count
	return next > n+inFlight+1 || p.Wait(next) == 0
}

func (r *Redis) lockKey(key string) string { return r.key("fail", key) }

// lockLua is shared by the lockout scripts: wait() mirrors LockPolicy.Wait,
// admits() LockPolicy.admits, and now is Redis's clock in ms, so every
// instance agrees. Each key is a
// hash: n failures, u locked until (ms), p attempts in flight since pt.
const lockLua = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function wait(n, thr, inc, mx)
  if thr <= 0 or n < thr or n % thr ~= 0 then return 0 end
  local w = inc * math.floor(n / thr)
  if w > mx then w = mx end
  return w
end
local function admits(n, p, thr, inc, mx)
  if p <= 0 or thr <= 0 then return true end
  local nxt = (math.floor(n / thr) + 1) * thr
  return nxt > n + p + 1 or wait(nxt, thr, inc, mx) == 0
end
local function state(k, stale)
  local v = redis.call('HMGET', k, 'n', 'u', 'p', 'pt')
  local p = tonumber(v[3] or '0')
  if now - tonumber(v[4] or '0') > stale then p = 0 end
  return tonumber(v[1] or '0'), tonumber(v[2] or '0'), p
end
`

// beginScript: ARGV[1] stale ms, ARGV[2] busy ms, then five numbers per
// key (failures, increment, max wait, reset in ms, 1 when count-only).
// Returns the wait in ms, 0 when admitted.
var beginScript = redis.NewScript(lockLua + `
local stale, busy = tonumber(ARGV[1]), tonumber(ARGV[2])
local locked, refused = 0, false
local ps = {}
for i, k in ipairs(KEYS) do
  local b = 2 + (i - 1) * 5
  local thr, inc, mx = tonumber(ARGV[b+1]), tonumber(ARGV[b+2]), tonumber(ARGV[b+3])
  if ARGV[b+5] ~= '1' then
    local n, u, p = state(k, stale)
    ps[i] = p
    if u - now > locked then locked = u - now end
    if not admits(n, p, thr, inc, mx) then refused = true end
  end
end
if locked > 0 then return locked end
if refused then return busy end
for i, k in ipairs(KEYS) do
  if ps[i] then
    redis.call('HSET', k, 'p', ps[i] + 1, 'pt', now)
    -- Live at least until the attempt is presumed lost; failures keep
    -- their own reset time (End sets it).
    if redis.call('PTTL', k) < stale then redis.call('PEXPIRE', k, stale) end
  end
end
return 0
`)

// endScript: ARGV[1] stale ms, ARGV[2] 1 when the attempt failed, then
// five numbers per key. Returns the longest lock in ms.
var endScript = redis.NewScript(lockLua + `
local stale, failed = tonumber(ARGV[1]), ARGV[2] == '1'
local longest = 0
for i, k in ipairs(KEYS) do
  local b = 2 + (i - 1) * 5
  local thr, inc, mx, reset = tonumber(ARGV[b+1]), tonumber(ARGV[b+2]), tonumber(ARGV[b+3]), tonumber(ARGV[b+4])
  local n, u, p = state(k, stale)
  if p > 0 and ARGV[b+5] ~= '1' then redis.call('HSET', k, 'p', p - 1) end
  if failed then
    n = redis.call('HINCRBY', k, 'n', 1)
    local w = wait(n, thr, inc, mx)
    if w > 0 and now + w > u then
      u = now + w
      redis.call('HSET', k, 'u', u)
    end
    local exp = now + reset
    if u > exp then exp = u end
    redis.call('PEXPIREAT', k, exp)
  end
  if u - now > longest then longest = u - now end
end
return longest
`)

func (r *Redis) lockArgs(head []any, fails []Failure) ([]string, []any) {
	ks := make([]string, len(fails))
	args := append(head, make([]any, 0, 5*len(fails))...)
	for i, f := range fails {
		ks[i] = r.lockKey(f.Key)
		p := f.Policy
		countOnly := 0
		if f.CountOnly {
			countOnly = 1
		}
		args = append(args, p.Failures, p.WaitIncrement.Milliseconds(), p.MaxWait.Milliseconds(), max(p.Reset.Milliseconds(), 1), countOnly)
	}
	return ks, args
}

// Begin implements Lockouts.
func (r *Redis) Begin(ctx context.Context, fails ...Failure) (time.Duration, error) {
	head := []any{inFlightStale.Milliseconds(), BusyRetry.Milliseconds()}
	ks, args := r.lockArgs(head, fails)
	if r.spread && len(ks) > 1 {
		return r.beginSpread(ctx, ks, args[len(head):])
	}
	ms, err := beginScript.Run(ctx, r.c, ks, args...).Int64()
	if err != nil {
		return 0, fmt.Errorf("lockout: %w", err)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// End implements Lockouts.
func (r *Redis) End(ctx context.Context, failed bool, fails ...Failure) (time.Duration, error) {
	f := 0
	if failed {
		f = 1
	}
	head := []any{inFlightStale.Milliseconds(), f}
	ks, args := r.lockArgs(head, fails)
	if r.spread && len(ks) > 1 {
		cmds, err := r.perKey(ctx, endScript, ks, head, 5, args[len(head):])
		if err != nil {
			return 0, fmt.Errorf("lockout: %w", err)
		}
		return longest(cmds)
	}
	ms, err := endScript.Run(ctx, r.c, ks, args...).Int64()
	if err != nil {
		return 0, fmt.Errorf("lockout: %w", err)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// Forget implements Lockouts.
func (r *Redis) Forget(ctx context.Context, key string) error {
	if err := r.c.Del(ctx, r.lockKey(key)).Err(); err != nil {
		return fmt.Errorf("lockout: %w", err)
	}
	return nil
}

func (r *Redis) knownKey(key string) string { return r.key("known", key) }

// Remember implements Lockouts.
func (r *Redis) Remember(ctx context.Context, key string, ttl time.Duration) error {
	if err := r.c.Set(ctx, r.knownKey(key), 1, max(ttl, time.Millisecond)).Err(); err != nil {
		return fmt.Errorf("lockout: %w", err)
	}
	return nil
}

// Remembered implements Lockouts.
func (r *Redis) Remembered(ctx context.Context, key string) (bool, error) {
	n, err := r.c.Exists(ctx, r.knownKey(key)).Result()
	if err != nil {
		return false, fmt.Errorf("lockout: %w", err)
	}
	return n > 0, nil
}

// beginSpread is Begin over keys in several slots: beginScript per key;
// when one refuses, the keys that admitted are ended as a success (their
// attempt in flight withdrawn), so a refused Begin starts nothing.
func (r *Redis) beginSpread(ctx context.Context, ks []string, args []any) (time.Duration, error) {
	cmds, err := r.perKey(ctx, beginScript, ks, []any{inFlightStale.Milliseconds(), BusyRetry.Milliseconds()}, 5, args)
	if err != nil {
		return 0, fmt.Errorf("lockout: %w", err)
	}
	wait, err := longest(cmds)
	if err != nil || wait == 0 {
		return wait, err
	}
	var back []string
	var bargs []any
	for i, c := range cmds {
		if ms, _ := c.Int64(); ms == 0 {
			back = append(back, ks[i])
			bargs = append(bargs, args[5*i:5*i+5]...)
		}
	}
	if len(back) > 0 {
		if _, err := r.perKey(ctx, endScript, back, []any{inFlightStale.Milliseconds(), 0}, 5, bargs); err != nil {
			return 0, fmt.Errorf("lockout: withdraw: %w", err)
		}
	}
	return wait, nil
}

// longest is the longest of per-key script replies (ms).
func longest(cmds []*redis.Cmd) (time.Duration, error) {
	var out int64
	for _, c := range cmds {
		ms, err := c.Int64()
		if err != nil {
			return 0, fmt.Errorf("lockout: %w", err)
		}
		out = max(out, ms)
	}
	return time.Duration(out) * time.Millisecond, nil
}
