package tests

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
)

// The gate composed with the rest of Caddy: the provider under Caddy's own
// authentication handler, the demo's gate, a site-wide request_header.

// TestGateProvider: the provider in JSON under Caddy's own authentication
// handler: it admits, strips, sets the identity headers and the
// {http.auth.user.*} placeholders; a refusal is that handler's 401 with
// the provider's challenge.
func TestGateProvider(t *testing.T) {
	s := startGate(t, backendRedis)
	id := s.signup(t, "provider@example.com", "correct horse battery", true)
	if r := s.do(http.MethodPatch, "/account/users/"+id, withHeaders(rootAuth, jsonH), `{"permissions":["manage-objects"]}`); r.Status != 200 {
		t.Fatalf("grant: %d %s", r.Status, r.Body)
	}
	tk := s.login(t, "provider@example.com", "correct horse battery")
	s.signup(t, "plain@example.com", "correct horse battery", true)
	plain := s.login(t, "plain@example.com", "correct horse battery")

	cfg := fmt.Sprintf(`{
	"admin": {"listen": "localhost:%d"},
	"apps": {
		"register": {"store": {"backend": "redis", "url": %q, "namespace": %q}},
		"http": {"http_port": %d, "servers": {"srv0": {
			"listen": [":%d"],
			"automatic_https": {"disable": true},
			"routes": [
				{"match": [{"path": ["/app/*"]}], "handle": [
					{"handler": "authentication", "providers": {"register": {"require": ["manage-objects"]}}},
					{"handler": "reverse_proxy", "upstreams": [{"dial": %q}]}
				]},
				{"handle": [
					{"handler": "authentication", "providers": {"register": {}}},
					{"handler": "static_response", "body": "{http.auth.user.id} {http.auth.user.email} {http.auth.user.status} {http.auth.user.permissions}"}
				]}
			]
		}}}
	}
}`, adminPort, redisSrv.URL(0), s.ns, httpPort, httpPort, strings.TrimPrefix(s.up.srv.URL, "http://"))
	s.tc.InitServer(cfg, "json")
	s.loaded = cfg // JSON: no register handler for conform to check
	s.awaitServing()

	res := s.do(http.MethodGet, "/echo", bearerH(tk.AccessToken), "")
	if want := id + " provider@example.com active manage-objects"; res.Status != 200 || string(res.Body) != want {
		t.Fatalf("placeholders: %d %q, want %q", res.Status, res.Body, want)
	}
	res = s.do(http.MethodGet, "/echo", nil, "")
	if res.Status != 401 || res.Header.Get("WWW-Authenticate") != `Bearer realm="caddyregister"` {
		t.Fatalf("no token: %d %q", res.Status, res.Header.Get("WWW-Authenticate"))
	}
	// Without the permission: the handler's 401, the provider's reason.
	res = s.do(http.MethodGet, "/app/x", bearerH(plain.AccessToken), "")
	if res.Status != 401 || !strings.Contains(res.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
		t.Fatalf("missing permission: %d %q", res.Status, res.Header.Get("WWW-Authenticate"))
	}
	res = s.raw(http.MethodGet, "/app/x", append([][2]string{{"Authorization", "Bearer " + tk.AccessToken}}, spoofs...))
	if res.Status != 200 {
		t.Fatalf("provider admits: %d %s", res.Status, res.Body)
	}
	h := s.up.last(t)
	for name, want := range map[string]string{"X-User-Id": id, "X-User-Email": "provider@example.com", "X-User-Permissions": "manage-objects", "X-User-Status": "active"} {
		if got := values(h, name); len(got) != 1 || got[0] != want {
			t.Fatalf("%s %q, want [%s]", name, got, want)
		}
	}
	for _, name := range []string{"X-User-Tenant", "X-User-Login", "Authorization"} {
		if got := values(h, name); len(got) != 0 {
			t.Fatalf("%s %q", name, got)
		}
	}
}

