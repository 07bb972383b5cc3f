package noraina_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"testing"

	"github.com/caddyregister/caddyregister/caddyregister/contract"
	"github.com/caddyregister/caddyregister/caddyregister/contract/noraina"
	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/password"
	"github.com/caddyregister/caddyregister/caddyregister/store/boltstore"
)

// TestMeHidesPermissionsOfPendingUser: /me answers a pending user's
// permissions as [] even when the user was registered with some (a user
// created by another contract's default_permissions, say), and shows them
// once the user is active.
func TestMeHidesPermissionsOfPendingUser(t *testing.T) {
	ctx := context.Background()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "r.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e, err := engine.New(engine.Config{
		Store:  st,
		Hasher: password.Argon2id{MemoryKiB: 1024, Time: 1, Threads: 1},
		Pool:   password.NewPool(password.PoolConfig{}),
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.Register(ctx, engine.Registration{
		Contract: "test", Email: "pending@example.com", Password: "correct horse battery staple",
		Policy: password.NIST(), IssueToken: true,
		Permissions: []string{"orders:read"},
		UserToken:   &engine.TokenSpec{Purpose: engine.PurposeActivate},
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := noraina.New(contract.Env{Engine: e, Prefix: "/api"})
	if err != nil {
		t.Fatal(err)
	}
	var me contract.Route
	for _, rt := range c.Routes() {
		if rt.Path == "/me" {
			me = rt
		}
	}
	permissions := func() (string, []string) {
		t.Helper()
		r := httptest.NewRequest(http.MethodGet, "/api/me", nil)
		r.Header.Set("x-access-token", res.Token)
		w := httptest.NewRecorder()
		me.Serve(w, r, &contract.Request{ClientIP: "192.0.2.1"})
		if w.Code != http.StatusOK {
			t.Fatalf("/me: %d %s", w.Code, w.Body)
		}
		var body struct {
			Data struct {
				Status      string    `json:"status"`
				Permissions *[]string `json:"permissions"`
			} `json:"data"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Data.Permissions == nil {
			t.Fatalf("/me body %s: %v", w.Body, err)
		}
		return body.Data.Status, *body.Data.Permissions
	}
	if status, perms := permissions(); status != "pending" || len(perms) != 0 {
		t.Fatalf("/me of a pending user: status %q permissions %v, want pending and []", status, perms)
	}
	if _, err := e.Activate(ctx, res.UserToken); err != nil {
		t.Fatal(err)
	}
	if status, perms := permissions(); status != "active" || !slices.Equal(perms, []string{"orders:read"}) {
		t.Fatalf("/me once active: status %q permissions %v", status, perms)
	}
}
