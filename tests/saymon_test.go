package tests

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/caddyregister/caddyregister/caddyregister/captcha"
)

// The document's signup request.
const docSignupRequest = `{
    "token": "5c2ef019-cca8-40de-b306-050dd976c743",
    "captcha": "1qTY",
    "login": "user_login",
    "email": "user_email@example.com",
    "password": "1111"
}`

// docUserModel is the document's response, with the id left out (it is
// ours to draw).
const docUserModel = `{
    "login": "user_login",
    "email": "user_email@example.com",
    "status": 0,
    "eventFilter": [],
    "objectPermissions": {
        "include": [
            "817",
            "5e84d165866ec23538892f7d"
        ],
        "exclude": [
            "5e84d212866ec23538893061"
        ]
    },
    "permissions": [
        "manage-objects",
        "manage-links",
        "manage-service-properties",
        "view-section-stat",
        "view-section-monitoring",
        "view-section-history-graph"
    ],
    "contacts": []`

// saymonHandler mounts the contract as the demo Caddyfile does: defaults
// that reproduce the document's User model, a policy lenient enough for its
// example password "1111".
const saymonHandler = `register saymon /node/api {
		default_permissions manage-objects manage-links manage-service-properties view-section-stat view-section-monitoring view-section-history-graph
		default_object_permissions include 817 5e84d165866ec23538892f7d
		default_object_permissions exclude 5e84d212866ec23538893061
		password {
			min_length 4
		}
		%s
	}`

type saymonSite struct {
	*site
	sink *smtpSink
}

func basicHeader(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func mustBcrypt(t *testing.T, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), 4)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// startSaymon starts a site with two admins (root holds manage-users,
// viewer does not), mail to a real SMTP sink, and 3-character CAPTCHAs the
// test can solve from the stored answer hash.
func startSaymon(t *testing.T, globalExtra, handlerExtra string) *saymonSite {
	t.Helper()
	sink := startSMTP(t)
	global := fmt.Sprintf("admin root %s manage-users\n\t\tadmin viewer %s view-section-stat\n\t\tsmtp %s\n\t\tcaptcha_length 3\n\t\t%s",
		mustBcrypt(t, "rootpw"), mustBcrypt(t, "viewerpw"), sink.URL(), globalExtra)
	s := startSite(t, backendRedis, global, fmt.Sprintf(saymonHandler, handlerExtra))
	return &saymonSite{site: s, sink: sink}
}

var rootAuth = map[string]string{"Authorization": basicHeader("root", "rootpw")}

// challenge generates a CAPTCHA and solves it: the store keeps only a hash
// of the answer, and 3 characters are few enough to try them all.
func (s *saymonSite) challenge() (token, answer string) {
	s.t.Helper()
	res := s.do(http.MethodGet, "/node/api/users/captcha", rootAuth, "")
	if res.Status != 200 {
		s.t.Fatalf("captcha: %d %s", res.Status, res.Body)
	}
	var ch struct {
		CAPTCHA string `json:"CAPTCHA"`
		Token   string `json:"token"`
	}
	if err := json.Unmarshal(res.Body, &ch); err != nil || !strings.HasPrefix(ch.CAPTCHA, "<svg") || ch.Token == "" {
		s.t.Fatalf("captcha reply: %s", res.Body)
	}
	stored, err := s.rdb.Get(s.t.Context(), "{"+s.ns+"}:challenge:"+ch.Token).Bytes()
	if err != nil {
		s.t.Fatalf("stored challenge: %v", err)
	}
	alpha := []rune(captcha.DefaultAlphabet)
	for _, a := range alpha {
		for _, b := range alpha {
			for _, c := range alpha {
				cand := string([]rune{a, b, c})
				if captcha.Check(stored, cand) {
					if strings.Contains(ch.CAPTCHA, cand) {
						s.t.Fatalf("the answer %q is readable in the SVG", cand)
					}
					return ch.Token, cand
				}
			}
		}
	}
	s.t.Fatal("could not solve the CAPTCHA")
	return "", ""
}

