// Package storetest is the contract test suite every store backend must
// pass. A backend's own test calls Run with a constructor for fresh, empty
// stores:
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store {
//			s := openEmptyStore(t)
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// The suite only uses the store.Store interface, so it holds every backend to
// the same promises: lookups, normalized uniqueness, all-or-nothing writes
// (a rejected registration leaves no record, index entry, mail or token
// behind), the outbox's claim/lease/ack/retry/park cycle, single-use
// challenges and tokens, gap-free sequences, expiring idempotency records,
// and a single winner under concurrency; the tenant registry (create,
// ensure, look up by code, list) and that users join only existing
// tenants; pending users that expire (their e-mail and login held until
// then, replaced whole after, one winner among racing registrations, and
// an activation racing the replacement never activating the newcomer);
// sessions (refresh-token rotation with its grace window, reuse
// revoking the session, listing by last use, revoke and revoke-all, the
// revocation feed, and their races; session.go); user management
// (update, erase, the ordered list with its cursor and filters, and the
// races of a delete with a login or an update; users.go).
package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

var seq atomic.Int64

// NewTestUser returns a pending user with every field set, keys built the way
// the engine builds them (store.EmailKey, store.LoginKey) and a fresh id. An
// empty login leaves Login and LoginKey empty.
func NewTestUser(email, login string) *store.User {
	now := time.Now()
	n := seq.Add(1)
	return &store.User{
		ID:           store.NewID(now),
		Email:        email,
		EmailKey:     store.EmailKey(email),
		Login:        login,
		LoginKey:     store.LoginKey(login),
		Name:         fmt.Sprintf("Test User %d", n),
		FirstName:    "Test",
		LastName:     fmt.Sprintf("User %d", n),
		PasswordHash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
		Status:       store.StatusPending,
		Permissions:  []string{"read", "write:own"},
		Contract:     "default",
		Attributes: store.Attrs{
			"newsletter": json.RawMessage(`true`),
			"phone":      json.RawMessage(`"+34 600 000 000"`),
			"prefs":      json.RawMessage(`{"lang":"es","tz":"Europe/Madrid"}`),
		},
		CreatedAt: now,
		UpdatedAt: now.Add(time.Second),

		AdminPermissions: []string{"manage-users"},
	}
}

// NewTestTenant returns a tenant with billing, its VAT key built with
// store.VATKey, and a fresh id.
func NewTestTenant(code, vatID string) *store.Tenant {
	now := time.Now()
	return &store.Tenant{
		ID:   store.NewID(now),
		Code: code,
		Name: "Tenant " + code,
		Billing: &store.Billing{
			Company:       "Company " + code + " S.L.",
			VATID:         vatID,
			VATKey:        store.VATKey(vatID),
			Address:       "Calle Mayor 1, Madrid",
			CreditBalance: json.Number("12.50"),
		},
		CreatedAt: now,
	}
}

// Run runs the contract suite. newStore returns a fresh, empty store for each
// subtest (the caller handles cleanup via t.Cleanup).
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"CreateGetRoundTrip", testRoundTrip},
		{"InvalidNewUser", testInvalidNewUser},
		{"UnknownNotFound", testUnknownNotFound},
		{"IndexesResolve", testIndexesResolve},
		{"DuplicateEmail", testDuplicateEmail},
		{"DuplicateLogin", testDuplicateLogin},
		{"RejectedCreateLeavesKeysFree", testRejectedCreateLeavesKeysFree},
		{"AliasesDistinct", testAliasesDistinct},
		{"UserWithTenant", testUserWithTenant},
		{"DuplicateTenantVAT", testDuplicateTenantVAT},
		{"DuplicateTenantCode", testDuplicateTenantCode},
		{"Taken", testTaken},
		{"LoadOrCreateSecret", testLoadOrCreateSecret},
		{"ConcurrentSameEmail", testConcurrentSameEmail},
		{"ConcurrentSecret", testConcurrentSecret},
		{"SwapSecret", testSwapSecret},
		{"ConcurrentSwapSecret", testConcurrentSwapSecret},
		{"Ping", testPing},
		{"CreateWithMailsAndToken", testCreateWithMailsAndToken},
		{"CreateConflictWritesNoMailOrToken", testCreateConflictWritesNoMailOrToken},
		{"TokenAndMailIDConflict", testTokenAndMailIDConflict},
		{"ClaimMailDueOnly", testClaimMailDueOnly},
		{"ClaimMailOrder", testClaimMailOrder},
		{"ClaimMailLease", testClaimMailLease},
		{"ConcurrentClaimOne", testConcurrentClaimOne},
		{"ConcurrentClaimDistinct", testConcurrentClaimDistinct},
		{"AckMail", testAckMail},
		{"RetryMail", testRetryMail},
		{"ParkMail", testParkMail},
		{"DropParkedBodies", testDropParkedBodies},
		{"ParkedMails", testParkedMails},
		{"RetryAfterAck", testRetryAfterAck},
		{"Challenge", testChallenge},
		{"ChallengeExpiry", testChallengeExpiry},
		{"ConcurrentTakeChallenge", testConcurrentTakeChallenge},
		{"UseToken", testUseToken},
		{"UseTokenNotFound", testUseTokenNotFound},
		{"UseTokenMutateError", testUseTokenMutateError},
		{"ConcurrentUseToken", testConcurrentUseToken},
		{"Sequence", testSequence},
		{"SequenceNoGapOnConflict", testSequenceNoGapOnConflict},
		{"ConcurrentSequence", testConcurrentSequence},
		{"ConcurrentSequenceWithConflicts", testConcurrentSequenceWithConflicts},
		{"SequencesIndependent", testSequencesIndependent},
		{"Idempotency", testIdempotency},
		{"IdempotencyExpiry", testIdempotencyExpiry},
		{"ConcurrentIdempotency", testConcurrentIdempotency},
		{"FailedCreateWritesNoIdempotency", testFailedCreateWritesNoIdempotency},
		{"PendingNotExpiredHoldsKeys", testPendingNotExpiredHoldsKeys},
		{"PendingExpiredReplaced", testPendingExpiredReplaced},
		{"PendingExpiredLoginReplaced", testPendingExpiredLoginReplaced},
		{"PendingExpiredReplacementRefused", testPendingExpiredReplacementRefused},
		{"ConcurrentReplaceExpired", testConcurrentReplaceExpired},
		{"ActivationRacesReplacement", testActivationRacesReplacement},
		{"IdempotencyInvalid", testIdempotencyInvalid},
		{"TenantCreateGetList", testTenantCreateGetList},
		{"TenantDuplicates", testTenantDuplicates},
		{"EnsureTenant", testEnsureTenant},
		{"ConcurrentEnsureTenant", testConcurrentEnsureTenant},
		{"FoundedTenantsListed", testFoundedTenantsListed},
		{"JoinTenantMustExist", testJoinTenantMustExist},
		{"ConcurrentCreateTenant", testConcurrentCreateTenant},
	}
	tests = append(tests, sessionTests...)
	tests = append(tests, linkTests...)
	tests = append(tests, userTests...)
	tests = append(tests, outboxTests...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
	// Normalization variants each need their own store, so they run as
	// subtests of their own.
	t.Run("EmailNormalizationConflicts", func(t *testing.T) {
		testEmailNormalization(t, newStore)
	})
}

