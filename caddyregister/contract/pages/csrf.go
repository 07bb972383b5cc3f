package pages

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"

	"github.com/caddyregister/caddyregister/caddyregister/contract"
)

// CSRF: a double-submit token. The first page a browser gets sets a
// random 256-bit value as an HttpOnly, SameSite=Lax cookie; every form
// carries the same value in a hidden field, and a POST whose field does not
// match its cookie (compared in constant time) is refused with 403 before
// anything else runs. A page of another site can make the browser send
// the cookie but cannot read it, so cannot fill in the field.
//
// The token is not signed: signing defends against a party that can plant
// cookies for this host (a sibling subdomain, or a network attacker over
// plain HTTP). Over HTTPS the cookie is named __Host-…, which browsers
// only accept from this very host, over HTTPS, for path /: that closes the
// same hole without a server key every instance would have to share. And
// the handler's cross-site check (Sec-Fetch-Site, Origin) refuses a form
// another site posts before the token is looked at, so a planted cookie
// alone would not do either.

// csrfField is the forms' hidden field.
const csrfField = "csrf"

func csrfCookieName(r *http.Request) string {
	if contract.SecureCookies(r) {
		return "__Host-register_csrf"
	}
	return "register_csrf" // plain HTTP to localhost: __Host- needs Secure
}

// csrfToken returns the browser's token, setting a new cookie when it has
// none (or a malformed one).
func csrfToken(w http.ResponseWriter, r *http.Request) string {
	name := csrfCookieName(r)
	if ck, err := r.Cookie(name); err == nil && validToken(ck.Value) {
		return ck.Value
	}
	var b [32]byte
	_, _ = rand.Read(b[:])
	tok := base64.RawURLEncoding.EncodeToString(b[:])
	http.SetCookie(w, &http.Cookie{Name: name, Value: tok, Path: "/", HttpOnly: true,
		Secure: contract.SecureCookies(r), SameSite: http.SameSiteLaxMode})
	return tok
}

func validToken(s string) bool {
	b, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil && len(b) == 32
}

// csrfOK reports whether form carries the token of r's cookie.
func csrfOK(r *http.Request, form url.Values) bool {
	ck, err := r.Cookie(csrfCookieName(r))
	if err != nil || !validToken(ck.Value) {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(ck.Value), []byte(form.Get(csrfField))) == 1
}
