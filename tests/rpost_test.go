package tests

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// docRpostSample is the document's sample request as published; its
// RegistrationApp "[App]" is a placeholder, but a valid string of at most
// 30 characters, so it is sent as written.
const docRpostSample = `{
"Email": "user@company.com",
"Password": "Secret007",
"ConfirmPassword": "Secret007",
"FirstName": "John",
"LastName": "Smith",
"PhoneNumber": "3102100990",
"AlternateEmail": null,
"ConfirmationCallbackUrl": null,
"RegistrationApp": "[App]",
"Language": "en-us",
"TimeZone": "US Eastern Standard Time",
"NotificationEmail": null,
"Country": null,
"CompanyName": null,
"Industry": null,
"RPostTermCondition": null,
"ClientId": null,
"CustomerCode": null,
"IsAdminUser": null,
"ActivateViaCallbackUrl": null,
"IPAddress": null,
"OriginatingURL": null,
"RegistrationAppSite": null
}`

// rpostHandler mounts rpost at its documented prefix with two allowed
// callback origins, and indiqus beside it for its POST /auth/login (rpost
// documents no login route; the engine's login is shared).
const rpostHandler = `register rpost /api/v1 {
		callback_origins https://app.example.com http://localhost:3000
		rate_limit register off
		%s
	}
	register indiqus /api`

type rpostSite struct {
	*site
	sink *smtpSink
}

func startRpost(t *testing.T, backend, handlerExtra string) *rpostSite {
	t.Helper()
	sink := startSMTP(t)
	s := startSite(t, backend, "smtp "+sink.URL(), fmt.Sprintf(rpostHandler, handlerExtra))
	return &rpostSite{site: s, sink: sink}
}

const rpostJSON = "application/json; charset=UTF-8"

func (s *rpostSite) register(contentType, body string) *response {
	s.t.Helper()
	return s.do(http.MethodPost, "/api/v1/Account/Register", map[string]string{"Content-Type": contentType}, body)
}

// get fetches path without following redirects.
func (s *rpostSite) get(path string) *response {
	s.t.Helper()
	c := *s.client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	res, err := c.Get(s.base + path)
	if err != nil {
		s.t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	out := &response{Status: res.StatusCode, Header: res.Header, Body: []byte(readAll(s.t, res))}
	s.conform(http.MethodGet, path, res.Request.Header, nil, out)
	return out
}

// activate POSTs to path (the mailed link's path and query), as the
// confirmation page's button does, without following redirects.
func (s *rpostSite) activate(path string) *response {
	s.t.Helper()
	c := *s.client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	res, err := c.Post(s.base+path, "", nil)
	if err != nil {
		s.t.Fatalf("POST %s: %v", path, err)
	}
	defer res.Body.Close()
	out := &response{Status: res.StatusCode, Header: res.Header, Body: []byte(readAll(s.t, res))}
	s.conform(http.MethodPost, path, res.Request.Header, nil, out)
	return out
}

// login tries indiqus' /auth/login and returns the status and error code.
func (s *rpostSite) login(email, pass string) (int, string) {
	s.t.Helper()
	res := s.postJSON("/auth/login", fmt.Sprintf(`{"email":%q,"password":%q}`, email, pass))
	var env struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
		Result struct {
			Token string `json:"user_token"`
		} `json:"result"`
	}
	if err := json.Unmarshal(res.Body, &env); err != nil {
		s.t.Fatalf("login reply: %s", res.Body)
	}
	if res.Status == 200 && env.Result.Token == "" {
		s.t.Fatalf("login without token: %s", res.Body)
	}
	return res.Status, env.Error.Code
}

// rpostBody is the sample with fields replaced (value "<absent>" drops the
// property; other values are JSON).
func rpostBody(fields map[string]string) string {
	body := docRpostSample
	for k, v := range fields {
		body = withField(body, k, v)
	}
	return body
}

