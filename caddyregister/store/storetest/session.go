package storetest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// sessionTests are the session cases of the contract suite (Run).
var sessionTests = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"SessionCreateGet", testSessionCreateGet},
	{"SessionInvalid", testSessionInvalid},
	{"SessionExpired", testSessionExpired},
	{"SessionRotate", testSessionRotate},
	{"SessionRotateIdleCapped", testSessionRotateIdleCapped},
	{"SessionRotateGrace", testSessionRotateGrace},
	{"SessionRotateReuse", testSessionRotateReuse},
	{"SessionRotateUnknown", testSessionRotateUnknown},
	{"SessionRotateForgedKeepsSession", testSessionRotateForged},
	{"SessionRotateHistory", testSessionRotateHistory},
	{"SessionRevokeExpired", testSessionRevokeExpired},
	{"SessionList", testSessionList},
	{"SessionRevoke", testSessionRevoke},
	{"SessionRevokeUser", testSessionRevokeUser},
	{"RevocationFeed", testRevocationFeed},
	{"ConcurrentRotateOutsideGrace", testConcurrentRotateOutsideGrace},
	{"ConcurrentRotateInsideGrace", testConcurrentRotateInsideGrace},
	{"RevokeUserRacingRotate", testRevokeUserRacingRotate},
	{"CreateUserWithSession", testCreateUserWithSession},
}

// RandomHash returns a random hex string shaped like a SHA-256.
func RandomHash() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// NewTestSession returns a session of userID created at now, idle for
// idle and ending after abs, with a random sid and refresh hash.
func NewTestSession(userID string, now time.Time, idle, abs time.Duration) *store.Session {
	sid := make([]byte, 16)
	_, _ = rand.Read(sid)
	now = now.Truncate(time.Millisecond)
	return &store.Session{
		ID:            hex.EncodeToString(sid),
		UserID:        userID,
		CreatedAt:     now,
		LastUsedAt:    now,
		ClientIP:      "192.0.2.7",
		UserAgent:     "storetest/1.0",
		IdleExpiresAt: now.Add(idle),
		ExpiresAt:     now.Add(abs),
		RefreshHash:   RandomHash(),
	}
}

// newSession creates a live session for an existing user (NewSessionUser).
func newSession(t *testing.T, s store.Store, userID string) *store.Session {
	t.Helper()
	sess := NewTestSession(userID, time.Now(), time.Hour, 24*time.Hour)
	if err := s.CreateSession(ctx(t), sess); err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	return sess
}

// normSession makes a session comparable across a storage round trip
// (times kept to the millisecond, in UTC).
func normSession(s *store.Session) store.Session {
	c := *s
	for _, p := range []*time.Time{&c.CreatedAt, &c.LastUsedAt, &c.IdleExpiresAt, &c.ExpiresAt, &c.RotatedAt} {
		if !p.IsZero() {
			*p = time.UnixMilli(p.UnixMilli()).UTC()
		}
	}
	if len(c.OldHashes) == 0 {
		c.OldHashes = nil
	}
	return c
}

func wantSession(t *testing.T, what string, got, want *store.Session) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: nil session", what)
	}
	if g, w := normSession(got), normSession(want); !reflect.DeepEqual(g, w) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, g, w)
	}
}

func wantSessionGone(t *testing.T, s store.Store, sess *store.Session) {
	t.Helper()
	_, err := s.GetSession(ctx(t), sess.UserID, sess.ID)
	wantNotFound(t, "GetSession of a revoked session", err)
	list, err := s.ListSessions(ctx(t), sess.UserID)
	if err != nil {
		t.Fatalf("ListSessions: %v", err)
	}
	for _, l := range list {
		if l.ID == sess.ID {
			t.Fatalf("ListSessions still lists revoked session %s", sess.ID)
		}
	}
}

// wantRevoked asserts the feed, read from the start, holds sids (and
// possibly others).
func wantRevoked(t *testing.T, s store.Store, sids ...string) {
	t.Helper()
	feed, _, err := s.Revocations(ctx(t), 0, 1000)
	if err != nil {
		t.Fatalf("Revocations: %v", err)
	}
	for _, sid := range sids {
		if !slices.ContainsFunc(feed, func(r store.Revocation) bool { return r.SessionID == sid }) {
			t.Fatalf("revocation feed %v lacks %s", feed, sid)
		}
	}
}

