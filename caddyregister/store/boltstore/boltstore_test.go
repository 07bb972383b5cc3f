package boltstore_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/caddyregister/caddyregister/caddyregister/store"
	"github.com/caddyregister/caddyregister/caddyregister/store/boltstore"
	"github.com/caddyregister/caddyregister/caddyregister/store/storetest"
)

func open(t testing.TB, path string) *boltstore.Store {
	t.Helper()
	s, err := boltstore.Open(path)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	return s
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s := open(t, filepath.Join(t.TempDir(), "register.db"))
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

func TestOpenCreatesPrivateFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a", "b", "register.db")
	s := open(t, path)
	defer s.Close()
	if s.Path() != path {
		t.Fatalf("Path() = %q, want %q", s.Path(), path)
	}
	if runtime.GOOS == "windows" {
		return
	}
	for _, c := range []struct {
		path string
		mode os.FileMode
	}{
		{filepath.Join(dir, "a"), 0o700},
		{filepath.Join(dir, "a", "b"), 0o700},
		{path, 0o600},
	} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != c.mode {
			t.Errorf("%s: mode %v, want %v", c.path, got, c.mode)
		}
	}
}

// TestLooseFileModeTightened: an existing store file readable by group or
// others (copied, restored) is made owner-only at open, since its mode is
// what protects the signing key and the password hashes.
func TestLooseFileModeTightened(t *testing.T) {
	if runtime.GOOS == "windows" {
		return
	}
	path := filepath.Join(t.TempDir(), "register.db")
	s := open(t, path)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	s = open(t, path)
	defer s.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Fatalf("mode after open %v, want 0600", got)
	}
}

func TestLockedByAnotherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "register.db")
	first := open(t, path)

	// bbolt locks with flock, which also conflicts between two opens in one
	// process, so a second Open stands in for a second Caddy.
	start := time.Now()
	second, err := boltstore.Open(path)
	elapsed := time.Since(start)
	if err == nil {
		second.Close()
		first.Close()
		t.Fatal("second Open of a locked file succeeded")
	}
	if elapsed > 2*time.Second {
		t.Errorf("second Open took %v, want it to give up within ~1s", elapsed)
	}
	want := "embedded store " + path + " is locked by another process (is another Caddy running with the same data directory?)"
	if err.Error() != want {
		t.Errorf("error = %q\nwant    %q", err, want)
	}
	if !errors.Is(err, bolterrors.ErrTimeout) {
		t.Errorf("error %v does not unwrap to bolterrors.ErrTimeout", err)
	}

	// Once the holder closes, the file opens again.
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again := open(t, path)
	again.Close()
}

func TestSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "register.db")
	s := open(t, path)
	tenant := storetest.NewTestTenant("Reopen", "ES B12345678")
	u := storetest.NewTestFounder("Reopen@Example.com", "Reopener", tenant)
	if err := s.CreateUser(ctx, store.NewUser{User: u, Tenant: tenant}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LoadOrCreateSecret(ctx, "signing", []byte("key-1")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, path)
	defer s.Close()
	got, err := s.GetUser(ctx, u.ID)
	if err != nil {
		t.Fatalf("GetUser after reopen: %v", err)
	}
	if got.Email != u.Email || got.PasswordHash != u.PasswordHash || got.TenantID != tenant.ID {
		t.Fatalf("GetUser after reopen = %+v", got)
	}
	if id, err := s.UserIDByEmail(ctx, store.EmailKey("reopen@example.com")); err != nil || id != u.ID {
		t.Fatalf("UserIDByEmail after reopen = %q, %v", id, err)
	}
	if id, err := s.UserIDByLogin(ctx, store.LoginKey("REOPENER")); err != nil || id != u.ID {
		t.Fatalf("UserIDByLogin after reopen = %q, %v", id, err)
	}
	if id, err := s.TenantIDByVAT(ctx, store.VATKey("esb12345678")); err != nil || id != tenant.ID {
		t.Fatalf("TenantIDByVAT after reopen = %q, %v", id, err)
	}
	if gt, err := s.GetTenant(ctx, tenant.ID); err != nil || gt.Code != "Reopen" {
		t.Fatalf("GetTenant after reopen = %+v, %v", gt, err)
	}
	var ce *store.ConflictError
	if err := s.Taken(ctx, store.UniqueKeys{TenantCodeKey: "reopen"}); !errors.As(err, &ce) || ce.Field != "tenant_code" {
		t.Fatalf("Taken(tenant code) after reopen = %v", err)
	}
	if sec, err := s.LoadOrCreateSecret(ctx, "signing", []byte("key-2")); err != nil || string(sec) != "key-1" {
		t.Fatalf("secret after reopen = %q, %v; want key-1", sec, err)
	}
	dup := storetest.NewTestUser("reopen@example.com", "")
	if err := s.CreateUser(ctx, store.NewUser{User: dup}); !errors.As(err, &ce) || ce.Field != "email" {
		t.Fatalf("duplicate after reopen: %v", err)
	}
}

