package rpost

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
)

// origins is the allow-list of callback origins (option callback_origins).
// Empty: every callback URL is refused.
type origins struct {
	list []string // normalized "scheme://host[:port]"
}

// parseOrigins reads the callback_origins arguments. Each is an origin:
// http or https, a host, an optional port, nothing else (a trailing "/" is
// tolerated).
func parseOrigins(args []string) (*origins, error) {
	o := &origins{}
	for _, a := range args {
		u, err := url.Parse(strings.TrimSuffix(a, "/"))
		if err != nil || u.Opaque != "" || u.Host == "" || u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
			return nil, fmt.Errorf("callback_origins: %q is not an origin (scheme://host[:port])", a)
		}
		origin, ok := originOf(u)
		if !ok {
			return nil, fmt.Errorf("callback_origins: %q must use http or https and a valid host", a)
		}
		if !slices.Contains(o.list, origin) {
			o.list = append(o.list, origin)
		}
	}
	return o, nil
}

// originOf returns u's origin, normalized: scheme and host lower-cased,
// the scheme's default port dropped. Only http and https have one here.
func originOf(u *url.URL) (string, bool) {
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", false
	}
	host := strings.ToLower(u.Hostname())
	if host == "" || strings.ContainsAny(host, "\\%@ ") {
		return "", false
	}
	port := u.Port()
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	if port != "" {
		return scheme + "://" + net.JoinHostPort(host, port), true
	}
	if strings.Contains(host, ":") { // IPv6 literal
		host = "[" + host + "]"
	}
	return scheme + "://" + host, true
}

const msgCallbackURL = "The ConfirmationCallbackUrl field is not a valid fully-qualified http or https URL."

// check returns "" when raw is an acceptable callback URL, else the
// ModelState message.
func (o *origins) check(raw string) string {
	if strings.ContainsAny(raw, "\\ \t\r\n") {
		return msgCallbackURL
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Opaque != "" || u.Host == "" {
		return msgCallbackURL
	}
	if u.User != nil {
		return "The ConfirmationCallbackUrl field must not contain user information."
	}
	origin, ok := originOf(u)
	if !ok {
		return msgCallbackURL
	}
	if o == nil || len(o.list) == 0 {
		return "The ConfirmationCallbackUrl field is not accepted: no callback origins are configured on this server."
	}
	if !slices.Contains(o.list, origin) {
		return fmt.Sprintf("The origin '%s' of ConfirmationCallbackUrl is not allowed.", origin)
	}
	return ""
}

// allows reports whether raw is still acceptable (the allow-list may have
// changed since the user registered).
func (o *origins) allows(raw string) bool { return o.check(raw) == "" }

// withCode returns callback with the query parameter code set to tok,
// keeping the rest of the query as written (a code already there is
// replaced) and the fragment.
func withCode(callback, tok string) string {
	u, err := url.Parse(callback)
	if err != nil {
		return callback
	}
	var kept []string
	if u.RawQuery != "" {
		for _, p := range strings.Split(u.RawQuery, "&") {
			k, _, _ := strings.Cut(p, "=")
			if uk, err := url.QueryUnescape(k); err == nil && uk == "code" {
				continue
			}
			kept = append(kept, p)
		}
	}
	kept = append(kept, "code="+url.QueryEscape(tok))
	u.RawQuery = strings.Join(kept, "&")
	u.ForceQuery = false
	return u.String()
}
