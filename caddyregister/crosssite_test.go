package caddyregister

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddyregister/caddyregister/caddyregister/contract"
)

// TestRefuseCrossSite pins the rule: state-changing requests whose
// Sec-Fetch-Site is cross-site or whose Origin is another scheme and host
// are refused; requests without these headers pass.
func TestRefuseCrossSite(t *testing.T) {
	for _, tc := range []struct {
		name    string
		method  string
		tls     bool
		trusted bool
		host    string
		header  map[string]string
		refused bool
	}{
		{"no browser headers", "POST", false, false, "example.com", nil, false},
		{"same origin", "POST", false, false, "example.com", map[string]string{"Origin": "http://example.com", "Sec-Fetch-Site": "same-origin"}, false},
		{"same origin, explicit default port", "POST", true, false, "example.com", map[string]string{"Origin": "https://example.com:443"}, false},
		{"same origin, port kept", "POST", false, false, "localhost:8080", map[string]string{"Origin": "http://LOCALHOST:8080"}, false},
		{"Sec-Fetch-Site cross-site", "POST", false, false, "example.com", map[string]string{"Sec-Fetch-Site": "cross-site"}, true},
		{"foreign Origin", "POST", false, false, "example.com", map[string]string{"Origin": "https://evil.example"}, true},
		{"Origin null", "POST", false, false, "example.com", map[string]string{"Origin": "null"}, true},
		{"same-site sibling", "POST", true, false, "example.com", map[string]string{"Origin": "https://app.example.com", "Sec-Fetch-Site": "same-site"}, true},
		{"other scheme", "POST", true, false, "example.com", map[string]string{"Origin": "http://example.com"}, true},
		{"other port", "PUT", false, false, "example.com", map[string]string{"Origin": "http://example.com:8080"}, true},
		{"Origin with a path", "POST", false, false, "example.com", map[string]string{"Origin": "http://example.com/x"}, true},
		{"TLS proxy, trusted", "POST", false, true, "example.com", map[string]string{"Origin": "https://example.com", "X-Forwarded-Proto": "https"}, false},
		{"TLS proxy, untrusted", "POST", false, false, "example.com", map[string]string{"Origin": "https://example.com", "X-Forwarded-Proto": "https"}, true},
		{"GET cross-site", "GET", false, false, "example.com", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, false},
		{"OPTIONS cross-site", "OPTIONS", false, false, "example.com", map[string]string{"Origin": "https://evil.example"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "http://"+tc.host+"/x", nil)
			r.Host = tc.host
			if tc.tls {
				r.TLS = &tls.ConnectionState{}
			}
			for k, v := range tc.header {
				r.Header.Set(k, v)
			}
			ctx := context.WithValue(r.Context(), caddyhttp.VarsCtxKey, map[string]any{caddyhttp.TrustedProxyVarKey: tc.trusted})
			err := refuseCrossSite(r.WithContext(ctx))
			if tc.refused {
				he, ok := err.(*contract.HTTPError)
				if !ok || he.Status != http.StatusForbidden {
					t.Fatalf("refuseCrossSite = %v, want 403", err)
				}
			} else if err != nil {
				t.Fatalf("refuseCrossSite = %v, want pass", err)
			}
		})
	}
}

// TestCrossSiteGuarded: admin and cookie routes and routes taking a form
// are guarded; a JSON route without browser credentials is not.
func TestCrossSiteGuarded(t *testing.T) {
	for _, tc := range []struct {
		rt   contract.Route
		want bool
	}{
		{contract.Route{Admin: true, ContentTypes: []string{"application/json"}}, true},
		{contract.Route{Cookie: true}, true},
		{contract.Route{ContentTypes: []string{"application/json", "application/x-www-form-urlencoded"}}, true},
		{contract.Route{ContentTypes: []string{"text/plain"}}, true},
		{contract.Route{ContentTypes: []string{"application/json", "text/json"}}, false},
		{contract.Route{}, false},
	} {
		if got := crossSiteGuarded(&tc.rt); got != tc.want {
			t.Errorf("crossSiteGuarded(%+v) = %v", tc.rt, got)
		}
	}
}
