package storetest

import (
	"context"
	"errors"
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
