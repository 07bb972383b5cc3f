package caddyregister

import (
	"net/http/httptest"
	"testing"

	"github.com/caddyregister/caddyregister/caddyregister/contract"
)

func routeTable(fold bool, paths ...string) *Handler {
	h := &Handler{routes: map[string][]contract.Route{}}
	if fold {
		h.foldRoutes = map[string][]contract.Route{}
	}
	for _, p := range paths {
		rt := contract.Route{Path: p, Name: p}
		h.routes[p] = append(h.routes[p], rt)
		if fold {
			h.foldRoutes[lower(p)] = append(h.foldRoutes[lower(p)], rt)
		}
	}
	return h
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// Request paths match routes as the contract's framework matches them:
// repeated slashes, a trailing slash and dot segments never count, case
// only for a case-insensitive contract.
func TestRouteLookup(t *testing.T) {
	sensitive := routeTable(false, "/api/register")
	insensitive := routeTable(true, "/api/v1/Account/Register")
	for _, c := range []struct {
		h    *Handler
		path string
		want string
	}{
		{sensitive, "/api/register", "/api/register"},
		{sensitive, "/api/register/", "/api/register"},
		{sensitive, "//api/register", "/api/register"},
		{sensitive, "/api//register//", "/api/register"},
		{sensitive, "/api/./register", "/api/register"},
		{sensitive, "/api/x/../register", "/api/register"},
		{sensitive, "/API/register", ""},
		{sensitive, "/api/registers", ""},
		{sensitive, "/api", ""},
		{insensitive, "/api/v1/Account/Register", "/api/v1/Account/Register"},
		{insensitive, "/API/V1/account/register", "/api/v1/Account/Register"},
		{insensitive, "//api/v1/account/REGISTER/", "/api/v1/Account/Register"},
		{insensitive, "/api/v1/Account/Registe", ""},
	} {
		rs, ok := c.h.lookup(c.path)
		got := ""
		if ok {
			got = rs[0].Path
		}
		if got != c.want {
			t.Errorf("lookup(%q) = %q, want %q", c.path, got, c.want)
		}
	}
	for _, c := range []struct {
		h    *Handler
		path string
		want bool
	}{
		{sensitive, JWKSPath, true},
		{sensitive, "/.well-known//jwks.json/", true},
		{sensitive, "/.WELL-KNOWN/jwks.json", false},
		{insensitive, "/.WELL-KNOWN/JWKS.json", true},
	} {
		if got := c.h.isJWKSPath(c.path); got != c.want {
			t.Errorf("isJWKSPath(%q) = %v", c.path, got)
		}
	}
}

// The route as declared, and a clean path that is no route, cost no
// allocation: every request the app behind gets passes through lookup.
func TestRouteLookupAllocations(t *testing.T) {
	h := routeTable(true, "/api/v1/Account/Register")
	for _, p := range []string{"/api/v1/Account/Register", "/app/page", "/api/v1/account/register/"} {
		if n := testing.AllocsPerRun(100, func() { h.lookup(p) }); n != 0 {
			t.Errorf("lookup(%q): %.0f allocations", p, n)
		}
	}
}

// Patterned routes are tried after the exact ones, on the cleaned path,
// and hand their parameters to the route; a path outside them (the app
// behind) still costs no allocation.
func TestRoutePatterns(t *testing.T) {
	h := routeTable(false, "/account/users")
	for _, p := range []string{"/account/users/{id}", "/account/users/{id}/logout"} {
		pt, _ := contract.ParsePattern(p)
		h.addPattern(pt, contract.Route{Path: p, Method: "GET"})
		h.addPattern(pt, contract.Route{Path: p, Method: "DELETE"})
	}
	if len(h.patterns) != 2 || len(h.patterns[0].routes) != 2 {
		t.Fatalf("patterns not grouped: %+v", h.patterns)
	}
	for _, c := range []struct{ path, want, id string }{
		{"/account/users/abc", "/account/users/{id}", "abc"},
		{"/account/users/abc/", "/account/users/{id}", "abc"},
		{"//account/users/abc/logout", "/account/users/{id}/logout", "abc"},
		{"/account/users/abc/x", "", ""},
		{"/account/Users/abc", "", ""},
		{"/app/page", "", ""},
	} {
		r := httptest.NewRequest("GET", "http://x"+c.path, nil)
		rs, r2, ok := h.lookupPattern(r)
		got := ""
		if ok {
			got = rs[0].Path
		}
		if got != c.want || contract.PathParam(r2, "id") != c.id {
			t.Errorf("lookupPattern(%q) = %q id %q, want %q id %q", c.path, got, contract.PathParam(r2, "id"), c.want, c.id)
		}
	}
	r := httptest.NewRequest("GET", "http://x/app/page", nil)
	if n := testing.AllocsPerRun(100, func() { h.lookupPattern(r) }); n != 0 {
		t.Errorf("lookupPattern outside the patterns: %.0f allocations", n)
	}
}
