package engine_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/password"
)

// lockHarness has an admin "ops" and an active user "owner" (login
// "owner", e-mail owner@example.com), the default lockout (5 failures per
// account and network, 30 per account, a minute's wait) and no per-IP
// flood guard, so only the lockout decides.
func lockHarness(t *testing.T, ev *env) *harness {
	t.Helper()
	h := newHarness(t, ev, func(c *engine.Config) {
		c.Admins = []engine.Admin{{Login: "ops", Hash: mustHash(t, cheap, "ops-secret"), Permissions: []string{"*"}}}
	})
	r := activeReg("owner@example.com")
	r.Login = "owner"
	mustRegister(t, h.e, r)
	return h
}

// wantLocked asserts err is the lockout's answer: a RateLimitedError whose
// Retry-After is the default first wait (a minute, less the test's own
// time), and that it spent no hash.
func wantLocked(t *testing.T, h *harness, what string, attempt func() error) {
	t.Helper()
	before := h.hashes.total()
	err := attempt()
	var rl *engine.RateLimitedError
	if !errors.As(err, &rl) {
		t.Fatalf("%s = %v, want locked (*RateLimitedError)", what, err)
	}
	if rl.RetryAfter <= 50*time.Second || rl.RetryAfter > time.Minute {
		t.Fatalf("%s: Retry-After %v, want the first lock's minute", what, rl.RetryAfter)
	}
	if engine.Outcome(err) != "rate_limited" {
		t.Errorf("%s: outcome %q", what, engine.Outcome(err))
	}
	if n := h.hashes.total() - before; n != 0 {
		t.Errorf("%s: a locked attempt spent %d hashes", what, n)
	}
}

func wantUnauth(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, engine.ErrUnauthenticated) {
		t.Fatalf("%s = %v, want ErrUnauthenticated", what, err)
	}
}

func login(h *harness, ip, id, pass string) error {
	_, _, err := h.e.Login(context.Background(), ip, "test-agent", id, pass)
	return err
}

func basic(h *harness, ip, id, pass string) error {
	_, err := h.e.AuthenticateBasic(context.Background(), ip, id, pass)
	return err
}

// TestLockoutAttackerElsewhereDoesNotLockOwner: failures from other
// networks lock those networks, not the owner on a clean one. (Before, ten
// failures a minute from anywhere locked the login for everyone.)
func TestLockoutAttackerElsewhereDoesNotLockOwner(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			h := lockHarness(t, be.open(t))
			for _, acct := range []struct {
				id, pass string
				try      func(h *harness, ip, id, pass string) error
			}{{"owner@example.com", goodPassword, login}, {"ops", "ops-secret", basic}} {
				for _, attacker := range []string{"203.0.113.7", "198.51.100.9", "2001:db8:1::1"} {
					for i := range 5 {
						wantUnauth(t, fmt.Sprintf("%s failure %d from %s", acct.id, i+1, attacker), acct.try(h, attacker, acct.id, "wrong guess"))
					}
					wantLocked(t, h, "attacker's next guess", func() error { return acct.try(h, attacker, acct.id, "another guess") })
					// Locked means not checked: even the right password.
					wantLocked(t, h, "right password from the locked network", func() error { return acct.try(h, attacker, acct.id, acct.pass) })
				}
				if err := acct.try(h, "192.0.2.10", acct.id, acct.pass); err != nil {
					t.Fatalf("owner of %s from a clean network: %v", acct.id, err)
				}
			}
		})
	}
}

