package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// userTests are the user-management cases of the contract suite (Run):
// UpdateUser, DeleteUser, ListUsers and BackfillUserIndex.
var userTests = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"UpdateUser", testUpdateUser},
	{"UpdateUserInvalid", testUpdateUserInvalid},
	{"ConcurrentUpdateUser", testConcurrentUpdateUser},
	{"DeleteUser", testDeleteUser},
	{"DeleteUserFreesKeys", testDeleteUserFreesKeys},
	{"DeleteUserRacingLogin", testDeleteUserRacingLogin},
	{"DeleteUserRacingUpdate", testDeleteUserRacingUpdate},
	{"CreateSessionNeedsUser", testCreateSessionNeedsUser},
	{"DisableRacingLogin", testDisableRacingLogin},
	{"ListUsersOrder", testListUsersOrder},
	{"ListUsersFilters", testListUsersFilters},
	{"ListUsersInvalid", testListUsersInvalid},
	{"ListUsersScanBudget", testListUsersScanBudget},
	{"BackfillUserIndexIdempotent", testBackfillIdempotent},
}

// NewSessionUser creates a user for sessions to belong to (CreateSession
// needs one) and returns its id.
func NewSessionUser(t *testing.T, s store.Store) string {
	t.Helper()
	u := NewTestUser(fmt.Sprintf("session%d@example.com", seq.Add(1)), "")
	create(t, s, store.NewUser{User: u})
	return u.ID
}

// ListAll pages through ListUsers with f (its Cursor ignored) and returns
// every user, failing the test on a page that breaks the index order.
func ListAll(t *testing.T, s store.Store, f store.UserFilter) []*store.User {
	t.Helper()
	f.Cursor = ""
	var all []*store.User
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatal("ListUsers never ends")
		}
		page, err := s.ListUsers(ctx(t), f)
		if err != nil {
			t.Fatalf("ListUsers(%+v): %v", f, err)
		}
		if f.Limit > 0 && len(page.Users) > f.Limit {
			t.Fatalf("page of %d users, limit %d", len(page.Users), f.Limit)
		}
		all = append(all, page.Users...)
		if page.Next == "" {
			break
		}
		if page.Next == f.Cursor {
			t.Fatalf("cursor %q did not move", page.Next)
		}
		f.Cursor = page.Next
	}
	for i := 1; i < len(all); i++ {
		a, b := all[i-1], all[i]
		if !(store.UserCursor{Score: store.UserIndexScore(a), ID: a.ID}).After(store.UserIndexScore(b), b.ID) {
			t.Fatalf("users out of order: %s (%v) before %s (%v)", a.ID, a.CreatedAt, b.ID, b.CreatedAt)
		}
	}
	return all
}

func ids(us []*store.User) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.ID
	}
	return out
}

func ptr[T any](v T) *T { return &v }

func testUpdateUser(t *testing.T, s store.Store) {
	u := NewTestUser("update@example.com", "update")
	u.PendingUntil = time.Now().Add(time.Hour).UnixMilli()
	create(t, s, store.NewUser{User: u})
	now := time.Now().Add(time.Minute).UTC().Truncate(time.Millisecond)
	got, err := s.UpdateUser(ctx(t), u.ID, store.UserPatch{
		Status:           ptr(store.StatusActive),
		Permissions:      &[]string{"read", "write"},
		AdminPermissions: &[]string{},
		PasswordHash:     ptr("$argon2id$new"),
		Now:              now,
	})
	if err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	want := *u
	want.Status, want.PendingUntil = store.StatusActive, 0
	want.Permissions, want.AdminPermissions = []string{"read", "write"}, nil
	want.PasswordHash, want.UpdatedAt = "$argon2id$new", now
	if !sameUser(got, &want) {
		t.Fatalf("UpdateUser returned\n %+v\nwant\n %+v", got, &want)
	}
	wantUser(t, s, &want)
	wantEmailIndex(t, s, u.EmailKey, u.ID)
	wantLoginIndex(t, s, u.LoginKey, u.ID)

	// Nil fields stay; an empty permission list clears.
	got, err = s.UpdateUser(ctx(t), u.ID, store.UserPatch{Status: ptr(store.StatusInactive), Permissions: &[]string{}, Now: now})
	if err != nil || got.Status != store.StatusInactive || len(got.Permissions) != 0 || got.PasswordHash != "$argon2id$new" {
		t.Fatalf("UpdateUser to inactive = %+v, %v", got, err)
	}
	if l := ListAll(t, s, store.UserFilter{}); !slices.Equal(ids(l), []string{u.ID}) {
		t.Fatalf("listed %v after updates, want %s once", ids(l), u.ID)
	}
	_, err = s.UpdateUser(ctx(t), store.NewID(time.Now()), store.UserPatch{Status: ptr(store.StatusActive), Now: now})
	wantNotFound(t, "UpdateUser of an unknown user", err)
}