func testRoundTrip(t *testing.T, s store.Store) {
	u := NewTestUser("Round.Trip@Example.com", "RoundTrip")
	u.Status = store.StatusActive
	// Joining a tenant needs it to exist.
	tenant := NewTestRegistryTenant("RoundTrip", "members")
	createTenant(t, s, tenant)
	u.TenantID = tenant.ID
	// A non-UTC zone and a nanosecond part must survive too.
	zone := time.FixedZone("CET", 3600)
	u.CreatedAt = time.Date(2024, 3, 5, 10, 11, 12, 123456789, zone)
	u.UpdatedAt = time.Now() // carries a monotonic reading
	create(t, s, store.NewUser{User: u})
	wantUser(t, s, u)

	got, err := s.GetUser(ctx(t), u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.CreatedAt.Equal(u.CreatedAt) || !got.UpdatedAt.Equal(u.UpdatedAt) {
		t.Fatalf("timestamps changed: got %v/%v want %v/%v", got.CreatedAt, got.UpdatedAt, u.CreatedAt, u.UpdatedAt)
	}
	if string(got.Attributes["prefs"]) != `{"lang":"es","tz":"Europe/Madrid"}` {
		t.Fatalf("attribute prefs = %s", got.Attributes["prefs"])
	}

	// The returned record is the caller's: mutating it changes nothing stored.
	got.Email = "changed@example.com"
	got.Permissions[0] = "changed"
	wantUser(t, s, u)
}

func testUnknownNotFound(t *testing.T, s store.Store) {
	c := ctx(t)
	unknown := store.NewID(time.Now())
	_, err := s.GetUser(c, unknown)
	wantNotFound(t, "GetUser(unknown)", err)
	wantAbsent(t, s.GetTenant, unknown, "GetTenant(unknown)")
	wantAbsent(t, s.UserIDByEmail, store.EmailKey("nobody@example.com"), "UserIDByEmail(unknown)")
	wantAbsent(t, s.UserIDByLogin, store.LoginKey("nobody"), "UserIDByLogin(unknown)")
	wantAbsent(t, s.TenantIDByVAT, store.VATKey("XX000000"), "TenantIDByVAT(unknown)")

	// Known records do not make unknown ones visible.
	create(t, s, store.NewUser{User: NewTestUser("someone@example.com", "someone")})
	_, err = s.GetUser(c, unknown)
	wantNotFound(t, "GetUser(unknown) with data present", err)
}

func testIndexesResolve(t *testing.T, s store.Store) {
	a := NewTestUser("Ann@Example.com", "Ann")
	b := NewTestUser("bob@example.com", "")
	create(t, s, store.NewUser{User: a})
	create(t, s, store.NewUser{User: b})
	wantEmailIndex(t, s, store.EmailKey("ann@example.com"), a.ID)
	wantEmailIndex(t, s, store.EmailKey("  ANN@example.COM "), a.ID)
	wantLoginIndex(t, s, store.LoginKey("ANN"), a.ID)
	wantEmailIndex(t, s, b.EmailKey, b.ID)
	wantUser(t, s, a)
	wantUser(t, s, b)
	// A user without login claims no login index entry.
	wantAbsent(t, s.UserIDByLogin, "", `UserIDByLogin("") after a user without login`)
}

func testDuplicateEmail(t *testing.T, s store.Store) {
	first := NewTestUser("dup@example.com", "first")
	create(t, s, store.NewUser{User: first})
	second := NewTestUser("dup@example.com", "second")
	wantConflict(t, s.CreateUser(ctx(t), store.NewUser{User: second}), "email")

	wantUserAbsent(t, s, second)
	wantAbsent(t, s.UserIDByLogin, second.LoginKey, "login index of rejected user")
	wantEmailIndex(t, s, first.EmailKey, first.ID)
	wantLoginIndex(t, s, first.LoginKey, first.ID)
	wantUser(t, s, first)
}

func testDuplicateLogin(t *testing.T, s store.Store) {
	first := NewTestUser("one@example.com", "Shared")
	create(t, s, store.NewUser{User: first})
	second := NewTestUser("two@example.com", "sHARED ")
	wantConflict(t, s.CreateUser(ctx(t), store.NewUser{User: second}), "login")

	wantUserAbsent(t, s, second)
	wantAbsent(t, s.UserIDByEmail, second.EmailKey, "e-mail index of user rejected on login")
	wantLoginIndex(t, s, first.LoginKey, first.ID)
	wantUser(t, s, first)
}

// A rejected registration must not hold on to the keys it did not get to
// claim: retrying with the conflicting field changed succeeds.
func testRejectedCreateLeavesKeysFree(t *testing.T, s store.Store) {
	first := NewTestUser("first@example.com", "taken")
	create(t, s, store.NewUser{User: first})

	tenant := NewTestTenant("RETRY", "DE123456789")
	second := NewTestUser("second@example.com", "taken")
	second.TenantID = tenant.ID
	tenant.CreatedBy = second.ID
	wantConflict(t, s.CreateUser(ctx(t), store.NewUser{User: second, Tenant: tenant}), "login")
	wantAbsent(t, s.GetTenant, tenant.ID, "tenant of user rejected on login")
	wantAbsent(t, s.TenantIDByVAT, tenant.Billing.VATKey, "VAT index of user rejected on login")
	if err := s.Taken(ctx(t), store.UniqueKeys{EmailKey: second.EmailKey, TenantVATKey: tenant.Billing.VATKey, TenantCodeKey: "retry"}); err != nil {
		t.Fatalf("Taken after rejected create: %v, want nil", err)
	}

	second.Login, second.LoginKey = "free", store.LoginKey("free")
	create(t, s, store.NewUser{User: second, Tenant: tenant})
	wantUser(t, s, second)
	wantTenant(t, s, tenant)
	wantEmailIndex(t, s, second.EmailKey, second.ID)
}

func testEmailNormalization(t *testing.T, newStore func(t *testing.T) store.Store) {
	cases := []struct {
		name, first, second string
	}{
		{"case", "Alice@Example.com", "alice@EXAMPLE.COM"},
		{"whitespace", "alice@example.com", "  alice@example.com\t"},
		{"case and whitespace", " ALICE@example.com", "alice@Example.Com "},
		{"NFC composed first", "jos\u00e9@example.com", "jose\u0301@example.com"},
		{"NFC decomposed first", "jose\u0301@example.com", "JOS\u00c9@example.com"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			first := NewTestUser(tc.first, "")
			create(t, s, store.NewUser{User: first})
			second := NewTestUser(tc.second, "")
			if first.EmailKey != second.EmailKey {
				t.Fatalf("store.EmailKey(%q) = %q, store.EmailKey(%q) = %q: want equal",
					tc.first, first.EmailKey, tc.second, second.EmailKey)
			}
			wantConflict(t, s.CreateUser(ctx(t), store.NewUser{User: second}), "email")
			wantUserAbsent(t, s, second)
			wantEmailIndex(t, s, store.EmailKey(tc.second), first.ID)
			if err := s.Taken(ctx(t), store.UniqueKeys{EmailKey: store.EmailKey(tc.second)}); err == nil {
				t.Fatal("Taken did not report the normalized e-mail")
			} else {
				wantConflict(t, err, "email")
			}
		})
	}
}

