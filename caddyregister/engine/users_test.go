package engine_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/password"
	"github.com/caddyregister/caddyregister/caddyregister/store"
	"github.com/caddyregister/caddyregister/caddyregister/store/redisstore"
	"github.com/caddyregister/caddyregister/caddyregister/store/storetest"
)

func strp(s string) *string       { return &s }
func listp(s ...string) *[]string { return &s }

// wantField asserts err is a *ValidationError whose first field is field
// with rule.
func wantField(t *testing.T, what string, err error, field, rule string) {
	t.Helper()
	var ve *engine.ValidationError
	if !errors.As(err, &ve) || len(ve.Fields) == 0 || ve.Fields[0].Field != field || ve.Fields[0].Rule != rule {
		t.Fatalf("%s: %v, want a validation error on %s (%s)", what, err, field, rule)
	}
}

// TestUpdateUserStatus: activation of a pending user (clearing its
// expiry) is seen by this instance's user cache at once; a disable
// revokes every session at once and refuses new ones.
func TestUpdateUserStatus(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			ev := be.open(t)
			h := newHarness(t, ev)
			u := storetest.NewTestUser("status@example.com", "")
			u.PendingUntil = time.Now().Add(time.Hour).UnixMilli()
			if err := ev.store.CreateUser(ctx, store.NewUser{User: u}); err != nil {
				t.Fatal(err)
			}
			s := mustStart(t, h.e, u.ID)
			if me, _, err := h.e.Me(ctx, s.Access); err != nil || me.Status != store.StatusPending {
				t.Fatalf("Me before = %+v, %v", me, err) // now cached
			}
			got, err := h.e.UpdateUser(ctx, u.ID, engine.UserUpdate{Status: strp("active"), Permissions: listp("read", "read", "billing:view")})
			if err != nil {
				t.Fatalf("UpdateUser: %v", err)
			}
			if got.Status != store.StatusActive || got.PendingUntil != 0 || !slices.Equal(got.Permissions, []string{"read", "billing:view"}) || got.UpdatedAt.Equal(u.UpdatedAt) {
				t.Fatalf("activated user = %+v", got)
			}
			if me, _, err := h.e.Me(ctx, s.Access); err != nil || me.Status != store.StatusActive || len(me.Permissions) != 2 {
				t.Fatalf("Me after activation = %+v, %v; the user cache kept the old record", me, err)
			}
			wantAuth(t, h.e, s.Access, s.Session.ID) // activation revokes nothing

			other := mustStart(t, h.e, u.ID)
			if _, err := h.e.UpdateUser(ctx, u.ID, engine.UserUpdate{Status: strp("inactive")}); err != nil {
				t.Fatalf("disable: %v", err)
			}
			wantRevokedToken(t, h.e, s.Access)
			wantRevokedToken(t, h.e, other.Access)
			if list, _ := h.e.ListSessions(ctx, u.ID); len(list) != 0 {
				t.Fatalf("sessions of a disabled user: %+v", list)
			}
			if _, err := h.e.StartSession(ctx, u.ID, "", "", engine.SessionLimits{}); !errors.Is(err, engine.ErrAccountDisabled) {
				t.Fatalf("StartSession of a disabled user: %v", err)
			}
			if got, err := h.e.UpdateUser(ctx, u.ID, engine.UserUpdate{Status: strp("active")}); err != nil || got.Status != store.StatusActive {
				t.Fatalf("enable again: %+v, %v", got, err)
			}
			mustStart(t, h.e, u.ID)
		})
	}
}

