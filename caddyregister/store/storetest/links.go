package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// linkTests hold ReissueLink to its promises.
var linkTests = []struct {
	name string
	fn   func(*testing.T, store.Store)
}{
	{"ReissueLink", testReissueLink},
	{"ReissueLinkRefused", testReissueLinkRefused},
	{"ReissueLinkConflict", testReissueLinkConflict},
	{"ReissuedLinkErased", testReissuedLinkErased},
	{"ReissueRacesActivation", testReissueRacesActivation},
	{"ReissueScoped", testReissueScoped},
	{"ReissueScopedRefused", testReissueScopedRefused},
}

// reissue is a fresh link for u at now, expiring (and due) as given.
func reissue(u *store.User, now, expiry time.Time) store.LinkReissue {
	return store.LinkReissue{
		UserID:       u.ID,
		Token:        NewTestToken(u.ID, expiry),
		Mail:         NewTestMail(u.ID, now),
		PendingUntil: expiry.UnixMilli(),
		Now:          now,
	}
}

// testReissueLink: the old token and both old mails (queued and parked)
// are gone, the new token works, the new mail is queued, and the user's
// expiry moved.
func testReissueLink(t *testing.T, s store.Store) {
	expiry := time.Now().Add(time.Hour)
	sq := CreateSquatter(t, s, "resend@example.com", "resend", expiry)
	now := time.Now()
	later := expiry.Add(time.Hour)
	r := reissue(sq.User, now, later)
	got, err := s.ReissueLink(ctx(t), r)
	if err != nil {
		t.Fatalf("ReissueLink: %v", err)
	}
	want := *sq.User
	want.PendingUntil, want.UpdatedAt = later.UnixMilli(), now
	if got == nil || got.PendingUntil != want.PendingUntil {
		t.Fatalf("ReissueLink returned %+v; want PendingUntil %d", got, want.PendingUntil)
	}
	wantUser(t, s, &want)
	_, err = s.UseToken(ctx(t), sq.Token.Hash, now, func(*store.User) error { return nil })
	wantNotFound(t, "UseToken with the replaced token", err)
	retry := *sq.Parked
	retry.NextAttempt = now
	wantNotFound(t, "RetryMail of the replaced parked mail", s.RetryMail(ctx(t), &retry))
	wantCounts(t, s, 1, 0)
	m, err := s.ClaimMail(ctx(t), now.Add(time.Second), time.Minute)
	if err != nil || m.ID != r.Mail.ID || m.UserID != sq.User.ID {
		t.Fatalf("ClaimMail = %+v, %v; want the new mail %s", m, err, r.Mail.ID)
	}
	used, err := s.UseToken(ctx(t), r.Token.Hash, now, activate(now))
	if err != nil || used.Status != store.StatusActive {
		t.Fatalf("UseToken with the new token = %+v, %v", used, err)
	}
	// Once active, there is nothing to reissue.
	_, err = s.ReissueLink(ctx(t), reissue(sq.User, now, later))
	wantNotFound(t, "ReissueLink of an activated user", err)
}

// testReissueLinkRefused: an unknown user, an active or disabled one, one
// pending without expiry (waiting for an admin) and one expired get
// ErrNotFound, and nothing is written.
func testReissueLinkRefused(t *testing.T, s store.Store) {
	now := time.Now()
	expiry := now.Add(time.Hour)
	_, err := s.ReissueLink(ctx(t), reissue(NewTestUser("ghost@example.com", ""), now, expiry))
	wantNotFound(t, "ReissueLink of an unknown user", err)
	for i, mod := range []func(*store.User){
		func(u *store.User) { u.Status = store.StatusActive },
		func(u *store.User) { u.Status = store.StatusInactive },
		func(u *store.User) { u.PendingUntil = 0 },
		func(u *store.User) { u.PendingUntil = now.Add(-time.Minute).UnixMilli() },
		func(u *store.User) { u.PendingUntil = now.UnixMilli() }, // expired at now exactly
	} {
		u := NewTestUser(fmt.Sprintf("refused%d@example.com", i), "")
		u.PendingUntil = expiry.UnixMilli()
		mod(u)
		create(t, s, store.NewUser{User: u})
		r := reissue(u, now, expiry.Add(time.Hour))
		_, err := s.ReissueLink(ctx(t), r)
		wantNotFound(t, fmt.Sprintf("case %d: ReissueLink", i), err)
		wantUser(t, s, u)
		_, err = s.UseToken(ctx(t), r.Token.Hash, now, func(*store.User) error { return nil })
		wantNotFound(t, fmt.Sprintf("case %d: the refused token", i), err)
	}
	wantCounts(t, s, 0, 0)
}