func TestConflictFields(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "register.db"))
	defer s.Close()
	tenant := storetest.NewTestTenant("Fields", "NL123456789B01")
	u := storetest.NewTestUser("fields@example.com", "fields")
	if err := s.CreateUser(ctx, store.NewUser{User: u, Tenant: tenant}); err != nil {
		t.Fatal(err)
	}
	wantField := func(name string, n store.NewUser, field string) {
		t.Helper()
		var ce *store.ConflictError
		err := s.CreateUser(ctx, n)
		if !errors.As(err, &ce) || ce.Field != field {
			t.Fatalf("%s: got %v, want conflict on %q", name, err, field)
		}
	}
	sameID := storetest.NewTestUser("other@example.com", "")
	sameID.ID = u.ID
	wantField("same user id", store.NewUser{User: sameID}, "id")

	t2 := storetest.NewTestTenant("Other", "NL999999999B01")
	t2.ID = tenant.ID
	wantField("same tenant id", store.NewUser{User: storetest.NewTestUser("t2@example.com", ""), Tenant: t2}, "tenant_id")

	t3 := storetest.NewTestTenant("Other", "nl 123456789 b01")
	wantField("same vat", store.NewUser{User: storetest.NewTestUser("t3@example.com", ""), Tenant: t3}, "tenant_vat")

	t4 := storetest.NewTestTenant("FIELDS", "NL888888888B01")
	wantField("same code", store.NewUser{User: storetest.NewTestUser("t4@example.com", ""), Tenant: t4}, "tenant_code")

	// Nothing of the rejected registrations was written.
	for _, e := range []string{"other@example.com", "t2@example.com", "t3@example.com", "t4@example.com"} {
		if _, err := s.UserIDByEmail(ctx, e); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("UserIDByEmail(%s) = %v, want ErrNotFound", e, err)
		}
	}
	if got, err := s.GetTenant(ctx, tenant.ID); err != nil || got.Code != "Fields" {
		t.Errorf("original tenant changed: %+v, %v", got, err)
	}
}

func TestInvalidInput(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "register.db"))
	defer s.Close()
	// Malformed users: storetest's InvalidNewUser, on both backends.
	if _, err := s.LoadOrCreateSecret(ctx, "", []byte("x")); err == nil {
		t.Error("LoadOrCreateSecret with empty name succeeded")
	}
	if _, err := s.GetUser(ctx, ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetUser(\"\") = %v, want ErrNotFound", err)
	}
}

func TestPingAndClose(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "register.db"))
	if err := s.Ping(context.Background()); err != nil {
		t.Fatalf("Ping on open store: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(context.Background()); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Ping after Close = %v, want ErrUnavailable", err)
	}
	u := storetest.NewTestUser("closed@example.com", "")
	if err := s.CreateUser(context.Background(), store.NewUser{User: u}); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("CreateUser after Close = %v, want ErrUnavailable", err)
	}
	if _, err := s.GetUser(context.Background(), u.ID); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("GetUser after Close = %v, want ErrUnavailable", err)
	}
}

func TestCanceledContext(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "register.db"))
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	u := storetest.NewTestUser("canceled@example.com", "")
	if err := s.CreateUser(ctx, store.NewUser{User: u}); !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("CreateUser with canceled context = %v", err)
	}
	if _, err := s.GetUser(context.Background(), u.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("user written despite canceled context: %v", err)
	}
}

