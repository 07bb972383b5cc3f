package caddyregister

import (
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddyregister/caddyregister/caddyregister/contract"
	"github.com/caddyregister/caddyregister/caddyregister/contract/account"
	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/password"
	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// Problem types of the gate's refusals (RFC 9457): the account API's
// where they mean the same, the gate's own beside them.
const (
	problemUnauthorized = account.TypeUnauthorized
	problemInvalidToken = account.TypeBase + "invalid-token"
	problemForbidden    = account.TypeForbidden
	problemNotActive    = account.TypeBase + "account-not-active"
	problemRateLimited  = account.TypeRateLimited
	problemUnavailable  = account.TypeBase + "unavailable"
)

// gateRealm is the realm of the gate's challenges.
const gateRealm = "caddyregister"

// denial is why the gate refuses a request, and how to say it.
type denial struct {
	status int
	// code is the RFC 6750 error code: "" (no token was sent),
	// invalid_token or insufficient_scope.
	code   string
	scope  []string // for insufficient_scope: the permissions required
	typ    string
	detail string
	// basic adds a Basic challenge (Basic credentials are accepted).
	basic bool
	retry time.Duration
	// redirect is the login URL a browser is sent to instead.
	redirect string
	err      error // for the log, never for the client
}

// denialOf maps an engine error met while authenticating to a refusal.
func denialOf(err error, c credentials) *denial {
	var rl *engine.RateLimitedError
	var oe *password.OverloadedError
	d := &denial{err: err}
	switch {
	case errors.As(err, &rl):
		d.status, d.typ, d.detail, d.retry = http.StatusTooManyRequests, problemRateLimited, "too many attempts, retry later", rl.RetryAfter
	case errors.As(err, &oe):
		d.status, d.typ, d.detail, d.retry = http.StatusServiceUnavailable, problemUnavailable, "server is busy, retry later", oe.RetryAfter
	case errors.Is(err, engine.ErrNotActivated), errors.Is(err, engine.ErrAccountDisabled):
		d.status, d.code, d.typ, d.detail = http.StatusForbidden, "insufficient_scope", problemNotActive, err.Error()
	case errors.Is(err, engine.ErrUnauthenticated) && c.basic:
		d.status, d.typ, d.detail = http.StatusUnauthorized, problemUnauthorized, "the credentials are wrong"
	case errors.Is(err, engine.ErrUnauthenticated):
		// Invalid, expired and revoked alike: RFC 6750 §3.1.
		d.status, d.code, d.typ, d.detail = http.StatusUnauthorized, "invalid_token", problemInvalidToken, "the access token is invalid, expired or revoked"
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, engine.ErrNotReady), errors.Is(err, password.ErrOverloaded):
		d.status, d.typ, d.detail, d.retry = http.StatusServiceUnavailable, problemUnavailable, "service temporarily unavailable, retry later", 2*time.Second
	default:
		d.status, d.typ, d.detail = http.StatusInternalServerError, "about:blank", "internal error"
	}
	return d
}

// challenge sets the RFC 6750 WWW-Authenticate challenge (and a Basic
// one, when Basic credentials are accepted) for a 401 or 403.
func (d *denial) challenge(h http.Header, r *http.Request) {
	if d.status != http.StatusUnauthorized && d.status != http.StatusForbidden {
		return
	}
	var b strings.Builder
	b.WriteString(`Bearer realm="` + gateRealm + `"`)
	if d.code != "" {
		b.WriteString(`, error="` + d.code + `"`)
		if d.code == "insufficient_scope" && len(d.scope) > 0 {
			// scope-token is %x21 / %x23-5B / %x5D-7E: permissions with
			// other characters are left out rather than mangled.
			var ok []string
			for _, s := range d.scope {
				if scopeToken(s) {
					ok = append(ok, s)
				}
			}
			if len(ok) > 0 {
				b.WriteString(`, scope="` + strings.Join(ok, " ") + `"`)
			}
		}
	}
	h.Add("WWW-Authenticate", b.String())
	if d.basic && d.status == http.StatusUnauthorized {
		h.Add("WWW-Authenticate", `Basic realm="`+gateRealm+`", charset="UTF-8"`)
	}
}

func scopeToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return s != ""
}

// gateProblem is the RFC 9457 body of a refusal.
type gateProblem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// write answers the refusal: the redirect, or the problem.
func (d *denial) write(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	if d.redirect != "" {
		status := http.StatusFound
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			status = http.StatusSeeOther // the login page is fetched with GET
		}
		h.Set("Location", d.redirect)
		h.Add("Vary", "Accept")
		w.WriteHeader(status)
		return
	}
	d.challenge(h, r)
	contract.SetRetryAfter(w, d.retry)
	body, _ := json.Marshal(gateProblem{Type: d.typ, Title: http.StatusText(d.status), Status: d.status, Detail: d.detail})
	h.Set("Content-Type", "application/problem+json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(d.status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// loginRedirect is loginURL with return_to, the path the browser asked
// for on this site.
func loginRedirect(loginURL string, r *http.Request) string {
	target := r.URL.RequestURI()
	if orig, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok && orig.URL != nil {
		// Before handle_path or a rewrite changed it: where the browser is.
		target = orig.URL.RequestURI()
	}
	sep := "?"
	if strings.Contains(loginURL, "?") {
		sep = "&"
	}
	return loginURL + sep + "return_to=" + url.QueryEscape(SafeReturnTo(target))
}

// SafeReturnTo returns s if it is a path on this site, else "/"
// (contract.SafeReturnTo, which the hosted pages use too).
func SafeReturnTo(s string) string { return contract.SafeReturnTo(s) }

// prefersHTML reports whether an Accept header names text/html with the
// highest weight of any type it lists (ties allowed): a browser
// navigating, not fetch() or an API client (*/* alone, JSON).
func prefersHTML(accept []string) bool {
	html, best := -1.0, 0.0
	for _, line := range accept {
		for part := range strings.SplitSeq(line, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue
			}
			q := 1.0
			if qs, ok := params["q"]; ok {
				if v, err := strconv.ParseFloat(qs, 64); err == nil && v >= 0 && v <= 1 {
					q = v
				}
			}
			if mt == "text/html" {
				html = max(html, q)
			} else {
				best = max(best, q)
			}
		}
	}
	return html > 0 && html >= best
}
