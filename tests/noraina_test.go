package tests

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/caddyregister/caddyregister/caddyregister/token"
)

// The document's examples, verbatim but for the e-mail addresses its
// publisher mangled.
const (
	docBillingExample = `{
	"name": "User",
	"mail": "user@example.com",
	"password": "my_password",
	"billing": {
		"company": "my_company",
		"vatId": "12345678X",
		"address": "22nd my_company's Street, my_postal_code, my_city",
		"creditBalance": 12345
	}
}`
	// The document's second example, trailing comma included.
	docUserOnlyExample = `{
	"name": "User",
	"mail": "user@example.com",
	"password": "my_password",
}`
	docDuplicateReply = `{
    "status": "error",
    "message": "User already exists.",
    "data": null
}`
)

const noraina = "register noraina /api"

func TestNorainaDocumentedFlow(t *testing.T) { eachBackend(t, testNorainaDocumentedFlow) }

func testNorainaDocumentedFlow(t *testing.T, backend string) {
	s := startSite(t, backend, "", noraina)

	// The curl example: billing creates a tenant.
	res := s.postJSON("/api/register", docBillingExample)
	if res.Status != http.StatusCreated {
		t.Fatalf("register: status %d: %s", res.Status, res.Body)
	}
	body := res.JSON(t)
	if body["status"] != "success" || len(body) != 2 {
		t.Fatalf("register: envelope %s", res.Body)
	}
	data := body["data"].(map[string]any)
	if data["message"] != "User successfully created." || len(data) != 2 {
		t.Fatalf("register: data %s", res.Body)
	}
	tok, _ := data["token"].(string)
	if strings.Count(tok, ".") != 2 {
		t.Fatalf("token is not a JWT: %q", tok)
	}

	// Same e-mail again: the documented duplicate reply, byte for byte
	// modulo whitespace.
	before := s.dataKeys()
	dup := s.postJSON("/api/register", docBillingExample)
	if dup.Status != http.StatusConflict || string(dup.Body) != compactJSON(t, docDuplicateReply) {
		t.Fatalf("duplicate: %d %s", dup.Status, dup.Body)
	}
	if !equalStrings(before, s.dataKeys()) {
		t.Fatal("duplicate registration changed the store")
	}
	// E-mails are unique case-insensitively and after trimming.
	dup = s.postJSON("/api/register", `{"name":"User","mail":"  USER@Example.COM ","password":"my_password"}`)
	if dup.Status != http.StatusConflict {
		t.Fatalf("case-variant duplicate: %d %s", dup.Status, dup.Body)
	}
	// Aliases are separate accounts, as the document promises.
	alias := s.postJSON("/api/register", `{"name":"User","mail":"user+alias@example.com","password":"my_password"}`)
	if alias.Status != http.StatusCreated {
		t.Fatalf("alias: %d %s", alias.Status, alias.Body)
	}

	// /me and /user with the token, from either header.
	for _, path := range []string{"/api/me", "/api/user"} {
		for _, h := range []map[string]string{{"x-access-token": tok}, {"Authorization": "Bearer " + tok}} {
			me := s.do(http.MethodGet, path, h, "")
			if me.Status != http.StatusOK {
				t.Fatalf("%s: %d %s", path, me.Status, me.Body)
			}
			if strings.Contains(string(me.Body), "argon2") || strings.Contains(strings.ToLower(string(me.Body)), "hash") {
				t.Fatalf("%s leaks the password hash: %s", path, me.Body)
			}
			d := me.JSON(t)["data"].(map[string]any)
			if d["mail"] != "user@example.com" || d["name"] != "User" || d["status"] != "pending" {
				t.Fatalf("%s: %s", path, me.Body)
			}
			if p := d["permissions"].([]any); len(p) != 0 {
				t.Fatalf("pending user has permissions: %v", p)
			}
			tenant := d["tenant"].(map[string]any)
			if tenant["company"] != "my_company" || tenant["vatId"] != "12345678X" {
				t.Fatalf("tenant: %v", tenant)
			}
		}
	}

	// A second user of the same company does not join its tenant.
	before = s.dataKeys()
	other := s.postJSON("/api/register", strings.Replace(docBillingExample, "user@example.com", "colleague@example.com", 1))
	if other.Status != http.StatusConflict || !strings.Contains(string(other.Body), "VAT ID is already registered") {
		t.Fatalf("existing tenant: %d %s", other.Status, other.Body)
	}
	if !equalStrings(before, s.dataKeys()) {
		t.Fatal("registration naming an existing tenant changed the store")
	}
	// The VAT id is matched after normalization.
	other = s.postJSON("/api/register", strings.NewReplacer("user@example.com", "c2@example.com", "12345678X", "12.345.678-x").Replace(docBillingExample))
	if other.Status != http.StatusConflict {
		t.Fatalf("normalized VAT: %d %s", other.Status, other.Body)
	}

	// The user-only example with its trailing comma: a precise error.
	res = s.postJSON("/api/register", docUserOnlyExample)
	if res.Status != http.StatusBadRequest {
		t.Fatalf("trailing comma: %d %s", res.Status, res.Body)
	}
	e := res.JSON(t)
	msg, _ := e["message"].(string)
	if e["status"] != "error" || e["data"] != nil || !strings.Contains(msg, "trailing comma") || !strings.Contains(msg, "line 5, column 1") {
		t.Fatalf("trailing comma: %s", res.Body)
	}
	// The same example with the comma fixed succeeds.
	fixed := strings.Replace(strings.Replace(docUserOnlyExample, `"my_password",`, `"my_password"`, 1), "user@example.com", "solo@example.com", 1)
	if res := s.postJSON("/api/register", fixed); res.Status != http.StatusCreated {
		t.Fatalf("fixed example: %d %s", res.Status, res.Body)
	}

	// Other paths reach the next handler.
	if res := s.do(http.MethodGet, "/elsewhere", nil, ""); res.Status != 200 || string(res.Body) != "fallback" {
		t.Fatalf("pass-through: %d %s", res.Status, res.Body)
	}
}

