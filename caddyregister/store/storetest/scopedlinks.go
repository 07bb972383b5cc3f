package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// resetPurpose is the purpose of the scoped reissues below (the engine's
// password reset links).
const resetPurpose = "reset-password"

// scoped is a reset link (or, without a token, a notice) for active u.
func scoped(u *store.User, now time.Time, withToken bool) store.LinkReissue {
	m := NewTestMail(u.ID, now)
	m.Purpose = resetPurpose
	r := store.LinkReissue{UserID: u.ID, Mail: m, Now: now, Purpose: resetPurpose}
	if withToken {
		r.Token = NewTestToken(u.ID, now.Add(time.Hour))
		r.Token.Purpose = resetPurpose
	} else {
		m.Purpose = "password-changed"
	}
	return r
}

// testReissueScoped: a reissue scoped to a purpose replaces only the
// user's tokens and undelivered mails of that purpose, leaves the user
// record and its other links and mails alone, works without a token (a
// notice), and erasure finds everything it wrote.
func testReissueScoped(t *testing.T, s store.Store) {
	now := time.Now()
	u := NewTestUser("reset@example.com", "reset")
	u.Status = store.StatusActive
	activation := NewTestToken(u.ID, now.Add(time.Hour))
	other := NewTestMail(u.ID, now) // an activation mail not yet delivered
	other.Purpose = "activation"
	create(t, s, store.NewUser{User: u, Token: activation, Mails: []*store.Mail{other}})
	if _, err := s.UseToken(ctx(t), activation.Hash, now, func(*store.User) error { return nil }); err != nil {
		t.Fatalf("UseToken(activation): %v", err)
	}
	u, err := s.GetUser(ctx(t), u.ID)
	if err != nil {
		t.Fatal(err)
	}

	first := scoped(u, now, true)
	got, err := s.ReissueLink(ctx(t), first)
	if err != nil {
		t.Fatalf("ReissueLink(first reset link): %v", err)
	}
	if got.ID != u.ID || got.Status != store.StatusActive {
		t.Fatalf("ReissueLink returned %+v", got)
	}
	wantUser(t, s, u) // the record is not written
	wantCounts(t, s, 2, 0)

	second := scoped(u, now, true)
	if _, err := s.ReissueLink(ctx(t), second); err != nil {
		t.Fatalf("ReissueLink(second reset link): %v", err)
	}
	_, err = s.UseToken(ctx(t), first.Token.Hash, now, func(*store.User) error { return nil })
	wantNotFound(t, "UseToken with the replaced reset token", err)
	if _, err := s.UseToken(ctx(t), activation.Hash, now, func(*store.User) error { return nil }); !errors.Is(err, store.ErrTokenUsed) {
		t.Fatalf("the used activation token after a reset reissue: %v, want ErrTokenUsed (kept)", err)
	}
	wantCounts(t, s, 2, 0) // the activation mail and the second reset mail

	notice := scoped(u, now, false)
	if _, err := s.ReissueLink(ctx(t), notice); err != nil {
		t.Fatalf("ReissueLink(notice without token): %v", err)
	}
	_, err = s.UseToken(ctx(t), second.Token.Hash, now, func(*store.User) error { return nil })
	wantNotFound(t, "UseToken with the reset token revoked by the notice", err)
	ids := map[string]bool{}
	for {
		m, err := s.ClaimMail(ctx(t), now.Add(time.Second), time.Minute)
		if errors.Is(err, store.ErrNotFound) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ids[m.ID] = true
	}
	if len(ids) != 2 || !ids[other.ID] || !ids[notice.Mail.ID] {
		t.Fatalf("queued mails %v; want the activation mail %s and the notice %s", ids, other.ID, notice.Mail.ID)
	}

	// A notice does not replace another notice (its purpose is its own),
	// and erasure finds every token and mail the reissues wrote.
	third := scoped(u, now, true)
	if _, err := s.ReissueLink(ctx(t), third); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.DeleteUser(ctx(t), u.ID); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	_, err = s.UseToken(ctx(t), third.Token.Hash, now, func(*store.User) error { return nil })
	wantNotFound(t, "UseToken with an erased user's reset token", err)
	for _, id := range []string{other.ID, notice.Mail.ID, third.Mail.ID} {
		wantNotFound(t, "AckMail of an erased user's mail "+id, ackGone(t, s, id))
	}
	wantCounts(t, s, 0, 0)
}

// ackGone retries a mail (which answers ErrNotFound once it is gone).
func ackGone(t *testing.T, s store.Store, id string) error {
	t.Helper()
	return s.RetryMail(ctx(t), &store.Mail{ID: id, NextAttempt: time.Now()})
}

// testReissueScopedRefused: a scoped reissue for an unknown, pending,
// disabled or password-less user is ErrNotFound and writes nothing; a
// token of another purpose, a pending expiry or no token without a
// purpose are the caller's mistakes.
func testReissueScopedRefused(t *testing.T, s store.Store) {
	now := time.Now()
	_, err := s.ReissueLink(ctx(t), scoped(NewTestUser("ghost@example.com", ""), now, true))
	wantNotFound(t, "scoped ReissueLink of an unknown user", err)
	for i, mod := range []func(*store.User){
		func(u *store.User) { u.Status, u.PendingUntil = store.StatusPending, now.Add(time.Hour).UnixMilli() },
		func(u *store.User) { u.Status = store.StatusInactive },
		func(u *store.User) { u.PasswordHash = "" },
	} {
		u := NewTestUser(fmt.Sprintf("scoped%d@example.com", i), "")
		u.Status = store.StatusActive
		mod(u)
		create(t, s, store.NewUser{User: u})
		r := scoped(u, now, true)
		_, err := s.ReissueLink(ctx(t), r)
		wantNotFound(t, fmt.Sprintf("case %d: scoped ReissueLink", i), err)
		wantUser(t, s, u)
		_, err = s.UseToken(ctx(t), r.Token.Hash, now, func(*store.User) error { return nil })
		wantNotFound(t, fmt.Sprintf("case %d: the refused token", i), err)
	}
	wantCounts(t, s, 0, 0)

	u := NewTestUser("mistakes@example.com", "")
	u.Status = store.StatusActive
	create(t, s, store.NewUser{User: u})
	for i, mod := range []func(*store.LinkReissue){
		func(r *store.LinkReissue) { r.Token.Purpose = "activation" },
		func(r *store.LinkReissue) { r.PendingUntil = now.Add(time.Hour).UnixMilli() },
		func(r *store.LinkReissue) { r.Purpose, r.Token.Purpose, r.Token = "", "", nil },
	} {
		r := scoped(u, now, true)
		mod(&r)
		if _, err := s.ReissueLink(ctx(t), r); err == nil || errors.Is(err, store.ErrNotFound) {
			t.Fatalf("case %d: ReissueLink = %v, want an error of the caller", i, err)
		}
	}
	wantUser(t, s, u)
	wantCounts(t, s, 0, 0)
}
