package redisstore_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddyregister/caddyregister/caddyregister/store"
	"github.com/caddyregister/caddyregister/caddyregister/store/storetest"
)

// TestSessionKeysInUserSlot: a user's session keys share a hash tag made
// of the namespace and the user id (one slot per user on a cluster), carry
// expiries, and leave nothing behind once revoked.
func TestSessionKeysInUserSlot(t *testing.T) {
	s, c := openAdmin(t)
	ctx := context.Background()
	uid := storetest.NewSessionUser(t, s)
	userKeys := scanKeys(t, c, s)
	a := storetest.NewTestSession(uid, time.Now(), time.Hour, 24*time.Hour)
	b := storetest.NewTestSession(uid, time.Now(), 2*time.Hour, 24*time.Hour)
	for _, x := range []*store.Session{a, b} {
		if err := s.CreateSession(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	tag := "{" + s.Namespace() + ":u:" + uid + "}:"
	keys := scanPattern(t, c, s.UserKeyPattern())
	if len(keys) != 3 {
		t.Fatalf("user keys %v, want two sessions and the index", keys)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, tag) {
			t.Fatalf("key %s outside the user's slot %s", k, tag)
		}
		exp, err := c.PExpireTime(ctx, k).Result()
		if err != nil || exp <= 0 {
			t.Fatalf("key %s has no expiry (%v, %v)", k, exp, err)
		}
	}
	// The index lives as long as the longest-lived session.
	idx, _ := c.PExpireTime(ctx, tag+"sessions").Result()
	if idx.Milliseconds() != b.IdleExpiresAt.UnixMilli() {
		t.Fatalf("index expires at %d, want %d", idx.Milliseconds(), b.IdleExpiresAt.UnixMilli())
	}
	if got := scanKeys(t, c, s); !slices.Equal(got, userKeys) {
		t.Fatalf("sessions wrote namespace keys: %v, want only the user's %v", got, userKeys)
	}
	if _, err := s.RevokeUserSessions(ctx, uid, ""); err != nil {
		t.Fatal(err)
	}
	if keys := scanPattern(t, c, s.UserKeyPattern()); len(keys) != 0 {
		t.Fatalf("keys left after revoking every session: %v", keys)
	}
}

// TestListDropsExpiredIndexEntries: a session that expired by TTL leaves
// an index entry; listing removes it.
func TestListDropsExpiredIndexEntries(t *testing.T) {
	s, c := openAdmin(t)
	ctx := context.Background()
	uid := storetest.NewSessionUser(t, s)
	gone := storetest.NewTestSession(uid, time.Now(), time.Hour, 24*time.Hour)
	live := storetest.NewTestSession(uid, time.Now(), time.Hour, 24*time.Hour)
	for _, x := range []*store.Session{gone, live} {
		if err := s.CreateSession(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	tag := "{" + s.Namespace() + ":u:" + uid + "}:"
	if err := c.Del(ctx, tag+"session:"+gone.ID).Err(); err != nil { // as its TTL would
		t.Fatal(err)
	}
	list, err := s.ListSessions(ctx, uid)
	if err != nil || len(list) != 1 || list[0].ID != live.ID {
		t.Fatalf("ListSessions = %v, %v", list, err)
	}
	if n, _ := c.ZCard(ctx, tag+"sessions").Result(); n != 1 {
		t.Fatalf("index holds %d entries, want 1", n)
	}
}

// TestRevocationFeedTrimRedis: the feed keeps the last RevocationFeedSize
// sids; a reader behind them gets a gap and the head.
func TestRevocationFeedTrimRedis(t *testing.T) {
	s, c := openAdmin(t)
	ctx := context.Background()
	uid := storetest.NewSessionUser(t, s)
	const extra = 8
	total := store.RevocationFeedSize + extra
	for range total {
		if err := s.CreateSession(ctx, storetest.NewTestSession(uid, time.Now(), time.Hour, 24*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	sids, err := s.RevokeUserSessions(ctx, uid, "")
	if err != nil || len(sids) != total {
		t.Fatalf("RevokeUserSessions: %d, %v", len(sids), err)
	}
	if n, _ := c.ZCard(ctx, s.Key("revoked")).Result(); n != int64(store.RevocationFeedSize) {
		t.Fatalf("feed holds %d, want %d", n, store.RevocationFeedSize)
	}
	_, next, err := s.Revocations(ctx, extra-1, 10)
	if !errors.Is(err, store.ErrRevocationGap) || next != uint64(total) {
		t.Fatalf("Revocations(%d) = %d, %v; want %d, ErrRevocationGap", extra-1, next, err, total)
	}
	page, next, err := s.Revocations(ctx, extra, 2)
	if err != nil || len(page) != 2 || page[0].Seq != extra+1 || page[0].SessionID != sids[extra] || next != extra+2 {
		t.Fatalf("Revocations(%d) = %v, %d, %v", extra, page, next, err)
	}
}

// scanPattern lists the keys matching pattern.
func scanPattern(t *testing.T, c *redis.Client, pattern string) []string {
	t.Helper()
	var keys []string
	iter := c.Scan(context.Background(), 0, pattern, 1000).Iterator()
	for iter.Next(context.Background()) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("SCAN %s: %v", pattern, err)
	}
	return keys
}

// TestRevokeExpiredBySkew: a session key that outlived its idle expiry
// (Redis's clock behind the instances') is deleted by a revocation but,
// as on bbolt, neither reported nor published.
func TestRevokeExpiredBySkew(t *testing.T) {
	s, c := openAdmin(t)
	ctx := context.Background()
	uid := storetest.NewSessionUser(t, s)
	tag := "{" + s.Namespace() + ":u:" + uid + "}:"
	past := strconv.FormatInt(time.Now().Add(-time.Minute).UnixMilli(), 10)
	skewed := func() *store.Session {
		x := storetest.NewTestSession(uid, time.Now(), time.Hour, 24*time.Hour)
		if err := s.CreateSession(ctx, x); err != nil {
			t.Fatal(err)
		}
		if err := c.HSet(ctx, tag+"session:"+x.ID, "idle", past).Err(); err != nil {
			t.Fatal(err)
		}
		return x
	}
	a := skewed()
	if err := s.RevokeSession(ctx, uid, a.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("RevokeSession of an expired session = %v, want ErrNotFound", err)
	}
	b := skewed()
	live := storetest.NewTestSession(uid, time.Now(), time.Hour, 24*time.Hour)
	if err := s.CreateSession(ctx, live); err != nil {
		t.Fatal(err)
	}
	sids, err := s.RevokeUserSessions(ctx, uid, "")
	if err != nil || !slices.Equal(sids, []string{live.ID}) {
		t.Fatalf("RevokeUserSessions = %v, %v; want [%s]", sids, err, live.ID)
	}
	if keys := scanPattern(t, c, s.UserKeyPattern()); len(keys) != 0 {
		t.Fatalf("keys left: %v", keys)
	}
	feed, _, err := s.Revocations(ctx, 0, 100)
	if err != nil || len(feed) != 1 || feed[0].SessionID != live.ID {
		t.Fatalf("feed = %v, %v; want only %s", feed, err, live.ID)
	}
	for _, x := range []*store.Session{a, b} {
		if n, _ := c.Exists(ctx, tag+"session:"+x.ID).Result(); n != 0 {
			t.Fatalf("expired session %s left in place", x.ID)
		}
	}
}

// TestPublishFailure: when the revocation feed cannot be written (here its
// key holds a string, so the publishing script fails; the per-user delete
// runs first and succeeds), every revoking operation says which sessions
// it deleted in a *store.PublishError (an unavailable error), distinct
// from a failed delete.
func TestPublishFailure(t *testing.T) {
	s, c := openAdmin(t)
	ctx := context.Background()
	if err := c.Set(ctx, s.Key("revoked"), "not a zset", 0).Err(); err != nil {
		t.Fatal(err)
	}
	wantPublishError := func(what string, err error, sids ...string) {
		t.Helper()
		var pe *store.PublishError
		if !errors.As(err, &pe) || !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("%s = %v, want a *store.PublishError", what, err)
		}
		got, want := slices.Sorted(slices.Values(pe.SessionIDs)), slices.Sorted(slices.Values(sids))
		if !slices.Equal(got, want) {
			t.Fatalf("%s: PublishError names %v, want %v", what, got, want)
		}
	}
	uid := storetest.NewSessionUser(t, s)
	newSession := func() *store.Session {
		x := storetest.NewTestSession(uid, time.Now(), time.Hour, 24*time.Hour)
		if err := s.CreateSession(ctx, x); err != nil {
			t.Fatal(err)
		}
		return x
	}
	a := newSession()
	wantPublishError("RevokeSession", s.RevokeSession(ctx, uid, a.ID), a.ID)
	if _, err := s.GetSession(ctx, uid, a.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("session after a failed publication: %v, want deleted", err)
	}
	b, d := newSession(), newSession()
	sids, err := s.RevokeUserSessions(ctx, uid, d.ID)
	wantPublishError("RevokeUserSessions", err, b.ID)
	if !slices.Equal(sids, []string{b.ID}) {
		t.Fatalf("RevokeUserSessions sids = %v, want [%s]", sids, b.ID)
	}
	// A spent token: the session is revoked, the publication fails.
	r := store.Rotation{UserID: uid, SessionID: d.ID, Hash: d.RefreshHash, NewHash: storetest.RandomHash(), Now: time.Now(), IdleTTL: time.Hour}
	if _, err := s.RotateRefresh(ctx, r); err != nil {
		t.Fatal(err)
	}
	r.NewHash = storetest.RandomHash()
	_, err = s.RotateRefresh(ctx, r)
	if !errors.Is(err, store.ErrRefreshReused) {
		t.Fatalf("reuse with the feed broken = %v, want ErrRefreshReused", err)
	}
	wantPublishError("RotateRefresh reuse", err, d.ID)
	e := newSession()
	_, sids, err = s.DeleteUser(ctx, uid)
	wantPublishError("DeleteUser", err, e.ID)
	if !slices.Equal(sids, []string{e.ID}) {
		t.Fatalf("DeleteUser sids = %v, want [%s]", sids, e.ID)
	}
}
