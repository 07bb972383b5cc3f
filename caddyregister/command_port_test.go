package caddyregister

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/password"
	"github.com/caddyregister/caddyregister/caddyregister/secretbox"
	"github.com/caddyregister/caddyregister/caddyregister/store"
	"github.com/caddyregister/caddyregister/caddyregister/store/port"
	"github.com/caddyregister/caddyregister/internal/testredis"
)

// TestPortCommands moves a store from the embedded file to Redis and on
// to a Redis Cluster with the commands, as the README tells operators to:
// the access token issued before the move verifies after it, the password
// logs in, a second import writes nothing, and a broken stream fails.
func TestPortCommands(t *testing.T) {
	srv := testredis.Start(t)
	const hash = "\n\t\thash argon2id 1024 1 1"
	embedded := writeCaddyfile(t, "\t\tstore embedded "+filepath.Join(t.TempDir(), "register.db")+hash)
	single := writeCaddyfile(t, "\t\tstore redis "+srv.URL(0)+" porting"+hash)
	cluster := writeCaddyfile(t, "\t\tstore redis redis+cluster://"+strings.Join(sharedCluster(t).Seeds(), ",")+" porting"+hash)
	ctx := context.Background()

	seedUsers(t, embedded)
	a, done, err := commandApp(ctx, embedded, "caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	reg, err := a.Engine().Register(ctx, engine.Registration{Contract: "test", ClientIP: "192.0.2.1", Email: "cy@example.com",
		Password: "correct horse battery", Policy: password.NIST(), IssueToken: true})
	done()
	if err != nil {
		t.Fatal(err)
	}

	var stderr bytes.Buffer
	commandErr = &stderr
	t.Cleanup(func() { commandErr = os.Stderr; commandIn = os.Stdin })
	file := filepath.Join(t.TempDir(), "export.jsonl")
	mustRun(t, embedded, "export", "--output", file)
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("export file: %v, %v; want mode 0600", fi, err)
	}
	if !strings.Contains(stderr.String(), "3 users, 3 sessions") {
		t.Fatalf("export said %q", stderr.String())
	}

	out := mustRun(t, single, "import", "--input", file)
	if !strings.Contains(out, "user      3     3        0        0        0") {
		t.Fatalf("import:\n%s", out)
	}
	var rep port.Report
	if err := json.Unmarshal([]byte(mustRun(t, single, "import", "--input", file, "--json")), &rep); err != nil ||
		rep.Present[port.KindUser] != 3 || rep.Written[port.KindUser] != 0 || rep.Present[port.KindSecret] != 1 {
		t.Fatalf("second import: %+v, %v", rep, err)
	}

	// On Redis: the token the embedded instance issued verifies (same key,
	// the session moved), and the password logs in once activated.
	a, done, err = commandApp(ctx, single, "caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	if p, err := a.Engine().AuthenticateToken(ctx, reg.Token); err != nil || p.ID != reg.User.ID {
		t.Errorf("the token issued before the move: %+v, %v", p, err)
	}
	mustRun(t, single, "users", "activate", "cy@example.com")
	if _, err := a.Engine().LoginSession(ctx, "192.0.2.1", "test", "cy@example.com", "correct horse battery", engine.SessionLimits{}); err != nil {
		t.Errorf("login after the move: %v", err)
	}
	done()

	// Redis to Redis Cluster through a pipe: export's standard output is
	// import's standard input.
	stream := mustRun(t, single, "export")
	commandIn = strings.NewReader(stream)
	if out := mustRun(t, cluster, "import"); !strings.Contains(out, "user      3     3") {
		t.Fatalf("import into the cluster:\n%s", out)
	}
	if out := mustRun(t, cluster, "users", "list"); strings.Count(out, "@example.com") != 3 || !strings.Contains(out, "active") {
		t.Fatalf("users on the cluster:\n%s", out)
	}

	commandIn = strings.NewReader(stream[:len(stream)-40])
	if _, err := runRegister(t, cluster, "import"); err == nil || !strings.Contains(err.Error(), "record") {
		t.Fatalf("a cut stream: %v", err)
	}
	if _, err := runRegister(t, cluster, "import", "--input", filepath.Join(t.TempDir(), "absent")); err == nil {
		t.Fatal("an absent input file was accepted")
	}
}

// TestPortCommandsSealed: a store whose signing key is sealed with
// key_encryption_key moves to Redis only with the same key in the
// target's config, and works there: the key, bound to the embedded
// store's domain, is opened and sealed again for the namespace. Without
// a key, or with another, the stream is refused and nothing is written.
func TestPortCommandsSealed(t *testing.T) {
	srv := testredis.Start(t)
	const hash = "\n\t\thash argon2id 1024 1 1"
	kek := "\n\t\tkey_encryption_key " + testKEK
	embedded := writeCaddyfile(t, "\t\tstore embedded "+filepath.Join(t.TempDir(), "register.db")+hash+kek)
	ctx := context.Background()
	a, done, err := commandApp(ctx, embedded, "caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	reg, err := a.Engine().Register(ctx, engine.Registration{Contract: "test", ClientIP: "192.0.2.1", Email: "sealed@example.com",
		Password: "correct horse battery", Policy: password.NIST(), IssueToken: true})
	done()
	if err != nil {
		t.Fatal(err)
	}
	commandErr = io.Discard
	t.Cleanup(func() { commandErr = os.Stderr })
	file := filepath.Join(t.TempDir(), "export.jsonl")
	mustRun(t, embedded, "export", "--output", file)

	for name, c := range map[string]struct{ extra, want string }{
		"no key":    {"", "sets none"},
		"other key": {"\n\t\tkey_encryption_key " + strings.Repeat("x", 40), "does not open"},
	} {
		cf := writeCaddyfile(t, "\t\tstore redis "+srv.URL(0)+" sealed"+strings.ReplaceAll(name, " ", "")+hash+c.extra)
		if _, err := runRegister(t, cf, "import", "--input", file); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("%s: import = %v, want %q", name, err, c.want)
		}
		if out := mustRun(t, cf, "users", "list"); strings.Contains(out, "@example.com") {
			t.Fatalf("%s: the refused import wrote users:\n%s", name, out)
		}
	}

	target := writeCaddyfile(t, "\t\tstore redis "+srv.URL(0)+" sealedok"+hash+kek)
	mustRun(t, target, "import", "--input", file)
	a, done, err = commandApp(ctx, target, "caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	if p, err := a.Engine().AuthenticateToken(ctx, reg.Token); err != nil || p.ID != reg.User.ID {
		t.Fatalf("the token issued before the move, on the sealed target: %+v, %v", p, err)
	}
	raw, err := a.Engine().Store().(store.Porter).Secret(ctx, engine.SigningKeySecret)
	if err != nil || !secretbox.IsSealed(raw) {
		t.Fatalf("the moved signing key is not sealed at rest: %.20q, %v", raw, err)
	}
}
