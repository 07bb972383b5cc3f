package caddyregister

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddyregister/caddyregister/caddyregister/contract"
	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/password"
	"github.com/caddyregister/caddyregister/caddyregister/ratelimit"

	// The contracts this build speaks.
	_ "github.com/caddyregister/caddyregister/caddyregister/contract/account"
	_ "github.com/caddyregister/caddyregister/caddyregister/contract/indiqus"
	_ "github.com/caddyregister/caddyregister/caddyregister/contract/noraina"
	_ "github.com/caddyregister/caddyregister/caddyregister/contract/pages"
	_ "github.com/caddyregister/caddyregister/caddyregister/contract/rpost"
	_ "github.com/caddyregister/caddyregister/caddyregister/contract/saymon"
	_ "github.com/caddyregister/caddyregister/caddyregister/contract/soajs"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// DefaultMaxBodySize bounds request bodies (64 KiB): registrations are a
// few hundred bytes, and the limit keeps floods cheap.
const DefaultMaxBodySize = 64 << 10

// JWKSPath is where handlers publish the token verification keys.
const JWKSPath = "/.well-known/jwks.json"

// Handler serves one contract's routes under a prefix and passes every
// other request on, so it can sit in front of the app it guards.
type Handler struct {
	// Contract names the wire contract ("noraina").
	Contract string `json:"contract"`
	// Prefix is where the routes are mounted; default is the contract's
	// documented prefix.
	Prefix string `json:"prefix,omitempty"`
	// RateLimits override the app's per-route limits by route name.
	RateLimits map[string]*RateLimitConfig `json:"rate_limits,omitempty"`
	// GlobalRateLimits override the app's global per-route ceilings.
	GlobalRateLimits map[string]*RateLimitConfig `json:"global_rate_limits,omitempty"`
	// Password overrides fields of the contract's password policy.
	Password *PolicyConfig `json:"password,omitempty"`
	// MaxBodySize bounds request bodies in bytes; larger ones get 413.
	MaxBodySize int64 `json:"max_body_size,omitempty"`
	// DisableJWKS stops this handler from answering JWKSPath.
	DisableJWKS bool `json:"disable_jwks,omitempty"`

	// Captcha is "required" or "off"; default is the contract's.
	Captcha string `json:"captcha,omitempty"`
	// SignupDisabled turns self-service signup off (403), like saymon's
	// server.user.auth_enabled=false.
	SignupDisabled bool `json:"signup_disabled,omitempty"`
	// DefaultPermissions are given to new users (effective once active).
	DefaultPermissions []string `json:"default_permissions,omitempty"`
	// DefaultObjectPermissions are given to new users where the contract's
	// model has them (saymon).
	DefaultObjectPermissions *contract.ObjectPermissions `json:"default_object_permissions,omitempty"`
	// LinkTTL is how long links in mails stay valid. Default 24h.
	LinkTTL caddy.Duration `json:"link_ttl,omitempty"`
	// Sessions override the app's session idle and absolute lifetimes
	// for the sessions this handler opens and refreshes (the refresh
	// grace window is the app's).
	Sessions *SessionsConfig `json:"sessions,omitempty"`
	// PublicURL is the base of links in mails; default the app's
	// public_url, else the request's scheme and host.
	PublicURL string `json:"public_url,omitempty"`
	// MailTemplate names files replacing parts of the contract's mail.
	MailTemplate *contract.TemplateFiles `json:"mail_template,omitempty"`
	// Options are contract-specific options (name → lines → arguments);
	// each contract documents its own. In the Caddyfile they are the
	// block's other subdirectives.
	Options contract.Options `json:"options,omitempty"`
	// OpenAPI serves the contract's OpenAPI document at
	// {prefix}/openapi.json, its servers naming the prefix.
	OpenAPI bool `json:"openapi,omitempty"`

	app      *App
	contract contract.Contract
	routes   map[string][]contract.Route // by full path
	// foldRoutes holds the routes by lowercased full path when the
	// contract's routes are case-insensitive (nil otherwise).
	foldRoutes map[string][]contract.Route
	limits     map[string]ratelimit.Limit // by route name
	limitKeys  map[string]string          // "<contract>:<route>" by route name
	globals    map[string]ratelimit.Limit // by route name
	logger     *zap.Logger

	// patterns holds the routes whose paths have {name} segments, tried
	// in order after the exact paths.
	patterns []patternRoutes

	// openapiDoc is the document served when OpenAPI is set, built at
	// Provision (nil otherwise).
	openapiDoc []byte
}