// wantNotRevoked asserts the feed, read from the start, lacks sids.
func wantNotRevoked(t *testing.T, s store.Store, sids ...string) {
	t.Helper()
	feed, _, err := s.Revocations(ctx(t), 0, store.RevocationFeedSize)
	if err != nil {
		t.Fatalf("Revocations: %v", err)
	}
	for _, sid := range sids {
		if slices.ContainsFunc(feed, func(r store.Revocation) bool { return r.SessionID == sid }) {
			t.Fatalf("revocation feed lists %s", sid)
		}
	}
}

func rotation(sess *store.Session, hash string, now time.Time) store.Rotation {
	return store.Rotation{UserID: sess.UserID, SessionID: sess.ID, Hash: hash, NewHash: RandomHash(),
		Now: now, IdleTTL: time.Hour, ClientIP: "198.51.100.9", UserAgent: "storetest/2.0"}
}

func testSessionCreateGet(t *testing.T, s store.Store) {
	uid := NewSessionUser(t, s)
	sess := newSession(t, s, uid)
	got, err := s.GetSession(ctx(t), uid, sess.ID)
	if err != nil {
		t.Fatalf("GetSession: %v", err)
	}
	wantSession(t, "GetSession", got, sess)
	err = s.CreateSession(ctx(t), NewTestSession(uid, time.Now(), time.Hour, 2*time.Hour))
	if err != nil {
		t.Fatalf("second session of one user: %v", err)
	}
	dup := NewTestSession(uid, time.Now(), time.Hour, 2*time.Hour)
	dup.ID = sess.ID
	wantConflict(t, s.CreateSession(ctx(t), dup), "session_id")
	got, err = s.GetSession(ctx(t), uid, sess.ID)
	if err != nil {
		t.Fatalf("GetSession after conflict: %v", err)
	}
	wantSession(t, "session after a conflicting create", got, sess)
	// Another user's id does not find it.
	_, err = s.GetSession(ctx(t), store.NewID(time.Now()), sess.ID)
	wantNotFound(t, "GetSession under another user", err)
}

func testSessionInvalid(t *testing.T, s store.Store) {
	uid := NewSessionUser(t, s)
	for name, mod := range map[string]func(*store.Session){
		"no id":            func(x *store.Session) { x.ID = "" },
		"no user":          func(x *store.Session) { x.UserID = "" },
		"no refresh hash":  func(x *store.Session) { x.RefreshHash = "" },
		"no expiry":        func(x *store.Session) { x.ExpiresAt = time.Time{} },
		"idle past expiry": func(x *store.Session) { x.IdleExpiresAt = x.ExpiresAt.Add(time.Second) },
	} {
		sess := NewTestSession(uid, time.Now(), time.Hour, 2*time.Hour)
		mod(sess)
		if err := s.CreateSession(ctx(t), sess); err == nil || errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("%s: CreateSession = %v, want a validation error", name, err)
		}
	}
	list, err := s.ListSessions(ctx(t), uid)
	if err != nil || len(list) != 0 {
		t.Fatalf("ListSessions after invalid creates = %v, %v; want none", list, err)
	}
}

func testSessionExpired(t *testing.T, s store.Store) {
	uid := NewSessionUser(t, s)
	// Idle expiry already past: it reads as absent everywhere.
	old := NewTestSession(uid, time.Now().Add(-2*time.Hour), time.Hour, 24*time.Hour)
	if err := s.CreateSession(ctx(t), old); err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	_, err := s.GetSession(ctx(t), uid, old.ID)
	wantNotFound(t, "GetSession of an idle-expired session", err)
	live := newSession(t, s, uid)
	list, err := s.ListSessions(ctx(t), uid)
	if err != nil || len(list) != 1 || list[0].ID != live.ID {
		t.Fatalf("ListSessions = %v, %v; want only %s", list, err, live.ID)
	}
	_, err = s.RotateRefresh(ctx(t), rotation(old, old.RefreshHash, time.Now()))
	wantNotFound(t, "RotateRefresh of an expired session", err)
	// A rotation whose clock is past the live session's idle expiry finds
	// nothing either, and revokes nothing.
	_, err = s.RotateRefresh(ctx(t), rotation(live, live.RefreshHash, live.IdleExpiresAt))
	wantNotFound(t, "RotateRefresh at the idle expiry", err)
	_, err = s.RotateRefresh(ctx(t), rotation(live, RandomHash(), live.ExpiresAt.Add(time.Second)))
	wantNotFound(t, "RotateRefresh past the absolute expiry", err)
	if _, err := s.GetSession(ctx(t), uid, live.ID); err != nil {
		t.Fatalf("GetSession after expired rotations: %v", err)
	}
}