// TestLockoutOwnPasswordNeverCounts: any number of right passwords leave
// the budget whole, and a success forgets the network's earlier mistakes.
func TestLockoutOwnPasswordNeverCounts(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			h := lockHarness(t, be.open(t))
			const ip = "192.0.2.20"
			for i := range 4 {
				wantUnauth(t, fmt.Sprintf("typo %d", i+1), login(h, ip, "owner", "typo"))
			}
			for i := range 35 { // more than both thresholds
				if err := login(h, ip, "owner", goodPassword); err != nil {
					t.Fatalf("login %d: %v", i+1, err)
				}
			}
			for i := range 4 {
				wantUnauth(t, fmt.Sprintf("typo %d after the successes", i+1), login(h, ip, "owner", "typo"))
			}
			if err := login(h, ip, "owner", goodPassword); err != nil {
				t.Fatalf("owner after 4 typos: %v", err)
			}
		})
	}
}

// TestLockoutAccountWideCeiling: 30 failures from 30 networks lock the
// account everywhere, the owner's clean network included.
func TestLockoutAccountWideCeiling(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			h := lockHarness(t, be.open(t))
			for i := range 30 {
				wantUnauth(t, fmt.Sprintf("failure %d", i+1), login(h, fmt.Sprintf("198.18.0.%d", i+1), "owner@example.com", "wrong guess"))
			}
			wantLocked(t, h, "owner after the ceiling", func() error { return login(h, "192.0.2.30", "owner", goodPassword) })
			// Other accounts are untouched.
			if err := login(h, "192.0.2.30", "ops", "ops-secret"); err != nil {
				t.Fatalf("another account: %v", err)
			}
		})
	}
}

// TestLockoutUnknownLocksLikeKnown: an identifier that names no account
// answers exactly as one that does, failure by failure, and its spellings
// share one budget.
func TestLockoutUnknownLocksLikeKnown(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			h := lockHarness(t, be.open(t))
			trace := func(ids []string, ip string) []string {
				var out []string
				for i := range 7 {
					before := h.hashes.total()
					err := login(h, ip, ids[i%len(ids)], "wrong guess")
					var rl *engine.RateLimitedError
					shape := fmt.Sprintf("%s hashes=%d", engine.Outcome(err), h.hashes.total()-before)
					if errors.As(err, &rl) {
						shape += fmt.Sprintf(" retry=%ds", (rl.RetryAfter+time.Second-1)/time.Second)
					}
					out = append(out, shape)
				}
				return out
			}
			known := trace([]string{"owner@example.com", "OWNER@example.com"}, "192.0.2.40")
			unknown := trace([]string{"ghost@example.com", " Ghost@Example.com "}, "192.0.2.41")
			if fmt.Sprint(known) != fmt.Sprint(unknown) {
				t.Fatalf("known account:   %v\nunknown account: %v", known, unknown)
			}
			if known[4] != "unauthenticated hashes=1" || known[5] != "rate_limited hashes=0 retry=60s" {
				t.Fatalf("trace %v: want 5 hashed failures, then locked for 60s", known)
			}
			// Unknown admin logins over HTTP Basic lock the same way.
			for i := range 5 {
				wantUnauth(t, fmt.Sprintf("basic ghost %d", i+1), basic(h, "192.0.2.42", "ghost", "x"))
			}
			wantLocked(t, h, "basic ghost", func() error { return basic(h, "192.0.2.42", "ghost", "x") })
		})
	}
}

// TestLockoutBasicAndLoginShareBudget: an admin's failures over HTTP Basic
// and over the login route count against one budget.
func TestLockoutBasicAndLoginShareBudget(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			h := lockHarness(t, be.open(t))
			const ip = "192.0.2.50"
			for i := range 3 {
				wantUnauth(t, fmt.Sprintf("basic failure %d", i+1), basic(h, ip, "ops", "wrong"))
			}
			for i := range 2 {
				wantUnauth(t, fmt.Sprintf("login failure %d", i+1), login(h, ip, "ops", "wrong"))
			}
			wantLocked(t, h, "basic after 5 shared failures", func() error { return basic(h, ip, "ops", "ops-secret") })
			wantLocked(t, h, "login after 5 shared failures", func() error { return login(h, ip, "ops", "ops-secret") })
		})
	}
}

