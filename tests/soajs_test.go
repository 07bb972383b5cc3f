package tests

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The document's curl example: the query string and the form body it
// sends (curl -d sends application/x-www-form-urlencoded).
const (
	soajsDocQuery = "tId=5551aca9e179c39b760f7a1a&tCode=DBTN"
	soajsDocForm  = "username=john&firstName=John&lastName=Doe&email=johndoe@domain.com"
	soajsDocJSON  = `{"username":"john","firstName":"John","lastName":"Doe","email":"johndoe@domain.com"}`
	soajsDBTN     = "5551aca9e179c39b760f7a1a"
	soajsOTHR     = "5551aca9e179c39b760f7a1b"
	soajsPassword = "correct horse battery"
)

var (
	soajsIDRE   = regexp.MustCompile(`^[0-9a-f]{24}$`)
	soajsUUIDRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
)

type soajsSite struct{ *site }

// startSoajs declares the document's tenant (and another one) in the
// global register block, an admin with manage-users and one without, and
// mounts indiqus' /auth/login beside the contract so users can prove their
// password works.
func startSoajs(t *testing.T, backend, handlerExtra string) *soajsSite {
	t.Helper()
	global := fmt.Sprintf(`admin root %s manage-users
		admin viewer %s view-section-stat
		tenant DBTN %s Demo Tenant
		group DBTN administrator
		group DBTN user
		tenant OTHR %s Other
		group OTHR sales
		admin_login_limit 1000/m`, mustBcrypt(t, "rootpw"), mustBcrypt(t, "viewerpw"), soajsDBTN, soajsOTHR)
	body := "register soajs {\n\t\t" + handlerExtra + "\n\t}\n\tregister indiqus /api"
	return &soajsSite{site: startSite(t, backend, global, body)}
}

