package tests

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The account contract: a user's life after signup, black-box through
// Caddy, on both stores. Users sign up through noraina (pending, waiting
// for an admin) and live on through /account.

const accountHandler = `register account /account {
		rate_limit login off
		rate_limit erase off
		rate_limit password_change off
	}`

type accountSite struct {
	*site
}

func startAccount(t *testing.T, backend string) *accountSite {
	t.Helper()
	global := fmt.Sprintf("admin root %s manage-users\n\t\tadmin_login_limit 1000/m", mustBcrypt(t, "rootpw"))
	return &accountSite{site: startSite(t, backend, global, noraina+"\n\t"+accountHandler)}
}

func bearerH(tok string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + tok, "Content-Type": "application/json"}
}

var jsonH = map[string]string{"Content-Type": "application/json"}

// problem checks an RFC 9457 answer and returns it.
func problem(t *testing.T, res *response, status int, typ string) map[string]any {
	t.Helper()
	if res.Status != status {
		t.Fatalf("status %d, want %d: %s", res.Status, status, res.Body)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("content type %q: %s", ct, res.Body)
	}
	m := res.JSON(t)
	if m["type"] != typ || m["status"] != float64(status) || m["title"] != http.StatusText(status) {
		t.Fatalf("problem %v, want type %s status %d", m, typ, status)
	}
	return m
}

// fieldErrors are the fields a validation problem names.
func fieldErrors(t *testing.T, m map[string]any) []string {
	t.Helper()
	errs, _ := m["errors"].([]any)
	var out []string
	for _, e := range errs {
		f := e.(map[string]any)
		if f["code"] == "" || f["message"] == "" {
			t.Fatalf("field error without code or message: %v", f)
		}
		out = append(out, fmt.Sprint(f["field"]))
	}
	return out
}

type tokens struct {
	AccessToken  string         `json:"access_token"`
	TokenType    string         `json:"token_type"`
	ExpiresIn    int            `json:"expires_in"`
	RefreshToken string         `json:"refresh_token"`
	User         map[string]any `json:"user"`
}

func (s *accountSite) login(t *testing.T, ident, pass string) tokens {
	t.Helper()
	res := s.postJSON("/account/login", fmt.Sprintf(`{"identifier":%q,"password":%q}`, ident, pass))
	return wantTokens(t, res)
}

func wantTokens(t *testing.T, res *response) tokens {
	t.Helper()
	if res.Status != http.StatusOK {
		t.Fatalf("status %d: %s", res.Status, res.Body)
	}
	var tk tokens
	if err := json.Unmarshal(res.Body, &tk); err != nil || tk.AccessToken == "" || tk.TokenType != "Bearer" || tk.ExpiresIn <= 0 || tk.RefreshToken == "" || tk.User["id"] == nil {
		t.Fatalf("token answer: %s", res.Body)
	}
	if strings.Contains(string(res.Body), "password") {
		t.Fatalf("token answer mentions a password: %s", res.Body)
	}
	return tk
}

// signup registers through noraina and has root activate the user; it
// returns the user id.
func (s *accountSite) signup(t *testing.T, email, pass string, activate bool) string {
	t.Helper()
	res := s.postJSON("/api/register", fmt.Sprintf(`{"name":"User","mail":%q,"password":%q}`, email, pass))
	if res.Status != http.StatusCreated {
		t.Fatalf("register: %d %s", res.Status, res.Body)
	}
	res = s.do(http.MethodGet, "/account/users?email="+email, rootAuth, "")
	if res.Status != 200 {
		t.Fatalf("list: %d %s", res.Status, res.Body)
	}
	var page struct {
		Users []map[string]any `json:"users"`
	}
	_ = json.Unmarshal(res.Body, &page)
	if len(page.Users) != 1 || page.Users[0]["status"] != "pending" {
		t.Fatalf("list by email: %s", res.Body)
	}
	id := page.Users[0]["id"].(string)
	if activate {
		s.setStatus(t, id, "active")
	}
	return id
}