func testSessionRotate(t *testing.T, s store.Store) {
	uid := NewSessionUser(t, s)
	sess := newSession(t, s, uid)
	now := sess.CreatedAt.Add(time.Minute)
	r := rotation(sess, sess.RefreshHash, now)
	got, err := s.RotateRefresh(ctx(t), r)
	if err != nil {
		t.Fatalf("RotateRefresh: %v", err)
	}
	want := *sess
	want.RefreshHash, want.PrevHash, want.RotatedAt = r.NewHash, sess.RefreshHash, now
	want.LastUsedAt, want.IdleExpiresAt = now, now.Add(time.Hour)
	want.ClientIP, want.UserAgent = r.ClientIP, r.UserAgent
	wantSession(t, "RotateRefresh result", got, &want)
	stored, err := s.GetSession(ctx(t), uid, sess.ID)
	if err != nil {
		t.Fatalf("GetSession: %v", err)
	}
	wantSession(t, "stored after rotation", stored, &want)
	// The successor rotates in turn; empty client fields keep the old ones.
	r2 := rotation(got, r.NewHash, now.Add(time.Minute))
	r2.ClientIP, r2.UserAgent = "", ""
	got2, err := s.RotateRefresh(ctx(t), r2)
	if err != nil {
		t.Fatalf("second RotateRefresh: %v", err)
	}
	if got2.PrevHash != r.NewHash || got2.RefreshHash != r2.NewHash || got2.ClientIP != r.ClientIP || got2.UserAgent != r.UserAgent ||
		!slices.Equal(got2.OldHashes, []string{sess.RefreshHash}) {
		t.Fatalf("second rotation = %+v", got2)
	}
	stored, err = s.GetSession(ctx(t), uid, sess.ID)
	if err != nil {
		t.Fatalf("GetSession: %v", err)
	}
	wantSession(t, "stored after the second rotation", stored, got2)
}

// testSessionRotateForged: a hash the session was never issued (someone
// who knows the user id and sid, which every access token carries, made
// up the secret) is not found and revokes nothing, before or after a
// rotation, whatever the grace.
func testSessionRotateForged(t *testing.T, s store.Store) {
	uid := NewSessionUser(t, s)
	sess := newSession(t, s, uid)
	now := sess.CreatedAt.Add(time.Second)
	_, err := s.RotateRefresh(ctx(t), rotation(sess, RandomHash(), now))
	wantNotFound(t, "forged token of a fresh session", err)
	r := rotation(sess, sess.RefreshHash, now)
	got, err := s.RotateRefresh(ctx(t), r)
	if err != nil {
		t.Fatalf("RotateRefresh after a forged one: %v", err)
	}
	for _, grace := range []time.Duration{0, time.Hour} {
		forged := rotation(got, RandomHash(), now.Add(time.Minute))
		forged.Grace = grace
		_, err = s.RotateRefresh(ctx(t), forged)
		wantNotFound(t, "forged token of a rotated session", err)
	}
	stored, err := s.GetSession(ctx(t), uid, sess.ID)
	if err != nil {
		t.Fatalf("GetSession after forged rotations: %v", err)
	}
	wantSession(t, "session after forged rotations", stored, got)
	wantNotRevoked(t, s, sess.ID)
	if _, err := s.RotateRefresh(ctx(t), rotation(got, r.NewHash, now.Add(2*time.Minute))); err != nil {
		t.Fatalf("the current token after forged ones: %v", err)
	}
}

