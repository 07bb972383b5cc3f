package engine_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/password"
	"github.com/caddyregister/caddyregister/caddyregister/ratelimit"
	"github.com/caddyregister/caddyregister/caddyregister/store"
	"github.com/caddyregister/caddyregister/caddyregister/store/boltstore"
	"github.com/caddyregister/caddyregister/caddyregister/store/redisstore"
	"github.com/caddyregister/caddyregister/caddyregister/token"
	"github.com/caddyregister/caddyregister/internal/testredis"
)

// cheap keeps argon2id fast enough for -race; benchmarks use the defaults.
var cheap = password.Argon2id{MemoryKiB: 1024, Time: 1, Threads: 1}

const goodPassword = "correct horse battery staple"

// ---------------------------------------------------------------------------
// Shared redis-server and backends.

var (
	sharedOnce sync.Once
	sharedSrv  *testredis.Server
	sharedErr  error
	nsSeq      atomic.Int64
)

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedSrv != nil {
		sharedSrv.Stop()
	}
	os.Exit(code)
}

// redisServer returns the package's shared redis-server; tests that kill
// their server start their own with testredis.Start.
func redisServer(tb testing.TB) *testredis.Server {
	tb.Helper()
	sharedOnce.Do(func() { sharedSrv, sharedErr = testredis.StartServer() })
	if sharedErr != nil {
		tb.Fatalf("testredis: %v", sharedErr)
	}
	return sharedSrv
}

func uniqueNS() string { return fmt.Sprintf("engt%d", nsSeq.Add(1)) }

// env is one backend instance: the store, its limiter and a dump of
// everything the store has persisted (to prove that failures write nothing).
type env struct {
	store    store.Store
	limiter  ratelimit.Limiter
	snapshot func(t *testing.T) string
	// reopen returns a second store handle on the same data, as a second
	// instance would have (the same handle for bbolt, which is single-process).
	reopen func(t *testing.T) store.Store
}

type backend struct {
	name string
	open func(t *testing.T) *env
}

func backends() []backend {
	return []backend{
		{"redis", openRedis},
		{"embedded", openBolt},
	}
}