var (
	rpostActivateRE = regexp.MustCompile(`https?://[^\s"<>]+/api/v1/Account/Activate\?code=[A-Za-z0-9_%-]+`)
	userIDRE        = regexp.MustCompile(`^[0-9a-f]{24}$`)
)

// expectRegistered checks the success reply and returns the user id.
func expectRegistered(t *testing.T, res *response, email string) string {
	t.Helper()
	if res.Status != 200 {
		t.Fatalf("register %s: %d %s", email, res.Status, res.Body)
	}
	var got struct {
		UserID              string `json:"UserId"`
		Email               string `json:"Email"`
		Status              string `json:"Status"`
		ActivationEmailSent bool   `json:"ActivationEmailSent"`
		Message             string `json:"Message"`
	}
	if err := json.Unmarshal(res.Body, &got); err != nil || !userIDRE.MatchString(got.UserID) || got.Email != email ||
		got.Status != "PendingActivation" || !got.ActivationEmailSent || !strings.Contains(got.Message, email) {
		t.Fatalf("register reply: %s", res.Body)
	}
	want := fmt.Sprintf(`{"UserId":%q,"Email":%q,"Status":"PendingActivation","ActivationEmailSent":true,"Message":%q}`,
		got.UserID, email, "Registration successful. An e-mail with an activation link has been sent to "+email+".")
	if string(res.Body) != want {
		t.Fatalf("register reply\n got %s\nwant %s", res.Body, want)
	}
	return got.UserID
}

// mailLink waits for the mail to rcpt and returns the link matching re.
func (s *rpostSite) mailLink(rcpt string, re *regexp.Regexp) string {
	s.t.Helper()
	m := s.sink.waitFor(rcpt, 30*time.Second)
	hdr, text, html := m.parts(s.t)
	if hdr.Get("Subject") != "Activate your account" || !strings.Contains(hdr.Get("From"), "register@example.com") {
		s.t.Fatalf("headers: %v", hdr)
	}
	link := re.FindString(text)
	if link == "" || !strings.Contains(html, strings.ReplaceAll(link, "&", "&amp;")) {
		s.t.Fatalf("no link %s in\n%s\n%s", re, text, html)
	}
	return link
}

func pathOf(t *testing.T, link string) string {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	return u.RequestURI()
}

const activatedBody = `{"Message":"Your account has been activated."}`

func TestRpostSample(t *testing.T) { eachBackend(t, testRpostSample) }

func testRpostSample(t *testing.T, backend string) {
	s := startRpost(t, backend, "")
	res := s.register(rpostJSON, docRpostSample)
	expectRegistered(t, res, "user@company.com")

	// Activation mode 1 without a callback: the link points here.
	link := s.mailLink("user@company.com", rpostActivateRE)
	if !strings.HasPrefix(link, s.base+"/api/v1/Account/Activate?code=") {
		t.Fatalf("link %q is not built from the request's host", link)
	}
	// Pending: the password is right, the account is not active.
	if st, code := s.login("user@company.com", "Secret007"); st != 403 || code != "ACCOUNT_NOT_ACTIVATED" {
		t.Fatalf("login before activation: %d %s", st, code)
	}
	for i := 0; i < 2; i++ { // replaying the code answers the same
		if res := s.activate(pathOf(t, link)); res.Status != 200 || string(res.Body) != activatedBody {
			t.Fatalf("activate %d: %d %s", i, res.Status, res.Body)
		}
	}
	if st, code := s.login("user@company.com", "Secret007"); st != 200 {
		t.Fatalf("login after activation: %d %s", st, code)
	}

	// Duplicate e-mail (any case): a ModelState error.
	before := s.dataKeys()
	res = s.register(rpostJSON, rpostBody(map[string]string{"Email": `"User@Company.com"`}))
	if res.Status != 400 || string(res.Body) != `{"Message":"The request is invalid.","ModelState":{"model.Email":["An account with this e-mail address already exists."]}}` {
		t.Fatalf("duplicate: %d %s", res.Status, res.Body)
	}

	// Property names bind case-insensitively; unknown ones are ignored.
	lower := `{"email":"lower@company.com","password":"Secret007","confirmpassword":"Secret007","firstname":"Lo","LASTNAME":"Wer",
		"registrationApp":"web","language":"EN-US","timezone":"us eastern standard time","country":"us","Extra":{"x":[1]}}`
	expectRegistered(t, s.register("application/json", lower), "lower@company.com")
	// text/json is accepted too.
	expectRegistered(t, s.register("text/json", rpostBody(map[string]string{"Email": `"textjson@company.com"`})), "textjson@company.com")
	s.sink.waitFor("lower@company.com", 30*time.Second)
	s.sink.waitFor("textjson@company.com", 30*time.Second)
	if after := s.dataKeys(); len(after) <= len(before) {
		t.Fatalf("registrations not stored: %d keys -> %d", len(before), len(after))
	}
}