// sameUser compares users across a storage round trip.
func sameUser(a, b *store.User) bool {
	x, y := *a, *b
	x.CreatedAt, y.CreatedAt = x.CreatedAt.UTC(), y.CreatedAt.UTC()
	x.UpdatedAt, y.UpdatedAt = x.UpdatedAt.UTC(), y.UpdatedAt.UTC()
	return fmt.Sprintf("%+v", x) == fmt.Sprintf("%+v", y)
}

func testUpdateUserInvalid(t *testing.T, s store.Store) {
	u := NewTestUser("badupdate@example.com", "")
	create(t, s, store.NewUser{User: u})
	for name, p := range map[string]store.UserPatch{
		"unknown status": {Status: ptr(store.Status("banned")), Now: time.Now()},
		"no time":        {Status: ptr(store.StatusActive)},
		"empty hash":     {PasswordHash: ptr(""), Now: time.Now()},
	} {
		if _, err := s.UpdateUser(ctx(t), u.ID, p); err == nil || errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: UpdateUser = %v, want a validation error", name, err)
		}
	}
	wantUser(t, s, u)
}

// testConcurrentUpdateUser: concurrent updates all apply, none lost.
func testConcurrentUpdateUser(t *testing.T, s store.Store) {
	u := NewTestUser("concupdate@example.com", "")
	create(t, s, store.NewUser{User: u})
	const n = 8
	errs := RunConcurrent(n, func(i int) error {
		_, err := s.UpdateUser(ctx(t), u.ID, store.UserPatch{Permissions: &[]string{fmt.Sprint("p", i)}, Now: time.Now()})
		return err
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
	}
	got, err := s.GetUser(ctx(t), u.ID)
	if err != nil || len(got.Permissions) != 1 {
		t.Fatalf("after concurrent updates: %+v, %v", got, err)
	}
	// A status and a password change at once both land.
	errs = RunConcurrent(2, func(i int) error {
		p := store.UserPatch{Now: time.Now()}
		if i == 0 {
			p.Status = ptr(store.StatusActive)
		} else {
			p.PasswordHash = ptr("$argon2id$both")
		}
		_, err := s.UpdateUser(ctx(t), u.ID, p)
		return err
	})
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("updates: %v", errs)
	}
	if got, err = s.GetUser(ctx(t), u.ID); err != nil || got.Status != store.StatusActive || got.PasswordHash != "$argon2id$both" {
		t.Fatalf("an update was lost: %+v, %v", got, err)
	}
}