const (
	helperEnvPath  = "BOLTSTORE_TEST_HELPER_PATH"
	helperEnvEmail = "BOLTSTORE_TEST_HELPER_EMAIL"
)

// TestMain runs this binary as the child of TestKill9Durability when the
// helper environment is set: it registers one user, reports it on stdout
// and waits to be killed.
func TestMain(m *testing.M) {
	if path := os.Getenv(helperEnvPath); path != "" {
		killChild(path)
	}
	os.Exit(m.Run())
}

func killChild(path string) {
	s, err := boltstore.Open(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	u := storetest.NewTestUser(os.Getenv(helperEnvEmail), "killed")
	if err := s.CreateUser(context.Background(), store.NewUser{User: u}); err != nil {
		fmt.Fprintln(os.Stderr, "create:", err)
		os.Exit(2)
	}
	fmt.Printf("CREATED %s\n", u.ID)
	_ = os.Stdout.Sync()
	select {} // never closes the store: only SIGKILL ends this
}

func TestKill9Durability(t *testing.T) {
	path := filepath.Join(t.TempDir(), "register.db")
	const email = "Survivor@Example.com"

	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.count=1", "-test.timeout=60s")
	cmd.Env = append(os.Environ(), helperEnvPath+"="+path, helperEnvEmail+"="+email)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()

	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if line := sc.Text(); strings.HasPrefix(line, "CREATED ") {
				lines <- line
				break
			}
		}
		close(lines)
		_, _ = bufio.NewReader(out).WriteTo(discard{})
	}()
	var id string
	select {
	case line, ok := <-lines:
		if !ok {
			_ = cmd.Wait()
			killed = true
			t.Fatalf("child exited without creating a user; stderr:\n%s", stderr.String())
		}
		id = strings.TrimPrefix(line, "CREATED ")
	case <-time.After(30 * time.Second):
		t.Fatalf("child did not report a user within 30s; stderr:\n%s", stderr.String())
	}

	// SIGKILL: no deferred Close, no flush, no chance to finish anything.
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	killed = true
	if ps := cmd.ProcessState; ps == nil || ps.Success() {
		t.Fatalf("child was not killed: %v", ps)
	}

	s := open(t, path) // the kernel dropped the dead child's lock
	defer s.Close()
	ctx := context.Background()
	u, err := s.GetUser(ctx, id)
	if err != nil {
		t.Fatalf("user %s acknowledged before kill -9 is gone: %v", id, err)
	}
	if u.EmailKey != store.EmailKey(email) {
		t.Fatalf("user after kill -9 = %+v", u)
	}
	if got, err := s.UserIDByEmail(ctx, store.EmailKey(email)); err != nil || got != id {
		t.Fatalf("UserIDByEmail after kill -9 = %q, %v; want %q", got, err, id)
	}
	if got, err := s.UserIDByLogin(ctx, store.LoginKey("killed")); err != nil || got != id {
		t.Fatalf("UserIDByLogin after kill -9 = %q, %v; want %q", got, err, id)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func BenchmarkCreateUser(b *testing.B) {
	s := open(b, filepath.Join(b.TempDir(), "register.db"))
	defer s.Close()
	ctx := context.Background()
	var seq atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := seq.Add(1)
			u := storetest.NewTestUser(fmt.Sprintf("bench%d@example.com", n), fmt.Sprintf("bench%d", n))
			if err := s.CreateUser(ctx, store.NewUser{User: u}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func TestChallengeLimit(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "register.db"))
	defer s.Close()
	boltstore.SetChallengeLimit(s, 3)
	for i := range 3 {
		if err := s.PutChallenge(ctx, fmt.Sprint("c", i), []byte("a"), time.Minute); err != nil {
			t.Fatalf("PutChallenge %d: %v", i, err)
		}
	}
	err := s.PutChallenge(ctx, "c3", []byte("a"), time.Minute)
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("PutChallenge beyond the limit: got %v, want ErrUnavailable", err)
	}
	// Replacing an existing one is allowed; taking one frees a slot.
	if err := s.PutChallenge(ctx, "c0", []byte("b"), time.Minute); err != nil {
		t.Fatalf("PutChallenge replacing: %v", err)
	}
	if got, err := s.TakeChallenge(ctx, "c0"); err != nil || string(got) != "b" {
		t.Fatalf("TakeChallenge(c0) = %q, %v", got, err)
	}
	if err := s.PutChallenge(ctx, "c3", []byte("a"), 10*time.Millisecond); err != nil {
		t.Fatalf("PutChallenge after a take: %v", err)
	}
	// Expired ones are swept when the table is full (at most every 100ms).
	time.Sleep(150 * time.Millisecond)
	if err := s.PutChallenge(ctx, "c4", []byte("a"), time.Minute); err != nil {
		t.Fatalf("PutChallenge with an expired entry to sweep: %v", err)
	}
}

