package tests

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The gate (register_auth) in front of a real upstream: Caddy's
// reverse_proxy to a Go test server that records the headers it got.

// upstream records the requests the gate let through.
type upstream struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []http.Header
}

func startUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.got = append(u.got, r.Header.Clone())
		u.mu.Unlock()
		_, _ = io.WriteString(w, "upstream "+r.URL.Path)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

// last is the headers of the last request the upstream served.
func (u *upstream) last(t *testing.T) http.Header {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.got) == 0 {
		t.Fatal("the upstream got no request")
	}
	return u.got[len(u.got)-1]
}

func (u *upstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.got)
}

// values is every value of every header key that names name in any case
// and with dashes or underscores.
func values(h http.Header, name string) []string {
	fold := strings.NewReplacer("_", "-", ".", "-")
	norm := fold.Replace(strings.ToLower(name))
	var out []string
	for k, v := range h {
		if fold.Replace(strings.ToLower(k)) == norm {
			out = append(out, v...)
		}
	}
	return out
}

type gateSite struct {
	*accountSite
	up *upstream
}

func startGate(t *testing.T, backend string) *gateSite {
	t.Helper()
	up := startUpstream(t)
	body := fmt.Sprintf(`%s
	register account /account {
		rate_limit login off
		cookie session
	}
	register_auth /app/* {
		login_url /login
		cookie session
	}
	register_auth /admin/* {
		require manage-objects
		header X-Auth-Sub id
		assertion X-User-Assertion
		basic
	}
	register_auth /pending/* {
		allow_pending
		headers off
	}
	register_auth /fwd/* {
		forward_token
	}
	handle /echo {
		register_auth
		respond "id={http.auth.user.id} email={http.auth.user.email} login={http.auth.user.login} perms={http.auth.user.permissions} status={http.auth.user.status} sid={http.auth.user.sid}" 200
	}
	@gated path /app/* /admin/* /pending/* /fwd/*
	handle @gated {
		reverse_proxy %s
	}`, noraina, strings.TrimPrefix(up.srv.URL, "http://"))
	global := fmt.Sprintf("admin root %s manage-users\n\t\tadmin_login_limit 1000/m", mustBcrypt(t, "rootpw"))
	site := startSite(t, backend, global, body)
	// Redirects are what is tested, not followed.
	site.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &gateSite{accountSite: &accountSite{site: site}, up: up}
}

