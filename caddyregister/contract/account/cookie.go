package account

import (
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/token"
)

// OptCookie is the handler option `cookie <name>`: the login answer also
// sets the access token as cookie <name> (HttpOnly, Secure, SameSite=Lax,
// path /: register_auth reads it in front of the app) and the refresh
// token as <name>_refresh, scoped to this API's prefix; refresh and logout
// then work from the cookies.
const OptCookie = "cookie"

func validCookieName(name string) bool {
	return name != "" && strings.IndexFunc(name, func(r rune) bool {
		return r <= ' ' || r >= 0x7f || strings.ContainsRune(`()<>@,;:\"/[]?={}`, r)
	}) < 0
}

func (c *Contract) refreshCookieName() string { return c.cookie + "_refresh" }

// secureCookies is false only for plain HTTP to localhost (a developer's
// machine, where browsers treat http://localhost as secure anyway);
// anything else gets Secure, also behind a TLS-terminating proxy.
func secureCookies(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(strings.ToLower(host), "[]")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return false
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsLoopback()
}

// setCookies sets the token cookies of a login or refresh answer.
func (c *Contract) setCookies(w http.ResponseWriter, r *http.Request, t *engine.SessionTokens) {
	if c.cookie == "" {
		return
	}
	secure := secureCookies(r)
	http.SetCookie(w, &http.Cookie{Name: c.cookie, Value: t.Access, Path: "/", MaxAge: int(t.AccessTTL / time.Second),
		HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode})
	if t.Refresh != "" && t.Session != nil {
		http.SetCookie(w, &http.Cookie{Name: c.refreshCookieName(), Value: t.Refresh, Path: c.cookiePath(), Expires: t.Session.ExpiresAt,
			HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode})
	}
}

// clearCookies expires both cookies (logout).
func (c *Contract) clearCookies(w http.ResponseWriter, r *http.Request) {
	if c.cookie == "" {
		return
	}
	secure := secureCookies(r)
	http.SetCookie(w, &http.Cookie{Name: c.cookie, Path: "/", MaxAge: -1, HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode})
	http.SetCookie(w, &http.Cookie{Name: c.refreshCookieName(), Path: c.cookiePath(), MaxAge: -1, HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode})
}

// cookiePath scopes the refresh cookie to this API (refresh and logout).
func (c *Contract) cookiePath() string {
	if c.env.Prefix == "" {
		return "/"
	}
	return c.env.Prefix
}

func (c *Contract) accessCookie(r *http.Request) string {
	if c.cookie == "" {
		return ""
	}
	ck, err := r.Cookie(c.cookie)
	if err != nil {
		return ""
	}
	return ck.Value
}

// cookieRefresh is the refresh token of the refresh cookie, for a request
// whose body names none (empty, or no refresh_token member).
func (c *Contract) cookieRefresh(r *http.Request, body []byte) (string, bool) {
	if c.cookie == "" || strings.Contains(string(body), `"refresh_token"`) {
		return "", false
	}
	ck, err := r.Cookie(c.refreshCookieName())
	if err != nil || ck.Value == "" {
		return "", false
	}
	return ck.Value, true
}

// cookieBearer is bearer with the access cookie as a last source.
func (c *Contract) cookieBearer(r *http.Request) (*engine.Principal, error) {
	tok := token.FromHeaders(r.Header.Get)
	if tok == "" {
		tok = c.accessCookie(r)
	}
	return c.env.Engine.AuthenticateToken(r.Context(), tok)
}