func testAliasesDistinct(t *testing.T, s store.Store) {
	plain := NewTestUser("carol@example.com", "")
	alias := NewTestUser("carol+shop@example.com", "")
	alias2 := NewTestUser("Carol+News@Example.com", "")
	for _, u := range []*store.User{plain, alias, alias2} {
		create(t, s, store.NewUser{User: u})
	}
	for _, u := range []*store.User{plain, alias, alias2} {
		wantEmailIndex(t, s, u.EmailKey, u.ID)
		wantUser(t, s, u)
	}
	// Each alias is itself unique.
	again := NewTestUser("CAROL+shop@example.com", "")
	wantConflict(t, s.CreateUser(ctx(t), store.NewUser{User: again}), "email")
}

// NewTestFounder returns NewTestUser(email, login) as the founder of
// tenant: its TenantID is tenant.ID and tenant.CreatedBy its id.
func NewTestFounder(email, login string, tenant *store.Tenant) *store.User {
	u := NewTestUser(email, login)
	u.TenantID = tenant.ID
	tenant.CreatedBy = u.ID
	return u
}

func testUserWithTenant(t *testing.T, s store.Store) {
	tenant := NewTestTenant("ACME", "es 12.345.678-x")
	u := NewTestFounder("founder@acme.example", "founder", tenant)
	create(t, s, store.NewUser{User: u, Tenant: tenant})

	wantUser(t, s, u)
	wantTenant(t, s, tenant)
	id, err := s.TenantIDByVAT(ctx(t), store.VATKey("ES12345678X"))
	if err != nil {
		t.Fatalf("TenantIDByVAT: %v", err)
	}
	if id != tenant.ID {
		t.Fatalf("TenantIDByVAT = %q, want %q", id, tenant.ID)
	}
	wantEmailIndex(t, s, u.EmailKey, u.ID)
	wantLoginIndex(t, s, u.LoginKey, u.ID)

	// A user joining without founding a tenant leaves it untouched.
	member := NewTestUser("member@acme.example", "")
	member.TenantID = tenant.ID
	create(t, s, store.NewUser{User: member})
	wantUser(t, s, member)
	wantTenant(t, s, tenant)
}