// demoGateBlock is the demo Caddyfile's gate: its register_auth and the
// handle block holding the responder.
func demoGateBlock(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	start := strings.Index(text, "\tregister_auth /app/* {")
	h := strings.Index(text, "\thandle /app/* {")
	if start < 0 || h < start {
		t.Fatal("no gate in the demo Caddyfile")
	}
	end := strings.Index(text[h:], "\n\t}\n")
	if end < 0 {
		t.Fatal("the demo's handle block does not end")
	}
	return text[start : h+end+3]
}

// TestDemoGate: the demo's gate and responder, as a newcomer meets them.
func TestDemoGate(t *testing.T) {
	global := fmt.Sprintf("admin root %s manage-users", mustBcrypt(t, "rootpw"))
	s := &accountSite{site: startSite(t, backendEmbedded, global, noraina+"\n\tregister account /account {\n\t\tcookie session\n\t}\n"+demoGateBlock(t))}
	id := s.signup(t, "demo@example.com", "correct horse battery", true)
	res := s.postJSON("/account/login", `{"identifier":"demo@example.com","password":"correct horse battery"}`)
	tk := wantTokens(t, res)
	if res := s.do(http.MethodGet, "/app/", nil, ""); res.Status != 401 {
		t.Fatalf("without a token: %d %s", res.Status, res.Body)
	}
	for name, h := range map[string]map[string]string{
		"bearer": withHeaders(bearerH(tk.AccessToken), map[string]string{"X-User-Id": "spoof"}),
		"cookie": {"Cookie": "session=" + tk.AccessToken, "X-User-Id": "spoof"},
	} {
		res := s.do(http.MethodGet, "/app/", h, "")
		if res.Status != 200 || !strings.Contains(string(res.Body), "X-User-Id: "+id+"\n") || !strings.Contains(string(res.Body), "X-User-Email: demo@example.com\n") ||
			strings.Contains(string(res.Body), "spoof") || strings.Contains(string(res.Body), tk.AccessToken) {
			t.Fatalf("%s: %d %s", name, res.Status, res.Body)
		}
	}
}

// TestGateOutsidePaths: the README's composition. The gate strips on the
// paths it gates; a site-wide request_header -X-User-* (ordered before
// it) keeps a client's own identity headers off the other paths without
// deleting the ones the gate sets.
func TestGateOutsidePaths(t *testing.T) {
	up := startUpstream(t)
	global := fmt.Sprintf("admin root %s manage-users", mustBcrypt(t, "rootpw"))
	body := fmt.Sprintf(`%s
	register account /account
	request_header -X-User-*
	register_auth /app/*
	@app not path /api/* /account/*
	handle @app {
		reverse_proxy %s
	}`, noraina, strings.TrimPrefix(up.srv.URL, "http://"))
	s := &accountSite{site: startSite(t, backendRedis, global, body)}
	id := s.signup(t, "outside@example.com", "correct horse battery", true)
	tk := s.login(t, "outside@example.com", "correct horse battery")
	spoof := map[string]string{"X-User-Id": "spoof", "x-user-email": "evil@example.com"}
	if res := s.do(http.MethodGet, "/other", spoof, ""); res.Status != 200 {
		t.Fatalf("ungated path: %d %s", res.Status, res.Body)
	}
	h := up.last(t)
	if got := append(values(h, "X-User-Id"), values(h, "X-User-Email")...); len(got) != 0 {
		t.Fatalf("ungated path: the app got %q", got)
	}
	if res := s.do(http.MethodGet, "/app/x", withHeaders(bearerH(tk.AccessToken), spoof), ""); res.Status != 200 {
		t.Fatalf("gated path: %d %s", res.Status, res.Body)
	}
	h = up.last(t)
	if got := values(h, "X-User-Id"); len(got) != 1 || got[0] != id {
		t.Fatalf("gated path: X-User-Id %q", got)
	}
	if got := values(h, "X-User-Email"); len(got) != 1 || got[0] != "outside@example.com" {
		t.Fatalf("gated path: X-User-Email %q", got)
	}
}