func TestNorainaBadInput(t *testing.T) { eachBackend(t, testNorainaBadInput) }

func testNorainaBadInput(t *testing.T, backend string) {
	s := startSite(t, backend, "", noraina+` {
		max_body_size 4KiB
	}`)
	// One existing company, so billing that names it can be tested.
	if res := s.postJSON("/api/register", docBillingExample); res.Status != http.StatusCreated {
		t.Fatalf("seed: %d %s", res.Status, res.Body)
	}
	deep := strings.Repeat(`{"a":`, 20) + "1" + strings.Repeat("}", 20)
	cases := []struct {
		name, method, ctype, body string
		status                    int
		msg                       string
	}{
		{"empty body", "POST", "application/json", "", 400, "request body is empty"},
		{"not an object", "POST", "application/json", `["x"]`, 400, "must be a JSON object"},
		{"not JSON", "POST", "application/json", `name=User`, 400, "Invalid JSON at line 1, column 1"},
		{"truncated", "POST", "application/json", `{"name":"User"`, 400, "unexpected end of JSON input"},
		{"data after object", "POST", "application/json", `{"name":"U"} {}`, 400, "unexpected data after the JSON object"},
		{"too deep", "POST", "application/json", deep, 400, "nested deeper than 16 levels"},
		{"typographic quote", "POST", "application/json", `{"name": “User"}`, 400, "U+201C"},
		{"missing name", "POST", "application/json", `{"mail":"a@example.com","password":"my_password"}`, 400, "name: is required"},
		{"blank name", "POST", "application/json", `{"name":"  ","mail":"a@example.com","password":"my_password"}`, 400, "name: is required"},
		{"long name", "POST", "application/json", `{"name":"` + strings.Repeat("n", 256) + `","mail":"a@example.com","password":"my_password"}`, 400, "name: must be at most 255 characters"},
		{"control char in name", "POST", "application/json", `{"name":"a\u0007b","mail":"a@example.com","password":"my_password"}`, 400, "name: must not contain control characters"},
		{"name not a string", "POST", "application/json", `{"name":42,"mail":"a@example.com","password":"my_password"}`, 400, `field "name" must be a string, not a number`},
		{"missing mail", "POST", "application/json", `{"name":"U","password":"my_password"}`, 400, "mail: is required"},
		{"invalid mail", "POST", "application/json", `{"name":"U","mail":"not-an-address","password":"my_password"}`, 400, "mail: e-mail address is not valid"},
		{"mail with display name", "POST", "application/json", `{"name":"U","mail":"Eve <eve@example.com>","password":"my_password"}`, 400, "mail: e-mail address is not valid"},
		{"missing password", "POST", "application/json", `{"name":"U","mail":"a@example.com"}`, 400, "password: is required"},
		{"short password", "POST", "application/json", `{"name":"U","mail":"a@example.com","password":"1234567"}`, 400, "password: password must be at least 8 characters long"},
		{"long password", "POST", "application/json", `{"name":"U","mail":"a@example.com","password":"` + strings.Repeat("p", 129) + `"}`, 400, "password: password must be at most 128 characters"},
		{"password equals mail", "POST", "application/json", `{"name":"U","mail":"a@example.com","password":"A@example.com"}`, 400, "password: password must not be"},
		{"several fields", "POST", "application/json", `{"mail":"bad","password":"x"}`, 400, "name: is required; mail: e-mail address is not valid"},
		{"billing without vat", "POST", "application/json", `{"name":"U","mail":"a@example.com","password":"my_password","billing":{"company":"c"}}`, 400, "billing.vatId: is required"},
		{"billing without company", "POST", "application/json", `{"name":"U","mail":"a@example.com","password":"my_password","billing":{"vatId":"X1"}}`, 400, "billing.company: is required"},
		{"negative credit", "POST", "application/json", `{"name":"U","mail":"a@example.com","password":"my_password","billing":{"company":"c","vatId":"X1","creditBalance":-1}}`, 400, "billing.creditBalance: must be a number not below 0"},
		{"credit as word", "POST", "application/json", `{"name":"U","mail":"a@example.com","password":"my_password","billing":{"company":"c","vatId":"X1","creditBalance":"lots"}}`, 400, "Invalid JSON"},
		{"existing tenant", "POST", "application/json", strings.Replace(docBillingExample, "user@example.com", "b@example.com", 1), 409, "VAT ID is already registered"},
		{"wrong content type", "POST", "text/plain", `{"name":"U","mail":"a@example.com","password":"my_password"}`, 415, `ontent type "text/plain" is not supported`},
		{"form content type", "POST", "application/x-www-form-urlencoded", `name=U`, 415, "not supported"},
		{"body too large", "POST", "application/json", `{"name":"` + strings.Repeat("n", 5000) + `"}`, 413, "larger than 4096 bytes"},
		{"wrong method", "PUT", "application/json", `{}`, 405, "Method not allowed"},
		{"get register", "GET", "", "", 405, "Method not allowed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := s.dataKeys()
			h := map[string]string{}
			if c.ctype != "" {
				h["Content-Type"] = c.ctype
			}
			res := s.do(c.method, "/api/register", h, c.body)
			if res.Status != c.status {
				t.Fatalf("status %d, want %d: %s", res.Status, c.status, res.Body)
			}
			var env struct {
				Status  string          `json:"status"`
				Message string          `json:"message"`
				Data    json.RawMessage `json:"data"`
			}
			if err := json.Unmarshal(res.Body, &env); err != nil {
				t.Fatalf("not the envelope: %s", res.Body)
			}
			if env.Status != "error" || string(env.Data) != "null" || !strings.Contains(env.Message, c.msg) {
				t.Fatalf("envelope %s, want message containing %q", res.Body, c.msg)
			}
			if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Fatalf("content type %q", ct)
			}
			if c.status == 405 && res.Header.Get("Allow") != "POST" {
				t.Fatalf("Allow %q", res.Header.Get("Allow"))
			}
			if after := s.dataKeys(); !equalStrings(before, after) {
				t.Fatalf("store changed: %v -> %v", before, after)
			}
		})
	}
	if res := s.do(http.MethodGet, "/api/me", nil, ""); res.Status != 401 || res.Header.Get("WWW-Authenticate") == "" {
		t.Fatalf("me without token: %d %v", res.Status, res.Header)
	}
}

