package token

import "strings"

// HeaderAccessToken is the fallback header for clients that cannot set
// Authorization (e.g. some websocket or proxy setups).
const HeaderAccessToken = "x-access-token"

// FromHeaders extracts a token from request headers: "Authorization: Bearer
// <t>" (scheme case-insensitive) first, else the x-access-token header value,
// which may also carry a "Bearer " prefix. get is an http.Header.Get-like
// lookup so this package stays free of net/http. It returns "" when no token
// is present.
func FromHeaders(get func(name string) string) string {
	if get == nil {
		return ""
	}
	if t, ok := bearer(get("Authorization")); ok && t != "" {
		return t
	}
	v := strings.TrimSpace(get(HeaderAccessToken))
	if t, ok := bearer(v); ok {
		return t
	}
	return v
}

// bearer strips a case-insensitive "Bearer" scheme; ok is false when the
// value uses another scheme, so Basic credentials are never taken as tokens.
func bearer(v string) (string, bool) {
	v = strings.TrimSpace(v)
	const scheme = "bearer"
	if len(v) < len(scheme) || !strings.EqualFold(v[:len(scheme)], scheme) {
		return "", false
	}
	rest := v[len(scheme):]
	if rest == "" {
		return "", true
	}
	if rest[0] != ' ' && rest[0] != '\t' {
		// "Bearerxyz" is not the Bearer scheme.
		return "", false
	}
	return strings.TrimSpace(rest), true
}
