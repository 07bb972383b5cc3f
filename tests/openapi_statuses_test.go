package tests

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestOpenAPIErrorStatuses sends each contract requests that earn the
// error statuses its document promises and the other black-box tests do
// not reach, so that conform (the harness) validates those answers too:
// an admin token where a user is expected, no credentials, malformed
// bodies, unknown links, wrong content types, oversized bodies,
// cross-site posts and wrong methods.
func TestOpenAPIErrorStatuses(t *testing.T) {
	global := fmt.Sprintf("admin root %s manage-users\n\t\tadmin_login_limit 1000/m", mustBcrypt(t, "rootpw"))
	s := startSite(t, backendRedis, global, `register noraina /api {
		activation email
		public_url http://localhost
	}
	register saymon /node/api
	register soajs /urac
	register rpost /api/v1
	register indiqus /ind
	register account /account`)

	res := s.postJSON("/auth/login", `{"username":"root","password":"rootpw"}`)
	var login struct {
		Result struct {
			Token string `json:"token"`
		} `json:"result"`
	}
	if res.Status != http.StatusOK || json.Unmarshal(res.Body, &login) != nil || login.Result.Token == "" {
		t.Fatalf("admin login: %d %s", res.Status, res.Body)
	}
	admin := bearerH(login.Result.Token)
	basic := map[string]string{"Authorization": basicHeader("root", "rootpw"), "Content-Type": "application/json"}
	acceptJSON := map[string]string{"Accept": "application/json"}
	crossSite := map[string]string{"Sec-Fetch-Site": "cross-site", "Content-Type": "application/x-www-form-urlencoded"}
	big := `{"x":"` + strings.Repeat("a", 70<<10) + `"}`

	for _, c := range []struct {
		method, path string
		header       map[string]string
		body         string
		want         int
	}{
		// noraina: an admin token has no user record; a bad token.
		{"GET", "/api/me", admin, "", 404},
		{"GET", "/api/user", bearerH("not-a-token"), "", 401},
		{"GET", "/api/user", admin, "", 404},
		{"GET", "/api/confirm?token=nope", acceptJSON, "", 400},
		{"POST", "/api/confirm", crossSite, "token=nope", 403},
		{"POST", "/api/register", map[string]string{"Content-Type": "text/plain"}, `{}`, 415},
		{"POST", "/api/register", jsonH, big, 413},
		{"DELETE", "/api/register", nil, "", 405},
		// account: no token, an admin token on one's own account, bad input, unknown ids.
		{"GET", "/account/sessions", nil, "", 401},
		{"GET", "/account/sessions", admin, "", 403},
		{"DELETE", "/account/sessions/nope", nil, "", 401},
		{"DELETE", "/account/sessions/nope", admin, "", 403},
		{"POST", "/account/password/change", admin, `{"current_password":"a","new_password":"b"}`, 403},
		{"POST", "/account/password/forgot", jsonH, `{`, 400},
		{"POST", "/account/activation/resend", jsonH, `{"email":42}`, 400},
		{"POST", "/account/logout", jsonH, `[`, 400},
		{"DELETE", "/account/me", admin, `{"password":"x"}`, 403},
		{"POST", "/account/password/reset", crossSite, "token=nope&password=x", 403},
		{"PATCH", "/account/users/nope", basic, `{"status":"active"}`, 404},
		{"POST", "/account/users/nope/logout", basic, "", 404},
		{"PUT", "/account/me", nil, "", 405},
		// saymon: an unknown link asked for JSON; a cross-site post; no credentials.
		{"GET", "/node/api/users/confirm?token=nope", acceptJSON, "", 400},
		{"POST", "/node/api/users/confirm", crossSite, "token=nope", 403},
		{"GET", "/node/api/users/captcha", nil, "", 401},
		{"PATCH", "/node/api/users/signup", nil, "", 405},
		// rpost: an unknown code asked for JSON; a cross-site post; too large.
		{"GET", "/api/v1/Account/Activate?code=nope", acceptJSON, "", 400},
		{"POST", "/api/v1/Account/Activate", crossSite, "code=nope", 403},
		{"POST", "/api/v1/Account/Register", map[string]string{"Content-Type": rpostJSON}, big, 413},
		{"POST", "/api/v1/Account/Register", map[string]string{"Content-Type": "application/xml"}, `<x/>`, 415},
		// soajs: a cross-site post; no credentials; a malformed JSON body.
		{"POST", "/urac/join/validate", crossSite, "token=nope", 403},
		{"GET", "/urac/admin/tenants", nil, "", 401},
		{"POST", "/urac/resetPassword", jsonH, `{"token":`, 400},
		{"POST", "/urac/join/validate", jsonH, `{"token":`, 400},
		{"POST", "/urac/admin/tenant", basic, `{"code":`, 400},
		{"PUT", "/urac/admin/addUser", nil, "", 405},
		// indiqus: no token; a user-less lookup with a bad country; bad JSON.
		{"POST", "/ind/pass/createNewUser", jsonH, `{}`, 401},
		{"GET", "/ind/stateList?country=XX", nil, "", 400},
		{"POST", "/auth/login", jsonH, `{"username":`, 400},
		{"GET", "/ind/countryList", nil, "", 200},
	} {
		if res := s.do(c.method, c.path, c.header, c.body); res.Status != c.want {
			t.Errorf("%s %s: %d, want %d: %.300s", c.method, c.path, res.Status, c.want, res.Body)
		}
	}

	// Every operation that takes a body, in every document: the handler
	// answers a type it does not take 415 and a body over max_body_size
	// 413, before the route runs, each in its contract's envelope.
	hs, err := apiHandlers(s.base, s.loaded)
	if err != nil || len(hs) != 6 {
		t.Fatalf("%d documented handlers: %v", len(hs), err)
	}
	for _, h := range hs {
		for tmpl, item := range h.doc.Paths.Map() {
			p := h.prefix + tmpl
			if len(item.Servers) > 0 {
				p = tmpl // mounted outside the prefix (indiqus' login)
			}
			p = strings.NewReplacer("{id}", "nope", "{sid}", "nope").Replace(p)
			for method, op := range item.Operations() {
				if op.RequestBody == nil {
					continue
				}
				if res := s.do(method, p, map[string]string{"Content-Type": "application/xml"}, "<x/>"); res.Status != http.StatusUnsupportedMediaType {
					t.Errorf("%s %s %s as XML: %d, want 415", h.contract, method, p, res.Status)
				}
				if res := s.do(method, p, jsonH, big); res.Status != http.StatusRequestEntityTooLarge {
					t.Errorf("%s %s %s with %d bytes: %d, want 413", h.contract, method, p, len(big), res.Status)
				}
			}
		}
	}
}