func openRedisOn(t *testing.T, srv *testredis.Server, ns string) *redisstore.Store {
	t.Helper()
	st, err := redisstore.Open(srv.URL(0), ns)
	if err != nil {
		t.Fatalf("redisstore.Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func openRedis(t *testing.T) *env {
	t.Helper()
	srv := redisServer(t)
	ns := uniqueNS()
	st := openRedisOn(t, srv, ns)
	return &env{
		store:   st,
		limiter: ratelimit.NewRedis(st.Client(), "{"+ns+"}:"),
		snapshot: func(t *testing.T) string {
			t.Helper()
			ctx := context.Background()
			c := st.Client()
			var keys []string
			iter := c.Scan(ctx, 0, st.Key("*"), 1000).Iterator()
			for iter.Next(ctx) {
				keys = append(keys, iter.Val())
			}
			if err := iter.Err(); err != nil {
				t.Fatalf("SCAN: %v", err)
			}
			sort.Strings(keys)
			var b strings.Builder
			for _, k := range keys {
				var v any
				var err error
				switch typ := c.Type(ctx, k).Val(); typ {
				case "set":
					var m []string
					m, err = c.SMembers(ctx, k).Result()
					sort.Strings(m)
					v = m
				case "zset":
					v, err = c.ZRangeWithScores(ctx, k, 0, -1).Result()
				default:
					v, err = c.Get(ctx, k).Result()
				}
				if err != nil {
					t.Fatalf("read %s: %v", k, err)
				}
				fmt.Fprintf(&b, "%s=%v\n", k, v)
			}
			return b.String()
		},
		reopen: func(t *testing.T) store.Store { return openRedisOn(t, srv, ns) },
	}
}

func openBolt(t *testing.T) *env {
	t.Helper()
	path := t.TempDir() + "/r.db"
	st, err := boltstore.Open(path)
	if err != nil {
		t.Fatalf("boltstore.Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return &env{
		store:   st,
		limiter: ratelimit.NewMemory(),
		snapshot: func(t *testing.T) string {
			t.Helper()
			// bbolt writes the file only on commit, so identical bytes mean
			// nothing was written; the raw bytes also hold every record.
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		},
		reopen: func(*testing.T) store.Store { return st },
	}
}

// ---------------------------------------------------------------------------
// Observers.

// hashCounter is a password.Observer counting hashes and verifications.
type hashCounter struct {
	mu     sync.Mutex
	hashes map[string]int
}

func (h *hashCounter) ObserveQueueWait(time.Duration) {}
func (h *hashCounter) ObserveHash(name string, _ time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.hashes == nil {
		h.hashes = map[string]int{}
	}
	h.hashes[name]++
}

func (h *hashCounter) total() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, v := range h.hashes {
		n += v
	}
	return n
}

// metrics is a small engine.Metrics that counts calls.
type metrics struct {
	mu            sync.Mutex
	registrations map[string]int // "contract/outcome"
	rateLimited   map[string]int
}

func (m *metrics) Registration(contract, outcome string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.registrations == nil {
		m.registrations = map[string]int{}
	}
	m.registrations[contract+"/"+outcome]++
}

func (m *metrics) RateLimited(route string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rateLimited == nil {
		m.rateLimited = map[string]int{}
	}
	m.rateLimited[route]++
}

func (m *metrics) reg(key string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.registrations[key]
}

func (m *metrics) limited(route string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rateLimited[route]
}

// ---------------------------------------------------------------------------
// Engine construction.

type harness struct {
	e       *engine.Engine
	env     *env
	hashes  *hashCounter
	metrics *metrics
	logs    *observer.ObservedLogs
}

// newHarness builds a started engine on env; opts adjust the config.
func newHarness(t *testing.T, ev *env, opts ...func(*engine.Config)) *harness {
	t.Helper()
	h := &harness{env: ev, hashes: &hashCounter{}, metrics: &metrics{}}
	core, logs := observer.New(zapcore.DebugLevel)
	h.logs = logs
	cfg := engine.Config{
		Store:   ev.store,
		Limiter: ev.limiter,
		Hasher:  cheap,
		Pool:    password.NewPool(password.PoolConfig{MaxWait: 30 * time.Second, Observer: h.hashes}),
		Logger:  zap.New(core),
		Metrics: h.metrics,
	}
	for _, o := range opts {
		o(&cfg)
	}
	e, err := engine.New(cfg)
	if err != nil {
		t.Fatalf("engine.New: %v", err)
	}
	// Load the signing key now, so later snapshots only see registrations.
	if err := e.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	h.e = e
	return h
}

func reg(email string) engine.Registration {
	return engine.Registration{
		Contract:   "test",
		ClientIP:   "192.0.2.1",
		Email:      email,
		Password:   goodPassword,
		Policy:     password.NIST(),
		IssueToken: true,
	}
}

func mustRegister(t *testing.T, e *engine.Engine, r engine.Registration) *engine.Registered {
	t.Helper()
	res, err := e.Register(context.Background(), r)
	if err != nil {
		t.Fatalf("Register(%s): %v", r.Email, err)
	}
	return res
}

// ---------------------------------------------------------------------------
// Register.

func TestRegister(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()

			t.Run("user", func(t *testing.T) {
				h := newHarness(t, be.open(t))
				r := reg("Jane.Doe@Example.com")
				r.Login = "jdoe"
				r.FirstName, r.LastName = "Jane", "Doe"
				res := mustRegister(t, h.e, r)

				u := res.User
				if !store.IsID(u.ID) {
					t.Errorf("user id %q is not ObjectID-shaped", u.ID)
				}
				if res.Tenant != nil || u.TenantID != "" {
					t.Errorf("tenant %+v / %q without NewTenant", res.Tenant, u.TenantID)
				}
				got, err := h.env.store.GetUser(ctx, u.ID)
				if err != nil {
					t.Fatalf("GetUser: %v", err)
				}
				if got.Email != "Jane.Doe@Example.com" || got.EmailKey != "jane.doe@example.com" ||
					got.Login != "jdoe" || got.LoginKey != "jdoe" || got.FirstName != "Jane" || got.Contract != "test" {
					t.Errorf("stored user = %+v", got)
				}
				if got.Status != store.StatusPending {
					t.Errorf("status = %q, want pending", got.Status)
				}
				if got.Permissions == nil || len(got.Permissions) != 0 {
					t.Errorf("permissions = %#v, want []", got.Permissions)
				}
				if !strings.HasPrefix(got.PasswordHash, "$argon2id$v=19$m=1024,t=1,p=1$") {
					t.Errorf("hash = %q, want argon2id PHC with the configured params", got.PasswordHash)
				}
				if ok, err := password.Verify(got.PasswordHash, []byte(goodPassword)); !ok || err != nil {
					t.Errorf("stored hash does not verify: %v %v", ok, err)
				}
				if id, err := h.env.store.UserIDByEmail(ctx, "jane.doe@example.com"); err != nil || id != u.ID {
					t.Errorf("UserIDByEmail = %q, %v", id, err)
				}
				if id, err := h.env.store.UserIDByLogin(ctx, "jdoe"); err != nil || id != u.ID {
					t.Errorf("UserIDByLogin = %q, %v", id, err)
				}
				dump := h.env.snapshot(t)
				if !strings.Contains(dump, got.PasswordHash) {
					t.Error("snapshot does not contain the stored record (snapshot helper broken?)")
				}
				if strings.Contains(dump, goodPassword) {
					t.Error("plain password found in persisted data")
				}

				if res.Token == "" {
					t.Fatal("no token issued")
				}
				p, err := h.e.AuthenticateToken(ctx, res.Token)
				if err != nil {
					t.Fatalf("AuthenticateToken: %v", err)
				}
				if p.Kind != engine.KindUser || p.ID != u.ID || p.Status != "pending" || len(p.Permissions) != 0 || p.TenantID != "" {
					t.Errorf("principal = %+v", p)
				}
				if p.Has("anything") {
					t.Error("pending user holds a permission")
				}

				if n := h.hashes.total(); n != 1 {
					t.Errorf("%d hashes for one registration, want 1", n)
				}
				if n := h.metrics.reg("test/created"); n != 1 {
					t.Errorf("Registration(test, created) called %d times", n)
				}
				// The log line masks the address and never carries the password.
				entries := h.logs.FilterMessage("registration").All()
				if len(entries) != 1 {
					t.Fatalf("%d registration log lines", len(entries))
				}
				if entries[0].Level != zapcore.InfoLevel {
					t.Errorf("registration logged at %s, want info", entries[0].Level)
				}
				fields := entries[0].ContextMap()
				if fields["email"] != "J***@Example.com" || fields["outcome"] != "created" || fields["user_id"] != u.ID {
					t.Errorf("log fields = %v", fields)
				}
				if line := fmt.Sprint(fields); strings.Contains(line, goodPassword) || strings.Contains(line, "Jane.Doe@") {
					t.Errorf("log leaks secrets: %s", line)
				}
			})

			t.Run("no token unless asked", func(t *testing.T) {
				h := newHarness(t, be.open(t))
				r := reg("notoken@example.com")
				r.IssueToken = false
				if res := mustRegister(t, h.e, r); res.Token != "" {
					t.Errorf("token issued without IssueToken")
				}
			})

			t.Run("tenant", func(t *testing.T) {
				h := newHarness(t, be.open(t))
				r := reg("owner@acme.example")
				r.Tenant = &engine.NewTenant{Company: "  Acme S.L. ", VATID: "es 12.345.678-x", Address: "Calle 1", CreditBalance: "10.50"}
				res := mustRegister(t, h.e, r)
				u, tn := res.User, res.Tenant
				if tn == nil {
					t.Fatal("no tenant returned")
				}
				if u.TenantID != tn.ID || !store.IsID(tn.ID) {
					t.Errorf("user.TenantID = %q, tenant.ID = %q", u.TenantID, tn.ID)
				}
				if tn.CreatedBy != u.ID {
					t.Errorf("tenant.CreatedBy = %q, want %q", tn.CreatedBy, u.ID)
				}
				st, err := h.env.store.GetTenant(ctx, tn.ID)
				if err != nil {
					t.Fatalf("GetTenant: %v", err)
				}
				if st.CreatedBy != u.ID || st.Code != "vat-ES12345678X" || st.Name != "Acme S.L." ||
					st.Billing == nil || st.Billing.VATKey != "ES12345678X" || st.Billing.VATID != "es 12.345.678-x" ||
					st.Billing.Company != "Acme S.L." || st.Billing.CreditBalance != "10.50" {
					t.Errorf("stored tenant = %+v billing %+v", st, st.Billing)
				}
				if id, err := h.env.store.TenantIDByVAT(ctx, "ES12345678X"); err != nil || id != tn.ID {
					t.Errorf("TenantIDByVAT = %q, %v", id, err)
				}
				su, err := h.env.store.GetUser(ctx, u.ID)
				if err != nil || su.TenantID != tn.ID {
					t.Fatalf("stored user tenant = %v, %v", su, err)
				}
				p, err := h.e.AuthenticateToken(ctx, res.Token)
				if err != nil {
					t.Fatal(err)
				}
				if p.TenantID != tn.ID || p.Status != "pending" || len(p.Permissions) != 0 {
					t.Errorf("principal = %+v", p)
				}
			})

			t.Run("active user carries permissions", func(t *testing.T) {
				h := newHarness(t, be.open(t))
				r := reg("active@example.com")
				r.Status = store.StatusActive
				r.Permissions = []string{"orders:read"}
				res := mustRegister(t, h.e, r)
				p, err := h.e.AuthenticateToken(ctx, res.Token)
				if err != nil {
					t.Fatal(err)
				}
				if p.Status != "active" || !slices.Equal(p.Permissions, []string{"orders:read"}) {
					t.Errorf("principal = %+v", p)
				}
			})
		})
	}
}