// TestLockoutIPv6GroupedBy64: addresses of one /64 are one network for the
// lockout; the next /64 is another.
func TestLockoutIPv6GroupedBy64(t *testing.T) {
	h := lockHarness(t, openBolt(t))
	for i := range 5 {
		wantUnauth(t, "failure", login(h, fmt.Sprintf("2001:db8:0:7::%x", i+1), "owner", "wrong"))
	}
	wantLocked(t, h, "another address of the /64", func() error { return login(h, "2001:db8:0:7:ffff:ffff:ffff:ffff", "owner", goodPassword) })
	if err := login(h, "2001:db8:0:8::1", "owner", goodPassword); err != nil {
		t.Fatalf("the next /64: %v", err)
	}
}

func TestNetwork(t *testing.T) {
	h := newHarness(t, openBolt(t))
	h48 := newHarness(t, openBolt(t), func(c *engine.Config) { c.IPv6Prefix = 48 })
	for _, c := range []struct {
		e        *engine.Engine
		ip, want string
	}{
		{h.e, "192.0.2.1", "192.0.2.1"},
		{h.e, "::ffff:192.0.2.1", "192.0.2.1"},
		{h.e, "2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{h.e, "fe80::1%eth0", "fe80::/64"},
		{h48.e, "2001:db8:1:2:3:4:5:6", "2001:db8:1::/48"},
		{h.e, "", ""},
	} {
		if got := c.e.Network(c.ip); got != c.want {
			t.Errorf("Network(%q) = %q, want %q", c.ip, got, c.want)
		}
	}
	if _, err := engine.New(engine.Config{Store: h.env.store, Hasher: cheap, Pool: password.NewPool(password.PoolConfig{}), IPv6Prefix: 129}); err == nil {
		t.Error("IPv6Prefix 129 accepted")
	}
}

// gateHasher blocks in Hash until released, holding its pool slot.
type gateHasher struct {
	entered chan struct{}
	release chan struct{}
}

func (g gateHasher) Name() string { return "gate" }
func (g gateHasher) Hash(pw []byte) (string, error) {
	g.entered <- struct{}{}
	<-g.release
	return cheap.Hash(pw)
}

// TestAdminAuthUsesReservedSlot: with every hash slot taken by
// registrations, an admin still authenticates (HTTP Basic and login) on the
// reserved slot, while a user's login is shed.
func TestAdminAuthUsesReservedSlot(t *testing.T) {
	ev := openBolt(t)
	gate := gateHasher{entered: make(chan struct{}, 1), release: make(chan struct{})}
	h := newHarness(t, ev, func(c *engine.Config) {
		c.Hasher = gate
		c.Pool = password.NewPool(password.PoolConfig{Size: 1, MaxWait: 50 * time.Millisecond})
		c.Admins = []engine.Admin{{Login: "ops", Hash: mustHash(t, cheap, "ops-secret"), Permissions: []string{"*"}}}
	})
	done := make(chan error, 1)
	go func() {
		_, err := h.e.Register(context.Background(), reg("flood@example.com"))
		done <- err
	}()
	<-gate.entered // the only shared slot is held
	if err := basic(h, "192.0.2.60", "ops", "ops-secret"); err != nil {
		t.Fatalf("admin over Basic with the pool full: %v", err)
	}
	if err := login(h, "192.0.2.60", "ops", "ops-secret"); err != nil {
		t.Fatalf("admin login with the pool full: %v", err)
	}
	if err := login(h, "192.0.2.61", "someone@example.com", "whatever-pass"); !errors.Is(err, password.ErrOverloaded) {
		t.Fatalf("user login with the pool full: %v, want overload", err)
	}
	close(gate.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestUnknownBasicLoginGetsNoReservedSlot: with every shared hash slot
// taken, an unknown login over HTTP Basic is shed (overload) instead of
// taking the slot kept for admins, while a configured admin still gets in.
// (Before, a Basic flood of random logins took the reserved slot too.)
func TestUnknownBasicLoginGetsNoReservedSlot(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			gate := gateHasher{entered: make(chan struct{}, 1), release: make(chan struct{})}
			h := newHarness(t, be.open(t), func(c *engine.Config) {
				c.Hasher = gate
				c.Pool = password.NewPool(password.PoolConfig{Size: 1, MaxWait: 50 * time.Millisecond})
				c.Admins = []engine.Admin{{Login: "ops", Hash: mustHash(t, cheap, "ops-secret"), Permissions: []string{"*"}}}
			})
			done := make(chan error, 1)
			go func() {
				_, err := h.e.Register(context.Background(), reg("flood@example.com"))
				done <- err
			}()
			<-gate.entered // the only shared slot is held
			if err := basic(h, "192.0.2.62", "intruder", "whatever"); !errors.Is(err, password.ErrOverloaded) {
				t.Errorf("unknown Basic login with the pool full: %v, want overload", err)
			}
			if err := basic(h, "192.0.2.62", "ops", "ops-secret"); err != nil {
				t.Errorf("admin over Basic with the pool full: %v", err)
			}
			close(gate.release)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestLockoutConcurrentGuesses: 40 wrong passwords at once from 40
// networks decide at most the 30 failures of the account-wide ceiling
// (each hashes once); the rest are refused without a hash, and the account
// ends up locked.
func TestLockoutConcurrentGuesses(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			h := lockHarness(t, be.open(t))
			before := h.hashes.total()
			var wg sync.WaitGroup
			errs := make(chan error, 40)
			for i := range 40 {
				wg.Go(func() { errs <- login(h, fmt.Sprintf("198.18.1.%d", i+1), "owner", "wrong guess") })
			}
			wg.Wait()
			close(errs)
			unauth := 0
			for err := range errs {
				var rl *engine.RateLimitedError
				switch {
				case errors.Is(err, engine.ErrUnauthenticated):
					unauth++
				case errors.As(err, &rl):
				default:
					t.Fatalf("unexpected answer: %v", err)
				}
			}
			if hashes := h.hashes.total() - before; unauth > 30 || hashes != unauth {
				t.Fatalf("%d guesses decided with %d hashes; want at most 30, one hash each", unauth, hashes)
			}
			// Whatever the interleaving, the guesses go on until the
			// ceiling: stragglers refused while others were in flight
			// retry, as a client told Retry-After would.
			for i := 0; unauth < 30; i++ {
				err := login(h, fmt.Sprintf("198.18.2.%d", i+1), "owner", "wrong guess")
				if errors.Is(err, engine.ErrUnauthenticated) {
					unauth++
				}
			}
			wantLocked(t, h, "owner after the ceiling", func() error { return login(h, "192.0.2.70", "owner", goodPassword) })
		})
	}
}

// fastLockHarness is lockHarness with locks short enough to wait out:
// the account-wide ceiling locks for wait×k.
func fastLockHarness(t *testing.T, ev *env, wait time.Duration) *harness {
	t.Helper()
	h := newHarness(t, ev, func(c *engine.Config) {
		c.Admins = []engine.Admin{{Login: "ops", Hash: mustHash(t, cheap, "ops-secret"), Permissions: []string{"*"}}}
		c.Lockout = engine.Lockout{WaitIncrement: wait, MaxWait: 15 * wait}
	})
	r := activeReg("owner@example.com")
	r.Login = "owner"
	mustRegister(t, h.e, r)
	return h
}

// attacker fails logins on "owner", each from a network never used before
// (IPv6 /64s are cheap), so only the account-wide ceiling stops it.
type attacker struct {
	h    *harness
	nets int
}

// fail tries one wrong password from a fresh network until one counts,
// stepping past the account-wide lock as a patient attacker would.
func (a *attacker) fail(t *testing.T) {
	t.Helper()
	for {
		a.nets++
		err := login(a.h, fmt.Sprintf("2001:db8:%x:%x::1", a.nets>>16, a.nets&0xffff), "owner", "wrong guess")
		var rl *engine.RateLimitedError
		switch {
		case errors.Is(err, engine.ErrUnauthenticated):
			return
		case errors.As(err, &rl):
			time.Sleep(time.Millisecond) // the lock has not ended yet
		default:
			t.Fatalf("attacker's guess: %v", err)
		}
	}
}

// TestLockoutOwnerKnownNetworkOutlastsAttack: an attacker keeps failing
// past the ceiling from many networks, once per lock period and in bursts
// that reach the next multiple; the owner, on a network they logged in
// from before, still logs in every time. A network the owner never used
// is locked like the attacker's (the documented trade-off). (Before, the
// account-wide lock stopped the owner everywhere, and each failure past
// the ceiling renewed it.)
func TestLockoutOwnerKnownNetworkOutlastsAttack(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			h := fastLockHarness(t, be.open(t), time.Minute)
			const home = "192.0.2.90"
			if err := login(h, home, "owner", goodPassword); err != nil {
				t.Fatalf("owner's first login: %v", err)
			}
			// 30 failures from 6 networks reach the ceiling.
			for i := range 30 {
				wantUnauth(t, fmt.Sprintf("failure %d", i+1), login(h, fmt.Sprintf("198.18.4.%d", i/5+1), "owner", "wrong guess"))
			}
			wantLocked(t, h, "owner on a fresh network", func() error { return login(h, "192.0.2.91", "owner", goodPassword) })
			for i := range 3 {
				if err := login(h, home, "owner", goodPassword); err != nil {
					t.Fatalf("owner at home under attack (%d): %v", i+1, err)
				}
			}
			// The owner's typos at home count against the home network's own
			// budget (and towards the ceiling), not past it.
			for i := range 5 {
				wantUnauth(t, fmt.Sprintf("owner's typo %d", i+1), login(h, home, "owner", "typo"))
			}
			var rl *engine.RateLimitedError
			if err := login(h, home, "owner", goodPassword); !errors.As(err, &rl) {
				t.Fatalf("home after 5 typos: %v, want the network's own lock", err)
			}
		})
	}
}

