package tests

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// The hardening of admin routes: who counts as an admin, what an admin
// token stands for after a config change, and browsers on other sites.

// foreignHeaders are what a browser adds to a post from another site's
// page; each alone must get the request refused.
var foreignHeaders = map[string]map[string]string{
	"Sec-Fetch-Site cross-site": {"Sec-Fetch-Site": "cross-site"},
	"foreign Origin":            {"Origin": "https://evil.example"},
	"Origin null":               {"Origin": "null"},
	"sibling site":              {"Origin": "http://app.localhost", "Sec-Fetch-Site": "same-site"},
}

func withHeaders(base map[string]string, extra ...map[string]string) map[string]string {
	h := map[string]string{}
	for k, v := range base {
		h[k] = v
	}
	for _, e := range extra {
		for k, v := range e {
			h[k] = v
		}
	}
	return h
}

// TestCrossSiteSoajs: soajs takes forms and HTTP Basic, which a browser
// caches and sends with a form post from any site. Such posts are refused
// before anything is read or written; the site's own pages and non-browser
// clients pass.
func TestCrossSiteSoajs(t *testing.T) {
	s := startSoajs(t, backendRedis, "")
	own := map[string]string{"Origin": s.base, "Sec-Fetch-Site": "same-origin"}
	before := s.dataKeys()
	for name, h := range foreignHeaders {
		t.Run(name, func(t *testing.T) {
			res := s.addUser(withHeaders(rootAuth, h), soajsDocQuery, "application/x-www-form-urlencoded", soajsDocForm)
			r := wantCodes(t, res, http.StatusForbidden, 902)
			if !strings.Contains(r.Errors.Details[0].Message, "cross-site request refused") {
				t.Fatalf("message: %s", res.Body)
			}
			// An admin route taking JSON, and a public route taking a form.
			wantCodes(t, s.do(http.MethodPost, "/urac/admin/tenant", withHeaders(rootAuth, h, map[string]string{"Content-Type": "application/json"}), `{"code":"EVIL","name":"Evil"}`), http.StatusForbidden, 902)
			wantCodes(t, s.do(http.MethodPost, "/urac/resetPassword", withHeaders(h, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}), "token=x&password=a&confirmation=a"), http.StatusForbidden, 902)
		})
	}
	if !equalStrings(before, s.dataKeys()) {
		t.Fatal("a cross-site request wrote records")
	}
	// Reads are not state-changing: a cross-site GET is answered.
	if res := s.do(http.MethodGet, "/urac/admin/tenants", withHeaders(rootAuth, foreignHeaders["foreign Origin"]), ""); res.Status != 200 {
		t.Fatalf("cross-site GET of the tenant list: %d %s", res.Status, res.Body)
	}
	// The site's own page, and a client without browser headers.
	created(t, s.addUser(withHeaders(rootAuth, own), soajsDocQuery, "application/x-www-form-urlencoded", soajsDocForm), true)
	created(t, s.addForm(soajsDocQuery, strings.NewReplacer("john&", "jane&", "johndoe@", "jane@").Replace(soajsDocForm)), true)
}

// TestCrossSiteSaymon: saymon's signup is an admin route (HTTP Basic); a
// browser on another site cannot use cached credentials to create users.
// The refused request leaves the CAPTCHA unspent.
func TestCrossSiteSaymon(t *testing.T) {
	s := startSaymon(t, "", "")
	tok, ans := s.challenge()
	body := signupBody(tok, ans, "cross", "cross@example.com", "1111")
	before := s.dataKeys()
	for name, h := range foreignHeaders {
		t.Run(name, func(t *testing.T) {
			res := s.signup(withHeaders(rootAuth, h), body)
			m := res.JSON(t)
			if res.Status != http.StatusForbidden || m["code"] != "forbidden" || !strings.Contains(fmt.Sprint(m["message"]), "cross-site request refused") {
				t.Fatalf("%d %s", res.Status, res.Body)
			}
		})
	}
	if !equalStrings(before, s.dataKeys()) {
		t.Fatal("a cross-site request wrote records or spent the CAPTCHA")
	}
	res := s.signup(withHeaders(rootAuth, map[string]string{"Origin": s.base, "Sec-Fetch-Site": "same-origin"}), body)
	if res.Status != 200 {
		t.Fatalf("same-origin signup: %d %s", res.Status, res.Body)
	}
	tok, ans = s.challenge()
	if res := s.signup(rootAuth, signupBody(tok, ans, "plain", "plain@example.com", "1111")); res.Status != 200 {
		t.Fatalf("signup without browser headers: %d %s", res.Status, res.Body)
	}
}