// TestUpdateUserPassword: a password change applies the policy, stores a
// new hash (the old password stops working) and revokes every session
// but the one kept.
func TestUpdateUserPassword(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			h := newHarness(t, be.open(t))
			uid := activeUser(t, h.e, "pw@example.com")
			keep, drop := mustStart(t, h.e, uid), mustStart(t, h.e, uid)
			wantAuth(t, h.e, drop.Access, drop.Session.ID)

			_, err := h.e.UpdateUser(ctx, uid, engine.UserUpdate{Password: strp("pw@example.com"), PasswordPolicy: password.NIST()})
			wantField(t, "password equal to the e-mail", err, "password", password.RuleNotIdentifier)
			wantAuth(t, h.e, drop.Access, drop.Session.ID) // refused: nothing revoked

			const next = "a brand new passphrase 42"
			_, err = h.e.UpdateUser(ctx, uid, engine.UserUpdate{Password: strp(next), PasswordPolicy: password.NIST(), KeepSession: keep.Session.ID})
			if err != nil {
				t.Fatalf("password change: %v", err)
			}
			wantRevokedToken(t, h.e, drop.Access)
			wantAuth(t, h.e, keep.Access, keep.Session.ID)
			if _, _, err := h.e.Login(ctx, "192.0.2.1", "test-agent", "pw@example.com", goodPassword); !errors.Is(err, engine.ErrUnauthenticated) {
				t.Fatalf("login with the old password: %v", err)
			}
			if _, _, err := h.e.Login(ctx, "192.0.2.1", "test-agent", "pw@example.com", next); err != nil {
				t.Fatalf("login with the new password: %v", err)
			}
			// Without a kept session (a reset), every session goes.
			if _, err := h.e.UpdateUser(ctx, uid, engine.UserUpdate{Password: strp(goodPassword), PasswordPolicy: password.NIST()}); err != nil {
				t.Fatal(err)
			}
			wantRevokedToken(t, h.e, keep.Access)
		})
	}
}

// TestUpdateUserValidation: bad status values and permissions are field
// errors and change nothing; admin grants go to admin_permissions only,
// and RequireAdmin honours one at once on this instance.
func TestUpdateUserValidation(t *testing.T) {
	ctx := context.Background()
	ev := openRedis(t)
	h := newHarness(t, ev)
	uid := activeUser(t, h.e, "valid@example.com")
	before := ev.snapshot(t)
	for name, c := range map[string]struct {
		u           engine.UserUpdate
		field, rule string
	}{
		"pending":             {engine.UserUpdate{Status: strp("pending")}, "status", "enum"},
		"unknown status":      {engine.UserUpdate{Status: strp("banned")}, "status", "enum"},
		"star":                {engine.UserUpdate{Permissions: listp("read", "*")}, "permissions", "admin"},
		"admin in plain":      {engine.UserUpdate{Permissions: listp(engine.PermManageUsers)}, "permissions", "admin"},
		"empty permission":    {engine.UserUpdate{Permissions: listp("")}, "permissions", "format"},
		"space":               {engine.UserUpdate{Permissions: listp("read all")}, "permissions", "format"},
		"control":             {engine.UserUpdate{Permissions: listp("read\x00")}, "permissions", "format"},
		"too long":            {engine.UserUpdate{Permissions: listp(string(make([]byte, engine.MaxPermissionLen+1)))}, "permissions", "format"},
		"star grant":          {engine.UserUpdate{AdminPermissions: listp("*")}, "admin_permissions", "enum"},
		"plain as admin":      {engine.UserUpdate{AdminPermissions: listp("read")}, "admin_permissions", "enum"},
		"too many":            {engine.UserUpdate{Permissions: func() *[]string { p := make([]string, engine.MaxPermissions+1); return &p }()}, "permissions", "max_items"},
		"weak password":       {engine.UserUpdate{Password: strp("short"), PasswordPolicy: password.NIST()}, "password", password.RuleMinLength},
		"bad status and perm": {engine.UserUpdate{Status: strp("x"), Permissions: listp("*")}, "status", "enum"},
	} {
		_, err := h.e.UpdateUser(ctx, uid, c.u)
		wantField(t, name, err, c.field, c.rule)
	}
	if after := ev.snapshot(t); after != before {
		t.Fatalf("a refused update wrote:\n%s\nthen\n%s", before, after)
	}
	for _, id := range []string{"", "nope", store.NewID(time.Now())} {
		if _, err := h.e.UpdateUser(ctx, id, engine.UserUpdate{Status: strp("active")}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("UpdateUser(%q): %v, want store.ErrNotFound", id, err)
		}
		if _, err := h.e.GetUser(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GetUser(%q): %v, want store.ErrNotFound", id, err)
		}
	}

	p := &engine.Principal{Kind: engine.KindUser, ID: uid}
	if err := h.e.RequireAdmin(ctx, p, engine.PermManageUsers); !errors.Is(err, engine.ErrForbidden) {
		t.Fatalf("RequireAdmin before the grant: %v", err) // the user is now cached
	}
	if _, err := h.e.UpdateUser(ctx, uid, engine.UserUpdate{AdminPermissions: listp(engine.PermManageUsers)}); err != nil {
		t.Fatal(err)
	}
	if err := h.e.RequireAdmin(ctx, p, engine.PermManageUsers); err != nil {
		t.Fatalf("RequireAdmin after the grant: %v", err)
	}
	if _, err := h.e.UpdateUser(ctx, uid, engine.UserUpdate{AdminPermissions: listp()}); err != nil {
		t.Fatal(err)
	}
	if err := h.e.RequireAdmin(ctx, p, engine.PermManageUsers); !errors.Is(err, engine.ErrForbidden) {
		t.Fatalf("RequireAdmin after withdrawing the grant: %v", err)
	}
}