func signupBody(token, answer, login, email, password string) string {
	b, _ := json.Marshal(map[string]string{"token": token, "captcha": answer, "login": login, "email": email, "password": password})
	return string(b)
}

func (s *saymonSite) signup(h map[string]string, body string) *response {
	s.t.Helper()
	hh := map[string]string{"Content-Type": "application/json"}
	for k, v := range h {
		hh[k] = v
	}
	return s.do(http.MethodPost, "/node/api/users/signup", hh, body)
}

var linkRE = regexp.MustCompile(`https?://[^\s"<>]+/users/confirm\?token=[A-Za-z0-9_%-]+`)

func TestSaymonFullFlow(t *testing.T) {
	s := startSaymon(t, "", "")
	tok, ans := s.challenge()
	// The document's request, with a fresh token and solution.
	body := strings.NewReplacer("5c2ef019-cca8-40de-b306-050dd976c743", tok, `"1qTY"`, `"`+strings.ToLower(ans)+`"`).Replace(docSignupRequest)
	res := s.signup(rootAuth, body)
	if res.Status != http.StatusOK {
		t.Fatalf("signup: %d %s", res.Status, res.Body)
	}
	var got map[string]json.RawMessage
	if err := json.Unmarshal(res.Body, &got); err != nil {
		t.Fatal(err)
	}
	var id string
	if err := json.Unmarshal(got["id"], &id); err != nil || !regexp.MustCompile(`^[0-9a-f]{24}$`).MatchString(id) {
		t.Fatalf("id %s", got["id"])
	}
	// Same fields, same order, same values as the document.
	want := compactJSON(t, docUserModel+`, "id": "`+id+`"}`)
	if string(res.Body) != want {
		t.Fatalf("user model\n got %s\nwant %s", res.Body, want)
	}

	// The confirmation mail arrives and carries the link.
	m := s.sink.waitFor("user_email@example.com", 30*time.Second)
	hdr, text, html := m.parts(t)
	if hdr.Get("Subject") == "" || !strings.Contains(hdr.Get("From"), "register@example.com") {
		t.Fatalf("headers: %v", hdr)
	}
	link := linkRE.FindString(text)
	if link == "" || !strings.Contains(html, "/users/confirm?token=") {
		t.Fatalf("no confirmation link in\n%s\n%s", text, html)
	}
	if !strings.HasPrefix(link, s.base+"/node/api/users/confirm?token=") {
		t.Fatalf("link %q is not built from the request's host", link)
	}
	u, _ := url.Parse(link)
	for i := 0; i < 2; i++ { // the second click answers the same
		res := s.do(http.MethodGet, u.RequestURI(), map[string]string{"Accept": "application/json"}, "")
		if res.Status != 200 {
			t.Fatalf("confirm %d: %d %s", i, res.Status, res.Body)
		}
		var um struct {
			Status int    `json:"status"`
			ID     string `json:"id"`
		}
		if err := json.Unmarshal(res.Body, &um); err != nil || um.Status != 1 || um.ID != id {
			t.Fatalf("confirm %d: %s", i, res.Body)
		}
	}
	// A person's browser gets the page, and its button's POST a page.
	res = s.do(http.MethodPost, u.Path, map[string]string{"Accept": "text/html", "Content-Type": "application/x-www-form-urlencoded"}, "token="+url.QueryEscape(u.Query().Get("token")))
	if res.Status != 200 || !strings.Contains(string(res.Body), "confirmed") {
		t.Fatalf("confirm page: %d %s", res.Status, res.Body)
	}
	// A forged or altered token does nothing.
	res = s.do(http.MethodPost, "/node/api/users/confirm?token=AAAA"+u.Query().Get("token")[4:], nil, "")
	if res.Status != 400 || !strings.Contains(string(res.Body), `"code":"token_invalid"`) {
		t.Fatalf("forged token: %d %s", res.Status, res.Body)
	}

	// Duplicates.
	tok, ans = s.challenge()
	res = s.signup(rootAuth, signupBody(tok, ans, "USER_LOGIN", "other@example.com", "1111"))
	if res.Status != 409 || !strings.Contains(string(res.Body), `"code":"login_taken"`) {
		t.Fatalf("duplicate login: %d %s", res.Status, res.Body)
	}
	tok, ans = s.challenge()
	res = s.signup(rootAuth, signupBody(tok, ans, "other", "User_Email@example.com", "1111"))
	if res.Status != 409 || !strings.Contains(string(res.Body), `"code":"email_taken"`) {
		t.Fatalf("duplicate email: %d %s", res.Status, res.Body)
	}
}

