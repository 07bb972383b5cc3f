package engine_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/store"
	"github.com/caddyregister/caddyregister/caddyregister/store/storetest"
	"github.com/caddyregister/caddyregister/caddyregister/token"
	"github.com/caddyregister/caddyregister/internal/testredis"
)

// withClock runs an engine on c (features_test.go's fakeClock).
func withClock(c *fakeClock) func(*engine.Config) {
	return func(cfg *engine.Config) { cfg.Now = c.Now }
}

// countingStore counts the reads a test bounds on a real store: signing
// key reads (reads), and the session reads the liveness check makes; it
// can answer one feed read with a gap.
type countingStore struct {
	store.Store
	reads, gets, feeds, users atomic.Int64
	gapOnce                   atomic.Bool
}

func (s *countingStore) LoadOrCreateSecret(ctx context.Context, name string, v []byte) ([]byte, error) {
	s.reads.Add(1)
	return s.Store.LoadOrCreateSecret(ctx, name, v)
}

func (s *countingStore) GetUser(ctx context.Context, id string) (*store.User, error) {
	s.users.Add(1)
	return s.Store.GetUser(ctx, id)
}

func (s *countingStore) GetSession(ctx context.Context, userID, sid string) (*store.Session, error) {
	s.gets.Add(1)
	return s.Store.GetSession(ctx, userID, sid)
}

func (s *countingStore) Revocations(ctx context.Context, after uint64, limit int) ([]store.Revocation, uint64, error) {
	s.feeds.Add(1)
	if s.gapOnce.CompareAndSwap(true, false) {
		// Pretend every entry so far was trimmed: the reader skips to the
		// head without seeing them.
		_, head, err := s.Store.Revocations(ctx, ^uint64(0), 1)
		if !errors.Is(err, store.ErrRevocationGap) {
			return nil, 0, err
		}
		return nil, head, store.ErrRevocationGap
	}
	return s.Store.Revocations(ctx, after, limit)
}

// activeUser registers an active user and returns its id.
func activeUser(t *testing.T, e *engine.Engine, email string) string {
	t.Helper()
	r := reg(email)
	r.Status = store.StatusActive
	r.IssueToken = false // no registration session: tests count sessions
	return mustRegister(t, e, r).User.ID
}

func mustStart(t *testing.T, e *engine.Engine, userID string) *engine.SessionTokens {
	t.Helper()
	st, err := e.StartSession(context.Background(), userID, "192.0.2.10", "test-agent/1", engine.SessionLimits{})
	if err != nil {
		t.Fatalf("StartSession: %v", err)
	}
	return st
}

func wantAuth(t *testing.T, e *engine.Engine, tok, sid string) {
	t.Helper()
	p, err := e.AuthenticateToken(context.Background(), tok)
	if err != nil {
		t.Fatalf("AuthenticateToken: %v", err)
	}
	if p.SID != sid {
		t.Fatalf("principal sid %q, want %q", p.SID, sid)
	}
}

func wantRevokedToken(t *testing.T, e *engine.Engine, tok string) {
	t.Helper()
	_, err := e.AuthenticateToken(context.Background(), tok)
	if !errors.Is(err, engine.ErrSessionRevoked) || !errors.Is(err, engine.ErrUnauthenticated) {
		t.Fatalf("AuthenticateToken of a revoked session's token = %v, want ErrSessionRevoked", err)
	}
}

