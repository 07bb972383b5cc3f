package tests

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// docIndiqusSample is the document's sample request, verbatim: its
// organization_name opens with a typographic quote, which is not JSON.
const docIndiqusSample = `{
"fname": "user",
"lname": "sample",
"email": "usersample@gmail.com",
"organization_name": “Indiqus",
"countryCode": "91",
"mobileNumber": "9876543210",
"password": "UserSam@178",
"acsRegion": "noida",
"address": "xyz street",
"city": "Bangalore",
"state": "Karnataka",
"country": "IN",
"zipcode": 607878,
"currency": "INR",
"tax_category": "Taxable",
"tax_type1": "CNPJ",
"taxation_id1": "3453242343234",
"tax_type2": "GSTIN",
"taxation_id2": "1234567890",
"tax_type3": "",
"taxation_id3": "",
"credit_period": 2,
"credit_limit": 1000,
"resellerCode": "CODE"
}`

// fixedIndiqusSample is the sample with the quote fixed.
var fixedIndiqusSample = strings.Replace(docIndiqusSample, `“Indiqus"`, `"Indiqus"`, 1)

// indiqusHandler is the demo Caddyfile's configuration: values that make
// the document's sample succeed.
const indiqusHandler = `register indiqus /api {
		currencies INR USD EUR
		tax_categories Taxable Exempt
		tax_type GSTIN required alpha_num min 10 max 15
		tax_type CNPJ required alpha_num min 13 max 14
		regions noida mumbai
		reseller_codes CODE
		mobile_digits 10
		password {
			min_length 8
			max_length 20
		}
		rate_limit create off
		rate_limit login off
	}`

type indiqusSite struct {
	*site
	adminToken string
}

func startIndiqus(t *testing.T, backend string) *indiqusSite {
	t.Helper()
	global := fmt.Sprintf("admin root %s manage-users\n\t\tadmin auditor %s view-reports", mustBcrypt(t, "rootpw"), mustBcrypt(t, "auditpw"))
	s := &indiqusSite{site: startSite(t, backend, global, indiqusHandler+"\n\t"+noraina)}
	s.adminToken = s.login("root", "rootpw")
	return s
}

func (s *indiqusSite) login(user, pass string) string {
	s.t.Helper()
	res := s.postJSON("/auth/login", fmt.Sprintf(`{"email":%q,"password":%q}`, user, pass))
	if res.Status != 200 {
		s.t.Fatalf("login %s: %d %s", user, res.Status, res.Body)
	}
	var env struct {
		Result struct {
			Token string `json:"user_token"`
		} `json:"result"`
	}
	if err := json.Unmarshal(res.Body, &env); err != nil || env.Result.Token == "" {
		s.t.Fatalf("login reply: %s", res.Body)
	}
	return env.Result.Token
}

func (s *indiqusSite) create(tok, idemKey, body string) *response {
	s.t.Helper()
	h := map[string]string{"Content-Type": "application/json"}
	if tok != "" {
		h["x-access-token"] = tok
	}
	if idemKey != "" {
		h["Idempotency-Key"] = idemKey
	}
	return s.do(http.MethodPost, "/api/pass/createNewUser", h, body)
}

type indiqusEnvelope struct {
	HTTPStatus    int             `json:"httpStatus"`
	Success       bool            `json:"success"`
	Error         json.RawMessage `json:"error"`
	Sync          bool            `json:"sync"`
	JobID         string          `json:"jobId"`
	JobStatusCode int             `json:"jobStatusCode"`
	Cached        bool            `json:"cached"`
	Replayed      bool            `json:"replayed"`
	Result        json.RawMessage `json:"result"`
}