// PolicyConfig overrides password policy fields; zero fields keep the
// contract's default.
type PolicyConfig struct {
	MinLength     int  `json:"min_length,omitempty"`
	MaxLength     int  `json:"max_length,omitempty"`
	MinLowercase  int  `json:"min_lowercase,omitempty"`
	MinCapital    int  `json:"min_capital,omitempty"`
	MinDigits     int  `json:"min_digits,omitempty"`
	MinSpecial    int  `json:"min_special,omitempty"`
	NoSpaces      bool `json:"no_spaces,omitempty"`
	NotIdentifier bool `json:"not_identifier,omitempty"`
}

func (p *PolicyConfig) policy() password.Policy {
	return password.Policy{
		MinLength: p.MinLength, MaxLength: p.MaxLength, MinLower: p.MinLowercase,
		MinUpper: p.MinCapital, MinDigits: p.MinDigits, MinSpecial: p.MinSpecial,
		NoSpaces: p.NoSpaces, NotEqualIdentifiers: p.NotIdentifier,
	}
}

// documentedPrefixes are the prefixes the contract documents use.
var documentedPrefixes = map[string]string{
	"noraina": "/api",
	"saymon":  "/node/api",
	"indiqus": "/api",
	"soajs":   "/urac",
	"rpost":   "/api/v1",
	"account": "/account",
}