type fieldRule struct{ Field, Rule string }

func TestRegisterValidation(t *testing.T) {
	contractErr := func(fields ...[3]string) *engine.ValidationError {
		v := &engine.ValidationError{}
		for _, f := range fields {
			v.Add(f[0], f[1], f[2])
		}
		return v
	}
	cases := []struct {
		name string
		mod  func(*engine.Registration)
		want []fieldRule
	}{
		{"empty email", func(r *engine.Registration) { r.Email = "" },
			[]fieldRule{{"email", "email"}}},
		{"bad email", func(r *engine.Registration) { r.Email = "not-an-email" },
			[]fieldRule{{"email", "email"}}},
		{"display name", func(r *engine.Registration) { r.Email = "Jane <jane@example.com>" },
			[]fieldRule{{"email", "email"}}},
		{"no dot in domain", func(r *engine.Registration) { r.Email = "jane@localhost" },
			[]fieldRule{{"email", "email"}}},
		{"short password", func(r *engine.Registration) { r.Password = "short" },
			[]fieldRule{{"password", password.RuleMinLength}}},
		{"long password", func(r *engine.Registration) { r.Password = strings.Repeat("x", 129) },
			[]fieldRule{{"password", password.RuleMaxLength}}},
		{"password is email", func(r *engine.Registration) { r.Password = " " + strings.ToUpper(r.Email) },
			[]fieldRule{{"password", password.RuleNotIdentifier}}},
		{"password is login", func(r *engine.Registration) { r.Login = "JaneDoe2000"; r.Password = "janedoe2000" },
			[]fieldRule{{"password", password.RuleNotIdentifier}}},
		{"composition", func(r *engine.Registration) { r.Policy.MinDigits = 2 },
			[]fieldRule{{"password", password.RuleMinDigits}}},
		{"invalid utf-8", func(r *engine.Registration) { r.Password = "abc\xffdefghij" },
			[]fieldRule{{"password", password.RuleEncoding}}},
		{"email and password", func(r *engine.Registration) { r.Email = "bad"; r.Password = "short" },
			[]fieldRule{{"email", "email"}, {"password", password.RuleMinLength}}},
		{"tenant without vat and company", func(r *engine.Registration) { r.Tenant = &engine.NewTenant{} },
			[]fieldRule{{"billing.vatId", "required"}, {"billing.company", "required"}}},
		{"tenant vat of separators only", func(r *engine.Registration) { r.Tenant = &engine.NewTenant{Company: "Acme", VATID: " -.- "} },
			[]fieldRule{{"billing.vatId", "required"}}},
		{"contract email error not re-checked", func(r *engine.Registration) {
			r.Email = "bad"
			r.Invalid = contractErr([3]string{"email", "format", "contract says so"})
		}, []fieldRule{{"email", "format"}}},
		{"contract password error not re-checked", func(r *engine.Registration) {
			r.Password = "short"
			r.Invalid = contractErr([3]string{"password", "weak", "contract says so"})
		}, []fieldRule{{"password", "weak"}}},
		{"contract vat error not re-checked", func(r *engine.Registration) {
			r.Tenant = &engine.NewTenant{Company: "Acme"}
			r.Invalid = contractErr([3]string{"billing.vatId", "format", "contract says so"})
		}, []fieldRule{{"billing.vatId", "format"}}},
		{"contract error alone", func(r *engine.Registration) {
			r.Invalid = contractErr([3]string{"name", "required", "name is required"})
		}, []fieldRule{{"name", "required"}}},
		{"contract errors merged first", func(r *engine.Registration) {
			r.Email = "bad"
			r.Password = "short"
			r.Invalid = contractErr([3]string{"name", "required", "name is required"}, [3]string{"phone", "format", "bad phone"})
		}, []fieldRule{{"name", "required"}, {"phone", "format"}, {"email", "email"}, {"password", password.RuleMinLength}}},
		{"empty contract error", func(r *engine.Registration) {
			r.Email = "bad"
			r.Invalid = &engine.ValidationError{}
		}, []fieldRule{{"email", "email"}}},
	}
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			h := newHarness(t, be.open(t))
			// One real user, so "unchanged" compares against a non-empty store.
			mustRegister(t, h.e, reg("existing@example.com"))
			before := h.env.snapshot(t)
			hashesBefore := h.hashes.total()
			for i, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					r := reg(fmt.Sprintf("user%d@example.com", i))
					tc.mod(&r)
					var invalidBefore int
					if r.Invalid != nil {
						invalidBefore = len(r.Invalid.Fields)
					}
					res, err := h.e.Register(context.Background(), r)
					if res != nil {
						t.Fatalf("registered %+v", res.User)
					}
					var ve *engine.ValidationError
					if !errors.As(err, &ve) {
						t.Fatalf("err = %v (%T), want *ValidationError", err, err)
					}
					var got []fieldRule
					for _, f := range ve.Fields {
						got = append(got, fieldRule{f.Field, f.Rule})
						if f.Message == "" {
							t.Errorf("field %s has no message", f.Field)
						}
					}
					if !slices.Equal(got, tc.want) {
						t.Errorf("fields = %v, want %v", got, tc.want)
					}
					if engine.Outcome(err) != "invalid" {
						t.Errorf("Outcome = %q", engine.Outcome(err))
					}
					if r.Invalid != nil && len(r.Invalid.Fields) != invalidBefore {
						t.Errorf("Register mutated the contract's ValidationError")
					}
					if after := h.env.snapshot(t); after != before {
						t.Errorf("store changed after a rejected registration")
					}
					if n := h.hashes.total(); n != hashesBefore {
						t.Errorf("%d hashes for an invalid registration", n-hashesBefore)
					}
				})
			}
			if n := h.metrics.reg("test/invalid"); n != len(cases) {
				t.Errorf("Registration(test, invalid) = %d, want %d", n, len(cases))
			}
		})
	}
}

