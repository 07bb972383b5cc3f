package boltstore_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/store"
	"github.com/caddyregister/caddyregister/caddyregister/store/boltstore"
	"github.com/caddyregister/caddyregister/caddyregister/store/storetest"
)

// TestRevocationFeedTrim: the feed keeps the last RevocationFeedSize
// entries; a reader behind them gets a gap and the head.
func TestRevocationFeedTrim(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "register.db"))
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	total := 2*store.RevocationFeedSize + 5 // past the batch trim
	for i := range total {
		boltstore.PublishRevocations(s, fmt.Sprint("sid", i))
	}
	_, next, err := s.Revocations(ctx, 0, 10)
	if !errors.Is(err, store.ErrRevocationGap) || next != uint64(total) {
		t.Fatalf("Revocations(0) = %d, %v; want %d, ErrRevocationGap", next, err, total)
	}
	// The oldest entry kept is readable from just before it.
	var cursor uint64
	for c := uint64(0); c < uint64(total); c++ {
		if _, _, err := s.Revocations(ctx, c, 1); err == nil {
			cursor = c
			break
		}
	}
	if kept := uint64(total) - cursor; kept < store.RevocationFeedSize {
		t.Fatalf("feed keeps %d entries, want at least %d", kept, store.RevocationFeedSize)
	}
	page, next, err := s.Revocations(ctx, cursor, 3)
	if err != nil || len(page) != 3 || page[0].Seq != cursor+1 || page[0].SessionID != fmt.Sprint("sid", cursor) || next != cursor+3 {
		t.Fatalf("Revocations(%d) = %v, %d, %v", cursor, page, next, err)
	}
}

// TestSessionSweep: expired sessions leave the file through ClaimMail's
// sweep, expiry entries included; a rotation moves the expiry entry.
func TestSessionSweep(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "register.db"))
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	uid := storetest.NewSessionUser(t, s)
	old := storetest.NewTestSession(uid, time.Now().Add(-2*time.Hour), time.Hour, 24*time.Hour)
	live := storetest.NewTestSession(uid, time.Now(), time.Hour, 24*time.Hour)
	for _, x := range []*store.Session{old, live} {
		if err := s.CreateSession(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.RotateRefresh(ctx, store.Rotation{UserID: uid, SessionID: live.ID, Hash: live.RefreshHash,
		NewHash: storetest.RandomHash(), Now: time.Now(), IdleTTL: 2 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	if n, e, err := boltstore.SessionCounts(s); err != nil || n != 2 || e != 2 {
		t.Fatalf("before the sweep: %d sessions, %d expiry entries, %v; want 2, 2", n, e, err)
	}
	if _, err := s.ClaimMail(ctx, time.Now(), time.Minute); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ClaimMail: %v", err)
	}
	if n, e, err := boltstore.SessionCounts(s); err != nil || n != 1 || e != 1 {
		t.Fatalf("after the sweep: %d sessions, %d expiry entries, %v; want 1, 1", n, e, err)
	}
	if _, err := s.RevokeUserSessions(ctx, uid, ""); err != nil {
		t.Fatal(err)
	}
	if n, e, err := boltstore.SessionCounts(s); err != nil || n != 0 || e != 0 {
		t.Fatalf("after revoking: %d sessions, %d expiry entries, %v; want none", n, e, err)
	}
}