// patternRoutes are the routes at one path pattern.
type patternRoutes struct {
	pattern *contract.Pattern
	routes  []contract.Route
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.register",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision builds the contract's route table.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	appIface, err := ctx.App("register")
	if err != nil {
		return fmt.Errorf("register handler: loading register app: %w", err)
	}
	h.app = appIface.(*App)

	factory, ok := contract.Lookup(h.Contract)
	if !ok {
		return fmt.Errorf("register handler: unknown contract %q (known: %s)", h.Contract, strings.Join(contract.Names(), ", "))
	}
	// Checked here, once for every contract: a handler that would make
	// every new user an admin must not load.
	if err := engine.CheckDefaultPermissions(h.DefaultPermissions); err != nil {
		return fmt.Errorf("register handler %s: %w", h.Contract, err)
	}
	if h.Prefix == "" {
		h.Prefix = documentedPrefixes[h.Contract]
	}
	h.Prefix = "/" + strings.Trim(h.Prefix, "/")
	if h.Prefix == "/" {
		h.Prefix = ""
	}
	if h.MaxBodySize <= 0 {
		h.MaxBodySize = DefaultMaxBodySize
	}
	env := contract.Env{Engine: h.app.Engine(), Logger: h.logger, Prefix: h.Prefix, Options: h.Options}
	env.Settings = contract.Settings{
		Captcha:                  h.Captcha,
		SignupDisabled:           h.SignupDisabled,
		DefaultPermissions:       h.DefaultPermissions,
		DefaultObjectPermissions: h.DefaultObjectPermissions,
		LinkTTL:                  time.Duration(h.LinkTTL),
		PublicURL:                h.PublicURL,
	}
	if env.Settings.PublicURL == "" {
		env.Settings.PublicURL = h.app.PublicURL
	}
	if h.Sessions != nil {
		if h.Sessions.RefreshGrace != 0 {
			return fmt.Errorf("register %s: sessions: refresh_grace is set in the register app block, not per handler", h.Contract)
		}
		sc, err := h.Sessions.sessions()
		if err != nil {
			return fmt.Errorf("register %s: %w", h.Contract, err)
		}
		env.Settings.Sessions = engine.SessionLimits{Idle: sc.IdleTTL, Absolute: sc.AbsoluteTTL}
	}
	if h.MailTemplate != nil {
		env.Settings.Template = *h.MailTemplate
	}
	if h.Password != nil {
		p := h.Password.policy()
		env.Policy = &p
	}
	if h.contract, err = factory(env); err != nil {
		return fmt.Errorf("register handler: contract %s: %w", h.Contract, err)
	}
	h.PublicURL = caddy.NewReplacer().ReplaceKnown(h.PublicURL, "")
	if err := checkPublicURL(h.PublicURL); err != nil {
		return fmt.Errorf("register handler: %w", err)
	}
	if err := h.provisionOpenAPI(); err != nil {
		return err
	}
	h.app.handlers = append(h.app.handlers, h) // for the link host check at Start
	h.routes = map[string][]contract.Route{}
	h.patterns = nil
	h.foldRoutes = nil
	if ci, ok := h.contract.(contract.CaseInsensitiveRoutes); ok && ci.CaseInsensitiveRoutes() {
		h.foldRoutes = map[string][]contract.Route{}
	}
	h.limits = map[string]ratelimit.Limit{}
	h.limitKeys = map[string]string{}
	h.globals = map[string]ratelimit.Limit{}
	for _, rt := range h.contract.Routes() {
		full := h.Prefix + rt.Path
		if rt.Absolute {
			full = rt.Path
		}
		if pt, ok := contract.ParsePattern(full); ok {
			h.addPattern(pt, rt)
		} else {
			h.routes[full] = append(h.routes[full], rt)
		}
		if h.foldRoutes != nil && !strings.Contains(full, "{") {
			lower := strings.ToLower(full)
			h.foldRoutes[lower] = append(h.foldRoutes[lower], rt)
		}
		l := rt.Limit
		if c, ok := h.app.RateLimits[rt.Name]; ok {
			l = c.limit()
		}
		if c, ok := h.RateLimits[rt.Name]; ok {
			l = c.limit()
		}
		h.limits[rt.Name] = l
		h.limitKeys[rt.Name] = h.Contract + ":" + rt.Name
		h.globals[rt.Name] = globalLimit(l, h.app.GlobalRateLimits[rt.Name], h.GlobalRateLimits[rt.Name])
	}
	for name := range h.RateLimits {
		if _, ok := h.limits[name]; !ok {
			return fmt.Errorf("register handler: rate_limit for unknown route %q of contract %s", name, h.Contract)
		}
	}
	for name := range h.GlobalRateLimits {
		if _, ok := h.limits[name]; !ok {
			return fmt.Errorf("register handler: global_rate_limit for unknown route %q of contract %s", name, h.Contract)
		}
	}
	return nil
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	// Caddy notes when it took the request (the start_time variable,
	// the access log's start); the hash queue budget counts from there.
	arrival, ok := caddyhttp.GetVar(r.Context(), "start_time").(time.Time)
	if !ok {
		arrival = time.Now()
	}
	if !h.DisableJWKS && (r.Method == http.MethodGet || r.Method == http.MethodHead) && h.isJWKSPath(r.URL.Path) {
		return h.serveJWKS(w, r)
	}
	if h.openapiDoc != nil && (r.Method == http.MethodGet || r.Method == http.MethodHead) && h.isOpenAPIPath(r.URL.Path) {
		return h.serveOpenAPI(w, r)
	}
	candidates, ok := h.lookup(r.URL.Path)
	if !ok {
		if candidates, r, ok = h.lookupPattern(r); !ok {
			return next.ServeHTTP(w, r)
		}
	}
	var rt *contract.Route
	for i := range candidates {
		if candidates[i].Method == r.Method {
			rt = &candidates[i]
		}
	}
	if rt == nil {
		allow := make([]string, len(candidates))
		for i := range candidates {
			allow[i] = candidates[i].Method
		}
		h.contract.WriteError(w, r, &contract.HTTPError{Status: http.StatusMethodNotAllowed, Message: "method not allowed", Allow: allow})
		return nil
	}
	// Header-only, so before the rate limit: a refused cross-site request
	// spends no one's budget.
	if crossSiteGuarded(rt) {
		if err := refuseCrossSite(r); err != nil {
			h.contract.WriteError(w, r, err)
			return nil
		}
	}
	clientIP := clientIPOf(r)
	eng := h.app.Engine()
	// Per client network (IPv6 by prefix) and the route's global ceiling,
	// in one step: a request refused to its client spends no global budget.
	if err := eng.AllowRequest(r.Context(), h.limitKeys[rt.Name], clientIP, h.limits[rt.Name], h.globals[rt.Name]); err != nil {
		h.logRateLimited(r, rt, err)
		h.contract.WriteError(w, r, err)
		return nil
	}
	// The hash queue budget counts from here (see password.WithArrival).
	r = r.WithContext(password.WithArrival(r.Context(), arrival))
	req := &contract.Request{ClientIP: clientIP}
	if h.mailsLinks() {
		// Only for contracts that mail links: Start checked their hosts.
		req.BaseURL = h.linkBase(r)
	}
	if len(rt.ContentTypes) > 0 {
		body, err := h.readBody(w, r, rt)
		if err != nil {
			h.contract.WriteError(w, r, err)
			return nil
		}
		req.Body = body
	}
	rt.Serve(w, r, req)
	return nil
}

// lookup finds the routes at request path p as the contract's framework
// would: repeated slashes, a trailing slash and dot segments do not count
// (path.Clean), nor does case for a contract whose routes are
// case-insensitive. A path as the route declares it costs one map lookup
// and no allocation; so does any clean path that matches no route in
// lowercase letters.
func (h *Handler) lookup(p string) ([]contract.Route, bool) {
	if rs, ok := h.routes[p]; ok {
		return rs, true
	}
	c := path.Clean(p) // returns p itself when it is clean
	if c != p {
		if rs, ok := h.routes[c]; ok {
			return rs, true
		}
	}
	if h.foldRoutes == nil {
		return nil, false
	}
	rs, ok := h.foldRoutes[strings.ToLower(c)] // c itself without upper case
	return rs, ok
}