func TestNorainaConcurrentSameEmail(t *testing.T) { eachBackend(t, testNorainaConcurrentSameEmail) }

func testNorainaConcurrentSameEmail(t *testing.T, backend string) {
	s := startSite(t, backend, "hash_queue_wait 60s", noraina+` {
		rate_limit register off
	}`)
	const n = 50
	statuses := make([]int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			statuses[i] = s.postJSON("/api/register", `{"name":"Racer","mail":"race@example.com","password":"my_password"}`).Status
		}(i)
	}
	close(start)
	wg.Wait()
	count := map[int]int{}
	for _, st := range statuses {
		count[st]++
	}
	if count[201] != 1 || count[409] != n-1 {
		t.Fatalf("statuses %v, want one 201 and %d 409", count, n-1)
	}
	// The winner's user, its e-mail, and the session its token belongs
	// to; nothing of the losers.
	var keys, sessionKeys []string
	for _, k := range s.dataKeys() {
		if strings.Contains(k, "session") {
			sessionKeys = append(sessionKeys, k)
		} else {
			keys = append(keys, k)
		}
	}
	if len(keys) != 2 || !strings.Contains(keys[0], "email:race@example.com") || !strings.Contains(keys[1], ":user") {
		t.Fatalf("stray keys: %v", keys)
	}
	winner := keys[1][len(keys[1])-24:]
	if len(sessionKeys) == 0 {
		t.Fatal("no session for the winner's token")
	}
	for _, k := range sessionKeys {
		if !strings.Contains(k, winner) {
			t.Fatalf("session key %q is not the winner's (%s)", k, winner)
		}
	}
}

