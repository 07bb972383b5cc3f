package redisstore_test

import (
	"context"
	"slices"
	"testing"

	"github.com/caddyregister/caddyregister/caddyregister/store/storetest"
)

// TestClusterParkedMails: the operators' list of parked messages merges
// every outbox shard, oldest parked first, a page at a time; GetMail
// finds a message whatever its shard.
func TestClusterParkedMails(t *testing.T) {
	s := openCluster(t)
	c := context.Background()
	if ms, next, err := s.ParkedMails(c, "", 10); err != nil || len(ms) != 0 || next != "" {
		t.Fatalf("empty parked set: %v, %q, %v", ms, next, err)
	}
	parked := storetest.ParkExpired(t, s, 5)
	var seen []string
	for cursor, pages := "", 0; ; pages++ {
		if pages > 5 {
			t.Fatal("ParkedMails never ends")
		}
		ms, next, err := s.ParkedMails(c, cursor, 2)
		if err != nil {
			t.Fatalf("ParkedMails(%q): %v", cursor, err)
		}
		for _, m := range ms {
			seen = append(seen, m.ID)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if len(seen) != len(parked) {
		t.Fatalf("listed %v, want the %d parked", seen, len(parked))
	}
	for _, m := range parked {
		if !slices.Contains(seen, m.ID) {
			t.Fatalf("parked %s not listed in %v", m.ID, seen)
		}
		got, err := s.GetMail(c, m.ID)
		if err != nil || got.ID != m.ID {
			t.Fatalf("GetMail(%s) = %+v, %v", m.ID, got, err)
		}
	}
	for _, bad := range []string{"nodot", "x.id", "1."} {
		if _, _, err := s.ParkedMails(c, bad, 2); err == nil {
			t.Errorf("cursor %q accepted", bad)
		}
	}
	if _, _, err := s.ParkedMails(c, "", 0); err == nil {
		t.Error("limit 0 accepted")
	}
}