func TestExpiredTokensSwept(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "register.db"))
	defer s.Close()
	now := time.Now()
	for i, exp := range []time.Time{now.Add(-time.Hour), now.Add(-time.Minute), now.Add(time.Hour)} {
		u := storetest.NewTestUser(fmt.Sprintf("sweep%d@example.com", i), "")
		if err := s.CreateUser(ctx, store.NewUser{User: u, Token: storetest.NewTestToken(u.ID, exp)}); err != nil {
			t.Fatal(err)
		}
	}
	if tok, exp, err := boltstore.TokenCounts(s); err != nil || tok != 3 || exp != 3 {
		t.Fatalf("TokenCounts = %d, %d, %v; want 3, 3", tok, exp, err)
	}
	if _, err := s.ClaimMail(ctx, now, time.Minute); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ClaimMail with an empty outbox: %v", err)
	}
	if tok, exp, err := boltstore.TokenCounts(s); err != nil || tok != 1 || exp != 1 {
		t.Fatalf("TokenCounts after the sweep = %d, %d, %v; want 1, 1", tok, exp, err)
	}
}

func TestUseTokenDeletesExpired(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "register.db"))
	defer s.Close()
	u := storetest.NewTestUser("lazy@example.com", "")
	tok := storetest.NewTestToken(u.ID, time.Now().Add(-time.Second))
	if err := s.CreateUser(ctx, store.NewUser{User: u, Token: tok}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UseToken(ctx, tok.Hash, time.Now(), func(*store.User) error { return nil }); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UseToken of an expired token: %v", err)
	}
	if n, e, err := boltstore.TokenCounts(s); err != nil || n != 0 || e != 0 {
		t.Fatalf("TokenCounts after using an expired token = %d, %d, %v; want 0, 0", n, e, err)
	}
}

func TestOutboxSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "register.db")
	s := open(t, path)
	now := time.Now()
	u := storetest.NewTestUser("outbox@example.com", "")
	a := storetest.NewTestMail(u.ID, now.Add(-2*time.Second))
	b := storetest.NewTestMail(u.ID, now.Add(-time.Second))
	c := storetest.NewTestMail(u.ID, now.Add(-time.Second))
	tok := storetest.NewTestToken(u.ID, now.Add(time.Hour))
	if err := s.CreateUser(ctx, store.NewUser{User: u, Mails: []*store.Mail{a, b, c}, Token: tok}); err != nil {
		t.Fatal(err)
	}
	if m, err := s.ClaimMail(ctx, now, time.Hour); err != nil || m.ID != a.ID {
		t.Fatalf("ClaimMail = %v, %v; want %s", m, err, a.ID)
	}
	m, err := s.ClaimMail(ctx, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	m.Attempts = 20
	if err := s.ParkMail(ctx, m); err != nil {
		t.Fatal(err)
	}
	if err := s.PutChallenge(ctx, "gone", []byte("x"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, path)
	defer s.Close()
	if q, p, err := s.MailCounts(ctx); err != nil || q != 2 || p != 1 {
		t.Fatalf("MailCounts after reopen = %d, %d, %v; want 2, 1", q, p, err)
	}
	// a is still leased; the third mail is due.
	got, err := s.ClaimMail(ctx, now, time.Hour)
	if err != nil || got.ID == a.ID || got.ID == m.ID {
		t.Fatalf("ClaimMail after reopen = %+v, %v", got, err)
	}
	if _, err := s.ClaimMail(ctx, now, time.Hour); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second ClaimMail after reopen: %v", err)
	}
	if _, err := s.UseToken(ctx, tok.Hash, now, func(*store.User) error { return nil }); err != nil {
		t.Fatalf("UseToken after reopen: %v", err)
	}
	// Challenges are per process.
	if _, err := s.TakeChallenge(ctx, "gone"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("TakeChallenge after reopen: %v", err)
	}
}

