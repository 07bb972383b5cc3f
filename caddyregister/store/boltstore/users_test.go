package boltstore_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/store"
	"github.com/caddyregister/caddyregister/caddyregister/store/boltstore"
	"github.com/caddyregister/caddyregister/caddyregister/store/storetest"
)

// TestDeletedUserLeavesNoRecords: erasing a user with a founded tenant, a
// token, a queued and a parked mail and two sessions leaves no record of
// it in any bucket; the tenant's stay.
func TestDeletedUserLeavesNoRecords(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "register.db"))
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	tn := storetest.NewTestTenant("Gone", "ES55667788")
	u := storetest.NewTestFounder("gone@example.com", "gone", tn)
	queued := storetest.NewTestMail(u.ID, time.Now().Add(time.Hour))
	parked := storetest.NewTestMail(u.ID, time.Now().Add(-time.Hour))
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
	if _, _, err := s.DeleteUser(ctx, u.ID); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	counts, err := boltstore.BucketCounts(s)
	if err != nil {
		t.Fatal(err)
	}
	for name, n := range counts {
		want := 0
		switch name {
		case "tenants", "idx_tenant_code", "idx_tenant_vat":
			want = 1 // the founded tenant stays
		}
		if n != want {
			t.Errorf("bucket %s holds %d records, want %d", name, n, want)
		}
	}
}

// TestBackfillUserIndex: users written before the index existed are
// added by the backfill in creation order; the marker stops a second run.
func TestBackfillUserIndex(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "register.db"))
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	base := time.Now()
	var want []string
	for i := range 5 {
		u := storetest.NewTestUser("old"+string(rune('a'+i))+"@example.com", "")
		u.CreatedAt = base.Add(time.Duration(5-i) * time.Second) // newest first
		if err := s.CreateUser(ctx, store.NewUser{User: u}); err != nil {
			t.Fatal(err)
		}
		want = append([]string{u.ID}, want...)
	}
	if err := boltstore.ForgetUserIndex(s); err != nil {
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
	if n, err := s.BackfillUserIndex(ctx); err != nil || n != 0 {
		t.Fatalf("second BackfillUserIndex = %d, %v; want 0", n, err)
	}
}

// TestBackfillDoneIsARead: once the backfill ran, running it again (every
// engine start) commits nothing.
func TestBackfillDoneIsARead(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "register.db"))
	t.Cleanup(func() { _ = s.Close() })
	if _, err := s.BackfillUserIndex(context.Background()); err != nil {
		t.Fatal(err)
	}
	before, err := boltstore.LastTxID(s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.BackfillUserIndex(context.Background()); err != nil {
		t.Fatal(err)
	}
	if after, _ := boltstore.LastTxID(s); after != before {
		t.Fatalf("a backfill already done committed %d transactions", after-before)
	}
}