func decodeEnvelope(t *testing.T, res *response) (indiqusEnvelope, map[string]any) {
	t.Helper()
	var env indiqusEnvelope
	if err := json.Unmarshal(res.Body, &env); err != nil {
		t.Fatalf("not the envelope: %s", res.Body)
	}
	var keys map[string]json.RawMessage
	_ = json.Unmarshal(res.Body, &keys)
	if len(keys) != 9 {
		t.Fatalf("envelope has %d members: %s", len(keys), res.Body)
	}
	if env.HTTPStatus != res.Status || !env.Sync || env.Cached || !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(env.JobID) {
		t.Fatalf("envelope: %s", res.Body)
	}
	var e map[string]any
	_ = json.Unmarshal(env.Error, &e)
	return env, e
}

func withField(body, field, value string) string {
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		panic(err)
	}
	if value == "<absent>" {
		delete(m, field)
	} else {
		m[field] = json.RawMessage(value)
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func TestIndiqusSample(t *testing.T) { eachBackend(t, testIndiqusSample) }

func testIndiqusSample(t *testing.T, backend string) {
	s := startIndiqus(t, backend)
	// The sample as published: a precise JSON error, nothing written.
	before := s.dataKeys()
	res := s.create(s.adminToken, "", docIndiqusSample)
	env, e := decodeEnvelope(t, res)
	if res.Status != 400 || env.Success || env.JobStatusCode != 2 || e["code"] != "INVALID_JSON" ||
		!strings.Contains(e["message"].(string), "U+201C") || !strings.Contains(e["message"].(string), "line 5, column 22") {
		t.Fatalf("published sample: %d %s", res.Status, res.Body)
	}
	if !equalStrings(before, s.dataKeys()) {
		t.Fatal("bad JSON changed the store")
	}
	// Fixed: the documented reply.
	res = s.create(s.adminToken, "", fixedIndiqusSample)
	env, _ = decodeEnvelope(t, res)
	if res.Status != 200 || !env.Success || string(env.Error) != "{}" || env.JobStatusCode != 1 || env.Replayed ||
		string(env.Result) != `{"id":"API-E001","email":"usersample@gmail.com"}` {
		t.Fatalf("fixed sample: %d %s", res.Status, res.Body)
	}
	// Without an Idempotency-Key the same e-mail is a duplicate.
	res = s.create(s.adminToken, "", fixedIndiqusSample)
	if _, e := decodeEnvelope(t, res); res.Status != 409 || e["code"] != "DUPLICATE_EMAIL" {
		t.Fatalf("duplicate: %d %s", res.Status, res.Body)
	}
	// The next account continues the sequence: no gap from the failures.
	res = s.create(s.adminToken, "", withField(fixedIndiqusSample, "email", `"second@example.com"`))
	if env, _ := decodeEnvelope(t, res); res.Status != 200 || !strings.Contains(string(env.Result), `"API-E002"`) {
		t.Fatalf("second: %d %s", res.Status, res.Body)
	}
}

func TestIndiqusValidation(t *testing.T) {
	s := startIndiqus(t, backendRedis)
	good := withField(withField(fixedIndiqusSample, "email", `"valid@example.com"`), "taxation_id3", `""`)
	cases := []struct{ field, value, msg string }{
		{"fname", `"<absent>"`, "fname is required"},
		{"fname", `"user1"`, "fname must contain only letters"},
		{"fname", `"` + strings.Repeat("a", 256) + `"`, "fname must not exceed 255 characters"},
		{"fname", `42`, "fname must be a string"},
		{"lname", `"sam ple"`, "lname must contain only letters"},
		{"organization_name", `"Indiqus!"`, "organization_name must contain only letters, digits and spaces"},
		{"organization_name", `"` + strings.Repeat("o", 256) + `"`, "organization_name must not exceed 255 characters"},
		{"email", `"not-an-email"`, "e-mail address is not valid"},
		{"email", `"<absent>"`, "email is required"},
		{"countryCode", `"99999"`, "countryCode must not exceed 4 characters"},
		{"countryCode", `"999"`, "is not a country calling code"},
		{"mobileNumber", `"98765"`, "must have 10 digits"},
		{"mobileNumber", `"98765abcde"`, "mobileNumber must contain only digits"},
		{"mobileNumber", `"1234567890"`, "mobileNumber"},
		{"password", `"usersam@178"`, "capital"},
		{"password", `"UserSam178"`, "special"},
		{"password", `"UserSam@"`, "digit"},
		{"password", `"Us@1"`, "at least 8 characters"},
		{"password", `"UserSam@178UserSam@178"`, "at most 20 characters"},
		{"acsRegion", `"mars"`, "acsRegion must be one of the regions"},
		{"address", `"` + strings.Repeat("a", 256) + `"`, "address must not exceed 255 characters"},
		{"city", `"<absent>"`, "city is required"},
		{"state", `"Bavaria"`, "state must be a Subdivision_Code (or name) of IN"},
		{"state", `"karnataka"`, "state must be a Subdivision_Code"},
		{"country", `"in"`, "country must be a Country_Code"},
		{"country", `"XX"`, "country must be a Country_Code"},
		{"zipcode", `"60A878"`, "zipcode must contain only digits"},
		{"zipcode", `-5`, "zipcode must contain only digits"},
		{"currency", `"inr"`, "currency must be one of the currencies"},
		{"currency", `"JPY"`, "currency must be one of the currencies"},
		{"tax_category", `"taxable"`, "tax_category must be one of the tax categories"},
		{"tax_type1", `"VAT"`, "tax_type1 must be one of the tax types"},
		{"taxation_id1", `""`, "taxation_id1 is required for tax type CNPJ"},
		{"taxation_id1", `"345324234-234"`, "taxation_id1 must be alphanumeric"},
		{"taxation_id2", `"123"`, "taxation_id2 must have at least 10 characters"},
		{"taxation_id2", `"1234567890123456"`, "taxation_id2 must have at most 15 characters"},
		{"tax_type3", `""`, "tax_type3 is required when taxation_id3 is given"},
		{"credit_period", `0`, "credit_period must be a whole number between 1 and 30"},
		{"credit_period", `31`, "credit_period must be a whole number between 1 and 30"},
		{"credit_period", `"2"`, "credit_period must be a number"},
		{"credit_limit", `-1`, "credit_limit must be greater than or equal to 0"},
		{"resellerCode", `"NOPE"`, "resellerCode is not a known reseller code"},
		{"resellerCode", `"<absent>"`, "resellerCode is required"},
	}
	for _, c := range cases {
		t.Run(c.field+"="+c.value[:min(len(c.value), 20)], func(t *testing.T) {
			v := c.value
			if v == `"<absent>"` {
				v = "<absent>"
			}
			body := withField(good, c.field, v)
			if c.field == "tax_type3" {
				body = withField(body, "taxation_id3", `"123"`)
			}
			before := s.dataKeys()
			res := s.create(s.adminToken, "", body)
			env, e := decodeEnvelope(t, res)
			if res.Status != 400 || env.Success || e["code"] != "VALIDATION_FAILED" {
				t.Fatalf("%d %s", res.Status, res.Body)
			}
			details, _ := e["details"].([]any)
			found := false
			for _, d := range details {
				dm := d.(map[string]any)
				if dm["field"] == c.field && strings.Contains(dm["message"].(string), c.msg) {
					found = true
				}
			}
			if !found {
				t.Fatalf("no %s error containing %q: %s", c.field, c.msg, res.Body)
			}
			if !equalStrings(before, s.dataKeys()) {
				t.Fatal("store changed")
			}
		})
	}
	// Several failing fields are all reported.
	res := s.create(s.adminToken, "", withField(withField(good, "fname", `"x1"`), "credit_period", `99`))
	if _, e := decodeEnvelope(t, res); len(e["details"].([]any)) != 2 {
		t.Fatalf("several: %s", res.Body)
	}
	// The zipcode may be a string of digits or a number, state a code.
	res = s.create(s.adminToken, "", withField(withField(good, "zipcode", `"560001"`), "state", `"IN-KA"`))
	if res.Status != 200 {
		t.Fatalf("string zipcode and state code: %d %s", res.Status, res.Body)
	}
}

func TestIndiqusAuth(t *testing.T) {
	s := startIndiqus(t, backendRedis)
	body := withField(fixedIndiqusSample, "email", `"auth@example.com"`)
	// A user token (a noraina user on the same site).
	reg := s.postJSON("/api/register", `{"name":"U","mail":"plainuser@example.com","password":"my_password"}`)
	userTok := reg.JSON(t)["data"].(map[string]any)["token"].(string)
	// An admin token without manage-users.
	auditTok := s.login("auditor", "auditpw")
	// A forged admin token: right claims, wrong key.
	forged := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "root", "kind": "admin", "permissions": []string{"manage-users"}, "exp": time.Now().Add(time.Hour).Unix(), "iss": "caddyregister"})
	forgedTok, _ := forged.SignedString([]byte("secret"))
	for _, c := range []struct {
		name, tok string
		status    int
		code      string
	}{
		{"none", "", 401, "UNAUTHORIZED"},
		{"forged", forgedTok, 401, "UNAUTHORIZED"},
		{"garbage", "abc.def.ghi", 401, "UNAUTHORIZED"},
		{"user token", userTok, 403, "FORBIDDEN"},
		{"admin without manage-users", auditTok, 403, "FORBIDDEN"},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := s.create(c.tok, "", body)
			if _, e := decodeEnvelope(t, res); res.Status != c.status || e["code"] != c.code {
				t.Fatalf("%d %s", res.Status, res.Body)
			}
		})
	}
	// HTTP Basic admin credentials work too.
	res := s.do(http.MethodPost, "/api/pass/createNewUser", map[string]string{"Content-Type": "application/json", "Authorization": basicHeader("root", "rootpw")}, body)
	if res.Status != 200 {
		t.Fatalf("basic: %d %s", res.Status, res.Body)
	}
	// Login failures say nothing about which part was wrong.
	for _, creds := range []string{`{"email":"root","password":"wrong"}`, `{"email":"nobody","password":"rootpw"}`, `{"email":"plainuser@example.com","password":"wrong"}`} {
		res := s.postJSON("/auth/login", creds)
		if _, e := decodeEnvelope(t, res); res.Status != 401 || e["code"] != "INVALID_CREDENTIALS" || e["message"] != "Invalid credentials." {
			t.Fatalf("login %s: %d %s", creds, res.Status, res.Body)
		}
	}
	// A user who has not activated cannot log in.
	res = s.postJSON("/auth/login", `{"email":"plainuser@example.com","password":"my_password"}`)
	if _, e := decodeEnvelope(t, res); res.Status != 403 || e["code"] != "ACCOUNT_NOT_ACTIVATED" {
		t.Fatalf("pending user login: %d %s", res.Status, res.Body)
	}
}

