package caddyregister

import (
	"context"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddyregister/caddyregister/internal/testredis"
)

const testKEK = "a-key-encryption-key-of-32-bytes-or-more"

// provisionObserved provisions a with a log the test reads.
func provisionObserved(t *testing.T, a *App) *observer.ObservedLogs {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := a.Provision(ctx); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	t.Cleanup(func() { _ = a.Cleanup() })
	core, logs := observer.New(zapcore.DebugLevel)
	a.logger = zap.New(core)
	return logs
}

func warned(logs *observer.ObservedLogs, substr string) bool {
	for _, e := range logs.All() {
		if e.Level >= zapcore.WarnLevel && strings.Contains(e.Message, substr) {
			return true
		}
	}
	return false
}

// TestStartWarnsAboutKeyStorage: on Redis without key_encryption_key, or
// with no persistence (testredis runs with no RDB snapshots and appendonly no), or with
// an eviction policy, Start warns, naming the setting to change.
func TestStartWarnsAboutKeyStorage(t *testing.T) {
	ctx := context.Background()
	srv := testredis.Start(t)

	a := &App{Store: &StoreConfig{Backend: "redis", URL: srv.URL(0), Namespace: "warn1"}}
	logs := provisionObserved(t, a)
	a.warnKeyStorage()
	if !warned(logs, "set key_encryption_key") {
		t.Error("no warning naming key_encryption_key without one")
	}
	if !warned(logs, "no persistence") {
		t.Error("no warning about Redis without persistence")
	}
	if warned(logs, "maxmemory-policy") {
		t.Error("eviction warning with noeviction")
	}

	if err := srv.Client(t).ConfigSet(ctx, "maxmemory-policy", "allkeys-lru").Err(); err != nil {
		t.Fatal(err)
	}
	a = &App{Store: &StoreConfig{Backend: "redis", URL: srv.URL(0), Namespace: "warn2"}, KeyEncryptionKey: testKEK}
	logs = provisionObserved(t, a)
	a.warnKeyStorage()
	if warned(logs, "key_encryption_key") {
		t.Error("key_encryption_key warning although one is set")
	}
	if !warned(logs, "maxmemory-policy is not noeviction") {
		t.Error("no warning about maxmemory-policy allkeys-lru")
	}

	// The embedded store is protected by its file mode: no warning.
	a = &App{Store: &StoreConfig{Backend: "embedded", Path: t.TempDir() + "/r.db"}}
	logs = provisionObserved(t, a)
	a.warnKeyStorage()
	if n := logs.FilterLevelExact(zapcore.WarnLevel).Len(); n != 0 {
		t.Errorf("embedded store: %d warnings", n)
	}
}

// TestKeyEncryptionKeyProvision: an empty placeholder means no
// key_encryption_key (the demo runs with the variable unset); one too short
// to be random fails Provision naming the option.
func TestKeyEncryptionKeyProvision(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	t.Setenv("REGISTER_TEST_KEK_SHORT", "too-short")
	a := &App{Store: &StoreConfig{Backend: "redis", URL: "redis://127.0.0.1:1/0"}, KeyEncryptionKey: "{env.REGISTER_TEST_KEK_SHORT}"}
	if err := a.Provision(ctx); err == nil || !strings.Contains(err.Error(), "key_encryption_key") {
		t.Fatalf("short key: Provision = %v, want an error naming key_encryption_key", err)
	}
	a = &App{Store: &StoreConfig{Backend: "redis", URL: "redis://127.0.0.1:1/0"}, KeyEncryptionKey: "{env.REGISTER_TEST_KEK_UNSET}"}
	if err := a.Provision(ctx); err != nil || a.sealed {
		t.Fatalf("unset key: Provision = %v, sealed %v; want no error, no sealing", err, a.sealed)
	}
	_ = a.Cleanup()
}

// TestStartFailsWithWrongKeyEncryptionKey: a key_encryption_key that does
// not open the stored key fails Start (a reload with it is refused) with a
// message naming the option, instead of the store-outage warning.
func TestStartFailsWithWrongKeyEncryptionKey(t *testing.T) {
	srv := testredis.Start(t)
	start := func(kek string) error {
		a := &App{Store: &StoreConfig{Backend: "redis", URL: srv.URL(0), Namespace: "wrongkek"}, KeyEncryptionKey: kek}
		provisionObserved(t, a)
		err := a.Start()
		if err == nil {
			t.Cleanup(func() { _ = a.Stop() })
		}
		return err
	}
	if err := start(testKEK); err != nil {
		t.Fatalf("first Start: %v", err)
	}
	if err := start(testKEK + "-other"); err == nil || !strings.Contains(err.Error(), "key_encryption_key") {
		t.Fatalf("Start with another key_encryption_key = %v, want an error naming it", err)
	}
}