func (s *accountSite) setStatus(t *testing.T, id, status string) {
	t.Helper()
	res := s.do(http.MethodPatch, "/account/users/"+id, withHeaders(rootAuth, jsonH), fmt.Sprintf(`{"status":%q}`, status))
	if res.Status != 200 || res.JSON(t)["status"] != status {
		t.Fatalf("patch status %s: %d %s", status, res.Status, res.Body)
	}
}

func TestAccountLogin(t *testing.T) { eachBackend(t, testAccountLogin) }

func testAccountLogin(t *testing.T, backend string) {
	s := startAccount(t, backend)
	id := s.signup(t, "ann@example.com", "my_password", false)

	// Unknown account and wrong password: one body.
	unknown := s.postJSON("/account/login", `{"identifier":"nobody@example.com","password":"my_password"}`)
	wrong := s.postJSON("/account/login", `{"email":"ann@example.com","password":"wrong_password"}`)
	problem(t, unknown, 401, "urn:caddyregister:problem:invalid-credentials")
	problem(t, wrong, 401, "urn:caddyregister:problem:invalid-credentials")
	if string(unknown.Body) != string(wrong.Body) {
		t.Fatalf("unknown and wrong differ:\n%s\n%s", unknown.Body, wrong.Body)
	}
	// Pending is said only after the password verified.
	problem(t, s.postJSON("/account/login", `{"identifier":"ann@example.com","password":"my_password"}`), 403, "urn:caddyregister:problem:account-not-activated")

	// Bad input: 400 with field errors, nothing written.
	before := s.dataKeys()
	m := problem(t, s.postJSON("/account/login", `{"identifier":"ann@example.com"`), 400, "urn:caddyregister:problem:invalid-input")
	if f := fieldErrors(t, m); len(f) != 1 || f[0] != "body" {
		t.Fatalf("syntax error fields: %v", f)
	}
	m = problem(t, s.postJSON("/account/login", `{"identifier":7,"password":"x"}`), 400, "urn:caddyregister:problem:invalid-input")
	if f := fieldErrors(t, m); len(f) != 1 || f[0] != "identifier" {
		t.Fatalf("type error fields: %v", f)
	}
	m = problem(t, s.postJSON("/account/login", `{}`), 400, "urn:caddyregister:problem:invalid-input")
	if f := fieldErrors(t, m); strings.Join(f, ",") != "identifier,password" {
		t.Fatalf("missing fields: %v", f)
	}
	if !equalStrings(before, s.dataKeys()) {
		t.Fatal("bad input wrote records")
	}

	s.setStatus(t, id, "active")
	tk := s.login(t, "ann@example.com", "my_password")
	if tk.User["id"] != id || tk.User["status"] != "active" || tk.User["email"] != "ann@example.com" {
		t.Fatalf("user in the token answer: %v", tk.User)
	}
	// login accepted in place of identifier; an admin gets an admin
	// token and no refresh token.
	res := s.postJSON("/account/login", `{"login":"root","password":"rootpw"}`)
	if res.Status != 200 {
		t.Fatalf("admin login: %d %s", res.Status, res.Body)
	}
	am := res.JSON(t)
	if am["access_token"] == "" || am["refresh_token"] != nil || am["token_type"] != "Bearer" {
		t.Fatalf("admin login answer: %s", res.Body)
	}
	if res := s.do(http.MethodGet, fmt.Sprintf("/account/users/%s", id), bearerH(am["access_token"].(string)), ""); res.Status != 200 {
		t.Fatalf("admin token on an admin route: %d %s", res.Status, res.Body)
	}
	// An admin token has no account of its own.
	m = problem(t, s.do(http.MethodGet, "/account/me", bearerH(am["access_token"].(string)), ""), 403, "urn:caddyregister:problem:forbidden")
	if !strings.Contains(fmt.Sprint(m["detail"]), "admin tokens have no account") {
		t.Fatalf("detail: %v", m)
	}

	// Disabled: told apart after the password only.
	s.setStatus(t, id, "inactive")
	problem(t, s.postJSON("/account/login", `{"identifier":"ann@example.com","password":"my_password"}`), 403, "urn:caddyregister:problem:account-disabled")
	problem(t, s.postJSON("/account/login", `{"identifier":"ann@example.com","password":"nope_nope"}`), 401, "urn:caddyregister:problem:invalid-credentials")
}

