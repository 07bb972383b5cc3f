package account

import (
	"net/http"
	"strings"

	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/token"
)

// OptCookie is the handler option `cookie <name>`: the login answer also
// sets the access token as cookie <name> (HttpOnly, Secure, SameSite=Lax,
// path /: register_auth reads it in front of the app) and the refresh
// token as <name>_refresh, scoped to this API's prefix; refresh and logout
// then work from the cookies (contract.SessionCookies).
const OptCookie = "cookie"

// setCookies sets the token cookies of a login or refresh answer.
func (c *Contract) setCookies(w http.ResponseWriter, r *http.Request, t *engine.SessionTokens) {
	c.cookies.Set(w, r, t)
}

// clearCookies expires both cookies (logout).
func (c *Contract) clearCookies(w http.ResponseWriter, r *http.Request) {
	c.cookies.Clear(w, r)
}

func (c *Contract) accessCookie(r *http.Request) string {
	return c.cookies.Access(r)
}

// cookieRefresh is the refresh token of the refresh cookie, for a request
// whose body names none (empty, or no refresh_token member).
func (c *Contract) cookieRefresh(r *http.Request, body []byte) (string, bool) {
	if c.cookies.Name == "" || strings.Contains(string(body), `"refresh_token"`) {
		return "", false
	}
	rt := c.cookies.Refresh(r)
	return rt, rt != ""
}

// cookieBearer is bearer with the access cookie as a last source.
func (c *Contract) cookieBearer(r *http.Request) (*engine.Principal, error) {
	tok := token.FromHeaders(r.Header.Get)
	if tok == "" {
		tok = c.accessCookie(r)
	}
	return c.env.Engine.AuthenticateToken(r.Context(), tok)
}