func TestSessionLifecycle(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			clock := newFakeClock()
			h := newHarness(t, be.open(t), withClock(clock))
			uid := activeUser(t, h.e, "life@example.com")

			first := mustStart(t, h.e, uid)
			sid := first.Session.ID
			if first.Principal.Status != "active" || first.AccessTTL != h.e.TokenTTL() || !strings.HasPrefix(first.Refresh, uid+"."+sid+".") {
				t.Fatalf("StartSession = %+v", first)
			}
			wantAuth(t, h.e, first.Access, sid)
			list, err := h.e.ListSessions(ctx, uid)
			if err != nil || len(list) != 1 || list[0].ID != sid || list[0].RefreshHash != "" || list[0].ClientIP != "192.0.2.10" {
				t.Fatalf("ListSessions = %+v, %v", list, err)
			}

			clock.Advance(time.Minute)
			second, err := h.e.Refresh(ctx, first.Refresh, "192.0.2.11", "test-agent/2", engine.SessionLimits{})
			if err != nil {
				t.Fatalf("Refresh: %v", err)
			}
			if second.Session.ID != sid || second.Refresh == first.Refresh || second.Access == first.Access {
				t.Fatalf("Refresh = %+v", second)
			}
			wantAuth(t, h.e, second.Access, sid)
			wantAuth(t, h.e, first.Access, sid) // same session, still live

			// The spent token again within the grace window: refused,
			// nothing revoked.
			clock.Advance(engine.DefaultRefreshGrace - time.Second)
			if _, err := h.e.Refresh(ctx, first.Refresh, "", "", engine.SessionLimits{}); !errors.Is(err, engine.ErrRefreshConflict) || !errors.Is(err, engine.ErrUnauthenticated) {
				t.Fatalf("reuse within grace: %v, want ErrRefreshConflict", err)
			}
			wantAuth(t, h.e, second.Access, sid)

			// Past the window: reuse detected, the whole session goes, and
			// this instance refuses its access tokens at once.
			clock.Advance(2 * time.Second)
			if _, err := h.e.Refresh(ctx, first.Refresh, "", "", engine.SessionLimits{}); !errors.Is(err, engine.ErrRefreshReused) {
				t.Fatalf("reuse after grace: %v, want ErrRefreshReused", err)
			}
			wantRevokedToken(t, h.e, second.Access)
			wantRevokedToken(t, h.e, first.Access)
			if _, err := h.e.Refresh(ctx, second.Refresh, "", "", engine.SessionLimits{}); !errors.Is(err, engine.ErrUnauthenticated) || errors.Is(err, engine.ErrRefreshReused) {
				t.Fatalf("successor after revocation: %v, want plain ErrUnauthenticated", err)
			}
			if list, _ := h.e.ListSessions(ctx, uid); len(list) != 0 {
				t.Fatalf("sessions after reuse: %+v", list)
			}
		})
	}
}

func TestSessionLogoutAndRevokeAll(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			h := newHarness(t, be.open(t))
			uid := activeUser(t, h.e, "out@example.com")
			a, b, c := mustStart(t, h.e, uid), mustStart(t, h.e, uid), mustStart(t, h.e, uid)
			for _, s := range []*engine.SessionTokens{a, b, c} {
				wantAuth(t, h.e, s.Access, s.Session.ID) // cached live
			}
			if err := h.e.Logout(ctx, uid, a.Session.ID); err != nil {
				t.Fatalf("Logout: %v", err)
			}
			wantRevokedToken(t, h.e, a.Access)
			if _, err := h.e.Refresh(ctx, a.Refresh, "", "", engine.SessionLimits{}); !errors.Is(err, engine.ErrUnauthenticated) {
				t.Fatalf("Refresh after logout: %v", err)
			}
			if err := h.e.Logout(ctx, uid, a.Session.ID); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("second Logout: %v, want store.ErrNotFound", err)
			}
			sids, err := h.e.RevokeUserSessions(ctx, uid, c.Session.ID)
			if err != nil || len(sids) != 1 || sids[0] != b.Session.ID {
				t.Fatalf("RevokeUserSessions = %v, %v; want [%s]", sids, err, b.Session.ID)
			}
			wantRevokedToken(t, h.e, b.Access)
			wantAuth(t, h.e, c.Access, c.Session.ID)
		})
	}
}

