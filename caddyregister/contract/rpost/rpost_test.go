package rpost

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/caddyregister/caddyregister/caddyregister/contract"
	"github.com/caddyregister/caddyregister/caddyregister/password"
)

type recorder struct {
	h      http.Header
	status int
	body   []byte
}

func (r *recorder) Header() http.Header {
	if r.h == nil {
		r.h = http.Header{}
	}
	return r.h
}
func (r *recorder) WriteHeader(s int) { r.status = s }
func (r *recorder) Write(b []byte) (int, error) {
	r.body = append(r.body, b...)
	return len(b), nil
}

func TestDocSampleIsValid(t *testing.T) {
	c := testContract(t)
	f, be, err := bind([]byte(docSample))
	if err != nil {
		t.Fatal(err)
	}
	if v := c.val.validate(f, be); v != nil {
		t.Fatalf("the sample fails: %v", v.Fields)
	}
	a, err := attributes(f)
	if err != nil {
		t.Fatal(err)
	}
	if string(a["TimeZone"]) != `"US Eastern Standard Time"` || string(a["Language"]) != `"en-us"` || string(a["RegistrationApp"]) != `"[App]"` {
		t.Fatalf("attributes: %s", a)
	}
	if _, ok := a["Country"]; ok {
		t.Fatal("null stored")
	}
}

func TestPolicySentence(t *testing.T) {
	const doc = "Password should be a minimum of 8 and maximum of 25 characters, including at least one uppercase letter, one lowercase letter, one number, and no spaces."
	if got := PolicySentence(DefaultPolicy); got != doc {
		t.Fatalf("got  %q\nwant %q", got, doc)
	}
	got := PolicySentence(DefaultPolicy.Merge(password.Policy{MinLength: 12, MinSpecial: 2}))
	if !strings.Contains(got, "minimum of 12") || !strings.Contains(got, "2 special characters") {
		t.Fatal(got)
	}
}

