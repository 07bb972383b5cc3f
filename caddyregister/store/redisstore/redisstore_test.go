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

// openAdmin starts a server and returns a store on it and an admin client.
func openAdmin(t *testing.T) (*redisstore.Store, *redis.Client) {
	t.Helper()
	srv := testredis.Start(t)
	return open(t, srv), srv.Client(t)
}

// openCounted starts a server and returns a store on it with a countHook
// counting its round trips.
func openCounted(t *testing.T) (*redisstore.Store, *countHook) {
	t.Helper()
	s := open(t, testredis.Start(t))
	h := &countHook{}
	s.Client().AddHook(h)
	return s, h
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
	errs := storetest.RunConcurrent(n, func(i int) error {
		// Each request has its own idempotency key; only the winner's
		// record and one sequence number may be left behind.
		idem := storetest.NewTestIdempotency(fmt.Sprint("stray-", i), "{}", time.Hour)
		return s.CreateUser(context.Background(), store.NewUser{User: users[i], Sequence: "acct", Idempotency: idem})
	})
	winner := storetest.OneWinner(t, errs, "email")
	want := []string{
		s.Key("idx", "email", store.EmailKey("stray@example.com")),
		s.Key("user", users[winner].ID),
		s.Key("seq", "acct"),
		s.Key("idem", fmt.Sprint("stray-", winner)),
		s.Key("users"),
	}
	slices.Sort(want)
	admin := srv.Client(t)
	if got := scanKeys(t, admin, s); !slices.Equal(got, want) {
		t.Fatalf("keys after race:\n got  %q\n want %q", got, want)
	}
	if v := admin.Get(context.Background(), s.Key("seq", "acct")).Val(); v != "1" {
		t.Fatalf("sequence after race = %q, want 1", v)
	}
}

