package caddyregister

import (
	"net/http"
	"strings"
)

// normHeader is a header name as CGI, PHP and WSGI apps see it: case
// folded, and '_' and '.' the same as '-' (HTTP_X_USER_ID is X-User-Id,
// X_User_Id and X.User.Id alike). Caddy drops headers with underscores
// or dots unless the server allows them (expected_underscore_headers,
// expected_dot_headers); the gate does not count on it.
func normHeader(name string) string {
	return strings.NewReplacer("_", "-", ".", "-").Replace(strings.ToLower(name))
}

// sameHeader reports whether key names the header norm (from normHeader),
// without allocating: it runs for every header of every request.
func sameHeader(key, norm string) bool {
	if len(key) != len(norm) {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		case c == '_' || c == '.':
			c = '-'
		}
		if c != norm[i] {
			return false
		}
	}
	return true
}

// stripHeaders deletes every header whose name is one of names (as
// normHeader gives them) in any spelling. Go keeps a header under the
// spelling the client sent when it is not a canonical token (X_User_Id
// stays as sent), so each key is compared, not looked up.
func stripHeaders(h http.Header, names []string) {
	for key := range h {
		for _, n := range names {
			if sameHeader(key, n) {
				delete(h, key)
				break
			}
		}
	}
}

// dropCookie removes the cookie name from the request's Cookie headers,
// keeping the others.
func dropCookie(h http.Header, name string) {
	lines := h["Cookie"]
	if len(lines) == 0 {
		return
	}
	var out []string
	changed := false
	for _, line := range lines {
		if !strings.Contains(line, name) {
			out = append(out, line)
			continue
		}
		var kept []string
		for part := range strings.SplitSeq(line, ";") {
			k, _, _ := strings.Cut(strings.TrimSpace(part), "=")
			if k == name {
				changed = true
				continue
			}
			if p := strings.TrimSpace(part); p != "" {
				kept = append(kept, p)
			}
		}
		if len(kept) > 0 {
			out = append(out, strings.Join(kept, "; "))
		}
	}
	if !changed {
		return
	}
	if len(out) == 0 {
		delete(h, "Cookie")
		return
	}
	h["Cookie"] = out
}
