package engine_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// The tests in this file pin promises of the README that no other test
// would notice breaking. Their numbers are literals on purpose: a test
// that derived them from the constants would follow a changed constant.

// payloadClaims decodes a token's payload without verifying it, to see
// what the token itself says (not what the engine makes of it).
func payloadClaims(t *testing.T, tok string) (status string, perms []string) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a JWS", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("decode payload: %v", err)
	}
	var c struct {
		Status      string    `json:"status"`
		Permissions *[]string `json:"permissions"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatalf("payload %s: %v", b, err)
	}
	if c.Permissions == nil {
		t.Fatalf("payload %s has no permissions claim", b)
	}
	return c.Status, *c.Permissions
}

// TestVerifiedTokenCacheHonoursExpiry: a token verified once is served
// from the verified-token cache afterwards, but never past the moment it
// would stop verifying: exp plus the 30 s leeway. The leeway is written
// here as a number, so changing token.DefaultLeeway fails this test.
func TestVerifiedTokenCacheHonoursExpiry(t *testing.T) {
	ctx := context.Background()
	clk := &fakeClock{t: time.Now().Truncate(time.Second)}
	h := newHarness(t, openBolt(t), func(c *engine.Config) { c.Now = clk.Now })
	res := mustRegister(t, h.e, reg("cache@example.com"))
	_, exp := jwtTimes(t, res.Token)
	expiry := time.Unix(exp, 0)
	if got := expiry.Sub(clk.Now()); got != 15*time.Minute {
		t.Fatalf("token lifetime %v, want 15m", got)
	}

	// Verified, and so cached.
	if _, err := h.e.AuthenticateToken(ctx, res.Token); err != nil {
		t.Fatalf("fresh token: %v", err)
	}
	clk.Advance(expiry.Sub(clk.Now()) - time.Second)
	if _, err := h.e.AuthenticateToken(ctx, res.Token); err != nil {
		t.Fatalf("a second before exp: %v", err)
	}
	// Within the leeway the token still verifies (the cache lets it
	// through to verification, which accepts it and caches it again).
	clk.Advance(time.Second + 29*time.Second + 999*time.Millisecond)
	if _, err := h.e.AuthenticateToken(ctx, res.Token); err != nil {
		t.Fatalf("exp+29.999s, within the 30s leeway: %v", err)
	}
	// At exp+30s it is refused, though the cache holds it.
	clk.Advance(time.Millisecond)
	if _, err := h.e.AuthenticateToken(ctx, res.Token); !errors.Is(err, engine.ErrUnauthenticated) {
		t.Fatalf("exp+30s: %v, want ErrUnauthenticated", err)
	}
	if _, _, err := h.e.Me(ctx, res.Token); !errors.Is(err, engine.ErrUnauthenticated) {
		t.Fatalf("Me at exp+30s: %v, want ErrUnauthenticated", err)
	}
	// And it stays refused.
	clk.Advance(time.Hour)
	if _, err := h.e.AuthenticateToken(ctx, res.Token); !errors.Is(err, engine.ErrUnauthenticated) {
		t.Fatalf("an hour later: %v, want ErrUnauthenticated", err)
	}
}

// TestPendingUserHoldsNoDefaultPermissions: a user registered with
// permissions (a handler's default_permissions) holds none of them while
// pending: not in its token's claims, not in the principal the engine
// makes of the token, not through Me. They take effect once activated,
// in the tokens issued after; a token issued while pending stays empty.
func TestPendingUserHoldsNoDefaultPermissions(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			h := newHarness(t, be.open(t))
			r := reg("pending-perms@example.com")
			r.Permissions = []string{"orders:read", "manage-users"}
			r.UserToken = &engine.TokenSpec{Purpose: engine.PurposeActivate}
			res := mustRegister(t, h.e, r)
			if res.User.Status != store.StatusPending {
				t.Fatalf("status %q, want pending", res.User.Status)
			}
			stored, err := h.env.store.GetUser(ctx, res.User.ID)
			if err != nil || len(stored.Permissions) != 2 {
				t.Fatalf("stored user %+v, %v: the permissions must be kept for activation", stored, err)
			}

			status, perms := payloadClaims(t, res.Token)
			if status != "pending" || len(perms) != 0 {
				t.Errorf("pending token claims status %q permissions %v, want pending and []", status, perms)
			}
			p, err := h.e.AuthenticateToken(ctx, res.Token)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Permissions) != 0 || p.Has("orders:read") || p.Require("manage-users") == nil {
				t.Errorf("pending principal %+v holds permissions", p)
			}
			u, mp, err := h.e.Me(ctx, res.Token)
			if err != nil {
				t.Fatal(err)
			}
			if u == nil || u.Status != store.StatusPending || len(mp.Permissions) != 0 || mp.Has("manage-users") {
				t.Errorf("Me of a pending user: user %+v principal %+v", u, mp)
			}

			if _, err := h.e.Activate(ctx, res.UserToken); err != nil {
				t.Fatalf("Activate: %v", err)
			}
			p, tok, err := h.e.Login(ctx, "192.0.2.1", "test-agent", "pending-perms@example.com", goodPassword)
			if err != nil {
				t.Fatalf("Login after activation: %v", err)
			}
			if !p.Has("orders:read") || !p.Has("manage-users") {
				t.Errorf("active principal %+v lacks its permissions", p)
			}
			if status, perms := payloadClaims(t, tok); status != "active" || len(perms) != 2 {
				t.Errorf("active token claims status %q permissions %v", status, perms)
			}
			// The token issued while pending still says what it said.
			if p, err := h.e.AuthenticateToken(ctx, res.Token); err != nil || len(p.Permissions) != 0 {
				t.Errorf("pending token after activation: %+v, %v; want no permissions", p, err)
			}
		})
	}
}
