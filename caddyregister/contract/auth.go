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

// Require authenticates the caller and checks it holds perm.
func Require(r *http.Request, eng *engine.Engine, clientIP, perm string) (*engine.Principal, error) {
	p, err := Authenticate(r, eng, clientIP)
	if err != nil {
		return nil, err
	}
	if err := p.Require(perm); err != nil {
		return nil, err
	}
	return p, nil
}
