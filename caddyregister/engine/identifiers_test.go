package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// TestLookAlikeIdentifiersCollide: spellings that read the same are one
// account (full-width letters, ß and ss), on both backends.
func TestLookAlikeIdentifiersCollide(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			h := newHarness(t, be.open(t))
			first := reg("user@example.com")
			first.Login = "strasse"
			mustRegister(t, h.e, first)
			before := h.env.snapshot(t)
			for _, tc := range []struct {
				name, email, login, field string
			}{
				{"full-width e-mail", "ｕｓｅｒ@example.com", "", "email"},
				{"full-width upper-case e-mail", "ＵＳＥＲ@EXAMPLE.COM", "", "email"},
				{"sharp s login", "other@example.com", "straße", "login"},
				{"capital sharp s login", "other@example.com", "STRAẞE", "login"},
			} {
				r := reg(tc.email)
				r.Login = tc.login
				_, err := h.e.Register(context.Background(), r)
				var ce *store.ConflictError
				if !errors.As(err, &ce) || ce.Field != tc.field {
					t.Errorf("%s: Register = %v, want ConflictError{%s}", tc.name, err, tc.field)
				}
			}
			if h.env.snapshot(t) != before {
				t.Error("a refused look-alike changed the store")
			}
			// And the owner logs in with either spelling.
			if _, _, err := h.e.Login(context.Background(), "192.0.2.9", "test-agent", "straße", goodPassword); !errors.Is(err, engine.ErrNotActivated) {
				t.Errorf("Login(straße) = %v, want the pending account found (ErrNotActivated)", err)
			}
		})
	}
}

// TestInvisibleCharactersRefused: zero-width and bidi control characters
// in e-mails, logins and names are refused, naming the field (in the
// contract's own name when it maps it), before anything is written.
func TestInvisibleCharactersRefused(t *testing.T) {
	h := newHarness(t, openRedis(t))
	before := h.env.snapshot(t)
	for _, tc := range []struct {
		name  string
		mod   func(*engine.Registration)
		field string
		char  string
	}{
		{"zero width space in e-mail", func(r *engine.Registration) { r.Email = "us\u200ber@example.com" }, "email", "U+200B"},
		{"right-to-left override in login", func(r *engine.Registration) { r.Login = "admin\u202Egpj.exe" }, "login", "U+202E"},
		{"login under the contract's name", func(r *engine.Registration) {
			r.Login = "ad\u2066min"
			r.FieldNames = map[string]string{engine.FieldLogin: "username"}
		}, "username", "U+2066"},
		{"bidi override in name", func(r *engine.Registration) { r.Name = "Jane \u202Eeod" }, "name", "U+202E"},
		{"soft hyphen in first name", func(r *engine.Registration) {
			r.FirstName, r.LastName, r.Name = "Ja\u00adne", "Doe", "Ja\u00adne Doe"
		}, "firstName", "U+00AD"},
		{"byte order mark in last name", func(r *engine.Registration) { r.LastName = "\ufeffDoe" }, "lastName", "U+FEFF"},
		{"arabic letter mark in name", func(r *engine.Registration) { r.Name = "a\u061cb" }, "name", "U+061C"},
		{"left-to-right mark in login", func(r *engine.Registration) { r.Login = "jane\u200e" }, "login", "U+200E"},
		{"override in the founded company", func(r *engine.Registration) {
			r.Tenant = &engine.NewTenant{Company: "Acme \u202EL.S", VATID: "ES1"}
		}, "billing.company", "U+202E"},
	} {
		r := reg("jane@example.com")
		tc.mod(&r)
		_, err := h.e.Register(context.Background(), r)
		var ve *engine.ValidationError
		if !errors.As(err, &ve) {
			t.Errorf("%s: Register = %v, want a ValidationError", tc.name, err)
			continue
		}
		if len(ve.Fields) != 1 || ve.Fields[0].Field != tc.field || ve.Fields[0].Rule != engine.RuleInvisible ||
			!strings.Contains(ve.Fields[0].Message, tc.char) {
			for _, f := range ve.Fields {
				t.Logf("%s: field %s rule %s: %s", tc.name, f.Field, f.Rule, f.Message)
			}
			t.Errorf("%s: want one %q error naming %s", tc.name, tc.field, tc.char)
		}
	}
	if h.env.snapshot(t) != before {
		t.Error("a refused registration changed the store")
	}
	// A contract's own error on the field is not repeated.
	r := reg("jane@example.com")
	r.Login = "x\u200by"
	r.Invalid = &engine.ValidationError{}
	r.Invalid.Add("login", "pattern", "bad login")
	_, err := h.e.Register(context.Background(), r)
	var ve *engine.ValidationError
	if !errors.As(err, &ve) || len(ve.Fields) != 1 || ve.Fields[0].Rule != "pattern" {
		t.Errorf("contract-reported login: %v", err)
	}
}