// testReissueLinkConflict: a token hash or mail id already stored is a
// conflict and nothing changes; the old link keeps working.
func testReissueLinkConflict(t *testing.T, s store.Store) {
	now := time.Now()
	expiry := now.Add(time.Hour)
	_, otherTok := createWithToken(t, s, "other@example.com", "", expiry)
	u2 := NewTestUser("pending@example.com", "")
	u2.PendingUntil = expiry.UnixMilli()
	tok2 := NewTestToken(u2.ID, expiry)
	create(t, s, store.NewUser{User: u2, Token: tok2})

	r := reissue(u2, now, expiry.Add(time.Hour))
	r.Token.Hash = otherTok.Hash
	_, err := s.ReissueLink(ctx(t), r)
	wantConflict(t, err, "token")
	wantUser(t, s, u2)
	if _, err := s.UseToken(ctx(t), tok2.Hash, now, func(*store.User) error { return nil }); err != nil {
		t.Fatalf("the old token after a refused reissue: %v", err)
	}

	_, mails := createWithMails(t, s, "mailer@example.com", expiry.Add(time.Hour))
	r = reissue(u2, now, expiry.Add(time.Hour))
	r.Mail.ID = mails[0].ID
	_, err = s.ReissueLink(ctx(t), r)
	wantConflict(t, err, "mail_id")
	wantUser(t, s, u2)
	wantCounts(t, s, 1, 0)
}

// testReissuedLinkErased: the reissued token and mail are the user's, so
// replacing the user once it expired removes them too.
func testReissuedLinkErased(t *testing.T, s store.Store) {
	expiry := time.Now().Add(time.Hour)
	sq := CreateSquatter(t, s, "again@example.com", "again", expiry)
	later := expiry.Add(time.Hour)
	r := reissue(sq.User, time.Now(), later)
	r.Mail.NextAttempt = later.Add(time.Hour) // not due in the checks below
	if _, err := s.ReissueLink(ctx(t), r); err != nil {
		t.Fatalf("ReissueLink: %v", err)
	}
	create(t, s, newcomer("again@example.com", "", later))
	gone := &Squatter{User: sq.User, Token: r.Token, Queued: r.Mail, Parked: r.Mail, Expiry: later}
	WantSquatterGone(t, s, gone)
	wantCounts(t, s, 1, 0) // the newcomer's mail
}

// testReissueRacesActivation: a reissue racing the old link's use: one of
// them wins; never an active user with a fresh pending link.
func testReissueRacesActivation(t *testing.T, s store.Store) {
	for round := range 8 {
		expiry := time.Now().Add(time.Hour)
		sq := CreateSquatter(t, s, fmt.Sprintf("race%d@example.com", round), "", expiry)
		now := time.Now()
		r := reissue(sq.User, now, expiry.Add(time.Hour))
		errs := RunConcurrent(2, func(i int) error {
			if i == 0 {
				_, err := s.UseToken(ctx(t), sq.Token.Hash, now, activate(now))
				return err
			}
			_, err := s.ReissueLink(ctx(t), r)
			return err
		})
		got, err := s.GetUser(ctx(t), sq.User.ID)
		if err != nil {
			t.Fatal(err)
		}
		switch activated, reissued := errs[0] == nil, errs[1] == nil; {
		case activated && !reissued:
			wantNotFound(t, fmt.Sprintf("round %d: ReissueLink after activation", round), errs[1])
			if got.Status != store.StatusActive {
				t.Fatalf("round %d: user %s after activation", round, got.Status)
			}
			_, err := s.UseToken(ctx(t), r.Token.Hash, now, func(*store.User) error { return nil })
			wantNotFound(t, "the refused reissue's token", err)
		case reissued && !activated:
			wantNotFound(t, fmt.Sprintf("round %d: the old token after the reissue", round), errs[0])
			if got.Status != store.StatusPending || got.PendingUntil != r.PendingUntil {
				t.Fatalf("round %d: user %+v after the reissue", round, got)
			}
		default:
			t.Fatalf("round %d: activation %v, reissue %v: want exactly one to succeed", round, errs[0], errs[1])
		}
		if errors.Is(errs[0], store.ErrUnavailable) || errors.Is(errs[1], store.ErrUnavailable) {
			t.Fatalf("round %d: %v %v", round, errs[0], errs[1])
		}
	}
}
