package caddyregister

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddyregister/caddyregister/caddyregister/contract"
)

// Links in mails carry a secret token, so the host they point at must be
// the operator's. Without public_url a link is built from the request's
// Host, which is only safe when Caddy itself has checked that Host: when
// every route that leads to the handler is bound by a host matcher, a
// request with another Host never reaches it. The App walks the http app's
// routes at Start to find out, and refuses to start a link-mailing handler
// that a request with any Host can reach.

// errCatchAllLinks names the fix in the message an operator sees.
const errCatchAllLinks = "register handler %s (contract %s) mails links, and a request with any Host header can reach it " +
	"(a catch-all site such as `:8080` or `http://`, or a route without a host matcher), " +
	"so a link would point wherever the client says: set public_url (in the register app block or the handler) " +
	"to the site's address, e.g. public_url https://example.com, or serve the handler only in a site with host names"

// checkPublicURL validates a configured public_url: an absolute http(s)
// URL with a host and nothing after the path, since links are appended to
// it.
func checkPublicURL(raw string) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("public_url %q: %w", raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("public_url %q must be http:// or https:// with a host, and no user, query or fragment (e.g. https://example.com)", raw)
	}
	return nil
}

// mailsLinks reports whether h's contract sends mails with links.
func (h *Handler) mailsLinks() bool {
	lm, ok := h.contract.(contract.LinkMailer)
	return ok && lm.MailsLinks()
}

// publicURL is the handler's configured base of links, or "".
func (h *Handler) publicURL() string {
	if h.PublicURL != "" {
		return h.PublicURL
	}
	return h.app.PublicURL
}

// linkBase is where links in mails point for r: the configured public URL,
// else the request's scheme and Host. The Host is safe here because Start
// refused any link-mailing handler without public_url that a request with
// an unchecked Host can reach. The scheme is the connection's, or
// X-Forwarded-Proto when Caddy counts the direct peer as a trusted proxy
// (trusted_proxies): from anyone else the header is the client's word.
func (h *Handler) linkBase(r *http.Request) string {
	if p := h.publicURL(); p != "" {
		return strings.TrimRight(p, "/")
	}
	return requestScheme(r) + "://" + r.Host
}

// requestScheme is the scheme the client used: the connection's, or behind
// a TLS-terminating proxy the one it reports in X-Forwarded-Proto, only
// when Caddy trusts that proxy (trusted_proxies); a client cannot claim it.
func requestScheme(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool); trusted {
		// A proxy chain may list several; the first is the client's.
		p, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ",")
		switch p = strings.ToLower(strings.TrimSpace(p)); p {
		case "http", "https":
			scheme = p
		}
	}
	return scheme
}

// checkLinkHosts refuses to start when a handler that mails links has no
// public_url and some route reaches it without a host matcher. A handler the
// walk cannot find (inside a module whose routes it does not know) counts
// as reachable by any Host: better a start error that names the fix than a
// link to the attacker's host.
func (a *App) checkLinkHosts(ctx caddy.Context) error {
	var pending []*Handler
	for _, h := range a.handlers {
		if h.mailsLinks() && h.publicURL() == "" {
			pending = append(pending, h)
		}
	}
	if len(pending) == 0 {
		return nil
	}
	bound := map[*Handler]bool{} // handler → reached only through host matchers so far
	appIface, err := ctx.AppIfConfigured("http")
	if err != nil && !errors.Is(err, caddy.ErrNotConfigured) {
		return fmt.Errorf("register: finding the routes of link-mailing handlers: %w", err)
	}
	if httpApp, ok := appIface.(*caddyhttp.App); ok {
		for _, srv := range httpApp.Servers {
			walkRoutes(srv.Routes, false, bound)
			if srv.Errors != nil {
				walkRoutes(srv.Errors.Routes, false, bound)
			}
			for _, rt := range srv.NamedRoutes {
				// invoke can run a named route from any site.
				if rt != nil {
					walkRoutes(caddyhttp.RouteList{*rt}, false, bound)
				}
			}
		}
	}
	var errs []error
	for _, h := range pending {
		if ok, seen := bound[h]; !seen || !ok {
			errs = append(errs, fmt.Errorf(errCatchAllLinks, h.Prefix, h.Contract))
		}
	}
	return errors.Join(errs...)
}

// walkRoutes records, for each register handler in routes, whether every
// path to it so far passed a host matcher. hostBound says the enclosing
// routes already required one.
func walkRoutes(routes caddyhttp.RouteList, hostBound bool, bound map[*Handler]bool) {
	for i := range routes {
		rt := &routes[i]
		b := hostBound || requiresHost(rt.MatcherSets)
		for _, mh := range rt.Handlers {
			switch x := mh.(type) {
			case *Handler:
				if prev, seen := bound[x]; !seen || prev {
					bound[x] = b
				}
			case *caddyhttp.Subroute:
				walkRoutes(x.Routes, b, bound)
				if x.Errors != nil {
					walkRoutes(x.Errors.Routes, b, bound)
				}
			}
		}
	}
}

// requiresHost reports whether a request must match a host matcher of
// exact names to pass sets: matcher sets are alternatives, so each one
// needs such a matcher (and no sets at all matches everything). A
// wildcard (*.example.com) or a placeholder lets the client pick the name
// (a customer's subdomain, say), so it does not count.
func requiresHost(sets caddyhttp.MatcherSets) bool {
	if len(sets) == 0 {
		return false
	}
	for _, set := range sets {
		has := false
		for _, m := range set {
			switch mh := m.(type) {
			case *caddyhttp.MatchHost:
				has = has || (mh != nil && exactHosts(*mh))
			case caddyhttp.MatchHost:
				has = has || exactHosts(mh)
			}
		}
		if !has {
			return false
		}
	}
	return true
}

// exactHosts reports whether every name of m is one exact host name.
func exactHosts(m caddyhttp.MatchHost) bool {
	for _, h := range m {
		if strings.ContainsAny(h, "*{") {
			return false
		}
	}
	return len(m) > 0
}
