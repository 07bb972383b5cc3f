package redisstore_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/store"
	"github.com/caddyregister/caddyregister/caddyregister/store/storetest"
)

// TestDeletedUserLeavesNoKeys: erasing a user with a founded tenant, a
// token, a queued and a parked mail (with a body that expires) and two
// sessions leaves, found by scanning the namespace and the per-user
// slots, only the tenant's keys and the revocation feed; no outbox entry
// names its mails.
func TestDeletedUserLeavesNoKeys(t *testing.T) {
	s, admin := openAdmin(t)
	ctx := context.Background()
	tn := storetest.NewTestTenant("Gone", "ES55667788")
	u := storetest.NewTestFounder("gone@example.com", "gone", tn)
	queued := storetest.NewTestMail(u.ID, time.Now().Add(time.Hour))
	parked := storetest.NewTestMail(u.ID, time.Now().Add(-time.Hour))
	parked.ExpiresAt = time.Now().Add(time.Hour)
	err := s.CreateUser(ctx, store.NewUser{User: u, Tenant: tn,
		Token: storetest.NewTestToken(u.ID, time.Now().Add(time.Hour)), Mails: []*store.Mail{queued, parked}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.ClaimMail(ctx, time.Now(), time.Minute)
	if err != nil || m.ID != parked.ID {
		t.Fatalf("ClaimMail = %v, %v", m, err)
	}
	if err := s.ParkMail(ctx, m); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := s.CreateSession(ctx, storetest.NewTestSession(u.ID, time.Now(), time.Hour, 24*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(scanPattern(t, admin, s.UserKeyPattern())); n != 3 {
		t.Fatalf("%d per-user keys before the delete, want 2 sessions and their index", n)
	}
	if z, _ := admin.ZCard(ctx, s.Key("outbox", "parked", "bodies")).Result(); z != 1 {
		t.Fatalf("parked bodies set holds %d, want the parked mail", z)
	}
	if _, _, err := s.DeleteUser(ctx, u.ID); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	want := []string{
		s.Key("tenant", tn.ID), s.Key("tenants"),
		s.Key("idx", "tenant_code", store.TenantCodeKey(tn.Code)), s.Key("idx", "tenant_vat", tn.Billing.VATKey),
		s.Key("revoked"), s.Key("revoked", "head"),
	}
	slices.Sort(want)
	if got := scanKeys(t, admin, s); !slices.Equal(got, want) {
		t.Fatalf("keys after the delete:\n got  %q\n want %q", got, want)
	}
	if got := scanPattern(t, admin, s.UserKeyPattern()); len(got) != 0 {
		t.Fatalf("per-user keys after the delete: %q", got)
	}
}

// TestBackfillUserIndex: users written before the index existed (here:
// the index and its marker removed by hand) are added by the backfill,
// with their creation order; a second run is stopped by the marker.
func TestBackfillUserIndex(t *testing.T) {
	s, admin := openAdmin(t)
	ctx := context.Background()
	base := time.Now()
	var want []string
	for i := range 5 {
		u := storetest.NewTestUser("old"+string(rune('a'+i))+"@example.com", "")
		u.CreatedAt = base.Add(time.Duration(5-i) * time.Second) // newest first
		if err := s.CreateUser(ctx, store.NewUser{User: u, Token: storetest.NewTestToken(u.ID, time.Now().Add(time.Hour))}); err != nil {
			t.Fatal(err)
		}
		want = append([]string{u.ID}, want...)
	}
	if err := admin.Del(ctx, s.Key("users"), s.Key("users", "indexed")).Err(); err != nil {
		t.Fatal(err)
	}
	if l := storetest.ListAll(t, s, store.UserFilter{}); len(l) != 0 {
		t.Fatalf("listed %d users without the index", len(l))
	}
	n, err := s.BackfillUserIndex(ctx)
	if err != nil || n != 5 {
		t.Fatalf("BackfillUserIndex = %d, %v; want 5", n, err)
	}
	var got []string
	for _, u := range storetest.ListAll(t, s, store.UserFilter{Limit: 2}) {
		got = append(got, u.ID)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("listed %v after the backfill, want %v", got, want)
	}
	// The marker stops a second run: an index entry removed now stays
	// removed.
	if err := admin.ZRem(ctx, s.Key("users"), want[0]).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := s.BackfillUserIndex(ctx); err != nil || n != 0 {
		t.Fatalf("second BackfillUserIndex = %d, %v; want 0", n, err)
	}
	if c, _ := admin.ZCard(ctx, s.Key("users")).Result(); c != 4 {
		t.Fatalf("index holds %d after the second run, want 4", c)
	}
}

// TestUserRoundTrips pins the README's costs: a page without a filter is
// two round trips (the index page, then the records in one pipeline); an
// update two (read, compare-and-set); an erasure one, plus one to publish
// the sessions it ended.
func TestUserRoundTrips(t *testing.T) {
	s, h := openCounted(t)
	ctx := context.Background()
	var us []*store.User
	for range 5 {
		u := storetest.NewTestUser("rt"+store.NewID(time.Now())+"@example.com", "")
		if err := s.CreateUser(ctx, store.NewUser{User: u}); err != nil {
			t.Fatal(err)
		}
		us = append(us, u)
	}
	active := store.StatusActive
	// Warm the script cache (a first EVALSHA falls back to EVAL).
	if _, err := s.ListUsers(ctx, store.UserFilter{Limit: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateUser(ctx, us[4].ID, store.UserPatch{Status: &active, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.DeleteUser(ctx, us[4].ID); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSession(ctx, storetest.NewTestSession(us[2].ID, time.Now(), time.Hour, 24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RevokeUserSessions(ctx, us[2].ID, ""); err != nil { // the feed's script
		t.Fatal(err)
	}
	if err := s.CreateSession(ctx, storetest.NewTestSession(us[3].ID, time.Now(), time.Hour, 24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what string
		want int64
		run  func() error
	}{
		{"ListUsers", 2, func() error {
			p, err := s.ListUsers(ctx, store.UserFilter{Limit: 3})
			if err == nil && (len(p.Users) != 3 || p.Next == "") {
				t.Fatalf("page = %+v", p)
			}
			return err
		}},
		{"UpdateUser", 2, func() error {
			_, err := s.UpdateUser(ctx, us[0].ID, store.UserPatch{Status: &active, Now: time.Now()})
			return err
		}},
		{"DeleteUser without sessions", 1, func() error { _, _, err := s.DeleteUser(ctx, us[1].ID); return err }},
		{"DeleteUser with a session", 2, func() error { _, _, err := s.DeleteUser(ctx, us[3].ID); return err }},
	} {
		before := h.n.Load()
		if err := c.run(); err != nil {
			t.Fatalf("%s: %v", c.what, err)
		}
		if got := h.n.Load() - before; got != c.want {
			t.Errorf("%s took %d round trips, want %d", c.what, got, c.want)
		}
	}
}
