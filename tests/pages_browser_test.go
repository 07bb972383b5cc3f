package tests

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// The hosted pages in a real browser: headless Chromium (Debian's
// chromium, which `make deps` installs) driven by chromedp. One browser
// for the whole test; each step waits on the page it loads, not on time.
//
// With PAGES_SCREENSHOTS=<dir> (make screenshots) the journey also writes
// a screenshot of each page at desktop and phone width into dir.

// browserPath finds Chromium.
func browserPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no chromium on PATH: run `make deps` (apt-get install chromium)")
	return ""
}

// tab is one browser tab on the site under test.
type tab struct {
	t     *testing.T
	ctx   context.Context
	base  string
	shots string
}

func startBrowser(t *testing.T, base string) *tab {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browserPath(t)), chromedp.NoSandbox,
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("lang", "en-US"), chromedp.WindowSize(1024, 768))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	// A bound on the whole journey, so a page that never comes fails the
	// test instead of hanging it.
	ctx, cancelT := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelT(); cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1024, 768)); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return &tab{t: t, ctx: ctx, base: base, shots: os.Getenv("PAGES_SCREENSHOTS")}
}

// open navigates to path and returns the final response.
func (b *tab) open(path string) *network.Response {
	b.t.Helper()
	res, err := chromedp.Run(b.ctx, chromedp.NavigateResponse(b.base+path))
	if err != nil {
		b.t.Fatalf("open %s: %v", path, err)
	}
	return res
}

// fill types values into the form's fields, by field name.
func (b *tab) fill(fields map[string]string) {
	b.t.Helper()
	for name, v := range fields {
		if err := chromedp.Do(b.ctx, chromedp.SetValue(chromedp.CSS(`input[name="`+name+`"]`), v)); err != nil {
			b.t.Fatalf("fill %s: %v", name, err)
		}
	}
}