// TestDeleteUserEngine: an erased user's tokens are refused at once here
// and, through the feed, on another instance; its refresh token is dead;
// its e-mail registers again.
func TestDeleteUserEngine(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			ev := be.open(t)
			h := newHarness(t, ev)
			evB := *ev
			evB.store = ev.reopen(t)
			b := newHarness(t, &evB)
			uid := activeUser(t, h.e, "erase@example.com")
			s := mustStart(t, h.e, uid)
			if _, _, err := h.e.Me(ctx, s.Access); err != nil {
				t.Fatal(err)
			}
			wantAuth(t, b.e, s.Access, s.Session.ID)

			if err := h.e.DeleteUser(ctx, uid); err != nil {
				t.Fatalf("DeleteUser: %v", err)
			}
			wantRevokedToken(t, h.e, s.Access)
			if _, _, err := h.e.Me(ctx, s.Access); !errors.Is(err, engine.ErrUnauthenticated) {
				t.Fatalf("Me of an erased user: %v", err)
			}
			if err := b.e.PollRevocations(ctx); err != nil {
				t.Fatal(err)
			}
			wantRevokedToken(t, b.e, s.Access)
			if _, err := h.e.Refresh(ctx, s.Refresh, "", "", engine.SessionLimits{}); !errors.Is(err, engine.ErrUnauthenticated) {
				t.Fatalf("Refresh of an erased user: %v", err)
			}
			if _, err := h.e.GetUser(ctx, uid); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("GetUser: %v", err)
			}
			if err := h.e.DeleteUser(ctx, uid); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("DeleteUser again: %v", err)
			}
			again := activeUser(t, h.e, "ERASE@example.com")
			page, err := h.e.ListUsers(ctx, engine.UserQuery{})
			if err != nil || len(page.Users) != 1 || page.Users[0].ID != again {
				t.Fatalf("ListUsers = %+v, %v; want only the new user", page, err)
			}
		})
	}
}

// TestDeleteUserRacingLogin: a delete racing a login leaves no session
// that authenticates: the login is refused, or its session was ended.
func TestDeleteUserRacingLogin(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			h := newHarness(t, be.open(t))
			for i := range 10 {
				uid := activeUser(t, h.e, fmt.Sprintf("racer%d@example.com", i))
				var st *engine.SessionTokens
				errs := storetest.RunConcurrent(2, func(j int) error {
					if j == 0 {
						return h.e.DeleteUser(ctx, uid)
					}
					var err error
					st, err = h.e.StartSession(ctx, uid, "", "", engine.SessionLimits{})
					return err
				})
				if errs[0] != nil {
					t.Fatalf("DeleteUser: %v", errs[0])
				}
				switch {
				case errors.Is(errs[1], engine.ErrUnauthenticated):
				case errs[1] != nil:
					t.Fatalf("StartSession: %v", errs[1])
				default:
					wantRevokedToken(t, h.e, st.Access)
					if _, err := h.e.Refresh(ctx, st.Refresh, "", "", engine.SessionLimits{}); !errors.Is(err, engine.ErrUnauthenticated) {
						t.Fatalf("Refresh after the racing delete: %v", err)
					}
				}
				if list, _ := h.e.ListSessions(ctx, uid); len(list) != 0 {
					t.Fatalf("sessions of an erased user: %+v", list)
				}
			}
		})
	}
}