// TestAccountLoginLocked: the account lockout answers 429 with Retry-After.
func TestAccountLoginLocked(t *testing.T) {
	global := fmt.Sprintf("admin root %s manage-users\n\t\tadmin_login_limit 1000/m\n\t\tlockout {\n\t\t\tnetwork_failures 2\n\t\t}", mustBcrypt(t, "rootpw"))
	s := &accountSite{site: startSite(t, backendRedis, global, noraina+"\n\t"+accountHandler)}
	for i := 0; i < 2; i++ {
		problem(t, s.postJSON("/account/login", `{"identifier":"x@example.com","password":"wrong_password"}`), 401, "urn:caddyregister:problem:invalid-credentials")
	}
	res := s.postJSON("/account/login", `{"identifier":"x@example.com","password":"wrong_password"}`)
	problem(t, res, 429, "urn:caddyregister:problem:rate-limited")
	if res.Header.Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
}

func TestAccountSessions(t *testing.T) { eachBackend(t, testAccountSessions) }

func testAccountSessions(t *testing.T, backend string) {
	s := startAccount(t, backend)
	id := s.signup(t, "bob@example.com", "my_password", true)
	a := s.login(t, "bob@example.com", "my_password")

	// /me needs a token, and says where it goes.
	res := s.do(http.MethodGet, "/account/me", nil, "")
	problem(t, res, 401, "urn:caddyregister:problem:unauthorized")
	if !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("WWW-Authenticate %q", res.Header.Get("WWW-Authenticate"))
	}
	problem(t, s.do(http.MethodGet, "/account/me", bearerH("not.a.token"), ""), 401, "urn:caddyregister:problem:unauthorized")
	res = s.do(http.MethodGet, "/account/me", bearerH(a.AccessToken), "")
	me := res.JSON(t)
	if res.Status != 200 || me["id"] != id || me["email"] != "bob@example.com" || me["status"] != "active" || me["created_at"] == nil || me["permissions"] == nil {
		t.Fatalf("me: %d %s", res.Status, res.Body)
	}
	if strings.Contains(string(res.Body), "hash") {
		t.Fatalf("me shows a hash: %s", res.Body)
	}

	// Refresh rotates; the spent token presented again is refused (inside
	// the grace window without revoking: engine tests cover the rest).
	b := wantTokens(t, s.postJSON("/account/refresh", fmt.Sprintf(`{"refresh_token":%q}`, a.RefreshToken)))
	if b.RefreshToken == a.RefreshToken {
		t.Fatal("refresh token not rotated")
	}
	problem(t, s.postJSON("/account/refresh", fmt.Sprintf(`{"refresh_token":%q}`, a.RefreshToken)), 401, "urn:caddyregister:problem:unauthorized")
	problem(t, s.postJSON("/account/refresh", `{"refresh_token":"garbage"}`), 401, "urn:caddyregister:problem:unauthorized")
	m := problem(t, s.postJSON("/account/refresh", `{}`), 400, "urn:caddyregister:problem:invalid-input")
	if f := fieldErrors(t, m); len(f) != 1 || f[0] != "refresh_token" {
		t.Fatalf("fields %v", f)
	}

	// A spent refresh token logs nothing out.
	problem(t, s.postJSON("/account/logout", fmt.Sprintf(`{"refresh_token":%q}`, a.RefreshToken)), 401, "urn:caddyregister:problem:unauthorized")
	if res := s.do(http.MethodGet, "/account/me", bearerH(b.AccessToken), ""); res.Status != 200 {
		t.Fatalf("session ended by a spent refresh token: %d %s", res.Status, res.Body)
	}

	// A second session; the list shows both, the caller's marked, and
	// the one of the registration's token (no refresh token: it ends with
	// that token, in 15 minutes and the verifier's leeway).
	c := s.login(t, "bob@example.com", "my_password")
	res = s.do(http.MethodGet, "/account/sessions", bearerH(c.AccessToken), "")
	var list struct {
		Sessions []struct {
			ID        string    `json:"id"`
			Current   bool      `json:"current"`
			ExpiresAt time.Time `json:"expires_at"`
		} `json:"sessions"`
	}
	if err := json.Unmarshal(res.Body, &list); err != nil || res.Status != 200 || len(list.Sessions) != 3 {
		t.Fatalf("sessions: %d %s", res.Status, res.Body)
	}
	var other string
	var registration int
	for _, ss := range list.Sessions {
		switch left := time.Until(ss.ExpiresAt); {
		case ss.Current:
		case left < 16*time.Minute:
			registration++
		default:
			other = ss.ID
		}
	}
	if other == "" || registration != 1 || strings.Contains(string(res.Body), "hash") {
		t.Fatalf("sessions: %s", res.Body)
	}
	// Ending the other session kills its tokens at once.
	if res := s.do(http.MethodDelete, "/account/sessions/"+other, bearerH(c.AccessToken), ""); res.Status != 204 {
		t.Fatalf("end session: %d %s", res.Status, res.Body)
	}
	problem(t, s.do(http.MethodGet, "/account/me", bearerH(b.AccessToken), ""), 401, "urn:caddyregister:problem:unauthorized")
	problem(t, s.do(http.MethodDelete, "/account/sessions/"+other, bearerH(c.AccessToken), ""), 404, "urn:caddyregister:problem:not-found")

	// Logout by refresh token, then by access token.
	d := s.login(t, "bob@example.com", "my_password")
	problem(t, s.postJSON("/account/logout", fmt.Sprintf(`{"refresh_token":%q}`, d.RefreshToken+"x")), 401, "urn:caddyregister:problem:unauthorized")
	if res := s.postJSON("/account/logout", fmt.Sprintf(`{"refresh_token":%q}`, d.RefreshToken)); res.Status != 204 {
		t.Fatalf("logout by refresh token: %d %s", res.Status, res.Body)
	}
	problem(t, s.do(http.MethodGet, "/account/me", bearerH(d.AccessToken), ""), 401, "urn:caddyregister:problem:unauthorized")
	if res := s.do(http.MethodPost, "/account/logout", bearerH(c.AccessToken), ""); res.Status != 204 {
		t.Fatalf("logout: %d %s", res.Status, res.Body)
	}
	problem(t, s.do(http.MethodGet, "/account/me", bearerH(c.AccessToken), ""), 401, "urn:caddyregister:problem:unauthorized")
	problem(t, s.postJSON("/account/refresh", fmt.Sprintf(`{"refresh_token":%q}`, c.RefreshToken)), 401, "urn:caddyregister:problem:unauthorized")
}

