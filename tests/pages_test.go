package tests

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// pagesHandler mounts the pages at the root and, with a CAPTCHA, at
// /captcha; the gate guards /app/* and sends browsers to /login.
const pagesHandler = `register pages {
		password {
			min_length 10
		}
	}
	register pages /captcha {
		captcha required
	}
	register_auth /app/* {
		cookie session
		login_url /login
	}
	handle /app/* {
		respond "app for {http.request.header.X-User-Email} cookies: {http.request.header.Cookie}" 200
	}`

// pagesCSP is the pages' Content-Security-Policy, as the issue asks.
const pagesCSP = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

type pagesSite struct {
	*site
	sink *smtpSink
}

func startPages(t *testing.T) *pagesSite {
	t.Helper()
	sink := startSMTP(t)
	return &pagesSite{site: startSite(t, backendRedis, "smtp "+sink.URL(), pagesHandler), sink: sink}
}

// browserLike is a client with a cookie jar that does not follow
// redirects, sending what a browser's form post sends.
type browserLike struct {
	t    *testing.T
	base string
	c    *http.Client
	lang string
}

func (s *pagesSite) browser() *browserLike {
	jar, _ := cookiejar.New(nil)
	return &browserLike{t: s.t, base: s.base, c: &http.Client{Jar: jar, Timeout: 60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browserLike) do(method, path string, form url.Values, header map[string]string) *response {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.base+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Accept", pageAccepts["browser"])
	if b.lang != "" {
		req.Header.Set("Accept-Language", b.lang)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", b.base)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return &response{Status: res.StatusCode, Header: res.Header, Body: raw}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// get fetches a page and returns it with its CSRF token.
func (b *browserLike) get(path string) (*response, string) {
	b.t.Helper()
	res := b.do(http.MethodGet, path, nil, nil)
	m := csrfRE.FindSubmatch(res.Body)
	if m == nil {
		return res, ""
	}
	return res, string(m[1])
}

// submit gets the page at path and posts form to action with its token.
func (b *browserLike) submit(path, action string, form url.Values) *response {
	b.t.Helper()
	_, tok := b.get(path)
	if tok == "" {
		b.t.Fatalf("%s has no CSRF token", path)
	}
	form.Set("csrf", tok)
	return b.do(http.MethodPost, action, form, nil)
}

var confirmLinkRE = regexp.MustCompile(`http://[^\s"<>]+/confirm\?token=[A-Za-z0-9_%-]+`)

// signupActive signs email up through the pages and confirms it by the
// mailed link.
func (s *pagesSite) signupActive(b *browserLike, email, pass string) {
	s.t.Helper()
	res := b.submit("/signup", "/signup", url.Values{"email": {email}, "password": {pass}})
	if res.Status != 200 || !strings.Contains(string(res.Body), "Check your mail") {
		s.t.Fatalf("signup: %d %s", res.Status, res.Body)
	}
	_, text, _ := s.sink.waitFor(email, 30*time.Second).parts(s.t)
	link := confirmLinkRE.FindString(text)
	if link == "" {
		s.t.Fatalf("no confirmation link in:\n%s", text)
	}
	path := pathOf(s.t, link)
	page, tok := b.get(path)
	if page.Status != 200 || tok == "" {
		s.t.Fatalf("confirm page: %d %s", page.Status, page.Body)
	}
	u, _ := url.Parse(link)
	res = b.do(http.MethodPost, "/confirm", url.Values{"csrf": {tok}, "token": {u.Query().Get("token")}}, nil)
	if res.Status != 200 || !strings.Contains(string(res.Body), "confirmed") {
		s.t.Fatalf("confirm: %d %s", res.Status, res.Body)
	}
}

// Every page: the strict CSP, no script, no third-party reference, the
// embedded stylesheet, labels and autocomplete for password managers.
func TestPagesHeaders(t *testing.T) {
	s := startPages(t)
	b := s.browser()
	for _, p := range []string{"/signup", "/login", "/password/forgot", "/password/reset?token=x", "/confirm?token=x", "/confirm/resend", "/captcha/signup"} {
		res, tok := b.get(p)
		body := string(res.Body)
		if res.Status != 200 || tok == "" {
			t.Fatalf("%s: %d %s", p, res.Status, body)
		}
		if got := res.Header.Get("Content-Security-Policy"); got != pagesCSP {
			t.Fatalf("%s: CSP %q", p, got)
		}
		if strings.Contains(strings.ToLower(body), "<script") || regexp.MustCompile(`(src|href)="(https?:)?//`).MatchString(body) {
			t.Fatalf("%s: script or foreign reference:\n%s", p, body)
		}
		for _, want := range []string{`<meta name="viewport"`, `rel="stylesheet" href="/`, `<label for="`} {
			if !strings.Contains(body, want) && p != "/confirm?token=x" {
				t.Fatalf("%s lacks %s:\n%s", p, want, body)
			}
		}
		if res.Header.Get("Cache-Control") != "no-store" || res.Header.Get("X-Frame-Options") != "DENY" {
			t.Fatalf("%s: headers %v", p, res.Header)
		}
	}
	res, _ := b.get("/signup")
	for _, want := range []string{`autocomplete="email"`, `autocomplete="new-password"`} {
		if !strings.Contains(string(res.Body), want) {
			t.Fatalf("signup lacks %s", want)
		}
	}
	res, _ = b.get("/login")
	if !strings.Contains(string(res.Body), `autocomplete="current-password"`) {
		t.Fatalf("login lacks current-password:\n%s", res.Body)
	}
	// The CAPTCHA: an inline SVG image (img-src data:) and a new-image link.
	res, _ = b.get("/captcha/signup")
	if !strings.Contains(string(res.Body), `<img src="data:image/svg&#43;xml;base64,`) || !strings.Contains(string(res.Body), `href="/captcha/signup?email=`) {
		t.Fatalf("captcha signup:\n%s", res.Body)
	}
	if head := b.do(http.MethodHead, "/login", nil, nil); head.Status != 200 || len(head.Body) != 0 || head.Header.Get("Content-Security-Policy") != pagesCSP {
		t.Fatalf("HEAD /login: %d %v", head.Status, head.Header)
	}
	css := b.do(http.MethodGet, "/style.css", nil, nil)
	if css.Status != 200 || !strings.HasPrefix(css.Header.Get("Content-Type"), "text/css") || len(css.Body) < 100 {
		t.Fatalf("style.css: %d %v", css.Status, css.Header)
	}
}

// A form posted without its token, with another browser's token, or from
// another site is refused with 403, and nothing is written.
func TestPagesCSRF(t *testing.T) {
	s := startPages(t)
	b := s.browser()
	_, tok := b.get("/signup")
	before := s.dataKeys()
	form := url.Values{"email": {"csrf@example.com"}, "password": {"long enough password"}}
	if res := b.do(http.MethodPost, "/signup", form, nil); res.Status != 403 || !strings.Contains(string(res.Body), "did not come from this site") {
		t.Fatalf("no token: %d %s", res.Status, res.Body)
	}
	other := s.browser()
	_, otherTok := other.get("/signup")
	form.Set("csrf", otherTok)
	if res := b.do(http.MethodPost, "/signup", form, nil); res.Status != 403 {
		t.Fatalf("another browser's token: %d", res.Status)
	}
	form.Set("csrf", tok)
	if res := b.do(http.MethodPost, "/signup", form, map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}); res.Status != 403 {
		t.Fatalf("cross-site: %d", res.Status)
	}
	if res := b.do(http.MethodPost, "/login", url.Values{"email": {"a@b.example"}, "password": {"x"}}, nil); res.Status != 403 {
		t.Fatalf("login without token: %d", res.Status)
	}
	if after := s.dataKeys(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("refused posts wrote: %v → %v", before, after)
	}
	if res := b.do(http.MethodPost, "/signup", form, nil); res.Status != 200 {
		t.Fatalf("with the token: %d %s", res.Status, res.Body)
	}
}

// After log-in the browser goes back to return_to when it is a path on
// this site, never to another site; the gate's redirect round trip then
// completes, and log-out clears the cookies.
func TestPagesReturnTo(t *testing.T) {
	s := startPages(t)
	b := s.browser()
	s.signupActive(b, "rt@example.com", "correct horse battery")
	// The gate sends a browser without a session to the login page.
	res := b.do(http.MethodGet, "/app/inbox?x=1", nil, nil)
	if res.Status != 302 || res.Header.Get("Location") != "/login?return_to=%2Fapp%2Finbox%3Fx%3D1" {
		t.Fatalf("gate: %d %v", res.Status, res.Header)
	}
	for rt, want := range map[string]string{
		"//evil.example/x": "/", "https://evil.example/": "/", `/\evil.example`: "/", "/app/inbox?x=1": "/app/inbox?x=1", "": "/settings",
	} {
		c := s.browser()
		res := c.submit("/login?return_to="+url.QueryEscape(rt), "/login", url.Values{"email": {"rt@example.com"}, "password": {"correct horse battery"}, "return_to": {rt}})
		if res.Status != 303 || res.Header.Get("Location") != want {
			t.Fatalf("return_to %q: %d → %q, want %q", rt, res.Status, res.Header.Get("Location"), want)
		}
		if rt == "/app/inbox?x=1" {
			app := c.do(http.MethodGet, "/app/inbox?x=1", nil, nil)
			// The gate keeps both session cookies from the app.
			if app.Status != 200 || !strings.HasPrefix(string(app.Body), "app for rt@example.com cookies: ") || strings.Contains(string(app.Body), "session") {
				t.Fatalf("app after login: %d %s", app.Status, app.Body)
			}
			// Logged in, the login page goes straight on.
			if again := c.do(http.MethodGet, "/login?return_to=%2Fapp%2Fx", nil, nil); again.Status != 303 || again.Header.Get("Location") != "/app/x" {
				t.Fatalf("login page with a session: %d %v", again.Status, again.Header)
			}
			out := c.submit("/settings", "/logout", url.Values{})
			if out.Status != 303 || !strings.HasPrefix(out.Header.Get("Location"), "/login") {
				t.Fatalf("logout: %d %v", out.Status, out.Header)
			}
			cleared := 0
			for _, ck := range out.Header.Values("Set-Cookie") {
				if (strings.HasPrefix(ck, "session=;") || strings.HasPrefix(ck, "session_refresh=;")) && strings.Contains(ck, "Max-Age=0") {
					cleared++
				}
			}
			if cleared != 2 {
				t.Fatalf("logout cookies: %q", out.Header.Values("Set-Cookie"))
			}
			if app := c.do(http.MethodGet, "/app/inbox", nil, nil); app.Status != 302 {
				t.Fatalf("app after logout: %d", app.Status)
			}
		}
	}
}

// Accept-Language picks the catalogue: German shipped, English otherwise.
func TestPagesLanguage(t *testing.T) {
	s := startPages(t)
	for lang, want := range map[string]string{
		"de-DE,de;q=0.9,en;q=0.8": "Anmelden", "de-CH": "Anmelden", "fr-FR,fr;q=0.9": "Log in", "": "Log in", "en-GB,de;q=0.5": "Log in", "fr;q=1, de;q=0.8": "Anmelden",
	} {
		b := s.browser()
		b.lang = lang
		res, _ := b.get("/login")
		want2 := `lang="en"`
		if want == "Anmelden" {
			want2 = `lang="de"`
		}
		if !strings.Contains(string(res.Body), "<h1>"+want+"</h1>") || !strings.Contains(string(res.Body), want2) {
			t.Fatalf("Accept-Language %q: want %s:\n%s", lang, want, res.Body)
		}
		if !strings.Contains(res.Header.Get("Vary"), "Accept-Language") {
			t.Fatalf("no Vary: %v", res.Header)
		}
	}
	// The engine's field errors in the page's language.
	b := s.browser()
	b.lang = "de"
	res := b.submit("/signup", "/signup", url.Values{"email": {"de@example.com"}, "password": {"kurz"}})
	if res.Status != 400 || !fieldInvalid(res.Body, "password", "Das Passwort ist zu kurz.") || res.Header.Get("Content-Language") != "de" {
		t.Fatalf("German policy error: %d %s", res.Status, res.Body)
	}
}

// When the access cookie has expired, the gate sends the browser to the
// login page, which refreshes the session from the refresh cookie and
// goes straight back: no password asked again until the session ends. A
// refresh token another request has just rotated leaves the cookies alone.
func TestPagesRefresh(t *testing.T) {
	s := startPages(t)
	b := s.browser()
	s.signupActive(b, "refresh@example.com", "correct horse battery")
	res := b.submit("/login", "/login", url.Values{"email": {"refresh@example.com"}, "password": {"correct horse battery"}})
	if res.Status != 303 {
		t.Fatalf("login: %d %s", res.Status, res.Body)
	}
	u, _ := url.Parse(s.base)
	var refresh string
	for _, ck := range b.c.Jar.Cookies(u) {
		if ck.Name == "session_refresh" {
			refresh = ck.Value
		}
	}
	// The access token expires: the browser forgets its cookie.
	b.c.Jar.SetCookies(u, []*http.Cookie{{Name: "session", Value: "", Path: "/", MaxAge: -1}})
	res = b.do(http.MethodGet, "/app/x", nil, nil)
	if res.Status != 302 {
		t.Fatalf("gate without the access cookie: %d", res.Status)
	}
	res = b.do(http.MethodGet, res.Header.Get("Location"), nil, nil)
	if res.Status != 303 || res.Header.Get("Location") != "/app/x" {
		t.Fatalf("login page with a refresh cookie: %d %v %s", res.Status, res.Header, res.Body)
	}
	if app := b.do(http.MethodGet, "/app/x", nil, nil); app.Status != 200 {
		t.Fatalf("app after the refresh: %d", app.Status)
	}
	// Another tab still sends the token just rotated (within the grace
	// window): it gets the form, and no cookie is cleared.
	other := s.browser()
	other.c.Jar.SetCookies(u, []*http.Cookie{{Name: "session_refresh", Value: refresh, Path: "/"}})
	res = other.do(http.MethodGet, "/login", nil, nil)
	if res.Status != 200 || len(res.Header.Values("Set-Cookie")) != 1 { // the CSRF cookie only
		t.Fatalf("rotated token: %d %q", res.Status, res.Header.Values("Set-Cookie"))
	}
	if app := b.do(http.MethodGet, "/app/x", nil, nil); app.Status != 200 {
		t.Fatalf("the session survived the reuse in the grace window: %d", app.Status)
	}
}

// fieldInvalid reports whether the page marks field name invalid, with
// its error message tied to it, saying want.
func fieldInvalid(body []byte, name, want string) bool {
	re := regexp.MustCompile(`<input id="f-` + name + `" name="` + name + `"[^>]* aria-invalid="true" aria-describedby="f-` + name + `-error"[^>]*>\s*<p class="field-error" id="f-` + name + `-error">([^<]*)</p>`)
	m := re.FindSubmatch(body)
	return m != nil && strings.Contains(string(m[1]), want)
}

// Each form's bad input: the form again with the error on its field and
// the APIs' status, nothing written.
func TestPagesForms(t *testing.T) {
	s := startPages(t)
	b := s.browser()
	before := s.dataKeys()
	for name, c := range map[string]struct {
		path        string
		form        url.Values
		status      int
		field, want string
	}{
		"no password":    {"/signup", url.Values{"email": {"a@example.com"}}, 400, "password", "required"},
		"bad address":    {"/signup", url.Values{"email": {"not an address"}, "password": {"long enough pass"}}, 400, "email", "not valid"},
		"short password": {"/signup", url.Values{"email": {"a@example.com"}, "password": {"short"}}, 400, "password", "at least 10 characters"},
		"no captcha":     {"/captcha/signup", url.Values{"email": {"a@example.com"}, "password": {"long enough pass"}}, 400, "captcha", "do not match"},
		"wrong captcha":  {"/captcha/signup", url.Values{"email": {"a@example.com"}, "password": {"long enough pass"}, "captcha": {"zzzz"}, "captcha_token": {"6f079965-c057-bdca-77dd-3591c7f1c5a8"}}, 400, "captcha", "do not match"},
		"login no email": {"/login", url.Values{"password": {"x"}}, 400, "email", "required"},
		"login unknown":  {"/login", url.Values{"email": {"nobody@example.com"}, "password": {"whatever it is"}}, 401, "password", "wrong"},
		"reset no pass":  {"/password/reset?token=abc", url.Values{"token": {"abc"}}, 400, "password", "required"},
		"forgot bad":     {"/password/forgot", url.Values{"email": {"nope"}}, 400, "email", "not valid"},
	} {
		action, _, _ := strings.Cut(c.path, "?")
		res := b.submit(c.path, action, c.form)
		if res.Status != c.status || !fieldInvalid(res.Body, c.field, c.want) {
			t.Errorf("%s: %d, want %d with %s: %q:\n%s", name, res.Status, c.status, c.field, c.want, res.Body)
		}
	}
	for name, c := range map[string]struct{ path, action string }{
		"reset bad token":   {"/password/reset?token=abc", "/password/reset"},
		"confirm bad token": {"/confirm?token=abc", "/confirm"},
	} {
		res := b.submit(c.path, c.action, url.Values{"token": {"abc"}, "password": {"long enough pass"}})
		if res.Status != 400 || !strings.Contains(string(res.Body), `<p class="error" role="alert">The link is invalid, used or expired.`) {
			t.Errorf("%s: %d %s", name, res.Status, res.Body)
		}
	}
	// Only the CAPTCHA challenges the forms drew (each shown once).
	after := slices.DeleteFunc(s.dataKeys(), func(k string) bool { return strings.Contains(k, ":challenge:") })
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("bad forms wrote: %v → %v", before, after)
	}

	// A pending account: the log-in says so (after the password checked
	// out) and links to a resend, which mails a new link.
	res := b.submit("/signup", "/signup", url.Values{"email": {"pending@example.com"}, "password": {"long enough pass"}})
	if res.Status != 200 {
		t.Fatalf("signup: %d %s", res.Status, res.Body)
	}
	s.sink.waitFor("pending@example.com", 30*time.Second)
	res = b.submit("/signup", "/signup", url.Values{"email": {"pending@example.com"}, "password": {"long enough pass"}})
	if res.Status != 409 || !fieldInvalid(res.Body, "email", "exists already") {
		t.Fatalf("taken address: %d %s", res.Status, res.Body)
	}
	res = b.submit("/login", "/login", url.Values{"email": {"pending@example.com"}, "password": {"long enough pass"}})
	if res.Status != 403 || !strings.Contains(string(res.Body), `href="/confirm/resend?email=pending%40example.com"`) {
		t.Fatalf("pending login: %d %s", res.Status, res.Body)
	}
	res = b.submit("/confirm/resend?email=pending%40example.com", "/confirm/resend", url.Values{"email": {"pending@example.com"}})
	if res.Status != 200 {
		t.Fatalf("resend: %d %s", res.Status, res.Body)
	}
	s.sink.nthMailTo("pending@example.com", 2, 30*time.Second)

	// The account page needs a session.
	if res := b.do(http.MethodGet, "/settings", nil, nil); res.Status != 303 || res.Header.Get("Location") != "/login?return_to=%2Fsettings" {
		t.Fatalf("settings without a session: %d %v", res.Status, res.Header)
	}
	for _, p := range []string{"/settings/password", "/settings/sessions/end", "/settings/delete"} {
		if res := b.submit("/login", p, url.Values{}); res.Status != 303 || !strings.HasPrefix(res.Header.Get("Location"), "/login") {
			t.Fatalf("%s without a session: %d %v", p, res.Status, res.Header)
		}
	}
}

// The account page: another session is listed and ended; the account is
// deleted with its password (a wrong one is refused) and its cookies go.
func TestPagesAccount(t *testing.T) {
	s := startPages(t)
	b := s.browser()
	const email, pass = "acct@example.com", "correct horse battery"
	s.signupActive(b, email, pass)
	other := s.browser()
	for _, c := range []*browserLike{b, other} {
		if res := c.submit("/login", "/login", url.Values{"email": {email}, "password": {pass}}); res.Status != 303 {
			t.Fatalf("login: %d", res.Status)
		}
	}
	page, _ := b.get("/settings")
	sids := regexp.MustCompile(`name="sid" value="([^"]+)"`).FindAllSubmatch(page.Body, -1)
	if len(sids) != 2 || strings.Count(string(page.Body), "this session") != 1 {
		t.Fatalf("sessions:\n%s", page.Body)
	}
	// End the session that is not this one: the other browser is out.
	cur := regexp.MustCompile(`(?s)this session.*?name="sid" value="([^"]+)"`).FindSubmatch(page.Body)
	var otherSID string
	for _, m := range sids {
		if string(m[1]) != string(cur[1]) {
			otherSID = string(m[1])
		}
	}
	res := b.submit("/settings", "/settings/sessions/end", url.Values{"sid": {otherSID}})
	if res.Status != 303 || res.Header.Get("Location") != "/settings?notice=session_ended" {
		t.Fatalf("end session: %d %v", res.Status, res.Header)
	}
	if res := other.do(http.MethodGet, "/app/x", nil, nil); res.Status != 302 {
		t.Fatalf("the ended session still opens the app: %d", res.Status)
	}
	if res := other.do(http.MethodGet, "/settings", nil, nil); res.Status != 303 {
		t.Fatalf("the ended session still opens the account page: %d", res.Status)
	}
	// Delete: a wrong password is refused, the right one erases.
	res = b.submit("/settings", "/settings/delete", url.Values{"delete_password": {"not the password"}})
	if res.Status != 401 || !fieldInvalid(res.Body, "delete_password", "wrong") {
		t.Fatalf("delete with a wrong password: %d %s", res.Status, res.Body)
	}
	res = b.submit("/settings", "/settings/delete", url.Values{"delete_password": {pass}})
	if res.Status != 200 || !strings.Contains(string(res.Body), "Your account is deleted.") {
		t.Fatalf("delete: %d %s", res.Status, res.Body)
	}
	if res := b.submit("/login", "/login", url.Values{"email": {email}, "password": {pass}}); res.Status != 401 {
		t.Fatalf("login after erasure: %d", res.Status)
	}
}
