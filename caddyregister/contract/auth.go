package contract

import (
	"net/http"

	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/token"
)

// Authenticate finds the caller: HTTP Basic admin credentials, or an access
// token from Authorization: Bearer or x-access-token. The engine decides;
// this only reads the headers.
func Authenticate(r *http.Request, eng *engine.Engine, clientIP string) (*engine.Principal, error) {
	if login, pass, ok := r.BasicAuth(); ok {
		return eng.AuthenticateBasic(r.Context(), clientIP, login, pass)
	}
	return eng.AuthenticateToken(r.Context(), token.FromHeaders(r.Header.Get))
}

// RequireAdmin authenticates the caller of an admin route and lets the
// engine decide whether it may use perm (engine.RequireAdmin: configured
// admins, or a user the operator granted perm; a user's ordinary
// permissions never count). Routes that call it set Route.Admin.
func RequireAdmin(r *http.Request, eng *engine.Engine, clientIP, perm string) (*engine.Principal, error) {
	p, err := Authenticate(r, eng, clientIP)
	if err != nil {
		return nil, err
	}
	if err := eng.RequireAdmin(r.Context(), p, perm); err != nil {
		return nil, err
	}
	return p, nil
}