// writeFirstLayout writes a bbolt file at path holding only the buckets of
// the first layout (users, indexes, tenants, secrets), as a file written
// before the outbox, tokens, sequences and idempotency records existed.
func writeFirstLayout(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range []string{"users", "idx_email", "idx_login", "tenants", "idx_tenant_vat", "idx_tenant_code", "secrets"} {
			if _, err := tx.CreateBucket([]byte(name)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
}

// A file written before the outbox existed gets the new buckets on Open.
func TestOpenAddsMissingBuckets(t *testing.T) {
	path := filepath.Join(t.TempDir(), "register.db")
	writeFirstLayout(t, path)

	s := open(t, path)
	defer s.Close()
	ctx := context.Background()
	u := storetest.NewTestUser("upgrade@example.com", "")
	if err := s.CreateUser(ctx, store.NewUser{User: u, Mails: []*store.Mail{storetest.NewTestMail(u.ID, time.Now())}, Token: storetest.NewTestToken(u.ID, time.Now().Add(time.Hour))}); err != nil {
		t.Fatalf("CreateUser on an upgraded file: %v", err)
	}
	if q, _, err := s.MailCounts(ctx); err != nil || q != 1 {
		t.Fatalf("MailCounts = %d, %v", q, err)
	}
}

func TestNewMethodsUnavailable(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "register.db"))
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	m := storetest.NewTestMail("", time.Now())
	ops := map[string]func(context.Context) error{
		"ClaimMail":      func(c context.Context) error { _, err := s.ClaimMail(c, time.Now(), time.Minute); return err },
		"AckMail":        func(c context.Context) error { return s.AckMail(c, m.ID) },
		"RetryMail":      func(c context.Context) error { return s.RetryMail(c, m) },
		"ParkMail":       func(c context.Context) error { return s.ParkMail(c, m) },
		"MailCounts":     func(c context.Context) error { _, _, err := s.MailCounts(c); return err },
		"PutChallenge":   func(c context.Context) error { return s.PutChallenge(c, "t", []byte("a"), time.Minute) },
		"TakeChallenge":  func(c context.Context) error { _, err := s.TakeChallenge(c, "t"); return err },
		"GetIdempotency": func(c context.Context) error { _, err := s.GetIdempotency(c, "k"); return err },
		"CreateTenant":   func(c context.Context) error { return s.CreateTenant(c, storetest.NewTestRegistryTenant("c")) },
		"EnsureTenant":   func(c context.Context) error { return s.EnsureTenant(c, storetest.NewTestRegistryTenant("e")) },
		"TenantIDByCode": func(c context.Context) error { _, err := s.TenantIDByCode(c, "c"); return err },
		"ListTenants":    func(c context.Context) error { _, err := s.ListTenants(c); return err },
		"UseToken": func(c context.Context) error {
			_, err := s.UseToken(c, "abc", time.Now(), func(*store.User) error { return nil })
			return err
		},
	}
	for name, op := range ops {
		if err := op(canceled); !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s with canceled context = %v, want ErrUnavailable", name, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for name, op := range ops {
		if name == "PutChallenge" || name == "TakeChallenge" {
			continue // in memory, not in the file
		}
		if err := op(context.Background()); !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s after Close = %v, want ErrUnavailable", name, err)
		}
	}
}