func TestAccountPasswordAndErase(t *testing.T) { eachBackend(t, testAccountPasswordAndErase) }

func testAccountPasswordAndErase(t *testing.T, backend string) {
	s := startAccount(t, backend)
	id := s.signup(t, "cat@example.com", "my_password", true)
	a := s.login(t, "cat@example.com", "my_password")
	b := s.login(t, "cat@example.com", "my_password")

	problem(t, s.postJSON("/account/password/change", `{"current_password":"my_password","new_password":"new_password_1"}`), 401, "urn:caddyregister:problem:unauthorized")
	before := s.dataKeys()
	problem(t, s.do(http.MethodPost, "/account/password/change", bearerH(a.AccessToken), `{"current_password":"wrong_one","new_password":"new_password_1"}`), 401, "urn:caddyregister:problem:invalid-credentials")
	m := problem(t, s.do(http.MethodPost, "/account/password/change", bearerH(a.AccessToken), `{"current_password":"my_password","new_password":"short"}`), 400, "urn:caddyregister:problem:invalid-input")
	if f := fieldErrors(t, m); len(f) != 1 || f[0] != "new_password" {
		t.Fatalf("fields %v", f)
	}
	m = problem(t, s.do(http.MethodPost, "/account/password/change", bearerH(a.AccessToken), `{"current_password":""}`), 400, "urn:caddyregister:problem:invalid-input")
	if f := fieldErrors(t, m); strings.Join(f, ",") != "current_password,new_password" {
		t.Fatalf("fields %v", f)
	}
	if !equalStrings(before, s.dataKeys()) {
		t.Fatal("a refused change wrote records")
	}
	problem(t, s.postJSON("/account/login", `{"identifier":"cat@example.com","password":"new_password_1"}`), 401, "urn:caddyregister:problem:invalid-credentials")

	if res := s.do(http.MethodPost, "/account/password/change", bearerH(a.AccessToken), `{"current_password":"my_password","new_password":"new_password_1"}`); res.Status != 204 {
		t.Fatalf("change: %d %s", res.Status, res.Body)
	}
	// The other session is gone at once; the one that changed it stays.
	problem(t, s.do(http.MethodGet, "/account/me", bearerH(b.AccessToken), ""), 401, "urn:caddyregister:problem:unauthorized")
	if res := s.do(http.MethodGet, "/account/me", bearerH(a.AccessToken), ""); res.Status != 200 {
		t.Fatalf("changing session: %d %s", res.Status, res.Body)
	}
	problem(t, s.postJSON("/account/login", `{"identifier":"cat@example.com","password":"my_password"}`), 401, "urn:caddyregister:problem:invalid-credentials")
	c := s.login(t, "cat@example.com", "new_password_1")

	// Erasure needs the password.
	problem(t, s.do(http.MethodDelete, "/account/me", bearerH(c.AccessToken), `{"password":"my_password"}`), 401, "urn:caddyregister:problem:invalid-credentials")
	m = problem(t, s.do(http.MethodDelete, "/account/me", bearerH(c.AccessToken), `{"password":`), 400, "urn:caddyregister:problem:invalid-input")
	if len(fieldErrors(t, m)) != 1 {
		t.Fatalf("problem %v", m)
	}
	if res := s.do(http.MethodGet, "/account/users/"+id, rootAuth, ""); res.Status != 200 {
		t.Fatalf("refused erasure erased: %d %s", res.Status, res.Body)
	}
	if res := s.do(http.MethodDelete, "/account/me", bearerH(c.AccessToken), `{"password":"new_password_1"}`); res.Status != 204 {
		t.Fatalf("erase: %d %s", res.Status, res.Body)
	}
	problem(t, s.do(http.MethodGet, "/account/me", bearerH(c.AccessToken), ""), 401, "urn:caddyregister:problem:unauthorized")
	problem(t, s.do(http.MethodGet, "/account/me", bearerH(a.AccessToken), ""), 401, "urn:caddyregister:problem:unauthorized")
	problem(t, s.do(http.MethodGet, "/account/users/"+id, rootAuth, ""), 404, "urn:caddyregister:problem:not-found")
	problem(t, s.postJSON("/account/login", `{"identifier":"cat@example.com","password":"new_password_1"}`), 401, "urn:caddyregister:problem:invalid-credentials")
	// The address is free again.
	s.signup(t, "cat@example.com", "my_password", false)
}