// TestLockoutPatientAttackerCannotKeepOwnerOut: with short locks, the
// attacker fails once per lock period, then in bursts to the next
// multiple; the owner at home logs in throughout, and right after a
// failure past the ceiling (not a multiple of it) even a fresh network
// gets in. (Before, every failure past the ceiling locked anew.)
func TestLockoutPatientAttackerCannotKeepOwnerOut(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			h := fastLockHarness(t, be.open(t), 200*time.Millisecond)
			const home = "192.0.2.92"
			if err := login(h, home, "owner", goodPassword); err != nil {
				t.Fatalf("owner's first login: %v", err)
			}
			a := &attacker{h: h}
			for range 30 {
				a.fail(t)
			}
			for round := 1; round <= 3; round++ {
				// round×30 failures: locked for round×200ms.
				if err := login(h, home, "owner", goodPassword); err != nil {
					t.Fatalf("round %d: owner at home: %v", round, err)
				}
				var rl *engine.RateLimitedError
				if err := login(h, fmt.Sprintf("192.0.2.%d", 100+round), "owner", goodPassword); !errors.As(err, &rl) {
					t.Fatalf("round %d: owner on a fresh network: %v, want locked", round, err)
				}
				a.fail(t) // once the lock is over: failure round×30+1
				if err := login(h, fmt.Sprintf("192.0.2.%d", 110+round), "owner", goodPassword); err != nil {
					t.Fatalf("round %d: right after failure %d, a fresh network: %v, want in (it does not lock)", round, round*30+1, err)
				}
				for range 29 {
					a.fail(t) // the last one reaches (round+1)×30 and locks
				}
			}
		})
	}
}
