package token

import (
	"errors"
	"strings"
	"time"
)

// AssertionType is the typ header of assertions: JWTs that tell an app
// who is calling (register_auth's assertion header). They are signed by
// the access tokens' key, so apps verify them against the same JWKS, and
// Verify refuses them as access tokens (RFC 8725 §3.11: explicit typing
// keeps one kind of JWT from being taken for another).
const AssertionType = "user-assertion+jwt"

// MaxAssertionTTL bounds an assertion's lifetime: it is minted per request
// and only has to reach the app.
const MaxAssertionTTL = 60 * time.Second

// IssueAssertion signs c as Issue does (iss, iat, jti and the kid filled
// in), with lifetime ttl (at most MaxAssertionTTL) and the typ header
// AssertionType. c.Audience should name the app (the site's host).
func (i *Issuer) IssueAssertion(c Claims, ttl time.Duration) (string, error) {
	if ttl <= 0 || ttl > MaxAssertionTTL {
		return "", errors.New("issue assertion: lifetime must be within (0, 60s]")
	}
	tok, _, err := i.issue(c, ttl, AssertionType)
	return tok, err
}

// accessType reports whether a typ header value marks an access token:
// absent, or "JWT" (any case), as Issue writes it.
func accessType(typ any) bool {
	if typ == nil {
		return true
	}
	s, ok := typ.(string)
	return ok && strings.EqualFold(s, "JWT")
}
