package engine_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/password"
	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// putUser writes a user record directly, as one written before this
// release (or, for AdminPermissions, by the future admin API) would be.
func putUser(t *testing.T, st store.Store, email string, status store.Status, perms, adminPerms []string) *store.User {
	t.Helper()
	now := time.Now()
	u := &store.User{
		ID: store.NewID(now), Email: email, EmailKey: store.EmailKey(email),
		PasswordHash: mustHash(t, cheap, goodPassword), Status: status,
		Permissions: perms, AdminPermissions: adminPerms, Contract: "test",
		CreatedAt: now, UpdatedAt: now,
	}
	if err := st.CreateUser(context.Background(), store.NewUser{User: u}); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	return u
}

// TestRequireAdmin: admin routes take configured admins holding the
// permission, and users only through an explicit grant; a user's ordinary
// permissions, even "*" or "manage-users", never open them.
func TestRequireAdmin(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			h := newHarness(t, be.open(t), func(c *engine.Config) {
				c.Admins = []engine.Admin{
					{Login: "root", Hash: mustHash(t, cheap, "root-secret"), Permissions: []string{engine.PermManageUsers}},
					{Login: "all", Hash: mustHash(t, cheap, "all-secret"), Permissions: []string{engine.PermissionAll}},
					{Login: "viewer", Hash: mustHash(t, cheap, "viewer-secret"), Permissions: []string{"view-stat"}},
				}
			})
			principal := func(t *testing.T, identifier, pass string) *engine.Principal {
				t.Helper()
				_, tok, err := h.e.Login(ctx, "192.0.2.9", "test-agent", identifier, pass)
				if err != nil {
					t.Fatalf("Login(%s): %v", identifier, err)
				}
				p, err := h.e.AuthenticateToken(ctx, tok)
				if err != nil {
					t.Fatalf("AuthenticateToken(%s): %v", identifier, err)
				}
				return p
			}
			basic := func(t *testing.T, login, pass string) *engine.Principal {
				t.Helper()
				p, err := h.e.AuthenticateBasic(ctx, "192.0.2.9", login, pass)
				if err != nil {
					t.Fatalf("AuthenticateBasic(%s): %v", login, err)
				}
				return p
			}
			putUser(t, h.env.store, "legacy@example.com", store.StatusActive, []string{engine.PermManageUsers, engine.PermissionAll}, nil)
			putUser(t, h.env.store, "granted@example.com", store.StatusActive, nil, []string{engine.PermManageUsers})
			putUser(t, h.env.store, "wildcard@example.com", store.StatusActive, nil, []string{engine.PermissionAll})
			pending := putUser(t, h.env.store, "pending@example.com", store.StatusPending, nil, []string{engine.PermManageUsers})
			inactive := putUser(t, h.env.store, "inactive@example.com", store.StatusInactive, nil, []string{engine.PermManageUsers})
			// Pending and inactive users cannot log in; their principals
			// are what a token issued while they were active would give.
			asUser := func(u *store.User) *engine.Principal {
				return &engine.Principal{Kind: engine.KindUser, ID: u.ID, Status: string(u.Status)}
			}
			cases := []struct {
				name string
				p    *engine.Principal
				want error
			}{
				{"admin by Basic", basic(t, "root", "root-secret"), nil},
				{"admin by token", principal(t, "root", "root-secret"), nil},
				{"admin holding *", basic(t, "all", "all-secret"), nil},
				{"admin without the permission", basic(t, "viewer", "viewer-secret"), engine.ErrForbidden},
				{"user holding manage-users and *", principal(t, "legacy@example.com", goodPassword), engine.ErrForbidden},
				{"user granted manage-users", principal(t, "granted@example.com", goodPassword), nil},
				{"user granted * (grants are exact names)", principal(t, "wildcard@example.com", goodPassword), engine.ErrForbidden},
				{"pending user with a grant", asUser(pending), engine.ErrForbidden},
				{"inactive user with a grant", asUser(inactive), engine.ErrForbidden},
				{"user that no longer exists", &engine.Principal{Kind: engine.KindUser, ID: "gone", Status: "active"}, engine.ErrUnauthenticated},
				{"no principal", nil, engine.ErrUnauthenticated},
			}
			for _, tc := range cases {
				err := h.e.RequireAdmin(ctx, tc.p, engine.PermManageUsers)
				if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
					t.Errorf("%s: RequireAdmin = %v, want %v", tc.name, err, tc.want)
				}
			}
		})
	}
}