func TestOutageLeavesNothing(t *testing.T) {
	srv := testredis.Start(t)
	s := open(t, srv)
	admin := srv.Client(t)
	bg := context.Background()

	first := storetest.NewTestUser("before@example.com", "before")
	firstTok := storetest.NewTestToken(first.ID, time.Now().Add(time.Hour))
	firstIdem := storetest.NewTestIdempotency("before", "{}", time.Hour)
	if err := s.CreateUser(bg, store.NewUser{User: first, Token: firstTok, Sequence: "acct", Idempotency: firstIdem}); err != nil {
		t.Fatalf("CreateUser before outage: %v", err)
	}
	if err := s.PutChallenge(bg, "before", []byte("answer"), time.Hour); err != nil {
		t.Fatalf("PutChallenge before outage: %v", err)
	}
	before := scanKeys(t, admin, s)
	beforeDump := dump(t, admin, before)

	// Redis refuses writes but still serves reads.
	if err := admin.ConfigSet(bg, "min-replicas-to-write", "1").Err(); err != nil {
		t.Fatalf("CONFIG SET: %v", err)
	}
	t.Cleanup(func() { admin.ConfigSet(bg, "min-replicas-to-write", "0") })

	tenant := storetest.NewTestTenant("OUTAGE", "NL123456789B01")
	u := storetest.NewTestFounder("during@example.com", "during", tenant)
	mails := []*store.Mail{storetest.NewTestMail(u.ID, time.Now()), storetest.NewTestMail(u.ID, time.Now())}
	tok := storetest.NewTestToken(u.ID, time.Now().Add(time.Hour))
	idem := storetest.NewTestIdempotency("during", "{}", time.Hour)
	full := store.NewUser{User: u, Tenant: tenant, Mails: mails, Token: tok, Sequence: "acct", Idempotency: idem}
	// Once with the script cached (EVALSHA), once after SCRIPT FLUSH (EVAL).
	for _, flush := range []bool{false, true} {
		if flush {
			if err := admin.ScriptFlush(bg).Err(); err != nil {
				t.Fatalf("SCRIPT FLUSH: %v", err)
			}
		}
		err := s.CreateUser(bg, full)
		if !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("CreateUser with writes refused (flushed=%v): got %v, want ErrUnavailable", flush, err)
		}
		if !strings.Contains(err.Error(), "NOREPLICAS") {
			t.Errorf("CreateUser error %q does not carry the driver's NOREPLICAS message", err)
		}
		after := scanKeys(t, admin, s)
		if !slices.Equal(after, before) {
			t.Fatalf("keys changed by refused write (flushed=%v):\n before %q\n after  %q", flush, before, after)
		}
		for _, k := range after {
			if strings.Contains(k, ":mail:") || strings.Contains(k, ":outbox") || k == s.Key("token", tok.Hash) || k == s.Key("idem", "during") {
				t.Fatalf("refused CreateUser left %s behind", k)
			}
		}
		if v := admin.Get(bg, s.Key("seq", "acct")).Val(); v != "1" {
			t.Fatalf("sequence after refused CreateUser (flushed=%v) = %q, want 1", flush, v)
		}
		if _, ok := u.Attributes[store.SeqAttr]; ok || idem.UserID != "" || idem.Seq != 0 {
			t.Fatalf("refused CreateUser filled in seq %s, record %+v", u.Attributes[store.SeqAttr], idem)
		}
	}
	if _, err := s.LoadOrCreateSecret(bg, "signing", []byte("x")); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("LoadOrCreateSecret with writes refused: got %v, want ErrUnavailable", err)
	}
	// Every other write is refused whole too.
	mutated := false
	writes := []struct {
		name string
		fn   func() error
	}{
		{"UseToken", func() error {
			_, err := s.UseToken(bg, firstTok.Hash, time.Now(), func(u *store.User) error {
				mutated = true
				u.Status = store.StatusActive
				return nil
			})
			return err
		}},
		{"PutChallenge", func() error { return s.PutChallenge(bg, "during", []byte("x"), time.Minute) }},
		{"TakeChallenge", func() error { _, err := s.TakeChallenge(bg, "before"); return err }},
		{"ClaimMail", func() error { _, err := s.ClaimMail(bg, time.Now(), time.Minute); return err }},
		{"AckMail", func() error { return s.AckMail(bg, mails[0].ID) }},
		{"RetryMail", func() error { return s.RetryMail(bg, mails[0]) }},
		{"ParkMail", func() error { return s.ParkMail(bg, mails[0]) }},
		{"CreateTenant", func() error { return s.CreateTenant(bg, storetest.NewTestRegistryTenant("down-create")) }},
		{"EnsureTenant", func() error { return s.EnsureTenant(bg, storetest.NewTestRegistryTenant("down-ensure")) }},
	}
	for _, w := range writes {
		if err := w.fn(); !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s with writes refused: got %v, want ErrUnavailable", w.name, err)
		}
	}
	if !mutated {
		t.Error("UseToken did not get as far as mutate (its reads should still work)")
	}
	if q, p, err := s.MailCounts(bg); err != nil || q != 0 || p != 0 {
		t.Errorf("MailCounts with writes refused = %d, %d, %v; want 0, 0, nil", q, p, err)
	}
	if after := scanKeys(t, admin, s); !slices.Equal(after, before) {
		t.Fatalf("keys changed by refused writes:\n before %q\n after  %q", before, after)
	} else if afterDump := dump(t, admin, after); !reflect.DeepEqual(afterDump, beforeDump) {
		t.Fatal("values changed by refused writes")
	}
	// Reads keep working.
	if _, err := s.GetUser(bg, first.ID); err != nil {
		t.Fatalf("GetUser with writes refused: %v", err)
	}
	if err := s.Taken(bg, store.NewUser{User: u, Tenant: tenant}.Of()); err != nil {
		t.Fatalf("Taken with writes refused: %v", err)
	}
	if ts, err := s.ListTenants(bg); err != nil || len(ts) != 0 {
		t.Fatalf("ListTenants with writes refused = %v, %v; want none", ts, err)
	}
	if _, err := s.TenantIDByCode(bg, "outage"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("TenantIDByCode with writes refused = %v, want ErrNotFound", err)
	}
	if after := scanKeys(t, admin, s); !slices.Equal(after, before) {
		t.Fatalf("keys changed during outage:\n before %q\n after  %q", before, after)
	}
	if err := admin.ConfigSet(bg, "min-replicas-to-write", "0").Err(); err != nil {
		t.Fatalf("CONFIG SET: %v", err)
	}
	if err := s.CreateUser(bg, full); err != nil {
		t.Fatalf("CreateUser after writes allowed again: %v", err)
	}
	if v := admin.Get(bg, s.Key("seq", "acct")).Val(); v != "2" || idem.Seq != 2 || string(u.Attributes[store.SeqAttr]) != "2" {
		t.Fatalf("after writes allowed again: sequence %q, record seq %d, user seq %s; want 2", v, idem.Seq, u.Attributes[store.SeqAttr])
	}
	if q, p, err := s.MailCounts(bg); err != nil || q != len(mails) || p != 0 {
		t.Fatalf("MailCounts after writes allowed again = %d, %d, %v; want %d, 0", q, p, err, len(mails))
	}

	// The server goes away: every call fails fast with ErrUnavailable.
	srv.Kill()
	other := storetest.NewTestUser("down@example.com", "down")
	ops := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"CreateUser", func(c context.Context) error { return s.CreateUser(c, store.NewUser{User: other}) }},
		{"GetIdempotency", func(c context.Context) error { _, err := s.GetIdempotency(c, "before"); return err }},
		{"GetUser", func(c context.Context) error { _, err := s.GetUser(c, first.ID); return err }},
		{"UserIDByEmail", func(c context.Context) error { _, err := s.UserIDByEmail(c, first.EmailKey); return err }},
		{"Taken", func(c context.Context) error { return s.Taken(c, store.UniqueKeys{EmailKey: other.EmailKey}) }},
		{"LoadOrCreateSecret", func(c context.Context) error { _, err := s.LoadOrCreateSecret(c, "k", []byte("v")); return err }},
		{"Ping", func(c context.Context) error { return s.Ping(c) }},
		{"UseToken", func(c context.Context) error {
			_, err := s.UseToken(c, tok.Hash, time.Now(), func(*store.User) error { return nil })
			return err
		}},
		{"PutChallenge", func(c context.Context) error { return s.PutChallenge(c, "down", []byte("x"), time.Minute) }},
		{"TakeChallenge", func(c context.Context) error { _, err := s.TakeChallenge(c, "before"); return err }},
		{"ClaimMail", func(c context.Context) error { _, err := s.ClaimMail(c, time.Now(), time.Minute); return err }},
		{"AckMail", func(c context.Context) error { return s.AckMail(c, mails[0].ID) }},
		{"RetryMail", func(c context.Context) error { return s.RetryMail(c, mails[0]) }},
		{"ParkMail", func(c context.Context) error { return s.ParkMail(c, mails[0]) }},
		{"MailCounts", func(c context.Context) error { _, _, err := s.MailCounts(c); return err }},
		{"CreateTenant", func(c context.Context) error { return s.CreateTenant(c, storetest.NewTestRegistryTenant("down")) }},
		{"EnsureTenant", func(c context.Context) error { return s.EnsureTenant(c, storetest.NewTestRegistryTenant("down")) }},
		{"TenantIDByCode", func(c context.Context) error { _, err := s.TenantIDByCode(c, "outage"); return err }},
		{"ListTenants", func(c context.Context) error { _, err := s.ListTenants(c); return err }},
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