func TestIndiqusSequence(t *testing.T) {
	s := startIndiqus(t, backendRedis)
	const n = 50
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			res := s.create(s.adminToken, "", withField(fixedIndiqusSample, "email", fmt.Sprintf(`"seq%d@example.com"`, i)))
			var env struct {
				Result struct{ ID string } `json:"result"`
			}
			if res.Status != 200 || json.Unmarshal(res.Body, &env) != nil {
				t.Errorf("create %d: %d %s", i, res.Status, res.Body)
				return
			}
			ids[i] = env.Result.ID
		}(i)
	}
	wg.Wait()
	sort.Strings(ids)
	for i, id := range ids {
		if want := fmt.Sprintf("API-E%03d", i+1); id != want {
			t.Fatalf("ids %v: position %d is %s, want %s (distinct, no gaps)", ids, i, id, want)
		}
	}
}

func TestIndiqusIdempotency(t *testing.T) { eachBackend(t, testIndiqusIdempotency) }

func testIndiqusIdempotency(t *testing.T, backend string) {
	s := startIndiqus(t, backend)
	body := withField(fixedIndiqusSample, "email", `"idem@example.com"`)
	first := s.create(s.adminToken, "key-1", body)
	env1, _ := decodeEnvelope(t, first)
	if first.Status != 200 || env1.Replayed {
		t.Fatalf("first: %d %s", first.Status, first.Body)
	}
	keys := s.dataKeys()
	again := s.create(s.adminToken, "key-1", body)
	env2, _ := decodeEnvelope(t, again)
	if again.Status != 200 || !env2.Replayed || string(env2.Result) != string(env1.Result) || env2.JobID != env1.JobID {
		t.Fatalf("retry: %d %s (first %s)", again.Status, again.Body, first.Body)
	}
	if !equalStrings(keys, s.dataKeys()) {
		t.Fatal("replay wrote to the store")
	}
	other := s.create(s.adminToken, "key-1", withField(body, "city", `"Mysore"`))
	if _, e := decodeEnvelope(t, other); other.Status != 422 || e["code"] != "IDEMPOTENCY_KEY_REUSED" {
		t.Fatalf("same key, other body: %d %s", other.Status, other.Body)
	}
	// Two concurrent requests with one key create one account.
	body2 := withField(fixedIndiqusSample, "email", `"idem2@example.com"`)
	var wg sync.WaitGroup
	results := make([]*response, 6)
	for i := range results {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			results[i] = s.create(s.adminToken, "key-2", body2)
		}(i)
	}
	wg.Wait()
	replays, id := 0, ""
	for _, r := range results {
		env, _ := decodeEnvelope(t, r)
		if r.Status != 200 {
			t.Fatalf("concurrent: %d %s", r.Status, r.Body)
		}
		if env.Replayed {
			replays++
		}
		if id != "" && string(env.Result) != id {
			t.Fatalf("different results %s vs %s", env.Result, id)
		}
		id = string(env.Result)
	}
	if replays != len(results)-1 {
		t.Fatalf("%d replays of %d", replays, len(results))
	}
	// The sequence saw exactly two accounts.
	res := s.create(s.adminToken, "", withField(fixedIndiqusSample, "email", `"after@example.com"`))
	if env, _ := decodeEnvelope(t, res); !strings.Contains(string(env.Result), "API-E003") {
		t.Fatalf("after: %s", res.Body)
	}
}