// testDeleteUser: everything of the user goes, its tenant stays, and its
// live sessions are reported and published.
func testDeleteUser(t *testing.T, s store.Store) {
	tn := NewTestTenant("Erased", "ES99887766")
	f := NewTestFounder("founder@example.com", "founder", tn)
	tok := NewTestToken(f.ID, time.Now().Add(time.Hour))
	mail := NewTestMail(f.ID, time.Now().Add(time.Hour))
	create(t, s, store.NewUser{User: f, Tenant: tn, Token: tok, Mails: []*store.Mail{mail}})
	other := NewTestUser("bystander@example.com", "bystander")
	create(t, s, store.NewUser{User: other})
	a, b := newSession(t, s, f.ID), newSession(t, s, f.ID)
	kept := newSession(t, s, other.ID)
	_, cursor, err := s.Revocations(ctx(t), 0, 100)
	if err != nil && !errors.Is(err, store.ErrRevocationGap) {
		t.Fatal(err)
	}

	got, sids, err := s.DeleteUser(ctx(t), f.ID)
	if err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	if got.ID != f.ID || got.EmailKey != f.EmailKey {
		t.Fatalf("DeleteUser returned %+v, want the erased record", got)
	}
	slices.Sort(sids)
	want := []string{a.ID, b.ID}
	slices.Sort(want)
	if !slices.Equal(sids, want) {
		t.Fatalf("DeleteUser ended sessions %v, want %v", sids, want)
	}
	wantAbsent(t, s.GetUser, f.ID, "record of the erased user")
	wantAbsent(t, s.UserIDByEmail, f.EmailKey, "e-mail index of the erased user")
	wantAbsent(t, s.UserIDByLogin, f.LoginKey, "login index of the erased user")
	_, err = s.UseToken(ctx(t), tok.Hash, time.Now(), func(*store.User) error { return nil })
	wantNotFound(t, "UseToken with the erased user's token", err)
	wantCounts(t, s, 0, 0)
	wantSessionGone(t, s, a)
	wantSessionGone(t, s, b)
	if l, err := s.ListSessions(ctx(t), f.ID); err != nil || len(l) != 0 {
		t.Fatalf("ListSessions of the erased user = %v, %v", l, err)
	}
	revs, _, err := s.Revocations(ctx(t), cursor, 100)
	if err != nil {
		t.Fatalf("Revocations: %v", err)
	}
	var published []string
	for _, r := range revs {
		published = append(published, r.SessionID)
	}
	slices.Sort(published)
	if !slices.Equal(published, want) {
		t.Fatalf("feed after the delete holds %v, want %v", published, want)
	}
	wantTenant(t, s, tn)
	if l := ListAll(t, s, store.UserFilter{}); !slices.Equal(ids(l), []string{other.ID}) {
		t.Fatalf("listed %v, want only the bystander %s", ids(l), other.ID)
	}
	if _, err := s.GetSession(ctx(t), other.ID, kept.ID); err != nil {
		t.Fatalf("the bystander's session: %v", err)
	}
	wantUser(t, s, other)
	_, _, err = s.DeleteUser(ctx(t), f.ID)
	wantNotFound(t, "DeleteUser again", err)
	_, _, err = s.DeleteUser(ctx(t), store.NewID(time.Now()))
	wantNotFound(t, "DeleteUser of an unknown user", err)
}

// testDeleteUserFreesKeys: a pending user with a token, a queued and a
// parked mail is erased whole, and its e-mail and login can register at
// once.
func testDeleteUserFreesKeys(t *testing.T, s store.Store) {
	sq := CreateSquatter(t, s, "again@example.com", "again", time.Now().Add(time.Hour))
	wantCounts(t, s, 1, 1)
	if _, _, err := s.DeleteUser(ctx(t), sq.User.ID); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	WantSquatterGone(t, s, sq)
	wantCounts(t, s, 0, 0)
	if err := s.Taken(ctx(t), store.UniqueKeys{EmailKey: sq.User.EmailKey, LoginKey: sq.User.LoginKey}); err != nil {
		t.Fatalf("Taken after the delete: %v", err)
	}
	again := NewTestUser("Again@example.com", "AGAIN")
	create(t, s, store.NewUser{User: again})
	wantEmailIndex(t, s, sq.User.EmailKey, again.ID)
	wantLoginIndex(t, s, sq.User.LoginKey, again.ID)
}

