package engine_test

import (
	"context"
	"errors"
	"testing"

	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/password"
	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// TestAuthenticateUserBasic: a user's Basic credentials (the gate's
// `basic`) cost one hash, then are cached; the cache never outlives a
// password change, a disable or an erasure made through this instance.
func TestAuthenticateUserBasic(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			h := newHarness(t, be.open(t), func(c *engine.Config) {
				c.Admins = []engine.Admin{{Login: "root", Hash: mustHash(t, password.Bcrypt{Cost: 4}, "rootpw"), Permissions: []string{"*"}}}
			})
			r := reg("basic@example.com")
			r.Login = "basicuser"
			r.Status = store.StatusActive
			uid := mustRegister(t, h.e, r).User.ID

			before := h.hashes.total()
			for _, ident := range []string{"basic@example.com", "basic@example.com", "basicuser", "basicuser"} {
				p, err := h.e.AuthenticateUserBasic(ctx, "192.0.2.5", ident, goodPassword)
				if err != nil {
					t.Fatalf("%s: %v", ident, err)
				}
				if p.Kind != engine.KindUser || p.ID != uid || p.Email != "basic@example.com" || p.Login != "basicuser" || p.Status != "active" || p.SID != "" {
					t.Fatalf("principal %+v", p)
				}
			}
			if n := h.hashes.total() - before; n != 2 {
				t.Fatalf("%d hashes for two identifiers used twice each, want 2", n)
			}

			for name, c := range map[string][2]string{"wrong password": {"basic@example.com", "wrong"}, "unknown": {"nobody@example.com", goodPassword}, "empty": {"basic@example.com", ""}} {
				if p, err := h.e.AuthenticateUserBasic(ctx, "192.0.2.6", c[0], c[1]); !errors.Is(err, engine.ErrUnauthenticated) || p != nil {
					t.Fatalf("%s: %+v, %v", name, p, err)
				}
			}

			// An admin goes through AuthenticateBasic.
			if p, err := h.e.AuthenticateUserBasic(ctx, "192.0.2.7", "root", "rootpw"); err != nil || p.Kind != engine.KindAdmin {
				t.Fatalf("admin: %+v, %v", p, err)
			}

			// A password change: the cached credentials stop at once.
			const next = "a brand new passphrase 42"
			if _, err := h.e.UpdateUser(ctx, uid, engine.UserUpdate{Password: strp(next), PasswordPolicy: password.NIST()}); err != nil {
				t.Fatal(err)
			}
			if _, err := h.e.AuthenticateUserBasic(ctx, "192.0.2.5", "basic@example.com", goodPassword); !errors.Is(err, engine.ErrUnauthenticated) {
				t.Fatalf("old password after the change: %v", err)
			}
			if _, err := h.e.AuthenticateUserBasic(ctx, "192.0.2.5", "basic@example.com", next); err != nil {
				t.Fatalf("new password: %v", err)
			}
			// Disabled: refused, cached or not.
			if _, err := h.e.UpdateUser(ctx, uid, engine.UserUpdate{Status: strp("inactive")}); err != nil {
				t.Fatal(err)
			}
			if _, err := h.e.AuthenticateUserBasic(ctx, "192.0.2.5", "basic@example.com", next); !errors.Is(err, engine.ErrAccountDisabled) {
				t.Fatalf("disabled user: %v", err)
			}

			// A pending user: refused once the password checked out.
			pend := mustRegister(t, h.e, reg("pending-basic@example.com")).User.ID
			if _, err := h.e.AuthenticateUserBasic(ctx, "192.0.2.8", "pending-basic@example.com", goodPassword); !errors.Is(err, engine.ErrNotActivated) {
				t.Fatalf("pending user %s: %v", pend, err)
			}
		})
	}
}
