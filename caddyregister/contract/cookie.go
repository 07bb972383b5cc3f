package contract

import (
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/engine"
)

// SessionCookies are the cookies a browser's session travels in, set by
// whatever logs a browser in (the account API's login with its cookie
// option, the hosted pages) and read by the gate (register_auth's cookie
// option): the access token as cookie Name (HttpOnly, SameSite=Lax, path
// /, so the gate reads it in front of the app) and the refresh token as
// Name_refresh, scoped to RefreshPath. One implementation, so the gate,
// the API and the pages agree on names, flags and lifetimes.
type SessionCookies struct {
	// Name is the access token cookie's name; empty: no cookies.
	Name string
	// RefreshPath scopes the refresh cookie: the prefix of the routes
	// that refresh and log out ("/" when they are mounted at the root).
	RefreshPath string
}

// ValidCookieName reports whether name is an RFC 6265 cookie name.
func ValidCookieName(name string) bool {
	return name != "" && strings.IndexFunc(name, func(r rune) bool {
		return r <= ' ' || r >= 0x7f || strings.ContainsRune(`()<>@,;:\"/[]?={}`, r)
	}) < 0
}

// CookiePath is the path that scopes a cookie to routes mounted at prefix
// ("" is the root).
func CookiePath(prefix string) string {
	if prefix == "" {
		return "/"
	}
	return prefix
}

// RefreshName is the refresh cookie's name.
func (c SessionCookies) RefreshName() string { return c.Name + "_refresh" }

// SecureCookies is false only for plain HTTP to localhost (a developer's
// machine, where browsers treat http://localhost as secure anyway);
// anything else gets Secure, also behind a TLS-terminating proxy.
func SecureCookies(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	host := HostOnly(r.Host)
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return false
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsLoopback()
}

// HostOnly is a request's Host without its port or IPv6 brackets,
// lowercased.
func HostOnly(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.ToLower(strings.Trim(host, "[]"))
}

// Set sets the cookies of a login or refresh answer.
func (c SessionCookies) Set(w http.ResponseWriter, r *http.Request, t *engine.SessionTokens) {
	if c.Name == "" {
		return
	}
	secure := SecureCookies(r)
	http.SetCookie(w, &http.Cookie{Name: c.Name, Value: t.Access, Path: "/", MaxAge: int(t.AccessTTL / time.Second),
		HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode})
	if t.Refresh != "" && t.Session != nil {
		http.SetCookie(w, &http.Cookie{Name: c.RefreshName(), Value: t.Refresh, Path: c.refreshPath(), Expires: t.Session.ExpiresAt,
			HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode})
	}
}

// Clear expires both cookies (logout).
func (c SessionCookies) Clear(w http.ResponseWriter, r *http.Request) {
	if c.Name == "" {
		return
	}
	secure := SecureCookies(r)
	http.SetCookie(w, &http.Cookie{Name: c.Name, Path: "/", MaxAge: -1, HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode})
	http.SetCookie(w, &http.Cookie{Name: c.RefreshName(), Path: c.refreshPath(), MaxAge: -1, HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode})
}

func (c SessionCookies) refreshPath() string {
	if c.RefreshPath == "" {
		return "/"
	}
	return c.RefreshPath
}

// Access is the access token cookie's value, or "".
func (c SessionCookies) Access(r *http.Request) string {
	return c.value(r, c.Name)
}

// Refresh is the refresh token cookie's value, or "".
func (c SessionCookies) Refresh(r *http.Request) string {
	return c.value(r, c.RefreshName())
}

func (c SessionCookies) value(r *http.Request, name string) string {
	if c.Name == "" {
		return ""
	}
	ck, err := r.Cookie(name)
	if err != nil {
		return ""
	}
	return ck.Value
}