func testDuplicateTenantVAT(t *testing.T, s store.Store) {
	t1 := NewTestTenant("ACME", "ES12345678X")
	u1 := NewTestFounder("a@acme.example", "acme-a", t1)
	create(t, s, store.NewUser{User: u1, Tenant: t1})

	// Same company, VAT id written differently, different code.
	t2 := NewTestTenant("ACME2", "es 12.345.678-x")
	u2 := NewTestFounder("b@other.example", "acme-b", t2)
	wantConflict(t, s.CreateUser(ctx(t), store.NewUser{User: u2, Tenant: t2}), "tenant*")

	wantUserAbsent(t, s, u2)
	wantAbsent(t, s.GetTenant, t2.ID, "GetTenant of rejected tenant")
	wantAbsent(t, s.UserIDByEmail, u2.EmailKey, "e-mail index of user rejected on tenant")
	wantAbsent(t, s.UserIDByLogin, u2.LoginKey, "login index of user rejected on tenant")
	if err := s.Taken(ctx(t), store.UniqueKeys{TenantCodeKey: "acme2"}); err != nil {
		t.Fatalf("code of rejected tenant is claimed: Taken = %v", err)
	}

	id, err := s.TenantIDByVAT(ctx(t), t1.Billing.VATKey)
	if err != nil || id != t1.ID {
		t.Fatalf("TenantIDByVAT = %q, %v; want %q", id, err, t1.ID)
	}
	wantTenant(t, s, t1)
	wantUser(t, s, u1)
}