// TestCheckDefaultPermissions: "*" and the admin permissions are refused
// with a message naming the permission and the fix.
func TestCheckDefaultPermissions(t *testing.T) {
	for _, tc := range []struct {
		perms []string
		want  string
	}{
		{[]string{"read", "*"}, `"*" grants every permission`},
		{[]string{"manage-objects", engine.PermManageUsers}, `"manage-users" is an admin permission`},
	} {
		err := engine.CheckDefaultPermissions(tc.perms)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "default_permissions") {
			t.Errorf("CheckDefaultPermissions(%q) = %v, want %q", tc.perms, err, tc.want)
		}
	}
	if err := engine.CheckDefaultPermissions([]string{"read", "manage-objects", "view-section-stat"}); err != nil {
		t.Errorf("ordinary permissions refused: %v", err)
	}
	for _, p := range engine.AdminPermissions {
		if !engine.IsAdminPermission(p) {
			t.Errorf("IsAdminPermission(%q) = false", p)
		}
	}
}

// TestAdminTokenFollowsConfig: an admin token is bound to a fingerprint of
// the configured hash (never the hash itself) and takes its permissions
// from the current config, on a cache hit as on a miss. A reload builds a
// new engine on the same store, so a second engine is the changed config.
func TestAdminTokenFollowsConfig(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			ev := be.open(t)
			hash := mustHash(t, cheap, "root-secret")
			h := newHarness(t, ev, func(c *engine.Config) {
				c.Admins = []engine.Admin{{Login: "root", Hash: hash, Permissions: []string{engine.PermManageUsers}}}
			})
			_, tok, err := h.e.Login(ctx, "192.0.2.7", "test-agent", "root", "root-secret")
			if err != nil {
				t.Fatal(err)
			}
			// The claim is a digest: neither the hash nor its salt is in it.
			payload, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
			if err != nil {
				t.Fatal(err)
			}
			var claims map[string]any
			if err := json.Unmarshal(payload, &claims); err != nil {
				t.Fatal(err)
			}
			salt := strings.Split(hash, "$")[4]
			if fp, _ := claims["cfp"].(string); len(fp) != 22 || strings.Contains(string(payload), salt) {
				t.Fatalf("admin token claims: %s", payload)
			}
			reconfigured := func(t *testing.T, a engine.Admin) *engine.Engine {
				t.Helper()
				e, err := engine.New(engine.Config{Store: ev.reopen(t), Hasher: cheap, Pool: password.NewPool(password.PoolConfig{}), Admins: []engine.Admin{a}})
				if err != nil {
					t.Fatal(err)
				}
				return e
			}

			t.Run("same config", func(t *testing.T) {
				e := reconfigured(t, engine.Admin{Login: "root", Hash: hash, Permissions: []string{engine.PermManageUsers}})
				for range 2 { // a miss, then a cache hit
					p, err := e.AuthenticateToken(ctx, tok)
					if err != nil || e.RequireAdmin(ctx, p, engine.PermManageUsers) != nil {
						t.Fatalf("token refused by an engine with the same config: %v", err)
					}
				}
			})
			t.Run("hash changed", func(t *testing.T) {
				// Same password, new hash (new salt): the operator rotated it.
				e := reconfigured(t, engine.Admin{Login: "root", Hash: mustHash(t, cheap, "root-secret"), Permissions: []string{engine.PermManageUsers}})
				for range 2 {
					if p, err := e.AuthenticateToken(ctx, tok); !errors.Is(err, engine.ErrUnauthenticated) {
						t.Fatalf("token issued against the old hash accepted: %+v %v", p, err)
					}
				}
				// A fresh login against the new hash works.
				_, fresh, err := e.Login(ctx, "192.0.2.7", "test-agent", "root", "root-secret")
				if err != nil {
					t.Fatal(err)
				}
				if _, err := e.AuthenticateToken(ctx, fresh); err != nil {
					t.Fatalf("fresh token refused: %v", err)
				}
			})
			t.Run("permissions changed", func(t *testing.T) {
				e := reconfigured(t, engine.Admin{Login: "root", Hash: hash, Permissions: []string{"view-stat"}})
				for range 2 {
					p, err := e.AuthenticateToken(ctx, tok)
					if err != nil {
						t.Fatal(err)
					}
					if !slices.Equal(p.Permissions, []string{"view-stat"}) {
						t.Fatalf("permissions = %q, want the configured [view-stat]", p.Permissions)
					}
					if err := e.RequireAdmin(ctx, p, engine.PermManageUsers); !errors.Is(err, engine.ErrForbidden) {
						t.Fatalf("withdrawn permission still granted: %v", err)
					}
				}
			})
			t.Run("admin removed", func(t *testing.T) {
				e := reconfigured(t, engine.Admin{Login: "other", Hash: hash})
				if _, err := e.AuthenticateToken(ctx, tok); !errors.Is(err, engine.ErrUnauthenticated) {
					t.Fatalf("token of a removed admin accepted: %v", err)
				}
			})
		})
	}
}
