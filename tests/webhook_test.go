package tests

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// Webhooks through Caddy to a real receiver (an httptest server), their
// signatures checked here with crypto/hmac, not with the plugin's code.

// newWhsec returns a fresh Standard Webhooks secret and its key.
func newWhsec(t *testing.T) (string, []byte) {
	t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	return "whsec_" + base64.StdEncoding.EncodeToString(key), key
}

// delivery is one request the receiver got.
type delivery struct {
	ID, Timestamp, Signature string
	Body                     []byte
	Type                     string
	Data                     map[string]any
	Answered                 int
}

// receiver records webhook requests and answers each with answer(d) (200
// when nil).
type receiver struct {
	t   *testing.T
	srv *httptest.Server

	mu     sync.Mutex
	got    []delivery
	answer func(d *delivery) int
	notify chan struct{}
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{t: t, notify: make(chan struct{}, 1000)}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	d := delivery{
		ID: req.Header.Get("webhook-id"), Timestamp: req.Header.Get("webhook-timestamp"),
		Signature: req.Header.Get("webhook-signature"), Body: body,
	}
	var env struct {
		Type string         `json:"type"`
		Data map[string]any `json:"data"`
	}
	_ = json.Unmarshal(body, &env)
	d.Type, d.Data = env.Type, env.Data
	r.mu.Lock()
	status := http.StatusOK
	if r.answer != nil {
		status = r.answer(&d)
	}
	d.Answered = status
	r.got = append(r.got, d)
	r.mu.Unlock()
	w.WriteHeader(status)
	r.notify <- struct{}{}
}

func (r *receiver) setAnswer(f func(d *delivery) int) {
	r.mu.Lock()
	r.answer = f
	r.mu.Unlock()
}

func (r *receiver) all() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

// await waits until cond holds of the deliveries so far.
func (r *receiver) await(what string, cond func([]delivery) bool) []delivery {
	r.t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		if got := r.all(); cond(got) {
			return got
		}
		select {
		case <-r.notify:
		case <-deadline:
			r.t.Fatalf("timed out waiting for %s; got %s", what, summary(r.all()))
		}
	}
}

func summary(ds []delivery) string {
	var b strings.Builder
	for _, d := range ds {
		fmt.Fprintf(&b, "\n  %s %s %v -> %d", d.ID, d.Type, d.Data["email"], d.Answered)
	}
	return b.String()
}

// delivered are the deliveries answered 2xx.
func delivered(ds []delivery) []delivery {
	var out []delivery
	for _, d := range ds {
		if d.Answered/100 == 2 {
			out = append(out, d)
		}
	}
	return out
}

// verify checks d's signature the Standard Webhooks way with crypto/hmac:
// every key must match one of the space-separated "v1,<base64>" entries.
func verify(t *testing.T, d delivery, keys ...[]byte) {
	t.Helper()
	ts, err := strconv.ParseInt(d.Timestamp, 10, 64)
	if err != nil {
		t.Fatalf("webhook-timestamp %q: %v", d.Timestamp, err)
	}
	if skew := time.Since(time.Unix(ts, 0)); skew > 5*time.Minute || skew < -5*time.Minute {
		t.Fatalf("webhook-timestamp %d is %v off", ts, skew)
	}
	if !strings.HasPrefix(d.ID, "msg_") {
		t.Fatalf("webhook-id %q", d.ID)
	}
	sigs := strings.Fields(d.Signature)
	if len(sigs) != len(keys) {
		t.Fatalf("%d signatures (%q), want %d", len(sigs), d.Signature, len(keys))
	}
	for _, key := range keys {
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(d.ID + "." + d.Timestamp + "."))
		mac.Write(d.Body)
		want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
		ok := false
		for _, s := range sigs {
			ok = ok || hmac.Equal([]byte(s), []byte(want))
		}
		if !ok {
			t.Fatalf("no signature of %s matches a key: %q", d.ID, d.Signature)
		}
	}
}

// shortRetry makes a failed event come again within ~100ms, 20 times
// before it is parked (the real schedule is 5s, 5m, 30m, 2h, 5h, 10h, 10h).
var shortRetry = "webhook_retry" + strings.Repeat(" 100ms", 20)

