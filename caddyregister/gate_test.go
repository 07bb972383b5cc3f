package caddyregister

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/store"
)

func TestStripHeaders(t *testing.T) {
	names := []string{normHeader("X-User-Id"), normHeader("X-Auth_Sub")}
	h := http.Header{}
	for _, k := range []string{"X-User-Id", "x-user-id", "X_User_Id", "x_user_id", "X-USER-ID", "x-User_id", "X.User.Id", "x.user_id",
		"X-Auth-Sub", "x_auth_sub", "X.AUTH.SUB"} {
		h[k] = []string{"spoof"}
	}
	keep := []string{"X-User-Ids", "X-User", "Xuser-Id", "Accept", "X-Auth-Subject"}
	for _, k := range keep {
		h[k] = []string{"keep"}
	}
	stripHeaders(h, names)
	var got []string
	for k := range h {
		got = append(got, k)
	}
	slices.Sort(got)
	slices.Sort(keep)
	if !slices.Equal(got, keep) {
		t.Fatalf("left %q, want %q", got, keep)
	}
	if normHeader("X_User.ID") != "x-user-id" {
		t.Fatalf("normHeader: %q", normHeader("X_User.ID"))
	}
}

func TestDropCookie(t *testing.T) {
	for _, c := range []struct{ in, want []string }{
		{[]string{"a=1; session=tok; b=2"}, []string{"a=1; b=2"}},
		{[]string{"session=tok"}, nil},
		{[]string{"a=1", "session=tok"}, []string{"a=1"}},
		{[]string{"session_refresh=r; sessionx=1"}, []string{"session_refresh=r; sessionx=1"}},
	} {
		h := http.Header{"Cookie": c.in}
		dropCookie(h, "session")
		if !slices.Equal(h["Cookie"], c.want) {
			t.Errorf("%q: %q, want %q", c.in, h["Cookie"], c.want)
		}
	}
}

func TestSafeReturnTo(t *testing.T) {
	for in, want := range map[string]string{
		"/app/x?a=1":            "/app/x?a=1",
		"/":                     "/",
		"//evil.example/x":      "/",
		`/\evil.example`:        "/",
		"https://evil.example/": "/",
		"evil.example":          "/",
		"":                      "/",
		"/a\r\nLocation: x":     "/",
		"/a\\b":                 "/",
		"/app//x":               "/app//x",
	} {
		if got := SafeReturnTo(in); got != want {
			t.Errorf("SafeReturnTo(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPrefersHTML(t *testing.T) {
	for accept, want := range map[string]bool{
		"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8": true, // Firefox, Chrome
		"text/html":                         true,
		"*/*":                               false, // fetch, curl
		"":                                  false,
		"application/json":                  false,
		"application/json, text/html;q=0.5": false,
		"text/html;q=0.5, application/json;q=0.5": true,
		"text/html;q=0": false,
		"text/*":        false,
	} {
		var v []string
		if accept != "" {
			v = []string{accept}
		}
		if got := prefersHTML(v); got != want {
			t.Errorf("prefersHTML(%q) = %v, want %v", accept, got, want)
		}
	}
}

// TestDenialFormat: each refusal's status, challenge (RFC 6750 §3) and
// problem body.
func TestDenialFormat(t *testing.T) {
	cases := []struct {
		name       string
		d          *denial
		status     int
		challenges []string
		retry      string
	}{
		{"no token", &denial{status: 401, typ: problemUnauthorized}, 401, []string{`Bearer realm="caddyregister"`}, ""},
		{"invalid", denialOf(engine.ErrSessionRevoked, credentials{}), 401, []string{`Bearer realm="caddyregister", error="invalid_token"`}, ""},
		{"basic wrong", func() *denial {
			d := denialOf(engine.ErrUnauthenticated, credentials{basic: true})
			d.basic = true
			return d
		}(), 401,
			[]string{`Bearer realm="caddyregister"`, `Basic realm="caddyregister", charset="UTF-8"`}, ""},
		{"scope", &denial{status: 403, code: "insufficient_scope", scope: []string{"a", "b c", `x"y`}, typ: problemForbidden}, 403,
			[]string{`Bearer realm="caddyregister", error="insufficient_scope", scope="a"`}, ""},
		{"pending", denialOf(engine.ErrNotActivated, credentials{}), 403, []string{`Bearer realm="caddyregister", error="insufficient_scope"`}, ""},
		{"limited", denialOf(&engine.RateLimitedError{RetryAfter: 1500 * time.Millisecond}, credentials{basic: true}), 429, nil, "2"},
		{"store down", denialOf(store.Unavailable("get", errors.New("down")), credentials{}), 503, nil, "2"},
	}
	for _, c := range cases {
		w := httptest.NewRecorder()
		c.d.write(w, httptest.NewRequest(http.MethodGet, "/app", nil))
		if w.Code != c.status {
			t.Errorf("%s: status %d, want %d", c.name, w.Code, c.status)
		}
		if got := w.Header().Values("WWW-Authenticate"); !slices.Equal(got, c.challenges) {
			t.Errorf("%s: challenges %q, want %q", c.name, got, c.challenges)
		}
		if got := w.Header().Get("Retry-After"); got != c.retry {
			t.Errorf("%s: Retry-After %q, want %q", c.name, got, c.retry)
		}
		var p gateProblem
		if w.Header().Get("Content-Type") != "application/problem+json" || json.Unmarshal(w.Body.Bytes(), &p) != nil ||
			p.Status != c.status || p.Title != http.StatusText(c.status) || p.Type == "" {
			t.Errorf("%s: body %q (%s)", c.name, w.Body, w.Header().Get("Content-Type"))
		}
	}

	// A redirect has no body and no challenge.
	w := httptest.NewRecorder()
	(&denial{status: 401, redirect: "/login?return_to=%2Fapp"}).write(w, httptest.NewRequest(http.MethodPost, "/app", nil))
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/login?return_to=%2Fapp" || w.Body.Len() != 0 || w.Header().Get("WWW-Authenticate") != "" {
		t.Errorf("redirect: %d %q %q", w.Code, w.Header(), w.Body)
	}
}

func TestCheckLoginURL(t *testing.T) {
	for s, ok := range map[string]bool{"/login": true, "https://id.example.com/login": true, "//evil": false, "login": false, "javascript:x": false, "ftp://x/": false} {
		if err := checkLoginURL(s); (err == nil) != ok {
			t.Errorf("checkLoginURL(%q): %v", s, err)
		}
	}
}
