package caddyregister

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"
	"go.uber.org/zap"
	"golang.org/x/net/http/httpguts"

	"github.com/caddyregister/caddyregister/caddyregister/contract"
	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/token"
)

func init() {
	caddy.RegisterModule(Gate{})
	caddy.RegisterModule(GateHandler{})
}

// Gate is the authentication provider http.authentication.providers.register:
// it admits requests that carry a token (or, with Basic, credentials) of a
// user or admin the register app knows, and tells the app behind who is
// calling. It is the standard authentication handler's provider in JSON;
// the register_auth directive uses it through GateHandler, which adds the
// answers a provider cannot give (403, problem bodies, the login redirect).
//
// Whatever the outcome, the identity headers it sets, and every header
// configured, are first deleted from the client's request in any case and
// with dashes or underscores, so a client can never speak for the gate.
type Gate struct {
	// Require lists permissions the caller must all hold; empty admits any
	// active user or admin.
	Require []string `json:"require,omitempty"`
	// AllowPending admits users whose account is not activated yet.
	AllowPending bool `json:"allow_pending,omitempty"`
	// Headers adds identity headers, or renames a default one's field:
	// header name → field (id, email, login, tenant, permissions, status,
	// sid, kind).
	Headers map[string]string `json:"headers,omitempty"`
	// HeadersOff sends none of the default identity headers (X-User-Id,
	// X-User-Email, X-User-Login, X-User-Tenant, X-User-Permissions,
	// X-User-Status); they are still deleted from the client's request.
	HeadersOff bool `json:"headers_off,omitempty"`
	// Assertion names a header that carries a signed assertion of the
	// caller (an EdDSA JWT, 60 s) for apps that verify.
	Assertion string `json:"assertion,omitempty"`
	// LoginURL is where a browser without credentials is sent (with
	// return_to), instead of a 401. Only register_auth redirects.
	LoginURL string `json:"login_url,omitempty"`
	// Cookie names a cookie the access token is also taken from.
	Cookie string `json:"cookie,omitempty"`
	// Basic also accepts HTTP Basic credentials of users and admins
	// (verified once, then cached; see engine.AuthenticateUserBasic).
	Basic bool `json:"basic,omitempty"`
	// ForwardToken passes the credential (Authorization, x-access-token,
	// the cookie) on to the app; by default the gate removes it.
	ForwardToken bool `json:"forward_token,omitempty"`

	app    *App
	out    []identityHeader
	strip  []string // normalized names (lowercase, '_' as '-') to delete
	logger *zap.Logger
}

// identityHeader is one header the gate sets.
type identityHeader struct {
	name  string // canonical
	field string
}

// Identity fields, as the header option and the placeholders
// {http.auth.user.<field>} name them.
var identityFields = []string{"id", "email", "login", "tenant", "permissions", "status", "sid", "kind"}

// defaultIdentityHeaders are sent unless headers off.
var defaultIdentityHeaders = []identityHeader{
	{"X-User-Id", "id"},
	{"X-User-Email", "email"},
	{"X-User-Login", "login"},
	{"X-User-Tenant", "tenant"},
	{"X-User-Permissions", "permissions"},
	{"X-User-Status", "status"},
}

// CaddyModule returns the Caddy module information.
func (Gate) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.authentication.providers.register",
		New: func() caddy.Module { return new(Gate) },
	}
}

// Provision checks the options and finds the register app (no I/O: the
// app's engine starts in its Start).
func (g *Gate) Provision(ctx caddy.Context) error {
	g.logger = ctx.Logger()
	if err := g.setup(); err != nil {
		return err
	}
	appIface, err := ctx.App("register")
	if err != nil {
		return fmt.Errorf("register_auth: loading register app: %w", err)
	}
	g.app = appIface.(*App)
	return nil
}