// testDeleteUserRacingLogin: a delete racing a login (CreateSession)
// never leaves a live session of the erased user: either the session was
// written first and the delete ended it, or CreateSession found no user.
func testDeleteUserRacingLogin(t *testing.T, s store.Store) {
	refused := 0
	for i := range 20 {
		u := NewTestUser(fmt.Sprintf("race%d@example.com", i), "")
		create(t, s, store.NewUser{User: u})
		sess := NewTestSession(u.ID, time.Now(), time.Hour, 24*time.Hour)
		errs := RunConcurrent(2, func(i int) error {
			if i == 0 {
				_, _, err := s.DeleteUser(ctx(t), u.ID)
				return err
			}
			return s.CreateSession(ctx(t), sess)
		})
		if errs[0] != nil {
			t.Fatalf("DeleteUser: %v", errs[0])
		}
		switch err := errs[1]; {
		case errors.Is(err, store.ErrNotFound):
			refused++
		case err != nil:
			t.Fatalf("CreateSession: %v", err)
		}
		wantSessionGone(t, s, sess)
		if l, err := s.ListSessions(ctx(t), u.ID); err != nil || len(l) != 0 {
			t.Fatalf("sessions of the erased user: %v, %v", l, err)
		}
	}
	t.Logf("%d of 20 logins refused, the rest ended by the delete", refused)
}

// testDeleteUserRacingUpdate: an update racing a delete never brings the
// user back.
func testDeleteUserRacingUpdate(t *testing.T, s store.Store) {
	for i := range 20 {
		u := NewTestUser(fmt.Sprintf("upd%d@example.com", i), "")
		create(t, s, store.NewUser{User: u})
		errs := RunConcurrent(2, func(i int) error {
			if i == 0 {
				_, _, err := s.DeleteUser(ctx(t), u.ID)
				return err
			}
			_, err := s.UpdateUser(ctx(t), u.ID, store.UserPatch{Status: ptr(store.StatusActive), Now: time.Now()})
			return err
		})
		if errs[0] != nil {
			t.Fatalf("DeleteUser: %v", errs[0])
		}
		if errs[1] != nil && !errors.Is(errs[1], store.ErrNotFound) {
			t.Fatalf("UpdateUser: %v", errs[1])
		}
		wantAbsent(t, s.GetUser, u.ID, "record of the erased user after a racing update")
	}
	if l := ListAll(t, s, store.UserFilter{}); len(l) != 0 {
		t.Fatalf("listed %v after every user was erased", ids(l))
	}
}

// testCreateSessionNeedsUser: no session for an unknown or an inactive
// user; pending and active users get one.
func testCreateSessionNeedsUser(t *testing.T, s store.Store) {
	sess := NewTestSession(store.NewID(time.Now()), time.Now(), time.Hour, 24*time.Hour)
	err := s.CreateSession(ctx(t), sess)
	wantNotFound(t, "CreateSession for an unknown user", err)
	wantSessionGone(t, s, sess)

	u := NewTestUser("inactive-session@example.com", "")
	u.Status = store.StatusInactive
	create(t, s, store.NewUser{User: u})
	sess = NewTestSession(u.ID, time.Now(), time.Hour, 24*time.Hour)
	if err := s.CreateSession(ctx(t), sess); !errors.Is(err, store.ErrUserInactive) {
		t.Fatalf("CreateSession for an inactive user: %v, want ErrUserInactive", err)
	}
	wantSessionGone(t, s, sess)
	for _, st := range []store.Status{store.StatusPending, store.StatusActive} {
		if _, err := s.UpdateUser(ctx(t), u.ID, store.UserPatch{Status: ptr(st), Now: time.Now()}); err != nil {
			t.Fatal(err)
		}
		newSession(t, s, u.ID)
	}
}

// testDisableRacingLogin: a disable (UpdateUser to inactive, then
// RevokeUserSessions, as the engine does) racing a login never leaves a
// live session: a session written before the disable is revoked, one
// tried after it is refused.
func testDisableRacingLogin(t *testing.T, s store.Store) {
	for i := range 20 {
		u := NewTestUser(fmt.Sprintf("disable%d@example.com", i), "")
		u.Status = store.StatusActive
		create(t, s, store.NewUser{User: u})
		sess := NewTestSession(u.ID, time.Now(), time.Hour, 24*time.Hour)
		errs := RunConcurrent(2, func(i int) error {
			if i == 0 {
				if _, err := s.UpdateUser(ctx(t), u.ID, store.UserPatch{Status: ptr(store.StatusInactive), Now: time.Now()}); err != nil {
					return err
				}
				_, err := s.RevokeUserSessions(ctx(t), u.ID, "")
				return err
			}
			return s.CreateSession(ctx(t), sess)
		})
		if errs[0] != nil {
			t.Fatalf("disable: %v", errs[0])
		}
		if errs[1] != nil && !errors.Is(errs[1], store.ErrUserInactive) {
			t.Fatalf("CreateSession: %v", errs[1])
		}
		wantSessionGone(t, s, sess)
	}
}

