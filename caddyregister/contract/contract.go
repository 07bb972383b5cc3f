// Package contract is what every wire contract shares: the route table the
// Caddy handler serves, request decoding with precise errors, and the
// mapping from engine errors to HTTP statuses. Contract packages below it
// only translate; policy stays in the engine.
package contract

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/password"
	"github.com/caddyregister/caddyregister/caddyregister/ratelimit"
	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// Env is what a contract is built with.
type Env struct {
	Engine *engine.Engine
	Logger *zap.Logger
	// Prefix is where the contract's routes are mounted ("/api").
	Prefix string
	// Policy holds the handler's overrides of the contract's password
	// policy; nil keeps the contract's default.
	Policy *password.Policy
	// Settings are the handler's contract options; each contract documents
	// which it honours.
	Settings Settings
	// Options are contract-specific options: name → lines → arguments, as
	// written in the handler's Caddyfile block. Contracts reject names
	// they do not know (Options.Check).
	Options Options
}

// PasswordPolicy is the contract's document policy def with the handler's
// password block (Policy) merged over it.
func (e Env) PasswordPolicy(def password.Policy) password.Policy {
	if e.Policy != nil {
		return def.Merge(*e.Policy)
	}
	return def
}

// Options are contract-specific handler options.
type Options map[string][][]string

// Check returns an error naming the first option not in known.
func (o Options) Check(contractName string, known ...string) error {
	for name := range o {
		if !slices.Contains(known, name) {
			return fmt.Errorf("contract %s has no option %q (known: %s)", contractName, name, strings.Join(known, ", "))
		}
	}
	return nil
}

// Last returns the arguments of the last line of option name, or nil.
func (o Options) Last(name string) []string {
	lines := o[name]
	if len(lines) == 0 {
		return nil
	}
	return lines[len(lines)-1]
}

// All returns every argument of every line of option name.
func (o Options) All(name string) []string {
	var out []string
	for _, l := range o[name] {
		out = append(out, l...)
	}
	return out
}

// Settings are per-handler contract options.
type Settings struct {
	// Captcha is "required", "off" or "" (the contract's default).
	Captcha string
	// SignupDisabled turns self-service signup off (403).
	SignupDisabled bool
	// DefaultPermissions are given to new users (effective once active).
	DefaultPermissions []string
	// DefaultObjectPermissions are given to new users where the contract's
	// model has them.
	DefaultObjectPermissions *ObjectPermissions
	// LinkTTL is how long links in mails stay valid; engine default when 0.
	LinkTTL time.Duration
	// PublicURL is the base of links in mails; default: the request's
	// scheme and host.
	PublicURL string
	// Template overrides the contract's mail template files.
	Template TemplateFiles
	// Sessions override the app's session lifetimes for the sessions
	// this handler opens and refreshes.
	Sessions engine.SessionLimits
}

// ObjectPermissions are include/exclude lists of object ids.
type ObjectPermissions struct {
	Include []string `json:"include"`
	Exclude []string `json:"exclude"`
}

// TemplateFiles name files that replace parts of a mail template; empty
// keeps the contract's default part.
type TemplateFiles struct {
	Subject string `json:"subject,omitempty"`
	Text    string `json:"text,omitempty"`
	HTML    string `json:"html,omitempty"`
}

// Request is what the handler hands a route after the shared checks.
type Request struct {
	// ClientIP is Caddy's client IP, which honours trusted_proxies.
	ClientIP string
	// Body is the request body, read within the body limit (nil for routes
	// that take none).
	Body []byte
	// BaseURL is where links in mails point ("https://example.com", no
	// trailing slash): the configured public_url, else a scheme and host
	// the Caddy layer has checked (never a Host header no site names).
	BaseURL string
}

// LinkMailer is implemented by contracts whose mails carry links to their
// own routes. Such a handler without public_url may only be reachable
// through host matchers, or Caddy refuses to start it.
type LinkMailer interface {
	MailsLinks() bool
}