func TestSaymonCaptchaFailures(t *testing.T) {
	// The challenges solved here live for the default 5 minutes: drawing
	// and solving one can take longer than a second on a loaded machine.
	// Expiry is tested below on a site with captcha_ttl 1s.
	s := startSaymon(t, "", "")
	expectErr := func(name string, res *response, status int, code string) {
		t.Helper()
		if res.Status != status || !strings.Contains(string(res.Body), `"code":"`+code+`"`) {
			t.Fatalf("%s: %d %s, want %d %s", name, res.Status, res.Body, status, code)
		}
	}
	before := s.dataKeys()
	tok, ans := s.challenge()
	wrong := "XXX"
	if strings.EqualFold(ans, wrong) {
		wrong = "YYY"
	}
	expectErr("wrong", s.signup(rootAuth, signupBody(tok, wrong, "u1", "u1@example.com", "password1")), 400, "captcha_wrong")
	// The wrong attempt consumed the challenge: the right answer is now late.
	expectErr("reused after wrong", s.signup(rootAuth, signupBody(tok, ans, "u1", "u1@example.com", "password1")), 400, "captcha_expired")
	expectErr("missing", s.signup(rootAuth, signupBody("", "", "u1", "u1@example.com", "password1")), 400, "captcha_required")
	expectErr("unknown token", s.signup(rootAuth, signupBody("5c2ef019-cca8-40de-b306-050dd976c743", "1qTY", "u1", "u1@example.com", "password1")), 400, "captcha_expired")
	if after := s.dataKeys(); !equalStrings(before, after) {
		t.Fatalf("failed signups changed the store: %v -> %v", before, after)
	}
	// A used token cannot be used again.
	tok, ans = s.challenge()
	if res := s.signup(rootAuth, signupBody(tok, ans, "u2", "u2@example.com", "password1")); res.Status != 200 {
		t.Fatalf("signup: %d %s", res.Status, res.Body)
	}
	expectErr("reused after success", s.signup(rootAuth, signupBody(tok, ans, "u3", "u3@example.com", "password1")), 400, "captcha_expired")

	// With captcha_ttl 1s a challenge is stored for at most a second, and
	// once it has expired (waited for, not slept) the right answer is
	// refused as expired.
	s = startSaymon(t, "captcha_ttl 1s", "")
	before = s.dataKeys()
	tok, ans, key, ttl := s.challengeTTL()
	if ttl <= 0 || ttl > time.Second {
		t.Fatalf("challenge stored for %v, want at most captcha_ttl 1s", ttl)
	}
	s.waitExpired(key)
	expectErr("expired", s.signup(rootAuth, signupBody(tok, ans, "u1", "u1@example.com", "password1")), 400, "captcha_expired")
	if after := s.dataKeys(); !equalStrings(before, after) {
		t.Fatalf("an expired signup changed the store: %v -> %v", before, after)
	}
}

func TestSaymonConcurrentCaptcha(t *testing.T) {
	s := startSaymon(t, "", "")
	tok, ans := s.challenge()
	const n = 10
	var wg sync.WaitGroup
	statuses := make([]int, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			statuses[i] = s.signup(rootAuth, signupBody(tok, ans, fmt.Sprintf("racer%d", i), fmt.Sprintf("racer%d@example.com", i), "password1")).Status
		}(i)
	}
	wg.Wait()
	ok := 0
	for _, st := range statuses {
		if st == 200 {
			ok++
		} else if st != 400 {
			t.Fatalf("status %d", st)
		}
	}
	if ok != 1 {
		t.Fatalf("%d signups passed with one CAPTCHA token, want 1 (%v)", ok, statuses)
	}
}