// setup checks the options and derives the headers to set and to strip.
func (g *Gate) setup() error {
	for _, p := range g.Require {
		if strings.TrimSpace(p) == "" {
			return errors.New("register_auth: require: empty permission")
		}
	}
	g.out = nil
	if !g.HeadersOff {
		g.out = slices.Clone(defaultIdentityHeaders)
	}
	names := make([]string, 0, len(g.Headers))
	for name := range g.Headers {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		field := g.Headers[name]
		if !httpguts.ValidHeaderFieldName(name) {
			return fmt.Errorf("register_auth: header %q: not a header name", name)
		}
		if !slices.Contains(identityFields, field) {
			return fmt.Errorf("register_auth: header %s: unknown field %q (known: %s)", name, field, strings.Join(identityFields, ", "))
		}
		canon := http.CanonicalHeaderKey(name)
		g.out = slices.DeleteFunc(g.out, func(h identityHeader) bool { return normHeader(h.name) == normHeader(canon) })
		g.out = append(g.out, identityHeader{canon, field})
	}
	if g.Assertion != "" {
		if !httpguts.ValidHeaderFieldName(g.Assertion) {
			return fmt.Errorf("register_auth: assertion %q: not a header name", g.Assertion)
		}
		g.Assertion = http.CanonicalHeaderKey(g.Assertion)
	}
	// Every name the gate may set is deleted from every request, whatever
	// the configuration says this time (headers off included).
	g.strip = nil
	addStrip := func(name string) {
		if n := normHeader(name); !slices.Contains(g.strip, n) {
			g.strip = append(g.strip, n)
		}
	}
	for _, h := range defaultIdentityHeaders {
		addStrip(h.name)
	}
	for _, h := range g.out {
		addStrip(h.name)
	}
	if g.Assertion != "" {
		addStrip(g.Assertion)
	}
	if g.LoginURL != "" {
		if err := checkLoginURL(g.LoginURL); err != nil {
			return fmt.Errorf("register_auth: login_url: %w", err)
		}
	}
	if g.Cookie != "" && !validCookieName(g.Cookie) {
		return fmt.Errorf("register_auth: cookie %q: not a cookie name", g.Cookie)
	}
	return nil
}