func TestRegisterConflicts(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			h := newHarness(t, be.open(t))
			first := reg("jane@example.com")
			first.Login = "jdoe"
			first.Tenant = &engine.NewTenant{Company: "Acme", VATID: "ES12345678X"}
			mustRegister(t, h.e, first)
			before := h.env.snapshot(t)
			hashesBefore := h.hashes.total()

			cases := []struct {
				name      string
				r         engine.Registration
				wantField string // ConflictError field, or "" for ErrTenantExists
				outcome   string
			}{
				{"same email", reg("jane@example.com"), "email", "duplicate"},
				{"email differs in case and space", reg(" JANE@Example.COM "), "email", "duplicate"},
				{"same login", func() engine.Registration { r := reg("other@example.com"); r.Login = "JDoe"; return r }(), "login", "duplicate"},
				{"same vat", func() engine.Registration {
					r := reg("other@example.com")
					r.Tenant = &engine.NewTenant{Company: "Acme Copycat", VATID: "es 12.345.678-x"}
					return r
				}(), "", "tenant_exists"},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					res, err := h.e.Register(context.Background(), tc.r)
					if res != nil {
						t.Fatalf("registered %+v", res.User)
					}
					if tc.wantField == "" {
						if !errors.Is(err, engine.ErrTenantExists) {
							t.Fatalf("err = %v, want ErrTenantExists", err)
						}
					} else {
						var ce *store.ConflictError
						if !errors.As(err, &ce) || ce.Field != tc.wantField {
							t.Fatalf("err = %v (%T), want ConflictError{%s}", err, err, tc.wantField)
						}
					}
					if o := engine.Outcome(err); o != tc.outcome {
						t.Errorf("Outcome = %q, want %q", o, tc.outcome)
					}
					if after := h.env.snapshot(t); after != before {
						t.Error("store changed after a conflicting registration")
					}
					if n := h.hashes.total(); n != hashesBefore {
						t.Errorf("%d hashes for a conflicting registration", n-hashesBefore)
					}
				})
			}
		})
	}
}

// TestHashOnlyAfterCheapChecks counts hashes through the pool's observer:
// only a registration that can still succeed may pay for one.
func TestHashOnlyAfterCheapChecks(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			h := newHarness(t, be.open(t))
			mustRegister(t, h.e, reg("first@example.com"))
			if n := h.hashes.total(); n != 1 {
				t.Fatalf("%d hashes after one registration", n)
			}
			for _, r := range []engine.Registration{
				reg("first@example.com"),
				reg("FIRST@example.com"),
				reg("invalid"),
				func() engine.Registration { r := reg("second@example.com"); r.Password = "x"; return r }(),
			} {
				if _, err := h.e.Register(context.Background(), r); err == nil {
					t.Fatalf("Register(%q) succeeded", r.Email)
				}
			}
			if n := h.hashes.total(); n != 1 {
				t.Errorf("%d hashes in all, want 1: rejected registrations hashed", n)
			}
			mustRegister(t, h.e, reg("second@example.com"))
			if n := h.hashes.total(); n != 2 {
				t.Errorf("%d hashes after two registrations", n)
			}
		})
	}
}

func TestRegisterOverload(t *testing.T) {
	slow := password.Argon2id{MemoryKiB: 65536, Time: 3, Threads: 1}
	const n = 4
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			h := newHarness(t, be.open(t), func(c *engine.Config) {
				c.Hasher = slow
				c.Pool = password.NewPool(password.PoolConfig{Size: 1, MaxWait: time.Millisecond})
			})
			errs := make([]error, n)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					<-start
					_, errs[i] = h.e.Register(context.Background(), reg(fmt.Sprintf("load%d@example.com", i)))
				})
			}
			close(start)
			wg.Wait()

			var ok, shed int
			ctx := context.Background()
			for i, err := range errs {
				email := fmt.Sprintf("load%d@example.com", i)
				_, lookupErr := h.env.store.UserIDByEmail(ctx, email)
				switch {
				case err == nil:
					ok++
					if lookupErr != nil {
						t.Errorf("%s registered but not stored: %v", email, lookupErr)
					}
				case errors.Is(err, password.ErrOverloaded):
					shed++
					var oe *password.OverloadedError
					if !errors.As(err, &oe) || oe.RetryAfter < time.Second {
						t.Errorf("overload error %v lacks a Retry-After of at least 1s", err)
					}
					if engine.Outcome(err) != "overloaded" {
						t.Errorf("Outcome = %q", engine.Outcome(err))
					}
					if !errors.Is(lookupErr, store.ErrNotFound) {
						t.Errorf("%s was shed but written (lookup err %v)", email, lookupErr)
					}
				default:
					t.Errorf("%s: unexpected error %v", email, err)
				}
			}
			if ok < 1 || shed < 1 {
				t.Errorf("%d created, %d shed; want at least one of each", ok, shed)
			}
			if got := h.metrics.reg("test/overloaded"); got != shed {
				t.Errorf("Registration(test, overloaded) = %d, want %d", got, shed)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Signing key.

func TestSigningKeySharedThroughStore(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			ev := be.open(t)
			// Instances share one config, so one hash: admin tokens are
			// bound to the configured hash.
			opsHash := mustHash(t, cheap, "ops-secret")
			mk := func(st store.Store) *engine.Engine {
				e, err := engine.New(engine.Config{Store: st, Hasher: cheap, Pool: password.NewPool(password.PoolConfig{}),
					Admins: []engine.Admin{{Login: "ops", Hash: opsHash, Permissions: []string{"*"}}}})
				if err != nil {
					t.Fatal(err)
				}
				return e
			}
			e1, e2 := mk(ev.store), mk(ev.reopen(t))
			// Both instances start at once: LoadOrCreateSecret must pick one key.
			var wg sync.WaitGroup
			var err1, err2 error
			wg.Go(func() { err1 = e1.Start(ctx) })
			wg.Go(func() { err2 = e2.Start(ctx) })
			wg.Wait()
			if err1 != nil || err2 != nil {
				t.Fatalf("Start: %v / %v", err1, err2)
			}
			j1, err := e1.JWKS(ctx)
			if err != nil {
				t.Fatal(err)
			}
			j2, err := e2.JWKS(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if string(j1) != string(j2) || !strings.Contains(string(j1), `"kty":"OKP"`) {
				t.Fatalf("JWKS differ or malformed:\n%s\n%s", j1, j2)
			}

			res := mustRegister(t, e1, reg("shared@example.com"))
			if p, err := e2.AuthenticateToken(ctx, res.Token); err != nil || p.ID != res.User.ID {
				t.Errorf("e2 rejects e1's user token: %+v %v", p, err)
			}
			u, _, err := e2.Me(ctx, res.Token)
			if err != nil || u.ID != res.User.ID {
				t.Errorf("e2.Me = %+v, %v", u, err)
			}
			adminTok, err := e2.IssueToken(ctx, &engine.Principal{Kind: engine.KindAdmin, ID: "ops", Permissions: []string{"*"}})
			if err != nil {
				t.Fatal(err)
			}
			if p, err := e1.AuthenticateToken(ctx, adminTok); err != nil || p.Kind != engine.KindAdmin {
				t.Errorf("e1 rejects e2's admin token: %+v %v", p, err)
			}

			// An engine with its own configured key is a different issuer.
			other, err := engine.New(engine.Config{Store: ev.store, Hasher: cheap, Pool: password.NewPool(password.PoolConfig{}), SigningKey: mustKey(t)})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := other.AuthenticateToken(ctx, res.Token); !errors.Is(err, engine.ErrUnauthenticated) {
				t.Errorf("token accepted under a different key: %v", err)
			}
		})
	}
}