// testSessionRotateHistory: a session remembers its last
// 1+RefreshHistory spent tokens; any of them revokes it, an older one is
// merely unknown.
func testSessionRotateHistory(t *testing.T, s store.Store) {
	uid := NewSessionUser(t, s)
	tokens := func() (*store.Session, []string) {
		sess := newSession(t, s, uid)
		hashes := []string{sess.RefreshHash}
		cur := sess
		for i := range store.RefreshHistory + 2 {
			r := rotation(cur, cur.RefreshHash, sess.CreatedAt.Add(time.Duration(i+1)*time.Second))
			next, err := s.RotateRefresh(ctx(t), r)
			if err != nil {
				t.Fatalf("rotation %d: %v", i, err)
			}
			hashes = append(hashes, r.NewHash)
			cur = next
		}
		if len(cur.OldHashes) != store.RefreshHistory {
			t.Fatalf("OldHashes %v, want the last %d", cur.OldHashes, store.RefreshHistory)
		}
		return sess, hashes // hashes[len-1] current, [len-2] PrevHash
	}
	later := time.Now().Add(time.Minute)
	sess, hashes := tokens()
	// The oldest, beyond the history: unknown, nothing revoked.
	_, err := s.RotateRefresh(ctx(t), rotation(sess, hashes[0], later))
	wantNotFound(t, "a token older than the history", err)
	if _, err := s.GetSession(ctx(t), uid, sess.ID); err != nil {
		t.Fatalf("GetSession after a forgotten token: %v", err)
	}
	// The oldest remembered one: reuse.
	if _, err := s.RotateRefresh(ctx(t), rotation(sess, hashes[1], later)); !errors.Is(err, store.ErrRefreshReused) {
		t.Fatalf("oldest remembered token: %v, want ErrRefreshReused", err)
	}
	wantSessionGone(t, s, sess)
	wantRevoked(t, s, sess.ID)
	// And the newest of OldHashes, on a fresh family.
	sess, hashes = tokens()
	if _, err := s.RotateRefresh(ctx(t), rotation(sess, hashes[len(hashes)-3], later)); !errors.Is(err, store.ErrRefreshReused) {
		t.Fatalf("token two generations old: %v, want ErrRefreshReused", err)
	}
	wantSessionGone(t, s, sess)
}

// testSessionRevokeExpired: an expired session is gone for revocation as
// for reading: RevokeSession answers ErrNotFound, RevokeUserSessions
// leaves it out, neither publishes it, and its record is deleted.
func testSessionRevokeExpired(t *testing.T, s store.Store) {
	uid := NewSessionUser(t, s)
	expired := func() *store.Session {
		old := NewTestSession(uid, time.Now().Add(-2*time.Hour), time.Hour, 24*time.Hour)
		if err := s.CreateSession(ctx(t), old); err != nil {
			t.Fatalf("CreateSession: %v", err)
		}
		return old
	}
	a := expired()
	wantNotFound(t, "RevokeSession of an expired session", s.RevokeSession(ctx(t), uid, a.ID))
	b, live := expired(), newSession(t, s, uid)
	sids, err := s.RevokeUserSessions(ctx(t), uid, "")
	if err != nil || !slices.Equal(sids, []string{live.ID}) {
		t.Fatalf("RevokeUserSessions = %v, %v; want only the live [%s]", sids, err, live.ID)
	}
	wantRevoked(t, s, live.ID)
	wantNotRevoked(t, s, a.ID, b.ID)
	for _, x := range []*store.Session{a, b} {
		wantSessionGone(t, s, x)
		wantNotFound(t, "RevokeSession after its revocation", s.RevokeSession(ctx(t), uid, x.ID))
	}
}

func testSessionRotateIdleCapped(t *testing.T, s store.Store) {
	uid := NewSessionUser(t, s)
	sess := NewTestSession(uid, time.Now(), time.Hour, 90*time.Minute)
	if err := s.CreateSession(ctx(t), sess); err != nil {
		t.Fatal(err)
	}
	now := sess.CreatedAt.Add(time.Hour - time.Minute)
	got, err := s.RotateRefresh(ctx(t), rotation(sess, sess.RefreshHash, now))
	if err != nil {
		t.Fatalf("RotateRefresh: %v", err)
	}
	if !got.IdleExpiresAt.Equal(sess.ExpiresAt) {
		t.Fatalf("IdleExpiresAt = %v, want capped at ExpiresAt %v", got.IdleExpiresAt, sess.ExpiresAt)
	}
}

func testSessionRotateGrace(t *testing.T, s store.Store) {
	uid := NewSessionUser(t, s)
	sess := newSession(t, s, uid)
	now := sess.CreatedAt.Add(time.Second)
	r := rotation(sess, sess.RefreshHash, now)
	r.Grace = 5 * time.Second
	if _, err := s.RotateRefresh(ctx(t), r); err != nil {
		t.Fatalf("RotateRefresh: %v", err)
	}
	// The same token again, within the grace window: a conflict, and the
	// session and its successor stay.
	again := rotation(sess, sess.RefreshHash, now.Add(4*time.Second))
	again.Grace = r.Grace
	if _, err := s.RotateRefresh(ctx(t), again); !errors.Is(err, store.ErrRefreshConflict) {
		t.Fatalf("reuse within grace: %v, want ErrRefreshConflict", err)
	}
	stored, err := s.GetSession(ctx(t), uid, sess.ID)
	if err != nil || stored.RefreshHash != r.NewHash {
		t.Fatalf("session after a conflict = %+v, %v; want the successor current", stored, err)
	}
	// Past the window the same token revokes.
	again.Now = now.Add(5 * time.Second)
	if _, err := s.RotateRefresh(ctx(t), again); !errors.Is(err, store.ErrRefreshReused) {
		t.Fatalf("reuse at the end of grace: %v, want ErrRefreshReused", err)
	}
	wantSessionGone(t, s, sess)
	wantRevoked(t, s, sess.ID)
}

