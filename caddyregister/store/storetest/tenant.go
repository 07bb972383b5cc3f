package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// NewTestRegistryTenant returns a tenant as an operator declares it: no
// billing, a fresh id, the given groups.
func NewTestRegistryTenant(code string, groups ...string) *store.Tenant {
	return &store.Tenant{
		ID:        store.NewID(time.Now()),
		Code:      code,
		Name:      "Tenant " + code,
		Groups:    groups,
		CreatedBy: "operator",
		CreatedAt: time.Now(),
	}
}

func createTenant(t *testing.T, s store.Store, tn *store.Tenant) {
	t.Helper()
	if err := s.CreateTenant(ctx(t), tn); err != nil {
		t.Fatalf("CreateTenant(%s): %v", tn.Code, err)
	}
}

func ensureTenant(t *testing.T, s store.Store, tn *store.Tenant) {
	t.Helper()
	if err := s.EnsureTenant(ctx(t), tn); err != nil {
		t.Fatalf("EnsureTenant(%s %s): %v", tn.ID, tn.Code, err)
	}
}

func wantCodeIndex(t *testing.T, s store.Store, code, id string) {
	t.Helper()
	wantIndex(t, "TenantIDByCode", s.TenantIDByCode, code, id)
}

func wantCodeAbsent(t *testing.T, s store.Store, code string) {
	t.Helper()
	wantAbsent(t, s.TenantIDByCode, code, fmt.Sprintf("TenantIDByCode(%q)", code))
}

// wantTenants asserts ListTenants returns exactly want, in order, each
// equal to want's record.
func wantTenants(t *testing.T, s store.Store, want ...*store.Tenant) {
	t.Helper()
	got, err := s.ListTenants(ctx(t))
	if err != nil {
		t.Fatalf("ListTenants: %v", err)
	}
	if got == nil && len(want) == 0 {
		return
	}
	codes := func(ts []*store.Tenant) []string {
		var out []string
		for _, tn := range ts {
			out = append(out, tn.Code+"/"+tn.ID)
		}
		return out
	}
	if !slices.Equal(codes(got), codes(want)) {
		t.Fatalf("ListTenants = %q, want %q", codes(got), codes(want))
	}
	for i := range got {
		if g, w := normTenant(got[i]), normTenant(want[i]); !reflect.DeepEqual(g, w) {
			t.Fatalf("ListTenants[%d] differs:\n got  %+v\n want %+v", i, g, w)
		}
	}
}

func testTenantCreateGetList(t *testing.T, s store.Store) {
	wantTenants(t, s)
	beta := NewTestRegistryTenant("beta", "admins", "Users")
	alpha := NewTestTenant("Alpha", "ES B12345678")
	alpha.Groups = []string{"x"}
	gamma := NewTestRegistryTenant("GAMMA")
	for _, tn := range []*store.Tenant{beta, alpha, gamma} {
		createTenant(t, s, tn)
	}
	for _, tn := range []*store.Tenant{beta, alpha, gamma} {
		wantTenant(t, s, tn)
	}
	wantCodeIndex(t, s, "beta", beta.ID)
	wantCodeIndex(t, s, "BETA", beta.ID)
	wantCodeIndex(t, s, " Beta ", beta.ID)
	wantCodeIndex(t, s, "alpha", alpha.ID)
	wantCodeIndex(t, s, "gamma", gamma.ID)
	wantCodeAbsent(t, s, "delta")
	wantCodeAbsent(t, s, "")
	id, err := s.TenantIDByVAT(ctx(t), store.VATKey("esb12345678"))
	if err != nil || id != alpha.ID {
		t.Fatalf("TenantIDByVAT = %q, %v; want %q", id, err, alpha.ID)
	}
	// Sorted by code, case-insensitively.
	wantTenants(t, s, alpha, beta, gamma)
	if err := s.Taken(ctx(t), store.UniqueKeys{TenantCodeKey: store.TenantCodeKey("Gamma")}); err == nil {
		t.Fatal("Taken does not see a code claimed by CreateTenant")
	}

	// Groups are case-sensitive and round-trip in order.
	got, err := s.GetTenant(ctx(t), beta.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Groups, []string{"admins", "Users"}) {
		t.Fatalf("groups = %q", got.Groups)
	}

	// Invalid input is a plain error, not an outage.
	noID := NewTestRegistryTenant("noid")
	noID.ID = ""
	for name, tn := range map[string]*store.Tenant{
		"nil":        nil,
		"empty id":   noID,
		"empty code": NewTestRegistryTenant(" "),
	} {
		for _, fn := range []func() error{
			func() error { return s.CreateTenant(ctx(t), tn) },
			func() error { return s.EnsureTenant(ctx(t), tn) },
		} {
			if err := fn(); err == nil || errors.Is(err, store.ErrUnavailable) {
				t.Errorf("%s tenant: got %v, want a plain error", name, err)
			}
		}
	}
	wantTenants(t, s, alpha, beta, gamma)
}

