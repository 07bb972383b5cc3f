package contract

import "net/url"

// SafeReturnTo returns s if it is a path on this site ("/app/x?y"), else
// "/": never a URL of another site, whatever a browser makes of it
// ("//evil.example", "/\evil.example", "https://…", control characters).
// The gate builds its login redirect's return_to with it, and the login
// page checks the return_to it is given with it too.
func SafeReturnTo(s string) string {
	if len(s) == 0 || s[0] != '/' || len(s) > 2048 {
		return "/"
	}
	if len(s) > 1 && (s[1] == '/' || s[1] == '\\') {
		return "/"
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return "/"
		}
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return "/"
	}
	return s
}