func TestAccountResend(t *testing.T) { eachBackend(t, testAccountResend) }

func testAccountResend(t *testing.T, backend string) {
	s := startAccount(t, backend)
	s.signup(t, "dan@example.com", "my_password", false)
	known := s.postJSON("/account/activation/resend", `{"email":"dan@example.com"}`)
	unknown := s.postJSON("/account/activation/resend", `{"email":"nobody@example.com"}`)
	if known.Status != 202 || unknown.Status != 202 || string(known.Body) != string(unknown.Body) {
		t.Fatalf("resend: %d %s / %d %s", known.Status, known.Body, unknown.Status, unknown.Body)
	}
	m := problem(t, s.postJSON("/account/activation/resend", `{"email":"not-an-address"}`), 400, "urn:caddyregister:problem:invalid-input")
	if f := fieldErrors(t, m); len(f) != 1 || f[0] != "email" {
		t.Fatalf("fields %v", f)
	}
	m = problem(t, s.postJSON("/account/activation/resend", `{"email":["x"]}`), 400, "urn:caddyregister:problem:invalid-input")
	if f := fieldErrors(t, m); len(f) != 1 || f[0] != "email" {
		t.Fatalf("fields %v", f)
	}
}

func TestAccountAdmin(t *testing.T) { eachBackend(t, testAccountAdmin) }