// modelStateBody is the exact reply for one failing property.
func modelStateBody(key string, msgs ...string) string {
	b, _ := json.Marshal(msgs)
	return `{"Message":"The request is invalid.","ModelState":{"` + key + `":` + strings.ReplaceAll(string(b), `\u0026`, "&") + `}}`
}

const rpostPolicyMsg = "Password should be a minimum of 8 and maximum of 25 characters, including at least one uppercase letter, one lowercase letter, one number, and no spaces."

func TestRpostValidation(t *testing.T) {
	s := startRpost(t, backendRedis, "")
	long := func(n int) string { return `"` + strings.Repeat("a", n) + `"` }
	cases := []struct {
		name   string
		fields map[string]string
		key    string
		msgs   []string
	}{
		{"Email absent", map[string]string{"Email": "<absent>"}, "model.Email", []string{"The Email field is required."}},
		{"Email null", map[string]string{"Email": "null"}, "model.Email", []string{"The Email field is required."}},
		{"Email blank", map[string]string{"Email": `"  "`}, "model.Email", []string{"The Email field is required."}},
		{"Email invalid", map[string]string{"Email": `"user@"`}, "model.Email", []string{"The Email field is not a valid e-mail address."}},
		{"Email too long", map[string]string{"Email": `"` + strings.Repeat("a", 251) + `@x.com"`}, "model.Email", []string{"The field Email must be a string with a maximum length of 256.", "The Email field is not a valid e-mail address."}},
		{"Email number", map[string]string{"Email": `42`}, "model.Email", []string{"Error converting value 42 to type 'System.String'. Path 'Email', line 1, position 71."}},
		{"Password absent", map[string]string{"Password": "<absent>", "ConfirmPassword": "<absent>"}, "model.Password", []string{"The Password field is required."}},
		{"Password short", map[string]string{"Password": `"Sec007"`, "ConfirmPassword": `"Sec007"`}, "model.Password", []string{rpostPolicyMsg}},
		{"Password long", map[string]string{"Password": `"Secret007Secret007Secret00"`, "ConfirmPassword": `"Secret007Secret007Secret00"`}, "model.Password", []string{rpostPolicyMsg}},
		{"Password no upper", map[string]string{"Password": `"secret007"`, "ConfirmPassword": `"secret007"`}, "model.Password", []string{rpostPolicyMsg}},
		{"Password no lower", map[string]string{"Password": `"SECRET007"`, "ConfirmPassword": `"SECRET007"`}, "model.Password", []string{rpostPolicyMsg}},
		{"Password no digit", map[string]string{"Password": `"SecretPwd"`, "ConfirmPassword": `"SecretPwd"`}, "model.Password", []string{rpostPolicyMsg}},
		{"Password space", map[string]string{"Password": `"Secret 007"`, "ConfirmPassword": `"Secret 007"`}, "model.Password", []string{rpostPolicyMsg}},
		{"ConfirmPassword", map[string]string{"ConfirmPassword": `"Secret008"`}, "model.ConfirmPassword", []string{"'ConfirmPassword' and 'Password' do not match."}},
		{"FirstName absent", map[string]string{"FirstName": "<absent>"}, "model.FirstName", []string{"The FirstName field is required."}},
		{"FirstName long", map[string]string{"FirstName": long(256)}, "model.FirstName", []string{"The field FirstName must be a string with a maximum length of 255."}},
		{"LastName empty", map[string]string{"LastName": `""`}, "model.LastName", []string{"The LastName field is required."}},
		{"LastName long", map[string]string{"LastName": long(256)}, "model.LastName", []string{"The field LastName must be a string with a maximum length of 255."}},
		{"PhoneNumber long", map[string]string{"PhoneNumber": long(101)}, "model.PhoneNumber", []string{"The field PhoneNumber must be a string with a maximum length of 100."}},
		{"AlternateEmail invalid", map[string]string{"AlternateEmail": `"alt@@company.com"`}, "model.AlternateEmail", []string{"The AlternateEmail field is not a valid e-mail address."}},
		{"AlternateEmail long", map[string]string{"AlternateEmail": `"` + strings.Repeat("b", 251) + `@x.com"`}, "model.AlternateEmail", []string{"The field AlternateEmail must be a string with a maximum length of 256.", "The AlternateEmail field is not a valid e-mail address."}},
		{"ConfirmationCallbackUrl long", map[string]string{"ConfirmationCallbackUrl": `"https://app.example.com/` + strings.Repeat("c", 227) + `"`}, "model.ConfirmationCallbackUrl", []string{"The field ConfirmationCallbackUrl must be a string with a maximum length of 250."}},
		{"RegistrationApp absent", map[string]string{"RegistrationApp": "<absent>"}, "model.RegistrationApp", []string{"The RegistrationApp field is required."}},
		{"RegistrationApp long", map[string]string{"RegistrationApp": long(31)}, "model.RegistrationApp", []string{"The field RegistrationApp must be a string with a maximum length of 30."}},
		{"Language absent", map[string]string{"Language": "<absent>"}, "model.Language", []string{"The Language field is required."}},
		{"Language long", map[string]string{"Language": long(11)}, "model.Language", []string{"The field Language must be a string with a maximum length of 10."}},
		{"Language unknown", map[string]string{"Language": `"xx-yy"`}, "model.Language", []string{"The value 'xx-yy' is not valid for Language; use a Code from GET /api/v1/Lookup/Language."}},
		{"Language underscore", map[string]string{"Language": `"en_us"`}, "model.Language", []string{"The value 'en_us' is not valid for Language; use a Code from GET /api/v1/Lookup/Language."}},
		{"TimeZone long", map[string]string{"TimeZone": long(101)}, "model.TimeZone", []string{"The field TimeZone must be a string with a maximum length of 100."}},
		{"TimeZone unknown", map[string]string{"TimeZone": `"America/New_York"`}, "model.TimeZone", []string{"The value 'America/New_York' is not valid for TimeZone; use an Id from GET /api/v1/Lookup/TimeZone."}},
		{"NotificationEmail invalid", map[string]string{"NotificationEmail": `"notify"`}, "model.NotificationEmail", []string{"The NotificationEmail field is not a valid e-mail address."}},
		{"NotificationEmail long", map[string]string{"NotificationEmail": `"` + strings.Repeat("n", 250) + `@x.com"`}, "model.NotificationEmail", []string{"The field NotificationEmail must be a string with a maximum length of 255.", "The NotificationEmail field is not a valid e-mail address."}},
		{"Country long", map[string]string{"Country": `"USA123"`}, "model.Country", []string{"The field Country must be a string with a maximum length of 5."}},
		{"Country unknown", map[string]string{"Country": `"XX"`}, "model.Country", []string{"The value 'XX' is not valid for Country; use an ISO 3166-1 country code."}},
		{"CompanyName long", map[string]string{"CompanyName": long(251)}, "model.CompanyName", []string{"The field CompanyName must be a string with a maximum length of 250."}},
		{"Industry long", map[string]string{"Industry": long(51)}, "model.Industry", []string{"The field Industry must be a string with a maximum length of 50."}},
		{"RPostTermCondition string", map[string]string{"RPostTermCondition": `"yes"`}, "model.RPostTermCondition", []string{"Could not convert string to boolean: yes. Path 'RPostTermCondition', line 1, position 357."}},
		{"IsAdminUser number", map[string]string{"IsAdminUser": `1`}, "model.IsAdminUser", []string{"Error converting value 1 to type 'System.Boolean'. Path 'IsAdminUser', line 1, position 219."}},
		{"ActivateViaCallbackUrl object", map[string]string{"ActivateViaCallbackUrl": `{}`}, "model.ActivateViaCallbackUrl", []string{"Unexpected character encountered while parsing value: {. Path 'ActivateViaCallbackUrl', line 1, position 26."}},
		{"ClientId bool", map[string]string{"ClientId": `true`}, "model.ClientId", []string{"Error converting value True to type 'System.String'. Path 'ClientId', line 1, position 116."}},
		{"CustomerCode array", map[string]string{"CustomerCode": `["a"]`}, "model.CustomerCode", []string{"Unexpected character encountered while parsing value: [. Path 'CustomerCode', line 1, position 163."}},
	}
	before := s.dataKeys()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := s.register(rpostJSON, rpostBody(c.fields))
			want := modelStateBody(c.key, c.msgs...)
			if res.Status != 400 || !positionless(string(res.Body), want) {
				t.Fatalf("%d\n got %s\nwant %s", res.Status, res.Body, want)
			}
		})
	}
	if !equalStrings(before, s.dataKeys()) {
		t.Fatal("invalid requests changed the store")
	}
	if s.sink.count() != 0 {
		t.Fatal("invalid requests sent mail")
	}
}

