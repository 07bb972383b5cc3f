package engine_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/store"
	"github.com/caddyregister/caddyregister/caddyregister/store/redisstore"
)

// forgeRefresh returns tok with its secret replaced: what someone who
// read the user id and sid off an access token can make.
func forgeRefresh(t *testing.T, tok string) string {
	t.Helper()
	i := strings.LastIndexByte(tok, '.')
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return tok[:i+1] + base64.RawURLEncoding.EncodeToString(b)
}

// TestRefreshForgedSecretKeepsSession: a refresh token naming a live
// session with a secret it was never issued is refused as unknown and
// revokes nothing; the session's real tokens keep working, and no log
// line carries a token.
func TestRefreshForgedSecretKeepsSession(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			h := newHarness(t, be.open(t), func(c *engine.Config) { c.Sessions.RefreshGrace = -1 })
			uid := activeUser(t, h.e, "forged@example.com")
			s := mustStart(t, h.e, uid)
			wantAuth(t, h.e, s.Access, s.Session.ID)
			for _, tok := range []string{forgeRefresh(t, s.Refresh), forgeRefresh(t, s.Refresh)} {
				_, err := h.e.Refresh(ctx, tok, "", "", engine.SessionLimits{})
				if !errors.Is(err, engine.ErrUnauthenticated) || errors.Is(err, engine.ErrRefreshReused) {
					t.Fatalf("Refresh with a forged secret = %v, want ErrUnauthenticated, not reuse", err)
				}
			}
			wantAuth(t, h.e, s.Access, s.Session.ID)
			next, err := h.e.Refresh(ctx, s.Refresh, "", "", engine.SessionLimits{})
			if err != nil {
				t.Fatalf("Refresh with the real token after forged ones: %v", err)
			}
			// After a rotation too: a forged secret is not the spent one.
			if _, err := h.e.Refresh(ctx, forgeRefresh(t, next.Refresh), "", "", engine.SessionLimits{}); errors.Is(err, engine.ErrRefreshReused) || !errors.Is(err, engine.ErrUnauthenticated) {
				t.Fatalf("forged secret after a rotation = %v", err)
			}
			wantAuth(t, h.e, next.Access, s.Session.ID)
			// The spent token still proves reuse.
			if _, err := h.e.Refresh(ctx, s.Refresh, "", "", engine.SessionLimits{}); !errors.Is(err, engine.ErrRefreshReused) {
				t.Fatalf("spent token = %v, want ErrRefreshReused", err)
			}
			wantRevokedToken(t, h.e, next.Access)
			for _, l := range h.logs.All() {
				line := fmt.Sprint(l.Message, l.ContextMap())
				for _, secret := range []string{s.Refresh, next.Refresh, s.Access, next.Access} {
					if strings.Contains(line, secret[strings.LastIndexByte(secret, '.')+1:]) {
						t.Fatalf("log line carries a token: %s", line)
					}
				}
			}
		})
	}
}

// breakFeed makes the Redis revocation feed unwritable (its key holds a
// string): every revocation's delete succeeds, its publication fails.
func breakFeed(t *testing.T, ev *env) {
	t.Helper()
	st := ev.store.(*redisstore.Store)
	if err := st.Client().Set(context.Background(), st.Key("revoked"), "not a zset", 0).Err(); err != nil {
		t.Fatal(err)
	}
}

// TestRevocationPublishFails: when the store deletes sessions but cannot
// publish them, this instance refuses their tokens at once all the same
// (logout, revoke-all, erasure, reuse), the caller is told the revocation
// is done, and the failure is logged.
func TestRevocationPublishFails(t *testing.T) {
	ctx := context.Background()
	ev := openRedis(t)
	h := newHarness(t, ev, withClock(newFakeClock()), func(c *engine.Config) { c.Sessions.RefreshGrace = -1 })
	uid := activeUser(t, h.e, "unpublished@example.com")
	a, b, c, d := mustStart(t, h.e, uid), mustStart(t, h.e, uid), mustStart(t, h.e, uid), mustStart(t, h.e, uid)
	for _, s := range []*engine.SessionTokens{a, b, c, d} {
		wantAuth(t, h.e, s.Access, s.Session.ID) // cached live
	}
	breakFeed(t, ev)

	err := h.e.Logout(ctx, uid, a.Session.ID)
	wantRevokedToken(t, h.e, a.Access) // at once, here
	if err != nil {
		t.Fatalf("Logout with the feed broken = %v, want done", err)
	}
	if _, err := h.e.Refresh(ctx, a.Refresh, "", "", engine.SessionLimits{}); !errors.Is(err, engine.ErrUnauthenticated) {
		t.Fatalf("Refresh after the logout: %v", err)
	}

	sids, err := h.e.RevokeUserSessions(ctx, uid, c.Session.ID)
	if err != nil {
		t.Fatalf("RevokeUserSessions with the feed broken = %v, want done", err)
	}
	if len(sids) != 2 {
		t.Fatalf("RevokeUserSessions = %v, want b and d", sids)
	}
	wantRevokedToken(t, h.e, b.Access)
	wantRevokedToken(t, h.e, d.Access)
	wantAuth(t, h.e, c.Access, c.Session.ID)

	// Reuse of a spent token.
	next, err := h.e.Refresh(ctx, c.Refresh, "", "", engine.SessionLimits{})
	if err != nil {
		t.Fatal(err)
	}
	wantAuth(t, h.e, next.Access, c.Session.ID)
	if _, err := h.e.Refresh(ctx, c.Refresh, "", "", engine.SessionLimits{}); !errors.Is(err, engine.ErrRefreshReused) {
		t.Fatalf("reuse with the feed broken = %v, want ErrRefreshReused", err)
	}
	wantRevokedToken(t, h.e, next.Access)

	e := mustStart(t, h.e, uid)
	wantAuth(t, h.e, e.Access, e.Session.ID)
	if err := h.e.DeleteUser(ctx, uid); err != nil {
		t.Fatalf("DeleteUser with the feed broken = %v, want done", err)
	}
	wantRevokedToken(t, h.e, e.Access)

	if n := h.logs.FilterMessageSnippet("revocation not published").Len(); n != 4 {
		t.Fatalf("%d warnings of an unpublished revocation, want 4", n)
	}
}

// TestSessionFeedGapAgainUnavailable: a feed that answers a gap again
// right after the reader skipped to its head (its floor past its head) is
// a store fault: the request gets an unavailable error (503), not a 401 or
// a 500; once the feed is sound the token is checked again.
func TestSessionFeedGapAgainUnavailable(t *testing.T) {
	ctx := context.Background()
	ev := openRedis(t)
	clock := newFakeClock()
	h := newHarness(t, ev, withClock(clock))
	uid := activeUser(t, h.e, "gapagain@example.com")
	s := mustStart(t, h.e, uid)
	wantAuth(t, h.e, s.Access, s.Session.ID)
	st := ev.store.(*redisstore.Store)
	floor := st.Key("revoked", "floor")
	if err := st.Client().Set(ctx, floor, 1<<40, 0).Err(); err != nil {
		t.Fatal(err)
	}
	clock.Advance(engine.DefaultRevocationStale)
	_, err := h.e.AuthenticateToken(ctx, s.Access)
	if !errors.Is(err, store.ErrUnavailable) || errors.Is(err, engine.ErrUnauthenticated) {
		t.Fatalf("AuthenticateToken with the feed gapping twice = %v, want ErrUnavailable", err)
	}
	if err := st.Client().Del(ctx, floor).Err(); err != nil {
		t.Fatal(err)
	}
	wantAuth(t, h.e, s.Access, s.Session.ID)
}
