package redisstore_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddyregister/caddyregister/caddyregister/store"
	"github.com/caddyregister/caddyregister/caddyregister/store/redisstore"
	"github.com/caddyregister/caddyregister/caddyregister/store/storetest"
	"github.com/caddyregister/caddyregister/internal/testredis"
)

var nsSeq atomic.Int64

// open returns a store on srv under a namespace no other test uses, so tests
// share one server without flushing it.
func open(tb testing.TB, srv *testredis.Server) *redisstore.Store {
	tb.Helper()
	s, err := redisstore.Open(srv.URL(0), fmt.Sprintf("t%d", nsSeq.Add(1)))
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// scanKeys lists every key of the store's namespace, sorted.
func scanKeys(t *testing.T, c *redis.Client, s *redisstore.Store) []string {
	t.Helper()
	var keys []string
	iter := c.Scan(context.Background(), 0, s.Key("*"), 1000).Iterator()
	for iter.Next(context.Background()) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("SCAN %s: %v", s.Key("*"), err)
	}
	slices.Sort(keys)
	return keys
}

func TestContract(t *testing.T) {
	srv := testredis.Start(t)
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, srv) })
}

func TestNoStrayKeys(t *testing.T) {
	srv := testredis.Start(t)
	s := open(t, srv)
	const n = 50
	users := make([]*store.User, n)
	for i := range users {
		users[i] = storetest.NewTestUser("stray@example.com", "")
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range users {
		wg.Go(func() {
			<-start
			errs[i] = s.CreateUser(context.Background(), store.NewUser{User: users[i]})
		})
	}
	close(start)
	wg.Wait()

	winner := -1
	for i, err := range errs {
		var ce *store.ConflictError
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("users %d and %d both created", winner, i)
			}
			winner = i
		case errors.As(err, &ce) && ce.Field == "email":
		default:
			t.Fatalf("CreateUser %d: %v", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no user created")
	}
	want := []string{
		s.Key("idx", "email", store.EmailKey("stray@example.com")),
		s.Key("user", users[winner].ID),
	}
	slices.Sort(want)
	if got := scanKeys(t, srv.Client(t), s); !slices.Equal(got, want) {
		t.Fatalf("keys after race:\n got  %q\n want %q", got, want)
	}
}

func TestOutageLeavesNothing(t *testing.T) {
	srv := testredis.Start(t)
	s := open(t, srv)
	admin := srv.Client(t)
	bg := context.Background()

	first := storetest.NewTestUser("before@example.com", "before")
	if err := s.CreateUser(bg, store.NewUser{User: first}); err != nil {
		t.Fatalf("CreateUser before outage: %v", err)
	}
	before := scanKeys(t, admin, s)

	// Redis refuses writes but still serves reads.
	if err := admin.ConfigSet(bg, "min-replicas-to-write", "1").Err(); err != nil {
		t.Fatalf("CONFIG SET: %v", err)
	}
	t.Cleanup(func() { admin.ConfigSet(bg, "min-replicas-to-write", "0") })

	tenant := storetest.NewTestTenant("OUTAGE", "NL123456789B01")
	u := storetest.NewTestUser("during@example.com", "during")
	u.TenantID, tenant.CreatedBy = tenant.ID, u.ID
	// Once with the script cached (EVALSHA), once after SCRIPT FLUSH (EVAL).
	for _, flush := range []bool{false, true} {
		if flush {
			if err := admin.ScriptFlush(bg).Err(); err != nil {
				t.Fatalf("SCRIPT FLUSH: %v", err)
			}
		}
		err := s.CreateUser(bg, store.NewUser{User: u, Tenant: tenant})
		if !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("CreateUser with writes refused (flushed=%v): got %v, want ErrUnavailable", flush, err)
		}
		if !strings.Contains(err.Error(), "NOREPLICAS") {
			t.Errorf("CreateUser error %q does not carry the driver's NOREPLICAS message", err)
		}
		if after := scanKeys(t, admin, s); !slices.Equal(after, before) {
			t.Fatalf("keys changed by refused write (flushed=%v):\n before %q\n after  %q", flush, before, after)
		}
	}
	if _, err := s.LoadOrCreateSecret(bg, "signing", []byte("x")); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("LoadOrCreateSecret with writes refused: got %v, want ErrUnavailable", err)
	}
	// Reads keep working.
	if _, err := s.GetUser(bg, first.ID); err != nil {
		t.Fatalf("GetUser with writes refused: %v", err)
	}
	if err := s.Taken(bg, store.NewUser{User: u, Tenant: tenant}.Of()); err != nil {
		t.Fatalf("Taken with writes refused: %v", err)
	}
	if after := scanKeys(t, admin, s); !slices.Equal(after, before) {
		t.Fatalf("keys changed during outage:\n before %q\n after  %q", before, after)
	}
	if err := admin.ConfigSet(bg, "min-replicas-to-write", "0").Err(); err != nil {
		t.Fatalf("CONFIG SET: %v", err)
	}
	if err := s.CreateUser(bg, store.NewUser{User: u, Tenant: tenant}); err != nil {
		t.Fatalf("CreateUser after writes allowed again: %v", err)
	}

	// The server goes away: every call fails fast with ErrUnavailable.
	srv.Kill()
	other := storetest.NewTestUser("down@example.com", "down")
	ops := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"CreateUser", func(c context.Context) error { return s.CreateUser(c, store.NewUser{User: other}) }},
		{"GetUser", func(c context.Context) error { _, err := s.GetUser(c, first.ID); return err }},
		{"UserIDByEmail", func(c context.Context) error { _, err := s.UserIDByEmail(c, first.EmailKey); return err }},
		{"Taken", func(c context.Context) error { return s.Taken(c, store.UniqueKeys{EmailKey: other.EmailKey}) }},
		{"LoadOrCreateSecret", func(c context.Context) error { _, err := s.LoadOrCreateSecret(c, "k", []byte("v")); return err }},
		{"Ping", func(c context.Context) error { return s.Ping(c) }},
	}
	for _, op := range ops {
		c, cancel := context.WithTimeout(bg, 2*time.Second)
		start := time.Now()
		err := op.fn(c)
		elapsed := time.Since(start)
		cancel()
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s with server down: got %v, want ErrUnavailable", op.name, err)
		}
		t.Logf("%s with server down failed after %v: %v", op.name, elapsed.Round(time.Millisecond), err)
		if elapsed > 3*time.Second {
			t.Errorf("%s with server down took %v", op.name, elapsed)
		}
	}

	if err := srv.Restart(); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	// go-redis stops dialing after PoolSize failed dials and probes the
	// server once a second from then on, so recovery takes up to ~1s.
	c, cancel := context.WithTimeout(bg, 5*time.Second)
	defer cancel()
	restarted := time.Now()
	for {
		err := s.Ping(c)
		if err == nil {
			break
		}
		if c.Err() != nil {
			t.Fatalf("Ping after restart still failing after %v: %v", time.Since(restarted), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("store usable %v after restart", time.Since(restarted).Round(time.Millisecond))
	if err := s.CreateUser(c, store.NewUser{User: other}); err != nil {
		t.Fatalf("CreateUser after restart: %v", err)
	}
}

// layoutPatterns reads the key layout from the package comment of
// redisstore.go: the indented lines starting with "{ns}:".
func layoutPatterns(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("redisstore.go")
	if err != nil {
		t.Fatalf("open redisstore.go: %v", err)
	}
	defer f.Close()
	var pats []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "package ") {
			break
		}
		rest, ok := strings.CutPrefix(line, "//\t")
		if !ok || !strings.HasPrefix(rest, "{ns}:") {
			continue
		}
		// The pattern ends where the description starts (two spaces).
		pat, _, _ := strings.Cut(rest, "  ")
		pats = append(pats, strings.TrimSpace(pat))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(pats) == 0 {
		t.Fatal("no key layout found in the redisstore.go package comment")
	}
	return pats
}

func TestKeyLayout(t *testing.T) {
	srv := testredis.Start(t)
	s := open(t, srv)
	admin := srv.Client(t)
	bg := context.Background()

	tenant := storetest.NewTestTenant("ACME", "es 12.345.678-x")
	u := storetest.NewTestUser(" Alice.Smith@Example.COM", "Alice_S")
	u.TenantID, tenant.CreatedBy = tenant.ID, u.ID
	if err := s.CreateUser(bg, store.NewUser{User: u, Tenant: tenant}); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	secret := []byte("-----BEGIN PRIVATE KEY-----\n...\n")
	if _, err := s.LoadOrCreateSecret(bg, "signing_key", secret); err != nil {
		t.Fatalf("LoadOrCreateSecret: %v", err)
	}

	ns := "{" + s.Namespace() + "}"
	want := map[string]string{ // key -> value ("" = JSON record, checked below)
		ns + ":user:" + u.ID:                      "",
		ns + ":idx:email:alice.smith@example.com": u.ID,
		ns + ":idx:login:alice_s":                 u.ID,
		ns + ":tenant:" + tenant.ID:               "",
		ns + ":idx:tenant_vat:ES12345678X":        tenant.ID,
		ns + ":idx:tenant_code:acme":              tenant.ID,
		ns + ":secret:signing_key":                string(secret),
	}

	// The documented layout, filled in for this user, is exactly that set.
	var documented []string
	for _, p := range layoutPatterns(t) {
		id := u.ID
		if strings.HasPrefix(p, "{ns}:tenant:") {
			id = tenant.ID
		}
		k := strings.NewReplacer(
			"{ns}", ns,
			"<id>", id,
			"<email key>", u.EmailKey,
			"<login key>", u.LoginKey,
			"<vat key>", tenant.Billing.VATKey,
			"<code key>", strings.ToLower(tenant.Code),
			"<name>", "signing_key",
		).Replace(p)
		if strings.ContainsAny(k, "<>") {
			t.Fatalf("documented key pattern %q has a placeholder this test does not know", p)
		}
		documented = append(documented, k)
	}
	slices.Sort(documented)
	wantKeys := slices.Sorted(func(yield func(string) bool) {
		for k := range want {
			if !yield(k) {
				return
			}
		}
	})
	if !slices.Equal(documented, wantKeys) {
		t.Fatalf("documented layout differs from this test's expectation:\n documented %q\n expected   %q", documented, wantKeys)
	}
	got := scanKeys(t, admin, s)
	if !slices.Equal(got, wantKeys) {
		t.Fatalf("keys written:\n got  %q\n want %q", got, wantKeys)
	}

	// Every key is a plain string that never expires, sharing one hash slot.
	slot := admin.ClusterKeySlot(bg, wantKeys[0]).Val()
	for _, k := range wantKeys {
		if typ := admin.Type(bg, k).Val(); typ != "string" {
			t.Errorf("TYPE %s = %s, want string", k, typ)
		}
		if ttl := admin.TTL(bg, k).Val(); ttl != -1 {
			t.Errorf("TTL %s = %v, want none", k, ttl)
		}
		if sl := admin.ClusterKeySlot(bg, k).Val(); sl != slot {
			t.Errorf("key %s is in slot %d, %s in %d", k, sl, wantKeys[0], slot)
		}
		val := admin.Get(bg, k).Val()
		if w := want[k]; w != "" && val != w {
			t.Errorf("GET %s = %q, want %q", k, val, w)
		}
	}

	var gotUser store.User
	if err := json.Unmarshal([]byte(admin.Get(bg, ns+":user:"+u.ID).Val()), &gotUser); err != nil {
		t.Fatalf("user record is not JSON: %v", err)
	}
	if gotUser.ID != u.ID || gotUser.Email != u.Email || gotUser.EmailKey != u.EmailKey || gotUser.TenantID != tenant.ID {
		t.Errorf("user record = %+v", gotUser)
	}
	var gotTenant store.Tenant
	if err := json.Unmarshal([]byte(admin.Get(bg, ns+":tenant:"+tenant.ID).Val()), &gotTenant); err != nil {
		t.Fatalf("tenant record is not JSON: %v", err)
	}
	if gotTenant.ID != tenant.ID || gotTenant.Code != tenant.Code || !reflect.DeepEqual(gotTenant.Billing, tenant.Billing) {
		t.Errorf("tenant record = %+v", gotTenant)
	}
}

func BenchmarkCreateUser(b *testing.B) {
	srv := testredis.Start(b)
	s := open(b, srv)
	var n atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			u := storetest.NewTestUser(fmt.Sprintf("bench%d@example.com", i), fmt.Sprintf("bench%d", i))
			if err := s.CreateUser(context.Background(), store.NewUser{User: u}); err != nil {
				b.Errorf("CreateUser: %v", err)
				return
			}
		}
	})
}
