package caddyregister

import (
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func TestWalkRoutesHostBound(t *testing.T) {
	host := &caddyhttp.MatchHost{"example.com"}
	wild := &caddyhttp.MatchHost{"*.example.com"}
	placeholder := &caddyhttp.MatchHost{"{env.SITE}"}
	path := &caddyhttp.MatchPath{"/api/*"}
	bound, open, alt, nested, unseen, wildcard := &Handler{}, &Handler{}, &Handler{}, &Handler{}, &Handler{}, &Handler{}
	routes := caddyhttp.RouteList{
		// The client picks the subdomain: not bound.
		{MatcherSets: caddyhttp.MatcherSets{{wild, path}}, Handlers: []caddyhttp.MiddlewareHandler{wildcard}},
		{MatcherSets: caddyhttp.MatcherSets{{placeholder}}, Handlers: []caddyhttp.MiddlewareHandler{wildcard}},
		{MatcherSets: caddyhttp.MatcherSets{{host, path}}, Handlers: []caddyhttp.MiddlewareHandler{bound}},
		{MatcherSets: caddyhttp.MatcherSets{{path}}, Handlers: []caddyhttp.MiddlewareHandler{open}},
		// Alternatives: the set without a host lets any Host through.
		{MatcherSets: caddyhttp.MatcherSets{{host}, {path}}, Handlers: []caddyhttp.MiddlewareHandler{alt}},
		// A site: host outside, handler in a path-only subroute.
		{MatcherSets: caddyhttp.MatcherSets{{host}}, Handlers: []caddyhttp.MiddlewareHandler{&caddyhttp.Subroute{
			Routes: caddyhttp.RouteList{{MatcherSets: caddyhttp.MatcherSets{{path}}, Handlers: []caddyhttp.MiddlewareHandler{nested}}},
		}}},
		// The same handler also reached without a host: not bound.
		{Handlers: []caddyhttp.MiddlewareHandler{&caddyhttp.Subroute{Routes: caddyhttp.RouteList{{Handlers: []caddyhttp.MiddlewareHandler{open}}}}}},
	}
	got := map[*Handler]bool{}
	walkRoutes(routes, false, got)
	for name, c := range map[string]struct {
		h          *Handler
		seen, want bool
	}{
		"bound": {bound, true, true}, "open": {open, true, false}, "alt": {alt, true, false},
		"nested": {nested, true, true}, "unseen": {unseen, false, false}, "wildcard": {wildcard, true, false},
	} {
		b, seen := got[c.h]
		if seen != c.seen || b != c.want {
			t.Errorf("%s: seen %v bound %v; want %v %v", name, seen, b, c.seen, c.want)
		}
	}
}

func TestCheckPublicURL(t *testing.T) {
	for _, ok := range []string{"", "https://example.com", "http://localhost:8080/", "https://example.com/base"} {
		if err := checkPublicURL(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"example.com", "ftp://example.com", "https://", "https://u:p@example.com", "https://example.com/?a=b", "https://example.com/#x", "{env.URL}"} {
		if err := checkPublicURL(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