func testAccountAdmin(t *testing.T, backend string) {
	s := startAccount(t, backend)
	id := s.signup(t, "eve@example.com", "my_password", true)
	s.signup(t, "fay@example.com", "my_password", false)
	u := s.login(t, "eve@example.com", "my_password")

	// A user's token is no admin's.
	for _, rq := range [][2]string{{"GET", "/account/users"}, {"GET", "/account/users/" + id}, {"PATCH", "/account/users/" + id}, {"DELETE", "/account/users/" + id}, {"POST", "/account/users/" + id + "/logout"}} {
		body := ""
		if rq[0] == "PATCH" {
			body = `{"status":"inactive"}`
		}
		problem(t, s.do(rq[0], rq[1], bearerH(u.AccessToken), body), 403, "urn:caddyregister:problem:forbidden")
		problem(t, s.do(rq[0], rq[1], jsonH, body), 401, "urn:caddyregister:problem:unauthorized")
	}

	// Listing: filters, a page size, a cursor.
	res := s.do(http.MethodGet, "/account/users?limit=1", rootAuth, "")
	var page struct {
		Users      []map[string]any `json:"users"`
		NextCursor *string          `json:"next_cursor"`
	}
	if err := json.Unmarshal(res.Body, &page); err != nil || res.Status != 200 || len(page.Users) != 1 || page.NextCursor == nil || page.Users[0]["email"] != "eve@example.com" {
		t.Fatalf("page 1: %d %s", res.Status, res.Body)
	}
	if strings.Contains(string(res.Body), "hash") {
		t.Fatalf("list shows a hash: %s", res.Body)
	}
	res = s.do(http.MethodGet, "/account/users?limit=1&cursor="+*page.NextCursor, rootAuth, "")
	page.NextCursor = nil
	if err := json.Unmarshal(res.Body, &page); err != nil || res.Status != 200 || len(page.Users) != 1 || page.Users[0]["email"] != "fay@example.com" {
		t.Fatalf("page 2: %d %s", res.Status, res.Body)
	}
	res = s.do(http.MethodGet, "/account/users?status=pending", rootAuth, "")
	if err := json.Unmarshal(res.Body, &page); err != nil || len(page.Users) != 1 || page.Users[0]["email"] != "fay@example.com" || page.NextCursor != nil {
		t.Fatalf("pending: %s", res.Body)
	}
	m := problem(t, s.do(http.MethodGet, "/account/users?limit=201&status=gone&cursor=zz", rootAuth, ""), 400, "urn:caddyregister:problem:invalid-input")
	if f := fieldErrors(t, m); strings.Join(f, ",") != "status,limit,cursor" {
		t.Fatalf("fields %v", f)
	}
	problem(t, s.do(http.MethodGet, "/account/users/0123456789abcdef01234567", rootAuth, ""), 404, "urn:caddyregister:problem:not-found")
	problem(t, s.do(http.MethodGet, "/account/users/nope", rootAuth, ""), 404, "urn:caddyregister:problem:not-found")

	// Bad PATCHes change nothing.
	before := s.dataKeys()
	h := withHeaders(rootAuth, jsonH)
	for body, field := range map[string]string{
		`{"status":"pending"}`:         "status",
		`{"permissions":["*"]}`:        "permissions",
		`{"permissions":"read"}`:       "permissions",
		`{"status":"active","x":`:      "body",
		`{"admin_permissions":["no"]}`: "admin_permissions",
	} {
		m := problem(t, s.do(http.MethodPatch, "/account/users/"+id, h, body), 400, "urn:caddyregister:problem:invalid-input")
		if f := fieldErrors(t, m); len(f) != 1 || f[0] != field {
			t.Fatalf("%s: fields %v", body, f)
		}
	}
	if !equalStrings(before, s.dataKeys()) {
		t.Fatal("a refused PATCH wrote records")
	}
	res = s.do(http.MethodPatch, "/account/users/"+id, h, `{"permissions":["read","write"]}`)
	if res.Status != 200 || fmt.Sprint(res.JSON(t)["permissions"]) != "[read write]" {
		t.Fatalf("permissions: %d %s", res.Status, res.Body)
	}
	// New permissions come with the next token.
	if r := s.login(t, "eve@example.com", "my_password"); fmt.Sprint(r.User["permissions"]) != "[read write]" {
		t.Fatalf("user after the change: %v", r.User)
	}

	// A disable refuses the user's tokens at once on this instance.
	if res := s.do(http.MethodGet, "/account/me", bearerH(u.AccessToken), ""); res.Status != 200 {
		t.Fatalf("me: %d", res.Status)
	}
	s.setStatus(t, id, "inactive")
	problem(t, s.do(http.MethodGet, "/account/me", bearerH(u.AccessToken), ""), 401, "urn:caddyregister:problem:unauthorized")
	problem(t, s.postJSON("/account/refresh", fmt.Sprintf(`{"refresh_token":%q}`, u.RefreshToken)), 403, "urn:caddyregister:problem:account-disabled")
	s.setStatus(t, id, "active")

	// Logging a user out everywhere.
	v := s.login(t, "eve@example.com", "my_password")
	s.login(t, "eve@example.com", "my_password")
	res = s.do(http.MethodPost, "/account/users/"+id+"/logout", rootAuth, "")
	if res.Status != 200 || res.JSON(t)["sessions_ended"] != float64(2) {
		t.Fatalf("logout user: %d %s", res.Status, res.Body)
	}
	problem(t, s.do(http.MethodGet, "/account/me", bearerH(v.AccessToken), ""), 401, "urn:caddyregister:problem:unauthorized")
	problem(t, s.do(http.MethodPost, "/account/users/0123456789abcdef01234567/logout", rootAuth, ""), 404, "urn:caddyregister:problem:not-found")

	// Cross-site posts with cached Basic credentials are refused.
	problem(t, s.do(http.MethodDelete, "/account/users/"+id, withHeaders(rootAuth, foreignHeaders["foreign Origin"]), ""), 403, "urn:caddyregister:problem:forbidden")

	// Erasure by an admin.
	w := s.login(t, "eve@example.com", "my_password")
	if res := s.do(http.MethodDelete, "/account/users/"+id, rootAuth, ""); res.Status != 204 {
		t.Fatalf("delete: %d %s", res.Status, res.Body)
	}
	problem(t, s.do(http.MethodGet, "/account/me", bearerH(w.AccessToken), ""), 401, "urn:caddyregister:problem:unauthorized")
	problem(t, s.do(http.MethodDelete, "/account/users/"+id, rootAuth, ""), 404, "urn:caddyregister:problem:not-found")
	// Wrong method on a patterned path.
	res = s.do(http.MethodPut, "/account/users/"+id, rootAuth, "")
	if res.Status != 405 || !strings.Contains(res.Header.Get("Allow"), "PATCH") {
		t.Fatalf("PUT: %d %v", res.Status, res.Header)
	}
}

