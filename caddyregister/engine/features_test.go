package engine_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddyregister/caddyregister/caddyregister/captcha"
	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/mail"
	"github.com/caddyregister/caddyregister/caddyregister/password"
	"github.com/caddyregister/caddyregister/caddyregister/ratelimit"
	"github.com/caddyregister/caddyregister/caddyregister/store"
	"github.com/caddyregister/caddyregister/caddyregister/token"
)

// ---------------------------------------------------------------------------
// Helpers for the feature tests.

var (
	uuidShaped   = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	base64Secret = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)
)

const otherPassword = "another long enough passphrase"

// fakeClock is a settable engine clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// jwtTimes decodes the iat and exp claims of a token without verifying it.
func jwtTimes(t *testing.T, tok string) (iat, exp int64) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a JWS", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("decode payload: %v", err)
	}
	var c struct {
		Iat int64 `json:"iat"`
		Exp int64 `json:"exp"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatalf("payload %s: %v", b, err)
	}
	return c.Iat, c.Exp
}

// seqOf returns the user's store.SeqAttr, or 0 when it has none.
func seqOf(t *testing.T, u *store.User) int64 {
	t.Helper()
	raw, ok := u.Attributes[store.SeqAttr]
	if !ok {
		return 0
	}
	var n int64
	if err := json.Unmarshal(raw, &n); err != nil {
		t.Fatalf("seq attribute %s: %v", raw, err)
	}
	return n
}

func activeReg(email string) engine.Registration {
	r := reg(email)
	r.Status = store.StatusActive
	return r
}

func idem(key, fp string) *engine.IdempotencySpec {
	return &engine.IdempotencySpec{Key: key, Fingerprint: fp}
}

// raceStore simulates the interleavings of concurrent same-key requests:
// hideIdem makes the next GetIdempotency calls answer ErrNotFound (as if
// the winner had not committed yet when the loser looked), skipTaken makes
// the duplicate pre-check pass (as if the loser checked before the winner
// committed), so the conflict surfaces in CreateUser.
type raceStore struct {
	store.Store
	hideIdem  atomic.Int32
	skipTaken atomic.Bool
}

func (s *raceStore) GetIdempotency(ctx context.Context, key string) (*store.Idempotency, error) {
	if s.hideIdem.Add(-1) >= 0 {
		return nil, store.ErrNotFound
	}
	s.hideIdem.Store(0)
	return s.Store.GetIdempotency(ctx, key)
}

func (s *raceStore) Taken(ctx context.Context, k store.UniqueKeys) error {
	if s.skipTaken.Load() {
		return nil
	}
	return s.Store.Taken(ctx, k)
}

// ---------------------------------------------------------------------------
// Login.

func TestLogin(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			h := newHarness(t, be.open(t), func(c *engine.Config) {
				c.Admins = []engine.Admin{{Login: "ops", Hash: mustHash(t, cheap, "ops-secret"), Permissions: []string{"users:read"}}}
			})
			tn := &store.Tenant{Code: "LOGINCO", Name: "Login Co"}
			if err := h.e.CreateTenant(ctx, tn); err != nil {
				t.Fatal(err)
			}
			ar := activeReg("Active@Example.com")
			ar.Login = "Actor"
			ar.Permissions = []string{"orders:read"}
			ar.TenantID = tn.ID
			active := mustRegister(t, h.e, ar).User
			mustRegister(t, h.e, reg("pending@example.com"))
			off := reg("off@example.com")
			off.Status = store.StatusInactive
			mustRegister(t, h.e, off)

			type want struct {
				err   error // nil for success
				kind  string
				id    string
				perms []string
				hash  bool // whether the attempt costs a verification
			}
			cases := []struct {
				name, ip, id, pass string
				want               want
			}{
				{"admin", "10.0.0.1", "ops", "ops-secret", want{nil, engine.KindAdmin, "ops", []string{"users:read"}, true}},
				{"admin spaced", "10.0.0.1", " ops ", "ops-secret", want{nil, engine.KindAdmin, "ops", []string{"users:read"}, true}},
				{"admin wrong password", "10.0.0.2", "ops", "ops-secreT", want{err: engine.ErrUnauthenticated, hash: true}},
				{"user by email", "10.0.0.3", "active@example.com", goodPassword, want{nil, engine.KindUser, active.ID, []string{"orders:read"}, true}},
				{"user by email, other case and spaces", "10.0.0.3", "  ACTIVE@example.COM ", goodPassword, want{nil, engine.KindUser, active.ID, []string{"orders:read"}, true}},
				{"user by login", "10.0.0.4", "actor", goodPassword, want{nil, engine.KindUser, active.ID, []string{"orders:read"}, true}},
				{"user by login, other case", "10.0.0.4", "ACTOR", goodPassword, want{nil, engine.KindUser, active.ID, []string{"orders:read"}, true}},
				{"user wrong password", "10.0.0.5", "active@example.com", "correct horse battery stapler", want{err: engine.ErrUnauthenticated, hash: true}},
				{"user with admin's password", "10.0.0.5", "actor", "ops-secret", want{err: engine.ErrUnauthenticated, hash: true}},
				{"unknown identifier", "10.0.0.6", "nobody@example.com", goodPassword, want{err: engine.ErrUnauthenticated, hash: true}},
				{"unknown login", "10.0.0.6", "nobody", goodPassword, want{err: engine.ErrUnauthenticated, hash: true}},
				{"pending, right password", "10.0.0.7", "pending@example.com", goodPassword, want{err: engine.ErrNotActivated, hash: true}},
				{"pending, wrong password", "10.0.0.7", "pending@example.com", "wrong wrong wrong", want{err: engine.ErrUnauthenticated, hash: true}},
				{"inactive, right password", "10.0.0.9", "off@example.com", goodPassword, want{err: engine.ErrAccountDisabled, hash: true}},
				{"inactive, wrong password", "10.0.0.9", "off@example.com", "wrong wrong wrong", want{err: engine.ErrUnauthenticated, hash: true}},
				{"empty identifier", "10.0.0.8", "  ", goodPassword, want{err: engine.ErrUnauthenticated}},
				{"empty password", "10.0.0.8", "active@example.com", "", want{err: engine.ErrUnauthenticated}},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					before := h.hashes.total()
					p, tok, err := h.e.Login(ctx, tc.ip, "test-agent", tc.id, tc.pass)
					if n := h.hashes.total() - before; (n == 1) != tc.want.hash || n > 1 {
						t.Errorf("%d password verifications, want %d", n, map[bool]int{true: 1}[tc.want.hash])
					}
					if tc.want.err != nil {
						if !errors.Is(err, tc.want.err) || p != nil || tok != "" {
							t.Fatalf("Login = %+v, %q, %v; want %v", p, tok, err, tc.want.err)
						}
						if tc.want.err == engine.ErrUnauthenticated && (errors.Is(err, engine.ErrNotActivated) || errors.Is(err, engine.ErrAccountDisabled)) {
							t.Errorf("wrong password reveals the account state: %v", err)
						}
						if tc.want.err == engine.ErrNotActivated && errors.Is(err, engine.ErrUnauthenticated) {
							t.Errorf("ErrNotActivated also matches ErrUnauthenticated: %v", err)
						}
						return
					}
					if err != nil {
						t.Fatalf("Login: %v", err)
					}
					if p.Kind != tc.want.kind || p.ID != tc.want.id || p.Status != "active" || !slices.Equal(p.Permissions, tc.want.perms) {
						t.Errorf("principal = %+v", p)
					}
					got, err := h.e.AuthenticateToken(ctx, tok)
					if err != nil {
						t.Fatalf("AuthenticateToken(login token): %v", err)
					}
					if got.Kind != tc.want.kind || got.ID != tc.want.id || got.Status != "active" || !slices.Equal(got.Permissions, tc.want.perms) {
						t.Errorf("token principal = %+v", got)
					}
					if tc.want.kind == engine.KindUser {
						if got.TenantID != tn.ID || p.TenantID != tn.ID {
							t.Errorf("tenant = %q / %q, want %q", p.TenantID, got.TenantID, tn.ID)
						}
						if !got.Has("orders:read") || got.Has("users:read") {
							t.Errorf("token permissions = %v", got.Permissions)
						}
					} else if got.TenantID != "" || !got.Has("users:read") {
						t.Errorf("admin token principal = %+v", got)
					}
				})
			}

			t.Run("pending user activated later logs in", func(t *testing.T) {
				r := reg("later@example.com")
				r.UserToken = &engine.TokenSpec{}
				res := mustRegister(t, h.e, r)
				if _, _, err := h.e.Login(ctx, "10.0.1.1", "test-agent", "later@example.com", goodPassword); !errors.Is(err, engine.ErrNotActivated) {
					t.Fatalf("before activation: %v", err)
				}
				if _, err := h.e.Activate(ctx, res.UserToken); err != nil {
					t.Fatal(err)
				}
				p, tok, err := h.e.Login(ctx, "10.0.1.1", "test-agent", "later@example.com", goodPassword)
				if err != nil || tok == "" || p.ID != res.User.ID || p.Status != "active" {
					t.Fatalf("after activation: %+v %q %v", p, tok, err)
				}
			})
		})
	}
}

func TestLoginRateLimit(t *testing.T) {
	limit := ratelimit.Limit{Rate: 3, Period: time.Minute}
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			mk := func(t *testing.T) *harness {
				h := newHarness(t, be.open(t), func(c *engine.Config) {
					c.Admins = []engine.Admin{{Login: "ops", Hash: mustHash(t, cheap, "ops-secret"), Permissions: []string{"*"}}}
					c.AdminLoginLimit = limit
				})
				r := activeReg("rl@example.com")
				r.Login = "rluser"
				mustRegister(t, h.e, r)
				return h
			}

			t.Run("per ip", func(t *testing.T) {
				h := mk(t)
				const ip = "10.8.0.1"
				for i := range limit.Rate {
					// Different identifiers, so only the per-IP bucket fills.
					if _, _, err := h.e.Login(ctx, ip, "test-agent", fmt.Sprintf("guess%d@example.com", i), "x-wrong-x"); !errors.Is(err, engine.ErrUnauthenticated) {
						t.Fatalf("attempt %d: %v", i+1, err)
					}
				}
				for _, id := range []struct{ id, pass string }{{"rl@example.com", goodPassword}, {"ops", "ops-secret"}} {
					before := h.hashes.total()
					p, tok, err := h.e.Login(ctx, ip, "test-agent", id.id, id.pass)
					var rl *engine.RateLimitedError
					if !errors.As(err, &rl) || rl.RetryAfter < time.Second || p != nil || tok != "" {
						t.Fatalf("Login(%s) after %d attempts = %+v, %q, %v; want *RateLimitedError", id.id, limit.Rate, p, tok, err)
					}
					if engine.Outcome(err) != "rate_limited" {
						t.Errorf("Outcome = %q", engine.Outcome(err))
					}
					if h.hashes.total() != before {
						t.Error("rate-limited attempt still verified a password")
					}
				}
				if n := h.metrics.limited("login-ip"); n != 2 {
					t.Errorf("RateLimited(login-ip) = %d, want 2 (metrics %v)", n, h.metrics.rateLimited)
				}
				if _, _, err := h.e.Login(ctx, "10.8.0.2", "test-agent", "rl@example.com", goodPassword); err != nil {
					t.Errorf("another IP is limited too: %v", err)
				}
			})

		})
	}
}

func TestTokenTTL(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		ttl  time.Duration
		want time.Duration
	}{
		{"default", 0, token.DefaultTTL},
		{"configured", 2 * time.Minute, 2 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, openBolt(t), func(c *engine.Config) {
				c.Token.TTL = tc.ttl
				c.Admins = []engine.Admin{{Login: "ops", Hash: mustHash(t, cheap, "ops-secret"), Permissions: []string{"*"}}}
			})
			if got := h.e.TokenTTL(); got != tc.want {
				t.Errorf("TokenTTL = %v, want %v", got, tc.want)
			}
			mustRegister(t, h.e, activeReg("ttl@example.com"))
			for _, id := range []struct{ id, pass string }{{"ops", "ops-secret"}, {"ttl@example.com", goodPassword}} {
				_, tok, err := h.e.Login(ctx, "10.0.0.1", "test-agent", id.id, id.pass)
				if err != nil {
					t.Fatal(err)
				}
				iat, exp := jwtTimes(t, tok)
				if time.Duration(exp-iat)*time.Second != tc.want {
					t.Errorf("%s: token lives %ds, TokenTTL says %v", id.id, exp-iat, tc.want)
				}
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Idempotent registration.

func TestIdempotentRegister(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()

			t.Run("replay and mismatch", func(t *testing.T) {
				h := newHarness(t, be.open(t))
				r := reg("idem@example.com")
				r.Sequence = "acct"
				r.Idempotency = idem("test:admin:k1", "fp1")
				first := mustRegister(t, h.e, r)
				if first.Replayed {
					t.Error("first request marked Replayed")
				}
				if seqOf(t, first.User) != 1 {
					t.Errorf("seq = %d, want 1", seqOf(t, first.User))
				}
				rec, err := h.env.store.GetIdempotency(ctx, "test:admin:k1")
				if err != nil || rec.UserID != first.User.ID || rec.Fingerprint != "fp1" || rec.Seq != 1 {
					t.Fatalf("idempotency record = %+v, %v", rec, err)
				}
				if ttl := rec.ExpiresAt.Sub(rec.CreatedAt); ttl != engine.DefaultIdempotencyTTL {
					t.Errorf("record lives %v, want DefaultIdempotencyTTL", ttl)
				}
				before := h.env.snapshot(t)
				hashes := h.hashes.total()

				// The retry replays even though a rule now fails: the
				// first request succeeded.
				retry := r
				retry.Policy.MinDigits = 3
				again, err := h.e.Register(ctx, retry)
				if err != nil {
					t.Fatalf("replay: %v", err)
				}
				if !again.Replayed || again.User.ID != first.User.ID || again.User.Email != "idem@example.com" || seqOf(t, again.User) != 1 {
					t.Errorf("replay = %+v (user %+v)", again, again.User)
				}
				if h.env.snapshot(t) != before {
					t.Error("store changed on replay")
				}
				if h.hashes.total() != hashes {
					t.Error("replay hashed a password")
				}
				if n := h.metrics.reg("test/replayed"); n != 1 {
					t.Errorf("Registration(test, replayed) = %d", n)
				}
				if n := h.logs.FilterMessage("registration").FilterField(zap.String("outcome", "replayed")).Len(); n != 1 {
					t.Errorf("%d replayed log lines", n)
				}

				mism := r
				mism.Idempotency = idem("test:admin:k1", "fp2")
				mism.Email = "other@example.com"
				res, err := h.e.Register(ctx, mism)
				if !errors.Is(err, engine.ErrIdempotencyMismatch) || res != nil {
					t.Fatalf("other fingerprint = %+v, %v; want ErrIdempotencyMismatch", res, err)
				}
				if engine.Outcome(err) != "idempotency_mismatch" || h.metrics.reg("test/idempotency_mismatch") != 1 {
					t.Errorf("Outcome = %q, metrics %v", engine.Outcome(err), h.metrics.registrations)
				}
				if h.env.snapshot(t) != before || h.hashes.total() != hashes {
					t.Error("mismatch wrote or hashed")
				}

				// Another key with the same e-mail is a different request:
				// a plain duplicate, not a replay.
				dup := r
				dup.Idempotency = idem("test:admin:k2", "fp1")
				res, err = h.e.Register(ctx, dup)
				var ce *store.ConflictError
				if !errors.As(err, &ce) || ce.Field != "email" || res != nil {
					t.Fatalf("other key, same e-mail = %+v, %v; want ConflictError{email}", res, err)
				}
				if h.env.snapshot(t) != before {
					t.Error("store changed on a conflicting request")
				}

				// A new key registers normally and draws the next number.
				next := reg("idem2@example.com")
				next.Sequence = "acct"
				next.Idempotency = idem("test:admin:k2", "fp1")
				if res := mustRegister(t, h.e, next); res.Replayed || seqOf(t, res.User) != 2 {
					t.Errorf("new key: replayed=%v seq=%d, want false/2", res.Replayed, seqOf(t, res.User))
				}
			})

			t.Run("ttl", func(t *testing.T) {
				h := newHarness(t, be.open(t))
				r := reg("ttl-idem@example.com")
				r.Idempotency = &engine.IdempotencySpec{Key: "k", Fingerprint: "f", TTL: time.Hour}
				mustRegister(t, h.e, r)
				rec, err := h.env.store.GetIdempotency(ctx, "k")
				if err != nil {
					t.Fatal(err)
				}
				if d := rec.ExpiresAt.Sub(rec.CreatedAt); d != time.Hour {
					t.Errorf("record lives %v, want 1h", d)
				}
			})

			t.Run("concurrent same key", func(t *testing.T) {
				const n = 10
				h := newHarness(t, be.open(t))
				results := make([]*engine.Registered, n)
				errs := make([]error, n)
				start := make(chan struct{})
				var wg sync.WaitGroup
				for i := range n {
					wg.Go(func() {
						<-start
						r := reg("burst@example.com")
						r.Sequence = "acct"
						r.Idempotency = idem("test:burst", "fp")
						results[i], errs[i] = h.e.Register(ctx, r)
					})
				}
				close(start)
				wg.Wait()
				created, replayed := 0, 0
				var id string
				for i, err := range errs {
					if err != nil {
						t.Errorf("request %d: %v", i, err)
						continue
					}
					res := results[i]
					if res.Replayed {
						replayed++
					} else {
						created++
					}
					if id == "" {
						id = res.User.ID
					}
					if res.User.ID != id {
						t.Errorf("request %d got user %s, another got %s", i, res.User.ID, id)
					}
					if s := seqOf(t, res.User); s != 1 {
						t.Errorf("request %d: seq %d, want 1", i, s)
					}
				}
				if created != 1 || replayed != n-1 {
					t.Errorf("%d created, %d replayed; want 1 and %d", created, replayed, n-1)
				}
				if got, err := h.env.store.UserIDByEmail(ctx, "burst@example.com"); err != nil || got != id {
					t.Errorf("UserIDByEmail = %q, %v; want %q", got, err, id)
				}
				if h.metrics.reg("test/created") != 1 || h.metrics.reg("test/replayed") != n-1 {
					t.Errorf("metrics = %v", h.metrics.registrations)
				}
				// The losers consumed no sequence number.
				r := reg("after-burst@example.com")
				r.Sequence = "acct"
				if s := seqOf(t, mustRegister(t, h.e, r).User); s != 2 {
					t.Errorf("next seq = %d, want 2", s)
				}
			})

			t.Run("conflict from a concurrent same-key request replays", func(t *testing.T) {
				ev := be.open(t)
				rs := &raceStore{Store: ev.store}
				h := newHarness(t, ev, func(c *engine.Config) { c.Store = rs })
				r := reg("winner@example.com")
				r.Sequence = "acct"
				r.Idempotency = idem("test:race", "fp")
				first := mustRegister(t, h.e, r)
				before := h.env.snapshot(t)

				// The loser looked up the key before the winner committed,
				// then its duplicate pre-check found the winner's e-mail.
				rs.hideIdem.Store(1)
				res, err := h.e.Register(ctx, r)
				if err != nil {
					t.Fatalf("e-mail conflict with the key now known = %v, want a replay", err)
				}
				if !res.Replayed || res.User.ID != first.User.ID {
					t.Errorf("res = %+v", res)
				}
				if h.env.snapshot(t) != before {
					t.Error("store changed")
				}

				// The loser passed the pre-check too: the store's
				// idempotency claim refuses it.
				rs.hideIdem.Store(1)
				rs.skipTaken.Store(true)
				res, err = h.e.Register(ctx, r)
				if err != nil {
					t.Fatalf("store conflict with the key now known = %v, want a replay", err)
				}
				if !res.Replayed || res.User.ID != first.User.ID || seqOf(t, res.User) != 1 {
					t.Errorf("res = %+v", res)
				}
				if h.env.snapshot(t) != before {
					t.Error("store changed")
				}

				// Same race, different fingerprint: a mismatch, not a replay.
				rs.hideIdem.Store(1)
				other := r
				other.Idempotency = idem("test:race", "fp-other")
				if _, err := h.e.Register(ctx, other); !errors.Is(err, engine.ErrIdempotencyMismatch) {
					t.Errorf("racing mismatch = %v, want ErrIdempotencyMismatch", err)
				}

				// A conflict with an unknown key stands.
				rs.skipTaken.Store(false)
				stranger := r
				stranger.Idempotency = idem("test:stranger", "fp")
				var ce *store.ConflictError
				if _, err := h.e.Register(ctx, stranger); !errors.As(err, &ce) || ce.Field != "email" {
					t.Errorf("conflict with an unknown key = %v, want ConflictError{email}", err)
				}
				if h.env.snapshot(t) != before {
					t.Error("store changed")
				}
				if h.metrics.reg("test/replayed") != 2 || h.metrics.reg("test/duplicate") != 1 {
					t.Errorf("metrics = %v", h.metrics.registrations)
				}
			})
		})
	}
}

// ---------------------------------------------------------------------------
// Sequences.

func TestRegisterSequence(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			h := newHarness(t, be.open(t))
			const n = 8
			results := make([]*engine.Registered, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					r := reg(fmt.Sprintf("seq%d@example.com", i))
					r.Sequence = "acct"
					r.Attributes = store.Attrs{"jobId": json.RawMessage(`"job-1"`), store.SeqAttr: json.RawMessage(`999`)}
					res, err := h.e.Register(ctx, r)
					if err != nil {
						t.Errorf("register %d: %v", i, err)
						return
					}
					results[i] = res
				})
			}
			wg.Wait()
			if t.Failed() {
				t.FailNow()
			}
			var seqs []int64
			for _, res := range results {
				s := seqOf(t, res.User)
				seqs = append(seqs, s)
				stored, err := h.env.store.GetUser(ctx, res.User.ID)
				if err != nil {
					t.Fatal(err)
				}
				if got := seqOf(t, stored); got != s {
					t.Errorf("stored seq %d, returned %d", got, s)
				}
				if string(stored.Attributes["jobId"]) != `"job-1"` {
					t.Errorf("other attributes lost: %v", stored.Attributes)
				}
			}
			slices.Sort(seqs)
			want := []int64{1, 2, 3, 4, 5, 6, 7, 8}
			if !slices.Equal(seqs, want) {
				t.Errorf("sequence numbers = %v, want %v", seqs, want)
			}

			// A create the store refuses (joining a tenant that does not
			// exist) consumes no number.
			bad := reg("seq-bad@example.com")
			bad.Sequence = "acct"
			bad.TenantID = store.NewID(time.Now())
			if _, err := h.e.Register(ctx, bad); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("missing tenant = %v", err)
			}
			next := reg("seq-next@example.com")
			next.Sequence = "acct"
			if s := seqOf(t, mustRegister(t, h.e, next).User); s != n+1 {
				t.Errorf("after a failed create seq = %d, want %d", s, n+1)
			}

			// Sequences are independent; no Sequence, no number.
			o := reg("other-seq@example.com")
			o.Sequence = "other"
			if s := seqOf(t, mustRegister(t, h.e, o).User); s != 1 {
				t.Errorf("other sequence starts at %d", s)
			}
			plain := mustRegister(t, h.e, reg("no-seq@example.com"))
			if _, ok := plain.User.Attributes[store.SeqAttr]; ok {
				t.Errorf("user without Sequence has %s", store.SeqAttr)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// User tokens, NoPassword, SetPassword, Activate.

func TestSetPassword(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			h := newHarness(t, be.open(t))
			r := reg("invitee@example.com")
			r.Password = ""
			r.NoPassword = true
			r.Permissions = []string{"orders:read"}
			r.UserToken = &engine.TokenSpec{Purpose: engine.PurposeSetPassword, UUIDShape: true}
			res := mustRegister(t, h.e, r)
			secret := res.UserToken
			if !uuidShaped.MatchString(secret) {
				t.Fatalf("UserToken %q is not UUID-shaped", secret)
			}
			if h.hashes.total() != 0 {
				t.Errorf("%d hashes for a password-less registration", h.hashes.total())
			}
			u, err := h.env.store.GetUser(ctx, res.User.ID)
			if err != nil {
				t.Fatal(err)
			}
			if u.PasswordHash != "" || u.Status != store.StatusPending {
				t.Errorf("stored user hash %q status %q", u.PasswordHash, u.Status)
			}
			dump := h.env.snapshot(t)
			if strings.Contains(dump, secret) {
				t.Error("token secret stored in plain")
			}
			if !strings.Contains(dump, engine.HashToken(engine.PurposeSetPassword, secret)) {
				t.Error("token hash not found in the store")
			}

			t.Run("no login before set-password", func(t *testing.T) {
				before := h.hashes.total()
				for _, pw := range []string{goodPassword, "anything at all", " "} {
					if _, _, err := h.e.Login(ctx, "10.0.0.1", "test-agent", "invitee@example.com", pw); !errors.Is(err, engine.ErrUnauthenticated) || errors.Is(err, engine.ErrNotActivated) {
						t.Errorf("Login(%q) = %v, want ErrUnauthenticated", pw, err)
					}
				}
				if n := h.hashes.total() - before; n != 3 {
					t.Errorf("%d verifications for 3 attempts on a password-less user, want 3", n)
				}
			})

			t.Run("wrong purpose and garbage", func(t *testing.T) {
				before := h.env.snapshot(t)
				hashes := h.hashes.total()
				if _, err := h.e.SetPassword(ctx, secret, engine.PurposeActivate, goodPassword, password.NIST()); !errors.Is(err, engine.ErrTokenInvalid) {
					t.Errorf("SetPassword with purpose activate = %v", err)
				}
				if _, err := h.e.Activate(ctx, secret); !errors.Is(err, engine.ErrTokenInvalid) {
					t.Errorf("Activate with a set-password token = %v", err)
				}
				for _, bad := range []string{"", "   ", "00000000-0000-0000-0000-000000000000", strings.Repeat("a", 129), secret + "x"} {
					if _, err := h.e.SetPassword(ctx, bad, engine.PurposeSetPassword, goodPassword, password.NIST()); !errors.Is(err, engine.ErrTokenInvalid) {
						t.Errorf("SetPassword(%.20q) = %v", bad, err)
					}
				}
				if h.env.snapshot(t) != before {
					t.Error("store changed")
				}
				// Unknown tokens are answered before any hash.
				if n := h.hashes.total() - hashes; n != 0 {
					t.Errorf("%d hashes for unusable tokens, want 0", n)
				}
			})

			t.Run("password equal to the e-mail is refused before hashing", func(t *testing.T) {
				before := h.env.snapshot(t)
				hashes := h.hashes.total()
				_, err := h.e.SetPassword(ctx, secret, engine.PurposeSetPassword, "invitee@example.com", password.NIST())
				var ve *engine.ValidationError
				if !errors.As(err, &ve) || ve.Fields[0].Field != "password" {
					t.Fatalf("password = e-mail: %v, want ValidationError{password}", err)
				}
				if h.env.snapshot(t) != before || h.hashes.total() != hashes {
					t.Error("refused password wrote or hashed")
				}
			})

			t.Run("weak password keeps the token", func(t *testing.T) {
				before := h.env.snapshot(t)
				hashes := h.hashes.total()
				_, err := h.e.SetPassword(ctx, secret, engine.PurposeSetPassword, "short", password.NIST())
				var ve *engine.ValidationError
				if !errors.As(err, &ve) || len(ve.Fields) != 1 || ve.Fields[0].Field != "password" || ve.Fields[0].Rule != password.RuleMinLength {
					t.Fatalf("weak password = %v, want ValidationError{password/%s}", err, password.RuleMinLength)
				}
				if h.env.snapshot(t) != before || h.hashes.total() != hashes {
					t.Error("weak password wrote or hashed")
				}
			})

			t.Run("set, then reuse", func(t *testing.T) {
				hashes := h.hashes.total()
				u, err := h.e.SetPassword(ctx, "  "+secret+" ", engine.PurposeSetPassword, goodPassword, password.NIST())
				if err != nil {
					t.Fatalf("SetPassword: %v", err)
				}
				if n := h.hashes.total() - hashes; n != 1 {
					t.Errorf("%d hashes for one SetPassword, want 1", n)
				}
				if u.ID != res.User.ID || u.Status != store.StatusActive {
					t.Errorf("user = %+v", u)
				}
				stored, err := h.env.store.GetUser(ctx, res.User.ID)
				if err != nil {
					t.Fatal(err)
				}
				if ok, err := password.Verify(stored.PasswordHash, []byte(goodPassword)); !ok || err != nil {
					t.Fatalf("stored hash %q does not verify: %v", stored.PasswordHash, err)
				}
				if stored.Status != store.StatusActive || stored.UpdatedAt.Before(stored.CreatedAt) {
					t.Errorf("stored user = %+v", stored)
				}
				if strings.Contains(h.env.snapshot(t), goodPassword) {
					t.Error("plain password stored")
				}
				// A new password ends the sessions there were: the
				// registration token's here.
				if _, err := h.e.AuthenticateToken(ctx, res.Token); !errors.Is(err, engine.ErrUnauthenticated) {
					t.Errorf("registration token after SetPassword: %v, want refused", err)
				}
				p, tok, err := h.e.Login(ctx, "10.0.0.2", "test-agent", "invitee@example.com", goodPassword)
				if err != nil {
					t.Fatalf("Login after SetPassword: %v", err)
				}
				if ap, err := h.e.AuthenticateToken(ctx, tok); err != nil || ap.ID != res.User.ID || !ap.Has("orders:read") || p.Status != "active" {
					t.Errorf("token principal = %+v, %v", ap, err)
				}

				before := h.env.snapshot(t)
				hashes = h.hashes.total()
				_, err = h.e.SetPassword(ctx, secret, engine.PurposeSetPassword, otherPassword, password.NIST())
				if !errors.Is(err, engine.ErrTokenUsed) {
					t.Fatalf("reuse = %v, want ErrTokenUsed", err)
				}
				if n := h.hashes.total() - hashes; n != 0 {
					t.Errorf("%d hashes for a used token, want 0", n)
				}
				if h.env.snapshot(t) != before {
					t.Error("reuse changed the store")
				}
				if _, _, err := h.e.Login(ctx, "10.0.0.3", "test-agent", "invitee@example.com", otherPassword); !errors.Is(err, engine.ErrUnauthenticated) {
					t.Errorf("password of the reused token works: %v", err)
				}
				if _, _, err := h.e.Login(ctx, "10.0.0.3", "test-agent", "invitee@example.com", goodPassword); err != nil {
					t.Errorf("first password stopped working: %v", err)
				}
			})

			t.Run("activation token is not a set-password token", func(t *testing.T) {
				r := reg("activate-me@example.com")
				r.UserToken = &engine.TokenSpec{} // purpose defaults to activate, 256-bit secret
				res := mustRegister(t, h.e, r)
				if !base64Secret.MatchString(res.UserToken) {
					t.Errorf("default secret %q is not 256-bit base64url", res.UserToken)
				}
				if _, err := h.e.SetPassword(ctx, res.UserToken, engine.PurposeSetPassword, otherPassword, password.NIST()); !errors.Is(err, engine.ErrTokenInvalid) {
					t.Fatalf("activation token used to set a password = %v, want ErrTokenInvalid", err)
				}
				u, err := h.env.store.GetUser(ctx, res.User.ID)
				if err != nil || u.Status != store.StatusPending {
					t.Fatalf("user after refused token: %+v %v", u, err)
				}
				if ok, _ := password.Verify(u.PasswordHash, []byte(goodPassword)); !ok {
					t.Error("password changed by a refused token")
				}
				if _, err := h.e.Activate(ctx, res.UserToken); err != nil {
					t.Errorf("token unusable for its own purpose afterwards: %v", err)
				}
			})
		})
	}
}

func TestSetPasswordExpired(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			clk := newFakeClock()
			h := newHarness(t, be.open(t), func(c *engine.Config) { c.Now = clk.Now })
			r := reg("late@example.com")
			r.Password, r.NoPassword = "", true
			r.UserToken = &engine.TokenSpec{Purpose: engine.PurposeSetPassword, TTL: time.Hour, UUIDShape: true}
			res := mustRegister(t, h.e, r)
			clk.Advance(61 * time.Minute)
			if _, err := h.e.SetPassword(ctx, res.UserToken, engine.PurposeSetPassword, goodPassword, password.NIST()); !errors.Is(err, engine.ErrTokenInvalid) {
				t.Errorf("expired token = %v, want ErrTokenInvalid", err)
			}
		})
	}
}

func TestActivate(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			h := newHarness(t, be.open(t))
			r := reg("act@example.com")
			r.Permissions = []string{"orders:read"}
			r.UserToken = &engine.TokenSpec{Purpose: engine.PurposeActivate, UUIDShape: true}
			res := mustRegister(t, h.e, r)
			if !uuidShaped.MatchString(res.UserToken) {
				t.Errorf("UserToken %q is not UUID-shaped", res.UserToken)
			}
			if res.User.Status != store.StatusPending {
				t.Fatalf("status = %q", res.User.Status)
			}
			u1, err := h.e.Activate(ctx, res.UserToken)
			if err != nil {
				t.Fatalf("Activate: %v", err)
			}
			if u1.ID != res.User.ID || u1.Status != store.StatusActive {
				t.Errorf("user = %+v", u1)
			}
			stored, err := h.env.store.GetUser(ctx, res.User.ID)
			if err != nil || stored.Status != store.StatusActive {
				t.Fatalf("stored = %+v, %v", stored, err)
			}
			before := h.env.snapshot(t)
			u2, err := h.e.Activate(ctx, res.UserToken)
			if err != nil {
				t.Fatalf("second Activate = %v, want idempotent success", err)
			}
			if u2.ID != u1.ID || u2.Status != store.StatusActive {
				t.Errorf("second Activate user = %+v", u2)
			}
			if h.env.snapshot(t) != before {
				t.Error("second Activate changed the store")
			}
			if n := h.logs.FilterMessage("token reused").Len(); n != 1 {
				t.Errorf("%d 'token reused' log lines", n)
			}
			p, _, err := h.e.Login(ctx, "10.0.0.1", "test-agent", "act@example.com", goodPassword)
			if err != nil || !p.Has("orders:read") {
				t.Errorf("Login after activation = %+v, %v", p, err)
			}
			for _, bad := range []string{"", "nope", strings.Repeat("b", 200)} {
				if _, err := h.e.Activate(ctx, bad); !errors.Is(err, engine.ErrTokenInvalid) {
					t.Errorf("Activate(%.20q) = %v", bad, err)
				}
			}
		})
	}
}

// TestTokensOfInactiveUser: an admin-disabled (inactive) user's activation
// and set-password tokens are invalid; refusing them writes nothing.
func TestTokensOfInactiveUser(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			h := newHarness(t, be.open(t))
			for _, purpose := range []string{engine.PurposeActivate, engine.PurposeSetPassword} {
				r := reg(purpose + "@example.com")
				r.Status = store.StatusInactive
				r.UserToken = &engine.TokenSpec{Purpose: purpose}
				res := mustRegister(t, h.e, r)
				before := h.env.snapshot(t)
				var err error
				if purpose == engine.PurposeActivate {
					_, err = h.e.Activate(ctx, res.UserToken)
				} else {
					_, err = h.e.SetPassword(ctx, res.UserToken, purpose, "another good passphrase", password.NIST())
				}
				if !errors.Is(err, engine.ErrTokenInvalid) {
					t.Errorf("%s token of an inactive user: %v, want ErrTokenInvalid", purpose, err)
				}
				if h.env.snapshot(t) != before {
					t.Errorf("%s: refusal changed the store", purpose)
				}
				u, err := h.env.store.GetUser(ctx, res.User.ID)
				if err != nil || u.Status != store.StatusInactive {
					t.Errorf("%s: user after refusal = %+v, %v", purpose, u, err)
				}
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Mail.

func TestRegisterMail(t *testing.T) {
	tmpl := mail.MustParseTemplate("Welcome {{.User.Email}}", "Hi {{.Greeting}}, activate: {{.Link}}\nExpires {{.Expires}}\n", "")
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			var queued atomic.Int32
			h := newHarness(t, be.open(t), func(c *engine.Config) { c.MailQueued = func() { queued.Add(1) } })
			var secrets []string
			var mu sync.Mutex
			spec := &engine.MailSpec{
				Template: tmpl,
				Link: func(tok string) string {
					mu.Lock()
					defer mu.Unlock()
					secrets = append(secrets, tok)
					return "https://app.example/activate?token=" + tok
				},
				Data: map[string]any{"Greeting": "friend"},
			}
			r := reg("mailme@example.com")
			r.Mail = spec
			r.UserToken = &engine.TokenSpec{} // Mail wins: the secret travels only in the mail
			res := mustRegister(t, h.e, r)
			if queued.Load() != 1 {
				t.Errorf("MailQueued called %d times, want 1", queued.Load())
			}
			if res.UserToken != "" {
				t.Error("Register returned the mailed secret")
			}
			if len(secrets) != 1 {
				t.Fatalf("Link called %d times", len(secrets))
			}
			secret := secrets[0]
			if !base64Secret.MatchString(secret) {
				t.Errorf("mail secret %q is not 256-bit base64url", secret)
			}
			dump := h.env.snapshot(t)
			if !strings.Contains(dump, engine.HashToken(engine.PurposeActivate, secret)) {
				t.Error("token hash not in the store")
			}

			m, err := h.env.store.ClaimMail(ctx, time.Now(), time.Minute)
			if err != nil {
				t.Fatalf("ClaimMail: %v", err)
			}
			if !slices.Equal(m.To, []string{"mailme@example.com"}) || m.UserID != res.User.ID || m.Contract != "test" ||
				m.Subject != "Welcome mailme@example.com" {
				t.Errorf("mail = %+v", m)
			}
			// The body is sealed, and lives no longer than its token.
			if m.Text != "" || m.HTML != "" || m.Sealed == "" || !m.ExpiresAt.Equal(m.CreatedAt.Add(engine.DefaultTokenTTL)) {
				t.Errorf("stored mail is not sealed: %+v", m)
			}
			sealer, err := h.e.MailSealer(ctx)
			if err != nil {
				t.Fatal(err)
			}
			subject, text, html, err := sealer.Open(m)
			if err != nil || subject != "Welcome mailme@example.com" || html != "" {
				t.Errorf("Open = %q, %q, %q, %v", subject, text, html, err)
			}
			if !strings.Contains(text, "https://app.example/activate?token="+secret) || !strings.Contains(text, "Hi friend") {
				t.Errorf("mail text = %q", text)
			}
			// The secret and the link are nowhere in the store.
			if strings.Contains(dump, secret) || strings.Contains(dump, "app.example/activate") {
				t.Errorf("the token or the link is in the store in clear")
			}
			if _, err := h.env.store.ClaimMail(ctx, time.Now(), time.Minute); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("second ClaimMail = %v, want ErrNotFound (one mail)", err)
			}

			// Failures queue nothing.
			dup := reg("mailme@example.com")
			dup.Mail = spec
			if _, err := h.e.Register(ctx, dup); err == nil {
				t.Fatal("duplicate registered")
			}
			broken := reg("broken@example.com")
			broken.Mail = &engine.MailSpec{Template: mail.MustParseTemplate("x", "{{.Missing}}", ""), Link: spec.Link}
			before := h.env.snapshot(t)
			if _, err := h.e.Register(ctx, broken); err == nil {
				t.Fatal("registered with a template that cannot render")
			}
			if h.env.snapshot(t) != before {
				t.Error("failed render wrote")
			}
			if _, err := h.env.store.UserIDByEmail(ctx, "broken@example.com"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("user of a failed mail exists: %v", err)
			}
			if q, _, err := h.env.store.MailCounts(ctx); err != nil || q != 1 {
				t.Errorf("queued = %d, %v; want 1", q, err)
			}
			if queued.Load() != 1 {
				t.Errorf("MailQueued called %d times after failures, want 1", queued.Load())
			}

			// The mailed token activates.
			u, err := h.e.Activate(ctx, secret)
			if err != nil || u.ID != res.User.ID || u.Status != store.StatusActive {
				t.Errorf("Activate(mailed) = %+v, %v", u, err)
			}

			t.Run("set-password purpose", func(t *testing.T) {
				var got string
				r := reg("invite-mail@example.com")
				r.Password, r.NoPassword = "", true
				r.Mail = &engine.MailSpec{Template: tmpl, Purpose: engine.PurposeSetPassword, Data: map[string]any{"Greeting": "x"},
					Link: func(tok string) string { got = tok; return "https://app.example/set?t=" + tok }}
				mustRegister(t, h.e, r)
				if _, err := h.e.Activate(ctx, got); !errors.Is(err, engine.ErrTokenInvalid) {
					t.Errorf("set-password mail token activates: %v", err)
				}
				if _, err := h.e.SetPassword(ctx, got, engine.PurposeSetPassword, goodPassword, password.NIST()); err != nil {
					t.Errorf("SetPassword(mailed) = %v", err)
				}
				if queued.Load() != 2 {
					t.Errorf("MailQueued = %d, want 2", queued.Load())
				}
			})

			t.Run("no callback", func(t *testing.T) {
				h := newHarness(t, be.open(t))
				r := reg("nocb@example.com")
				r.Mail = spec
				mustRegister(t, h.e, r)
				if q, _, err := h.env.store.MailCounts(ctx); err != nil || q != 1 {
					t.Errorf("queued = %d, %v", q, err)
				}
			})
		})
	}
}

// ---------------------------------------------------------------------------
// CAPTCHA.

// digitsCaptcha has 1000 possible answers, so tests can recover one from
// its stored hash.
func digitsCaptcha(t *testing.T) *captcha.Generator {
	t.Helper()
	g, err := captcha.New(captcha.Config{Length: 3, Alphabet: "0123456789"})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// solve recovers the answer to the challenge under tok: it takes the
// stored hash, finds the answer by brute force and puts it back.
func solve(t *testing.T, st store.Store, tok string) string {
	t.Helper()
	ctx := context.Background()
	hash, err := st.TakeChallenge(ctx, tok)
	if err != nil {
		t.Fatalf("TakeChallenge: %v", err)
	}
	for i := range 1000 {
		a := fmt.Sprintf("%03d", i)
		if captcha.Check(hash, a) {
			if err := st.PutChallenge(ctx, tok, hash, time.Minute); err != nil {
				t.Fatal(err)
			}
			return a
		}
	}
	t.Fatal("stored challenge hash matches no answer")
	return ""
}

func wrongAnswer(a string) string {
	if a == "000" {
		return "111"
	}
	return "000"
}

func TestCaptcha(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			h := newHarness(t, be.open(t), func(c *engine.Config) { c.Captcha = digitsCaptcha(t) })
			newCh := func(t *testing.T) (*engine.Challenge, string) {
				t.Helper()
				ch, err := h.e.NewChallenge(ctx)
				if err != nil {
					t.Fatalf("NewChallenge: %v", err)
				}
				return ch, solve(t, h.env.store, ch.Token)
			}

			t.Run("challenge", func(t *testing.T) {
				ch, err := h.e.NewChallenge(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if !strings.HasPrefix(ch.SVG, "<svg") || !uuidShaped.MatchString(ch.Token) {
					t.Errorf("challenge = %.40q / %q", ch.SVG, ch.Token)
				}
				ch2, err := h.e.NewChallenge(ctx)
				if err != nil || ch2.Token == ch.Token {
					t.Errorf("second challenge %v reuses token", err)
				}
			})

			t.Run("right, then reused", func(t *testing.T) {
				ch, a := newCh(t)
				if err := h.e.VerifyChallenge(ctx, ch.Token, " "+a[:1]+" "+a[1:]+"\t"); err != nil {
					t.Fatalf("right answer (spaced) = %v", err)
				}
				if err := h.e.VerifyChallenge(ctx, ch.Token, a); !errors.Is(err, engine.ErrCaptchaExpired) {
					t.Errorf("reuse = %v, want ErrCaptchaExpired", err)
				}
			})

			t.Run("wrong consumes", func(t *testing.T) {
				ch, a := newCh(t)
				err := h.e.VerifyChallenge(ctx, ch.Token, wrongAnswer(a))
				if !errors.Is(err, engine.ErrCaptchaWrong) || engine.Outcome(err) != "captcha_failed" {
					t.Fatalf("wrong answer = %v (outcome %q)", err, engine.Outcome(err))
				}
				if err := h.e.VerifyChallenge(ctx, ch.Token, a); !errors.Is(err, engine.ErrCaptchaExpired) {
					t.Errorf("right answer after a wrong one = %v, want ErrCaptchaExpired", err)
				}
			})

			t.Run("empty does not consume", func(t *testing.T) {
				ch, a := newCh(t)
				for _, c := range []struct{ tok, ans string }{{"", a}, {ch.Token, ""}, {ch.Token, " \t\u200b"}} {
					if err := h.e.VerifyChallenge(ctx, c.tok, c.ans); !errors.Is(err, engine.ErrCaptchaRequired) {
						t.Errorf("VerifyChallenge(%q, %q) = %v, want ErrCaptchaRequired", c.tok, c.ans, err)
					}
				}
				if err := h.e.VerifyChallenge(ctx, ch.Token, a); err != nil {
					t.Errorf("right answer after empty ones = %v", err)
				}
			})

			t.Run("unknown token", func(t *testing.T) {
				if err := h.e.VerifyChallenge(ctx, "00000000-0000-0000-0000-000000000000", "123"); !errors.Is(err, engine.ErrCaptchaExpired) {
					t.Errorf("unknown token = %v", err)
				}
			})

			t.Run("register consumes", func(t *testing.T) {
				ch, a := newCh(t)
				r := reg("human@example.com")
				r.Captcha = &engine.CaptchaAnswer{Token: ch.Token, Answer: a}
				mustRegister(t, h.e, r)
				if err := h.e.VerifyChallenge(ctx, ch.Token, a); !errors.Is(err, engine.ErrCaptchaExpired) {
					t.Errorf("challenge left after Register = %v", err)
				}
				// The same captcha cannot register a second user.
				r2 := reg("human2@example.com")
				r2.Captcha = r.Captcha
				if _, err := h.e.Register(ctx, r2); !errors.Is(err, engine.ErrCaptchaExpired) {
					t.Errorf("reused captcha in Register = %v", err)
				}
			})

			t.Run("register with a failed captcha writes nothing", func(t *testing.T) {
				before := h.env.snapshot(t)
				hashes := h.hashes.total()
				ch, a := newCh(t)
				r := reg("robot@example.com")
				r.Captcha = &engine.CaptchaAnswer{Token: ch.Token, Answer: wrongAnswer(a)}
				res, err := h.e.Register(ctx, r)
				if !errors.Is(err, engine.ErrCaptchaWrong) || res != nil {
					t.Fatalf("Register = %+v, %v; want ErrCaptchaWrong", res, err)
				}
				missing := reg("robot@example.com")
				missing.Captcha = &engine.CaptchaAnswer{Token: ch.Token}
				if _, err := h.e.Register(ctx, missing); !errors.Is(err, engine.ErrCaptchaRequired) {
					t.Errorf("Register without an answer = %v", err)
				}
				if h.env.snapshot(t) != before {
					t.Error("store changed after failed captchas")
				}
				if h.hashes.total() != hashes {
					t.Error("hashed despite a failed captcha")
				}
				if _, err := h.env.store.UserIDByEmail(ctx, "robot@example.com"); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("robot registered: %v", err)
				}
				if n := h.metrics.reg("test/captcha_failed"); n < 2 {
					t.Errorf("Registration(test, captcha_failed) = %d", n)
				}
			})
		})
	}
	t.Run("expired", func(t *testing.T) {
		for _, be := range backends() {
			t.Run(be.name, func(t *testing.T) {
				h := newHarness(t, be.open(t), func(c *engine.Config) {
					c.Captcha = digitsCaptcha(t)
					c.ChallengeTTL = 50 * time.Millisecond
				})
				ctx := context.Background()
				ch, err := h.e.NewChallenge(ctx)
				if err != nil {
					t.Fatal(err)
				}
				time.Sleep(120 * time.Millisecond)
				if err := h.e.VerifyChallenge(ctx, ch.Token, "123"); !errors.Is(err, engine.ErrCaptchaExpired) {
					t.Errorf("expired challenge = %v", err)
				}
			})
		}
	})
	t.Run("not configured", func(t *testing.T) {
		h := newHarness(t, openBolt(t))
		if ch, err := h.e.NewChallenge(context.Background()); err == nil {
			t.Errorf("NewChallenge without a generator = %+v", ch)
		}
	})
}

// ---------------------------------------------------------------------------
// Tenants.

func TestTenants(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			now := time.Now()
			acme := store.Tenant{ID: store.NewID(now), Code: "ACME", Name: "Acme", Groups: []string{"admins", "users"}}
			globex := store.Tenant{ID: store.NewID(now), Code: "Globex", Name: "Globex"}
			ev := be.open(t)
			h := newHarness(t, ev, func(c *engine.Config) { c.Tenants = []store.Tenant{acme, globex} })

			list := func(t *testing.T) []*store.Tenant {
				t.Helper()
				ts, err := h.e.ListTenants(ctx)
				if err != nil {
					t.Fatal(err)
				}
				return ts
			}
			first := list(t)
			if len(first) != 2 || first[0].ID != acme.ID || first[1].ID != globex.ID ||
				first[0].Code != "ACME" || !slices.Equal(first[0].Groups, []string{"admins", "users"}) || first[0].CreatedAt.IsZero() {
				t.Fatalf("tenants after Start = %+v", first)
			}

			t.Run("ensure is idempotent", func(t *testing.T) {
				time.Sleep(5 * time.Millisecond)
				if err := h.e.Start(ctx); err != nil {
					t.Fatalf("second Start: %v", err)
				}
				second := list(t)
				if len(second) != len(first) {
					t.Fatalf("%d tenants after the second Start", len(second))
				}
				for i := range first {
					a, b := first[i], second[i]
					if a.ID != b.ID || a.Code != b.Code || a.Name != b.Name || !slices.Equal(a.Groups, b.Groups) || !a.CreatedAt.Equal(b.CreatedAt) {
						t.Errorf("tenant changed by the second Start: %+v -> %+v", a, b)
					}
				}
				// Another instance declaring a new group and a renamed
				// spelling of the code merges; CreatedAt stays.
				redecl := acme
				redecl.Code = "acme"
				redecl.Groups = []string{"billing", "admins"}
				other := newHarness(t, &env{store: ev.reopen(t), limiter: ev.limiter, snapshot: ev.snapshot},
					func(c *engine.Config) { c.Tenants = []store.Tenant{redecl} })
				tn, err := other.e.ResolveTenant(ctx, acme.ID, "ACME")
				if err != nil {
					t.Fatal(err)
				}
				if tn.Code != "ACME" || !slices.Equal(tn.Groups, []string{"admins", "users", "billing"}) || !tn.CreatedAt.Equal(first[0].CreatedAt) {
					t.Errorf("merged tenant = %+v", tn)
				}
			})

			t.Run("conflicting declarations are reported", func(t *testing.T) {
				clash := []store.Tenant{
					{ID: store.NewID(time.Now()), Code: "acme", Name: "Impostor"}, // code held by another id
					{ID: globex.ID, Code: "NotGlobex", Name: "Impostor"},          // id held by another code
				}
				e, err := engine.New(engine.Config{Store: ev.reopen(t), Hasher: cheap, Pool: password.NewPool(password.PoolConfig{}), Tenants: clash})
				if err != nil {
					t.Fatal(err)
				}
				err = e.Start(ctx)
				var ce *store.ConflictError
				if err == nil || !errors.As(err, &ce) {
					t.Fatalf("Start with clashing tenants = %v, want ConflictError", err)
				}
				for _, f := range []string{"tenant_code", "tenant_id"} {
					if !strings.Contains(err.Error(), f) {
						t.Errorf("Start error %q does not report %s", err, f)
					}
				}
				if _, err := e.JWKS(ctx); err != nil {
					t.Errorf("signing key not loaded despite tenant errors: %v", err)
				}
				if ts := list(t); len(ts) != 2 || ts[0].Name != "Acme" || ts[1].Code != "Globex" {
					t.Errorf("clashing declarations overwrote tenants: %+v", ts)
				}
			})

			t.Run("resolve", func(t *testing.T) {
				tn, err := h.e.ResolveTenant(ctx, acme.ID, "acme")
				if err != nil || tn.ID != acme.ID || tn.Code != "ACME" {
					t.Errorf("ResolveTenant(acme) = %+v, %v", tn, err)
				}
				for _, c := range []struct{ name, id, code string }{
					{"other tenant's code", acme.ID, "Globex"},
					{"unknown id", store.NewID(time.Now()), "ACME"},
					{"malformed id", "acme", "ACME"},
					{"empty id", "", "ACME"},
					{"empty code", acme.ID, "  "},
					{"unknown code", globex.ID, "Initrode"},
				} {
					if tn, err := h.e.ResolveTenant(ctx, c.id, c.code); !errors.Is(err, engine.ErrTenantMismatch) || tn != nil {
						t.Errorf("%s: ResolveTenant = %+v, %v; want ErrTenantMismatch", c.name, tn, err)
					}
				}
			})

			t.Run("groups", func(t *testing.T) {
				tn := &store.Tenant{Code: "ACME", Groups: []string{"admins", "users"}}
				for _, ok := range [][]string{nil, {}, {"admins"}, {"users", "admins"}} {
					if err := engine.CheckGroups(tn, ok); err != nil {
						t.Errorf("CheckGroups(%v) = %v", ok, err)
					}
				}
				for _, bad := range [][]string{{"Admins"}, {"admins", "ghosts"}, {""}} {
					err := engine.CheckGroups(tn, bad)
					if !errors.Is(err, engine.ErrUnknownGroup) {
						t.Errorf("CheckGroups(%v) = %v, want ErrUnknownGroup", bad, err)
						continue
					}
					if g := bad[len(bad)-1]; !strings.Contains(err.Error(), fmt.Sprintf("%q", g)) {
						t.Errorf("CheckGroups(%v) = %q, does not name %q", bad, err, g)
					}
				}
			})

			t.Run("create and list", func(t *testing.T) {
				tn := &store.Tenant{Code: "Initech", Name: "Initech"}
				if err := h.e.CreateTenant(ctx, tn); err != nil {
					t.Fatal(err)
				}
				if !store.IsID(tn.ID) || tn.CreatedAt.IsZero() {
					t.Errorf("created tenant = %+v", tn)
				}
				if n := h.logs.FilterMessage("tenant created").FilterField(zap.String("tenant_id", tn.ID)).Len(); n != 1 {
					t.Errorf("%d 'tenant created' log lines", n)
				}
				before := h.env.snapshot(t)
				var ce *store.ConflictError
				if err := h.e.CreateTenant(ctx, &store.Tenant{Code: "INITECH", Name: "Copy"}); !errors.As(err, &ce) || ce.Field != "tenant_code" {
					t.Errorf("duplicate code = %v, want ConflictError{tenant_code}", err)
				}
				if err := h.e.CreateTenant(ctx, &store.Tenant{ID: acme.ID, Code: "Fresh", Name: "Fresh"}); !errors.As(err, &ce) || ce.Field != "tenant_id" {
					t.Errorf("duplicate id = %v, want ConflictError{tenant_id}", err)
				}
				if h.env.snapshot(t) != before {
					t.Error("refused CreateTenant wrote")
				}
				var codes []string
				for _, x := range list(t) {
					codes = append(codes, x.Code)
				}
				if !slices.Equal(codes, []string{"ACME", "Globex", "Initech"}) {
					t.Errorf("ListTenants codes = %v", codes)
				}
			})

			t.Run("register into a tenant", func(t *testing.T) {
				r := reg("member@acme.example")
				r.TenantID = acme.ID
				res := mustRegister(t, h.e, r)
				if res.User.TenantID != acme.ID || res.Tenant != nil {
					t.Errorf("user tenant %q, new tenant %+v", res.User.TenantID, res.Tenant)
				}
				if u, err := h.env.store.GetUser(ctx, res.User.ID); err != nil || u.TenantID != acme.ID {
					t.Errorf("stored = %+v, %v", u, err)
				}
				if p, err := h.e.AuthenticateToken(ctx, res.Token); err != nil || p.TenantID != acme.ID {
					t.Errorf("token principal = %+v, %v", p, err)
				}
			})

			t.Run("register into a missing tenant writes nothing", func(t *testing.T) {
				before := h.env.snapshot(t)
				r := reg("orphan@example.com")
				r.TenantID = store.NewID(time.Now())
				r.Mail = &engine.MailSpec{Template: mail.MustParseTemplate("s", "{{.Link}}", ""), Link: func(s string) string { return s }}
				res, err := h.e.Register(ctx, r)
				if err == nil || res != nil {
					t.Fatalf("Register into a missing tenant = %+v, %v", res, err)
				}
				if !errors.Is(err, store.ErrNotFound) {
					t.Errorf("err = %v, want one wrapping store.ErrNotFound", err)
				}
				if h.env.snapshot(t) != before {
					t.Error("store changed")
				}
				if _, err := h.env.store.UserIDByEmail(ctx, "orphan@example.com"); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("orphan user exists: %v", err)
				}
			})
		})
	}
}

// TestSetPasswordNotIdentifier: SetPassword promises the policy check, and
// password.NIST() refuses a password equal to the e-mail or login (as
// Register does); a set-password token must not accept one either, and the
// refusal must leave the token usable.
func TestSetPasswordNotIdentifier(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			h := newHarness(t, be.open(t))
			r := reg("Invitee.Name@Example.com")
			r.Login = "invitee-login"
			r.Password, r.NoPassword = "", true
			r.UserToken = &engine.TokenSpec{Purpose: engine.PurposeSetPassword, UUIDShape: true}
			res := mustRegister(t, h.e, r)
			for _, pw := range []string{"invitee.name@example.com", " INVITEE-LOGIN "} {
				_, err := h.e.SetPassword(ctx, res.UserToken, engine.PurposeSetPassword, pw, password.NIST())
				var ve *engine.ValidationError
				if !errors.As(err, &ve) || len(ve.Fields) != 1 || ve.Fields[0].Rule != password.RuleNotIdentifier {
					t.Errorf("SetPassword(%q) = %v, want ValidationError{password/%s}", pw, err, password.RuleNotIdentifier)
				}
			}
			if _, err := h.e.SetPassword(ctx, res.UserToken, engine.PurposeSetPassword, goodPassword, password.NIST()); err != nil {
				t.Errorf("token unusable after refused passwords: %v", err)
			}
		})
	}
}