// createAt registers a user created at `at`.
func createAt(t *testing.T, s store.Store, email string, at time.Time, mod func(*store.User)) *store.User {
	t.Helper()
	u := NewTestUser(email, "")
	u.CreatedAt = at
	if mod != nil {
		mod(u)
	}
	create(t, s, store.NewUser{User: u})
	return u
}

// testListUsersOrder: pages walk users by creation time, then id, each
// once, with ties on the millisecond, and across a deletion of the
// cursor's own user.
func testListUsersOrder(t *testing.T, s store.Store) {
	base := time.Now().Truncate(time.Millisecond)
	var want []*store.User
	for i := range 9 {
		// Three users per millisecond, created out of order.
		at := base.Add(time.Duration(2-i/3) * time.Millisecond)
		want = append(want, createAt(t, s, fmt.Sprintf("order%d@example.com", i), at, nil))
	}
	slices.SortFunc(want, func(a, b *store.User) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return cmpString(a.ID, b.ID)
	})
	for _, limit := range []int{1, 2, 3, 4, 9, 10, 0} {
		got := ListAll(t, s, store.UserFilter{Limit: limit})
		if !slices.Equal(ids(got), ids(want)) {
			t.Fatalf("limit %d: listed %v, want %v", limit, ids(got), ids(want))
		}
	}
	page, err := s.ListUsers(ctx(t), store.UserFilter{Limit: 9})
	if err != nil || len(page.Users) != 9 || page.Next != "" {
		t.Fatalf("one page of all = %d users, next %q, %v; want 9 and no next", len(page.Users), page.Next, err)
	}
	if !sameUser(page.Users[0], want[0]) {
		t.Fatalf("listed record %+v, want %+v", page.Users[0], want[0])
	}
	// Delete the user a cursor points at: the walk goes on after it.
	page, err = s.ListUsers(ctx(t), store.UserFilter{Limit: 4})
	if err != nil || page.Next == "" {
		t.Fatalf("first page: %v, %v", page, err)
	}
	if _, _, err := s.DeleteUser(ctx(t), want[3].ID); err != nil {
		t.Fatal(err)
	}
	rest, err := s.ListUsers(ctx(t), store.UserFilter{Limit: 10, Cursor: page.Next})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(rest.Users), ids(want[4:])) || rest.Next != "" {
		t.Fatalf("after the deleted cursor user: %v (next %q), want %v", ids(rest.Users), rest.Next, ids(want[4:]))
	}
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func testListUsersFilters(t *testing.T, s store.Store) {
	tn := NewTestTenant("Listed", "ES11223344")
	f := NewTestFounder("ann@corp.example", "", tn)
	create(t, s, store.NewUser{User: f, Tenant: tn})
	base := time.Now()
	member := createAt(t, s, "bob@corp.example", base.Add(time.Millisecond), func(u *store.User) {
		u.TenantID, u.Status = tn.ID, store.StatusActive
	})
	loner := createAt(t, s, "ann.other@example.com", base.Add(2*time.Millisecond), func(u *store.User) {
		u.Status = store.StatusInactive
	})
	for name, c := range map[string]struct {
		f    store.UserFilter
		want []*store.User
	}{
		"status pending":  {store.UserFilter{Status: store.StatusPending}, []*store.User{f}},
		"status active":   {store.UserFilter{Status: store.StatusActive}, []*store.User{member}},
		"status inactive": {store.UserFilter{Status: store.StatusInactive}, []*store.User{loner}},
		"tenant":          {store.UserFilter{TenantID: tn.ID}, []*store.User{f, member}},
		"tenant active":   {store.UserFilter{TenantID: tn.ID, Status: store.StatusActive}, []*store.User{member}},
		"email prefix":    {store.UserFilter{EmailPrefix: "ann"}, []*store.User{f, loner}},
		"prefix tenant":   {store.UserFilter{EmailPrefix: "ann", TenantID: tn.ID}, []*store.User{f}},
		"prefix none":     {store.UserFilter{EmailPrefix: "zed"}, nil},
		"unknown tenant":  {store.UserFilter{TenantID: store.NewID(time.Now())}, nil},
	} {
		for _, limit := range []int{1, 0} {
			c.f.Limit = limit
			if got := ListAll(t, s, c.f); !slices.Equal(ids(got), ids(c.want)) {
				t.Errorf("%s, limit %d: listed %v, want %v", name, limit, ids(got), ids(c.want))
			}
		}
	}
}