func webhookGlobal(url string, secrets ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\t\twebhook %s {\n", shortRetry, url)
	for _, s := range secrets {
		fmt.Fprintf(&b, "\t\t\tsecret %s\n", s)
	}
	b.WriteString("\t\t}")
	return b.String()
}

// eventsOf are the types of ds for one e-mail (user.deleted events carry
// no e-mail: they go by user id).
func eventsOf(ds []delivery, userID string) []string {
	var out []string
	for _, d := range ds {
		if d.Data["id"] == userID || d.Data["user_id"] == userID {
			out = append(out, d.Type)
		}
	}
	return out
}

func userIDOf(ds []delivery, email string) string {
	for _, d := range ds {
		if d.Type == "user.created" && d.Data["email"] == email {
			id, _ := d.Data["id"].(string)
			return id
		}
	}
	return ""
}

// A registration sends user.created then session.created (noraina's
// answer carries a token, whose session opens in the same step), signed
// with both configured secrets; a 500 is retried with the same id and
// body.
func TestWebhookDelivery(t *testing.T) { eachBackend(t, testWebhookDelivery) }

func testWebhookDelivery(t *testing.T, backend string) {
	rcv := newReceiver(t)
	sec1, key1 := newWhsec(t)
	sec2, key2 := newWhsec(t)
	t.Setenv("WH_SECRET_TEST", sec2)
	failed := map[string]bool{}
	rcv.setAnswer(func(d *delivery) int {
		if d.Type == "session.created" && !failed[d.ID] {
			failed[d.ID] = true
			return http.StatusInternalServerError
		}
		return http.StatusNoContent
	})
	s := startSite(t, backend, webhookGlobal(rcv.srv.URL+"/hooks", sec1, "{env.WH_SECRET_TEST}"), noraina)
	res := s.postJSON("/api/register", `{"name":"Hook User","mail":"hook@example.com","password":"my_password"}`)
	if res.Status != http.StatusCreated {
		t.Fatalf("register: %d %s", res.Status, res.Body)
	}
	got := rcv.await("user.created and session.created delivered", func(ds []delivery) bool {
		return len(delivered(ds)) >= 2
	})
	for _, d := range got {
		verify(t, d, key1, key2)
		if strings.Contains(string(d.Body), "my_password") || strings.Contains(string(d.Body), "argon2") {
			t.Fatalf("the event carries the password or its hash: %s", d.Body)
		}
	}
	ok := delivered(got)
	if ok[0].Type != "user.created" || ok[1].Type != "session.created" {
		t.Fatalf("delivered in order %s", summary(ok))
	}
	if ok[0].Data["email"] != "hook@example.com" || ok[0].Data["status"] != "pending" || ok[0].Data["contract"] != "noraina" {
		t.Fatalf("user.created data: %s", ok[0].Body)
	}
	var env map[string]any
	if err := json.Unmarshal(ok[0].Body, &env); err != nil || len(env) != 3 || env["timestamp"] == nil {
		t.Fatalf("body is not {type, timestamp, data}: %s", ok[0].Body)
	}
	// The 500 was retried: same id, same body.
	var first *delivery
	for i, d := range got {
		if d.Answered == http.StatusInternalServerError {
			first = &got[i]
		}
	}
	if first == nil || first.ID != ok[1].ID || string(first.Body) != string(ok[1].Body) {
		t.Fatalf("no retry of the failed delivery with its id and body: %s", summary(got))
	}
	if ok[1].Data["user_id"] != ok[0].Data["id"] {
		t.Fatalf("session.created of another user: %s", ok[1].Body)
	}
}

// The receiver is down (503, then connection refused) while users
// register: every event arrives once it is back, each user's in order,
// and no user's later event is delivered before its earlier one.
func TestWebhookOutage(t *testing.T) { eachBackend(t, testWebhookOutage) }

func testWebhookOutage(t *testing.T, backend string) {
	rcv := newReceiver(t)
	sec, key := newWhsec(t)
	var mu sync.Mutex
	down, failures := true, 0
	rcv.setAnswer(func(*delivery) int {
		mu.Lock()
		defer mu.Unlock()
		if down {
			failures++
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	s := startSite(t, backend, webhookGlobal(rcv.srv.URL, sec), noraina)
	emails := []string{"out1@example.com", "out2@example.com", "out3@example.com"}
	for _, e := range emails {
		if res := s.postJSON("/api/register", fmt.Sprintf(`{"name":"Out","mail":%q,"password":"my_password"}`, e)); res.Status != http.StatusCreated {
			t.Fatalf("register %s: %d %s", e, res.Status, res.Body)
		}
	}
	// Down for a while: several failed attempts of every user's first
	// event, and nothing behind them tried.
	rcv.await("failed attempts while down", func(ds []delivery) bool { return len(ds) >= 3*len(emails) })
	for _, d := range rcv.all() {
		if d.Type != "user.created" {
			t.Fatalf("%s tried while the user's user.created had not gone through: %s", d.Type, summary(rcv.all()))
		}
	}
	mu.Lock()
	down = false
	mu.Unlock()
	got := rcv.await("every event after the outage", func(ds []delivery) bool {
		return len(delivered(ds)) >= 2*len(emails)
	})
	ok := delivered(got)
	for _, e := range emails {
		id := userIDOf(ok, e)
		if evs := eventsOf(ok, id); strings.Join(evs, ",") != "user.created,session.created" {
			t.Fatalf("%s: delivered %v", e, evs)
		}
	}
	for _, d := range got {
		verify(t, d, key)
	}
}

// A 410 disables the endpoint: the events behind are parked without a
// request, and counted.
func TestWebhookGone(t *testing.T) {
	rcv := newReceiver(t)
	sec, _ := newWhsec(t)
	rcv.setAnswer(func(*delivery) int { return http.StatusGone })
	s := startSite(t, backendRedis, webhookGlobal(rcv.srv.URL, sec), noraina)
	if res := s.postJSON("/api/register", `{"name":"Gone","mail":"gone@example.com","password":"my_password"}`); res.Status != http.StatusCreated {
		t.Fatalf("register: %d %s", res.Status, res.Body)
	}
	rcv.await("the 410", func(ds []delivery) bool { return len(ds) >= 1 })
	// Both events end parked: user.created by its 410, session.created
	// without being sent.
	parked := s.rdb.Keys(t.Context(), "{"+s.ns+"}:outbox:parked").Val()
	deadline := time.Now().Add(30 * time.Second)
	for s.rdb.ZCard(t.Context(), "{"+s.ns+"}:outbox:parked").Val() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("events not parked after the 410 (%v): %s", parked, summary(rcv.all()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := rcv.all(); len(got) != 1 {
		t.Fatalf("the disabled endpoint got more requests: %s", summary(got))
	}
	res, err := http.Get(fmt.Sprintf("http://localhost:%d/metrics", adminPort))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if body := readAll(t, res); !strings.Contains(body, `caddy_register_webhook_total{result="parked"}`) {
		t.Fatal("metrics lack the parked webhooks")
	}
}

// newHook is a before_register receiver answering with answer.
func newHook(t *testing.T, answer func(d *delivery) (int, string)) *receiver {
	h := &receiver{t: t, notify: make(chan struct{}, 1000)}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		d := delivery{ID: req.Header.Get("webhook-id"), Timestamp: req.Header.Get("webhook-timestamp"),
			Signature: req.Header.Get("webhook-signature"), Body: body}
		var env struct {
			Type string         `json:"type"`
			Data map[string]any `json:"data"`
		}
		_ = json.Unmarshal(body, &env)
		d.Type, d.Data = env.Type, env.Data
		status, reply := answer(&d)
		d.Answered = status
		h.mu.Lock()
		h.got = append(h.got, d)
		h.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, reply)
		h.notify <- struct{}{}
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// The veto hook's outcomes: 2xx lets through with the app's permissions,
// 4xx refuses with the app's message in the contract's envelope, a 5xx or
// a timeout follows on_error; a request failing validation never reaches
// it.
func TestBeforeRegister(t *testing.T) {
	sec, key := newWhsec(t)
	rcv := newReceiver(t)
	slow := make(chan struct{})
	hook := newHook(t, func(d *delivery) (int, string) {
		switch email, _ := d.Data["email"].(string); {
		case strings.HasPrefix(email, "ok"):
			return http.StatusOK, `{"permissions":["beta","manage-users"]}`
		case strings.HasPrefix(email, "no"):
			return http.StatusForbidden, `{"message":"Sign-ups from this domain are closed"}`
		case strings.HasPrefix(email, "slow"):
			<-slow
			return http.StatusOK, `{}`
		}
		return http.StatusInternalServerError, `oops`
	})
	// Registered after the server's Close, so it runs first: Close waits
	// for the handlers held on slow.
	t.Cleanup(func() { close(slow) })
	global := func(onError string) string {
		return webhookGlobal(rcv.srv.URL, sec) + fmt.Sprintf(`
		before_register %s {
			timeout 300ms
			on_error %s
		}`, hook.srv.URL, onError)
	}
	s := startSite(t, backendRedis, global("deny"), fmt.Sprintf(rpostHandler, "")+"\n\tregister noraina /n")
	reg := func(path, body string) *response {
		return s.do(http.MethodPost, path, map[string]string{"Content-Type": "application/json"}, body)
	}
	noraina := func(email string) string {
		return fmt.Sprintf(`{"name":"Hook","mail":%q,"password":"my_password"}`, email)
	}

	// 2xx: through, with the app's permission (not the admin one).
	if res := reg("/n/register", noraina("ok@example.com")); res.Status != http.StatusCreated {
		t.Fatalf("allowed: %d %s", res.Status, res.Body)
	}
	calls := hook.all()
	if len(calls) != 1 || calls[0].Type != "user.before_register" || calls[0].Data["email"] != "ok@example.com" ||
		calls[0].Data["contract"] != "noraina" || strings.Contains(string(calls[0].Body), "my_password") {
		t.Fatalf("hook call: %s", summary(calls))
	}
	verify(t, calls[0], key) // by default, the first webhook's secret
	created := rcv.await("user.created", func(ds []delivery) bool { return userIDOf(ds, "ok@example.com") != "" })
	for _, d := range created {
		if d.Type == "user.created" {
			perms := fmt.Sprint(d.Data["permissions"])
			if !strings.Contains(perms, "beta") || strings.Contains(perms, "manage-users") {
				t.Fatalf("permissions after the hook: %s", perms)
			}
		}
	}

	// 4xx: refused with the app's message, in each contract's envelope.
	for _, c := range []struct{ name, path, body string }{
		{"noraina", "/n/register", noraina("no@example.com")},
		{"rpost", "/api/v1/Account/Register", strings.Replace(docRpostSample, "user@company.com", "no@company.com", 1)},
	} {
		res := reg(c.path, c.body)
		if res.Status != http.StatusForbidden || !strings.Contains(string(res.Body), "Sign-ups from this domain are closed") {
			t.Errorf("%s refused: %d %s", c.name, res.Status, res.Body)
		}
	}
	if res := reg("/n/register", noraina("no@example.com")); res.JSON(t)["status"] != "error" {
		t.Errorf("noraina envelope: %s", res.Body)
	}

	// Validation fails: the hook is not called.
	before := len(hook.all())
	if res := reg("/n/register", `{"name":"Hook","mail":"not-an-address","password":"my_password"}`); res.Status != http.StatusBadRequest {
		t.Fatalf("invalid: %d %s", res.Status, res.Body)
	}
	if res := reg("/n/register", noraina("ok2@example.com")[:20]); res.Status != http.StatusBadRequest {
		t.Fatalf("malformed: %d %s", res.Status, res.Body)
	}
	if n := len(hook.all()); n != before {
		t.Fatalf("the hook was called for invalid requests (%d calls)", n-before)
	}

	// 5xx and timeout, on_error deny: 503, nothing created.
	for _, email := range []string{"err@example.com", "slow@example.com"} {
		res := reg("/n/register", noraina(email))
		if res.Status != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
			t.Fatalf("%s with on_error deny: %d %s", email, res.Status, res.Body)
		}
	}
	// on_error allow: through.
	s.load(strings.Replace(s.cfg, "on_error deny", "on_error allow", 1))
	for _, email := range []string{"err@example.com", "slow@example.com"} {
		if res := reg("/n/register", noraina(email)); res.Status != http.StatusCreated {
			t.Fatalf("%s with on_error allow: %d %s", email, res.Status, res.Body)
		}
	}
}

// saymon's signup refused by the hook: 403 and the app's message in
// saymon's own error body.
func TestBeforeRegisterSaymon(t *testing.T) {
	sec, _ := newWhsec(t)
	hook := newHook(t, func(d *delivery) (int, string) {
		if d.Data["email"] == "no@example.com" {
			return http.StatusForbidden, `{"message":"Sign-ups from this domain are closed"}`
		}
		return http.StatusOK, `{}`
	})
	s := startSaymon(t, fmt.Sprintf("before_register %s {\n\t\t\tsecret %s\n\t\t}", hook.srv.URL, sec), "")
	tok, ans := s.challenge()
	res := s.signup(rootAuth, signupBody(tok, ans, "refused_login", "no@example.com", "1111"))
	if res.Status != http.StatusForbidden || !strings.Contains(string(res.Body), "Sign-ups from this domain are closed") {
		t.Fatalf("refused signup: %d %s", res.Status, res.Body)
	}
	tok, ans = s.challenge()
	if res := s.signup(rootAuth, signupBody(tok, ans, "ok_login", "ok@example.com", "1111")); res.Status/100 != 2 {
		t.Fatalf("allowed signup: %d %s", res.Status, res.Body)
	}
	if n := len(hook.all()); n != 2 {
		t.Fatalf("%d hook calls, want 2", n)
	}
}

// indiqus creates users through its admin route, which is a registration
// too: the hook's refusal comes back in indiqus' error body.
func TestBeforeRegisterIndiqus(t *testing.T) {
	sec, _ := newWhsec(t)
	hook := newHook(t, func(d *delivery) (int, string) {
		return http.StatusUnprocessableEntity, `{"message":"Sign-ups from this domain are closed"}`
	})
	global := fmt.Sprintf("admin root %s manage-users\n\t\tbefore_register %s {\n\t\t\tsecret %s\n\t\t}",
		mustBcrypt(t, "rootpw"), hook.srv.URL, sec)
	s := &indiqusSite{site: startSite(t, backendRedis, global, indiqusHandler)}
	s.adminToken = s.login("root", "rootpw")
	res := s.create(s.adminToken, "", fixedIndiqusSample)
	if res.Status != http.StatusForbidden || !strings.Contains(string(res.Body), "Sign-ups from this domain are closed") ||
		!strings.Contains(string(res.Body), `"code":"FORBIDDEN"`) {
		t.Fatalf("refused create: %d %s", res.Status, res.Body)
	}
}

// soajs' addUser refused by the hook: its error envelope, code 902 with
// the app's message.
func TestBeforeRegisterSoajs(t *testing.T) {
	sec, _ := newWhsec(t)
	hook := newHook(t, func(d *delivery) (int, string) {
		return http.StatusForbidden, `{"message":"Sign-ups from this domain are closed"}`
	})
	global := fmt.Sprintf(`admin root %s manage-users
		tenant DBTN %s Demo Tenant
		group DBTN administrator
		group DBTN user
		before_register %s {
			secret %s
		}`, mustBcrypt(t, "rootpw"), soajsDBTN, hook.srv.URL, sec)
	s := &soajsSite{site: startSite(t, backendRedis, global, "register soajs")}
	res := s.addJSON(soajsDocQuery, soajsDocJSON)
	if res.Status != http.StatusForbidden || !strings.Contains(string(res.Body), "Sign-ups from this domain are closed") ||
		!strings.Contains(string(res.Body), `"code":902`) {
		t.Fatalf("refused addUser: %d %s", res.Status, res.Body)
	}
	if len(hook.all()) != 1 {
		t.Fatalf("%d hook calls", len(hook.all()))
	}
}

// The demo Caddyfile shows a webhook working with no setup: a
// registration's events reach the demo's own /demo/webhook route, and the
// access log shows the deliveries.
func TestDemoWebhook(t *testing.T) {
	raw, err := os.ReadFile("../Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(t.TempDir(), "access.log")
	t.Setenv("REGISTER_ADDR", fmt.Sprintf("localhost:%d", httpPort))
	t.Setenv("REGISTER_CADDY_ADMIN", fmt.Sprintf("localhost:%d", adminPort))
	t.Setenv("REGISTER_ACCESS_LOG", "file "+logFile)
	t.Setenv("REGISTER_REDIS", startOwnRedis(t).URL(0))
	tc := caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{TestRequestTimeout: 60 * time.Second})
	tc.InitServer(string(raw), "caddyfile")
	base := fmt.Sprintf("http://localhost:%d", httpPort)
	res, err := http.Post(base+"/api/register", "application/json",
		strings.NewReader(`{"name":"Demo","mail":"demo@example.com","password":"my_password"}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("register: %d", res.StatusCode)
	}
	var log string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		b, _ := os.ReadFile(logFile)
		log = string(b)
		if strings.Count(log, `"uri":"/demo/webhook"`) >= 2 {
			break
		}
	}
	if n := strings.Count(log, `"uri":"/demo/webhook"`); n < 2 || !strings.Contains(log, `"status":204`) ||
		!strings.Contains(log, "Webhook-Id") {
		t.Fatalf("%d deliveries in the demo's access log:\n%s", n, log)
	}
	if strings.Contains(log, "demo@example.com") {
		t.Fatalf("the access log shows the user's data:\n%s", log)
	}
}
