package caddyregister

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestGateUnmarshalCaddyfile(t *testing.T) {
	var g Gate
	in := `register_auth {
		require a b
		require c
		allow_pending
		header X-Who id
		header X-Mail email
		headers off
		assertion X-User-Assertion
		login_url /login
		cookie session
		basic
		forward_token
	}`
	if err := g.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in)); err != nil {
		t.Fatal(err)
	}
	want := Gate{Require: []string{"a", "b", "c"}, AllowPending: true, Headers: map[string]string{"X-Who": "id", "X-Mail": "email"},
		HeadersOff: true, Assertion: "X-User-Assertion", LoginURL: "/login", Cookie: "session", Basic: true, ForwardToken: true}
	if !reflect.DeepEqual(g, want) {
		t.Fatalf("got %+v\nwant %+v", g, want)
	}
	for _, bad := range []string{
		"register_auth extra",
		"register_auth {\n require\n}",
		"register_auth {\n header X-Who\n}",
		"register_auth {\n header X-Who id extra\n}",
		"register_auth {\n headers on\n}",
		"register_auth {\n basic yes\n}",
		"register_auth {\n cookie\n}",
		"register_auth {\n login_url /a /b\n}",
		"register_auth {\n unknown\n}",
	} {
		var g Gate
		if err := g.UnmarshalCaddyfile(caddyfile.NewTestDispenser(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestGateProvisionRefuses: options that cannot work fail the config.
func TestGateProvisionRefuses(t *testing.T) {
	for name, g := range map[string]Gate{
		"unknown field":    {Headers: map[string]string{"X-Who": "password"}},
		"bad header name":  {Headers: map[string]string{"X Who": "id"}},
		"bad assertion":    {Assertion: "X:A"},
		"login_url":        {LoginURL: "//evil.example"},
		"login_url scheme": {LoginURL: "javascript:alert(1)"},
		"cookie name":      {Cookie: "a;b"},
		"empty permission": {Require: []string{" "}},
	} {
		err := g.setup()
		if err == nil || !strings.Contains(err.Error(), "register_auth") {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A configured header replaces the default of the same name (any
	// spelling), and every default is stripped even with headers off.
	g := Gate{Headers: map[string]string{"x_user_id": "login"}, HeadersOff: true, Assertion: "x-assert"}
	if err := g.setup(); err != nil {
		t.Fatal(err)
	}
	if len(g.out) != 1 || g.out[0] != (identityHeader{"X_user_id", "login"}) {
		t.Errorf("out %+v", g.out)
	}
	for _, n := range []string{"x-user-id", "x-user-email", "x-user-login", "x-user-tenant", "x-user-permissions", "x-user-status", "x-assert"} {
		if !slices.Contains(g.strip, n) {
			t.Errorf("%s not stripped: %q", n, g.strip)
		}
	}
}
