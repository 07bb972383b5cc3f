package caddyregister

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddyregister/caddyregister/caddyregister/store"
	"github.com/caddyregister/caddyregister/caddyregister/store/boltstore"
)

// TestProvisionRejectsHashParameters: unusable hash parameters fail
// Provision (so `caddy validate` reports them), with Hash's own message.
func TestProvisionRejectsHashParameters(t *testing.T) {
	for name, tc := range map[string]struct {
		hash *HashConfig
		want string
	}{
		"argon2id memory below 8 KiB per thread": {&HashConfig{Algorithm: "argon2id", MemoryKiB: 4}, "below the minimum"},
		"argon2id too many passes":               {&HashConfig{Algorithm: "argon2id", Time: 1000}, "above the limit"},
		"bcrypt cost too high":                   {&HashConfig{Algorithm: "bcrypt", Cost: 40}, "bcrypt"},
		"unknown algorithm":                      {&HashConfig{Algorithm: "md5"}, "unknown hash algorithm"},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			a := &App{Store: &StoreConfig{Backend: "redis", URL: "redis://127.0.0.1:1/0"}, Hash: tc.hash}
			err := a.Provision(ctx)
			if err == nil || !strings.Contains(err.Error(), "register: ") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Provision = %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// TestProvisionRejectsReservedTenantCode: a declared tenant may not take a
// code in the namespace of tenants founded by public registrations.
func TestProvisionRejectsReservedTenantCode(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	a := &App{
		Store:   &StoreConfig{Backend: "redis", URL: "redis://127.0.0.1:1/0"},
		Tenants: []TenantConfig{{ID: "5551aca9e179c39b760f7a1a", Code: "VAT-ES12345678X", Name: "Acme"}},
	}
	err := a.Provision(ctx)
	if err == nil || !strings.Contains(err.Error(), `tenant code "VAT-ES12345678X"`) || !strings.Contains(err.Error(), `starting with "vat-" are reserved`) {
		t.Fatalf("Provision = %v, want the reserved code named", err)
	}
}

// TestStartRefusesTenantClash: a declared tenant whose code another tenant
// holds stops the start with that reason (not the "store not reachable"
// warning an outage gets).
func TestStartRefusesTenantClash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "register.db")
	bs, err := boltstore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	holder := &store.Tenant{ID: "5551aca9e179c39b760f7a1b", Code: "ACME", Name: "Acme (older)", CreatedAt: time.Now()}
	if err := bs.CreateTenant(context.Background(), holder); err != nil {
		t.Fatal(err)
	}
	bs.Close()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	a := &App{
		Store:   &StoreConfig{Backend: "embedded", Path: path},
		Tenants: []TenantConfig{{ID: "5551aca9e179c39b760f7a1a", Code: "acme", Name: "Acme"}},
	}
	if err := a.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer a.Cleanup()
	err = a.Start()
	if err == nil {
		a.Stop()
		t.Fatal("Start succeeded with a declared tenant whose code is taken")
	}
	for _, want := range []string{`code "acme" is held by tenant 5551aca9e179c39b760f7a1b`, `"Acme (older)"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Start = %v, want it to say %s", err, want)
		}
	}
}

func TestSessionsConfig(t *testing.T) {
	s, err := (&SessionsConfig{Idle: caddy.Duration(time.Hour), Lifetime: caddy.Duration(2 * time.Hour), RefreshGrace: -1}).sessions()
	if err != nil || s.IdleTTL != time.Hour || s.AbsoluteTTL != 2*time.Hour || s.RefreshGrace != -1 {
		t.Fatalf("sessions() = %+v, %v", s, err)
	}
	if s, err := (*SessionsConfig)(nil).sessions(); err != nil || s.IdleTTL != 0 {
		t.Fatalf("nil: %+v, %v (zero fields keep the engine's defaults)", s, err)
	}
	if _, err := (&SessionsConfig{Idle: caddy.Duration(3 * time.Hour), Lifetime: caddy.Duration(time.Hour)}).sessions(); err == nil || !strings.Contains(err.Error(), "longer than lifetime") {
		t.Fatalf("idle > lifetime: %v", err)
	}
}
