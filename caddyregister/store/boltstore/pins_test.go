package boltstore_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/store"
	"github.com/caddyregister/caddyregister/caddyregister/store/boltstore"
	"github.com/caddyregister/caddyregister/caddyregister/store/storetest"
)

// testClock is a settable clock for the store, at millisecond precision
// like the store's expiry keys.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock { return &testClock{t: time.Now().Truncate(time.Millisecond)} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestCommitsAreSynced: every commit is fdatasynced (the README's "an
// acknowledged registration survives a crash"). bbolt skips the sync when
// its NoSync is set, whether through the options Open passes or on the DB
// afterwards, on any path: a lone registration's Update, a stream's Batch,
// the outbox's and the secrets' writes, a reopened file. A kill -9 test
// cannot see a missing sync (the page cache survives the process), so the
// flag is checked after each.
func TestCommitsAreSynced(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "register.db")
	s := open(t, path)
	check := func(after string) {
		t.Helper()
		if boltstore.SyncDisabled(s) {
			t.Fatalf("after %s: bbolt's NoSync is on; commits are not synced", after)
		}
	}
	check("Open")
	if err := s.CreateUser(ctx, store.NewUser{User: storetest.NewTestUser("lone@example.com", "")}); err != nil {
		t.Fatal(err)
	}
	check("a lone registration")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			u := storetest.NewTestUser(fmt.Sprintf("stream%d@example.com", i), "")
			m := &store.Mail{ID: store.NewID(time.Now()), To: []string{"a@example.com"}, Subject: "s", Text: "t", UserID: u.ID, CreatedAt: time.Now(), NextAttempt: time.Now()}
			if err := s.CreateUser(ctx, store.NewUser{User: u, Mails: []*store.Mail{m}}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	check("a stream of registrations")
	if _, err := s.LoadOrCreateSecret(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	check("LoadOrCreateSecret")
	m, err := s.ClaimMail(ctx, time.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AckMail(ctx, m.ID); err != nil {
		t.Fatal(err)
	}
	check("ClaimMail and AckMail")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path)
	defer s.Close()
	check("a reopen")
}