func TestNorainaRateLimit(t *testing.T) { eachBackend(t, testNorainaRateLimit) }

func testNorainaRateLimit(t *testing.T, backend string) {
	s := startSite(t, backend, "", noraina+` {
		rate_limit register 2/m
	}`)
	for i := 0; i < 2; i++ {
		if res := s.postJSON("/api/register", fmt.Sprintf(`{"name":"U","mail":"rl%d@example.com","password":"my_password"}`, i)); res.Status != 201 {
			t.Fatalf("request %d: %d %s", i, res.Status, res.Body)
		}
	}
	var before []string
	if backend == backendRedis {
		// (Reading the embedded file reloads Caddy, which would reset
		// its in-memory buckets.)
		before = s.dataKeys()
	}
	res := s.postJSON("/api/register", `{"name":"U","mail":"rl9@example.com","password":"my_password"}`)
	if res.Status != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" {
		t.Fatalf("third request: %d %v %s", res.Status, res.Header, res.Body)
	}
	if e := res.JSON(t); e["status"] != "error" || e["data"] != nil {
		t.Fatalf("429 envelope: %s", res.Body)
	}
	// The refused one wrote nothing.
	keys := s.dataKeys()
	if before != nil && !slices.Equal(keys, before) {
		t.Fatalf("rate-limited request changed the store: %v, before %v", keys, before)
	}
	for _, k := range keys {
		if strings.Contains(k, "rl9") {
			t.Fatalf("rate-limited request wrote %s", k)
		}
	}
}

func TestNorainaOverload(t *testing.T) {
	backend := backendRedis
	// One hashing slot, a hash that takes a while, and almost no patience:
	// concurrent registrations beyond the slot get 503 with Retry-After.
	s := startSite(t, backend, "hash_pool_size 1\n\t\thash_queue_wait 1ms\n\t\thash argon2id 65536 3 1", noraina+` {
		rate_limit register off
	}`)
	const n = 6
	var wg sync.WaitGroup
	results := make([]*response, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			results[i] = s.postJSON("/api/register", fmt.Sprintf(`{"name":"U","mail":"ov%d@example.com","password":"my_password"}`, i))
		}(i)
	}
	wg.Wait()
	created, busy := 0, 0
	for _, r := range results {
		switch r.Status {
		case 201:
			created++
		case 503:
			busy++
			if r.Header.Get("Retry-After") == "" {
				t.Fatalf("503 without Retry-After")
			}
			if e := r.JSON(t); e["status"] != "error" || !strings.Contains(e["message"].(string), "busy") {
				t.Fatalf("503 envelope: %s", r.Body)
			}
		default:
			t.Fatalf("unexpected %d %s", r.Status, r.Body)
		}
	}
	if created < 1 || busy < 1 {
		t.Fatalf("created %d, busy %d: want some of each", created, busy)
	}
	// Exactly the created users are stored: two keys each, and the
	// session of each one's token (two keys on either backend).
	if got := len(s.dataKeys()); got != 4*created {
		t.Fatalf("%d keys for %d users: %v", got, created, s.dataKeys())
	}
}

