package token

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
)

// TestVerifyOnlyPublicKey: a retired key given by its public half verifies
// its tokens and is in the JWKS; a token naming a kid the Issuer does not
// hold fails with ErrUnknownKey, which other failures do not carry.
func TestVerifyOnlyPublicKey(t *testing.T) {
	current, retired := keys(t)
	old, _, err := NewIssuer(Config{}, retired).Issue(Claims{})
	if err != nil {
		t.Fatal(err)
	}
	iss := NewIssuerPublic(Config{}, current, []ed25519.PublicKey{retired.Public(), ed25519.PublicKey("short")})
	if _, err := iss.Verify(old); err != nil {
		t.Fatalf("token of the retired key: %v", err)
	}
	if !strings.Contains(string(iss.JWKS()), retired.ID) || !strings.Contains(string(iss.JWKS()), current.ID) {
		t.Fatalf("JWKS lacks a key: %s", iss.JWKS())
	}
	if iss.KeyID() != current.ID {
		t.Fatalf("signing kid %q, want %q", iss.KeyID(), current.ID)
	}
	_, err = NewIssuer(Config{}, current).Verify(old)
	if !errors.Is(err, ErrUnknownKey) || !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("unknown kid: err = %v, want ErrUnknownKey and ErrInvalidToken", err)
	}
	if _, err := iss.Verify(old[:len(old)-2] + "AA"); errors.Is(err, ErrUnknownKey) {
		t.Fatalf("bad signature reported as unknown key: %v", err)
	}
}
