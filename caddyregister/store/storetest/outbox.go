package storetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// Webhook events in the outbox (store/outbox.go): chained messages are
// handed out in order, one at a time per chain, and every store operation
// that reports a change enqueues its events in the change's own step.

var outboxTests = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"ChainOrder", testChainOrder},
	{"ChainLeaseHoldsLater", testChainLeaseHoldsLater},
	{"ChainParkReleasesNext", testChainParkReleasesNext},
	{"ChainsIndependent", testChainsIndependent},
	{"ConcurrentClaimChain", testConcurrentClaimChain},
	{"UpdateUserOutbox", testUpdateUserOutbox},
	{"UpdateUserOutboxAborts", testUpdateUserOutboxAborts},
	{"DeleteUserOutbox", testDeleteUserOutbox},
	{"CreateSessionOutbox", testCreateSessionOutbox},
	{"UseTokenOutbox", testUseTokenOutbox},
}

// NewTestEvent returns a webhook event of userID on chain, due at due,
// with a fresh id.
func NewTestEvent(userID, chain, event string, due time.Time) *store.Mail {
	return &store.Mail{
		ID:          store.NewID(time.Now()),
		Kind:        store.KindWebhook,
		Event:       event,
		Chain:       chain,
		To:          []string{"http://app.internal/hooks"},
		Text:        `{"type":"` + event + `","data":{"id":"` + userID + `"}}`,
		UserID:      userID,
		CreatedAt:   time.Now(),
		NextAttempt: due,
	}
}

// events returns n events of userID on chain, due at due.
func events(userID, chain string, due time.Time, names ...string) []*store.Mail {
	var out []*store.Mail
	for _, n := range names {
		out = append(out, NewTestEvent(userID, chain, n, due))
	}
	return out
}

// wantClaimID claims at now and fails unless the message is want.
func wantClaimID(t *testing.T, s store.Store, now time.Time, want *store.Mail) *store.Mail {
	t.Helper()
	m := claim(t, s, now, time.Minute)
	if m.ID != want.ID {
		t.Fatalf("claimed %s (%s), want %s (%s)", m.ID, m.Event, want.ID, want.Event)
	}
	return m
}

func ack(t *testing.T, s store.Store, id string) {
	t.Helper()
	if err := s.AckMail(ctx(t), id); err != nil {
		t.Fatalf("AckMail(%s): %v", id, err)
	}
}

func testChainOrder(t *testing.T, s store.Store) {
	now := time.Now()
	u := NewTestUser("chain@example.com", "")
	chain := "ep0:" + u.ID
	// The later events are due earlier: order is the chain's, not the
	// due times'.
	evs := events(u.ID, chain, now, "user.created", "session.created", "user.activated")
	evs[1].NextAttempt, evs[2].NextAttempt = now.Add(-time.Hour), now.Add(-2*time.Hour)
	mail := NewTestMail(u.ID, now)
	create(t, s, store.NewUser{User: u, Mails: append([]*store.Mail{mail}, evs...)})
	wantCounts(t, s, 2, 0) // the mail and the chain's head

	var got []string
	for range 4 {
		m := claim(t, s, now, time.Minute)
		wantSameMail(t, "claimed "+m.ID, m, byID(append(evs, mail), m.ID))
		got = append(got, m.Event)
		ack(t, s, m.ID)
		// The next of a chain is due when its predecessor is acked,
		// on the store's clock.
		now = time.Now()
	}
	claimNone(t, s, now.Add(time.Hour))
	// The mail may come anywhere: it is on no chain.
	got = slices.DeleteFunc(got, func(e string) bool { return e == "" })
	if want := []string{"user.created", "session.created", "user.activated"}; !slices.Equal(got, want) {
		t.Fatalf("claimed events in order %q, want the chain's order %q", got, want)
	}
	wantCounts(t, s, 0, 0)
}

func byID(ms []*store.Mail, id string) *store.Mail {
	for _, m := range ms {
		if m.ID == id {
			return m
		}
	}
	return &store.Mail{ID: "none"}
}

func testChainLeaseHoldsLater(t *testing.T, s store.Store) {
	now := time.Now()
	u := NewTestUser("lease.chain@example.com", "")
	evs := events(u.ID, "ep0:"+u.ID, now, "user.created", "user.updated")
	create(t, s, store.NewUser{User: u, Mails: evs})
	wantClaimID(t, s, now, evs[0])
	// Leased, and the later event waits behind it, however late.
	claimNone(t, s, now.Add(30*time.Second))
	// The lease lapses: the same head comes back, not the next.
	m := wantClaimID(t, s, now.Add(2*time.Minute), evs[0])
	m.Attempts, m.LastError, m.NextAttempt = 1, "HTTP 500", now.Add(3*time.Minute)
	if err := s.RetryMail(ctx(t), m); err != nil {
		t.Fatalf("RetryMail: %v", err)
	}
	claimNone(t, s, now.Add(150*time.Second))
	wantClaimID(t, s, now.Add(3*time.Minute), evs[0])
	ack(t, s, evs[0].ID)
	wantClaimID(t, s, time.Now(), evs[1])
}