// setUserFields rewrites fields of a stored user record, as a record
// written before this release (permissions from a default_permissions that
// held manage-users) or by the future admin API (admin_permissions) holds
// them.
func setUserFields(t *testing.T, s *site, id string, fields map[string]any) {
	t.Helper()
	key := "{" + s.ns + "}:user:" + id
	b, err := s.rdb.Get(t.Context(), key).Bytes()
	if err != nil {
		t.Fatalf("user record: %v", err)
	}
	var rec map[string]any
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	for k, v := range fields {
		rec[k] = v
	}
	if b, err = json.Marshal(rec); err != nil {
		t.Fatal(err)
	}
	if err := s.rdb.Set(t.Context(), key, b, 0).Err(); err != nil {
		t.Fatal(err)
	}
}

// TestAdminRoutesRefuseUserTokens: a user's token opens no admin route of
// any contract, even when the user holds manage-users or "*" as ordinary
// permissions; only an explicit grant (admin_permissions, which only the
// admin API will set) does.
func TestAdminRoutesRefuseUserTokens(t *testing.T) {
	global := fmt.Sprintf("admin root %s manage-users\n\t\tsmtp %s\n\t\ttenant DBTN %s Demo Tenant\n\t\tadmin_login_limit 1000/m",
		mustBcrypt(t, "rootpw"), startSMTP(t).URL(), soajsDBTN)
	s := &soajsSite{site: startSite(t, backendRedis, global, "register soajs\n\tregister indiqus /api\n\tregister saymon /node/api")}
	// Two active users with passwords, created by the admin.
	newUser := func(login string) string {
		t.Helper()
		form := fmt.Sprintf("username=%s&firstName=A&lastName=B&email=%s@example.com&status=active&password=%s&confirmation=%s", login, login, soajsPassword, soajsPassword)
		return created(t, s.addForm(soajsDocQuery, strings.ReplaceAll(form, " ", "+")), false).ID
	}
	legacy, granted := newUser("legacy"), newUser("granted")
	setUserFields(t, s.site, legacy, map[string]any{"permissions": []string{"manage-users", "*"}})
	setUserFields(t, s.site, granted, map[string]any{"admin_permissions": []string{"manage-users"}})
	token := func(login string) string {
		t.Helper()
		res := s.login(login, soajsPassword)
		var env struct {
			Result struct {
				Token string `json:"user_token"`
			} `json:"result"`
		}
		if err := json.Unmarshal(res.Body, &env); err != nil || env.Result.Token == "" {
			t.Fatalf("login %s: %d %s", login, res.Status, res.Body)
		}
		return env.Result.Token
	}
	legacyTok, grantedTok := token("legacy"), token("granted")

	before := s.dataKeys()
	for _, h := range []map[string]string{{"x-access-token": legacyTok}, {"Authorization": "Bearer " + legacyTok}} {
		wantCodes(t, s.addUser(h, soajsDocQuery, "application/x-www-form-urlencoded", "username=mallory&firstName=M&lastName=M&email=m@example.com"), http.StatusForbidden, 902)
		wantCodes(t, s.do(http.MethodGet, "/urac/admin/tenants", h, ""), http.StatusForbidden, 902)
		if res := s.do(http.MethodGet, "/node/api/users/captcha", h, ""); res.Status != http.StatusForbidden || res.JSON(t)["code"] != "forbidden" {
			t.Fatalf("saymon captcha with a user token: %d %s", res.Status, res.Body)
		}
		if res := s.do(http.MethodGet, "/api/signUpHelper", h, ""); res.Status != http.StatusForbidden {
			t.Fatalf("indiqus signUpHelper with a user token: %d %s", res.Status, res.Body)
		}
	}
	if !equalStrings(before, s.dataKeys()) {
		t.Fatal("a refused request wrote records")
	}
	// The explicit grant opens the admin routes that need it.
	created(t, s.addUser(map[string]string{"x-access-token": grantedTok}, soajsDocQuery, "application/x-www-form-urlencoded", "username=alice&firstName=A&lastName=A&email=alice@example.com"), true)
	if res := s.do(http.MethodGet, "/node/api/users/captcha", map[string]string{"x-access-token": grantedTok}, ""); res.Status != 200 {
		t.Fatalf("saymon captcha with a granted user's token: %d %s", res.Status, res.Body)
	}
}

