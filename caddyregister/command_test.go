package caddyregister

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/password"
	"github.com/caddyregister/caddyregister/caddyregister/secretbox"
	"github.com/caddyregister/caddyregister/caddyregister/store"
	"github.com/caddyregister/caddyregister/caddyregister/store/boltstore"
	"github.com/caddyregister/caddyregister/caddyregister/store/redisstore"
	"github.com/caddyregister/caddyregister/internal/testredis"
)

func writeCaddyfile(t *testing.T, global string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(path, []byte("{\n\tregister {\n"+global+"\n\t}\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func cmdEngine(t *testing.T, st store.Store, sealer *secretbox.Box) *engine.Engine {
	t.Helper()
	e, err := engine.New(engine.Config{Store: st, Hasher: password.Argon2id{MemoryKiB: 1024, Time: 1, Threads: 1},
		Pool: password.NewPool(password.PoolConfig{}), Sealer: sealer})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return e
}

// TestRotateKeyCommandRedis: rotate-key reads the Caddyfile, finds Redis
// and the key-encryption key through their placeholders, and rotates: an
// instance started afterwards signs with the new key and still verifies
// (and publishes) the old one.
func TestRotateKeyCommandRedis(t *testing.T) {
	ctx := context.Background()
	srv := testredis.Start(t)
	t.Setenv("REGISTER_TEST_CMD_REDIS", srv.URL(0))
	t.Setenv("REGISTER_TEST_CMD_KEK", testKEK)
	cf := writeCaddyfile(t, "\t\tstore redis {env.REGISTER_TEST_CMD_REDIS} cmdns\n\t\tkey_encryption_key {env.REGISTER_TEST_CMD_KEK}")

	st, err := redisstore.Open(srv.URL(0), "cmdns")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sealer, err := secretbox.New([]byte(testKEK), "cmdns")
	if err != nil {
		t.Fatal(err)
	}
	before := cmdEngine(t, st, sealer)
	oldTok, err := before.IssueToken(ctx, &engine.Principal{Kind: engine.KindUser, ID: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	oldJWKS, _ := before.JWKS(ctx)

	var out bytes.Buffer
	if err := rotateKey(ctx, &out, cf, "caddyfile", time.Now(), false); err != nil {
		t.Fatalf("rotate-key: %v", err)
	}
	if !strings.Contains(out.String(), "signing key rotated in redis namespace cmdns") {
		t.Fatalf("output: %s", out.String())
	}
	after := cmdEngine(t, st, sealer)
	newJWKS, _ := after.JWKS(ctx)
	if bytes.Equal(newJWKS, oldJWKS) || !bytes.Contains(newJWKS, oldJWKS[len(`{"keys":[`):len(oldJWKS)-2]) {
		t.Fatalf("JWKS after rotation lacks the old key or has no new one:\nold %s\nnew %s", oldJWKS, newJWKS)
	}
	// The token names no session; ErrNoSession comes only after its
	// signature verified with the retired key.
	if _, err := after.AuthenticateToken(ctx, oldTok); err != nil && !errors.Is(err, engine.ErrNoSession) {
		t.Fatalf("old token after rotation: %v", err)
	}
	v, err := st.Client().Get(ctx, st.Key("secret", engine.SigningKeySecret)).Bytes()
	if err != nil || !secretbox.IsSealed(v) {
		t.Fatalf("stored key after rotation not sealed: %q, %v", v, err)
	}
}

// TestRotateKeyCommandEmbedded: the embedded file is rotated when no Caddy
// holds it, and a held file is reported as locked by a running Caddy.
func TestRotateKeyCommandEmbedded(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "register.db")
	cf := writeCaddyfile(t, "\t\tstore embedded "+path)

	held, err := boltstore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	err = rotateKey(ctx, &bytes.Buffer{}, cf, "caddyfile", time.Now(), false)
	if err == nil || !strings.Contains(err.Error(), "locked by a running Caddy") {
		t.Fatalf("rotate-key on a held file = %v, want locked", err)
	}
	e := cmdEngine(t, held, nil)
	oldJWKS, _ := e.JWKS(ctx)
	if err := held.Close(); err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	if err := rotateKey(ctx, &out, cf, "caddyfile", time.Now(), true); err != nil {
		t.Fatalf("rotate-key: %v", err)
	}
	if !strings.Contains(out.String(), `"store": "embedded store `+path) || !strings.Contains(out.String(), `"new_kid"`) {
		t.Fatalf("output: %s", out.String())
	}
	st, err := boltstore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	newJWKS, _ := cmdEngine(t, st, nil).JWKS(ctx)
	if bytes.Equal(newJWKS, oldJWKS) || !bytes.Contains(newJWKS, oldJWKS[len(`{"keys":[`):len(oldJWKS)-2]) {
		t.Fatalf("JWKS after rotation:\nold %s\nnew %s", oldJWKS, newJWKS)
	}
}

// TestRotateKeyCommandRefuses: a config with signing_key (the stored key
// is unused), without a register app, or with a key-encryption key too
// short, is refused with the reason.
func TestRotateKeyCommandRefuses(t *testing.T) {
	ctx := context.Background()
	for name, tc := range map[string]struct{ caddyfile, want string }{
		"signing_key": {"{\n\tregister {\n\t\tsigning_key {env.X}\n\t}\n}\n", "rotate by changing signing_key"},
		"no register": {"{\n\tadmin off\n}\n", "no register app"},
		"short kek":   {"{\n\tregister {\n\t\tkey_encryption_key short\n\t}\n}\n", "key_encryption_key"},
	} {
		path := filepath.Join(t.TempDir(), "Caddyfile")
		if err := os.WriteFile(path, []byte(tc.caddyfile), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := rotateKey(ctx, &bytes.Buffer{}, path, "caddyfile", time.Now(), false); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: rotate-key = %v, want an error with %q", name, err, tc.want)
		}
	}
}
