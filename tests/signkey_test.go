package tests

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// TestSigningKeyEncryptedThroughCaddy: key_encryption_key in the Caddyfile
// reaches the store: the generated key lands in Redis sealed (no PEM, no
// key set in clear), and the site signs and publishes with it.
func TestSigningKeyEncryptedThroughCaddy(t *testing.T) {
	t.Setenv("REGISTER_TEST_KEK", "blackbox-key-encryption-key-0123456789abcdef")
	s := startSite(t, backendRedis, "key_encryption_key {env.REGISTER_TEST_KEK}", "register noraina /api")
	res := s.postJSON("/api/register", `{"name":"U","mail":"kek@example.com","password":"my_password"}`)
	if res.Status != 201 {
		t.Fatalf("register: %d %s", res.Status, res.Body)
	}
	jwks := s.do(http.MethodGet, "/.well-known/jwks.json", nil, "")
	if jwks.Status != 200 || !strings.Contains(string(jwks.Body), `"kty":"OKP"`) {
		t.Fatalf("jwks: %d %s", jwks.Status, jwks.Body)
	}
	v, err := s.rdb.Get(context.Background(), "{"+s.ns+"}:secret:jwt-ed25519").Result()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v, "sealed:v1:") || strings.Contains(v, "PRIVATE KEY") || strings.Contains(v, "current") {
		t.Fatalf("signing key stored in clear: %q", v)
	}
	// The outbox key, which seals the registration's queued mail, too.
	if v, err := s.rdb.Get(context.Background(), "{"+s.ns+"}:secret:outbox-key").Result(); err != nil || !strings.HasPrefix(v, "sealed:v1:") {
		t.Fatalf("outbox key = %q, %v; want it sealed", v, err)
	}
}