// TestTokensWithoutRefreshHaveSessions: a registration's token and a
// contract login's (no refresh token) belong to sessions that last as
// long as the token verifies, and die with a disable, a logout or an
// erasure like any other.
func TestTokensWithoutRefreshHaveSessions(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			h := newHarness(t, be.open(t))
			r := reg("nosid@example.com")
			r.Status = store.StatusActive
			r.UserAgent = "registering-agent/1"
			res := mustRegister(t, h.e, r)
			p, err := h.e.AuthenticateToken(ctx, res.Token)
			if err != nil || p.SID == "" {
				t.Fatalf("registration token: %+v, %v; want a sid", p, err)
			}
			list, err := h.e.ListSessions(ctx, res.User.ID)
			if err != nil || len(list) != 1 || list[0].ID != p.SID || list[0].UserAgent != "registering-agent/1" || list[0].ClientIP != r.ClientIP {
				t.Fatalf("ListSessions = %+v, %v", list, err)
			}
			_, exp := jwtTimes(t, res.Token)
			if end := list[0].ExpiresAt; !list[0].IdleExpiresAt.Equal(end) || end.Unix() != exp+int64(token.DefaultLeeway/time.Second) {
				t.Fatalf("registration session ends %v / %v, want the token's exp %d plus the leeway", list[0].IdleExpiresAt, end, exp)
			}

			lp, login, err := h.e.Login(ctx, "192.0.2.77", "login-agent/1", "nosid@example.com", goodPassword)
			if err != nil || lp.SID == "" || lp.SID == p.SID {
				t.Fatalf("Login = %+v, %v; want a new sid", lp, err)
			}
			wantAuth(t, h.e, login, lp.SID)
			if err := h.e.Logout(ctx, res.User.ID, lp.SID); err != nil {
				t.Fatalf("Logout: %v", err)
			}
			wantRevokedToken(t, h.e, login)
			wantAuth(t, h.e, res.Token, p.SID)

			inactive := string(store.StatusInactive)
			if _, err := h.e.UpdateUser(ctx, res.User.ID, engine.UserUpdate{Status: &inactive}); err != nil {
				t.Fatalf("disable: %v", err)
			}
			wantRevokedToken(t, h.e, res.Token)
		})
	}
}

func TestStartSessionStatus(t *testing.T) {
	ctx := context.Background()
	ev := openBolt(t)
	h := newHarness(t, ev)
	pending := mustRegister(t, h.e, reg("pending@example.com")).User.ID
	st := mustStart(t, h.e, pending)
	if st.Principal.Status != "pending" || len(st.Principal.Permissions) != 0 {
		t.Fatalf("pending user's session principal = %+v", st.Principal)
	}
	if _, err := h.e.StartSession(ctx, store.NewID(time.Now()), "", "", engine.SessionLimits{}); !errors.Is(err, engine.ErrUnauthenticated) {
		t.Fatalf("StartSession of an unknown user: %v", err)
	}
	inactive := inactiveUser(t, ev.store)
	if _, err := h.e.StartSession(ctx, inactive, "", "", engine.SessionLimits{}); !errors.Is(err, engine.ErrAccountDisabled) {
		t.Fatalf("StartSession of an inactive user: %v", err)
	}
}

// inactiveUser writes a user and flips it to inactive through a token (the
// store has no user update yet), returning its id.
func inactiveUser(t *testing.T, st store.Store) string {
	t.Helper()
	ctx := context.Background()
	u := storetest.NewTestUser("inactive-"+store.NewID(time.Now())+"@example.com", "")
	tok := storetest.NewTestToken(u.ID, time.Now().Add(time.Hour))
	if err := st.CreateUser(ctx, store.NewUser{User: u, Token: tok}); err != nil {
		t.Fatal(err)
	}
	setStatus(t, st, tok, store.StatusInactive)
	return u.ID
}

func setStatus(t *testing.T, st store.Store, tok *store.Token, status store.Status) {
	t.Helper()
	_, err := st.UseToken(context.Background(), tok.Hash, time.Now(), func(u *store.User) error {
		u.Status = status
		return nil
	})
	if err != nil {
		t.Fatalf("UseToken: %v", err)
	}
}

// TestRefreshRereadsUser: permissions and status come from the store at
// each refresh; a user disabled since loses the session on refresh.
func TestRefreshRereadsUser(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			ev := be.open(t)
			h := newHarness(t, ev)
			// The store has no user update yet: each user's status flips
			// once, through its single-use token.
			newUser := func(status store.Status) (*store.User, *store.Token) {
				u := storetest.NewTestUser("reread-"+store.NewID(time.Now())+"@example.com", "")
				u.Status = status
				tok := storetest.NewTestToken(u.ID, time.Now().Add(time.Hour))
				if err := ev.store.CreateUser(ctx, store.NewUser{User: u, Token: tok}); err != nil {
					t.Fatal(err)
				}
				return u, tok
			}

			u, tok := newUser(store.StatusPending)
			s := mustStart(t, h.e, u.ID)
			if s.Principal.Status != "pending" || len(s.Principal.Permissions) != 0 {
				t.Fatalf("pending principal = %+v", s.Principal)
			}
			setStatus(t, ev.store, tok, store.StatusActive) // activation
			s2, err := h.e.Refresh(ctx, s.Refresh, "", "", engine.SessionLimits{})
			if err != nil {
				t.Fatal(err)
			}
			p, err := h.e.AuthenticateToken(ctx, s2.Access)
			if err != nil || p.Status != "active" || len(p.Permissions) != len(u.Permissions) {
				t.Fatalf("after activation: %+v, %v; want active with %v", p, err, u.Permissions)
			}

			v, vtok := newUser(store.StatusActive)
			sv := mustStart(t, h.e, v.ID)
			wantAuth(t, h.e, sv.Access, sv.Session.ID)
			setStatus(t, ev.store, vtok, store.StatusInactive) // disabled
			if _, err := h.e.Refresh(ctx, sv.Refresh, "", "", engine.SessionLimits{}); !errors.Is(err, engine.ErrAccountDisabled) {
				t.Fatalf("Refresh of a disabled user: %v, want ErrAccountDisabled", err)
			}
			wantRevokedToken(t, h.e, sv.Access)
			if list, _ := h.e.ListSessions(ctx, v.ID); len(list) != 0 {
				t.Fatalf("disabled user's sessions: %+v", list)
			}
		})
	}
}