func testSessionRotateReuse(t *testing.T, s store.Store) {
	uid := NewSessionUser(t, s)
	sess := newSession(t, s, uid)
	other := newSession(t, s, uid)
	now := sess.CreatedAt.Add(time.Second)
	r := rotation(sess, sess.RefreshHash, now)
	got, err := s.RotateRefresh(ctx(t), r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.RotateRefresh(ctx(t), rotation(got, r.NewHash, now.Add(time.Second))); err != nil {
		t.Fatal(err)
	}
	// The first token, two generations old: reuse, whatever the grace.
	old := rotation(sess, sess.RefreshHash, now.Add(2*time.Second))
	old.Grace = time.Hour
	if _, err := s.RotateRefresh(ctx(t), old); !errors.Is(err, store.ErrRefreshReused) {
		t.Fatalf("old token: %v, want ErrRefreshReused", err)
	}
	wantSessionGone(t, s, sess)
	wantRevoked(t, s, sess.ID)
	// The family is gone: its newest token finds nothing.
	_, err = s.RotateRefresh(ctx(t), rotation(sess, r.NewHash, now.Add(3*time.Second)))
	wantNotFound(t, "rotation of a revoked family", err)
	if _, err := s.GetSession(ctx(t), uid, other.ID); err != nil {
		t.Fatalf("the user's other session: %v", err)
	}
}

func testSessionRotateUnknown(t *testing.T, s store.Store) {
	uid := NewSessionUser(t, s)
	sess := newSession(t, s, uid)
	for name, r := range map[string]store.Rotation{
		"unknown sid":  rotation(&store.Session{UserID: uid, ID: "nope"}, sess.RefreshHash, time.Now()),
		"unknown user": rotation(&store.Session{UserID: store.NewID(time.Now()), ID: sess.ID}, sess.RefreshHash, time.Now()),
		"empty hash":   rotation(sess, "", time.Now()),
	} {
		_, err := s.RotateRefresh(ctx(t), r)
		wantNotFound(t, name, err)
	}
	if _, err := s.GetSession(ctx(t), uid, sess.ID); err != nil {
		t.Fatalf("session after unknown rotations: %v", err)
	}
}

func testSessionList(t *testing.T, s store.Store) {
	uid := NewSessionUser(t, s)
	base := time.Now()
	var ss []*store.Session
	for i := range 3 {
		sess := NewTestSession(uid, base.Add(time.Duration(i)*time.Second), time.Hour, 24*time.Hour)
		if err := s.CreateSession(ctx(t), sess); err != nil {
			t.Fatal(err)
		}
		ss = append(ss, sess)
	}
	newSession(t, s, NewSessionUser(t, s)) // another user's
	wantOrder := func(what string, want ...*store.Session) {
		t.Helper()
		list, err := s.ListSessions(ctx(t), uid)
		if err != nil {
			t.Fatalf("%s: ListSessions: %v", what, err)
		}
		if len(list) != len(want) {
			t.Fatalf("%s: %d sessions, want %d", what, len(list), len(want))
		}
		for i := range want {
			if list[i].ID != want[i].ID {
				t.Fatalf("%s: position %d is %s, want %s", what, i, list[i].ID, want[i].ID)
			}
		}
	}
	wantOrder("by last use", ss[2], ss[1], ss[0])
	got, err := s.RotateRefresh(ctx(t), rotation(ss[0], ss[0].RefreshHash, base.Add(time.Minute)))
	if err != nil {
		t.Fatal(err)
	}
	ss[0] = got
	wantOrder("after using the oldest", ss[0], ss[2], ss[1])
	list, _ := s.ListSessions(ctx(t), uid)
	wantSession(t, "listed rotated session", list[0], got)
	if l, err := s.ListSessions(ctx(t), store.NewID(time.Now())); err != nil || len(l) != 0 {
		t.Fatalf("ListSessions of a user without sessions = %v, %v", l, err)
	}
}

func testSessionRevoke(t *testing.T, s store.Store) {
	uid := NewSessionUser(t, s)
	a, b := newSession(t, s, uid), newSession(t, s, uid)
	if err := s.RevokeSession(ctx(t), uid, a.ID); err != nil {
		t.Fatalf("RevokeSession: %v", err)
	}
	wantSessionGone(t, s, a)
	wantRevoked(t, s, a.ID)
	wantNotFound(t, "second RevokeSession", s.RevokeSession(ctx(t), uid, a.ID))
	wantNotFound(t, "RevokeSession under another user", s.RevokeSession(ctx(t), store.NewID(time.Now()), b.ID))
	if _, err := s.GetSession(ctx(t), uid, b.ID); err != nil {
		t.Fatalf("other session: %v", err)
	}
	_, err := s.RotateRefresh(ctx(t), rotation(a, a.RefreshHash, time.Now()))
	wantNotFound(t, "rotation of a revoked session", err)
}

func testSessionRevokeUser(t *testing.T, s store.Store) {
	uid, other := NewSessionUser(t, s), NewSessionUser(t, s)
	a, b, c := newSession(t, s, uid), newSession(t, s, uid), newSession(t, s, uid)
	o := newSession(t, s, other)
	sids, err := s.RevokeUserSessions(ctx(t), uid, b.ID)
	if err != nil {
		t.Fatalf("RevokeUserSessions: %v", err)
	}
	slices.Sort(sids)
	want := []string{a.ID, c.ID}
	slices.Sort(want)
	if !slices.Equal(sids, want) {
		t.Fatalf("revoked %v, want %v", sids, want)
	}
	wantSessionGone(t, s, a)
	wantSessionGone(t, s, c)
	wantRevoked(t, s, a.ID, c.ID)
	for _, keep := range []*store.Session{b, o} {
		if _, err := s.GetSession(ctx(t), keep.UserID, keep.ID); err != nil {
			t.Fatalf("kept session %s: %v", keep.ID, err)
		}
	}
	sids, err = s.RevokeUserSessions(ctx(t), uid, "")
	if err != nil || !slices.Equal(sids, []string{b.ID}) {
		t.Fatalf("RevokeUserSessions(all) = %v, %v; want [%s]", sids, err, b.ID)
	}
	wantSessionGone(t, s, b)
	if sids, err = s.RevokeUserSessions(ctx(t), uid, ""); err != nil || len(sids) != 0 {
		t.Fatalf("RevokeUserSessions of none = %v, %v", sids, err)
	}
}

func testRevocationFeed(t *testing.T, s store.Store) {
	feed, next, err := s.Revocations(ctx(t), 0, 10)
	if err != nil || len(feed) != 0 || next != 0 {
		t.Fatalf("empty feed = %v, %d, %v", feed, next, err)
	}
	uid := NewSessionUser(t, s)
	var sids []string
	for range 5 {
		sess := newSession(t, s, uid)
		if err := s.RevokeSession(ctx(t), uid, sess.ID); err != nil {
			t.Fatal(err)
		}
		sids = append(sids, sess.ID)
	}
	// Read in pages of two: in order, numbered 1..5, cursor advancing.
	var got []string
	cursor := uint64(0)
	for range 4 {
		page, next, err := s.Revocations(ctx(t), cursor, 2)
		if err != nil {
			t.Fatalf("Revocations(%d): %v", cursor, err)
		}
		for _, r := range page {
			if r.Seq != uint64(len(got))+1 {
				t.Fatalf("entry %+v, want seq %d", r, len(got)+1)
			}
			got = append(got, r.SessionID)
		}
		if len(page) > 2 || (len(page) > 0 && next != page[len(page)-1].Seq) || (len(page) == 0 && next != cursor) {
			t.Fatalf("Revocations(%d) = %v, next %d", cursor, page, next)
		}
		cursor = next
	}
	if !slices.Equal(got, sids) {
		t.Fatalf("feed %v, want %v", got, sids)
	}
	// A cursor beyond the head (the store was reset) is a gap, answered
	// with the head.
	_, next, err = s.Revocations(ctx(t), 99, 10)
	if !errors.Is(err, store.ErrRevocationGap) || next != 5 {
		t.Fatalf("Revocations(99) = %d, %v; want 5, ErrRevocationGap", next, err)
	}
}