func TestSaymonAuth(t *testing.T) {
	s := startSaymon(t, "", "")
	tok, ans := s.challenge()
	body := signupBody(tok, ans, "authuser", "auth@example.com", "password1")
	for _, c := range []struct {
		name   string
		h      map[string]string
		status int
		code   string
	}{
		{"no auth", nil, 401, "unauthenticated"},
		{"wrong password", map[string]string{"Authorization": basicHeader("root", "nope")}, 401, "unauthenticated"},
		{"unknown admin", map[string]string{"Authorization": basicHeader("ghost", "rootpw")}, 401, "unauthenticated"},
		{"bad token", map[string]string{"x-access-token": "not-a-token"}, 401, "unauthenticated"},
		{"without manage-users", map[string]string{"Authorization": basicHeader("viewer", "viewerpw")}, 403, "forbidden"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, res := range []*response{
				s.do(http.MethodGet, "/node/api/users/captcha", c.h, ""),
				s.signup(c.h, body),
			} {
				if res.Status != c.status || !strings.Contains(string(res.Body), `"code":"`+c.code+`"`) {
					t.Fatalf("%d %s", res.Status, res.Body)
				}
				if c.status == 401 && !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Basic ") {
					t.Fatalf("WWW-Authenticate %q", res.Header.Get("WWW-Authenticate"))
				}
			}
		})
	}
	// The challenge survived the refused calls: auth is checked first.
	if res := s.signup(rootAuth, body); res.Status != 200 {
		t.Fatalf("signup after refusals: %d %s", res.Status, res.Body)
	}
}

func TestSaymonSignupOff(t *testing.T) {
	s := startSaymon(t, "", "signup off")
	res := s.do(http.MethodGet, "/node/api/users/captcha", rootAuth, "")
	if res.Status != 403 || !strings.Contains(string(res.Body), "signup_disabled") {
		t.Fatalf("captcha: %d %s", res.Status, res.Body)
	}
	res = s.signup(rootAuth, docSignupRequest)
	if res.Status != 403 || !strings.Contains(string(res.Body), "server.user.auth_enabled") {
		t.Fatalf("signup: %d %s", res.Status, res.Body)
	}
}

func TestSaymonPasswordPolicy(t *testing.T) {
	s := startSaymon(t, "", `password {
			min_length 8
			min_capital 1
			min_digits 1
		}`)
	for _, c := range []struct{ pw, rule string }{
		{"Ab1", "length"},
		{"abcdefg1", "minCapital"},
		{"Abcdefgh", "minDigits"},
	} {
		tok, ans := s.challenge()
		res := s.signup(rootAuth, signupBody(tok, ans, "pw", "pw@example.com", c.pw))
		if res.Status != 400 || !strings.Contains(string(res.Body), `"code":"weak_password"`) || !strings.Contains(string(res.Body), `"rule":"`+c.rule+`"`) {
			t.Fatalf("%q: %d %s", c.pw, res.Status, res.Body)
		}
	}
}

func TestSaymonSMTPOutage(t *testing.T) {
	s := startSaymon(t, "", "")
	addr := s.sink.addr
	s.sink.Stop()
	tok, ans := s.challenge()
	if res := s.signup(rootAuth, signupBody(tok, ans, "outage", "outage@example.com", "password1")); res.Status != 200 {
		t.Fatalf("signup during outage: %d %s", res.Status, res.Body)
	}
	time.Sleep(500 * time.Millisecond) // a delivery attempt fails meanwhile
	if s.sink.count() != 0 {
		t.Fatal("mail delivered while the server was down")
	}
	s.sink.Start(addr)
	// Redelivered after the backoff (5s ± 20% for the first retry).
	m := s.sink.waitFor("outage@example.com", 30*time.Second)
	if _, text, _ := m.parts(t); !linkRE.MatchString(text) {
		t.Fatalf("mail after outage: %s", text)
	}
}
