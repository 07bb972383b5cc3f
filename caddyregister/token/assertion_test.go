package token

import (
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestAssertion: an assertion is signed by the signing key with its own
// typ and lifetime, verifies with a plain JWT parser, and is refused as
// an access token.
func TestAssertion(t *testing.T) {
	k, _ := keys(t)
	now := time.Unix(1_700_000_000, 0)
	iss := NewIssuer(Config{Now: fixedClock(now)}, k)
	c := Claims{Email: "a@example.com", Permissions: []string{"p"}}
	c.Subject = "u1"
	c.Audience = []string{"app.example.com"}
	tok, err := iss.IssueAssertion(c, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var got Claims
	parsed, err := jwt.NewParser(jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithAudience("app.example.com"), jwt.WithTimeFunc(fixedClock(now))).
		ParseWithClaims(tok, &got, func(*jwt.Token) (any, error) { return k.Public(), nil })
	if err != nil {
		t.Fatal(err)
	}
	if parsed.Header["typ"] != AssertionType || parsed.Header["kid"] != iss.KeyID() {
		t.Fatalf("header %v", parsed.Header)
	}
	if got.Subject != "u1" || got.Email != "a@example.com" || got.ExpiresAt.Sub(got.IssuedAt.Time) != 60*time.Second || got.ID == "" || got.Issuer != DefaultIssuer {
		t.Fatalf("claims %+v", got)
	}
	if _, err := iss.Verify(tok); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("Verify took an assertion for an access token: %v", err)
	}
	for _, ttl := range []time.Duration{0, -time.Second, 61 * time.Second} {
		if _, err := iss.IssueAssertion(c, ttl); err == nil {
			t.Errorf("lifetime %s accepted", ttl)
		}
	}
	// Access tokens, with typ JWT as Issue writes it, still verify.
	at, _, err := iss.Issue(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := iss.Verify(at); err != nil {
		t.Fatal(err)
	}
}
