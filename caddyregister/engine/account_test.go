package engine_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/password"
	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// The account API's credential steps: LoginSession, ChangePassword,
// DeleteAccount and LogoutRefresh, on both stores.
func TestAccountCredentialSteps(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			clock := newFakeClock()
			h := newHarness(t, be.open(t), withClock(clock))
			e := h.e
			uid := activeUser(t, e, "acct@example.com")

			// Unknown and wrong: the same error; a session on success.
			if _, err := e.LoginSession(ctx, "192.0.2.7", "ua", "nobody@example.com", goodPassword, engine.SessionLimits{}); !errors.Is(err, engine.ErrUnauthenticated) {
				t.Fatalf("unknown: %v", err)
			}
			if _, err := e.LoginSession(ctx, "192.0.2.7", "ua", "acct@example.com", "wrong-password", engine.SessionLimits{}); !errors.Is(err, engine.ErrUnauthenticated) {
				t.Fatalf("wrong: %v", err)
			}
			a, err := e.LoginSession(ctx, "192.0.2.7", "ua", "acct@example.com", goodPassword, engine.SessionLimits{})
			if err != nil || a.Refresh == "" || a.Session == nil || a.Principal.SID != a.Session.ID {
				t.Fatalf("LoginSession = %+v, %v", a, err)
			}
			b := mustStart(t, e, uid)

			// A spent refresh token ends nothing; the current one does.
			clock.Advance(time.Minute)
			a2, err := e.Refresh(ctx, a.Refresh, "192.0.2.7", "ua", engine.SessionLimits{})
			if err != nil {
				t.Fatal(err)
			}
			if err := e.LogoutRefresh(ctx, a.Refresh); !errors.Is(err, engine.ErrUnauthenticated) {
				t.Fatalf("LogoutRefresh(spent) = %v", err)
			}
			wantAuth(t, e, a2.Access, a.Session.ID)

			// A wrong current password changes nothing; a weak new one is
			// named as new_password.
			pa, err := e.AuthenticateToken(ctx, a2.Access)
			if err != nil {
				t.Fatal(err)
			}
			before := h.env.snapshot(t)
			if err := e.ChangePassword(ctx, "192.0.2.7", pa, "wrong-password", "another-password", password.NIST()); !errors.Is(err, engine.ErrUnauthenticated) {
				t.Fatalf("wrong current: %v", err)
			}
			var v *engine.ValidationError
			if err := e.ChangePassword(ctx, "192.0.2.7", pa, goodPassword, "short", password.NIST()); !errors.As(err, &v) || v.Fields[0].Field != "new_password" {
				t.Fatalf("weak new: %v", err)
			}
			if before != h.env.snapshot(t) {
				t.Fatal("a refused change wrote")
			}
			if err := e.ChangePassword(ctx, "192.0.2.7", pa, goodPassword, "another-password", password.NIST()); err != nil {
				t.Fatalf("ChangePassword: %v", err)
			}
			wantAuth(t, e, a2.Access, a.Session.ID) // the changing session stays
			if _, err := e.AuthenticateToken(ctx, b.Access); !errors.Is(err, engine.ErrSessionRevoked) {
				t.Fatalf("other session after the change: %v", err)
			}
			if err := e.LogoutRefresh(ctx, a2.Refresh); err != nil {
				t.Fatalf("LogoutRefresh: %v", err)
			}
			if _, err := e.AuthenticateToken(ctx, a2.Access); !errors.Is(err, engine.ErrSessionRevoked) {
				t.Fatalf("after LogoutRefresh: %v", err)
			}

			// Erasure needs the password, then the user is gone.
			c, err := e.LoginSession(ctx, "192.0.2.7", "ua", "acct@example.com", "another-password", engine.SessionLimits{})
			if err != nil {
				t.Fatal(err)
			}
			if err := e.DeleteAccount(ctx, "192.0.2.7", c.Principal, goodPassword); !errors.Is(err, engine.ErrUnauthenticated) {
				t.Fatalf("DeleteAccount(wrong) = %v", err)
			}
			if err := e.DeleteAccount(ctx, "192.0.2.7", c.Principal, "another-password"); err != nil {
				t.Fatalf("DeleteAccount: %v", err)
			}
			if _, err := e.GetUser(ctx, uid); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("GetUser after erasure: %v", err)
			}
			if _, err := e.AuthenticateToken(ctx, c.Access); !errors.Is(err, engine.ErrSessionRevoked) {
				t.Fatalf("token after erasure: %v", err)
			}
		})
	}
}

// Checking the current password goes through the account lockout: a
// stolen access token guesses no faster than a login.
func TestCheckUserPasswordLocks(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, openRedis(t))
	uid := activeUser(t, h.e, "lock@example.com")
	var err error
	for range 20 {
		if err = h.e.CheckUserPassword(ctx, "192.0.2.9", uid, "wrong-password"); !errors.Is(err, engine.ErrUnauthenticated) {
			break
		}
	}
	var rl *engine.RateLimitedError
	if !errors.As(err, &rl) || rl.RetryAfter <= 0 {
		t.Fatalf("after repeated failures: %v", err)
	}
	// Locked: even the right password is refused without a hash.
	if err := h.e.CheckUserPassword(ctx, "192.0.2.9", uid, goodPassword); !errors.As(err, &rl) {
		t.Fatalf("right password while locked: %v", err)
	}
	// Admins have no account to change or erase.
	admin := &engine.Principal{Kind: engine.KindAdmin, ID: "root"}
	if err := h.e.ChangePassword(ctx, "192.0.2.9", admin, "x", "y", password.NIST()); !errors.Is(err, engine.ErrForbidden) {
		t.Fatalf("admin ChangePassword: %v", err)
	}
}