// checkLoginURL accepts a path on this site or an http(s) URL.
func checkLoginURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if u.Scheme == "" && u.Host == "" {
		if !strings.HasPrefix(s, "/") || strings.HasPrefix(s, "//") || strings.HasPrefix(s, `/\`) {
			return fmt.Errorf("%q: want a path (/login) or an http(s) URL", s)
		}
		return nil
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q: want a path (/login) or an http(s) URL", s)
	}
	return nil
}

func validCookieName(name string) bool { return contract.ValidCookieName(name) }

// Authenticate implements caddyauth.Authenticator. A refusal sets the
// challenge (WWW-Authenticate) and is answered by the authentication
// handler (401, no body); an error is a technical failure (the store).
func (g *Gate) Authenticate(w http.ResponseWriter, r *http.Request) (caddyauth.User, bool, error) {
	p, d := g.check(r)
	if d != nil {
		d.challenge(w.Header(), r)
		if d.status >= http.StatusInternalServerError {
			return caddyauth.User{}, false, d.err
		}
		return caddyauth.User{}, false, nil
	}
	if d := g.admit(r, p); d != nil {
		return caddyauth.User{}, false, d.err
	}
	meta := make(map[string]string, len(identityFields)-1)
	for _, f := range identityFields[1:] {
		meta[f] = fieldValue(p, f)
	}
	return caddyauth.User{ID: p.ID, Metadata: meta}, true, nil
}

// credentials is what a request presents.
type credentials struct {
	token       string
	fromCookie  bool
	basic       bool
	login, pass string
	// explicit is true when the client sent an Authorization or
	// x-access-token header: a program, never redirected.
	explicit bool
}

func (g *Gate) credentials(r *http.Request) credentials {
	var c credentials
	c.explicit = firstValue(r.Header, "Authorization") != "" || firstValue(r.Header, accessTokenKey) != ""
	if c.token = token.FromHeaders(func(name string) string {
		if name == token.HeaderAccessToken {
			name = accessTokenKey
		}
		return firstValue(r.Header, http.CanonicalHeaderKey(name))
	}); c.token != "" {
		return c
	}
	if g.Basic {
		if login, pass, ok := r.BasicAuth(); ok {
			c.basic, c.login, c.pass = true, login, pass
			return c
		}
	}
	if g.Cookie != "" {
		if ck, err := r.Cookie(g.Cookie); err == nil && ck.Value != "" {
			c.token, c.fromCookie = ck.Value, true
		}
	}
	return c
}

// accessTokenKey is token.HeaderAccessToken as Go keys request headers.
var accessTokenKey = http.CanonicalHeaderKey(token.HeaderAccessToken)

// firstValue is Header.Get for a key already canonical: no
// canonicalisation (and allocation) per request.
func firstValue(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// check strips the spoofable headers and decides: the principal, or why
// not.
func (g *Gate) check(r *http.Request) (*engine.Principal, *denial) {
	stripHeaders(r.Header, g.strip)
	c := g.credentials(r)
	if c.token == "" && !c.basic {
		return nil, g.deny(r, c, &denial{status: http.StatusUnauthorized, typ: problemUnauthorized, detail: "an access token is required (Authorization: Bearer)"})
	}
	eng := g.app.Engine()
	var (
		p   *engine.Principal
		err error
	)
	if c.basic {
		p, err = eng.AuthenticateUserBasic(r.Context(), clientIPOf(r), c.login, c.pass)
	} else {
		if c.fromCookie {
			// A browser sends the cookie from any site's page: one that
			// changes state must come from this site's.
			if err := refuseCrossSite(r); err != nil {
				return nil, &denial{status: http.StatusForbidden, typ: problemForbidden, detail: err.Error()}
			}
		}
		p, err = eng.AuthenticateToken(r.Context(), c.token)
	}
	if err != nil {
		return nil, g.deny(r, c, denialOf(err, c))
	}
	if p.Kind == engine.KindUser && p.Status != "active" && (p.Status != "pending" || !g.AllowPending) {
		return nil, &denial{status: http.StatusForbidden, code: "insufficient_scope", typ: problemNotActive, detail: "the account is " + p.Status, basic: g.Basic}
	}
	var missing []string
	for _, perm := range g.Require {
		if !p.Has(perm) {
			missing = append(missing, perm)
		}
	}
	if len(missing) > 0 {
		return nil, &denial{status: http.StatusForbidden, code: "insufficient_scope", scope: g.Require, typ: problemForbidden,
			detail: "missing permission: " + strings.Join(missing, ", "), basic: g.Basic}
	}
	return p, nil
}

// deny finishes a 401: the login redirect for a browser that sent no
// explicit credentials, the Basic challenge when Basic is on.
func (g *Gate) deny(r *http.Request, c credentials, d *denial) *denial {
	d.basic = g.Basic
	if d.status == http.StatusUnauthorized && g.LoginURL != "" && !c.explicit && prefersHTML(r.Header.Values("Accept")) {
		d.redirect = loginRedirect(g.LoginURL, r)
	}
	return d
}

// admit tells the app who is calling: identity headers, the assertion,
// and the credential removed unless forward_token.
func (g *Gate) admit(r *http.Request, p *engine.Principal) *denial {
	vals := make([]string, len(g.out)) // one allocation for every header
	for i, h := range g.out {
		if vals[i] = fieldValue(p, h.field); vals[i] != "" {
			r.Header[h.name] = vals[i : i+1 : i+1]
		}
	}
	if g.Assertion != "" {
		a, err := g.app.Engine().Assertion(r.Context(), p, contract.HostOnly(r.Host), token.MaxAssertionTTL)
		if err != nil {
			return denialOf(err, credentials{})
		}
		r.Header[g.Assertion] = []string{a}
	}
	if !g.ForwardToken {
		delete(r.Header, "Authorization")
		delete(r.Header, accessTokenKey)
		if g.Cookie != "" {
			dropCookie(r.Header, g.Cookie)
			// The refresh cookie of the pages mounted at the root
			// travels to every path: it is no business of the app's.
			dropCookie(r.Header, contract.SessionCookies{Name: g.Cookie}.RefreshName())
		}
	}
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		// A provider, not eight Sets: each Set is a map insert (growing
		// the request's placeholder map), paid whether or not a directive
		// reads the placeholder; this costs one closure.
		repl.Map(func(key string) (any, bool) {
			f, ok := strings.CutPrefix(key, "http.auth.user.")
			if !ok || !slices.Contains(identityFields, f) {
				return nil, false
			}
			return fieldValue(p, f), true
		})
	}
	return nil
}

// fieldValue is an identity field of p, as headers carry it.
func fieldValue(p *engine.Principal, field string) string {
	switch field {
	case "id":
		return p.ID
	case "email":
		return p.Email
	case "login":
		if p.Kind == engine.KindAdmin {
			return p.ID
		}
		return p.Login
	case "tenant":
		return p.TenantID
	case "permissions":
		return strings.Join(p.Permissions, ",")
	case "status":
		return p.Status
	case "sid":
		return p.SID
	case "kind":
		return p.Kind
	}
	return ""
}

// GateHandler is the HTTP handler http.handlers.register_auth, which the
// register_auth directive configures: the Gate, answering its refusals
// itself (the standard authentication handler answers every one 401 with
// no body). Refusals are RFC 9457 problems with an RFC 6750 challenge; a
// browser without credentials is redirected to login_url.
type GateHandler struct {
	Gate
}

// CaddyModule returns the Caddy module information.
func (GateHandler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.register_auth",
		New: func() caddy.Module { return new(GateHandler) },
	}
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *GateHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	p, d := h.check(r)
	if d == nil {
		d = h.admit(r, p)
	}
	if d != nil {
		if d.status >= http.StatusInternalServerError {
			h.logger.Error("register_auth: refusing the request", zap.String("path", r.URL.Path), zap.Int("status", d.status), zap.Error(d.err))
		}
		d.write(w, r)
		return nil
	}
	return next.ServeHTTP(w, r)
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Gate)(nil)
	_ caddyauth.Authenticator     = (*Gate)(nil)
	_ caddy.Provisioner           = (*GateHandler)(nil)
	_ caddyhttp.MiddlewareHandler = (*GateHandler)(nil)
)