// TestAccountSessionLimits: the account handler's own sessions block sets
// the lifetime of the sessions it opens.
func TestAccountSessionLimits(t *testing.T) {
	global := fmt.Sprintf("admin root %s manage-users\n\t\tadmin_login_limit 1000/m", mustBcrypt(t, "rootpw"))
	s := &accountSite{site: startSite(t, backendEmbedded, global, noraina+"\n\tregister account /account {\n\t\tsessions {\n\t\t\tidle 1h\n\t\t\tlifetime 8h\n\t\t}\n\t}")}
	s.signup(t, "limited@example.com", "my_password", true)
	a := s.login(t, "limited@example.com", "my_password")
	res := s.do(http.MethodGet, "/account/sessions", bearerH(a.AccessToken), "")
	var list struct {
		Sessions []struct {
			Current       bool      `json:"current"`
			CreatedAt     time.Time `json:"created_at"`
			IdleExpiresAt time.Time `json:"idle_expires_at"`
			ExpiresAt     time.Time `json:"expires_at"`
		} `json:"sessions"`
	}
	if err := json.Unmarshal(res.Body, &list); err != nil || res.Status != 200 {
		t.Fatalf("sessions: %d %s", res.Status, res.Body)
	}
	for _, ss := range list.Sessions {
		if ss.Current {
			if ss.IdleExpiresAt.Sub(ss.CreatedAt) != time.Hour || ss.ExpiresAt.Sub(ss.CreatedAt) != 8*time.Hour {
				t.Fatalf("session limits: %s", res.Body)
			}
			return
		}
	}
	t.Fatalf("no current session: %s", res.Body)
}