func testListUsersInvalid(t *testing.T, s store.Store) {
	create(t, s, store.NewUser{User: NewTestUser("inv@example.com", "")})
	for name, f := range map[string]store.UserFilter{
		"limit too big":  {Limit: store.MaxUserPage + 1},
		"negative limit": {Limit: -1},
		"unknown status": {Status: "banned"},
	} {
		if _, err := s.ListUsers(ctx(t), f); err == nil {
			t.Errorf("%s: ListUsers succeeded", name)
		}
	}
	for _, c := range []string{"x", "!!!", store.UserCursor{Score: 1, ID: "a"}.String()[:6], "dTEuLTEuYQ"} {
		if _, err := s.ListUsers(ctx(t), store.UserFilter{Cursor: c}); !errors.Is(err, store.ErrBadCursor) {
			t.Errorf("cursor %q: %v, want ErrBadCursor", c, err)
		}
	}
	if p, err := s.ListUsers(ctx(t), store.UserFilter{Limit: store.MaxUserPage}); err != nil || len(p.Users) != 1 {
		t.Fatalf("limit %d: %v, %v", store.MaxUserPage, p, err)
	}
}

// testListUsersScanBudget: a filter that matches nothing returns an empty
// page with a cursor after UserScanBudget entries, not a walk of the
// whole index.
func testListUsersScanBudget(t *testing.T, s store.Store) {
	n := store.UserScanBudget + 10
	base := time.Now()
	for chunk := 0; chunk < n; chunk += 100 {
		errs := RunConcurrent(min(100, n-chunk), func(i int) error {
			u := NewTestUser(fmt.Sprintf("budget%d@example.com", chunk+i), "")
			u.CreatedAt = base.Add(time.Duration(chunk+i) * time.Millisecond)
			return s.CreateUser(ctx(t), store.NewUser{User: u})
		})
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	f := store.UserFilter{Status: store.StatusInactive}
	page, err := s.ListUsers(ctx(t), f)
	if err != nil || len(page.Users) != 0 || page.Next == "" {
		t.Fatalf("first page: %d users, next %q, %v; want none and a cursor", len(page.Users), page.Next, err)
	}
	f.Cursor = page.Next
	page, err = s.ListUsers(ctx(t), f)
	if err != nil || len(page.Users) != 0 || page.Next != "" {
		t.Fatalf("second page: %d users, next %q, %v; want none and the end", len(page.Users), page.Next, err)
	}
	if all := ListAll(t, s, store.UserFilter{Limit: store.MaxUserPage}); len(all) != n {
		t.Fatalf("listed %d users, want %d", len(all), n)
	}
}

// testBackfillIdempotent: on a store whose users were all created with
// the index, the backfill adds nothing, and running it again neither.
func testBackfillIdempotent(t *testing.T, s store.Store) {
	u := NewTestUser("backfill@example.com", "")
	create(t, s, store.NewUser{User: u})
	for i := range 2 {
		if n, err := s.BackfillUserIndex(ctx(t)); err != nil || n != 0 {
			t.Fatalf("BackfillUserIndex #%d = %d, %v; want 0", i+1, n, err)
		}
	}
	if l := ListAll(t, s, store.UserFilter{}); !slices.Equal(ids(l), []string{u.ID}) {
		t.Fatalf("listed %v, want %s", ids(l), u.ID)
	}
}
