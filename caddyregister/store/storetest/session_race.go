package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// The session cases about races, and a session created with its user.

// testConcurrentRotateOutsideGrace: racing rotations of one token give
// one winner; the losers present a used token, so (no grace) the session
// is revoked.
func testConcurrentRotateOutsideGrace(t *testing.T, s store.Store) {
	const n = 8
	uid := NewSessionUser(t, s)
	sess := newSession(t, s, uid)
	now := time.Now()
	got, errs := runConcurrentResults(n, func(int) (*store.Session, error) {
		return s.RotateRefresh(ctx(t), rotation(sess, sess.RefreshHash, now))
	})
	winners, reused := 0, 0
	for i, err := range errs {
		switch {
		case err == nil:
			winners++
			if got[i] == nil || got[i].PrevHash != sess.RefreshHash {
				t.Fatalf("winner got %+v", got[i])
			}
		case errors.Is(err, store.ErrRefreshReused):
			reused++
		case errors.Is(err, store.ErrNotFound): // after a loser revoked it
		default:
			t.Fatalf("rotation %d: %v", i, err)
		}
	}
	if winners != 1 || reused < 1 {
		t.Fatalf("%d winners and %d reuse detections of %d, want 1 and at least 1", winners, reused, n)
	}
	wantSessionGone(t, s, sess)
	wantRevoked(t, s, sess.ID)
}

// testConcurrentRotateInsideGrace: within the grace window the losers
// get a conflict and the winner's successor stays valid.
func testConcurrentRotateInsideGrace(t *testing.T, s store.Store) {
	const n = 8
	uid := NewSessionUser(t, s)
	sess := newSession(t, s, uid)
	now := time.Now()
	got, errs := runConcurrentResults(n, func(int) (*store.Session, error) {
		r := rotation(sess, sess.RefreshHash, now)
		r.Grace = time.Minute
		return s.RotateRefresh(ctx(t), r)
	})
	var winner *store.Session
	for i, err := range errs {
		switch {
		case err == nil:
			if winner != nil {
				t.Fatalf("two winners: %+v and %+v", winner, got[i])
			}
			winner = got[i]
		case errors.Is(err, store.ErrRefreshConflict):
		default:
			t.Fatalf("rotation %d: %v, want success or ErrRefreshConflict", i, err)
		}
	}
	if winner == nil {
		t.Fatal("no winner")
	}
	stored, err := s.GetSession(ctx(t), uid, sess.ID)
	if err != nil || stored.RefreshHash != winner.RefreshHash {
		t.Fatalf("stored %+v, %v; want the winner's token current", stored, err)
	}
}

// testRevokeUserRacingRotate: whichever commits first, a revoke-all that
// raced a rotation leaves no live session.
func testRevokeUserRacingRotate(t *testing.T, s store.Store) {
	for range 10 {
		uid := NewSessionUser(t, s)
		a, b := newSession(t, s, uid), newSession(t, s, uid)
		errs := RunConcurrent(3, func(i int) error {
			switch i {
			case 0:
				_, err := s.RevokeUserSessions(ctx(t), uid, "")
				return err
			case 1:
				_, err := s.RotateRefresh(ctx(t), rotation(a, a.RefreshHash, time.Now()))
				return err
			default:
				_, err := s.RotateRefresh(ctx(t), rotation(b, b.RefreshHash, time.Now()))
				return err
			}
		})
		if errs[0] != nil {
			t.Fatalf("RevokeUserSessions: %v", errs[0])
		}
		for _, err := range errs[1:] {
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("racing rotation: %v", err)
			}
		}
		wantSessionGone(t, s, a)
		wantSessionGone(t, s, b)
	}
}

// testCreateUserWithSession: a registration that answers with a token
// opens its session in CreateUser's atomic step; a refused create leaves
// no session, and erasing the user ends it.
func testCreateUserWithSession(t *testing.T, s store.Store) {
	now := time.Now()
	u := NewTestUser("withsession@example.com", "")
	sess := NewTestSession(u.ID, now, 15*time.Minute, 15*time.Minute)
	create(t, s, store.NewUser{User: u, Session: sess})
	got, err := s.GetSession(ctx(t), u.ID, sess.ID)
	if err != nil {
		t.Fatalf("GetSession: %v", err)
	}
	wantSession(t, "session created with its user", got, sess)
	list, err := s.ListSessions(ctx(t), u.ID)
	if err != nil || len(list) != 1 || list[0].ID != sess.ID {
		t.Fatalf("ListSessions = %v, %v; want [%s]", list, err, sess.ID)
	}

	// A create refused for its e-mail writes no session.
	dup := NewTestUser("withsession@example.com", "")
	lost := NewTestSession(dup.ID, now, 15*time.Minute, 15*time.Minute)
	wantConflict(t, s.CreateUser(ctx(t), store.NewUser{User: dup, Session: lost}), "email")
	_, err = s.GetSession(ctx(t), dup.ID, lost.ID)
	wantNotFound(t, "session of a refused create", err)

	// A session naming another user is refused before anything is written.
	other := NewTestUser("withsession-other@example.com", "")
	stray := NewTestSession(u.ID, now, 15*time.Minute, 15*time.Minute)
	if err := s.CreateUser(ctx(t), store.NewUser{User: other, Session: stray}); err == nil {
		t.Fatal("CreateUser with another user's session succeeded")
	}
	_, err = s.GetUser(ctx(t), other.ID)
	wantNotFound(t, "user of a create refused for its session", err)
	_, err = s.GetSession(ctx(t), u.ID, stray.ID)
	wantNotFound(t, "stray session", err)
	bad := NewTestSession(other.ID, now, 15*time.Minute, 15*time.Minute)
	bad.RefreshHash = ""
	if err := s.CreateUser(ctx(t), store.NewUser{User: other, Session: bad}); err == nil {
		t.Fatal("CreateUser with an invalid session succeeded")
	}
	_, err = s.GetUser(ctx(t), other.ID)
	wantNotFound(t, "user of a create refused for an invalid session", err)

	if _, _, err := s.DeleteUser(ctx(t), u.ID); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	wantSessionGone(t, s, sess)
}
