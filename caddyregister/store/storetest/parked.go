package storetest

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// ParkExpired queues n mails for a new user and parks them, bodies and
// all, with links that expired a minute ago: what the worker leaves after
// giving up, and what the next DropParkedBodies is due to clear.
func ParkExpired(t testing.TB, s store.Store, n int) []*store.Mail {
	t.Helper()
	c := context.Background()
	now := time.Now()
	u := NewTestUser("parked-"+store.NewID(now)+"@example.com", "")
	mails := make([]*store.Mail, n)
	for i := range mails {
		mails[i] = NewTestMail(u.ID, now.Add(-time.Second))
	}
	if err := s.CreateUser(c, store.NewUser{User: u, Mails: mails}); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	for range mails {
		m, err := s.ClaimMail(c, now, time.Minute)
		if err != nil {
			t.Fatalf("ClaimMail: %v", err)
		}
		m.ExpiresAt = now.Add(-time.Minute)
		m.Attempts, m.LastError = 10, "550 no such user"
		if err := s.ParkMail(c, m); err != nil {
			t.Fatalf("ParkMail: %v", err)
		}
	}
	return mails
}

// WantCorruptSkipped checks what DropParkedBodies returned when the record
// of bad (one of ParkExpired's mails) cannot be decoded: the others' bodies
// cleared (want of them), and an error wrapping store.ErrCorrupt that names
// bad.
func WantCorruptSkipped(t testing.TB, n int, err error, want int, bad *store.Mail) {
	t.Helper()
	if n != want || !errors.Is(err, store.ErrCorrupt) || !strings.Contains(err.Error(), bad.ID) {
		t.Fatalf("DropParkedBodies with a corrupt record = %d, %v; want %d and ErrCorrupt naming %s", n, err, want, bad.ID)
	}
	if errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("a corrupt record reported as the store unavailable: %v", err)
	}
}

// testParkedMails: a store with store.ParkedMails (both of ours) lists
// parked messages oldest first, a page at a time, reads one by id, and a
// RetryMail takes one off the list and queues it.
func testParkedMails(t *testing.T, s store.Store) {
	p, ok := s.(store.ParkedMails)
	if !ok {
		t.Fatal("store does not implement store.ParkedMails")
	}
	c := context.Background()
	if ms, next, err := p.ParkedMails(c, "", 10); err != nil || len(ms) != 0 || next != "" {
		t.Fatalf("empty parked set: %v, %q, %v", ms, next, err)
	}
	parked := ParkExpired(t, s, 3)
	var seen []string
	for cursor, pages := "", 0; ; pages++ {
		if pages > 3 {
			t.Fatal("ParkedMails never ends")
		}
		ms, next, err := p.ParkedMails(c, cursor, 2)
		if err != nil {
			t.Fatalf("ParkedMails(%q): %v", cursor, err)
		}
		for _, m := range ms {
			if m.Attempts != 10 || m.LastError != "550 no such user" || !m.HasBody() {
				t.Fatalf("parked record %+v", m)
			}
			seen = append(seen, m.ID)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if len(seen) != 3 {
		t.Fatalf("listed %v, want the 3 parked", seen)
	}
	for _, m := range parked {
		if !slices.Contains(seen, m.ID) {
			t.Fatalf("parked %s not listed in %v", m.ID, seen)
		}
	}
	for _, bad := range []string{"nodot", "x.id", "1."} {
		if _, _, err := p.ParkedMails(c, bad, 2); err == nil {
			t.Errorf("cursor %q accepted", bad)
		}
	}
	if _, _, err := p.ParkedMails(c, "", 0); err == nil {
		t.Error("limit 0 accepted")
	}

	m, err := p.GetMail(c, seen[0])
	if err != nil || m.ID != seen[0] {
		t.Fatalf("GetMail: %+v, %v", m, err)
	}
	if _, err := p.GetMail(c, store.NewID(time.Now())); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetMail of an unknown id: %v", err)
	}
	m.Attempts, m.NextAttempt = 0, time.Now().Add(-time.Second)
	if err := s.RetryMail(c, m); err != nil {
		t.Fatalf("RetryMail of a parked message: %v", err)
	}
	if ms, _, err := p.ParkedMails(c, "", 10); err != nil || len(ms) != 2 || slices.ContainsFunc(ms, func(x *store.Mail) bool { return x.ID == m.ID }) {
		t.Fatalf("after a retry: %v, %v", ms, err)
	}
	got, err := s.ClaimMail(c, time.Now(), time.Minute)
	if err != nil || got.ID != m.ID {
		t.Fatalf("ClaimMail after the retry: %+v, %v", got, err)
	}
}