// lookupPattern finds the routes whose path pattern matches r's path
// (cleaned as lookup cleans it), and returns r carrying the parameter
// values for contract.PathParam. Patterns are tried in the contract's
// order; the first match wins.
func (h *Handler) lookupPattern(r *http.Request) ([]contract.Route, *http.Request, bool) {
	if len(h.patterns) == 0 {
		return nil, r, false
	}
	c := path.Clean(r.URL.Path)
	for _, pr := range h.patterns {
		if vals, ok := pr.pattern.Match(c, h.foldRoutes != nil); ok {
			return pr.routes, contract.WithPathParams(r, pr.pattern.Names(), vals), true
		}
	}
	return nil, r, false
}

// addPattern files rt under its path pattern pt.
func (h *Handler) addPattern(pt *contract.Pattern, rt contract.Route) {
	for i := range h.patterns {
		if h.patterns[i].routes[0].Path == rt.Path && h.patterns[i].routes[0].Absolute == rt.Absolute {
			h.patterns[i].routes = append(h.patterns[i].routes, rt)
			return
		}
	}
	h.patterns = append(h.patterns, patternRoutes{pattern: pt, routes: []contract.Route{rt}})
}

// isJWKSPath matches JWKSPath as lookup matches routes.
func (h *Handler) isJWKSPath(p string) bool {
	if p == JWKSPath {
		return true
	}
	c := path.Clean(p)
	if h.foldRoutes != nil {
		return strings.EqualFold(c, JWKSPath)
	}
	return c == JWKSPath
}

func (h *Handler) readBody(w http.ResponseWriter, r *http.Request, rt *contract.Route) ([]byte, error) {
	ct := r.Header.Get("Content-Type")
	mt := rt.ContentTypes[0]
	if ct != "" {
		var err error
		if mt, _, err = mime.ParseMediaType(ct); err != nil {
			return nil, &contract.HTTPError{Status: http.StatusUnsupportedMediaType, Message: fmt.Sprintf("content type %q is not valid; send %s", ct, rt.ContentTypes[0])}
		}
	}
	if !slices.Contains(rt.ContentTypes, strings.ToLower(mt)) {
		return nil, &contract.HTTPError{Status: http.StatusUnsupportedMediaType, Message: fmt.Sprintf("content type %q is not supported; send %s", mt, strings.Join(rt.ContentTypes, " or "))}
	}
	if r.ContentLength > h.MaxBodySize {
		return nil, tooLarge(h.MaxBodySize)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.MaxBodySize))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge(h.MaxBodySize)
		}
		return nil, &contract.HTTPError{Status: http.StatusBadRequest, Message: "could not read the request body"}
	}
	return body, nil
}

func tooLarge(limit int64) error {
	return &contract.HTTPError{Status: http.StatusRequestEntityTooLarge, Message: fmt.Sprintf("request body is larger than %d bytes", limit)}
}

func (h *Handler) serveJWKS(w http.ResponseWriter, r *http.Request) error {
	jwks, err := h.app.Engine().JWKS(r.Context())
	if err != nil {
		h.logger.Error("jwks", zap.Error(err))
		return caddyhttp.Error(http.StatusServiceUnavailable, err)
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, err = w.Write(jwks)
	return err
}

// logRateLimited logs refusals at Debug: they come in floods, and
// caddy_register_rate_limited_total counts them. Other failures are logged
// by the contract's WriteError, which knows the status it answered.
func (h *Handler) logRateLimited(r *http.Request, rt *contract.Route, err error) {
	var rl *engine.RateLimitedError
	if errors.As(err, &rl) {
		h.logger.Debug("rate limited", zap.String("route", rt.Name), zap.String("path", r.URL.Path), zap.String("client_ip", clientIPOf(r)))
	}
}

// globalLimit is a route's ceiling over every client: the handler's
// setting, else the app's, else GlobalLimitFactor times the per-client
// limit (off when that is off).
func globalLimit(perClient ratelimit.Limit, app, handler *RateLimitConfig) ratelimit.Limit {
	switch {
	case handler != nil:
		return handler.limit()
	case app != nil:
		return app.limit()
	case perClient.IsZero():
		return ratelimit.Limit{}
	}
	burst := perClient.Burst
	if burst <= 0 {
		burst = perClient.Rate
	}
	return ratelimit.Limit{Rate: perClient.Rate * GlobalLimitFactor, Period: perClient.Period, Burst: burst * GlobalLimitFactor}
}

// clientIPOf is Caddy's client IP: the peer, or, when the peer is a
// trusted proxy, the address the proxy reported (trusted_proxies). The
// plugin never reads X-Forwarded-For itself.
func clientIPOf(r *http.Request) string {
	ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	return ip
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