// Expired idempotency records are swept by CreateUser and ClaimMail; a key
// claimed again after expiry leaves one record and one expiry entry. The
// store runs on a test clock, so records expire when the test says, however
// long the machine takes to write them.
func TestExpiredIdempotencySwept(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "register.db"))
	defer s.Close()
	clk := newTestClock()
	boltstore.SetClock(s, clk.Now)
	mk := func(email, key string, ttl time.Duration) store.NewUser {
		u := storetest.NewTestUser(email, "")
		idem := storetest.NewTestIdempotency(key, "{}", ttl)
		idem.CreatedAt, idem.ExpiresAt = clk.Now(), clk.Now().Add(ttl)
		return store.NewUser{User: u, Idempotency: idem}
	}
	const short = 300 * time.Millisecond
	for i, ttl := range []time.Duration{short, short, time.Hour} {
		if err := s.CreateUser(ctx, mk(fmt.Sprintf("idem%d@example.com", i), fmt.Sprint("k", i), ttl)); err != nil {
			t.Fatal(err)
		}
	}
	if n, e, err := boltstore.IdemCounts(s); err != nil || n != 3 || e != 3 {
		t.Fatalf("IdemCounts = %d, %d, %v; want 3, 3", n, e, err)
	}
	clk.Advance(short) // k0 and k1 expire
	if _, err := s.GetIdempotency(ctx, "k1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetIdempotency(k1) after expiry: %v, want ErrNotFound", err)
	}
	// Reclaiming k0 replaces its record; the sweep in the same create
	// takes k1.
	if err := s.CreateUser(ctx, mk("again@example.com", "k0", time.Hour)); err != nil {
		t.Fatalf("CreateUser reclaiming an expired key: %v", err)
	}
	if n, e, err := boltstore.IdemCounts(s); err != nil || n != 2 || e != 2 {
		t.Fatalf("IdemCounts after a create = %d, %d, %v; want 2, 2", n, e, err)
	}
	if err := s.CreateUser(ctx, mk("short@example.com", "k3", time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if n, e, err := boltstore.IdemCounts(s); err != nil || n != 3 || e != 3 {
		t.Fatalf("IdemCounts with k3 = %d, %d, %v; want 3, 3", n, e, err)
	}
	clk.Advance(time.Millisecond) // k3 expires
	if _, err := s.ClaimMail(ctx, clk.Now(), time.Minute); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ClaimMail with an empty outbox: %v", err)
	}
	if n, e, err := boltstore.IdemCounts(s); err != nil || n != 2 || e != 2 {
		t.Fatalf("IdemCounts after ClaimMail = %d, %d, %v; want 2, 2", n, e, err)
	}
	for _, k := range []string{"k0", "k2"} {
		if _, err := s.GetIdempotency(ctx, k); err != nil {
			t.Fatalf("GetIdempotency(%s): %v", k, err)
		}
	}
}