// positionless compares replies ignoring Json.NET-style positions, which
// depend on the order withField writes the properties in (sorted).
var positionRE = regexp.MustCompile(`line \d+, position \d+`)

func positionless(got, want string) bool {
	if !strings.Contains(want, "position") {
		return got == want
	}
	return positionRE.ReplaceAllString(got, "line L, position P") == positionRE.ReplaceAllString(want, "line L, position P")
}

func TestRpostWireErrors(t *testing.T) { eachBackend(t, testRpostWireErrors) }

func testRpostWireErrors(t *testing.T, backend string) {
	s := startRpost(t, backend, "")
	before := s.dataKeys()
	// Every failing property at once, in the model's order.
	res := s.register(rpostJSON, `{"Email":"nope","Password":"short","ConfirmPassword":"other","Language":"xx","Country":"ZZ","IsAdminUser":"maybe",
"ConfirmationCallbackUrl":"javascript:alert(document.cookie)"}`)
	want := `{"Message":"The request is invalid.","ModelState":{` +
		`"model.Email":["The Email field is not a valid e-mail address."],` +
		`"model.Password":["` + rpostPolicyMsg + `"],` +
		`"model.ConfirmPassword":["'ConfirmPassword' and 'Password' do not match."],` +
		`"model.FirstName":["The FirstName field is required."],` +
		`"model.LastName":["The LastName field is required."],` +
		`"model.ConfirmationCallbackUrl":["The ConfirmationCallbackUrl field is not a valid fully-qualified http or https URL."],` +
		`"model.RegistrationApp":["The RegistrationApp field is required."],` +
		`"model.Language":["The value 'xx' is not valid for Language; use a Code from GET /api/v1/Lookup/Language."],` +
		`"model.Country":["The value 'ZZ' is not valid for Country; use an ISO 3166-1 country code."],` +
		`"model.IsAdminUser":["Could not convert string to boolean: maybe. Path 'IsAdminUser', line 1, position 113."]}}`
	if res.Status != 400 || string(res.Body) != want {
		t.Fatalf("several: %d\n got %s\nwant %s", res.Status, res.Body, want)
	}
	// Malformed JSON: the parse error under "model", with its position.
	res = s.register(rpostJSON, "{\n\"Email\": \"user@company.com\",\n}")
	if res.Status != 400 || string(res.Body) != `{"Message":"The request is invalid.","ModelState":{"model":["invalid JSON at line 3, column 1: trailing comma before '}'"]}}` {
		t.Fatalf("trailing comma: %d %s", res.Status, res.Body)
	}
	res = s.register(rpostJSON, "")
	if res.Status != 400 || string(res.Body) != `{"Message":"The request is invalid.","ModelState":{"model":["invalid JSON: request body is empty"]}}` {
		t.Fatalf("empty: %d %s", res.Status, res.Body)
	}
	res = s.register(rpostJSON, `["Email"]`)
	if res.Status != 400 || !strings.Contains(string(res.Body), `"model":["invalid JSON at line 1, column 1: request body must be a JSON object"]`) {
		t.Fatalf("array: %d %s", res.Status, res.Body)
	}
	// Other errors: {"Message": ...} with the status.
	res = s.register("text/plain", docRpostSample)
	if res.Status != 415 || string(res.Body) != `{"Message":"The request entity's media type 'text/plain' is not supported for this resource."}` {
		t.Fatalf("415: %d %s", res.Status, res.Body)
	}
	res = s.do(http.MethodPut, "/api/v1/Account/Register", map[string]string{"Content-Type": rpostJSON}, docRpostSample)
	if res.Status != 405 || res.Header.Get("Allow") != "POST" || string(res.Body) != `{"Message":"The requested resource does not support http method 'PUT'."}` {
		t.Fatalf("405: %d %v %s", res.Status, res.Header, res.Body)
	}
	res = s.register(rpostJSON, `{"CompanyName":"`+strings.Repeat("x", 70<<10)+`"}`)
	if res.Status != 413 || !strings.HasPrefix(string(res.Body), `{"Message":"request body is larger than`) {
		t.Fatalf("413: %d %.200s", res.Status, res.Body)
	}
	// Callback URLs: unlisted origins and other schemes.
	for _, cb := range []string{
		"https://evil.example.net/welcome",
		"http://app.example.com/welcome", // listed as https only
		"https://app.example.com.evil.example.net/",
		"javascript:alert(1)",
		"data:text/html,<script>alert(1)</script>",
		"ftp://app.example.com/x",
		"https://user:pw@app.example.com/x",
		"/relative/path",
	} {
		res := s.register(rpostJSON, rpostBody(map[string]string{"ConfirmationCallbackUrl": fmt.Sprintf("%q", cb)}))
		if res.Status != 400 || !strings.HasPrefix(string(res.Body), `{"Message":"The request is invalid.","ModelState":{"model.ConfirmationCallbackUrl":["`) {
			t.Fatalf("callback %q: %d %s", cb, res.Status, res.Body)
		}
	}
	if !equalStrings(before, s.dataKeys()) {
		t.Fatal("failed requests changed the store")
	}
	if res := s.activate("/api/v1/Account/Activate?code=nope"); res.Status != 400 || string(res.Body) != `{"Message":"The activation code is invalid or has expired."}` {
		t.Fatalf("bad code: %d %s", res.Status, res.Body)
	}
	if res := s.activate("/api/v1/Account/Activate"); res.Status != 400 || string(res.Body) != `{"Message":"The activation code is invalid or has expired."}` {
		t.Fatalf("no code: %d %s", res.Status, res.Body)
	}
}