// dump returns the DUMP serialization of each key, to compare values of any
// type.
func dump(t *testing.T, c *redis.Client, keys []string) map[string]string {
	t.Helper()
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		v, err := c.Dump(context.Background(), k).Result()
		if err != nil {
			t.Fatalf("DUMP %s: %v", k, err)
		}
		out[k] = v
	}
	return out
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
	s, admin := openAdmin(t)
	bg := context.Background()

	now := time.Now()
	tenant := storetest.NewTestTenant("ACME", "es 12.345.678-x")
	u := storetest.NewTestFounder(" Alice.Smith@Example.COM", "Alice_S", tenant)
	queued := storetest.NewTestMail(u.ID, now.Add(time.Hour))
	parked := storetest.NewTestMail(u.ID, now.Add(-time.Minute))
	tok := storetest.NewTestToken(u.ID, now.Add(48*time.Hour+123*time.Millisecond))
	idem := storetest.NewTestIdempotency("admin:k1", `{"email":"alice"}`, 24*time.Hour+321*time.Millisecond)
	if err := s.CreateUser(bg, store.NewUser{User: u, Tenant: tenant, Mails: []*store.Mail{queued, parked}, Token: tok, Sequence: "accounts", Idempotency: idem}); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	secret := []byte("-----BEGIN PRIVATE KEY-----\n...\n")
	if _, err := s.LoadOrCreateSecret(bg, "signing_key", secret); err != nil {
		t.Fatalf("LoadOrCreateSecret: %v", err)
	}
	m, err := s.ClaimMail(bg, now, time.Minute)
	if err != nil || m.ID != parked.ID {
		t.Fatalf("ClaimMail = %+v, %v; want mail %s", m, err, parked.ID)
	}
	m.Attempts, m.LastError = 9, "550 no such user"
	beforePark := time.Now()
	if err := s.ParkMail(bg, m); err != nil {
		t.Fatalf("ParkMail: %v", err)
	}
	if _, err := s.BackfillUserIndex(bg); err != nil { // sets its marker
		t.Fatalf("BackfillUserIndex: %v", err)
	}
	const challengeTTL = 5 * time.Minute
	answer := []byte{0xde, 0xad, 0xbe, 0xef}
	if err := s.PutChallenge(bg, "chal-1", answer, challengeTTL); err != nil {
		t.Fatalf("PutChallenge: %v", err)
	}

	ns := "{" + s.Namespace() + "}"
	type want struct {
		value string // "" = JSON record or zset, checked below
		typ   string
		ttl   bool
	}
	str := func(v string) want { return want{v, "string", false} }
	wantKeys := map[string]want{
		ns + ":user:" + u.ID:                      str(""),
		ns + ":user:" + u.ID + ":refs":            {"", "set", false},
		ns + ":idx:email:alice.smith@example.com": str(u.ID),
		ns + ":idx:login:alice_s":                 str(u.ID),
		ns + ":tenant:" + tenant.ID:               str(""),
		ns + ":idx:tenant_vat:ES12345678X":        str(tenant.ID),
		ns + ":idx:tenant_code:acme":              str(tenant.ID),
		ns + ":tenants":                           {"", "set", false},
		ns + ":secret:signing_key":                str(string(secret)),
		ns + ":mail:" + queued.ID:                 str(""),
		ns + ":mail:" + parked.ID:                 str(""),
		ns + ":outbox":                            {"", "zset", false},
		ns + ":outbox:parked":                     {"", "zset", false},
		ns + ":token:" + tok.Hash:                 {"", "string", true},
		ns + ":challenge:chal-1":                  {string(answer), "string", true},
		ns + ":seq:accounts":                      str("1"),
		ns + ":idem:admin:k1":                     {"", "string", true},
		ns + ":users":                             {"", "zset", false},
		ns + ":users:indexed":                     str("1"),
	}

	// The documented layout, filled in for these records, is exactly that
	// set.
	var documented []string
	for _, p := range layoutPatterns(t) {
		ids := []string{u.ID}
		switch {
		case strings.HasPrefix(p, "{ns}:tenant:"):
			ids = []string{tenant.ID}
		case strings.HasPrefix(p, "{ns}:mail:"):
			ids = []string{queued.ID, parked.ID}
		}
		for _, id := range ids {
			k := strings.NewReplacer(
				"{ns}", ns,
				"<id>", id,
				"<email key>", u.EmailKey,
				"<login key>", u.LoginKey,
				"<vat key>", tenant.Billing.VATKey,
				"<code key>", strings.ToLower(tenant.Code),
				"<name>", "signing_key",
				"<hash>", tok.Hash,
				"<token>", "chal-1",
				"<sequence>", "accounts",
				"<idempotency key>", "admin:k1",
			).Replace(p)
			if strings.ContainsAny(k, "<>") {
				t.Fatalf("documented key pattern %q has a placeholder this test does not know", p)
			}
			documented = append(documented, k)
		}
	}
	slices.Sort(documented)
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range wantKeys {
			if !yield(k) {
				return
			}
		}
	})
	if !slices.Equal(documented, keys) {
		t.Fatalf("documented layout differs from this test's expectation:\n documented %q\n expected   %q", documented, keys)
	}
	got := scanKeys(t, admin, s)
	if !slices.Equal(got, keys) {
		t.Fatalf("keys written:\n got  %q\n want %q", got, keys)
	}

	// Types, expiries, one hash slot for all.
	slot := admin.ClusterKeySlot(bg, keys[0]).Val()
	for _, k := range keys {
		w := wantKeys[k]
		if typ := admin.Type(bg, k).Val(); typ != w.typ {
			t.Errorf("TYPE %s = %s, want %s", k, typ, w.typ)
		}
		ttl := admin.PTTL(bg, k).Val()
		if w.ttl && ttl <= 0 {
			t.Errorf("PTTL %s = %v, want an expiry", k, ttl)
		}
		if !w.ttl && ttl != -1 {
			t.Errorf("PTTL %s = %v, want none", k, ttl)
		}
		if sl := admin.ClusterKeySlot(bg, k).Val(); sl != slot {
			t.Errorf("key %s is in slot %d, %s in %d", k, sl, keys[0], slot)
		}
		if w.value != "" {
			if val := admin.Get(bg, k).Val(); val != w.value {
				t.Errorf("GET %s = %q, want %q", k, val, w.value)
			}
		}
	}

	var gotUser store.User
	if err := json.Unmarshal([]byte(admin.Get(bg, ns+":user:"+u.ID).Val()), &gotUser); err != nil {
		t.Fatalf("user record is not JSON: %v", err)
	}
	if gotUser.ID != u.ID || gotUser.Email != u.Email || gotUser.EmailKey != u.EmailKey || gotUser.TenantID != tenant.ID ||
		string(gotUser.Attributes[store.SeqAttr]) != "1" || string(gotUser.Attributes["phone"]) != `"+34 600 000 000"` {
		t.Errorf("user record = %+v", gotUser)
	}

	// The idempotency record carries the drawn number and expires exactly
	// at ExpiresAt.
	idemKey := ns + ":idem:admin:k1"
	var gotIdem store.Idempotency
	if err := json.Unmarshal([]byte(admin.Get(bg, idemKey).Val()), &gotIdem); err != nil {
		t.Fatalf("idempotency record is not JSON: %v", err)
	}
	if gotIdem.Key != idem.Key || gotIdem.UserID != u.ID || gotIdem.Seq != 1 || gotIdem.Fingerprint != idem.Fingerprint ||
		!gotIdem.ExpiresAt.Equal(idem.ExpiresAt) || !gotIdem.CreatedAt.Equal(idem.CreatedAt) {
		t.Errorf("idempotency record = %+v, want %+v", gotIdem, idem)
	}
	if at, err := admin.Do(bg, "PEXPIRETIME", idemKey).Int64(); err != nil || at != idem.ExpiresAt.UnixMilli() {
		t.Errorf("PEXPIRETIME %s = %d, %v; want %d", idemKey, at, err, idem.ExpiresAt.UnixMilli())
	}
	if ids := admin.SMembers(bg, ns+":tenants").Val(); !slices.Equal(ids, []string{tenant.ID}) {
		t.Errorf("SMEMBERS %s:tenants = %q, want [%s]", ns, ids, tenant.ID)
	}
	var gotTenant store.Tenant
	if err := json.Unmarshal([]byte(admin.Get(bg, ns+":tenant:"+tenant.ID).Val()), &gotTenant); err != nil {
		t.Fatalf("tenant record is not JSON: %v", err)
	}
	if gotTenant.ID != tenant.ID || gotTenant.Code != tenant.Code || !reflect.DeepEqual(gotTenant.Billing, tenant.Billing) {
		t.Errorf("tenant record = %+v", gotTenant)
	}
	for _, want := range []*store.Mail{queued, m} {
		var gotMail store.Mail
		if err := json.Unmarshal([]byte(admin.Get(bg, ns+":mail:"+want.ID).Val()), &gotMail); err != nil {
			t.Fatalf("mail record is not JSON: %v", err)
		}
		if gotMail.ID != want.ID || gotMail.Subject != want.Subject || gotMail.Attempts != want.Attempts || gotMail.LastError != want.LastError {
			t.Errorf("mail record = %+v, want %+v", gotMail, want)
		}
	}

	// The outbox holds the queued mail scored by its due time; the parked
	// set the parked one scored by when it was parked.
	zs := admin.ZRangeWithScores(bg, ns+":outbox", 0, -1).Val()
	if len(zs) != 1 || zs[0].Member != queued.ID || int64(zs[0].Score) != queued.NextAttempt.UnixMilli() {
		t.Errorf("outbox = %+v, want %s at %d", zs, queued.ID, queued.NextAttempt.UnixMilli())
	}
	zs = admin.ZRangeWithScores(bg, ns+":outbox:parked", 0, -1).Val()
	if len(zs) != 1 || zs[0].Member != parked.ID ||
		int64(zs[0].Score) < beforePark.UnixMilli() || int64(zs[0].Score) > time.Now().UnixMilli() {
		t.Errorf("parked = %+v, want %s at about %d", zs, parked.ID, beforePark.UnixMilli())
	}

	// The token expires exactly at ExpiresAt, and using it keeps that.
	tokKey := ns + ":token:" + tok.Hash
	wantExpiry := func(when string) {
		t.Helper()
		at, err := admin.Do(bg, "PEXPIRETIME", tokKey).Int64()
		if err != nil || at != tok.ExpiresAt.UnixMilli() {
			t.Errorf("PEXPIRETIME %s %s = %d, %v; want %d", tokKey, when, at, err, tok.ExpiresAt.UnixMilli())
		}
	}
	wantExpiry("after create")
	var gotTok store.Token
	if err := json.Unmarshal([]byte(admin.Get(bg, tokKey).Val()), &gotTok); err != nil {
		t.Fatalf("token record is not JSON: %v", err)
	}
	if gotTok.Hash != tok.Hash || gotTok.UserID != u.ID || gotTok.Purpose != tok.Purpose || gotTok.UsedAt != nil {
		t.Errorf("token record = %+v", gotTok)
	}
	if _, err := s.UseToken(bg, tok.Hash, now, func(u *store.User) error { u.Status = store.StatusActive; return nil }); err != nil {
		t.Fatalf("UseToken: %v", err)
	}
	wantExpiry("after use")
	if err := json.Unmarshal([]byte(admin.Get(bg, tokKey).Val()), &gotTok); err != nil {
		t.Fatalf("token record is not JSON: %v", err)
	}
	if gotTok.UsedAt == nil || !gotTok.UsedAt.Equal(now) {
		t.Errorf("token UsedAt after use = %v, want %v", gotTok.UsedAt, now)
	}
	if ttl := admin.PTTL(bg, ns+":user:"+u.ID).Val(); ttl != -1 {
		t.Errorf("user PTTL after UseToken = %v, want none", ttl)
	}
	if ttl := admin.PTTL(bg, ns+":challenge:chal-1").Val(); ttl <= 0 || ttl > challengeTTL {
		t.Errorf("challenge PTTL = %v, want within (0, %v]", ttl, challengeTTL)
	}
	if got := scanKeys(t, admin, s); !slices.Equal(got, keys) {
		t.Fatalf("keys after UseToken:\n got  %q\n want %q", got, keys)
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

// countHook counts commands sent, a pipeline or transaction counting once.
type countHook struct{ n atomic.Int64 }

func (h *countHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

func (h *countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

// A registration with tenant, mails, token, sequence and idempotency record
// is one round trip.
func TestCreateUserOneRoundTrip(t *testing.T) {
	s, h := openCounted(t)
	bg := context.Background()
	full := func(email, code, vat string) store.NewUser {
		tenant := storetest.NewTestTenant(code, vat)
		u := storetest.NewTestFounder(email, "", tenant)
		return store.NewUser{
			User: u, Tenant: tenant,
			Mails:       []*store.Mail{storetest.NewTestMail(u.ID, time.Now()), storetest.NewTestMail(u.ID, time.Now())},
			Token:       storetest.NewTestToken(u.ID, time.Now().Add(time.Hour)),
			Sequence:    "acct",
			Idempotency: storetest.NewTestIdempotency("key-"+code, "{}", time.Hour),
		}
	}
	// The first run loads the script (EVALSHA, NOSCRIPT, EVAL).
	if err := s.CreateUser(bg, full("a@example.com", "A", "ES11111111A")); err != nil {
		t.Fatal(err)
	}
	h.n.Store(0)
	if err := s.CreateUser(bg, full("b@example.com", "B", "ES22222222B")); err != nil {
		t.Fatal(err)
	}
	if n := h.n.Load(); n != 1 {
		t.Fatalf("CreateUser took %d round trips, want 1", n)
	}
	h.n.Store(0)
	var ce *store.ConflictError
	if err := s.CreateUser(bg, full("b@example.com", "C", "ES33333333C")); !errors.As(err, &ce) {
		t.Fatalf("duplicate CreateUser: %v", err)
	}
	if n := h.n.Load(); n != 1 {
		t.Fatalf("rejected CreateUser took %d round trips, want 1", n)
	}
}

// CreateTenant, EnsureTenant (creating, or finding nothing to change),
// ListTenants and a CreateUser joining a tenant are one round trip each; a
// redeclaration that changes the tenant two.
func TestTenantRoundTrips(t *testing.T) {
	s, h := openCounted(t)
	bg := context.Background()
	// Load the scripts (EVALSHA, NOSCRIPT, EVAL) first.
	warm := storetest.NewTestRegistryTenant("warm")
	if err := s.CreateTenant(bg, warm); err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureTenant(bg, storetest.NewTestRegistryTenant("warm2")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ListTenants(bg); err != nil {
		t.Fatal(err)
	}
	member := storetest.NewTestUser("warm@example.com", "")
	member.TenantID = warm.ID
	if err := s.CreateUser(bg, store.NewUser{User: member}); err != nil {
		t.Fatal(err)
	}

	decl := storetest.NewTestRegistryTenant("Ops", "admin")
	member2 := storetest.NewTestUser("ops@example.com", "")
	member2.TenantID = decl.ID
	redecl := *decl
	redecl.Groups = []string{"admin", "dev"}
	for _, step := range []struct {
		name  string
		trips int64
		fn    func() error
	}{
		{"CreateTenant", 1, func() error { return s.CreateTenant(bg, storetest.NewTestTenant("Billed", "ES1")) }},
		{"EnsureTenant creating", 1, func() error { return s.EnsureTenant(bg, decl) }},
		{"EnsureTenant unchanged", 1, func() error { return s.EnsureTenant(bg, decl) }},
		{"EnsureTenant changing", 2, func() error { return s.EnsureTenant(bg, &redecl) }},
		{"ListTenants", 1, func() error { _, err := s.ListTenants(bg); return err }},
		{"CreateUser joining", 1, func() error { return s.CreateUser(bg, store.NewUser{User: member2}) }},
	} {
		h.n.Store(0)
		if err := step.fn(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if n := h.n.Load(); n != step.trips {
			t.Errorf("%s took %d round trips, want %d", step.name, n, step.trips)
		}
	}
	got, err := s.GetTenant(bg, decl.ID)
	if err != nil || !slices.Equal(got.Groups, []string{"admin", "dev"}) {
		t.Fatalf("GetTenant after redeclaration = %+v, %v", got, err)
	}
}

// A tenant missing from {ns}:tenants (written before the set existed) is
// added back by EnsureTenant, and ids in the set without a record are
// skipped by ListTenants.
func TestTenantSetHealing(t *testing.T) {
	s, admin := openAdmin(t)
	bg := context.Background()
	old := storetest.NewTestTenant("Legacy", "ES99")
	u := storetest.NewTestFounder("legacy@example.com", "", old)
	if err := s.CreateUser(bg, store.NewUser{User: u, Tenant: old}); err != nil {
		t.Fatal(err)
	}
	if err := admin.Del(bg, s.Key("tenants")).Err(); err != nil {
		t.Fatal(err)
	}
	if err := admin.SAdd(bg, s.Key("tenants"), "000000000000000000000000").Err(); err != nil {
		t.Fatal(err)
	}
	if ts, err := s.ListTenants(bg); err != nil || len(ts) != 0 {
		t.Fatalf("ListTenants = %v, %v; want none", ts, err)
	}
	if err := s.EnsureTenant(bg, &store.Tenant{ID: old.ID, Code: "legacy"}); err != nil {
		t.Fatal(err)
	}
	ts, err := s.ListTenants(bg)
	if err != nil || len(ts) != 1 || ts[0].ID != old.ID || !reflect.DeepEqual(ts[0].Billing, old.Billing) {
		t.Fatalf("ListTenants after EnsureTenant = %v, %v; want the legacy tenant", ts, err)
	}
}

// A {ns}:tenants of the wrong type refuses tenant writes whole.
func TestTenantSetWrongType(t *testing.T) {
	s, admin := openAdmin(t)
	bg := context.Background()
	if err := admin.Set(bg, s.Key("tenants"), "oops", 0).Err(); err != nil {
		t.Fatal(err)
	}
	before := scanKeys(t, admin, s)
	tn := storetest.NewTestTenant("Typed", "ES77")
	u := storetest.NewTestFounder("typed@example.com", "", tn)
	for name, fn := range map[string]func() error{
		"CreateTenant": func() error { return s.CreateTenant(bg, tn) },
		"EnsureTenant": func() error { return s.EnsureTenant(bg, tn) },
		"CreateUser":   func() error { return s.CreateUser(bg, store.NewUser{User: u, Tenant: tn}) },
	} {
		if err := fn(); !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "WRONGTYPE") {
			t.Errorf("%s with a wrong-typed set = %v, want ErrUnavailable (WRONGTYPE)", name, err)
		}
	}
	if after := scanKeys(t, admin, s); !slices.Equal(after, before) {
		t.Fatalf("keys changed:\n before %q\n after  %q", before, after)
	}
}

// TestReplacedUserLeavesNoKeys: replacing a user expired pending leaves
// no key of it in the namespace (found by scanning it), and no outbox or
// parked entry naming its mails.
func TestReplacedUserLeavesNoKeys(t *testing.T) {
	s, admin := openAdmin(t)
	bg := context.Background()
	expiry := time.Now().Add(time.Hour)
	sq := storetest.CreateSquatter(t, s, "orphan@example.com", "orphan", expiry)
	before := scanKeys(t, admin, s)
	u := storetest.NewTestUser("orphan@example.com", "")
	u.CreatedAt = expiry
	if err := s.CreateUser(bg, store.NewUser{User: u}); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	storetest.WantSquatterGone(t, s, sq)
	got := scanKeys(t, admin, s)
	want := []string{s.Key("idx", "email", u.EmailKey), s.Key("user", u.ID), s.Key("users")}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("keys after the replacement:\n got  %q\n want %q\n (before: %q)", got, want, before)
	}
}

// TestDropParkedBodiesSkipsCorrupt: a parked record that cannot be decoded
// is skipped, named and taken off the bodies set (so it takes no slot of
// later sweeps); the others still lose their bodies.
func TestDropParkedBodiesSkipsCorrupt(t *testing.T) {
	s, c := openAdmin(t)
	ctx := context.Background()
	mails := storetest.ParkExpired(t, s, 3)
	if err := c.Set(ctx, s.Key("mail", mails[0].ID), "{not json", 0).Err(); err != nil {
		t.Fatal(err)
	}
	n, err := s.DropParkedBodies(ctx, time.Now(), 10)
	storetest.WantCorruptSkipped(t, n, err, 2, mails[0])
	if listed, err := c.ZScore(ctx, s.Key("outbox", "parked", "bodies"), mails[0].ID).Result(); !errors.Is(err, redis.Nil) {
		t.Fatalf("corrupt record still listed for the sweep: %v, %v", listed, err)
	}
	if n, err := s.DropParkedBodies(ctx, time.Now(), 10); n != 0 || err != nil {
		t.Fatalf("sweep after the corrupt record was skipped = %d, %v", n, err)
	}
	if v, err := c.Get(ctx, s.Key("mail", mails[0].ID)).Result(); err != nil || v != "{not json" {
		t.Fatalf("corrupt record not left for an operator: %q, %v", v, err)
	}
}
