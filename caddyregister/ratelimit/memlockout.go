package ratelimit

import (
	"context"
	"errors"
	"time"
)

// errLockoutFull is End's and Remember's answer when the lockout table
// holds nothing it may evict: every entry has a live lock or an attempt in
// flight. Dropping one would unlock an account under attack.
var errLockoutFull = errors.New("lockout: table full of live locks")

// lockScan bounds how many entries insertLock looks at from the tail.
const lockScan = 64

// lockState is a key's lockout state at now (see lockLua): failures,
// lock end, attempts in flight. The caller holds the key's shard.
func (sh *memoryShard) lockState(k memKey, now int64) (e *memEntry, inFlight int64) {
	e = sh.find(k, now)
	if e == nil {
		return nil, 0
	}
	if now-e.pt > int64(inFlightStale) {
		e.p = 0
	}
	return e, e.p
}

// holdsLock reports whether a lockout entry must not be evicted: it is
// locked, or an attempt under it is in flight (evicting it would let
// concurrent attempts overshoot a lock).
func (e *memEntry) holdsLock(now int64) bool {
	return e.live > now && (e.a > now || (e.p > 0 && now-e.pt <= int64(inFlightStale)))
}

// insertLock is insert for the lockout table, which never evicts an entry
// that holds a lock: when the shard is full it evicts the least recently
// used entry that does not, looking at up to lockScan entries from the
// tail (each one passed over moves to the front, so held entries cannot
// clog the tail); nil when it finds none. Failure counts below a lock and
// remembered marks may go: each costs an attacker a password check, so
// filling the table with them takes far more work than it can gain.
func (sh *memoryShard) insertLock(k memKey, now int64) *memEntry {
	if _, ok := sh.idx[k]; ok || len(sh.entries) < sh.max {
		return sh.insert(k)
	}
	for range min(lockScan, len(sh.entries)) {
		i := sh.tail
		if !sh.entries[i].holdsLock(now) {
			return sh.insert(k) // evicts the tail, i
		}
		sh.touch(i)
	}
	return nil
}

func (m *Memory) lockKeys(fails []Failure) []memKey {
	ks := make([]memKey, len(fails))
	for i, f := range fails {
		ks[i] = m.hash(f.Key)
	}
	return ks
}

// Begin implements Lockouts, as the Redis script does. When the lockout
// table has no room for a key's entry it refuses (BusyRetry) rather than
// evict a live lock.
func (m *Memory) Begin(_ context.Context, fails ...Failure) (time.Duration, error) {
	ks := m.lockKeys(fails)
	defer m.locks.lockShards(ks)()
	now := m.now().UnixNano()
	var locked int64
	busy := false
	for i, k := range ks {
		if fails[i].CountOnly {
			continue
		}
		e, p := m.locks.shard(k).lockState(k, now)
		if e == nil {
			continue
		}
		locked = max(locked, e.a-now)
		if !fails[i].Policy.admits(e.n, p) {
			busy = true
		}
	}
	switch {
	case locked > 0:
		return time.Duration(locked), nil
	case busy:
		return BusyRetry, nil
	}
	for i, k := range ks {
		if fails[i].CountOnly {
			continue
		}
		sh := m.locks.shard(k)
		e, p := sh.lockState(k, now)
		if e == nil {
			if e = sh.insertLock(k, now); e == nil {
				m.unbegin(fails[:i], ks[:i], now)
				return BusyRetry, nil
			}
			e.a, e.n, e.live = 0, 0, 0
		}
		// Live at least until the attempt is presumed lost; failures keep
		// their own reset time (End sets it). In flight, the entry is held
		// against eviction by the later keys' inserts.
		e.p, e.pt = p+1, now
		e.live = max(e.live, now+int64(inFlightStale))
	}
	return 0, nil
}

// unbegin takes back the attempt Begin just counted in flight under ks.
func (m *Memory) unbegin(fails []Failure, ks []memKey, now int64) {
	for i, k := range ks {
		if fails[i].CountOnly {
			continue
		}
		if e, p := m.locks.shard(k).lockState(k, now); e != nil && p > 0 {
			e.p = p - 1
		}
	}
}

// End implements Lockouts, as the Redis script does.
func (m *Memory) End(_ context.Context, failed bool, fails ...Failure) (time.Duration, error) {
	ks := m.lockKeys(fails)
	defer m.locks.lockShards(ks)()
	now := m.now().UnixNano()
	var longest int64
	for i, k := range ks {
		sh := m.locks.shard(k)
		e, p := sh.lockState(k, now)
		if e != nil && p > 0 && !fails[i].CountOnly {
			e.p = p - 1
		}
		if failed {
			if e == nil {
				if e = sh.insertLock(k, now); e == nil {
					return 0, errLockoutFull
				}
				e.a, e.n, e.p = 0, 0, 0
			}
			e.n++
			if w := fails[i].Policy.Wait(e.n); w > 0 {
				e.a = max(e.a, now+int64(w))
			}
			e.live = max(now+int64(fails[i].Policy.Reset), e.a)
		}
		if e != nil {
			longest = max(longest, e.a-now)
		}
	}
	return time.Duration(longest), nil
}

// Forget implements Lockouts.
func (m *Memory) Forget(_ context.Context, key string) error {
	k := m.hash(key)
	sh := m.locks.shard(k)
	sh.mu.Lock()
	if i, ok := sh.idx[k]; ok {
		sh.entries[i].live = 0 // lapsed: reused in place
	}
	sh.mu.Unlock()
	return nil
}

// Remember implements Lockouts. A mark is an entry of the lockout table
// with no failures, live for ttl.
func (m *Memory) Remember(_ context.Context, key string, ttl time.Duration) error {
	k := m.hash(key)
	sh := m.locks.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	now := m.now().UnixNano()
	e := sh.find(k, now)
	if e == nil {
		if e = sh.insertLock(k, now); e == nil {
			return errLockoutFull
		}
		e.a, e.n, e.p, e.live = 0, 0, 0, 0
	}
	e.live = max(e.live, now+int64(ttl))
	return nil
}

// Remembered implements Lockouts.
func (m *Memory) Remembered(_ context.Context, key string) (bool, error) {
	k := m.hash(key)
	sh := m.locks.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.find(k, m.now().UnixNano()) != nil, nil
}