func testChainParkReleasesNext(t *testing.T, s store.Store) {
	now := time.Now()
	u := NewTestUser("park.chain@example.com", "")
	evs := events(u.ID, "ep0:"+u.ID, now, "user.created", "user.updated", "user.deleted")
	create(t, s, store.NewUser{User: u, Mails: evs})
	m := wantClaimID(t, s, now, evs[0])
	m.Attempts, m.LastError = 8, "HTTP 503"
	if err := s.ParkMail(ctx(t), m); err != nil {
		t.Fatalf("ParkMail: %v", err)
	}
	wantCounts(t, s, 1, 1)
	wantClaimID(t, s, time.Now(), evs[1])
	ack(t, s, evs[1].ID)
	wantClaimID(t, s, time.Now(), evs[2])
	// Acking the parked one later (an operator's delete) leaves the
	// chain alone.
	ack(t, s, evs[0].ID)
	claimNone(t, s, time.Now())
	wantCounts(t, s, 1, 0) // evs[2], leased
}

func testChainsIndependent(t *testing.T, s store.Store) {
	now := time.Now()
	a := NewTestUser("chain.a@example.com", "")
	b := NewTestUser("chain.b@example.com", "")
	ea := events(a.ID, "ep0:"+a.ID, now, "user.created", "user.updated")
	eb := events(b.ID, "ep0:"+b.ID, now.Add(time.Millisecond), "user.created", "user.updated")
	create(t, s, store.NewUser{User: a, Mails: ea})
	create(t, s, store.NewUser{User: b, Mails: eb})
	// a's head is leased: b's events still flow.
	wantClaimID(t, s, now.Add(time.Second), ea[0])
	wantClaimID(t, s, now.Add(time.Second), eb[0])
	ack(t, s, eb[0].ID)
	wantClaimID(t, s, time.Now().Add(time.Second), eb[1])
	claimNone(t, s, now.Add(2*time.Second))
}

func testConcurrentClaimChain(t *testing.T, s store.Store) {
	now := time.Now()
	u := NewTestUser("concurrent.chain@example.com", "")
	evs := events(u.ID, "ep0:"+u.ID, now, "user.created", "session.created", "user.activated", "user.updated")
	create(t, s, store.NewUser{User: u, Mails: evs})
	const n = 8
	got := make([]*store.Mail, n)
	errs := RunConcurrent(n, func(i int) error {
		m, err := s.ClaimMail(ctx(t), now, time.Minute)
		got[i] = m
		return err
	})
	claimed := 0
	for i, err := range errs {
		switch {
		case err == nil:
			claimed++
			if got[i].ID != evs[0].ID {
				t.Errorf("claimer %d got %s, want the chain's head %s", i, got[i].Event, evs[0].Event)
			}
		case !errors.Is(err, store.ErrNotFound):
			t.Errorf("claimer %d: %v", i, err)
		}
	}
	if claimed != 1 {
		t.Fatalf("%d claimers got a message of one chain, want 1", claimed)
	}
}

func testUpdateUserOutbox(t *testing.T, s store.Store) {
	u := NewTestUser("update.outbox@example.com", "")
	create(t, s, store.NewUser{User: u})
	now := time.Now()
	active := store.StatusActive
	var seen store.Status
	out, err := s.UpdateUser(ctx(t), u.ID, store.UserPatch{Status: &active, Now: now,
		Outbox: func(was, got *store.User) ([]*store.Mail, error) {
			if was.Status != store.StatusPending {
				t.Errorf("outbox saw the status before as %q, want pending", was.Status)
			}
			seen = got.Status
			return events(got.ID, "ep0:"+got.ID, now, "user.activated"), nil
		}})
	if err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	if seen != store.StatusActive || out.Status != store.StatusActive {
		t.Fatalf("outbox saw status %q, update returned %q; want active", seen, out.Status)
	}
	m := claim(t, s, now, time.Minute)
	if m.Event != "user.activated" || m.Kind != store.KindWebhook || m.UserID != u.ID {
		t.Fatalf("queued %+v, want the user.activated event", m)
	}
}

func testUpdateUserOutboxAborts(t *testing.T, s store.Store) {
	u := NewTestUser("update.abort@example.com", "")
	first := events(u.ID, "ep0:"+u.ID, time.Now(), "user.created")
	create(t, s, store.NewUser{User: u, Mails: first})
	now := time.Now()
	inactive := store.StatusInactive
	boom := errors.New("sealing failed")
	_, err := s.UpdateUser(ctx(t), u.ID, store.UserPatch{Status: &inactive, Now: now,
		Outbox: func(_, _ *store.User) ([]*store.Mail, error) { return nil, boom }})
	if !errors.Is(err, boom) {
		t.Fatalf("UpdateUser with a failing outbox: %v, want %v", err, boom)
	}
	// A taken message id is a conflict: nothing is written either.
	_, err = s.UpdateUser(ctx(t), u.ID, store.UserPatch{Status: &inactive, Now: now,
		Outbox: func(_, _ *store.User) ([]*store.Mail, error) { return first, nil }})
	wantConflict(t, err, "mail_id")
	wantUser(t, s, u)
	wantCounts(t, s, 1, 0)
}