func TestRpostNoCallbackOrigins(t *testing.T) {
	sink := startSMTP(t)
	s := startSite(t, backendRedis, "smtp "+sink.URL(), "register rpost")
	before := s.dataKeys()
	res := s.do(http.MethodPost, "/api/v1/Account/Register", map[string]string{"Content-Type": rpostJSON},
		rpostBody(map[string]string{"ConfirmationCallbackUrl": `"https://app.example.com/welcome"`}))
	if res.Status != 400 || string(res.Body) != modelStateBody("model.ConfirmationCallbackUrl", "The ConfirmationCallbackUrl field is not accepted: no callback origins are configured on this server.") {
		t.Fatalf("%d %s", res.Status, res.Body)
	}
	if !equalStrings(before, s.dataKeys()) {
		t.Fatal("store changed")
	}
	// Without a callback the registration works (documented prefix).
	res = s.do(http.MethodPost, "/api/v1/Account/Register", map[string]string{"Content-Type": rpostJSON}, docRpostSample)
	expectRegistered(t, res, "user@company.com")
}

func TestRpostLookups(t *testing.T) {
	s := startRpost(t, backendRedis, "")
	res := s.get("/api/v1/Lookup/Language")
	if res.Status != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("languages: %d %v", res.Status, res.Header)
	}
	var langs []map[string]string
	if err := json.Unmarshal(res.Body, &langs); err != nil || len(langs) < 100 {
		t.Fatalf("languages: %v %.200s", err, res.Body)
	}
	found := false
	for _, l := range langs {
		if len(l) != 2 || l["Code"] == "" || l["Name"] == "" {
			t.Fatalf("language entry %v", l)
		}
		if l["Code"] == "en-us" && l["Name"] == "English (United States)" {
			found = true
		}
	}
	if !found {
		t.Fatal("en-us missing")
	}
	res = s.get("/api/v1/Lookup/TimeZone")
	var zones []struct {
		ID          string   `json:"Id"`
		DisplayName string   `json:"DisplayName"`
		Iana        []string `json:"Iana"`
	}
	if res.Status != 200 || json.Unmarshal(res.Body, &zones) != nil || len(zones) < 100 {
		t.Fatalf("time zones: %d %.200s", res.Status, res.Body)
	}
	found = false
	for _, z := range zones {
		if z.ID == "US Eastern Standard Time" {
			found = strings.HasPrefix(z.DisplayName, "(UTC-05:00) ") && len(z.Iana) > 0 && z.Iana[0] == "America/Indianapolis"
		}
	}
	if !found {
		t.Fatalf("US Eastern Standard Time missing or wrong")
	}
	// Every listed value is accepted by Register (a few, to keep it quick).
	for i, z := range []string{zones[0].ID, zones[len(zones)-1].ID} {
		l := langs[i*(len(langs)-1)]["Code"]
		email := fmt.Sprintf("lookup%d@company.com", i)
		res := s.register(rpostJSON, rpostBody(map[string]string{"Email": fmt.Sprintf("%q", email), "TimeZone": fmt.Sprintf("%q", z), "Language": fmt.Sprintf("%q", l)}))
		expectRegistered(t, res, email)
	}
	if res := s.do(http.MethodPost, "/api/v1/Lookup/Language", nil, ""); res.Status != 405 || res.Header.Get("Allow") != "GET" {
		t.Fatalf("POST lookup: %d %s", res.Status, res.Body)
	}
}