// TestRefreshMalformed: anything not shaped like a refresh token is
// refused without a store call.
func TestRefreshMalformed(t *testing.T) {
	ev := openBolt(t)
	cs := &countingStore{Store: ev.store}
	ev.store = cs
	h := newHarness(t, ev)
	uid := activeUser(t, h.e, "malformed@example.com")
	good := mustStart(t, h.e, uid).Refresh
	parts := strings.Split(good, ".")
	users := cs.users.Load()
	for _, tok := range []string{"", "x", "a.b.c", good + "x", parts[0] + "." + parts[1], "zzzzzzzzzzzzzzzzzzzzzzzz." + parts[1] + "." + parts[2],
		parts[0] + "." + parts[1] + "." + strings.Repeat("!", len(parts[2]))} {
		if _, err := h.e.Refresh(context.Background(), tok, "", "", engine.SessionLimits{}); !errors.Is(err, engine.ErrUnauthenticated) || errors.Is(err, engine.ErrRefreshReused) {
			t.Fatalf("Refresh(%q) = %v", tok, err)
		}
	}
	if n := cs.users.Load() - users; n != 0 {
		t.Fatalf("malformed tokens made %d store reads", n)
	}
	if _, err := h.e.Refresh(context.Background(), good, "", "", engine.SessionLimits{}); err != nil {
		t.Fatalf("the good token after malformed ones: %v", err)
	}
}

// TestSessionCheckIsCached: repeated verification of one token reads the
// session once and the feed at most once per poll interval.
func TestSessionCheckIsCached(t *testing.T) {
	ev := openRedis(t)
	cs := &countingStore{Store: ev.store}
	ev.store = cs
	clock := newFakeClock()
	h := newHarness(t, ev, withClock(clock))
	uid := activeUser(t, h.e, "cached@example.com")
	s := mustStart(t, h.e, uid)
	for range 1000 {
		wantAuth(t, h.e, s.Access, s.Session.ID)
	}
	if g, f := cs.gets.Load(), cs.feeds.Load(); g != 1 || f != 1 {
		t.Fatalf("1000 checks made %d session reads and %d feed reads, want 1 and 1", g, f)
	}
	// Past the stale bound the next check reads the feed first (in line).
	clock.Advance(engine.DefaultRevocationStale)
	wantAuth(t, h.e, s.Access, s.Session.ID)
	if f := cs.feeds.Load(); f != 2 {
		t.Fatalf("feed reads after the stale bound: %d, want 2", f)
	}
	// Past CheckMaxAge the session itself is read again.
	clock.Advance(engine.DefaultSessionCheckMaxAge)
	wantAuth(t, h.e, s.Access, s.Session.ID)
	if g := cs.gets.Load(); g != 2 {
		t.Fatalf("session reads after max age: %d, want 2", g)
	}
}