func testTenantDuplicates(t *testing.T, s store.Store) {
	first := NewTestTenant("Acme", "DE111111111")
	first.Groups = []string{"g"}
	createTenant(t, s, first)

	// The same code in another case.
	sameCode := NewTestTenant("ACME", "DE222222222")
	wantConflict(t, s.CreateTenant(ctx(t), sameCode), "tenant_code")
	// The same id with another code.
	sameID := NewTestTenant("Other", "DE333333333")
	sameID.ID = first.ID
	wantConflict(t, s.CreateTenant(ctx(t), sameID), "tenant_id")
	// The same VAT, written differently.
	sameVAT := NewTestTenant("Third", "de 111 111 111")
	wantConflict(t, s.CreateTenant(ctx(t), sameVAT), "tenant_vat")

	// Nothing of the rejected tenants was written.
	for _, tn := range []*store.Tenant{sameCode, sameVAT} {
		wantAbsent(t, s.GetTenant, tn.ID, "GetTenant of rejected tenant "+tn.Code)
	}
	for _, vat := range []string{"DE222222222", "DE333333333"} {
		wantAbsent(t, s.TenantIDByVAT, vat, "VAT index of rejected tenant "+vat)
	}
	wantCodeAbsent(t, s, "other")
	wantCodeAbsent(t, s, "third")
	wantCodeIndex(t, s, "acme", first.ID)
	wantTenant(t, s, first)
	wantTenants(t, s, first)

	// A registration cannot found a tenant on a code CreateTenant holds.
	founded := NewTestTenant("aCmE", "DE444444444")
	u := NewTestFounder("f@acme.example", "", founded)
	wantConflict(t, s.CreateUser(ctx(t), store.NewUser{User: u, Tenant: founded}), "tenant_code")
	wantUserAbsent(t, s, u)
	wantTenants(t, s, first)
}