func TestStartWithRedisDown(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srv := testredis.Start(t)
	st := openRedisOn(t, srv, uniqueNS())
	hc := &hashCounter{}
	m := &metrics{}
	e, err := engine.New(engine.Config{Store: st, Limiter: ratelimit.NewRedis(st.Client(), "{x}:"), Hasher: cheap,
		Pool: password.NewPool(password.PoolConfig{Observer: hc}), Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	srv.Kill()

	err = e.Start(ctx)
	if !errors.Is(err, engine.ErrNotReady) || !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Start on a dead redis = %v, want ErrNotReady wrapping ErrUnavailable", err)
	}
	if _, err := e.JWKS(ctx); !errors.Is(err, engine.ErrNotReady) {
		t.Errorf("JWKS while down = %v", err)
	}
	if _, err := e.AuthenticateToken(ctx, "x.y.z"); !errors.Is(err, engine.ErrNotReady) {
		t.Errorf("AuthenticateToken while down = %v, want ErrNotReady", err)
	}
	_, err = e.Register(ctx, reg("down@example.com"))
	if err == nil || engine.Outcome(err) != "unavailable" {
		t.Errorf("Register while down = %v (outcome %q)", err, engine.Outcome(err))
	}
	if hc.total() != 0 {
		t.Errorf("hashed while the store was down")
	}

	if err := srv.Restart(); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	res, err := e.Register(ctx, reg("up@example.com"))
	if err != nil {
		t.Fatalf("Register after restart: %v", err)
	}
	if res.Token == "" {
		t.Fatal("no token after lazy key load")
	}
	if p, err := e.AuthenticateToken(ctx, res.Token); err != nil || p.ID != res.User.ID {
		t.Errorf("token after restart: %+v %v", p, err)
	}
	if m.reg("test/unavailable") != 1 || m.reg("test/created") != 1 {
		t.Errorf("metrics = %v", m.registrations)
	}
}

// ---------------------------------------------------------------------------
// Admin authentication.

func mustKey(t testing.TB) *token.Key {
	t.Helper()
	k, err := token.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustHash(t testing.TB, h password.Hasher, pw string) string {
	t.Helper()
	s, err := h.Hash([]byte(pw))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAuthenticateBasic(t *testing.T) {
	limit := ratelimit.Limit{Rate: 3, Period: time.Minute}
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			admins := []engine.Admin{
				{Login: "root", Hash: mustHash(t, password.Bcrypt{Cost: 4}, "bcrypt-secret"), Permissions: []string{"*"}},
				{Login: "auditor", Hash: mustHash(t, cheap, "argon-secret"), Permissions: []string{"users:read"}},
			}
			mk := func(t *testing.T) *harness {
				return newHarness(t, be.open(t), func(c *engine.Config) {
					c.Admins = admins
					c.AdminLoginLimit = limit
				})
			}

			t.Run("credentials", func(t *testing.T) {
				h := mk(t)
				cases := []struct {
					name, ip, login, pass string
					wantPerms             []string
				}{
					{"bcrypt admin", "10.0.0.1", "root", "bcrypt-secret", []string{"*"}},
					{"argon2id admin", "10.0.0.2", "auditor", "argon-secret", []string{"users:read"}},
					{"wrong password", "10.0.0.3", "root", "bcrypt-secreT", nil},
					{"other admin's password", "10.0.0.4", "auditor", "bcrypt-secret", nil},
					{"unknown login", "10.0.0.5", "nobody", "bcrypt-secret", nil},
					{"empty password", "10.0.0.6", "auditor", "", nil},
				}
				for _, tc := range cases {
					t.Run(tc.name, func(t *testing.T) {
						before := h.hashes.total()
						p, err := h.e.AuthenticateBasic(ctx, tc.ip, tc.login, tc.pass)
						if tc.wantPerms == nil {
							if !errors.Is(err, engine.ErrUnauthenticated) || p != nil {
								t.Fatalf("= %+v, %v; want ErrUnauthenticated", p, err)
							}
						} else {
							if err != nil {
								t.Fatal(err)
							}
							if p.Kind != engine.KindAdmin || p.ID != tc.login || p.Status != "active" || !slices.Equal(p.Permissions, tc.wantPerms) {
								t.Errorf("principal = %+v", p)
							}
						}
						// Every uncached attempt, unknown logins included, costs one hash.
						if n := h.hashes.total() - before; n != 1 {
							t.Errorf("%d hashes, want 1", n)
						}
					})
				}
			})

			t.Run("success is cached", func(t *testing.T) {
				h := mk(t)
				for _, a := range []struct{ login, pass string }{{"root", "bcrypt-secret"}, {"auditor", "argon-secret"}} {
					before := h.hashes.total()
					p1, err := h.e.AuthenticateBasic(ctx, "10.1.0.1", a.login, a.pass)
					if err != nil {
						t.Fatal(err)
					}
					p2, err := h.e.AuthenticateBasic(ctx, "10.1.0.2", a.login, a.pass)
					if err != nil {
						t.Fatal(err)
					}
					if n := h.hashes.total() - before; n != 1 {
						t.Errorf("%s: %d hashes for two logins with the same credentials, want 1", a.login, n)
					}
					if p1.ID != p2.ID || !slices.Equal(p1.Permissions, p2.Permissions) {
						t.Errorf("cached principal %+v differs from %+v", p2, p1)
					}
					// The cached principal must not share state with the first one.
					p2.Permissions[0] = "mutated"
					p3, _ := h.e.AuthenticateBasic(ctx, "10.1.0.3", a.login, a.pass)
					if p3.Permissions[0] == "mutated" {
						t.Errorf("principals share the admin's permission slice")
					}
				}
				// The cache is keyed by password too: a wrong one still hashes and fails.
				before := h.hashes.total()
				if _, err := h.e.AuthenticateBasic(ctx, "10.1.0.4", "root", "guess"); !errors.Is(err, engine.ErrUnauthenticated) {
					t.Errorf("wrong password after a cached success: %v", err)
				}
				if h.hashes.total()-before != 1 {
					t.Error("wrong password was not verified")
				}
			})

			t.Run("rate limited per ip", func(t *testing.T) {
				h := mk(t)
				// Cache a good login first: cached logins bypass the limiter.
				if _, err := h.e.AuthenticateBasic(ctx, "10.2.0.9", "root", "bcrypt-secret"); err != nil {
					t.Fatal(err)
				}
				const ip = "10.2.0.1"
				for i := range limit.Rate {
					// Different logins, so only the per-IP bucket fills.
					if _, err := h.e.AuthenticateBasic(ctx, ip, fmt.Sprintf("guess%d", i), "x"); !errors.Is(err, engine.ErrUnauthenticated) {
						t.Fatalf("attempt %d: %v", i+1, err)
					}
				}
				before := h.hashes.total()
				_, err := h.e.AuthenticateBasic(ctx, ip, "auditor", "argon-secret")
				var rl *engine.RateLimitedError
				if !errors.As(err, &rl) || rl.RetryAfter < time.Second {
					t.Fatalf("attempt %d = %v, want RateLimitedError with RetryAfter >= 1s", limit.Rate+1, err)
				}
				if h.hashes.total() != before {
					t.Error("rate-limited attempt still hashed")
				}
				if h.metrics.limited("admin-login-ip") != 1 {
					t.Errorf("RateLimited metrics = %v", h.metrics.rateLimited)
				}
				if _, err := h.e.AuthenticateBasic(ctx, "10.2.0.2", "auditor", "argon-secret"); err != nil {
					t.Errorf("another IP is limited too: %v", err)
				}
				if _, err := h.e.AuthenticateBasic(ctx, ip, "root", "bcrypt-secret"); err != nil {
					t.Errorf("cached credentials refused from a limited IP: %v", err)
				}
			})

			t.Run("permissions", func(t *testing.T) {
				h := mk(t)
				root, err := h.e.AuthenticateBasic(ctx, "10.4.0.1", "root", "bcrypt-secret")
				if err != nil {
					t.Fatal(err)
				}
				auditor, err := h.e.AuthenticateBasic(ctx, "10.4.0.1", "auditor", "argon-secret")
				if err != nil {
					t.Fatal(err)
				}
				cases := []struct {
					p    *engine.Principal
					perm string
					want bool
				}{
					{root, "users:read", true},
					{root, "anything:at:all", true},
					{root, "*", true},
					{auditor, "users:read", true},
					{auditor, "users:write", false},
					{auditor, "*", false},
					{auditor, "", false},
					{nil, "users:read", false},
				}
				for _, tc := range cases {
					if got := tc.p.Has(tc.perm); got != tc.want {
						t.Errorf("%+v.Has(%q) = %v", tc.p, tc.perm, got)
					}
					err := tc.p.Require(tc.perm)
					if tc.want && err != nil {
						t.Errorf("Require(%q) = %v", tc.perm, err)
					}
					if !tc.want && (!errors.Is(err, engine.ErrForbidden) || !strings.Contains(err.Error(), fmt.Sprintf("%q", tc.perm))) {
						t.Errorf("Require(%q) = %v, want ErrForbidden naming it", tc.perm, err)
					}
				}
			})

			t.Run("admin tokens", func(t *testing.T) {
				h := mk(t)
				p, err := h.e.AuthenticateBasic(ctx, "10.5.0.1", "auditor", "argon-secret")
				if err != nil {
					t.Fatal(err)
				}
				tok, err := h.e.IssueToken(ctx, p)
				if err != nil {
					t.Fatal(err)
				}
				got, err := h.e.AuthenticateToken(ctx, tok)
				if err != nil {
					t.Fatal(err)
				}
				if got.Kind != engine.KindAdmin || got.ID != "auditor" || got.Status != "active" || !slices.Equal(got.Permissions, []string{"users:read"}) {
					t.Errorf("token principal = %+v", got)
				}
				// Same store, so same signing key; but "auditor" is not
				// configured there, so its token must be refused.
				other, err := engine.New(engine.Config{Store: h.env.reopen(t), Hasher: cheap, Pool: password.NewPool(password.PoolConfig{}),
					Admins: []engine.Admin{admins[0]}})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := other.AuthenticateToken(ctx, tok); !errors.Is(err, engine.ErrUnauthenticated) {
					t.Errorf("other engine accepted an admin token for an unconfigured login: %v", err)
				}
				rootTok, err := h.e.IssueToken(ctx, &engine.Principal{Kind: engine.KindAdmin, ID: "root", Permissions: []string{"*"}})
				if err != nil {
					t.Fatal(err)
				}
				if p, err := other.AuthenticateToken(ctx, rootTok); err != nil || p.Kind != engine.KindAdmin || p.ID != "root" {
					t.Errorf("other engine rejects a configured admin's token: %+v %v", p, err)
				}
				for _, bad := range []string{"", "garbage", flipSigChar(tok)} {
					if _, err := h.e.AuthenticateToken(ctx, bad); !errors.Is(err, engine.ErrUnauthenticated) {
						t.Errorf("AuthenticateToken(%q) = %v", bad, err)
					}
				}
			})
		})
	}
}