func testDuplicateTenantCode(t *testing.T, s store.Store) {
	t1 := NewTestTenant("Globex", "FR12345678901")
	u1 := NewTestFounder("a@globex.example", "", t1)
	create(t, s, store.NewUser{User: u1, Tenant: t1})

	t2 := NewTestTenant("GLOBEX", "IT12345678901")
	u2 := NewTestFounder("b@globex.example", "", t2)
	wantConflict(t, s.CreateUser(ctx(t), store.NewUser{User: u2, Tenant: t2}), "tenant*")

	wantUserAbsent(t, s, u2)
	wantAbsent(t, s.GetTenant, t2.ID, "GetTenant of rejected tenant")
	wantAbsent(t, s.TenantIDByVAT, t2.Billing.VATKey, "VAT index of rejected tenant")
	wantAbsent(t, s.UserIDByEmail, u2.EmailKey, "e-mail index of user rejected on tenant code")
	wantTenant(t, s, t1)
}

func testTaken(t *testing.T, s store.Store) {
	tenant := NewTestTenant("Initech", "GB 123 4567 89")
	u := NewTestFounder("Taken@Example.com", "TakenLogin", tenant)
	n := store.NewUser{User: u, Tenant: tenant}
	create(t, s, n)
	keys := n.Of()

	free := store.UniqueKeys{
		EmailKey:      store.EmailKey("free@example.com"),
		LoginKey:      store.LoginKey("free"),
		TenantVATKey:  store.VATKey("GB999999999"),
		TenantCodeKey: "free-co",
	}
	cases := []struct {
		name  string
		keys  store.UniqueKeys
		field string // "" means nil expected
	}{
		{"empty", store.UniqueKeys{}, ""},
		{"all free", free, ""},
		{"email", store.UniqueKeys{EmailKey: keys.EmailKey}, "email"},
		{"email normalized", store.UniqueKeys{EmailKey: store.EmailKey(" TAKEN@example.com")}, "email"},
		{"login", store.UniqueKeys{LoginKey: store.LoginKey("takenlogin")}, "login"},
		{"tenant vat", store.UniqueKeys{TenantVATKey: store.VATKey("gb123456789")}, "tenant_vat"},
		{"tenant code", store.UniqueKeys{TenantCodeKey: keys.TenantCodeKey}, "tenant_code"},
		{"login among free", store.UniqueKeys{EmailKey: free.EmailKey, LoginKey: keys.LoginKey, TenantVATKey: free.TenantVATKey}, "login"},
		{"vat among free", store.UniqueKeys{EmailKey: free.EmailKey, LoginKey: free.LoginKey, TenantVATKey: keys.TenantVATKey, TenantCodeKey: free.TenantCodeKey}, "tenant_vat"},
		{"all taken", keys, "*"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Taken(ctx(t), tc.keys)
			switch tc.field {
			case "":
				if err != nil {
					t.Fatalf("Taken(%+v) = %v, want nil", tc.keys, err)
				}
			case "*":
				wantConflict(t, err, "*")
			default:
				wantConflict(t, err, tc.field)
			}
		})
	}
}

