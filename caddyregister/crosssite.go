package caddyregister

import (
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/caddyregister/caddyregister/caddyregister/contract"
)

// simpleBodyTypes are the content types a page on another site can post
// with credentials and no CORS preflight (an HTML form, or fetch in
// no-cors mode).
var simpleBodyTypes = []string{"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"}

// crossSiteGuarded reports whether rt carries credentials a browser sends
// by itself (cached HTTP Basic on admin routes, cookies) or takes a body a
// foreign page can post: then a cross-site request must not change state.
func crossSiteGuarded(rt *contract.Route) bool {
	if rt.Admin || rt.Cookie {
		return true
	}
	for _, ct := range rt.ContentTypes {
		if slices.Contains(simpleBodyTypes, ct) {
			return true
		}
	}
	return false
}

// refuseCrossSite returns a 403 HTTPError when r is a state-changing
// request that a browser sent from another site: Sec-Fetch-Site says
// cross-site, or Origin is present and not this site's own scheme and host
// ("null", sent by sandboxed frames and some redirects, is foreign).
// Requests with neither header are not from a browser page, or from one too
// old to send them on a POST, and pass: API clients and curl are not
// affected. Called before the body is read.
func refuseCrossSite(r *http.Request) error {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return nil
	}
	fetchSite, origins := r.Header.Get("Sec-Fetch-Site"), r.Header.Values("Origin")
	if fetchSite == "" && len(origins) == 0 {
		return nil
	}
	own := ownOrigin(r)
	refused := &contract.HTTPError{Status: http.StatusForbidden, Message: "cross-site request refused: this route accepts state-changing requests from browser pages of " + own + " only"}
	if strings.EqualFold(strings.TrimSpace(fetchSite), "cross-site") {
		return refused
	}
	for _, o := range origins {
		if !sameOrigin(o, own) {
			return refused
		}
	}
	return nil
}

// ownOrigin is the site's origin as the browser sees it: scheme and host
// of the request, with the default port dropped. Behind a TLS-terminating
// proxy the scheme is the one the proxy reports, when Caddy trusts it
// (trusted_proxies).
func ownOrigin(r *http.Request) string {
	scheme := requestScheme(r)
	return scheme + "://" + hostWithoutDefaultPort(scheme, r.Host)
}

// sameOrigin compares an Origin header with own (from ownOrigin).
func sameOrigin(origin, own string) bool {
	u, err := url.Parse(strings.TrimSpace(origin))
	if err != nil || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return false // "null" and anything that is not scheme://host[:port]
	}
	scheme := strings.ToLower(u.Scheme)
	return scheme+"://"+hostWithoutDefaultPort(scheme, u.Host) == own
}

func hostWithoutDefaultPort(scheme, host string) string {
	host = strings.ToLower(host)
	if h, port, err := net.SplitHostPort(host); err == nil && ((scheme == "https" && port == "443") || (scheme == "http" && port == "80")) {
		if strings.Contains(h, ":") {
			return "[" + h + "]"
		}
		return h
	}
	return host
}
