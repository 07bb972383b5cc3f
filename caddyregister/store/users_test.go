package store

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestUserCursorRoundTrip(t *testing.T) {
	for _, c := range []UserCursor{{0, "a"}, {1733358383123, "6b135cf0d23b75f06873695c"}, {5, "id.with.dots"}} {
		got, ok, err := ParseUserCursor(c.String())
		if err != nil || !ok || got != c {
			t.Fatalf("ParseUserCursor(%q) = %+v, %v, %v; want %+v", c.String(), got, ok, err, c)
		}
	}
	if _, ok, err := ParseUserCursor(""); ok || err != nil {
		t.Fatalf("empty cursor: %v, %v", ok, err)
	}
	for _, bad := range []string{"=", "dTEuMQ", "dTEuLTEuYQ", "dTIuMS5h", "dTEuMS4", "dTEueC5h"} {
		if _, _, err := ParseUserCursor(bad); !errors.Is(err, ErrBadCursor) {
			t.Errorf("ParseUserCursor(%q) = %v, want ErrBadCursor", bad, err)
		}
	}
	c := UserCursor{Score: 10, ID: "m"}
	for _, x := range []struct {
		score int64
		id    string
		after bool
	}{{10, "m", false}, {10, "l", false}, {10, "n", true}, {9, "z", false}, {11, "a", true}} {
		if got := c.After(x.score, x.id); got != x.after {
			t.Errorf("After(%d, %q) = %v", x.score, x.id, got)
		}
	}
}

func TestApplyUserPatch(t *testing.T) {
	u := *testNewUser().User
	u.Status, u.PendingUntil = StatusPending, 99
	now := time.Now()
	active, hash := StatusActive, "h2"
	if err := ApplyUserPatch(&u, UserPatch{Status: &active, PasswordHash: &hash, Permissions: &[]string{}, Now: now}); err != nil {
		t.Fatal(err)
	}
	if u.Status != StatusActive || u.PendingUntil != 0 || u.PasswordHash != "h2" || u.Permissions == nil || len(u.Permissions) != 0 || !u.UpdatedAt.Equal(now) {
		t.Fatalf("patched user = %+v", u)
	}
	pending := StatusPending
	u.PendingUntil = 5
	if err := ApplyUserPatch(&u, UserPatch{Status: &pending, Now: now}); err != nil || u.PendingUntil != 5 {
		t.Fatalf("back to pending: %v, pending until %d", err, u.PendingUntil)
	}
}

func TestCheckMutationCreatedAt(t *testing.T) {
	before := *testNewUser().User
	after := before
	after.CreatedAt = before.CreatedAt.Add(time.Second)
	if err := CheckMutation(&before, &after); err == nil || !strings.Contains(err.Error(), "CreatedAt") {
		t.Fatalf("CheckMutation = %v, want CreatedAt named", err)
	}
}