func testConcurrentSameEmail(t *testing.T, s store.Store) {
	const n = 50
	users := make([]*store.User, n)
	for i := range users {
		users[i] = NewTestUser("race@example.com", "")
	}
	c := ctx(t)
	errs := RunConcurrent(n, func(i int) error {
		return s.CreateUser(c, store.NewUser{User: users[i]})
	})
	winner := OneWinner(t, errs, "email")
	readable := 0
	for i, u := range users {
		_, err := s.GetUser(c, u.ID)
		switch {
		case err == nil:
			readable++
			if i != winner {
				t.Errorf("loser %d (%s) is readable", i, u.ID)
			}
		case errors.Is(err, store.ErrNotFound):
		default:
			t.Errorf("GetUser %d: %v", i, err)
		}
	}
	if readable != 1 {
		t.Fatalf("%d users readable, want 1", readable)
	}
	wantUser(t, s, users[winner])
	wantEmailIndex(t, s, users[winner].EmailKey, users[winner].ID)
}

func testPing(t *testing.T, s store.Store) {
	if err := s.Ping(ctx(t)); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

// testInvalidNewUser: malformed input is a plain error (not a conflict,
// not unavailability) and writes nothing, on every backend.
func testInvalidNewUser(t *testing.T, s store.Store) {
	noID := NewTestUser("noid@example.com", "")
	noID.ID = ""
	noEmail := NewTestUser("", "")
	founder := NewTestUser("founder@example.com", "")
	noTenantID := NewTestTenant("NOID", "")
	noTenantID.ID = ""
	for name, n := range map[string]store.NewUser{
		"nil user":        {},
		"empty id":        {User: noID},
		"empty email key": {User: noEmail},
		"empty tenant id": {User: founder, Tenant: noTenantID},
	} {
		err := s.CreateUser(ctx(t), n)
		var ce *store.ConflictError
		if err == nil || errors.As(err, &ce) || errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s: CreateUser = %v, want a plain error", name, err)
		}
	}
	wantUserAbsent(t, s, founder)
	if ts, err := s.ListTenants(ctx(t)); err != nil || len(ts) != 0 {
		t.Errorf("tenants after refused creates: %v, %v", ts, err)
	}
}