func TestNorainaStoreOutage(t *testing.T) {
	own := startOwnRedis(t)
	s := startSite(t, own.URL(0), "", noraina)
	ok := s.postJSON("/api/register", `{"name":"U","mail":"before@example.com","password":"my_password"}`)
	if ok.Status != 201 {
		t.Fatalf("before outage: %d %s", ok.Status, ok.Body)
	}
	tok := ok.JSON(t)["data"].(map[string]any)["token"].(string)

	// Redis refuses writes: the registration fails whole.
	ctx := t.Context()
	before := s.dataKeys()
	if err := s.rdb.ConfigSet(ctx, "min-replicas-to-write", "1").Err(); err != nil {
		t.Fatal(err)
	}
	res := s.postJSON("/api/register", `{"name":"U","mail":"during@example.com","password":"my_password"}`)
	if err := s.rdb.ConfigSet(ctx, "min-replicas-to-write", "0").Err(); err != nil {
		t.Fatal(err)
	}
	assertUnavailable(t, res)
	if !equalStrings(before, s.dataKeys()) {
		t.Fatal("failed write left records behind")
	}

	// Redis is gone: 503 in the envelope, for writes and reads.
	own.Kill()
	assertUnavailable(t, s.postJSON("/api/register", `{"name":"U","mail":"down@example.com","password":"my_password"}`))
	assertUnavailable(t, s.do(http.MethodGet, "/api/me", map[string]string{"x-access-token": tok}, ""))
	if err := own.Restart(); err != nil {
		t.Fatal(err)
	}
	// Back up (empty, persistence is off): it serves again.
	if res := s.postJSON("/api/register", `{"name":"U","mail":"after@example.com","password":"my_password"}`); res.Status != 201 {
		t.Fatalf("after outage: %d %s", res.Status, res.Body)
	}
}

func assertUnavailable(t *testing.T, res *response) {
	t.Helper()
	if res.Status != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
		t.Fatalf("want 503 with Retry-After, got %d %v %s", res.Status, res.Header, res.Body)
	}
	e := res.JSON(t)
	if e["status"] != "error" || e["data"] != nil || strings.Contains(strings.ToLower(e["message"].(string)), "redis") {
		t.Fatalf("503 envelope: %s", res.Body)
	}
}

func TestNorainaTokens(t *testing.T) { eachBackend(t, testNorainaTokens) }