func testEnsureTenant(t *testing.T, s store.Store) {
	decl := NewTestRegistryTenant("Ops", "admin", "dev")
	ensureTenant(t, s, decl)
	wantTenant(t, s, decl)
	wantCodeIndex(t, s, "OPS", decl.ID)
	wantTenants(t, s, decl)

	// The same declaration again changes nothing.
	again := *decl
	again.CreatedAt = time.Now().Add(time.Hour)
	ensureTenant(t, s, &again)
	wantTenant(t, s, decl)
	wantTenants(t, s, decl)

	// A redeclaration (code in another case) renames and unions groups;
	// the rest stays.
	redecl := &store.Tenant{
		ID:        decl.ID,
		Code:      "OPS",
		Name:      "Operations",
		Groups:    []string{"dev", "Admin", "qa", "qa"},
		Billing:   &store.Billing{Company: "ignored", VATID: "FR1", VATKey: "FR1"},
		CreatedBy: "someone else",
		CreatedAt: time.Now().Add(time.Hour),
	}
	before := slices.Clone(redecl.Groups)
	ensureTenant(t, s, redecl)
	if !slices.Equal(redecl.Groups, before) || redecl.Name != "Operations" {
		t.Fatalf("EnsureTenant modified its argument: %+v", redecl)
	}
	want := *decl
	want.Name = "Operations"
	want.Groups = []string{"admin", "dev", "Admin", "qa"}
	wantTenant(t, s, &want)
	wantTenants(t, s, &want)
	wantAbsent(t, s.TenantIDByVAT, "FR1", "VAT of a redeclared tenant")

	// An empty name keeps the stored one.
	ensureTenant(t, s, &store.Tenant{ID: decl.ID, Code: "ops"})
	wantTenant(t, s, &want)

	// Clashes: the id with another code, the code with another id.
	otherCode := NewTestRegistryTenant("Other")
	otherCode.ID = decl.ID
	wantConflict(t, s.EnsureTenant(ctx(t), otherCode), "tenant_id")
	otherID := NewTestRegistryTenant("oPs", "x")
	wantConflict(t, s.EnsureTenant(ctx(t), otherID), "tenant_code")
	wantCodeAbsent(t, s, "other")
	wantAbsent(t, s.GetTenant, otherID.ID, "GetTenant of tenant rejected on code")
	wantTenant(t, s, &want)
	wantTenants(t, s, &want)

	// A new tenant whose VAT is taken is refused whole.
	billed := NewTestTenant("Billed", "IT 123")
	ensureTenant(t, s, billed)
	sameVAT := NewTestTenant("Copy", "it123")
	wantConflict(t, s.EnsureTenant(ctx(t), sameVAT), "tenant_vat")
	wantCodeAbsent(t, s, "copy")
	wantAbsent(t, s.GetTenant, sameVAT.ID, "GetTenant of tenant rejected on VAT")

	// A tenant founded by a registration can be redeclared too.
	founded := NewTestTenant("Founded", "PT 999")
	u := NewTestFounder("f@founded.example", "", founded)
	create(t, s, store.NewUser{User: u, Tenant: founded})
	ensureTenant(t, s, &store.Tenant{ID: founded.ID, Code: "founded", Groups: []string{"members"}})
	wantFounded := *founded
	wantFounded.Groups = []string{"members"}
	wantTenant(t, s, &wantFounded)
	wantTenants(t, s, billed, &wantFounded, &want)
}

// Concurrent redeclarations of one tenant, each adding its own group, all
// land.
func testConcurrentEnsureTenant(t *testing.T, s store.Store) {
	const n = 20
	base := NewTestRegistryTenant("Shared", "base")
	c := ctx(t)
	errs := RunConcurrent(n, func(i int) error {
		d := *base
		d.Groups = []string{"base", fmt.Sprintf("g%02d", i)}
		return s.EnsureTenant(c, &d)
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("EnsureTenant %d: %v", i, err)
		}
	}
	got, err := s.GetTenant(c, base.ID)
	if err != nil {
		t.Fatal(err)
	}
	groups := slices.Clone(got.Groups)
	slices.Sort(groups)
	want := []string{"base"}
	for i := range n {
		want = append(want, fmt.Sprintf("g%02d", i))
	}
	if !slices.Equal(groups, want) {
		t.Fatalf("groups after concurrent EnsureTenant = %q, want %q", got.Groups, want)
	}
	list, err := s.ListTenants(c)
	if err != nil || len(list) != 1 {
		t.Fatalf("ListTenants = %d tenants, %v; want 1", len(list), err)
	}
}

func testFoundedTenantsListed(t *testing.T, s store.Store) {
	declared := NewTestRegistryTenant("m-declared")
	createTenant(t, s, declared)
	founded := NewTestTenant("Z-Founded", "BE0123456789")
	u := NewTestFounder("z@founded.example", "", founded)
	create(t, s, store.NewUser{User: u, Tenant: founded})
	founded2 := NewTestTenant("a-founded", "BE0987654321")
	u2 := NewTestFounder("a@founded.example", "", founded2)
	create(t, s, store.NewUser{User: u2, Tenant: founded2})
	wantCodeIndex(t, s, "z-founded", founded.ID)

	// A rejected registration founds nothing.
	rejected := NewTestTenant("b-rejected", "BE1111111111")
	dup := NewTestFounder("z@founded.example", "", rejected)
	wantConflict(t, s.CreateUser(ctx(t), store.NewUser{User: dup, Tenant: rejected}), "email")

	wantTenants(t, s, founded2, declared, founded)
}

