package tests

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// norainaRegister registers email and returns the 201 reply's token,
// checking the reply is exactly the document's, whatever the mode.
func norainaRegister(t *testing.T, s *site, email string) string {
	t.Helper()
	res := s.postJSON("/api/register", fmt.Sprintf(`{"name":"Ann","mail":%q,"password":"my_password"}`, email))
	if res.Status != http.StatusCreated {
		t.Fatalf("register: %d %s", res.Status, res.Body)
	}
	body := res.JSON(t)
	data, _ := body["data"].(map[string]any)
	if body["status"] != "success" || len(body) != 2 || data["message"] != "User successfully created." || len(data) != 2 {
		t.Fatalf("register reply is not the document's: %s", res.Body)
	}
	tok, _ := data["token"].(string)
	return tok
}

// norainaMe answers /me's data for tok.
func norainaMe(t *testing.T, s *site, tok string) map[string]any {
	t.Helper()
	me := s.do(http.MethodGet, "/api/me", map[string]string{"Authorization": "Bearer " + tok}, "")
	if me.Status != http.StatusOK {
		t.Fatalf("/me: %d %s", me.Status, me.Body)
	}
	return me.JSON(t)["data"].(map[string]any)
}

// jwtPermissions reads the permissions claim of a token.
func jwtPermissions(t *testing.T, tok string) []string {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Permissions []string `json:"permissions"`
		Status      string   `json:"status"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatalf("claims %s: %v", b, err)
	}
	return c.Permissions
}

func anyStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

// TestNorainaActivationAdmin: the default keeps users pending, as the
// document says, and serves no confirm route.
func TestNorainaActivationAdmin(t *testing.T) { eachBackend(t, testNorainaActivationAdmin) }

func testNorainaActivationAdmin(t *testing.T, backend string) {
	s := startSite(t, backend, "", noraina+` {
		default_permissions read
	}`)
	tok := norainaRegister(t, s, "admin-mode@example.com")
	if p := jwtPermissions(t, tok); len(p) != 0 {
		t.Fatalf("pending user's token has permissions %v", p)
	}
	d := norainaMe(t, s, tok)
	if d["status"] != "pending" || len(d["permissions"].([]any)) != 0 {
		t.Fatalf("/me: %v", d)
	}
	if res := s.do(http.MethodPost, "/api/confirm?token=x", nil, ""); string(res.Body) != "fallback" {
		t.Fatalf("admin mode serves /confirm: %d %s", res.Status, res.Body)
	}
	// An explicit admin is the same.
	s.load(strings.Replace(s.cfg, "default_permissions read", "default_permissions read\n\t\tactivation admin", 1))
	d = norainaMe(t, s, norainaRegister(t, s, "admin-mode2@example.com"))
	if d["status"] != "pending" {
		t.Fatalf("/me: %v", d)
	}
}

// TestNorainaActivationAuto: users are active at once, and the
// registration's token carries their default permissions.
func TestNorainaActivationAuto(t *testing.T) { eachBackend(t, testNorainaActivationAuto) }

func testNorainaActivationAuto(t *testing.T, backend string) {
	s := startSite(t, backend, "", noraina+` {
		activation auto
		default_permissions read write
	}`)
	tok := norainaRegister(t, s, "auto@example.com")
	if p := jwtPermissions(t, tok); !slices.Equal(p, []string{"read", "write"}) {
		t.Fatalf("token permissions %v, want the defaults", p)
	}
	d := norainaMe(t, s, tok)
	if d["status"] != "active" || !slices.Equal(anyStrings(d["permissions"]), []string{"read", "write"}) {
		t.Fatalf("/me: %v", d)
	}
	if res := s.do(http.MethodGet, "/api/confirm?token=x", nil, ""); string(res.Body) != "fallback" {
		t.Fatalf("auto mode serves /confirm: %d %s", res.Status, res.Body)
	}
}

var norainaLinkRE = regexp.MustCompile(`https?://[^\s"<>]+/api/confirm\?token=[A-Za-z0-9_%-]+`)

// TestNorainaActivationEmail: a confirmation mail through the outbox; the
// link's page changes nothing, its button's POST activates, a second use
// answers the same, a forged token is refused; unconfirmed accounts
// expire with their link as saymon's and rpost's do.
func TestNorainaActivationEmail(t *testing.T) { eachBackend(t, testNorainaActivationEmail) }

func testNorainaActivationEmail(t *testing.T, backend string) {
	sink := startSMTP(t)
	s := startSite(t, backend, "smtp "+sink.URL(), noraina+` {
		activation email
		default_permissions read
	}`)
	tok := norainaRegister(t, s, "mailed@example.com")
	if p := jwtPermissions(t, tok); len(p) != 0 {
		t.Fatalf("pending user's token has permissions %v", p)
	}
	if d := norainaMe(t, s, tok); d["status"] != "pending" {
		t.Fatalf("/me before confirming: %v", d)
	}
	m := sink.waitFor("mailed@example.com", 30*time.Second)
	hdr, text, html := m.parts(t)
	link := norainaLinkRE.FindString(text)
	if hdr.Get("Subject") != "Activate your account" || link == "" || !strings.Contains(html, "/api/confirm?token=") || !strings.Contains(text, "Hello Ann") {
		t.Fatalf("mail:\n%v\n%s\n%s", hdr, text, html)
	}
	if !strings.HasPrefix(link, s.base+"/api/confirm?token=") {
		t.Fatalf("link %q is not built from the site's host", link)
	}
	u, _ := url.Parse(link)
	secret := u.Query().Get("token")

	// Opening the link (a browser, a scanner) shows the page only.
	for _, accept := range []string{"", "text/html", "*/*"} {
		res := s.do(http.MethodGet, u.RequestURI(), map[string]string{"Accept": accept}, "")
		if res.Status != 200 || !strings.Contains(res.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(res.Body), `<form method="post">`) ||
			!strings.Contains(string(res.Body), secret) || res.Header.Get("Content-Security-Policy") == "" {
			t.Fatalf("GET link (Accept %q): %d %s", accept, res.Status, res.Body)
		}
	}
	if d := norainaMe(t, s, tok); d["status"] != "pending" {
		t.Fatalf("/me after opening the page: %v", d)
	}
	// The button's POST activates and answers a page.
	res := s.do(http.MethodPost, u.RequestURI(), map[string]string{"Accept": "text/html", "Content-Type": "application/x-www-form-urlencoded"}, "token="+url.QueryEscape(secret))
	if res.Status != 200 || !strings.Contains(string(res.Body), "active") || !strings.Contains(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("POST link: %d %s", res.Status, res.Body)
	}
	d := norainaMe(t, s, tok)
	if d["status"] != "active" || !slices.Equal(anyStrings(d["permissions"]), []string{"read"}) {
		t.Fatalf("/me after confirming: %v", d)
	}
	// A second use (a program asking for JSON) answers the same.
	for _, h := range []map[string]string{{"Content-Type": "application/json"}, {"Accept": "application/json"}} {
		method, body := http.MethodPost, `{"token":"`+secret+`"}`
		if h["Accept"] != "" {
			method, body = http.MethodGet, ""
		}
		res = s.do(method, "/api/confirm?token="+url.QueryEscape(secret), h, body)
		if res.Status != 200 {
			t.Fatalf("%s again: %d %s", method, res.Status, res.Body)
		}
		b := res.JSON(t)
		if b["status"] != "success" || b["message"] != "Your account is active." || b["data"].(map[string]any)["status"] != "active" {
			t.Fatalf("%s again: %s", method, res.Body)
		}
	}
	// A forged token does nothing, in the contract's envelope.
	res = s.do(http.MethodPost, "/api/confirm?token=AAAA"+secret[4:], nil, "")
	if res.Status != 400 || res.JSON(t)["status"] != "error" || res.JSON(t)["message"] != "Token is invalid or expired." {
		t.Fatalf("forged token: %d %s", res.Status, res.Body)
	}
	res = s.do(http.MethodPost, "/api/confirm", map[string]string{"Content-Type": "application/json"}, `{"token":`)
	if res.Status != 400 || res.JSON(t)["status"] != "error" {
		t.Fatalf("bad JSON: %d %s", res.Status, res.Body)
	}
}

// TestNorainaActivationEmailExpires: an unconfirmed account expires with
// its link (link_ttl), and its address registers again.
func TestNorainaActivationEmailExpires(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		sink := startSMTP(t)
		s := startSite(t, backend, "smtp "+sink.URL(), noraina+` {
		activation email
		link_ttl 1s
	}`)
		tok := norainaRegister(t, s, "late@example.com")
		first := norainaMe(t, s, tok)["id"]
		old := norainaLinkRE.FindString(func() string { _, text, _ := sink.waitFor("late@example.com", 30*time.Second).parts(t); return text }())
		time.Sleep(1500 * time.Millisecond) // the link's lifetime passes, as in testRpostSquatterExpires
		res := s.do(http.MethodPost, "/api/register", map[string]string{"Content-Type": "application/json", "Connection": "close"},
			`{"name":"Ann","mail":"late@example.com","password":"my_password"}`)
		if res.Status != http.StatusCreated {
			t.Fatalf("re-register after the expiry: %d %s", res.Status, res.Body)
		}
		tok2 := res.JSON(t)["data"].(map[string]any)["token"].(string)
		if norainaMe(t, s, tok2)["id"] == first {
			t.Fatal("same account")
		}
		u, _ := url.Parse(old)
		if r := s.do(http.MethodPost, u.RequestURI(), map[string]string{"Accept": "application/json"}, ""); r.Status != 400 {
			t.Fatalf("the expired account's link: %d %s", r.Status, r.Body)
		}
	})
}

// TestNorainaActivationEmailNeedsLinkHost: in email mode noraina mails
// links, so a catch-all site without public_url is refused; the other
// modes mail nothing and load there.
func TestNorainaActivationEmailNeedsLinkHost(t *testing.T) {
	sink := startSMTP(t)
	s := startSite(t, backendRedis, "smtp "+sink.URL(), noraina+` {
		activation email
	}`)
	catchAll := strings.Replace(s.cfg, fmt.Sprintf("http://localhost:%d {", httpPort), fmt.Sprintf("http://:%d {", httpPort), 1)
	if msg := loadError(t, catchAll); !strings.Contains(msg, "public_url") || !strings.Contains(msg, "noraina") {
		t.Fatalf("load error does not name public_url: %s", msg)
	}
	if msg := loadError(t, strings.Replace(s.cfg, "activation email", "activation sometimes", 1)); !strings.Contains(msg, "activation") {
		t.Fatalf("bad mode: %s", msg)
	}
	s.load(strings.Replace(catchAll, "activation email", "activation auto", 1))
	s.load(strings.Replace(catchAll, "activation email", "activation admin", 1))
	s.load(strings.Replace(catchAll, "activation email", "activation email\n\t\tpublic_url https://register.example.com", 1))
}
