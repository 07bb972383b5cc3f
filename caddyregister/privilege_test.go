package caddyregister

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// validate runs Caddy's own validation (what `caddy validate` does: every
// module provisioned, nothing started) on a register handler config.
func validate(t *testing.T, handler map[string]any) error {
	t.Helper()
	cfg := map[string]any{
		"admin": map[string]any{"disabled": true},
		"apps": map[string]any{
			// Provision opens no connection, so an unreachable Redis does.
			"register": map[string]any{"store": map[string]any{"backend": "redis", "url": "redis://127.0.0.1:1/0"}},
			"http": map[string]any{"servers": map[string]any{"s": map[string]any{
				"listen": []string{"127.0.0.1:0"},
				"routes": []any{map[string]any{"handle": []any{handler}}},
			}}},
		},
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var c caddy.Config
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return caddy.Validate(&c)
}

// TestProvisionRefusesAdminDefaultPermissions: default_permissions may not
// hand every new user "*" or an admin permission, in any contract; the
// error names the permission and the fix.
func TestProvisionRefusesAdminDefaultPermissions(t *testing.T) {
	for _, tc := range []struct {
		contract string
		perms    []string
		want     string
	}{
		{"saymon", []string{"manage-objects", "manage-users"}, `"manage-users" is an admin permission`},
		{"soajs", []string{"manage-users"}, "admin <login> <hash> manage-users"},
		{"noraina", []string{"*"}, `"*" grants every permission`},
		{"rpost", []string{"read", "*"}, `"*" grants every permission`},
		{"indiqus", []string{"manage-users"}, `"manage-users" is an admin permission`},
	} {
		t.Run(tc.contract, func(t *testing.T) {
			err := validate(t, map[string]any{"handler": "register", "contract": tc.contract, "default_permissions": tc.perms})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "default_permissions") {
				t.Fatalf("validate = %v, want an error with %q", err, tc.want)
			}
		})
	}
	// Ordinary permissions still load.
	if err := validate(t, map[string]any{"handler": "register", "contract": "saymon", "default_permissions": []string{"manage-objects", "view-section-stat"}}); err != nil {
		t.Fatalf("ordinary default_permissions refused: %v", err)
	}
}