// Route is one endpoint of a contract.
type Route struct {
	Method string
	// Path is relative to the prefix ("/register"), unless Absolute.
	Path string
	// Absolute mounts Path as is, outside the prefix (indiqus' /auth/login).
	Absolute bool
	// Name identifies the route in rate-limit settings and metrics.
	Name string
	// Limit is the route's default per-client rate limit (zero: none);
	// operators override it by Name. Routes that cost a password hash or
	// use a secret get one.
	Limit ratelimit.Limit
	// ContentTypes the route accepts; empty means the route reads no body.
	// A request without Content-Type is taken as the first entry.
	ContentTypes []string
	Serve        func(w http.ResponseWriter, r *http.Request, req *Request)

	// Admin marks a route for admin principals only (it calls
	// RequireAdmin). Browsers send cached HTTP Basic credentials with a
	// post from any site, so the handler refuses cross-site requests that
	// change state on it, as on Cookie routes and routes that accept a
	// body a foreign page can post without a CORS preflight (a form).
	Admin bool
	// Cookie marks a route that takes credentials from a cookie (the
	// account API's login, refresh and logout with its cookie option). It
	// gets the same cross-site refusal.
	Cookie bool
}

// Default limits for routes, per client IP.
var (
	// HashLimit is for public routes where each request costs a hash.
	HashLimit = ratelimit.Limit{Rate: 30, Period: time.Minute, Burst: 30}
	// AdminLimit is for authenticated admin writes.
	AdminLimit = ratelimit.Limit{Rate: 60, Period: time.Minute, Burst: 30}
	// LinkLimit is for routes that take a token from a mail or a CAPTCHA.
	LinkLimit = ratelimit.Limit{Rate: 60, Period: time.Minute, Burst: 30}
	// LoginLimit is for credential checks.
	LoginLimit = ratelimit.Limit{Rate: 20, Period: time.Minute, Burst: 10}
	// SecretLimit is for unauthenticated routes that carry a secret token
	// and hash a password once it checks out: tight, so guessing tokens is
	// slow.
	SecretLimit = ratelimit.Limit{Rate: 10, Period: time.Minute, Burst: 10}
)

// Contract is one wire format.
type Contract interface {
	// Routes lists the endpoints.
	Routes() []Route
	// WriteError answers err in the contract's envelope.
	WriteError(w http.ResponseWriter, r *http.Request, err error)
}

// CaseInsensitiveRoutes is implemented by a contract whose framework
// matches request paths without regard to case (ASP.NET routing does): the
// handler then matches its routes so, and a client's /API/... cannot slip
// past to the app behind. Other contracts' frameworks (Express, Laravel)
// match case-sensitively, and so does the handler for them.
type CaseInsensitiveRoutes interface {
	CaseInsensitiveRoutes() bool
}

// Factory builds a contract for one handler.
type Factory func(env Env) (Contract, error)

var (
	mu        sync.RWMutex
	factories = map[string]Factory{}
	options   = map[string][]string{}
)

// Register makes a contract available by name, with the names of its
// contract-specific options (so the Caddyfile parser can reject a typo at
// adapt time). Contract packages call it from init, beside their type, as
// Caddy modules do.
func Register(name string, f Factory, optionNames ...string) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := factories[name]; dup {
		panic("contract: duplicate registration of " + name)
	}
	factories[name] = f
	options[name] = optionNames
}

// OptionNames returns the contract-specific options of contract name.
func OptionNames(name string) ([]string, bool) {
	mu.RLock()
	defer mu.RUnlock()
	o, ok := options[name]
	return o, ok
}

// Lookup returns the named contract's factory.
func Lookup(name string) (Factory, bool) {
	mu.RLock()
	defer mu.RUnlock()
	f, ok := factories[name]
	return f, ok
}