// press clicks the button sel and waits for the page it loads.
func (b *tab) press(sel string) *network.Response {
	b.t.Helper()
	res, err := chromedp.RunResponse(b.ctx, chromedp.Click(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("press %s: %v", sel, err)
	}
	return res
}

// js evaluates a JavaScript expression as the DevTools console would
// (the pages' CSP forbids scripts of their own).
func (b *tab) js(expr string) string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func (b *tab) h1() string { return b.js(`document.querySelector('h1').textContent`) }

func (b *tab) path() string {
	b.t.Helper()
	u, err := url.Parse(b.js(`location.href`))
	if err != nil {
		b.t.Fatal(err)
	}
	return u.RequestURI()
}

// expectPage checks the status and heading of the page just loaded.
func (b *tab) expectPage(res *network.Response, status int64, h1 string) {
	b.t.Helper()
	if res.Status != status || b.h1() != h1 {
		b.t.Fatalf("at %s: %d %q, want %d %q:\n%s", b.path(), res.Status, b.h1(), status, h1, b.js(`document.body.innerText`))
	}
}

// expectFieldError checks that field name is marked invalid and that its
// error message, tied to it by aria-describedby, says want.
func (b *tab) expectFieldError(name, want string) {
	b.t.Helper()
	sel := `document.querySelector('input[name="` + name + `"]')`
	if inv := b.js(sel + `.getAttribute('aria-invalid') || ''`); inv != "true" {
		b.t.Fatalf("%s not aria-invalid on %s:\n%s", name, b.path(), b.js(`document.body.innerHTML`))
	}
	msg := b.js(`document.getElementById(` + sel + `.getAttribute('aria-describedby').split(' ')[0]).textContent`)
	if !strings.Contains(msg, want) {
		b.t.Fatalf("%s: error %q, want %q", name, msg, want)
	}
}

// shot writes the page at desktop and phone width (PAGES_SCREENSHOTS).
func (b *tab) shot(name string) {
	b.t.Helper()
	if b.shots == "" {
		return
	}
	for _, size := range []struct {
		suffix string
		w, h   int64
	}{{"desktop", 1024, 768}, {"phone", 390, 844}} {
		if err := chromedp.Do(b.ctx, chromedp.EmulateViewport(size.w, size.h)); err != nil {
			b.t.Fatal(err)
		}
		png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
		if err != nil {
			b.t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(b.shots, name+"-"+size.suffix+".png"), png, 0o644); err != nil {
			b.t.Fatal(err)
		}
	}
	if err := chromedp.Do(b.ctx, chromedp.EmulateViewport(1024, 768)); err != nil {
		b.t.Fatal(err)
	}
}

// The journey of the issue, and each form's error states, in one browser:
// sign up → the mailed link → confirm → log in → the gated app → change
// the password → log out; the wrong password, a policy violation, a form
// without its CSRF token (403) and a wrong CAPTCHA.
func TestPagesBrowser(t *testing.T) {
	s := startPages(t)
	b := startBrowser(t, s.base)
	const email, pass, newPass = "browser@example.com", "first long password", "second long password"

	// The app sends a browser without a session to log in.
	res := b.open("/app/inbox")
	b.expectPage(res, 200, "Log in")
	if b.path() != "/login?return_to=%2Fapp%2Finbox" {
		t.Fatalf("gate sent the browser to %s", b.path())
	}
	b.shot("login")

	// Sign up: a password the policy refuses, then a good one.
	b.expectPage(b.press(`a[href="/signup"]`), 200, "Create an account")
	b.shot("signup")
	b.fill(map[string]string{"email": email, "password": "short"})
	b.expectPage(b.press(`form button[type=submit]`), 400, "Create an account")
	b.expectFieldError("password", "at least 10 characters")
	if v := b.js(`document.querySelector('input[name="email"]').value`); v != email {
		t.Fatalf("the address typed was lost: %q", v)
	}
	b.shot("signup-error")
	b.fill(map[string]string{"password": pass})
	b.expectPage(b.press(`form button[type=submit]`), 200, "Check your mail")

	// The mail's link opens the confirmation page; its button confirms.
	_, text, _ := s.sink.waitFor(email, 30*time.Second).parts(t)
	link := confirmLinkRE.FindString(text)
	if link == "" {
		t.Fatalf("no link in the mail:\n%s", text)
	}
	b.expectPage(b.open(pathOf(t, link)), 200, "Confirm your e-mail address")
	b.shot("confirm")
	b.expectPage(b.press(`form button[type=submit]`), 200, "E-mail address confirmed")

	// Log in from the gate's redirect: a wrong password, then the right
	// one lands on the app page the browser asked for.
	b.expectPage(b.open("/app/inbox"), 200, "Log in")
	b.fill(map[string]string{"email": email, "password": "wrong password!"})
	b.expectPage(b.press(`form button[type=submit]`), 401, "Log in")
	b.expectFieldError("password", "wrong")
	b.shot("login-error")
	b.fill(map[string]string{"password": pass})
	res = b.press(`form button[type=submit]`)
	if res.Status != 200 || b.path() != "/app/inbox" || !strings.Contains(b.js(`document.body.innerText`), "app for "+email) {
		t.Fatalf("after log-in: %d at %s: %s", res.Status, b.path(), b.js(`document.body.innerText`))
	}

	// The account page: change the password (wrong current one, policy,
	// then right).
	b.expectPage(b.open("/settings"), 200, "Your account")
	if n := b.js(`String(document.querySelectorAll('.sessions li').length)`); n != "1" {
		t.Fatalf("%s sessions listed, want 1", n)
	}
	b.shot("settings")
	change := `form[action="/settings/password"] button`
	b.fill(map[string]string{"current_password": "not my password", "new_password": newPass})
	b.expectPage(b.press(change), 401, "Your account")
	b.expectFieldError("current_password", "wrong")
	b.fill(map[string]string{"current_password": pass, "new_password": "tiny"})
	b.expectPage(b.press(change), 400, "Your account")
	b.expectFieldError("new_password", "at least")
	b.fill(map[string]string{"current_password": pass, "new_password": newPass})
	b.expectPage(b.press(change), 200, "Your account")
	if n := b.js(`document.querySelector('.notice').textContent`); !strings.Contains(n, "password is changed") {
		t.Fatalf("notice %q", n)
	}

	// A form whose CSRF token is gone is refused.
	b.js(`document.querySelector('form[action="/settings/password"] input[name="csrf"]').remove(), ''`)
	b.fill(map[string]string{"current_password": newPass, "new_password": pass})
	b.expectPage(b.press(change), 403, "Something went wrong")

	// Log out: the app sends the browser to log in again.
	b.open("/settings")
	b.expectPage(b.press(`form[action="/logout"] button`), 200, "Log in")
	if n := b.js(`document.querySelector('.notice').textContent`); n != "You are logged out." {
		t.Fatalf("notice %q", n)
	}
	b.expectPage(b.open("/app/inbox"), 200, "Log in")
	if cookies := b.js(`document.cookie`); strings.Contains(cookies, "session") {
		t.Fatalf("cookies left: %s", cookies)
	}

	// Forgot password → the mailed link → a new password → log in.
	b.expectPage(b.press(`a[href="/password/forgot"]`), 200, "Forgot your password?")
	b.shot("forgot")
	b.fill(map[string]string{"email": email})
	mailed := s.sink.count() // every mail so far went to email
	b.expectPage(b.press(`form button[type=submit]`), 200, "Forgot your password?")
	reset := s.sink.nthMailTo(email, mailed+1, 30*time.Second)
	_, text, _ = reset.parts(t)
	i := strings.Index(text, s.base+"/password/reset?token=")
	if i < 0 {
		t.Fatalf("no reset link:\n%s", text)
	}
	link = strings.Fields(text[i:])[0]
	b.expectPage(b.open(pathOf(t, link)), 200, "Choose a new password")
	b.shot("reset")
	b.fill(map[string]string{"password": pass})
	b.expectPage(b.press(`form button[type=submit]`), 200, "Choose a new password")
	b.open("/login")
	b.fill(map[string]string{"email": email, "password": pass})
	b.press(`form button[type=submit]`)
	if b.path() != "/settings" {
		t.Fatalf("log-in with the reset password landed on %s", b.path())
	}

	// A wrong CAPTCHA: the field says so, and a new image is shown.
	res = b.open("/captcha/signup")
	b.expectPage(res, 200, "Create an account")
	before := b.js(`document.querySelector('input[name="captcha_token"]').value`)
	b.fill(map[string]string{"email": "robot@example.com", "password": pass, "captcha": "zzzzzz"})
	b.expectPage(b.press(`form button[type=submit]`), 400, "Create an account")
	b.expectFieldError("captcha", "do not match")
	if after := b.js(`document.querySelector('input[name="captcha_token"]').value`); after == before || !strings.HasPrefix(b.js(`document.querySelector('.captcha img').src`), "data:image/svg+xml;base64,") {
		t.Fatalf("no new challenge after a wrong answer")
	}
	b.shot("signup-captcha")
}
