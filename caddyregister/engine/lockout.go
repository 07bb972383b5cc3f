package engine

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/caddyregister/caddyregister/caddyregister/ratelimit"
	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// Lockout is the failure budget of every account whose password is
// checked (admin HTTP Basic, indiqus /auth/login, any later login). Only
// failures count: the owner's right password never spends the budget.
// Failures count twice, under (account, client network) and under the
// account alone; NetworkFailures locks the account for that network only,
// so an attacker elsewhere does not lock the owner out, and Failures, the
// higher account-wide ceiling, bounds what attackers on many networks can
// try together. The failure that makes k×threshold locks for
// k×WaitIncrement, at most MaxWait; failures in between neither renew nor
// lengthen a lock (or one failure per lock period would keep an account
// locked for good). The count is forgotten Reset after the last failure.
// A network the owner logged in from (within Reset) is not stopped by the
// account-wide lock, only by its own: attackers elsewhere cannot lock the
// owner out there.
type Lockout struct {
	NetworkFailures int
	Failures        int
	WaitIncrement   time.Duration
	MaxWait         time.Duration
	Reset           time.Duration
}

// DefaultLockout is Keycloak's brute force detection defaults for the
// account-wide ceiling (30 failures, waits growing by a minute up to 15,
// reset after 12 h), with 5 failures per client network.
func DefaultLockout() Lockout {
	return Lockout{NetworkFailures: 5, Failures: 30, WaitIncrement: time.Minute, MaxWait: 15 * time.Minute, Reset: 12 * time.Hour}
}

// withDefaults fills zero fields from DefaultLockout.
func (l Lockout) withDefaults() Lockout {
	d := DefaultLockout()
	if l.NetworkFailures == 0 {
		l.NetworkFailures = d.NetworkFailures
	}
	if l.Failures == 0 {
		l.Failures = d.Failures
	}
	if l.WaitIncrement == 0 {
		l.WaitIncrement = d.WaitIncrement
	}
	if l.MaxWait == 0 {
		l.MaxWait = d.MaxWait
	}
	if l.Reset == 0 {
		l.Reset = d.Reset
	}
	return l
}

func (l Lockout) policy(failures int) ratelimit.LockPolicy {
	return ratelimit.LockPolicy{Failures: failures, WaitIncrement: l.WaitIncrement, MaxWait: l.MaxWait, Reset: l.Reset}
}

// Account lockout keys. Unknown identifiers are keyed by their normalized
// form so they lock exactly like accounts that exist.
func adminAccount(login string) string   { return "admin:" + login }
func userAccount(id string) string       { return "user:" + id }
func unknownAccount(ident string) string { return "id:" + store.LoginKey(ident) }
func (e *Engine) lockKeys(account, clientIP string) (network, whole, known string) {
	n := e.Network(clientIP)
	if n != "" {
		known = "lock-known:" + n + "|" + account
	}
	return "lock-net:" + n + "|" + account, "lock-acct:" + account, known
}

// checkPassword is the one place passwords of accounts are checked against
// guessing; every route that checks an account's password goes through it.
// While account is locked for clientIP's network (or as a whole) it answers
// *RateLimitedError with the lock's remaining time and spends no hash; so
// it does while the account is at its limit with attempts in flight
// (ratelimit.BusyRetry), so that concurrent guesses cannot overshoot a
// lock. Otherwise it runs verify; a false counts one failure against the
// account and its network and answers ErrUnauthenticated; a true forgets
// the network's failures (a user who mistyped, then got it right),
// remembers the network as the account's for Reset, and answers nil. On a
// remembered network the account-wide lock does not apply (its failures
// still count towards it). Errors of verify (overload, a cancelled
// request) pass through and count nothing.
func (e *Engine) checkPassword(ctx context.Context, account, clientIP string, verify func() (bool, error)) error {
	lim := e.cfg.Limiter
	if lim == nil {
		ok, err := verify()
		if err != nil {
			return err
		}
		if !ok {
			return ErrUnauthenticated
		}
		return nil
	}
	netKey, acctKey, knownKey := e.lockKeys(account, clientIP)
	known := false
	if knownKey != "" {
		var err error
		if known, err = lim.Remembered(ctx, knownKey); err != nil {
			return store.Unavailable("lockout", err)
		}
	}
	l := e.lockout
	fails := []ratelimit.Failure{
		{Key: netKey, Policy: l.policy(l.NetworkFailures)},
		{Key: acctKey, Policy: l.policy(l.Failures), CountOnly: known},
	}
	d, err := lim.Begin(ctx, fails...)
	if err != nil {
		return store.Unavailable("lockout", err)
	}
	if d > 0 {
		return e.locked(d)
	}
	ok, err := verify()
	// The attempt ends even if the request was cancelled meanwhile, or it
	// would count as in flight until presumed lost.
	endCtx := context.WithoutCancel(ctx)
	if err != nil || ok {
		if _, endErr := lim.End(endCtx, false, fails...); endErr != nil {
			e.log.Warn("lockout: ending an attempt", zap.Error(endErr))
		}
		if err != nil {
			return err
		}
		if err := lim.Forget(endCtx, netKey); err != nil {
			e.log.Warn("lockout: forgetting failures", zap.Error(err))
		}
		if knownKey != "" {
			if err := lim.Remember(endCtx, knownKey, l.Reset); err != nil {
				e.log.Warn("lockout: remembering the owner's network", zap.Error(err))
			}
		}
		return nil
	}
	if _, err := lim.End(endCtx, true, fails...); err != nil {
		// Not counted: refuse rather than let guesses through uncounted.
		return store.Unavailable("lockout", err)
	}
	return ErrUnauthenticated
}

// locked is the answer to an attempt on a locked account.
func (e *Engine) locked(d time.Duration) error {
	if e.cfg.Metrics != nil {
		e.cfg.Metrics.RateLimited("lockout")
	}
	return &RateLimitedError{RetryAfter: max(d, time.Second)}
}