func TestNewRejectsBadAdminHash(t *testing.T) {
	ev := openBolt(t)
	for _, h := range []string{"", "plaintext", "$argon2id$v=19$m=1,t=1,p=1$AAAA$AAAA", "$2a$04$short"} {
		_, err := engine.New(engine.Config{Store: ev.store, Hasher: cheap, Pool: password.NewPool(password.PoolConfig{}),
			Admins: []engine.Admin{{Login: "a", Hash: h}}})
		if err == nil {
			t.Errorf("New accepted admin hash %q", h)
		}
	}
	if _, err := engine.New(engine.Config{Hasher: cheap, Pool: password.NewPool(password.PoolConfig{})}); err == nil {
		t.Error("New without a store succeeded")
	}
}

// ---------------------------------------------------------------------------
// Me.

func TestMe(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			h := newHarness(t, be.open(t), func(c *engine.Config) {
				c.Admins = []engine.Admin{{Login: "ops", Hash: mustHash(t, cheap, "ops-secret"), Permissions: []string{"*"}}}
			})
			r := reg("me@example.com")
			r.Tenant = &engine.NewTenant{Company: "Me Ltd", VATID: "GB123456789"}
			res := mustRegister(t, h.e, r)

			t.Run("user", func(t *testing.T) {
				u, p, err := h.e.Me(ctx, res.Token)
				if err != nil {
					t.Fatal(err)
				}
				if u == nil || u.ID != res.User.ID || u.Email != "me@example.com" || u.TenantID != res.Tenant.ID {
					t.Errorf("user = %+v", u)
				}
				if p == nil || p.Kind != engine.KindUser || p.ID != res.User.ID {
					t.Errorf("principal = %+v", p)
				}
			})
			t.Run("admin", func(t *testing.T) {
				ap, err := h.e.AuthenticateBasic(ctx, "10.0.0.1", "ops", "ops-secret")
				if err != nil {
					t.Fatal(err)
				}
				tok, err := h.e.IssueToken(ctx, ap)
				if err != nil {
					t.Fatal(err)
				}
				u, p, err := h.e.Me(ctx, tok)
				if err != nil {
					t.Fatal(err)
				}
				if u != nil {
					t.Errorf("admin token yielded user %+v", u)
				}
				if p == nil || p.Kind != engine.KindAdmin || p.ID != "ops" {
					t.Errorf("principal = %+v", p)
				}
			})
			t.Run("user missing from store", func(t *testing.T) {
				tok, err := h.e.IssueToken(ctx, &engine.Principal{Kind: engine.KindUser, ID: store.NewID(time.Now()), Status: "active"})
				if err != nil {
					t.Fatal(err)
				}
				u, p, err := h.e.Me(ctx, tok)
				if !errors.Is(err, engine.ErrUnauthenticated) || u != nil || p != nil {
					t.Errorf("Me = %+v, %+v, %v; want ErrUnauthenticated", u, p, err)
				}
			})
			t.Run("bad tokens", func(t *testing.T) {
				for _, tok := range []string{"", "not.a.token"} {
					if _, _, err := h.e.Me(ctx, tok); !errors.Is(err, engine.ErrUnauthenticated) {
						t.Errorf("Me(%q) = %v", tok, err)
					}
				}
			})
		})
	}
}