// Names lists the registered contracts, sorted.
func Names() []string {
	mu.RLock()
	defer mu.RUnlock()
	var n []string
	for k := range factories {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// HTTPError is an error the shared layer raises with its status decided:
// a body that is too large or of the wrong type, a wrong method.
type HTTPError struct {
	Status  int
	Message string
	// Allow lists the methods for a 405.
	Allow []string
}

func (e *HTTPError) Error() string { return e.Message }

// Status is how a contract should answer err, unless its document says
// otherwise: the HTTP status, a Retry-After when the caller should come
// back, and a safe default message. Internal error texts never reach
// clients; they are logged by the handler.
func Status(err error) (status int, retryAfter time.Duration, msg string) {
	var (
		he *HTTPError
		de *DecodeError
		ve *engine.ValidationError
		ce *store.ConflictError
		rl *engine.RateLimitedError
		oe *password.OverloadedError
		re *engine.RefusedError
	)
	switch {
	case errors.As(err, &re):
		// The app's before_register hook said no; its reason is for
		// the client.
		return http.StatusForbidden, 0, re.Error()
	case errors.Is(err, engine.ErrHookUnavailable):
		return http.StatusServiceUnavailable, 2 * time.Second, engine.ErrHookUnavailable.Error()
	case errors.As(err, &he):
		return he.Status, 0, he.Message
	case errors.As(err, &de):
		return http.StatusBadRequest, 0, de.Error()
	case errors.As(err, &ve):
		return http.StatusBadRequest, 0, ve.Error()
	case errors.As(err, &ce):
		return http.StatusConflict, 0, ce.Error()
	case errors.Is(err, engine.ErrTenantExists):
		return http.StatusConflict, 0, "tenant already exists"
	case errors.As(err, &rl):
		return http.StatusTooManyRequests, rl.RetryAfter, "too many requests, retry later"
	case errors.As(err, &oe):
		return http.StatusServiceUnavailable, oe.RetryAfter, "server is busy, retry later"
	case errors.Is(err, password.ErrOverloaded):
		return http.StatusServiceUnavailable, time.Second, "server is busy, retry later"
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, engine.ErrNotReady):
		return http.StatusServiceUnavailable, 2 * time.Second, "service temporarily unavailable, retry later"
	case errors.Is(err, engine.ErrUnauthenticated):
		return http.StatusUnauthorized, 0, "authentication required"
	case errors.Is(err, engine.ErrForbidden):
		return http.StatusForbidden, 0, "permission denied"
	case errors.Is(err, engine.ErrCaptchaRequired), errors.Is(err, engine.ErrCaptchaExpired), errors.Is(err, engine.ErrCaptchaWrong):
		return http.StatusBadRequest, 0, err.Error()
	case errors.Is(err, engine.ErrTokenInvalid):
		return http.StatusBadRequest, 0, err.Error()
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, 0, "not found"
	default:
		return http.StatusInternalServerError, 0, "internal error"
	}
}

// SetRetryAfter writes Retry-After in whole seconds, rounded up.
func SetRetryAfter(w http.ResponseWriter, d time.Duration) {
	if d <= 0 {
		return
	}
	secs := int((d + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
}

// WriteJSON writes v with status. Encoding our own response types cannot
// fail, so a failure is a bug worth a panic-free 500.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := marshal(v)
	if err != nil {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = fmt.Fprint(w, "internal error")
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// LogFailure logs errors the operator must see (5xx); client mistakes are
// the engine's outcome log lines' business. Error texts of the store and
// engine carry no request secrets.
func LogFailure(log *zap.Logger, r *http.Request, status int, err error) {
	if log == nil || status < http.StatusInternalServerError {
		return
	}
	log.Error("request failed", zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Int("status", status), zap.Error(err))
}

// Described is implemented by a contract that ships an OpenAPI document
// of its routes (its package's openapi.json). The document's servers are
// relative to the contract's documented prefix; the handler that serves
// it (openapi on) puts its own prefix there. Keeping the document in the
// contract's package, beside the route table it describes, is what lets
// the black-box tests hold one against the other.
type Described interface {
	OpenAPI() []byte
}