// TestSessionRevokedOnOtherInstance: a logout through engine A is refused
// by engine B (same Redis) once B's cache is RevocationStale old, with no
// store read for the sid itself (the feed carries it); and at once when B
// polls.
func TestSessionRevokedOnOtherInstance(t *testing.T) {
	ctx := context.Background()
	ev := openRedis(t)
	clock := newFakeClock()
	a := newHarness(t, ev, withClock(clock))
	evB := *ev
	cs := &countingStore{Store: ev.reopen(t)}
	evB.store = cs
	b := newHarness(t, &evB, withClock(clock))
	uid := activeUser(t, a.e, "cross@example.com")

	s1, s2 := mustStart(t, a.e, uid), mustStart(t, a.e, uid)
	wantAuth(t, b.e, s1.Access, s1.Session.ID)
	wantAuth(t, b.e, s2.Access, s2.Session.ID)
	gets := cs.gets.Load()

	// Through the stale bound.
	if err := a.e.Logout(ctx, uid, s1.Session.ID); err != nil {
		t.Fatal(err)
	}
	wantRevokedToken(t, a.e, s1.Access)
	clock.Advance(engine.DefaultRevocationStale)
	wantRevokedToken(t, b.e, s1.Access)
	wantAuth(t, b.e, s2.Access, s2.Session.ID)
	if g := cs.gets.Load(); g != gets {
		t.Fatalf("B read sessions %d times; the feed should have told it", g-gets)
	}

	// Through an explicit poll.
	if _, err := a.e.RevokeUserSessions(ctx, uid, ""); err != nil {
		t.Fatal(err)
	}
	if err := b.e.PollRevocations(ctx); err != nil {
		t.Fatal(err)
	}
	wantRevokedToken(t, b.e, s2.Access)
}

// TestSessionRevokedOnOtherInstanceRealClock measures the bound with real
// clocks and the default intervals: engine B, which accepted the token
// just before, refuses it within 5 s of the logout through A.
func TestSessionRevokedOnOtherInstanceRealClock(t *testing.T) {
	ctx := context.Background()
	ev := openRedis(t)
	a := newHarness(t, ev)
	evB := *ev
	evB.store = ev.reopen(t)
	b := newHarness(t, &evB)
	uid := activeUser(t, a.e, "realclock@example.com")
	s := mustStart(t, a.e, uid)
	wantAuth(t, b.e, s.Access, s.Session.ID)
	if err := a.e.Logout(ctx, uid, s.Session.ID); err != nil {
		t.Fatal(err)
	}
	revoked := time.Now()
	deadline := revoked.Add(5 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		_, err := b.e.AuthenticateToken(ctx, s.Access)
		if errors.Is(err, engine.ErrSessionRevoked) {
			t.Logf("refused on the other instance %v after the logout", time.Since(revoked).Round(time.Millisecond))
			return
		}
		if err != nil {
			t.Fatalf("AuthenticateToken: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the other instance still accepts the token 5 s after the logout")
		}
		<-tick.C
	}
}

// TestSessionFeedGapFlushes: a reader that missed feed entries forgets
// what it cached and reads the sessions again.
func TestSessionFeedGapFlushes(t *testing.T) {
	ctx := context.Background()
	ev := openRedis(t)
	clock := newFakeClock()
	a := newHarness(t, ev, withClock(clock))
	evB := *ev
	cs := &countingStore{Store: ev.reopen(t)}
	evB.store = cs
	b := newHarness(t, &evB, withClock(clock))
	uid := activeUser(t, a.e, "gap@example.com")
	s := mustStart(t, a.e, uid)
	wantAuth(t, b.e, s.Access, s.Session.ID)
	if err := a.e.Logout(ctx, uid, s.Session.ID); err != nil {
		t.Fatal(err)
	}
	cs.gapOnce.Store(true) // B's next feed read skips the logout
	if err := b.e.PollRevocations(ctx); err != nil {
		t.Fatal(err)
	}
	wantRevokedToken(t, b.e, s.Access)
}

// TestConcurrentSessionRefresh: racing refreshes with one token give one pair;
// without a grace window the losers revoke the session, so even the
// winner's access token is refused afterwards.
func TestConcurrentSessionRefresh(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			h := newHarness(t, be.open(t), func(c *engine.Config) { c.Sessions.RefreshGrace = -1 })
			uid := activeUser(t, h.e, "race@example.com")
			s := mustStart(t, h.e, uid)
			const n = 8
			var mu sync.Mutex
			var winners []*engine.SessionTokens
			errs := storetest.RunConcurrent(n, func(int) error {
				st, err := h.e.Refresh(ctx, s.Refresh, "", "", engine.SessionLimits{})
				if err == nil {
					mu.Lock()
					winners = append(winners, st)
					mu.Unlock()
				}
				return err
			})
			reused := 0
			for _, err := range errs {
				switch {
				case err == nil:
				case errors.Is(err, engine.ErrRefreshReused):
					reused++
				case errors.Is(err, engine.ErrUnauthenticated):
				default:
					t.Fatalf("Refresh: %v", err)
				}
			}
			if len(winners) != 1 || reused == 0 {
				t.Fatalf("%d winners, %d reuse detections; want 1 and some", len(winners), reused)
			}
			wantRevokedToken(t, h.e, winners[0].Access)
		})
	}
}

