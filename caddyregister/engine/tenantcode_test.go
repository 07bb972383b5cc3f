package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/password"
	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// TestPublicTenantCodes: a tenant founded by a public registration gets a
// code in the reserved "vat-" namespace, so the operator can declare the
// bare VAT id as a code later and still start; declared and admin-made
// tenants may not use the namespace.
func TestPublicTenantCodes(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			ev := be.open(t)
			h := newHarness(t, ev)
			r := reg("founder@example.com")
			r.Tenant = &engine.NewTenant{Company: "Acme S.L.", VATID: "es 12.345.678-x"}
			res := mustRegister(t, h.e, r)
			if res.Tenant.Code != "vat-ES12345678X" {
				t.Fatalf("public tenant code = %q, want vat-ES12345678X", res.Tenant.Code)
			}

			// The operator declares the VAT id as a code afterwards: it starts.
			decl := store.Tenant{ID: store.NewID(time.Now()), Code: "ES12345678X", Name: "Acme (declared)"}
			h2 := newHarness(t, ev, func(c *engine.Config) { c.Tenants = []store.Tenant{decl} })
			if id, err := ev.store.TenantIDByCode(ctx, "es12345678x"); err != nil || id != decl.ID {
				t.Errorf("declared code resolves to %q, %v; want %s", id, err, decl.ID)
			}
			if tn, err := h2.e.ResolveTenant(ctx, decl.ID, "ES12345678X"); err != nil || tn.ID != decl.ID {
				t.Errorf("ResolveTenant(declared) = %+v, %v", tn, err)
			}
			// Addressing the public tenant takes its id as well as its code.
			if _, err := h2.e.ResolveTenant(ctx, store.NewID(time.Now()), res.Tenant.Code); !errors.Is(err, engine.ErrTenantMismatch) {
				t.Errorf("ResolveTenant(guessed id, public code) = %v, want ErrTenantMismatch", err)
			}

			// Declared codes may not use the reserved namespace: refused
			// when the engine is built (Caddy's provision).
			for _, code := range []string{"vat-ES1", "VAT-anything", " Vat-x"} {
				_, err := engine.New(engine.Config{Store: ev.store, Hasher: cheap, Pool: password.NewPool(password.PoolConfig{}),
					Tenants: []store.Tenant{{ID: store.NewID(time.Now()), Code: code}}})
				if !errors.Is(err, engine.ErrReservedTenantCode) || !strings.Contains(err.Error(), `"vat-"`) {
					t.Errorf("engine.New with declared code %q = %v, want ErrReservedTenantCode", code, err)
				}
			}
			// Nor admin-created ones: a "code" field error, nothing written.
			before := ev.snapshot(t)
			err := h.e.CreateTenant(ctx, &store.Tenant{Code: "vat-FR1", Name: "Sneaky"})
			var ve *engine.ValidationError
			if !errors.As(err, &ve) || ve.Fields[0].Field != "code" || ve.Fields[0].Rule != "reserved" {
				t.Errorf("CreateTenant(vat-FR1) = %v, want a reserved code field error", err)
			}
			if ev.snapshot(t) != before {
				t.Error("refused CreateTenant wrote")
			}
		})
	}
}

// TestDeclaredTenantCodeTaken: a declared tenant whose code another
// tenant holds fails at start with a message naming the code and the
// holder (here one founded by a public registration before the reserved
// namespace existed).
func TestDeclaredTenantCodeTaken(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			ev := be.open(t)
			legacy := &store.Tenant{ID: store.NewID(time.Now()), Code: "DE811907980", Name: "Legacy GmbH", CreatedBy: "5f0c1a2b3c4d5e6f70819203", CreatedAt: time.Now()}
			if err := ev.store.CreateTenant(ctx, legacy); err != nil {
				t.Fatal(err)
			}
			decl := store.Tenant{ID: store.NewID(time.Now()), Code: "de811907980", Name: "Declared"}
			e, err := engine.New(engine.Config{Store: ev.store, Hasher: cheap, Pool: password.NewPool(password.PoolConfig{}),
				Tenants: []store.Tenant{decl}})
			if err != nil {
				t.Fatal(err)
			}
			err = e.Start(ctx)
			var ce *store.ConflictError
			if !errors.As(err, &ce) || ce.Field != "tenant_code" {
				t.Fatalf("Start = %v, want a tenant_code conflict", err)
			}
			for _, want := range []string{`"de811907980"`, legacy.ID, "Legacy GmbH", "public registration of user 5f0c1a2b3c4d5e6f70819203"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Start error %q does not name %s", err, want)
				}
			}
			// An id held under another code names that code.
			decl2 := store.Tenant{ID: legacy.ID, Code: "Other", Name: "Other"}
			e, _ = engine.New(engine.Config{Store: ev.store, Hasher: cheap, Pool: password.NewPool(password.PoolConfig{}), Tenants: []store.Tenant{decl2}})
			if err := e.Start(ctx); !errors.As(err, &ce) || ce.Field != "tenant_id" || !strings.Contains(err.Error(), `"DE811907980"`) {
				t.Errorf("Start with a taken id = %v, want it to name the holder's code", err)
			}
		})
	}
}