// Sequences and idempotency records survive a reopen, and a file written
// before they existed gets their buckets.
func TestSequenceSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "register.db")
	writeFirstLayout(t, path)

	s := open(t, path)
	for i := range 3 {
		u := storetest.NewTestUser(fmt.Sprintf("r%d@example.com", i), "")
		if err := s.CreateUser(ctx, store.NewUser{User: u, Sequence: "acct", Idempotency: storetest.NewTestIdempotency(fmt.Sprint("k", i), "{}", time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path)
	defer s.Close()
	if r, err := s.GetIdempotency(ctx, "k2"); err != nil || r.Seq != 3 {
		t.Fatalf("GetIdempotency after reopen = %+v, %v; want seq 3", r, err)
	}
	u := storetest.NewTestUser("after@example.com", "")
	if err := s.CreateUser(ctx, store.NewUser{User: u, Sequence: "acct"}); err != nil {
		t.Fatal(err)
	}
	if got := string(u.Attributes[store.SeqAttr]); got != "4" {
		t.Fatalf("first number after reopen = %s, want 4", got)
	}
	var ce *store.ConflictError
	dup := storetest.NewTestUser("dup@example.com", "")
	if err := s.CreateUser(ctx, store.NewUser{User: dup, Idempotency: storetest.NewTestIdempotency("k1", "{}", time.Hour)}); !errors.As(err, &ce) || ce.Field != "idempotency" {
		t.Fatalf("reused key after reopen: %v", err)
	}
}

// TestCreateUserCommits: a lone registration commits by itself, and a
// stream of them shares commits (each still durable when it returns; see
// TestKill9Durability). The store runs on a test clock, and bbolt's batch
// waits for the whole stream instead of a delay, so what counts as a
// stream does not depend on how fast the machine schedules goroutines.
func TestCreateUserCommits(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "register.db"))
	defer s.Close()
	clk := newTestClock()
	boltstore.SetClock(s, clk.Now)
	const n = 16
	// A batch commits when n registrations joined it; a lone
	// registration that wrongly took the batch path would hang.
	boltstore.SetBatchLimits(s, time.Hour, n)
	ctx := context.Background()
	txid := func() int {
		t.Helper()
		id, err := boltstore.LastTxID(s)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	create := func(email string) error {
		return s.CreateUser(ctx, store.NewUser{User: storetest.NewTestUser(email, "")})
	}
	// createAlone creates one user, failing (rather than hanging for the
	// hour-long batch delay) if it waits for a batch.
	createAlone := func(email string) {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- create(email) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: a lone registration waited for a batch", email)
		}
	}

	before := txid()
	createAlone("lone@example.com")
	if got := txid() - before; got != 1 {
		t.Errorf("lone registration: %d commits, want 1", got)
	}
	// A registration a batch window after the last is lone too.
	clk.Advance(boltstore.BatchWindow)
	before = txid()
	createAlone("lone2@example.com")
	if got := txid() - before; got != 1 {
		t.Errorf("registration a window after the last: %d commits, want 1", got)
	}

	// Within the window after the last, registrations count as a stream
	// and share one commit.
	clk.Advance(boltstore.BatchWindow - time.Nanosecond)
	before = txid()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() { errs <- create(fmt.Sprintf("stream%d@example.com", i)) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := txid() - before; got != 1 {
		t.Errorf("%d registrations in a stream took %d commits; want them batched into 1", n, got)
	}
	for i := range n {
		if _, err := s.UserIDByEmail(ctx, store.EmailKey(fmt.Sprintf("stream%d@example.com", i))); err != nil {
			t.Errorf("stream%d: %v", i, err)
		}
	}
}

// TestReplacedUserLeavesNoRecords: replacing a user expired pending
// leaves no record of it in any bucket.
func TestReplacedUserLeavesNoRecords(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "register.db"))
	t.Cleanup(func() { _ = s.Close() })
	expiry := time.Now().Add(time.Hour)
	sq := storetest.CreateSquatter(t, s, "orphan@example.com", "orphan", expiry)
	u := storetest.NewTestUser("orphan@example.com", "")
	u.CreatedAt = expiry
	if err := s.CreateUser(context.Background(), store.NewUser{User: u}); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	storetest.WantSquatterGone(t, s, sq)
	counts, err := boltstore.BucketCounts(s)
	if err != nil {
		t.Fatal(err)
	}
	for name, n := range counts {
		want := 0
		if name == "users" || name == "idx_email" || name == "users_by_created" {
			want = 1 // the newcomer's
		}
		if n != want {
			t.Errorf("bucket %s holds %d records, want %d", name, n, want)
		}
	}
}

// TestDropParkedBodiesSkipsCorrupt: a parked record that cannot be decoded
// is skipped and named; the others still lose their bodies.
func TestDropParkedBodiesSkipsCorrupt(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "r.db"))
	defer s.Close()
	mails := storetest.ParkExpired(t, s, 3)
	if err := boltstore.CorruptMail(s, mails[1].ID); err != nil {
		t.Fatal(err)
	}
	n, err := s.DropParkedBodies(context.Background(), time.Now(), 10)
	storetest.WantCorruptSkipped(t, n, err, 2, mails[1])
	// Still named by later sweeps (the record stays for an operator),
	// with nothing else left to do.
	n, err = s.DropParkedBodies(context.Background(), time.Now(), 10)
	storetest.WantCorruptSkipped(t, n, err, 0, mails[1])
}

func TestPorter(t *testing.T) {
	fresh := func(t *testing.T) store.Store {
		s := open(t, filepath.Join(t.TempDir(), "register.db"))
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	storetest.RunPorter(t, fresh, fresh)
}