// ---------------------------------------------------------------------------
// Allow.

func TestAllow(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			h := newHarness(t, be.open(t))
			two := ratelimit.Limit{Rate: 2, Period: time.Minute}

			for i := range 2 {
				if err := h.e.Allow(ctx, "register", "198.51.100.1", two); err != nil {
					t.Fatalf("call %d: %v", i+1, err)
				}
			}
			err := h.e.Allow(ctx, "register", "198.51.100.1", two)
			var rl *engine.RateLimitedError
			if !errors.As(err, &rl) {
				t.Fatalf("third call = %v, want RateLimitedError", err)
			}
			if rl.RetryAfter < time.Second || rl.RetryAfter > time.Minute {
				t.Errorf("RetryAfter = %v, want within [1s, 1m]", rl.RetryAfter)
			}
			if engine.Outcome(err) != "rate_limited" {
				t.Errorf("Outcome = %q", engine.Outcome(err))
			}
			if n := h.metrics.limited("register"); n != 1 {
				t.Errorf("RateLimited(register) = %d, want 1", n)
			}
			// Other clients and other routes have their own buckets.
			if err := h.e.Allow(ctx, "register", "198.51.100.2", two); err != nil {
				t.Errorf("other client limited: %v", err)
			}
			if err := h.e.Allow(ctx, "login", "198.51.100.1", two); err != nil {
				t.Errorf("other route limited: %v", err)
			}
			for i := range 20 {
				if err := h.e.Allow(ctx, "register", "198.51.100.1", ratelimit.Limit{}); err != nil {
					t.Fatalf("zero limit call %d: %v", i+1, err)
				}
			}
			if n := h.metrics.limited("register"); n != 1 {
				t.Errorf("RateLimited(register) = %d after zero-limit calls", n)
			}
		})
	}
	t.Run("no limiter", func(t *testing.T) {
		h := newHarness(t, openBolt(t), func(c *engine.Config) { c.Limiter = nil })
		for range 5 {
			if err := h.e.Allow(context.Background(), "r", "c", ratelimit.Limit{Rate: 1, Period: time.Hour}); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Run("redis down", func(t *testing.T) {
		srv := testredis.Start(t)
		st := openRedisOn(t, srv, uniqueNS())
		e, err := engine.New(engine.Config{Store: st, Limiter: ratelimit.NewRedis(st.Client(), "{x}:"), Hasher: cheap, Pool: password.NewPool(password.PoolConfig{})})
		if err != nil {
			t.Fatal(err)
		}
		srv.Kill()
		err = e.Allow(context.Background(), "r", "c", ratelimit.Limit{Rate: 1, Period: time.Hour})
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("Allow with redis down = %v, want ErrUnavailable", err)
		}
	})
}

// ---------------------------------------------------------------------------
// Concurrency.

func TestConcurrentSameEmail(t *testing.T) {
	const n = 50
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			h := newHarness(t, be.open(t))
			errs := make([]error, n)
			results := make([]*engine.Registered, n)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					<-start
					r := reg("race@example.com")
					r.IssueToken = i%2 == 0
					results[i], errs[i] = h.e.Register(context.Background(), r)
				})
			}
			close(start)
			wg.Wait()

			var winner *engine.Registered
			conflicts := 0
			for i, err := range errs {
				var ce *store.ConflictError
				switch {
				case err == nil:
					if winner != nil {
						t.Errorf("two registrations of one e-mail succeeded: %s and %s", winner.User.ID, results[i].User.ID)
					}
					winner = results[i]
				case errors.As(err, &ce) && ce.Field == "email":
					conflicts++
				default:
					t.Errorf("goroutine %d: %v", i, err)
				}
			}
			if winner == nil || conflicts != n-1 {
				t.Fatalf("winner %v, %d conflicts; want 1 and %d", winner != nil, conflicts, n-1)
			}
			id, err := h.env.store.UserIDByEmail(context.Background(), "race@example.com")
			if err != nil || id != winner.User.ID {
				t.Errorf("index points at %q (%v), winner is %q", id, err, winner.User.ID)
			}
			if got := h.metrics.reg("test/duplicate"); got != n-1 {
				t.Errorf("Registration(test, duplicate) = %d", got)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Pure helpers.

func TestMaskEmail(t *testing.T) {
	cases := []struct{ in, want string }{
		{"jane.doe@example.com", "j***@example.com"},
		{"  jane@example.com  ", "j***@example.com"},
		{"j@example.com", "j***@example.com"},
		{"ñandú@example.es", "ñ***@example.es"},
		{"a@b@example.com", "a***@example.com"},
		{"", ""},
		{"   ", ""},
		{"no-at-sign", "***"},
		{"@example.com", "***"},
	}
	for _, tc := range cases {
		if got := engine.MaskEmail(tc.in); got != tc.want {
			t.Errorf("MaskEmail(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestCheckEmail(t *testing.T) {
	longLocal := strings.Repeat("a", 64)
	domainFor := func(total int) string {
		// total length = len(local)+1+len(domain); domain ends in ".com".
		n := total - len(longLocal) - 1 - len(".com")
		var labels []string
		for n > 0 {
			l := min(n, 63)
			if n-l == 1 { // avoid a trailing 1-char remainder eaten by a dot
				l--
			}
			labels = append(labels, strings.Repeat("d", l))
			n -= l + 1
		}
		return strings.Join(labels, ".") + ".com"
	}
	at254 := longLocal + "@" + domainFor(engine.MaxEmailLength)
	at255 := longLocal + "@" + domainFor(engine.MaxEmailLength+1)
	if len(at254) != 254 || len(at255) != 255 {
		t.Fatalf("helper built %d/%d byte addresses", len(at254), len(at255))
	}
	cases := []struct {
		in string
		ok bool
	}{
		{"jane@example.com", true},
		{"jane+tag@example.com", true},
		{"Jane.Doe@Sub.Example.co.uk", true},
		{"  jane@example.com ", true}, // surrounding space is trimmed
		{at254, true},
		{at255, false},
		{"", false},
		{"   ", false},
		{"jane", false},
		{"jane@", false},
		{"@example.com", false},
		{"jane@localhost", false},
		{"jane@@example.com", false},
		{"jane doe@example.com", false},
		{"Jane <jane@example.com>", false},
		{"<jane@example.com>", false},
		{"jane@example.com, joe@example.com", false},
		{"jane@example.com\n", true},
		{"jane@exa\nmple.com", false},
	}
	for _, tc := range cases {
		err := engine.CheckEmail(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("CheckEmail(%q) = %v, want ok=%v", tc.in, err, tc.ok)
		}
	}
}

type invalidInput struct{ invalid bool }

func (e invalidInput) Error() string      { return "invalid input" }
func (e invalidInput) InvalidInput() bool { return e.invalid }

func TestOutcome(t *testing.T) {
	cases := []struct {
		err  error
		want string
	}{
		{nil, "created"},
		{&engine.ValidationError{}, "invalid"},
		{fmt.Errorf("wrapped: %w", &engine.ValidationError{Fields: []*engine.FieldError{{Field: "email"}}}), "invalid"},
		{invalidInput{true}, "invalid"},
		{fmt.Errorf("x: %w", invalidInput{true}), "invalid"},
		{invalidInput{false}, "error"},
		{fmt.Errorf("bcrypt: %w", password.ErrPasswordTooLong), "error"},
		{&store.ConflictError{Field: "email"}, "duplicate"},
		{&store.ConflictError{Field: "login"}, "duplicate"},
		{engine.ErrTenantExists, "tenant_exists"},
		{fmt.Errorf("x: %w", engine.ErrTenantExists), "tenant_exists"},
		{&engine.RateLimitedError{RetryAfter: time.Second}, "rate_limited"},
		{&password.OverloadedError{RetryAfter: time.Second}, "overloaded"},
		{password.ErrOverloaded, "overloaded"},
		{store.Unavailable("get", errors.New("dial tcp: refused")), "unavailable"},
		{fmt.Errorf("load signing key: %w: %w", engine.ErrNotReady, errors.New("x")), "unavailable"},
		{context.Canceled, "canceled"},
		{fmt.Errorf("waiting for a slot: %w", context.DeadlineExceeded), "canceled"},
		{engine.ErrUnauthenticated, "unauthenticated"},
		{engine.ErrForbidden, "forbidden"},
		{engine.ErrCaptchaWrong, "captcha_failed"},
		{errors.New("boom"), "error"},
	}
	for _, tc := range cases {
		if got := engine.Outcome(tc.err); got != tc.want {
			t.Errorf("Outcome(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestValidationError(t *testing.T) {
	var nilVE *engine.ValidationError
	if nilVE.Err() != nil || (&engine.ValidationError{}).Err() != nil {
		t.Error("empty ValidationError.Err() is not nil")
	}
	v := &engine.ValidationError{}
	v.Add("email", "email", "bad address")
	v.Add("password", "length", "too short")
	if !v.Has("email") || v.Has("name") || v.Err() == nil || v.Error() != "email: bad address" {
		t.Errorf("ValidationError = %+v (%v)", v, v)
	}
	if (&engine.ValidationError{}).Error() != "invalid input" {
		t.Error("empty ValidationError message")
	}
}

func TestReject(t *testing.T) {
	h := newHarness(t, openBolt(t))
	h.e.Reject("test", "192.0.2.9", &engine.ValidationError{Fields: []*engine.FieldError{{Field: "body", Rule: "json", Message: "bad json"}}})
	if h.metrics.reg("test/invalid") != 1 {
		t.Errorf("metrics = %v", h.metrics.registrations)
	}
	lines := h.logs.FilterMessage("registration").FilterField(zap.String("outcome", "invalid")).All()
	if len(lines) != 1 {
		t.Fatalf("%d log lines", len(lines))
	}
	// Refusals come in floods: Debug, not Info.
	if lines[0].Level != zapcore.DebugLevel {
		t.Errorf("refusal logged at %s, want debug", lines[0].Level)
	}
}

// TestUnknownAdminLoginCostsLikeKnown checks AuthenticateBasic's promise
// that "unknown logins cost as much as known ones": the dummy verification
// for an unknown login must be of the kind the configured admins use, or the
// response time tells an attacker which admin logins exist.
func TestUnknownAdminLoginCostsLikeKnown(t *testing.T) {
	h := newHarness(t, openBolt(t), func(c *engine.Config) {
		// Admin hashes from `caddy hash-password` are bcrypt; users get argon2id.
		c.Admins = []engine.Admin{{Login: "root", Hash: mustHash(t, password.Bcrypt{Cost: 4}, "bcrypt-secret"), Permissions: []string{"*"}}}
	})
	ctx := context.Background()
	kinds := func() map[string]int {
		h.hashes.mu.Lock()
		defer h.hashes.mu.Unlock()
		return maps.Clone(h.hashes.hashes)
	}
	if _, err := h.e.AuthenticateBasic(ctx, "10.9.0.1", "root", "wrong"); !errors.Is(err, engine.ErrUnauthenticated) {
		t.Fatal(err)
	}
	known := kinds()
	if _, err := h.e.AuthenticateBasic(ctx, "10.9.0.2", "nobody", "wrong"); !errors.Is(err, engine.ErrUnauthenticated) {
		t.Fatal(err)
	}
	all := kinds()
	unknown := map[string]int{}
	for k, v := range all {
		if d := v - known[k]; d > 0 {
			unknown[k] = d
		}
	}
	if !maps.Equal(known, unknown) {
		t.Errorf("known login verified with %v, unknown login with %v: unknown logins do not cost the same", known, unknown)
	}
}

// flipSigChar changes a character in the middle of the signature; the last
// base64url character carries padding bits a lenient decoder ignores.
func flipSigChar(tok string) string {
	i := len(tok) - 10
	c := byte('A')
	if tok[i] == 'A' {
		c = 'B'
	}
	return tok[:i] + string(c) + tok[i+1:]
}
