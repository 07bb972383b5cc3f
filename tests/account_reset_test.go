package tests

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

var resetLinkRE = regexp.MustCompile(`http://[^\s"<>]+/account/password/reset\?token=[A-Za-z0-9_-]+`)

// TestAccountPasswordReset: forgot answers the same 202 for an active
// account, an unknown address and a pending one; only the active account
// gets a mail. Its link opens a page (the token is not spent), the page's
// form sets the password, every session ends, the old password fails and
// the new one works; the link works once; a notice says the password
// changed; a weak password is a field error and spends nothing.
func TestAccountPasswordReset(t *testing.T) { eachBackend(t, testAccountPasswordReset) }

func testAccountPasswordReset(t *testing.T, backend string) {
	sink := startSMTP(t)
	global := fmt.Sprintf("admin root %s manage-users\n\t\tadmin_login_limit 1000/m\n\t\tsmtp %s", mustBcrypt(t, "rootpw"), sink.URL())
	s := &accountSite{site: startSite(t, backend, global, noraina+"\n\t"+accountHandler)}
	s.signup(t, "gil@example.com", "old_password", true)
	s.signup(t, "pen@example.com", "old_password", false)
	tk := s.login(t, "gil@example.com", "old_password")

	answers := map[string]*response{}
	for _, addr := range []string{"gil@example.com", "nobody@example.com", "pen@example.com"} {
		answers[addr] = s.postJSON("/account/password/forgot", fmt.Sprintf(`{"email":%q}`, addr))
		if answers[addr].Status != http.StatusAccepted || string(answers[addr].Body) != string(answers["gil@example.com"].Body) {
			t.Fatalf("forgot %s: %d %s", addr, answers[addr].Status, answers[addr].Body)
		}
	}
	_, text, _ := sink.waitFor("gil@example.com", 30*time.Second).parts(t)
	link := resetLinkRE.FindString(text)
	if link == "" {
		t.Fatalf("no reset link in the mail:\n%s", text)
	}
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	tok := u.Query().Get("token")

	// The link opens a form; fetching it changes nothing.
	page := s.do(http.MethodGet, u.RequestURI(), map[string]string{"Accept": "text/html"}, "")
	if page.Status != 200 || !strings.Contains(string(page.Body), `autocomplete="new-password"`) || !strings.Contains(string(page.Body), tok) {
		t.Fatalf("reset page: %d %s", page.Status, page.Body)
	}
	// A weak password is a field error; the token stays usable.
	m := problem(t, s.postJSON("/account/password/reset", fmt.Sprintf(`{"token":%q,"password":"short"}`, tok)), 400, "urn:caddyregister:problem:invalid-input")
	if f := fieldErrors(t, m); len(f) != 1 || f[0] != "password" {
		t.Fatalf("fields %v", f)
	}
	// The page's form, as a browser posts it.
	form := url.Values{"token": {tok}, "password": {"new_password_1"}}.Encode()
	res := s.do(http.MethodPost, "/account/password/reset", map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html", "Origin": s.base}, form)
	if res.Status != 200 || !strings.Contains(string(res.Body), "password is changed") {
		t.Fatalf("reset by form: %d %s", res.Status, res.Body)
	}
	// Once only.
	if res := s.postJSON("/account/password/reset", fmt.Sprintf(`{"token":%q,"password":"new_password_2"}`, tok)); res.Status != 400 {
		t.Fatalf("second use: %d %s", res.Status, res.Body)
	}
	// Every session ended; the old password fails, the new one works.
	problem(t, s.do(http.MethodGet, "/account/me", bearerH(tk.AccessToken), ""), 401, "urn:caddyregister:problem:unauthorized")
	problem(t, s.postJSON("/account/login", `{"identifier":"gil@example.com","password":"old_password"}`), 401, "urn:caddyregister:problem:invalid-credentials")
	s.login(t, "gil@example.com", "new_password_1")
	// The notice, without a link.
	_, notice, _ := sink.nthMailTo("gil@example.com", 2, 30*time.Second).parts(t)
	if resetLinkRE.MatchString(notice) || !strings.Contains(strings.ToLower(notice), "password") {
		t.Fatalf("notice:\n%s", notice)
	}
	// Nobody else got mail.
	for _, addr := range []string{"nobody@example.com", "pen@example.com"} {
		sink.mu.Lock()
		for _, m := range sink.msgs {
			for _, to := range m.To {
				if strings.EqualFold(to, addr) {
					t.Errorf("forgot mailed %s", addr)
				}
			}
		}
		sink.mu.Unlock()
	}
}