func TestIndiqusLookups(t *testing.T) {
	s := startIndiqus(t, backendRedis)
	res := s.do(http.MethodGet, "/api/countryList", nil, "")
	if env, _ := decodeEnvelope(t, res); res.Status != 200 || !strings.Contains(string(env.Result), `{"Country_Code":"IN","Country_Name":"India","Calling_Code":"91"}`) {
		t.Fatalf("countryList: %d %.300s", res.Status, res.Body)
	}
	res = s.do(http.MethodGet, "/api/stateList?country=IN", nil, "")
	if env, _ := decodeEnvelope(t, res); res.Status != 200 || !strings.Contains(string(env.Result), `"Subdivision_Code":"IN-KA","Subdivision_Name":"Karnātaka"`) {
		t.Fatalf("stateList: %d %.300s", res.Status, res.Body)
	}
	res = s.do(http.MethodGet, "/api/stateList?country=XX", nil, "")
	if _, e := decodeEnvelope(t, res); res.Status != 400 || e["field"] != "country" {
		t.Fatalf("stateList XX: %d %s", res.Status, res.Body)
	}
	res = s.do(http.MethodGet, "/api/signUpHelper", nil, "")
	if res.Status != 401 {
		t.Fatalf("signUpHelper without token: %d", res.Status)
	}
	res = s.do(http.MethodGet, "/api/signUpHelper", map[string]string{"x-access-token": s.adminToken}, "")
	env, _ := decodeEnvelope(t, res)
	for _, want := range []string{`"INR"`, `"Taxable"`, `"GSTIN"`, `"alpha_num":true`, `"noida"`, `"CODE"`, `"mobile_digits":10`, `"max_length":20`} {
		if !strings.Contains(string(env.Result), want) {
			t.Fatalf("signUpHelper lacks %s: %s", want, env.Result)
		}
	}
}