func TestBindCaseInsensitiveAndTypes(t *testing.T) {
	c := testContract(t)
	body := `{"email":"a@b.co","password":"Secret007","FIRSTNAME":"J","lastName":"S","registrationapp":"x","language":"EN-US",
"timezone":"us eastern standard time","country":"deu","Unknown":{"deep":[1,2]},"isadminuser":false}`
	f, be, err := bind([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if v := c.val.validate(f, be); v != nil {
		t.Fatalf("%v", v.Fields)
	}
	a, _ := attributes(f)
	if string(a["Language"]) != `"en-us"` || string(a["TimeZone"]) != `"US Eastern Standard Time"` || string(a["Country"]) != `"DEU"` || string(a["IsAdminUser"]) != "false" {
		t.Fatalf("%s", a)
	}

	f, be, err = bind([]byte("{\"Email\": 12,\n \"IsAdminUser\": \"yes\", \"RPostTermCondition\": 1, \"FirstName\": [1], \"ActivateViaCallbackUrl\": true}"))
	if err != nil {
		t.Fatal(err)
	}
	v := c.val.validate(f, be)
	got := map[string][]string{}
	for _, e := range c.modelState(v) {
		got[e.Key] = e.Messages
	}
	want := map[string][]string{
		"model.Email":              {"Error converting value 12 to type 'System.String'. Path 'Email', line 1, position 12."},
		"model.Password":           {"The Password field is required."},
		"model.FirstName":          {"Unexpected character encountered while parsing value: [. Path 'FirstName', line 2, position 62."},
		"model.LastName":           {"The LastName field is required."},
		"model.RegistrationApp":    {"The RegistrationApp field is required."},
		"model.Language":           {"The Language field is required."},
		"model.RPostTermCondition": {"Error converting value 1 to type 'System.Boolean'. Path 'RPostTermCondition', line 2, position 46."},
		"model.IsAdminUser":        {"Could not convert string to boolean: yes. Path 'IsAdminUser', line 2, position 21."},
	}
	if !reflect.DeepEqual(got, want) {
		b1, _ := json.MarshalIndent(got, "", " ")
		t.Fatalf("got %s", b1)
	}
}

func TestValidationRules(t *testing.T) {
	c := testContract(t)
	base := map[string]any{}
	_ = json.Unmarshal([]byte(docSample), &base)
	long := func(n int) string { return strings.Repeat("a", n) }
	for _, tc := range []struct {
		field string
		value any
		key   string
		msgs  []string
	}{
		{"Email", nil, "model.Email", []string{"The Email field is required."}},
		{"Email", "  ", "model.Email", []string{"The Email field is required."}},
		{"Email", "not-an-address", "model.Email", []string{"The Email field is not a valid e-mail address."}},
		{"Email", long(251) + "@x.com", "model.Email", []string{"The field Email must be a string with a maximum length of 256.", "The Email field is not a valid e-mail address."}},
		{"Password", "short1A", "model.Password", []string{PolicySentence(DefaultPolicy)}},
		{"Password", "Secret007 x", "model.Password", []string{PolicySentence(DefaultPolicy)}},
		{"Password", "secret007", "model.Password", []string{PolicySentence(DefaultPolicy)}},
		{"Password", "Secret00712345678901234567", "model.Password", []string{PolicySentence(DefaultPolicy)}},
		{"ConfirmPassword", "Secret008", "model.ConfirmPassword", []string{"'ConfirmPassword' and 'Password' do not match."}},
		{"FirstName", long(256), "model.FirstName", []string{"The field FirstName must be a string with a maximum length of 255."}},
		{"LastName", "", "model.LastName", []string{"The LastName field is required."}},
		{"PhoneNumber", long(101), "model.PhoneNumber", []string{"The field PhoneNumber must be a string with a maximum length of 100."}},
		{"AlternateEmail", "x@", "model.AlternateEmail", []string{"The AlternateEmail field is not a valid e-mail address."}},
		{"NotificationEmail", "x", "model.NotificationEmail", []string{"The NotificationEmail field is not a valid e-mail address."}},
		{"ConfirmationCallbackUrl", "javascript:alert(1)", "model.ConfirmationCallbackUrl", []string{msgCallbackURL}},
		{"ConfirmationCallbackUrl", "ftp://app.example.com/x", "model.ConfirmationCallbackUrl", []string{msgCallbackURL}},
		{"ConfirmationCallbackUrl", "https://evil.example.com/x", "model.ConfirmationCallbackUrl", []string{"The origin 'https://evil.example.com' of ConfirmationCallbackUrl is not allowed."}},
		{"ConfirmationCallbackUrl", "https://u:p@app.example.com/x", "model.ConfirmationCallbackUrl", []string{"The ConfirmationCallbackUrl field must not contain user information."}},
		{"RegistrationApp", long(31), "model.RegistrationApp", []string{"The field RegistrationApp must be a string with a maximum length of 30."}},
		{"Language", "xx-yy", "model.Language", []string{"The value 'xx-yy' is not valid for Language; use a Code from GET /api/v1/Lookup/Language."}},
		{"TimeZone", "Mars Time", "model.TimeZone", []string{"The value 'Mars Time' is not valid for TimeZone; use an Id from GET /api/v1/Lookup/TimeZone."}},
		{"Country", "XX", "model.Country", []string{"The value 'XX' is not valid for Country; use an ISO 3166-1 country code."}},
		{"Country", "GERMANY", "model.Country", []string{"The field Country must be a string with a maximum length of 5."}},
		{"CompanyName", long(251), "model.CompanyName", []string{"The field CompanyName must be a string with a maximum length of 250."}},
		{"Industry", long(51), "model.Industry", []string{"The field Industry must be a string with a maximum length of 50."}},
		// .NET counts UTF-16 code units: 26 emoji are 52.
		{"RegistrationApp", strings.Repeat("😀", 16), "model.RegistrationApp", []string{"The field RegistrationApp must be a string with a maximum length of 30."}},
	} {
		m := map[string]any{}
		for k, v := range base {
			m[k] = v
		}
		m[tc.field] = tc.value
		if tc.field == "Password" {
			m["ConfirmPassword"] = tc.value
		}
		b, _ := json.Marshal(m)
		f, be, err := bind(b)
		if err != nil {
			t.Fatal(err)
		}
		v := c.val.validate(f, be)
		if v == nil {
			t.Fatalf("%s=%v passed", tc.field, tc.value)
		}
		ms := c.modelState(v)
		if len(ms) != 1 || ms[0].Key != tc.key || !reflect.DeepEqual(ms[0].Messages, tc.msgs) {
			t.Fatalf("%s=%v: %+v", tc.field, tc.value, ms)
		}
	}
}

func TestOriginsAndLinks(t *testing.T) {
	o, err := parseOrigins([]string{"HTTPS://App.Example.com:443/", "http://localhost:3000"})
	if err != nil {
		t.Fatal(err)
	}
	for raw, ok := range map[string]bool{
		"https://app.example.com/welcome?x=1":   true,
		"https://APP.example.com:443/":          true,
		"http://localhost:3000/cb":              true,
		"http://localhost:3001/cb":              false,
		"http://app.example.com/":               false,
		"https://app.example.com.evil.com/":     false,
		"https://evil.com\\@app.example.com/":   false,
		"https://evil.com#@app.example.com/":    false,
		"//app.example.com/":                    false,
		"data:text/html,hi":                     false,
		"javascript://app.example.com/%0aalert": false,
	} {
		if got := o.allows(raw); got != ok {
			t.Errorf("%q: %v", raw, got)
		}
	}
	for _, bad := range [][]string{{"javascript:alert(1)"}, {"https://a.com/path"}, {"https://u@a.com"}, {"ftp://a.com"}, {"a.com"}} {
		if _, err := parseOrigins(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if got := withCode("https://a.com/cb?x=1&code=old&y=%7e#frag", "T+k"); got != "https://a.com/cb?x=1&y=%7e&code=T%2Bk#frag" {
		t.Fatal(got)
	}
	if got := withCode("https://a.com/cb", "tok"); got != "https://a.com/cb?code=tok" {
		t.Fatal(got)
	}
}

func TestDecodeErrorUnderModel(t *testing.T) {
	c := testContract(t)
	_, _, err := bind([]byte("{\"Email\": \"x\",}"))
	if err == nil {
		t.Fatal("accepted")
	}
	w := &recorder{}
	c.WriteError(w, nil, err)
	if w.status != 400 || string(w.body) != `{"Message":"The request is invalid.","ModelState":{"model":["invalid JSON at line 1, column 15: trailing comma before '}'"]}}` {
		t.Fatalf("%d %s", w.status, w.body)
	}
}

func TestPolicyOverride(t *testing.T) {
	c, err := New(contract.Env{Prefix: "/api/v1", Policy: &password.Policy{MinLength: 12, MinSpecial: 1}})
	if err != nil {
		t.Fatal(err)
	}
	rc := c.(*Contract)
	const want = "Password should be a minimum of 12 and maximum of 25 characters, including at least one uppercase letter, one lowercase letter, one number, one special character, and no spaces."
	if rc.val.passwordMsg != want {
		t.Fatalf("got %q", rc.val.passwordMsg)
	}
	if rc.val.checkPassword("Secret007", "") || !rc.val.checkPassword("Secret007!abc", "") {
		t.Fatal("override not applied")
	}
	if _, err := New(contract.Env{Options: contract.Options{"callback_origin": {{"https://a.com"}}}}); err == nil {
		t.Fatal("unknown option accepted")
	}
}

// A property given twice, in any spelling, is refused where the second
// one stands (ASP.NET would keep the last silently); positions of later
// failures are still exact after many members.
func TestBindRefusesRepeatedProperties(t *testing.T) {
	c := testContract(t)
	body := "{\"Email\":\"a@b.co\",\n\"FirstName\":\"J\",\"email\":\"c@d.co\",\"\\u0045MAIL\":\"e@f.co\",\n" +
		strings.Repeat(`"x":1,`, 500) + "\"LastName\":\"S\",\"lastname\":\"T\",\n\"IsAdminUser\":2}"
	f, be, err := bind([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	v := c.val.validate(f, be)
	got := map[string][]string{}
	for _, e := range c.modelState(v) {
		got[e.Key] = e.Messages
	}
	want := map[string][]string{
		"model.Email":           {"Property with the name 'email' already exists in the current JSON object. Path 'email', line 2, position 23."},
		"model.Password":        {"The Password field is required."},
		"model.LastName":        {"Property with the name 'lastname' already exists in the current JSON object. Path 'lastname', line 3, position 3025."},
		"model.RegistrationApp": {"The RegistrationApp field is required."},
		"model.Language":        {"The Language field is required."},
		"model.IsAdminUser":     {"Error converting value 2 to type 'System.Boolean'. Path 'IsAdminUser', line 4, position 15."},
	}
	if !reflect.DeepEqual(got, want) {
		b1, _ := json.MarshalIndent(got, "", " ")
		t.Fatalf("got %s", b1)
	}
}