// TestAdminTokenAfterReload: an admin token stands for the admin as
// configured now. A reload that withdraws the permission makes the same
// token forbidden; one that changes the admin's hash makes it invalid.
func TestAdminTokenAfterReload(t *testing.T) {
	hash := mustBcrypt(t, "rootpw")
	global := func(hash, perms string) string {
		return fmt.Sprintf("admin root %s %s\n\t\ttenant DBTN %s Demo Tenant\n\t\tadmin_login_limit 1000/m", hash, perms, soajsDBTN)
	}
	body := "register soajs\n\tregister indiqus /api"
	s := &soajsSite{site: startSite(t, backendRedis, global(hash, "manage-users"), body)}
	loaded := s.cfg
	reload := func(g string) {
		t.Helper()
		// Same store namespace, so the same signing key.
		cfg := strings.Replace(s.cfg, global(hash, "manage-users"), g, 1)
		if cfg == loaded {
			t.Fatal("config unchanged")
		}
		s.load(cfg)
		loaded = cfg
	}
	res := s.login("root", "rootpw")
	var env struct {
		Result struct {
			Token string `json:"user_token"`
		} `json:"result"`
	}
	if err := json.Unmarshal(res.Body, &env); err != nil || env.Result.Token == "" {
		t.Fatalf("admin login: %d %s", res.Status, res.Body)
	}
	h := map[string]string{"x-access-token": env.Result.Token}
	listTenants := func() *response { return s.do(http.MethodGet, "/urac/admin/tenants", h, "") }
	if res := listTenants(); res.Status != 200 {
		t.Fatalf("admin token: %d %s", res.Status, res.Body)
	}

	reload(global(hash, "view-section-stat"))
	wantCodes(t, listTenants(), http.StatusForbidden, 902)

	reload(global(hash, "manage-users"))
	if res := listTenants(); res.Status != 200 {
		t.Fatalf("permission given back: %d %s", res.Status, res.Body)
	}

	// The operator rotates root's hash (same password, new salt).
	reload(global(mustBcrypt(t, "rootpw"), "manage-users"))
	wantCodes(t, listTenants(), http.StatusUnauthorized, 901)
	// A fresh login against the new hash works.
	res = s.login("root", "rootpw")
	if err := json.Unmarshal(res.Body, &env); err != nil || env.Result.Token == "" {
		t.Fatalf("admin login after the change: %d %s", res.Status, res.Body)
	}
	if res := s.do(http.MethodGet, "/urac/admin/tenants", map[string]string{"x-access-token": env.Result.Token}, ""); res.Status != 200 {
		t.Fatalf("fresh admin token: %d %s", res.Status, res.Body)
	}
}