func testNorainaTokens(t *testing.T, backend string) {
	// A configured key, so the test can also mint tokens the server must
	// reject for other reasons than the signature.
	key, err := token.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, err := key.MarshalPrivateKeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "jwt.pem")
	if err := os.WriteFile(keyFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	s := startSite(t, backend, "signing_key {file."+keyFile+"}", noraina)
	res := s.postJSON("/api/register", `{"name":"U","mail":"tok@example.com","password":"my_password"}`)
	if res.Status != 201 {
		t.Fatalf("register: %d %s", res.Status, res.Body)
	}
	tok := res.JSON(t)["data"].(map[string]any)["token"].(string)

	// The JWKS verifies the issued token.
	jwks := s.do(http.MethodGet, "/.well-known/jwks.json", nil, "")
	var set struct {
		Keys []struct{ Kty, Crv, X, Kid, Alg string } `json:"keys"`
	}
	if err := json.Unmarshal(jwks.Body, &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("jwks: %s", jwks.Body)
	}
	k := set.Keys[0]
	x, err := base64.RawURLEncoding.DecodeString(k.X)
	if err != nil || k.Kty != "OKP" || k.Crv != "Ed25519" || k.Alg != "EdDSA" || k.Kid != key.ID {
		t.Fatalf("jwks key: %+v", k)
	}
	var claims jwt.MapClaims
	parsed, err := jwt.ParseWithClaims(tok, &claims, func(tk *jwt.Token) (any, error) {
		if tk.Header["kid"] != k.Kid {
			return nil, fmt.Errorf("kid %v", tk.Header["kid"])
		}
		return ed25519.PublicKey(x), nil
	}, jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithExpirationRequired())
	if err != nil || !parsed.Valid {
		t.Fatalf("issued token does not verify with the JWKS: %v", err)
	}
	iat, _ := claims.GetIssuedAt()
	exp, _ := claims.GetExpirationTime()
	if exp.Sub(iat.Time) != 15*time.Minute || claims["status"] != "pending" || claims["jti"] == "" || claims["iss"] != "caddyregister" || claims["sid"] == "" {
		t.Fatalf("claims: %v", claims)
	}
	sub, _ := claims.GetSubject()

	other, _ := token.GenerateKey()
	sign := func(method jwt.SigningMethod, k any, kid string, c jwt.MapClaims) string {
		tk := jwt.NewWithClaims(method, c)
		tk.Header["kid"] = kid
		s, err := tk.SignedString(k)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	valid := func() jwt.MapClaims {
		return jwt.MapClaims{"iss": "caddyregister", "sub": sub, "sid": claims["sid"], "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(), "permissions": []string{}, "kind": "user"}
	}
	noSID := valid()
	delete(noSID, "sid")
	otherSID := valid()
	otherSID["sid"] = "AAAAAAAAAAAAAAAAAAAAAA"
	expired := valid()
	expired["iat"], expired["exp"] = time.Now().Add(-2*time.Hour).Unix(), time.Now().Add(-time.Hour).Unix()
	noExp := valid()
	delete(noExp, "exp")
	enc := base64.RawURLEncoding.EncodeToString
	payload, _ := json.Marshal(valid())
	bad := map[string]string{
		"alg none":            enc([]byte(`{"alg":"none","typ":"JWT","kid":"`+key.ID+`"}`)) + "." + enc(payload) + ".",
		"wrong key, same kid": sign(jwt.SigningMethodEdDSA, other.Private, key.ID, valid()),
		"HS256 with public":   sign(jwt.SigningMethodHS256, []byte(key.Private.Public().(ed25519.PublicKey)), key.ID, valid()),
		"expired":             sign(jwt.SigningMethodEdDSA, key.Private, key.ID, expired),
		"no exp":              sign(jwt.SigningMethodEdDSA, key.Private, key.ID, noExp),
		"tampered":            tok[:strings.LastIndexByte(tok, '.')] + "." + enc(make([]byte, 64)),
		"garbage":             "not-a-token",
		"no session":          sign(jwt.SigningMethodEdDSA, key.Private, key.ID, noSID),
		"unknown session":     sign(jwt.SigningMethodEdDSA, key.Private, key.ID, otherSID),
	}
	// The control: a token we mint with the right key and claims works.
	if res := s.do(http.MethodGet, "/api/me", map[string]string{"x-access-token": sign(jwt.SigningMethodEdDSA, key.Private, key.ID, valid())}, ""); res.Status != 200 {
		t.Fatalf("control token rejected: %d %s", res.Status, res.Body)
	}
	for name, bt := range bad {
		t.Run(name, func(t *testing.T) {
			res := s.do(http.MethodGet, "/api/me", map[string]string{"Authorization": "Bearer " + bt}, "")
			if res.Status != http.StatusUnauthorized {
				t.Fatalf("status %d: %s", res.Status, res.Body)
			}
			if e := res.JSON(t); e["status"] != "error" || e["data"] != nil {
				t.Fatalf("envelope: %s", res.Body)
			}
		})
	}
}

func TestMetricsExposed(t *testing.T) {
	backend := backendRedis
	s := startSite(t, backend, "", noraina)
	s.postJSON("/api/register", `{"name":"U","mail":"metrics@example.com","password":"my_password"}`)
	s.postJSON("/api/register", `{"name":"U","mail":"metrics@example.com","password":"my_password"}`)
	s.postJSON("/api/register", `{`)
	res, err := http.Get(fmt.Sprintf("http://localhost:%d/metrics", adminPort))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var b strings.Builder
	if _, err := fmt.Fprint(&b, readAll(t, res)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`caddy_register_registrations_total{contract="noraina",outcome="created"}`,
		`caddy_register_registrations_total{contract="noraina",outcome="duplicate"}`,
		`caddy_register_registrations_total{contract="noraina",outcome="invalid"}`,
		`caddy_register_hash_seconds_count{algorithm="argon2id"}`,
		`caddy_register_hash_queue_wait_seconds_count`,
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
