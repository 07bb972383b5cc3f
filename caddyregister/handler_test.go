package caddyregister

import (
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