// soajsReply is the document's envelope.
type soajsReply struct {
	Result bool            `json:"result"`
	Data   json.RawMessage `json:"data"`
	Errors *struct {
		Codes   []int `json:"codes"`
		Details []struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"details"`
	} `json:"errors"`
}

func decodeSoajs(t *testing.T, res *response) soajsReply {
	t.Helper()
	var r soajsReply
	if err := json.Unmarshal(res.Body, &r); err != nil {
		t.Fatalf("not the envelope (%d): %s", res.Status, res.Body)
	}
	var keys map[string]json.RawMessage
	_ = json.Unmarshal(res.Body, &keys)
	if len(keys) != 2 {
		t.Fatalf("envelope has %d members: %s", len(keys), res.Body)
	}
	if r.Result != (r.Errors == nil) || (r.Result && r.Data == nil) {
		t.Fatalf("envelope: %s", res.Body)
	}
	if r.Errors != nil {
		if len(r.Errors.Codes) == 0 || len(r.Errors.Codes) != len(r.Errors.Details) {
			t.Fatalf("codes and details differ: %s", res.Body)
		}
		for i, d := range r.Errors.Details {
			if d.Code != r.Errors.Codes[i] || d.Message == "" {
				t.Fatalf("detail %d: %s", i, res.Body)
			}
		}
	}
	return r
}

// wantCodes checks a refusal: its HTTP status and its codes in order.
func wantCodes(t *testing.T, res *response, status int, codes ...int) soajsReply {
	t.Helper()
	r := decodeSoajs(t, res)
	if res.Status != status || r.Result || !slices.Equal(r.Errors.Codes, codes) {
		t.Fatalf("want %d %v, got %d %s", status, codes, res.Status, res.Body)
	}
	return r
}

func (s *soajsSite) addUser(h map[string]string, query, ctype, body string) *response {
	s.t.Helper()
	hh := map[string]string{}
	if ctype != "" {
		hh["Content-Type"] = ctype
	}
	for k, v := range h {
		hh[k] = v
	}
	path := "/urac/admin/addUser"
	if query != "" {
		path += "?" + query
	}
	return s.do(http.MethodPost, path, hh, body)
}

func (s *soajsSite) addForm(query, body string) *response {
	s.t.Helper()
	return s.addUser(rootAuth, query, "application/x-www-form-urlencoded", body)
}

func (s *soajsSite) addJSON(query, body string) *response {
	s.t.Helper()
	return s.addUser(rootAuth, query, "application/json", body)
}

type soajsCreated struct {
	ID    string `json:"id"`
	Token string `json:"token"`
}

// created checks the document's success shape and returns it.
func created(t *testing.T, res *response, wantToken bool) soajsCreated {
	t.Helper()
	r := decodeSoajs(t, res)
	if res.Status != 200 || !r.Result {
		t.Fatalf("addUser: %d %s", res.Status, res.Body)
	}
	var keys map[string]json.RawMessage
	_ = json.Unmarshal(r.Data, &keys)
	var c soajsCreated
	_ = json.Unmarshal(r.Data, &c)
	if !soajsIDRE.MatchString(c.ID) {
		t.Fatalf("id: %s", res.Body)
	}
	if wantToken && (len(keys) != 2 || !soajsUUIDRE.MatchString(c.Token)) {
		t.Fatalf("want id and a UUID token: %s", res.Body)
	}
	if !wantToken && len(keys) != 1 {
		t.Fatalf("want the id only: %s", res.Body)
	}
	return c
}

// login signs in through indiqus' /auth/login on the same store.
func (s *soajsSite) login(identifier, pass string) *response {
	s.t.Helper()
	return s.postJSON("/auth/login", fmt.Sprintf(`{"username":%q,"password":%q}`, identifier, pass))
}

func (s *soajsSite) resetPassword(query, ctype, body string) *response {
	s.t.Helper()
	path := "/urac/resetPassword"
	if query != "" {
		path += "?" + query
	}
	return s.do(http.MethodPost, path, map[string]string{"Content-Type": ctype}, body)
}

func (s *soajsSite) validate(tok string) *response {
	s.t.Helper()
	// POST, as the confirmation page's button sends it.
	return s.do(http.MethodPost, "/urac/join/validate?token="+url.QueryEscape(tok), nil, "")
}

func TestSoajsDocumentExample(t *testing.T) { eachBackend(t, testSoajsDocumentExample) }

func testSoajsDocumentExample(t *testing.T, backend string) {
	s := startSoajs(t, backend, "")
	// As the document's curl sends it: a form, tId and tCode in the query.
	form := created(t, s.addForm(soajsDocQuery, soajsDocForm), true)
	// The same as JSON.
	js := created(t, s.addJSON(soajsDocQuery, strings.NewReplacer(`"john"`, `"jane"`, "johndoe@", "janedoe@").Replace(soajsDocJSON)), true)
	if form.ID == js.ID || form.Token == js.Token {
		t.Fatal("two users share an id or a token")
	}
	// Without a Content-Type, a body starting with "{" is JSON, else a form.
	created(t, s.addUser(rootAuth, soajsDocQuery, "", strings.NewReplacer(`"john"`, `"jim"`, "johndoe@", "jimdoe@").Replace(soajsDocJSON)), true)
	created(t, s.addUser(rootAuth, soajsDocQuery, "", strings.NewReplacer("john&", "joe&", "johndoe@", "joedoe@").Replace(soajsDocForm)), true)
	// tId and tCode may come in the body too.
	full := created(t, s.addJSON("", `{"tId":"`+soajsDBTN+`","tCode":"dbtn","username":"body_t","firstName":"B","lastName":"T","email":"bodyt@domain.com","groups":["administrator","user"],"status":"pendingNew","profile":"{ \"gender\": \"female\" }","pin":{"code":"1234","allowed":true}}`), true)
	if backend == backendRedis {
		// The record: the tenant, the login, the profile as an object.
		raw, err := s.rdb.Get(t.Context(), "{"+s.ns+"}:user:"+full.ID).Bytes()
		if err != nil {
			t.Fatal(err)
		}
		var u struct {
			Login        string                     `json:"login"`
			FirstName    string                     `json:"first_name"`
			TenantID     string                     `json:"tenant_id"`
			Status       string                     `json:"status"`
			PasswordHash string                     `json:"password_hash"`
			Attributes   map[string]json.RawMessage `json:"attributes"`
		}
		if err := json.Unmarshal(raw, &u); err != nil {
			t.Fatal(err)
		}
		if u.Login != "body_t" || u.FirstName != "B" || u.TenantID != soajsDBTN || u.Status != "pending" || u.PasswordHash != "" ||
			string(u.Attributes["profile"]) != `{"gender":"female"}` || string(u.Attributes["groups"]) != `["administrator","user"]` ||
			string(u.Attributes["pin"]) != `{"allowed":true}` {
			t.Fatalf("stored user: %s", raw)
		}
	}

	// Duplicates: the e-mail is 402, the username 410, both in any case.
	before := s.dataKeys()
	wantCodes(t, s.addForm(soajsDocQuery, strings.Replace(soajsDocForm, "username=john", "username=other", 1)), 200, 402)
	wantCodes(t, s.addForm(soajsDocQuery, strings.NewReplacer("username=john", "username=other", "johndoe@", "JohnDoe@").Replace(soajsDocForm)), 200, 402)
	res := wantCodes(t, s.addForm(soajsDocQuery, strings.Replace(soajsDocForm, "johndoe@domain.com", "new@domain.com", 1)), 200, 410)
	if m := res.Errors.Details[0].Message; m != "username taken, please choose another username" {
		t.Fatalf("410 message %q", m)
	}
	wantCodes(t, s.addForm(soajsDocQuery, strings.NewReplacer("username=john", "username=JOHN", "johndoe@", "new@").Replace(soajsDocForm)), 200, 410)
	if !equalStrings(before, s.dataKeys()) {
		t.Fatal("a refused request wrote records")
	}
}

func TestSoajsErrorCodes(t *testing.T) { eachBackend(t, testSoajsErrorCodes) }

func testSoajsErrorCodes(t *testing.T, backend string) {
	s := startSoajs(t, backend, "")
	created(t, s.addForm(soajsDocQuery, soajsDocForm), true)
	other := func(extra string) string {
		return "username=jane&firstName=Jane&lastName=Doe&email=jane@domain.com" + extra
	}
	otherJSON := func(extra string) string {
		return `{"username":"jane","firstName":"Jane","lastName":"Doe","email":"jane@domain.com"` + extra + `}`
	}
	before := s.dataKeys()
	for _, c := range []struct {
		name, query, ctype, body string
		codes                    []int
		message                  string
	}{
		{"missing username", soajsDocQuery, "form", "firstName=Jane&lastName=Doe&email=jane@domain.com", []int{172}, "Missing required field: username"},
		{"missing tId", "tCode=DBTN", "form", other(""), []int{172}, "Missing required field: tId"},
		{"username chars", soajsDocQuery, "form", strings.Replace(other(""), "jane", "ja.ne", 1), []int{173}, "Validation failed for field: username"},
		{"email syntax", soajsDocQuery, "json", strings.Replace(otherJSON(""), "jane@domain.com", "jane@", 1), []int{173}, "Validation failed for field: email"},
		{"firstName type", soajsDocQuery, "json", strings.Replace(otherJSON(""), `"Jane"`, `["Jane"]`, 1), []int{173}, "firstName must be a string"},
		{"existing e-mail", soajsDocQuery, "form", strings.Replace(other(""), "jane@domain.com", "johndoe@domain.com", 1), []int{402}, "User account already exists."},
		{"existing username", soajsDocQuery, "json", strings.Replace(otherJSON(""), `"jane"`, `"john"`, 1), []int{410}, "username taken, please choose another username"},
		{"password mismatch", soajsDocQuery, "form", other("&password=correct+horse+battery&confirmation=correct+horse"), []int{408}, "The password and its confirmation do not match"},
		{"weak password", soajsDocQuery, "json", otherJSON(`,"password":"short","confirmation":"short"`), []int{173}, "Validation failed for field: password"},
		{"profile as object", soajsDocQuery, "json", otherJSON(`,"profile":{"gender":"female"}`), []int{413}, "Invalid profile field provided. Profile should be a stringified object."},
		{"profile not an object", soajsDocQuery, "form", other("&profile=female"), []int{413}, ""},
		{"profile array", soajsDocQuery, "json", otherJSON(`,"profile":"[]"`), []int{413}, ""},
		{"profile broken", soajsDocQuery, "form", other(`&profile={"gender":"female"`), []int{413}, ""},
		{"group of another tenant", soajsDocQuery, "form", other("&groups=user&groups=sales"), []int{415}, "Unable to find group"},
		{"group of another tenant, qs style", soajsDocQuery, "form", other("&groups[]=sales"), []int{415}, ""},
		{"tenant mismatch", "tId=" + soajsDBTN + "&tCode=OTHR", "form", other(""), []int{611}, "invalid tenant id provided"},
		{"unknown tenant", "tId=000000000000000000000000&tCode=DBTN", "json", otherJSON(""), []int{611}, ""},
		{"tenant id not an id", "tId=DBTN&tCode=DBTN", "form", other(""), []int{611}, ""},
		{"status", soajsDocQuery, "form", other("&status=deleted"), []int{173}, "Validation failed for field: status"},
		{"pin without allowed", soajsDocQuery, "form", other("&pin[code]=1234"), []int{172}, "Missing required field: pin.allowed"},
		{"pin allowed not boolean", soajsDocQuery, "json", otherJSON(`,"pin":{"code":"1234","allowed":"yes"}`), []int{173}, "pin.allowed"},
		{"several", "tId=" + soajsDBTN + "&tCode=OTHR", "form", "firstName=Jane&email=jane@&profile=x&groups=nope&password=correct+horse+battery&confirmation=x", []int{611, 172, 172, 173, 413, 408}, "invalid tenant id provided"},
		{"several, JSON", soajsDocQuery, "json", `{"username":"a b","firstName":"","lastName":"Doe","email":"jane@domain.com","groups":["sales"],"status":"x","pin":{}}`, []int{173, 172, 415, 173, 172, 172}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			ct := map[string]string{"form": "application/x-www-form-urlencoded", "json": "application/json"}[c.ctype]
			r := wantCodes(t, s.addUser(rootAuth, c.query, ct, c.body), 200, c.codes...)
			if c.message != "" && !strings.Contains(r.Errors.Details[0].Message, c.message) {
				t.Fatalf("message %q lacks %q", r.Errors.Details[0].Message, c.message)
			}
		})
	}
	// Refusals the gateway answers, with their HTTP status.
	wantCodes(t, s.addUser(rootAuth, soajsDocQuery, "text/plain", soajsDocForm), 415, 905)
	wantCodes(t, s.addUser(rootAuth, soajsDocQuery, "application/json", `{"username":"jane",}`), 400, 173)
	wantCodes(t, s.addUser(rootAuth, soajsDocQuery, "application/x-www-form-urlencoded", "username=%zz"), 400, 173)
	wantCodes(t, s.addUser(rootAuth, soajsDocQuery, "application/json", `{"profile":"`+strings.Repeat("a", 70<<10)+`"}`), 413, 904)
	res := s.do(http.MethodGet, "/urac/admin/addUser", rootAuth, "")
	wantCodes(t, res, 405, 903)
	if res.Header.Get("Allow") != "POST" {
		t.Fatalf("Allow: %v", res.Header)
	}
	if !equalStrings(before, s.dataKeys()) {
		t.Fatal("a refused request wrote records")
	}
}

func TestSoajsAuth(t *testing.T) {
	s := startSoajs(t, backendRedis, "")
	before := s.dataKeys()
	for _, c := range []struct {
		name   string
		h      map[string]string
		status int
		code   int
	}{
		{"none", nil, 401, 901},
		{"wrong password", map[string]string{"Authorization": basicHeader("root", "wrong")}, 401, 901},
		{"unknown admin", map[string]string{"Authorization": basicHeader("nobody", "rootpw")}, 401, 901},
		{"garbage token", map[string]string{"x-access-token": "abc.def.ghi"}, 401, 901},
		{"admin without manage-users", map[string]string{"Authorization": basicHeader("viewer", "viewerpw")}, 403, 902},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, path := range []string{"/urac/admin/addUser?" + soajsDocQuery, "/urac/admin/tenant"} {
				h := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
				for k, v := range c.h {
					h[k] = v
				}
				res := s.do(http.MethodPost, path, h, soajsDocForm)
				wantCodes(t, res, c.status, c.code)
				if c.status == 401 && !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Basic ") {
					t.Fatalf("WWW-Authenticate: %v", res.Header)
				}
			}
			wantCodes(t, s.do(http.MethodGet, "/urac/admin/tenants", c.h, ""), c.status, c.code)
		})
	}
	if !equalStrings(before, s.dataKeys()) {
		t.Fatal("a refused request wrote records")
	}
	// An admin's access token (from /auth/login) works as x-access-token
	// and as Bearer.
	res := s.login("root", "rootpw")
	var env struct {
		Result struct {
			Token string `json:"user_token"`
		} `json:"result"`
	}
	if err := json.Unmarshal(res.Body, &env); err != nil || env.Result.Token == "" {
		t.Fatalf("admin login: %d %s", res.Status, res.Body)
	}
	created(t, s.addUser(map[string]string{"x-access-token": env.Result.Token}, soajsDocQuery, "application/x-www-form-urlencoded", soajsDocForm), true)
	created(t, s.addUser(map[string]string{"Authorization": "Bearer " + env.Result.Token}, soajsDocQuery, "application/x-www-form-urlencoded", strings.NewReplacer("john&", "jane&", "johndoe@", "jane@").Replace(soajsDocForm)), true)
}

func TestSoajsTokenFlows(t *testing.T) { eachBackend(t, testSoajsTokenFlows) }

func testSoajsTokenFlows(t *testing.T, backend string) {
	s := startSoajs(t, backend, "")
	const formCT = "application/x-www-form-urlencoded"

	// Added without a password: a set-password token.
	noPass := created(t, s.addForm(soajsDocQuery, soajsDocForm), true)
	if res := s.login("john", soajsPassword); res.Status != 401 {
		t.Fatalf("login before a password was set: %d %s", res.Status, res.Body)
	}
	// It is no activation token.
	wantCodes(t, s.validate(noPass.Token), 200, 406)
	// Password and confirmation must match; nothing is used up.
	wantCodes(t, s.resetPassword("token="+noPass.Token, formCT, "password=correct+horse+battery&confirmation=other"), 200, 408)
	wantCodes(t, s.resetPassword("token="+noPass.Token, formCT, "password=short&confirmation=short"), 200, 173)
	// As the framework calls it: token in the query, the rest a form.
	res := s.resetPassword("token="+noPass.Token, formCT, "password=correct+horse+battery&confirmation=correct+horse+battery")
	if r := decodeSoajs(t, res); res.Status != 200 || !r.Result || string(r.Data) != `{"id":"`+noPass.ID+`"}` {
		t.Fatalf("resetPassword: %d %s", res.Status, res.Body)
	}
	if res := s.login("john", soajsPassword); res.Status != 200 {
		t.Fatalf("login after resetPassword: %d %s", res.Status, res.Body)
	}
	if res := s.login("johndoe@domain.com", soajsPassword); res.Status != 200 {
		t.Fatalf("login by e-mail: %d %s", res.Status, res.Body)
	}
	// The token worked once.
	wantCodes(t, s.resetPassword("", "application/json", `{"token":"`+noPass.Token+`","password":"another horse battery","confirmation":"another horse battery"}`), 200, 406)
	if res := s.login("john", "another horse battery"); res.Status != 401 {
		t.Fatalf("the reused token changed the password: %d %s", res.Status, res.Body)
	}

	// Added with a password: an activation token.
	withPass := created(t, s.addJSON(soajsDocQuery, `{"username":"jane","firstName":"Jane","lastName":"Doe","email":"jane@domain.com","password":"`+soajsPassword+`","confirmation":"`+soajsPassword+`"}`), true)
	if res := s.login("jane", soajsPassword); res.Status != 403 {
		t.Fatalf("login before activation: %d %s", res.Status, res.Body)
	}
	// It is no set-password token.
	wantCodes(t, s.resetPassword("token="+withPass.Token, formCT, "password=another+horse+battery&confirmation=another+horse+battery"), 200, 406)
	for i := 0; i < 2; i++ { // the second call answers the same
		res := s.validate(withPass.Token)
		if r := decodeSoajs(t, res); res.Status != 200 || !r.Result || string(r.Data) != `{"id":"`+withPass.ID+`"}` {
			t.Fatalf("join/validate %d: %d %s", i, res.Status, res.Body)
		}
	}
	if res := s.login("jane", soajsPassword); res.Status != 200 {
		t.Fatalf("login after activation: %d %s", res.Status, res.Body)
	}

	// Unknown and missing tokens.
	wantCodes(t, s.validate("719b0aed-edd8-47d5-ada0-9e5f93cb8247"), 200, 406)
	wantCodes(t, s.validate(""), 200, 172)
	wantCodes(t, s.resetPassword("token=719b0aed-edd8-47d5-ada0-9e5f93cb8247", formCT, "password=correct+horse+battery&confirmation=correct+horse+battery"), 200, 406)
	wantCodes(t, s.resetPassword("", formCT, "password=correct+horse+battery"), 200, 172, 172)

	// Status active with a password: nothing left to do, no token.
	created(t, s.addForm(soajsDocQuery, "username=act&firstName=A&lastName=B&email=act@domain.com&status=active&password=correct+horse+battery&confirmation=correct+horse+battery"), false)
	if res := s.login("act", soajsPassword); res.Status != 200 {
		t.Fatalf("login of an active user: %d %s", res.Status, res.Body)
	}
	// Status inactive: no token that would activate the user.
	created(t, s.addForm(soajsDocQuery, "username=off&firstName=A&lastName=B&email=off@domain.com&status=inactive"), false)
	// With a password it still cannot sign in; the right password is told
	// why, a wrong one is not.
	created(t, s.addForm(soajsDocQuery, "username=off2&firstName=A&lastName=B&email=off2@domain.com&status=inactive&password=correct+horse+battery&confirmation=correct+horse+battery"), false)
	res = s.login("off2", soajsPassword)
	if _, e := decodeEnvelope(t, res); res.Status != 403 || e["code"] != "ACCOUNT_DISABLED" || e["message"] != "The account is disabled." {
		t.Fatalf("login of an inactive user: %d %s", res.Status, res.Body)
	}
	res = s.login("off2", soajsPassword+"x")
	if _, e := decodeEnvelope(t, res); res.Status != 401 || e["code"] != "INVALID_CREDENTIALS" {
		t.Fatalf("inactive user, wrong password: %d %s", res.Status, res.Body)
	}
	// Status active without a password: the user still needs one.
	act := created(t, s.addForm(soajsDocQuery, "username=act2&firstName=A&lastName=B&email=act2@domain.com&status=active"), true)
	if res := s.resetPassword("token="+act.Token, formCT, "password=correct+horse+battery&confirmation=correct+horse+battery"); res.Status != 200 {
		t.Fatalf("resetPassword: %d %s", res.Status, res.Body)
	}
	if res := s.login("act2", soajsPassword); res.Status != 200 {
		t.Fatalf("login: %d %s", res.Status, res.Body)
	}
}

func TestSoajsTenants(t *testing.T) { eachBackend(t, testSoajsTenants) }

func testSoajsTenants(t *testing.T, backend string) {
	s := startSoajs(t, backend, "")
	post := func(ctype, body string) *response {
		return s.do(http.MethodPost, "/urac/admin/tenant", map[string]string{"Authorization": rootAuth["Authorization"], "Content-Type": ctype}, body)
	}
	res := post("application/json", `{"code":"NEWT","name":"New Tenant","groups":["staff","staff","ops"]}`)
	r := decodeSoajs(t, res)
	var tn struct {
		ID     string   `json:"id"`
		Code   string   `json:"code"`
		Name   string   `json:"name"`
		Groups []string `json:"groups"`
	}
	if err := json.Unmarshal(r.Data, &tn); res.Status != 200 || err != nil || !soajsIDRE.MatchString(tn.ID) || tn.Code != "NEWT" || tn.Name != "New Tenant" || !slices.Equal(tn.Groups, []string{"staff", "ops"}) {
		t.Fatalf("tenant: %d %s", res.Status, res.Body)
	}
	// A form, with the id given.
	res = post("application/x-www-form-urlencoded", "id=5551aca9e179c39b760f7a1c&code=FORM&name=Form+Tenant")
	if r := decodeSoajs(t, res); res.Status != 200 || string(r.Data) != `{"id":"5551aca9e179c39b760f7a1c","code":"FORM","name":"Form Tenant","groups":[]}` {
		t.Fatalf("tenant by form: %d %s", res.Status, res.Body)
	}
	// Users join the new tenant and its groups.
	created(t, s.addForm("tId="+tn.ID+"&tCode=newt", soajsDocForm+"&groups=ops"), true)

	before := s.dataKeys()
	wantCodes(t, post("application/json", `{"code":"dbtn","name":"Again"}`), 200, 612)
	wantCodes(t, post("application/json", `{"id":"`+soajsDBTN+`","code":"FRESH","name":"Again"}`), 200, 613)
	wantCodes(t, post("application/json", `{"name":"No code","id":"nope"}`), 200, 173, 172)
	wantCodes(t, post("application/x-www-form-urlencoded", "code=a+b&groups[x]=1"), 200, 173, 172, 173)
	if !equalStrings(before, s.dataKeys()) {
		t.Fatal("a refused request wrote records")
	}

	res = s.do(http.MethodGet, "/urac/admin/tenants", rootAuth, "")
	r = decodeSoajs(t, res)
	var list []struct {
		ID     string   `json:"id"`
		Code   string   `json:"code"`
		Name   string   `json:"name"`
		Groups []string `json:"groups"`
	}
	if err := json.Unmarshal(r.Data, &list); res.Status != 200 || err != nil || len(list) != 4 {
		t.Fatalf("tenants: %d %s", res.Status, res.Body)
	}
	var codes []string
	for _, x := range list {
		codes = append(codes, x.Code)
	}
	if !slices.Equal(codes, []string{"DBTN", "FORM", "NEWT", "OTHR"}) || list[0].ID != soajsDBTN || list[0].Name != "Demo Tenant" || !slices.Equal(list[0].Groups, []string{"administrator", "user"}) {
		t.Fatalf("tenants: %s", res.Body)
	}
}

func TestSoajsStoreOutage(t *testing.T) {
	own := startOwnRedis(t)
	s := startSoajs(t, own.URL(0), "")
	created(t, s.addForm(soajsDocQuery, soajsDocForm), true)

	// Redis refuses writes: the user is not created, nothing is written.
	ctx := t.Context()
	before := s.dataKeys()
	if err := s.rdb.ConfigSet(ctx, "min-replicas-to-write", "1").Err(); err != nil {
		t.Fatal(err)
	}
	res := s.addForm(soajsDocQuery, strings.NewReplacer("john&", "jane&", "johndoe@", "jane@").Replace(soajsDocForm))
	if err := s.rdb.ConfigSet(ctx, "min-replicas-to-write", "0").Err(); err != nil {
		t.Fatal(err)
	}
	r := wantCodes(t, res, 503, 400)
	if r.Errors.Details[0].Message != "Database connection error" || res.Header.Get("Retry-After") == "" {
		t.Fatalf("outage reply: %v %s", res.Header, res.Body)
	}
	if !equalStrings(before, s.dataKeys()) {
		t.Fatal("a failed write left records behind")
	}

	// Redis is gone: the tenant cannot even be read.
	own.Kill()
	wantCodes(t, s.addForm(soajsDocQuery, strings.NewReplacer("john&", "jim&", "johndoe@", "jim@").Replace(soajsDocForm)), 503, 400)
	wantCodes(t, s.validate("719b0aed-edd8-47d5-ada0-9e5f93cb8247"), 503, 400)
	if err := own.Restart(); err != nil {
		t.Fatal(err)
	}
}