// A user may join a tenant only while it exists.
func testJoinTenantMustExist(t *testing.T, s store.Store) {
	tenant := NewTestRegistryTenant("Join", "members")
	createTenant(t, s, tenant)
	member := NewTestUser("member@join.example", "member")
	member.TenantID = tenant.ID
	create(t, s, store.NewUser{User: member})
	wantUser(t, s, member)

	stray := NewTestUser("stray@join.example", "stray")
	stray.TenantID = store.NewID(time.Now())
	mail := NewTestMail(stray.ID, time.Now())
	tok := NewTestToken(stray.ID, time.Now().Add(time.Hour))
	idem := NewTestIdempotency("join-stray", "{}", time.Hour)
	err := s.CreateUser(ctx(t), store.NewUser{User: stray, Mails: []*store.Mail{mail}, Token: tok, Sequence: "join", Idempotency: idem})
	wantNotFound(t, "CreateUser into an unknown tenant", err)
	var ce *store.ConflictError
	if errors.As(err, &ce) || errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("CreateUser into an unknown tenant = %v, want only ErrNotFound", err)
	}
	wantUserAbsent(t, s, stray)
	wantAbsent(t, s.UserIDByEmail, stray.EmailKey, "e-mail index of user refused for unknown tenant")
	wantAbsent(t, s.UserIDByLogin, stray.LoginKey, "login index of user refused for unknown tenant")
	wantAbsent(t, s.GetIdempotency, idem.Key, "idempotency record of user refused for unknown tenant")
	if q, p, err := s.MailCounts(ctx(t)); err != nil || q != 0 || p != 0 {
		t.Fatalf("MailCounts after refused create = %d, %d, %v; want none", q, p, err)
	}
	_, err = s.UseToken(ctx(t), tok.Hash, time.Now(), func(*store.User) error { return nil })
	wantNotFound(t, "token of user refused for unknown tenant", err)
	if _, ok := stray.Attributes[store.SeqAttr]; ok {
		t.Fatal("refused create filled in a sequence number")
	}

	// A conflict is reported before the missing tenant.
	dup := NewTestUser("member@join.example", "")
	dup.TenantID = store.NewID(time.Now())
	wantConflict(t, s.CreateUser(ctx(t), store.NewUser{User: dup}), "email")

	// The sequence did not move: the next user in a real tenant draws 1.
	ok := NewTestUser("ok@join.example", "")
	ok.TenantID = tenant.ID
	create(t, s, store.NewUser{User: ok, Sequence: "join"})
	if n := seqOf(t, ok); n != 1 {
		t.Fatalf("sequence after refused create = %d, want 1", n)
	}
	wantTenants(t, s, tenant)
}

func testConcurrentCreateTenant(t *testing.T, s store.Store) {
	const n = 20
	tenants := make([]*store.Tenant, n)
	for i := range tenants {
		// The same code, spelled differently, distinct ids.
		code := "Race"
		if i%2 == 1 {
			code = "rACE"
		}
		tenants[i] = NewTestRegistryTenant(code, fmt.Sprint("g", i))
	}
	c := ctx(t)
	errs := RunConcurrent(n, func(i int) error {
		return s.CreateTenant(c, tenants[i])
	})
	winner := OneWinner(t, errs, "tenant_code")
	for i, tn := range tenants {
		_, err := s.GetTenant(c, tn.ID)
		if i == winner {
			if err != nil {
				t.Fatalf("winner: %v", err)
			}
			continue
		}
		wantNotFound(t, fmt.Sprintf("GetTenant of loser %d", i), err)
	}
	wantCodeIndex(t, s, "race", tenants[winner].ID)
	wantTenants(t, s, tenants[winner])
}