func TestRpostActivationRedirect(t *testing.T) { eachBackend(t, testRpostActivationRedirect) }

func testRpostActivationRedirect(t *testing.T, backend string) {
	s := startRpost(t, backend, "")
	const cb = "https://app.example.com/welcome?src=mail"
	res := s.register(rpostJSON, rpostBody(map[string]string{"Email": `"redirect@company.com"`, "ConfirmationCallbackUrl": fmt.Sprintf("%q", cb)}))
	expectRegistered(t, res, "redirect@company.com")
	link := s.mailLink("redirect@company.com", rpostActivateRE)
	if st, code := s.login("redirect@company.com", "Secret007"); st != 403 || code != "ACCOUNT_NOT_ACTIVATED" {
		t.Fatalf("login before activation: %d %s", st, code)
	}
	for i := 0; i < 2; i++ { // the replayed code redirects the same
		res := s.activate(pathOf(t, link))
		if res.Status != http.StatusFound || res.Header.Get("Location") != cb {
			t.Fatalf("activate %d: %d %v %s", i, res.Status, res.Header, res.Body)
		}
	}
	if st, code := s.login("redirect@company.com", "Secret007"); st != 200 {
		t.Fatalf("login after activation: %d %s", st, code)
	}
}

func TestRpostActivateViaCallback(t *testing.T) { eachBackend(t, testRpostActivateViaCallback) }

