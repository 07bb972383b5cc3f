package tests

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// What browsers, curl and a mail scanner send as Accept.
var pageAccepts = map[string]string{
	"browser": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
	"curl":    "*/*",
	"none":    "",
	"scanner": "text/html, application/json;q=0.5",
}

var (
	styleRE  = regexp.MustCompile(`<style>([^<]*)</style>`)
	hiddenRE = regexp.MustCompile(`<form method="post"><input type="hidden" name="([a-z]+)" value="([^"]*)">`)
)

// expectConfirmPage checks a GET of a mailed link answered the page: a
// form that posts the token back, no script, a strict CSP that allows
// exactly the inline style.
func expectConfirmPage(t *testing.T, res *response, field, token string) {
	t.Helper()
	body := string(res.Body)
	if res.Status != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("page: %d %v %s", res.Status, res.Header, body)
	}
	m := hiddenRE.FindStringSubmatch(body)
	if m == nil || m[1] != field || m[2] != token {
		t.Fatalf("page has no form posting %s=%s:\n%s", field, token, body)
	}
	if strings.Contains(strings.ToLower(body), "<script") || strings.Contains(body, "http") {
		t.Fatalf("page has a script or an external reference:\n%s", body)
	}
	csp := res.Header.Get("Content-Security-Policy")
	st := styleRE.FindStringSubmatch(body)
	if st == nil {
		t.Fatalf("page without style:\n%s", body)
	}
	sum := sha256.Sum256([]byte(st[1]))
	for _, want := range []string{"default-src 'none'", "form-action 'self'", "frame-ancestors 'none'", "style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"} {
		if !strings.Contains(csp, want) {
			t.Fatalf("CSP %q lacks %q", csp, want)
		}
	}
	if res.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("page may be cached: %v", res.Header)
	}
}

// A GET of the mailed link, whatever a browser, curl or a scanner sends as
// Accept, changes nothing; the page's POST activates.
func TestConfirmPageRpost(t *testing.T) {
	s := startRpost(t, backendRedis, "")
	expectRegistered(t, s.register(rpostJSON, docRpostSample), "user@company.com")
	link := s.mailLink("user@company.com", rpostActivateRE)
	code := mustQuery(t, link, "code")
	for name, accept := range pageAccepts {
		h := map[string]string{}
		if accept != "" {
			h["Accept"] = accept
		}
		res := s.do(http.MethodGet, pathOf(t, link), h, "")
		expectConfirmPage(t, res, "code", code)
		// The button's POST may redirect to a callback: CSP's form-action
		// covers redirects, so the allowed origins are listed.
		if csp := res.Header.Get("Content-Security-Policy"); !strings.HasSuffix(csp, "form-action 'self' https://app.example.com http://localhost:3000") {
			t.Fatalf("CSP %q", csp)
		}
		if st, ec := s.login("user@company.com", "Secret007"); st != 403 || ec != "ACCOUNT_NOT_ACTIVATED" {
			t.Fatalf("after a GET (%s): login %d %s", name, st, ec)
		}
	}
	// The button: a form post of the hidden field to the link's path.
	res := s.do(http.MethodPost, pathOf(t, link), map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Accept": pageAccepts["browser"]}, "code="+url.QueryEscape(code))
	if res.Status != 200 || !strings.Contains(string(res.Body), "Your account has been activated.") || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("button: %d %s", res.Status, res.Body)
	}
	if st, ec := s.login("user@company.com", "Secret007"); st != 200 {
		t.Fatalf("login after the button: %d %s", st, ec)
	}

	// Programmatic: GET asking for JSON, or a POST with a JSON body.
	for i, email := range []string{"json-get@company.com", "json-post@company.com"} {
		expectRegistered(t, s.register(rpostJSON, rpostBody(map[string]string{"Email": fmt.Sprintf("%q", email)})), email)
		link := s.mailLink(email, rpostActivateRE)
		var res *response
		if i == 0 {
			res = s.do(http.MethodGet, pathOf(t, link), map[string]string{"Accept": "application/json"}, "")
		} else {
			res = s.do(http.MethodPost, "/api/v1/Account/Activate", map[string]string{"Content-Type": "application/json"}, fmt.Sprintf(`{"code":%q}`, mustQuery(t, link, "code")))
		}
		if res.Status != 200 || string(res.Body) != activatedBody {
			t.Fatalf("%s: %d %s", email, res.Status, res.Body)
		}
		if st, ec := s.login(email, "Secret007"); st != 200 {
			t.Fatalf("login %s: %d %s", email, st, ec)
		}
	}
	// A body of the wrong type or shape is refused in the envelope.
	if res := s.do(http.MethodPost, "/api/v1/Account/Activate", map[string]string{"Content-Type": "application/json"}, `{"code":1}`); res.Status != 400 || !strings.Contains(string(res.Body), `"Message"`) {
		t.Fatalf("code of the wrong type: %d %s", res.Status, res.Body)
	}
	if res := s.do(http.MethodPost, "/api/v1/Account/Activate", map[string]string{"Content-Type": "text/plain"}, `code=x`); res.Status != 415 {
		t.Fatalf("text/plain: %d %s", res.Status, res.Body)
	}
}

func TestConfirmPageSaymon(t *testing.T) {
	s := startSaymon(t, "", "")
	tok, ans := s.challenge()
	if res := s.signup(rootAuth, signupBody(tok, ans, "pageuser", "page@example.com", "1111")); res.Status != 200 {
		t.Fatalf("signup: %d %s", res.Status, res.Body)
	}
	_, text, _ := s.sink.waitFor("page@example.com", 30*time.Second).parts(t)
	link := linkRE.FindString(text)
	token := mustQuery(t, link, "token")
	u, _ := url.Parse(link)
	expectConfirmPage(t, s.do(http.MethodGet, u.RequestURI(), map[string]string{"Accept": pageAccepts["browser"]}, ""), "token", token)
	// Still status 0: the POST answers the user model, now confirmed.
	res := s.do(http.MethodPost, u.Path, map[string]string{"Content-Type": "application/json"}, fmt.Sprintf(`{"token":%q}`, token))
	if res.Status != 200 || !strings.Contains(string(res.Body), `"status":1`) {
		t.Fatalf("confirm: %d %s", res.Status, res.Body)
	}
}

func TestConfirmPageSoajs(t *testing.T) {
	s := startSoajs(t, backendRedis, "")
	withPass := created(t, s.addJSON(soajsDocQuery, `{"username":"jane","firstName":"Jane","lastName":"Doe","email":"jane@domain.com","password":"`+soajsPassword+`","confirmation":"`+soajsPassword+`"}`), true)
	path := "/urac/join/validate?token=" + url.QueryEscape(withPass.Token)
	expectConfirmPage(t, s.do(http.MethodGet, path, map[string]string{"Accept": pageAccepts["browser"]}, ""), "token", withPass.Token)
	if res := s.login("jane", soajsPassword); res.Status != 403 {
		t.Fatalf("login after the page: %d %s", res.Status, res.Body)
	}
	res := s.do(http.MethodPost, "/urac/join/validate", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, "token="+url.QueryEscape(withPass.Token))
	if r := decodeSoajs(t, res); res.Status != 200 || !r.Result {
		t.Fatalf("join/validate: %d %s", res.Status, res.Body)
	}
	if res := s.login("jane", soajsPassword); res.Status != 200 {
		t.Fatalf("login after the POST: %d %s", res.Status, res.Body)
	}
}

func mustQuery(t *testing.T, link, name string) string {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil || u.Query().Get(name) == "" {
		t.Fatalf("link %q has no %s", link, name)
	}
	return u.Query().Get(name)
}
