package store

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func testNewUser() NewUser {
	return NewUser{User: &User{ID: "u1", Email: "a@example.com", EmailKey: "a@example.com", Login: "a", LoginKey: "a"}}
}

func TestCheckNewUser(t *testing.T) {
	for name, n := range map[string]NewUser{
		"nil user":  {},
		"no id":     {User: &User{EmailKey: "a@example.com"}},
		"no e-mail": {User: &User{ID: "u1"}},
	} {
		if err := CheckNewUser(n); err == nil {
			t.Errorf("%s: CheckNewUser = nil, want an error", name)
		}
		if _, err := PrepareIdempotency(n); err == nil {
			t.Errorf("%s: PrepareIdempotency = nil error, want CheckNewUser's", name)
		}
	}
	if err := CheckNewUser(testNewUser()); err != nil {
		t.Fatalf("CheckNewUser(valid) = %v", err)
	}
}

func TestPrepareIdempotency(t *testing.T) {
	n := testNewUser()
	if r, err := PrepareIdempotency(n); r != nil || err != nil {
		t.Fatalf("without a record = %+v, %v; want nil, nil", r, err)
	}
	exp := time.Now().Add(time.Hour)
	n.Idempotency = &Idempotency{Key: "k", Fingerprint: "f", Seq: 7, ExpiresAt: exp}
	r, err := PrepareIdempotency(n)
	if err != nil {
		t.Fatal(err)
	}
	if r == n.Idempotency || r.UserID != "u1" || r.Seq != 0 || r.CreatedAt.IsZero() || r.Key != "k" || r.Fingerprint != "f" || !r.ExpiresAt.Equal(exp) {
		t.Fatalf("record = %+v", r)
	}
	if n.Idempotency.UserID != "" || n.Idempotency.Seq != 7 || !n.Idempotency.CreatedAt.IsZero() {
		t.Fatalf("caller's record changed: %+v", n.Idempotency)
	}
	for name, bad := range map[string]Idempotency{
		"no key":     {ExpiresAt: exp},
		"long key":   {Key: strings.Repeat("k", MaxIdempotencyKeyLen+1), ExpiresAt: exp},
		"no expiry":  {Key: "k"},
		"other user": {Key: "k", ExpiresAt: exp, UserID: "u2"},
	} {
		n.Idempotency = &bad
		if _, err := PrepareIdempotency(n); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestPrepareToken(t *testing.T) {
	n := testNewUser()
	if tok, body, err := PrepareToken(n); tok != nil || body != nil || err != nil {
		t.Fatalf("without a token = %v, %s, %v", tok, body, err)
	}
	n.Token = &Token{Hash: "h", Purpose: "activation", ExpiresAt: time.Now().Add(time.Hour)}
	tok, body, err := PrepareToken(n)
	if err != nil {
		t.Fatal(err)
	}
	var got Token
	if err := json.Unmarshal(body, &got); err != nil || got.UserID != "u1" || got.Hash != "h" {
		t.Fatalf("encoded token %s (%v)", body, err)
	}
	if tok.UserID != "u1" || n.Token.UserID != "" {
		t.Fatalf("token %+v, caller's %+v", tok, n.Token)
	}
	for name, bad := range map[string]Token{
		"no hash":    {ExpiresAt: time.Now()},
		"no expiry":  {Hash: "h"},
		"other user": {Hash: "h", ExpiresAt: time.Now(), UserID: "u2"},
	} {
		n.Token = &bad
		if _, _, err := PrepareToken(n); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestPrepareMails(t *testing.T) {
	bodies, err := PrepareMails([]*Mail{{ID: "m1"}, {ID: "m2"}})
	if err != nil || len(bodies) != 2 {
		t.Fatalf("PrepareMails = %d bodies, %v", len(bodies), err)
	}
	var m Mail
	if err := json.Unmarshal(bodies[1], &m); err != nil || m.ID != "m2" {
		t.Fatalf("second body %s (%v)", bodies[1], err)
	}
	for name, mails := range map[string][]*Mail{
		"nil":      {nil},
		"no id":    {{}},
		"repeated": {{ID: "m1"}, {ID: "m1"}},
	} {
		if _, err := PrepareMails(mails); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestUserWithSeqAndFinishCreate(t *testing.T) {
	n := testNewUser()
	c := UserWithSeq(n.User, SeqJSON(3))
	if string(c.Attributes[SeqAttr]) != "3" || n.User.Attributes != nil {
		t.Fatalf("copy %v, original %v", c.Attributes, n.User.Attributes)
	}
	created := time.Now()
	n.Sequence = "acct"
	n.Idempotency = &Idempotency{Key: "k"}
	FinishCreate(n, &Idempotency{UserID: "u1", CreatedAt: created}, 3)
	if string(n.User.Attributes[SeqAttr]) != "3" {
		t.Fatalf("attributes %v", n.User.Attributes)
	}
	if r := n.Idempotency; r.UserID != "u1" || !r.CreatedAt.Equal(created) || r.Seq != 3 {
		t.Fatalf("record %+v", r)
	}
}

func TestPrepareTenant(t *testing.T) {
	body, code, err := PrepareTenant("op", &Tenant{ID: "t1", Code: " ACME "})
	if err != nil || code != "acme" || !strings.Contains(string(body), `"id":"t1"`) {
		t.Fatalf("PrepareTenant = %s, %q, %v", body, code, err)
	}
	for name, tn := range map[string]*Tenant{"nil": nil, "no id": {Code: "c"}, "no code": {ID: "t1", Code: " "}} {
		if _, _, err := PrepareTenant("op", tn); err == nil || !strings.HasPrefix(err.Error(), "op: ") {
			t.Errorf("%s: error %v, want one prefixed with op", name, err)
		}
	}
	if TenantVATKey(&Tenant{}) != "" || TenantVATKey(&Tenant{Billing: &Billing{VATKey: "ES1"}}) != "ES1" {
		t.Fatal("TenantVATKey")
	}
}

func TestApplyTokenUse(t *testing.T) {
	now := time.Now()
	tok := &Token{Hash: "h", UserID: "u1", ExpiresAt: now.Add(time.Hour)}
	activate := func(u *User) error { u.Status = StatusActive; return nil }

	u := *testNewUser().User
	out, use, err := ApplyTokenUse(tok, &u, now, activate)
	if err != nil || out != &u || u.Status != StatusActive {
		t.Fatalf("ApplyTokenUse = %+v, %v", out, err)
	}
	var gotU User
	var gotTok Token
	if json.Unmarshal(use.User, &gotU) != nil || gotU.Status != StatusActive {
		t.Fatalf("user record %s", use.User)
	}
	if json.Unmarshal(use.Token, &gotTok) != nil || gotTok.UsedAt == nil || !gotTok.UsedAt.Equal(now) {
		t.Fatalf("token record %s", use.Token)
	}
	if tok.UsedAt != nil {
		t.Fatal("tok was changed")
	}

	// Used before: u unchanged, mutate not called.
	used := *tok
	used.UsedAt = &now
	v := *testNewUser().User
	out, use, err = ApplyTokenUse(&used, &v, now, func(*User) error { t.Fatal("mutate called"); return nil })
	if !errors.Is(err, ErrTokenUsed) || out != &v || v.Status != "" || use.User != nil {
		t.Fatalf("used token = %+v, %v", out, err)
	}

	// A failing or forbidden mutate: no user, nothing to write.
	abort := errors.New("abort")
	for name, mutate := range map[string]func(*User) error{
		"error":  func(*User) error { return abort },
		"email":  func(u *User) error { u.Email = "b@example.com"; return nil },
		"tenant": func(u *User) error { u.TenantID = "t2"; return nil },
	} {
		w := *testNewUser().User
		if out, use, err := ApplyTokenUse(tok, &w, now, mutate); err == nil || out != nil || use.User != nil || use.Token != nil {
			t.Errorf("%s: %+v, %v", name, out, err)
		}
	}
}

func TestCheckMutation(t *testing.T) {
	before := *testNewUser().User
	after := before
	after.Status, after.Name = StatusActive, "New"
	if err := CheckMutation(&before, &after); err != nil {
		t.Fatalf("unindexed changes refused: %v", err)
	}
	after.ID, after.LoginKey = "u2", "b"
	err := CheckMutation(&before, &after)
	if err == nil || !strings.Contains(err.Error(), "ID, LoginKey") {
		t.Fatalf("CheckMutation = %v, want ID and LoginKey named", err)
	}
}