func testRpostActivateViaCallback(t *testing.T, backend string) {
	s := startRpost(t, backend, "")
	const cb = "http://localhost:3000/activate?app=web&code=stale#done"
	res := s.register(rpostJSON, rpostBody(map[string]string{
		"Email": `"via@company.com"`, "ConfirmationCallbackUrl": fmt.Sprintf("%q", cb), "ActivateViaCallbackUrl": "true",
	}))
	expectRegistered(t, res, "via@company.com")
	// The mail links to the app, the code appended; the rest of the query
	// and the fragment kept, a stale code replaced.
	link := s.mailLink("via@company.com", regexp.MustCompile(`http://localhost:3000/activate\?app=web&code=[A-Za-z0-9_%-]+#done`))
	u, _ := url.Parse(link)
	code := u.Query().Get("code")
	if len(code) < 40 || code == "stale" {
		t.Fatalf("code %q", code)
	}
	if st, ec := s.login("via@company.com", "Secret007"); st != 403 || ec != "ACCOUNT_NOT_ACTIVATED" {
		t.Fatalf("login before activation: %d %s", st, ec)
	}
	// The app calls Activate itself, asking for JSON, and gets JSON, not
	// a redirect to itself.
	for i := 0; i < 2; i++ {
		res := s.do(http.MethodGet, "/api/v1/Account/Activate?code="+url.QueryEscape(code), map[string]string{"Accept": "application/json"}, "")
		if res.Status != 200 || string(res.Body) != activatedBody {
			t.Fatalf("activate %d: %d %s", i, res.Status, res.Body)
		}
	}
	if st, ec := s.login("via@company.com", "Secret007"); st != 200 {
		t.Fatalf("login after activation: %d %s", st, ec)
	}
	// ActivateViaCallbackUrl without a callback falls back to the link here.
	res = s.register(rpostJSON, rpostBody(map[string]string{"Email": `"viano@company.com"`, "ActivateViaCallbackUrl": "true"}))
	expectRegistered(t, res, "viano@company.com")
	s.mailLink("viano@company.com", rpostActivateRE)
}

func TestRpostExpiredCode(t *testing.T) { eachBackend(t, testRpostExpiredCode) }

func testRpostExpiredCode(t *testing.T, backend string) {
	s := startRpost(t, backend, "link_ttl 1s")
	expectRegistered(t, s.register(rpostJSON, docRpostSample), "user@company.com")
	link := s.mailLink("user@company.com", rpostActivateRE)
	time.Sleep(1500 * time.Millisecond)
	if res := s.activate(pathOf(t, link)); res.Status != 400 || string(res.Body) != `{"Message":"The activation code is invalid or has expired."}` {
		t.Fatalf("expired: %d %s", res.Status, res.Body)
	}
	if st, code := s.login("user@company.com", "Secret007"); st != 403 || code != "ACCOUNT_NOT_ACTIVATED" {
		t.Fatalf("login with an expired code: %d %s", st, code)
	}
}