func testDeleteUserOutbox(t *testing.T, s store.Store) {
	now := time.Now()
	u := NewTestUser("delete.outbox@example.com", "")
	chain := "ep0:" + u.ID
	evs := events(u.ID, chain, now, "user.created", "user.updated")
	mail := NewTestMail(u.ID, now.Add(time.Minute)) // erased before it is due
	create(t, s, store.NewUser{User: u, Mails: append([]*store.Mail{mail}, evs...)})
	head := wantClaimID(t, s, now, evs[0]) // in flight as the user is erased
	deleted := NewTestEvent(u.ID, chain, "user.deleted", now)
	if _, _, err := s.DeleteUser(ctx(t), u.ID, deleted); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	wantUserAbsent(t, s, u)
	// The mail went with the user; the events stay, in order, with
	// user.deleted last.
	wantCounts(t, s, 1, 0) // the leased head; the mail is gone, the rest wait in the chain
	claimNone(t, s, now.Add(30*time.Second))
	ack(t, s, head.ID)
	wantClaimID(t, s, time.Now(), evs[1])
	ack(t, s, evs[1].ID)
	wantClaimID(t, s, time.Now(), deleted)
	ack(t, s, deleted.ID)
	wantCounts(t, s, 0, 0)

	// Refused when the user is gone: nothing queued.
	again := NewTestEvent(u.ID, chain, "user.deleted", now)
	_, _, err := s.DeleteUser(ctx(t), u.ID, again)
	wantNotFound(t, "DeleteUser of an erased user", err)
	wantCounts(t, s, 0, 0)
}

func testCreateSessionOutbox(t *testing.T, s store.Store) {
	now := time.Now()
	u := NewTestUser("session.outbox@example.com", "")
	create(t, s, store.NewUser{User: u})
	sess := NewTestSession(u.ID, now, time.Hour, 24*time.Hour)
	ev := NewTestEvent(u.ID, "ep0:"+u.ID, "session.created", now)
	if err := s.CreateSession(ctx(t), sess, ev); err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	wantClaimID(t, s, now, ev)

	// A refused session (unknown user) queues nothing.
	other := NewTestSession("no-such-user", now, time.Hour, 24*time.Hour)
	err := s.CreateSession(ctx(t), other, NewTestEvent("no-such-user", "ep0:x", "session.created", now))
	wantNotFound(t, "CreateSession of an unknown user", err)
	// A taken message id: no session.
	third := NewTestSession(u.ID, now, time.Hour, 24*time.Hour)
	wantConflict(t, s.CreateSession(ctx(t), third, ev), "mail_id")
	if _, err := s.GetSession(ctx(t), u.ID, third.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("session with a conflicting event was written: %v", err)
	}
	wantCounts(t, s, 1, 0)
}

func testUseTokenOutbox(t *testing.T, s store.Store) {
	now := time.Now()
	u, tok := createWithToken(t, s, "token.outbox@example.com", "tokenoutbox", now.Add(time.Hour))
	boom := errors.New("no key")
	_, err := s.UseToken(ctx(t), tok.Hash, now, activate(now),
		func(_, _ *store.User) ([]*store.Mail, error) { return nil, boom })
	if !errors.Is(err, boom) {
		t.Fatalf("UseToken with a failing outbox: %v, want %v", err, boom)
	}
	wantUser(t, s, u) // not activated
	var ev *store.Mail
	got, err := s.UseToken(ctx(t), tok.Hash, now, activate(now),
		func(_, au *store.User) ([]*store.Mail, error) {
			if au.Status != store.StatusActive {
				t.Errorf("outbox saw status %q, want active", au.Status)
			}
			ev = NewTestEvent(au.ID, "ep0:"+au.ID, "user.activated", now)
			return []*store.Mail{ev}, nil
		})
	if err != nil || got.Status != store.StatusActive {
		t.Fatalf("UseToken: %v (status %v)", err, got)
	}
	wantClaimID(t, s, now, ev)
	// A used token enqueues nothing.
	_, err = s.UseToken(ctx(t), tok.Hash, now, activate(now),
		func(_, au *store.User) ([]*store.Mail, error) {
			return events(au.ID, "ep0:"+au.ID, now, "user.activated"), nil
		})
	if !errors.Is(err, store.ErrTokenUsed) {
		t.Fatalf("second UseToken: %v, want ErrTokenUsed", err)
	}
	wantCounts(t, s, 1, 0)
}