// raw sends a request with header keys exactly as given (not
// canonicalised), as a client spoofing X_User_Id would.
func (s *gateSite) raw(method, path string, header [][2]string) *response {
	s.t.Helper()
	req, err := http.NewRequest(method, s.base+path, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	for _, kv := range header {
		req.Header[kv[0]] = append(req.Header[kv[0]], kv[1])
	}
	res, err := s.client.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	out := &response{Status: res.StatusCode, Header: res.Header, Body: b}
	s.conform(method, path, req.Header, nil, out)
	return out
}

// spoofs are identity headers a client sends to speak for the gate, in
// every spelling an app may read as the real one.
var spoofs = [][2]string{
	{"X-User-Id", "spoof1"}, {"x-user-id", "spoof2"}, {"X_User_Id", "spoof3"}, {"x_user_id", "spoof4"},
	{"X-USER-ID", "spoof5"}, {"x-User_id", "spoof6"}, {"X_USER_ID", "spoof7"},
	{"X-User-Email", "evil@example.com"}, {"x_user_email", "evil@example.com"},
	{"X-User-Login", "evil"}, {"X-User-Tenant", "evil"}, {"X_User_Tenant", "evil"},
	{"X-User-Permissions", "*"}, {"x_user_permissions", "*"}, {"X-User-Status", "active"},
	{"X_User_Status", "active"},
}

// configuredSpoofs are the headers the /admin/ gate is configured to
// set (header X-Auth-Sub, assertion X-User-Assertion).
var configuredSpoofs = [][2]string{
	{"X-Auth-Sub", "spoof"}, {"x_auth_sub", "spoof"}, {"X-AUTH_SUB", "spoof"},
	{"X-User-Assertion", "forged"}, {"X_User_Assertion", "forged"},
}

func TestGateHeaders(t *testing.T) { eachBackend(t, testGateHeaders) }

func testGateHeaders(t *testing.T, backend string) {
	s := startGate(t, backend)
	id := s.signup(t, "gate@example.com", "correct horse battery", true)
	tk := s.login(t, "gate@example.com", "correct horse battery")

	res := s.raw(http.MethodGet, "/app/x", append([][2]string{{"Authorization", "Bearer " + tk.AccessToken}}, spoofs...))
	if res.Status != 200 || string(res.Body) != "upstream /app/x" {
		t.Fatalf("gated request: %d %s", res.Status, res.Body)
	}
	h := s.up.last(t)
	want := map[string]string{"X-User-Id": id, "X-User-Email": "gate@example.com", "X-User-Status": "active", "X-User-Permissions": ""}
	for name, v := range want {
		got := values(h, name)
		if v == "" {
			if len(got) != 0 {
				t.Errorf("%s: %q, want none (no permissions)", name, got)
			}
			continue
		}
		if len(got) != 1 || got[0] != v {
			t.Errorf("%s: %q, want exactly [%s]", name, got, v)
		}
	}
	for _, name := range []string{"X-User-Login", "X-User-Tenant"} {
		if got := values(h, name); len(got) != 0 {
			t.Errorf("%s reached the app: %q", name, got)
		}
	}
	if got := values(h, "Authorization"); len(got) != 0 {
		t.Errorf("the token reached the app: %q", got)
	}

	// headers off: nothing set, every spoof still deleted.
	res = s.raw(http.MethodGet, "/pending/x", append([][2]string{{"x-access-token", tk.AccessToken}}, spoofs...))
	if res.Status != 200 {
		t.Fatalf("headers off: %d %s", res.Status, res.Body)
	}
	h = s.up.last(t)
	for _, sp := range spoofs {
		if got := values(h, sp[0]); len(got) != 0 {
			t.Errorf("headers off: %s reached the app: %q", sp[0], got)
		}
	}
	if got := values(h, "x-access-token"); len(got) != 0 {
		t.Errorf("headers off: the token reached the app")
	}

	// forward_token passes the credential on.
	res = s.raw(http.MethodGet, "/fwd/x", [][2]string{{"Authorization", "Bearer " + tk.AccessToken}, {"X_User_Id", "spoof"}})
	if res.Status != 200 {
		t.Fatalf("forward_token: %d %s", res.Status, res.Body)
	}
	h = s.up.last(t)
	if got := values(h, "Authorization"); len(got) != 1 || got[0] != "Bearer "+tk.AccessToken {
		t.Errorf("forward_token: Authorization %q", got)
	}
	if got := values(h, "X-User-Id"); len(got) != 1 || got[0] != id {
		t.Errorf("forward_token: X-User-Id %q", got)
	}

	// A server that lets headers with underscores and dots through
	// (Caddy drops them by default): the gate deletes them itself.
	s.load(strings.Replace(s.cfg, "skip_install_trust", "skip_install_trust\n\tservers {\n\t\texpected_underscore_headers x_user_* x_auth_sub\n\t\texpected_dot_headers x.user.*\n\t}", 1))
	odd := [][2]string{{"X_User_Id", "spoof"}, {"x_user_email", "evil@example.com"}, {"X_USER_PERMISSIONS", "*"}, {"X.User.Id", "spoof"}, {"x.user.status", "active"}}
	res = s.raw(http.MethodGet, "/app/x", append([][2]string{{"Authorization", "Bearer " + tk.AccessToken}}, odd...))
	if res.Status != 200 {
		t.Fatalf("underscores allowed: %d %s", res.Status, res.Body)
	}
	h = s.up.last(t)
	for _, name := range []string{"X-User-Id", "X-User-Email", "X-User-Status"} {
		if got := values(h, name); len(got) != 1 || strings.Contains(got[0], "spoof") || got[0] == "evil@example.com" {
			t.Errorf("underscores allowed: %s %q", name, got)
		}
	}
	if got := values(h, "X-User-Permissions"); len(got) != 0 {
		t.Errorf("underscores allowed: X-User-Permissions %q", got)
	}

	// Refused requests never reach the app, spoofs or not.
	n := s.up.count()
	if res := s.raw(http.MethodGet, "/app/x", spoofs); res.Status != 401 {
		t.Fatalf("spoofs without a token: %d", res.Status)
	}
	if s.up.count() != n {
		t.Fatal("a refused request reached the app")
	}

	// Placeholders for other directives.
	res = s.do(http.MethodGet, "/echo", bearerH(tk.AccessToken), "")
	if want := fmt.Sprintf("id=%s email=gate@example.com login= perms= status=active sid=", id); res.Status != 200 || !strings.HasPrefix(string(res.Body), want) || len(res.Body) == len(want) {
		t.Fatalf("placeholders: %d %q, want %q and a sid", res.Status, res.Body, want)
	}
}

// wantDenial checks a refusal: status, problem body, challenge.
func wantDenial(t *testing.T, res *response, status int, challenge string) {
	t.Helper()
	if res.Status != status {
		t.Fatalf("status %d, want %d: %s", res.Status, status, res.Body)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("content type %q", ct)
	}
	m := res.JSON(t)
	if m["status"] != float64(status) || m["title"] != http.StatusText(status) || m["type"] == "" {
		t.Fatalf("problem %v", m)
	}
	if got := res.Header.Values("WWW-Authenticate"); len(got) == 0 || got[0] != challenge {
		t.Fatalf("WWW-Authenticate %q, want %q", got, challenge)
	}
}

func TestGateDenials(t *testing.T) {
	s := startGate(t, backendRedis)
	s.signup(t, "deny@example.com", "correct horse battery", true)
	tk := s.login(t, "deny@example.com", "correct horse battery")
	api := map[string]string{"Accept": "application/json"}

	// No token: a challenge with no error code (RFC 6750 §3.1).
	wantDenial(t, s.do(http.MethodGet, "/app/x", api, ""), 401, `Bearer realm="caddyregister"`)
	// An invalid one, in either header.
	wantDenial(t, s.do(http.MethodGet, "/app/x", withHeaders(api, bearerH(tk.AccessToken+"x")), ""), 401, `Bearer realm="caddyregister", error="invalid_token"`)
	wantDenial(t, s.do(http.MethodGet, "/app/x", map[string]string{"x-access-token": "nonsense"}, ""), 401, `Bearer realm="caddyregister", error="invalid_token"`)
	// A valid token without the permission.
	wantDenial(t, s.do(http.MethodGet, "/admin/x", bearerH(tk.AccessToken), ""), 403, `Bearer realm="caddyregister", error="insufficient_scope", scope="manage-objects"`)
	// Basic is on there: a 401 carries both challenges.
	res := s.do(http.MethodGet, "/admin/x", nil, "")
	wantDenial(t, res, 401, `Bearer realm="caddyregister"`)
	if got := res.Header.Values("WWW-Authenticate"); len(got) != 2 || !strings.HasPrefix(got[1], "Basic ") {
		t.Fatalf("challenges %q", got)
	}
	res = s.do(http.MethodGet, "/admin/x", map[string]string{"Authorization": basicHeader("deny@example.com", "wrong password")}, "")
	wantDenial(t, res, 401, `Bearer realm="caddyregister"`)

	// A pending user's token (noraina answers one at signup): refused
	// unless allow_pending.
	reg := s.postJSON("/api/register", `{"name":"P","mail":"pending@example.com","password":"correct horse battery"}`)
	var out struct {
		Data struct {
			Token string `json:"token"`
		} `json:"data"`
	}
	if err := json.Unmarshal(reg.Body, &out); err != nil || out.Data.Token == "" {
		t.Fatalf("register: %d %s", reg.Status, reg.Body)
	}
	wantDenial(t, s.do(http.MethodGet, "/app/x", bearerH(out.Data.Token), ""), 403, `Bearer realm="caddyregister", error="insufficient_scope"`)
	if res := s.do(http.MethodGet, "/pending/x", bearerH(out.Data.Token), ""); res.Status != 200 {
		t.Fatalf("allow_pending: %d %s", res.Status, res.Body)
	}
}

func TestGateRedirect(t *testing.T) {
	s := startGate(t, backendRedis)
	browser := "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"

	res := s.do(http.MethodGet, "/app/page?a=1&b=%2F", map[string]string{"Accept": browser}, "")
	if res.Status != http.StatusFound {
		t.Fatalf("browser without credentials: %d %s", res.Status, res.Body)
	}
	loc, err := url.Parse(res.Header.Get("Location"))
	if err != nil || loc.Path != "/login" || loc.Query().Get("return_to") != "/app/page?a=1&b=%2F" {
		t.Fatalf("Location %q", res.Header.Get("Location"))
	}
	if res := s.do(http.MethodPost, "/app/form", map[string]string{"Accept": browser}, ""); res.Status != http.StatusSeeOther {
		t.Fatalf("POST from a browser: %d", res.Status)
	}
	// A browser whose session cookie expired or was revoked logs in again.
	if res := s.do(http.MethodGet, "/app/page", map[string]string{"Accept": browser, "Cookie": "session=expired"}, ""); res.Status != http.StatusFound {
		t.Fatalf("browser with a dead cookie: %d %s", res.Status, res.Body)
	}
	// A path a browser would take for another host comes back as "/".
	res = s.raw(http.MethodGet, "/app/..//evil.example/x", [][2]string{{"Accept", browser}})
	if res.Status == http.StatusFound {
		if rt, _ := url.Parse(res.Header.Get("Location")); strings.HasPrefix(rt.Query().Get("return_to"), "//") {
			t.Fatalf("return_to to another site: %q", res.Header.Get("Location"))
		}
	}

	// Not a browser, or credentials sent: never redirected.
	for name, h := range map[string]map[string]string{
		"fetch (*/*)":               {"Accept": "*/*"},
		"JSON":                      {"Accept": "application/json"},
		"no Accept":                 {},
		"JSON preferred":            {"Accept": "application/json, text/html;q=0.5"},
		"browser with bearer":       {"Accept": browser, "Authorization": "Bearer nonsense"},
		"browser with access token": {"Accept": browser, "x-access-token": "nonsense"},
	} {
		res := s.do(http.MethodGet, "/app/page", h, "")
		if res.Status != 401 || res.Header.Get("Location") != "" {
			t.Errorf("%s: %d Location %q, want 401", name, res.Status, res.Header.Get("Location"))
		}
	}
}

// TestGateRevocation: logging out through the account API closes the
// gate to the session's token (the same instance: at once).
func TestGateRevocation(t *testing.T) { eachBackend(t, testGateRevocation) }

func testGateRevocation(t *testing.T, backend string) {
	s := startGate(t, backend)
	id := s.signup(t, "rev@example.com", "correct horse battery", true)
	tk := s.login(t, "rev@example.com", "correct horse battery")
	if res := s.do(http.MethodGet, "/app/x", bearerH(tk.AccessToken), ""); res.Status != 200 {
		t.Fatalf("before logout: %d %s", res.Status, res.Body)
	}
	if res := s.do(http.MethodPost, "/account/logout", bearerH(tk.AccessToken), ""); res.Status != 204 {
		t.Fatalf("logout: %d %s", res.Status, res.Body)
	}
	wantDenial(t, s.do(http.MethodGet, "/app/x", bearerH(tk.AccessToken), ""), 401, `Bearer realm="caddyregister", error="invalid_token"`)

	// Disabling the user revokes its sessions too.
	tk = s.login(t, "rev@example.com", "correct horse battery")
	if res := s.do(http.MethodGet, "/app/x", bearerH(tk.AccessToken), ""); res.Status != 200 {
		t.Fatalf("second session: %d %s", res.Status, res.Body)
	}
	s.setStatus(t, id, "inactive")
	wantDenial(t, s.do(http.MethodGet, "/app/x", bearerH(tk.AccessToken), ""), 401, `Bearer realm="caddyregister", error="invalid_token"`)
}

// TestGateAssertion: the assertion verifies against the published JWKS
// with golang-jwt used directly (not the plugin's token package), names
// the caller and the site, lives at most 60 s, and is no access token.
func TestGateAssertion(t *testing.T) {
	s := startGate(t, backendRedis)
	id := s.signup(t, "assert@example.com", "correct horse battery", true)
	res := s.do(http.MethodPatch, "/account/users/"+id, withHeaders(rootAuth, jsonH), `{"permissions":["manage-objects"]}`)
	if res.Status != 200 {
		t.Fatalf("grant: %d %s", res.Status, res.Body)
	}
	tk := s.login(t, "assert@example.com", "correct horse battery")
	if res := s.raw(http.MethodGet, "/admin/x", append([][2]string{{"Authorization", "Bearer " + tk.AccessToken}}, append(spoofs, configuredSpoofs...)...)); res.Status != 200 {
		t.Fatalf("gated: %d %s", res.Status, res.Body)
	}
	h := s.up.last(t)
	for name, want := range map[string]string{"X-Auth-Sub": id, "X-User-Id": id, "X-User-Email": "assert@example.com", "X-User-Permissions": "manage-objects"} {
		if got := values(h, name); len(got) != 1 || got[0] != want {
			t.Fatalf("%s %q, want [%s]", name, got, want)
		}
	}
	as := values(h, "X-User-Assertion")
	if len(as) != 1 {
		t.Fatalf("assertions %q", as)
	}

	jw := s.do(http.MethodGet, "/.well-known/jwks.json", nil, "")
	var set struct {
		Keys []struct{ Kty, Crv, X, Kid, Alg string } `json:"keys"`
	}
	if err := json.Unmarshal(jw.Body, &set); err != nil || len(set.Keys) == 0 {
		t.Fatalf("jwks: %s", jw.Body)
	}
	keyFunc := func(tok *jwt.Token) (any, error) {
		for _, k := range set.Keys {
			if k.Kid == tok.Header["kid"] && k.Kty == "OKP" && k.Crv == "Ed25519" {
				b, err := base64.RawURLEncoding.DecodeString(k.X)
				return ed25519.PublicKey(b), err
			}
		}
		return nil, fmt.Errorf("no key %v", tok.Header["kid"])
	}
	claims := jwt.MapClaims{}
	tok, err := jwt.NewParser(jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithAudience("localhost"), jwt.WithExpirationRequired(), jwt.WithIssuedAt()).
		ParseWithClaims(as[0], claims, keyFunc)
	if err != nil || !tok.Valid {
		t.Fatalf("assertion does not verify: %v", err)
	}
	if tok.Header["typ"] != "user-assertion+jwt" {
		t.Errorf("typ %v", tok.Header["typ"])
	}
	if claims["sub"] != id || claims["email"] != "assert@example.com" || claims["iss"] != "caddyregister" || claims["jti"] == "" || claims["sid"] == "" {
		t.Errorf("claims %v", claims)
	}
	if perms, _ := claims["permissions"].([]any); len(perms) != 1 || perms[0] != "manage-objects" {
		t.Errorf("permissions %v", claims["permissions"])
	}
	iat, _ := claims.GetIssuedAt()
	exp, _ := claims.GetExpirationTime()
	if exp.Sub(iat.Time) > 60*time.Second || exp.Sub(iat.Time) <= 0 {
		t.Errorf("lifetime %s", exp.Sub(iat.Time))
	}
	// An assertion leaked by the app opens nothing.
	wantDenial(t, s.do(http.MethodGet, "/app/x", bearerH(as[0]), ""), 401, `Bearer realm="caddyregister", error="invalid_token"`)
	if res := s.do(http.MethodGet, "/account/me", bearerH(as[0]), ""); res.Status != 401 {
		t.Fatalf("assertion at /account/me: %d", res.Status)
	}

	// The user's Basic credentials, checked once, then cached.
	for range 3 {
		res := s.raw(http.MethodGet, "/admin/x", [][2]string{{"Authorization", basicHeader("assert@example.com", "correct horse battery")}, {"X_User_Id", "spoof"}})
		if res.Status != 200 {
			t.Fatalf("basic: %d %s", res.Status, res.Body)
		}
		h := s.up.last(t)
		if got := values(h, "X-User-Id"); len(got) != 1 || got[0] != id {
			t.Fatalf("basic: X-User-Id %q", got)
		}
		if got := values(h, "Authorization"); len(got) != 0 {
			t.Fatalf("basic: the credentials reached the app")
		}
	}
}

// TestGateCookie: the account API's login sets the cookies, the gate takes
// the access cookie, refresh and logout work from the cookies, and a
// state-changing request from another site's page is refused.
func TestGateCookie(t *testing.T) {
	s := startGate(t, backendRedis)
	id := s.signup(t, "cookie@example.com", "correct horse battery", true)
	res := s.postJSON("/account/login", `{"identifier":"cookie@example.com","password":"correct horse battery"}`)
	wantTokens(t, res)
	cookies := map[string]*http.Cookie{}
	for _, c := range (&http.Response{Header: res.Header}).Cookies() {
		cookies[c.Name] = c
	}
	access, refresh := cookies["session"], cookies["session_refresh"]
	if access == nil || refresh == nil {
		t.Fatalf("Set-Cookie %q", res.Header.Values("Set-Cookie"))
	}
	if !access.HttpOnly || access.SameSite != http.SameSiteLaxMode || access.Path != "/" || access.Secure {
		t.Errorf("access cookie %+v (no Secure only on http://localhost)", access)
	}
	if !refresh.HttpOnly || refresh.Path != "/account" {
		t.Errorf("refresh cookie %+v", refresh)
	}
	ck := "theme=dark; session=" + access.Value + "; other=1"
	res = s.raw(http.MethodGet, "/app/x", [][2]string{{"Cookie", ck}, {"X_User_Id", "spoof"}})
	if res.Status != 200 {
		t.Fatalf("cookie: %d %s", res.Status, res.Body)
	}
	h := s.up.last(t)
	if got := values(h, "X-User-Id"); len(got) != 1 || got[0] != id {
		t.Fatalf("cookie: X-User-Id %q", got)
	}
	if got := strings.Join(values(h, "Cookie"), "; "); strings.Contains(got, "session=") || !strings.Contains(got, "theme=dark") || !strings.Contains(got, "other=1") {
		t.Fatalf("cookies the app got: %q", got)
	}
	// A post from another site's page with the cookie: refused.
	for name, fh := range foreignHeaders {
		hdr := [][2]string{{"Cookie", ck}}
		for k, v := range fh {
			hdr = append(hdr, [2]string{k, v})
		}
		if res := s.raw(http.MethodPost, "/app/x", hdr); res.Status != 403 {
			t.Errorf("%s: %d, want 403", name, res.Status)
		}
	}
	if res := s.raw(http.MethodPost, "/app/x", [][2]string{{"Cookie", ck}, {"Origin", s.base}, {"Sec-Fetch-Site", "same-origin"}}); res.Status != 200 {
		t.Errorf("same-site post: %d %s", res.Status, res.Body)
	}

	// With the cookie option, login, refresh and logout refuse other
	// sites' pages.
	for name, fh := range foreignHeaders {
		h := withHeaders(jsonH, fh)
		if res := s.do(http.MethodPost, "/account/login", h, `{"identifier":"cookie@example.com","password":"correct horse battery"}`); res.Status != 403 {
			t.Errorf("login, %s: %d", name, res.Status)
		}
		hdr := [][2]string{{"Cookie", "session_refresh=" + refresh.Value}, {"Content-Type", "application/json"}}
		for k, v := range fh {
			hdr = append(hdr, [2]string{k, v})
		}
		if res := s.raw(http.MethodPost, "/account/refresh", hdr); res.Status != 403 {
			t.Errorf("refresh, %s: %d", name, res.Status)
		}
	}

	// Refresh from the cookie: new cookies.
	res = s.raw(http.MethodPost, "/account/refresh", [][2]string{{"Cookie", "session_refresh=" + refresh.Value}, {"Content-Type", "application/json"}})
	if res.Status != 200 {
		t.Fatalf("refresh from the cookie: %d %s", res.Status, res.Body)
	}
	var next *http.Cookie
	for _, c := range (&http.Response{Header: res.Header}).Cookies() {
		if c.Name == "session_refresh" {
			next = c
		}
	}
	if next == nil || next.Value == refresh.Value {
		t.Fatalf("refresh cookie not rotated: %q", res.Header.Values("Set-Cookie"))
	}
	// Logout from the cookie: the session ends and the cookies go.
	res = s.raw(http.MethodPost, "/account/logout", [][2]string{{"Cookie", "session_refresh=" + next.Value}, {"Content-Type", "application/json"}})
	if res.Status != 204 {
		t.Fatalf("logout from the cookie: %d %s", res.Status, res.Body)
	}
	if sc := strings.Join(res.Header.Values("Set-Cookie"), "\n"); !strings.Contains(sc, "session=;") || !strings.Contains(sc, "Max-Age=0") {
		t.Fatalf("logout cookies: %q", sc)
	}
	if res := s.raw(http.MethodGet, "/app/x", [][2]string{{"Cookie", ck}, {"Accept", "application/json"}}); res.Status != 401 {
		t.Fatalf("after logout: %d", res.Status)
	}
}