// TestSessionCheckStoreDown: with the store unreachable a session token is
// still accepted from the cache while the last feed read is fresh, and
// refused with an unavailable error (503, not 401) once it is stale; it
// works again when the store is back.
func TestSessionCheckStoreDown(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srv := testredis.Start(t)
	st := openRedisOn(t, srv, uniqueNS())
	clock := newFakeClock()
	h := newHarness(t, &env{store: st}, withClock(clock))
	uid := activeUser(t, h.e, "down-session@example.com")
	s := mustStart(t, h.e, uid)
	wantAuth(t, h.e, s.Access, s.Session.ID)

	srv.Kill()
	wantAuth(t, h.e, s.Access, s.Session.ID) // cached, feed fresh
	clock.Advance(engine.DefaultRevocationStale)
	_, err := h.e.AuthenticateToken(ctx, s.Access)
	if !errors.Is(err, store.ErrUnavailable) || errors.Is(err, engine.ErrUnauthenticated) {
		t.Fatalf("AuthenticateToken with the store down and the feed stale = %v, want ErrUnavailable", err)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	// The restarted server is empty (no persistence): the session is gone,
	// and the reader's cursor is past the new feed's head, a gap.
	_, err = h.e.AuthenticateToken(ctx, s.Access)
	if !errors.Is(err, engine.ErrSessionRevoked) {
		t.Fatalf("AuthenticateToken after the restart = %v, want ErrSessionRevoked", err)
	}
}

// TestSessionLimitsPerHandler: a handler's limits replace the app's for
// the sessions it opens (absolute end) and refreshes (idle window).
func TestSessionLimitsPerHandler(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	h := newHarness(t, openBolt(t), withClock(clock))
	activeUser(t, h.e, "limits@example.com")
	lim := engine.SessionLimits{Idle: time.Hour, Absolute: 3 * time.Hour}

	st, err := h.e.LoginSession(ctx, "192.0.2.1", "ua", "limits@example.com", goodPassword, lim)
	if err != nil {
		t.Fatal(err)
	}
	start := st.Session.CreatedAt
	if !st.Session.IdleExpiresAt.Equal(start.Add(time.Hour)) || !st.Session.ExpiresAt.Equal(start.Add(3*time.Hour)) {
		t.Fatalf("session %v / %v, want idle 1h and lifetime 3h from %v", st.Session.IdleExpiresAt, st.Session.ExpiresAt, start)
	}
	app, err := h.e.LoginSession(ctx, "192.0.2.1", "ua", "limits@example.com", goodPassword, engine.SessionLimits{})
	if err != nil {
		t.Fatal(err)
	}
	if !app.Session.ExpiresAt.Equal(app.Session.CreatedAt.Add(engine.DefaultSessionAbsolute)) {
		t.Fatalf("zero limits: lifetime ends %v, want the app's", app.Session.ExpiresAt)
	}

	// Each refresh moves the idle end by the handler's window, never past
	// the absolute end; past that, the session is over.
	tok := st.Refresh
	for i, at := range []time.Duration{50 * time.Minute, 100 * time.Minute, 150 * time.Minute} {
		clock.Advance(50 * time.Minute)
		next, err := h.e.Refresh(ctx, tok, "192.0.2.1", "ua", lim)
		if err != nil {
			t.Fatalf("refresh %d: %v", i, err)
		}
		want := start.Add(min(at+time.Hour, 3*time.Hour))
		if got := next.Session.IdleExpiresAt; !got.Equal(want) {
			t.Fatalf("refresh at %v: idle end %v, want %v", at, got, want)
		}
		tok = next.Refresh
	}
	clock.Advance(31 * time.Minute) // 3h01m: past the absolute end
	if _, err := h.e.Refresh(ctx, tok, "192.0.2.1", "ua", lim); !errors.Is(err, engine.ErrUnauthenticated) {
		t.Fatalf("refresh past the lifetime: %v", err)
	}
}