// TestListUsersEngine: filters as the admin API passes them (the e-mail
// prefix compared as e-mails are), paging, and field errors.
func TestListUsersEngine(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock() // one millisecond apart: a known order
	h := newHarness(t, openBolt(t), withClock(clock))
	ann := activeUser(t, h.e, "Ann@Example.com")
	clock.Advance(time.Millisecond)
	bob := mustRegister(t, h.e, reg("bob@example.com")).User.ID
	clock.Advance(time.Millisecond)
	anna := activeUser(t, h.e, "anna@example.com")
	all := func(q engine.UserQuery) []string {
		var out []string
		for {
			page, err := h.e.ListUsers(ctx, q)
			if err != nil {
				t.Fatalf("ListUsers(%+v): %v", q, err)
			}
			for _, u := range page.Users {
				out = append(out, u.ID)
			}
			if page.Next == "" {
				return out
			}
			q.Cursor = page.Next
		}
	}
	for name, c := range map[string]struct {
		q    engine.UserQuery
		want []string
	}{
		"all, pages of one": {engine.UserQuery{Limit: 1}, []string{ann, bob, anna}},
		"active":            {engine.UserQuery{Status: "active"}, []string{ann, anna}},
		"pending":           {engine.UserQuery{Status: "pending"}, []string{bob}},
		"prefix any case":   {engine.UserQuery{EmailPrefix: "ANN"}, []string{ann, anna}},
		"prefix whole":      {engine.UserQuery{EmailPrefix: "ann@example.COM"}, []string{ann}},
	} {
		if got := all(c.q); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", name, got, c.want)
		}
	}
	for name, c := range map[string]struct {
		q           engine.UserQuery
		field, rule string
	}{
		"status":   {engine.UserQuery{Status: "gone"}, "status", "enum"},
		"limit":    {engine.UserQuery{Limit: store.MaxUserPage + 1}, "limit", "range"},
		"negative": {engine.UserQuery{Limit: -1}, "limit", "range"},
		"cursor":   {engine.UserQuery{Cursor: "not-a-cursor"}, "cursor", "format"},
		"tenant":   {engine.UserQuery{TenantID: "acme"}, "tenant", "format"},
		"prefix":   {engine.UserQuery{EmailPrefix: "\xff"}, "email", "format"},
	} {
		_, err := h.e.ListUsers(ctx, c.q)
		wantField(t, name, err, c.field, c.rule)
	}
}

// TestStartBackfillsUserIndex: users a Redis store holds from before the
// ordered index are listed once an engine has started on it.
func TestStartBackfillsUserIndex(t *testing.T) {
	ctx := context.Background()
	ev := openRedis(t)
	h := newHarness(t, ev)
	a := activeUser(t, h.e, "early@example.com")
	b := activeUser(t, h.e, "later@example.com")
	rs := ev.store.(*redisstore.Store)
	if err := rs.Client().Del(ctx, rs.Key("users"), rs.Key("users", "indexed")).Err(); err != nil {
		t.Fatal(err)
	}
	if page, err := h.e.ListUsers(ctx, engine.UserQuery{}); err != nil || len(page.Users) != 0 {
		t.Fatalf("ListUsers without the index = %+v, %v", page, err)
	}
	later := newHarness(t, ev) // Start backfills
	page, err := later.e.ListUsers(ctx, engine.UserQuery{})
	got := []string{}
	for _, u := range page.Users {
		got = append(got, u.ID)
	}
	want := []string{a, b}
	slices.Sort(got)
	slices.Sort(want)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("ListUsers after Start = %+v, %v; want %s, %s", page, err, a, b)
	}
}

// TestDisableRacingLogin: a disable racing a login leaves no session that
// authenticates: the login is refused as disabled, or its session was
// revoked by the disable.
func TestDisableRacingLogin(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			h := newHarness(t, be.open(t))
			for i := range 10 {
				uid := activeUser(t, h.e, fmt.Sprintf("disabled%d@example.com", i))
				var st *engine.SessionTokens
				errs := storetest.RunConcurrent(2, func(j int) error {
					if j == 0 {
						_, err := h.e.UpdateUser(ctx, uid, engine.UserUpdate{Status: strp("inactive")})
						return err
					}
					var err error
					st, err = h.e.StartSession(ctx, uid, "", "", engine.SessionLimits{})
					return err
				})
				if errs[0] != nil {
					t.Fatalf("disable: %v", errs[0])
				}
				switch {
				case errors.Is(errs[1], engine.ErrAccountDisabled):
				case errs[1] != nil:
					t.Fatalf("StartSession: %v", errs[1])
				default:
					wantRevokedToken(t, h.e, st.Access)
				}
				if list, _ := h.e.ListSessions(ctx, uid); len(list) != 0 {
					t.Fatalf("sessions of a disabled user: %+v", list)
				}
			}
		})
	}
}
