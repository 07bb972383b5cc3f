package token

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// RFC 8037 Appendix A.1-A.3 test vector.
const (
	rfcSeed       = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
	rfcX          = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
	rfcThumbprint = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
)

// rfc8410PEM is the Ed25519 PKCS#8 example of RFC 8410 section 10.3, the
// same shape `openssl genpkey -algorithm ed25519` writes.
const rfc8410PEM = `-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC
-----END PRIVATE KEY-----
`

var (
	testKeysOnce sync.Once
	testKeyA     *Key
	testKeyB     *Key
)

// keys returns two fixed keys so tests do not pay for key generation.
func keys(t testing.TB) (*Key, *Key) {
	t.Helper()
	testKeysOnce.Do(func() {
		testKeyA = KeyFromPrivate(ed25519.NewKeyFromSeed(make([]byte, 32)))
		seed := make([]byte, 32)
		seed[0] = 1
		testKeyB = KeyFromPrivate(ed25519.NewKeyFromSeed(seed))
	})
	return testKeyA, testKeyB
}

func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

func b64(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func assertInvalid(t *testing.T, iss *Issuer, tok string) error {
	t.Helper()
	c, err := iss.Verify(tok)
	if err == nil {
		t.Fatalf("token accepted: %+v", c)
	}
	if !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("error %v does not wrap ErrInvalidToken", err)
	}
	if c != nil {
		t.Fatalf("claims returned with error")
	}
	t.Logf("rejected: %v", err)
	return err
}

func TestRoundTrip(t *testing.T) {
	a, _ := keys(t)
	now := time.Date(2025, 1, 2, 3, 4, 5, 678, time.UTC)
	iss := NewIssuer(Config{Issuer: "https://auth.example", TTL: time.Hour, Now: fixedClock(now)}, a)

	in := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   "user-123",
			Audience:  jwt.ClaimStrings{"api"},
			Issuer:    "ignored",
			ExpiresAt: jwt.NewNumericDate(now.Add(100 * 365 * 24 * time.Hour)),
		},
		Tenant:      "acme",
		Permissions: []string{"read", "write"},
		Status:      "active",
		Kind:        "admin",
	}
	tok, issued, err := iss.Issue(in)
	if err != nil {
		t.Fatal(err)
	}
	if issued.Issuer != "https://auth.example" {
		t.Errorf("iss = %q", issued.Issuer)
	}
	if !issued.IssuedAt.Time.Equal(now.Truncate(time.Second)) {
		t.Errorf("iat = %v", issued.IssuedAt)
	}
	if got := issued.ExpiresAt.Sub(issued.IssuedAt.Time); got != time.Hour {
		t.Errorf("exp-iat = %v, want 1h (caller exp must be overridden)", got)
	}
	jti, err := base64.RawURLEncoding.DecodeString(issued.ID)
	if err != nil || len(jti) != 16 {
		t.Errorf("jti %q is not 128-bit base64url: %v", issued.ID, err)
	}

	got, err := iss.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if got.Subject != "user-123" || got.Tenant != "acme" || got.Status != "active" || got.Kind != "admin" ||
		!slices.Equal(got.Permissions, []string{"read", "write"}) || !slices.Equal(got.Audience, jwt.ClaimStrings{"api"}) ||
		got.ID != issued.ID || !got.IssuedAt.Equal(issued.IssuedAt.Time) || !got.ExpiresAt.Equal(issued.ExpiresAt.Time) ||
		got.Issuer != issued.Issuer {
		t.Errorf("verified claims %+v differ from issued %+v", got, issued)
	}

	// A second token must get a fresh jti.
	_, again, err := iss.Issue(in)
	if err != nil {
		t.Fatal(err)
	}
	if again.ID == issued.ID {
		t.Error("jti reused")
	}
}

func TestHeaderAndEmptyPermissions(t *testing.T) {
	a, _ := keys(t)
	iss := NewIssuer(Config{}, a)
	tok, _, err := iss.Issue(Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "u"}})
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	var hdr map[string]any
	raw, _ := base64.RawURLEncoding.DecodeString(parts[0])
	if err := json.Unmarshal(raw, &hdr); err != nil {
		t.Fatal(err)
	}
	if hdr["alg"] != "EdDSA" || hdr["typ"] != "JWT" || hdr["kid"] != a.ID || hdr["kid"] != Thumbprint(a.Public()) {
		t.Errorf("header = %v, want kid %s", hdr, a.ID)
	}
	if iss.KeyID() != a.ID {
		t.Errorf("KeyID = %q", iss.KeyID())
	}

	var payload map[string]json.RawMessage
	raw, _ = base64.RawURLEncoding.DecodeString(parts[1])
	if err := json.Unmarshal(raw, &payload); err != nil {
		t.Fatal(err)
	}
	if string(payload["permissions"]) != "[]" {
		t.Errorf("permissions = %s, want []", payload["permissions"])
	}
	if payload["iss"] == nil || string(payload["iss"]) != `"caddyregister"` {
		t.Errorf("default iss = %s", payload["iss"])
	}
	for _, k := range []string{"tenant", "status", "kind", "aud", "nbf"} {
		if _, ok := payload[k]; ok {
			t.Errorf("empty %s claim serialised", k)
		}
	}
	if iss.TTL() != DefaultTTL {
		t.Errorf("TTL = %v", iss.TTL())
	}
	c, err := iss.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.Permissions == nil || len(c.Permissions) != 0 {
		t.Errorf("permissions = %#v, want empty non-nil", c.Permissions)
	}
}

func TestThumbprintRFC8037(t *testing.T) {
	x, err := base64.RawURLEncoding.DecodeString(rfcX)
	if err != nil {
		t.Fatal(err)
	}
	if got := Thumbprint(ed25519.PublicKey(x)); got != rfcThumbprint {
		t.Errorf("Thumbprint = %s, want %s", got, rfcThumbprint)
	}
	seed, _ := base64.RawURLEncoding.DecodeString(rfcSeed)
	k := KeyFromPrivate(ed25519.NewKeyFromSeed(seed))
	if k.ID != rfcThumbprint {
		t.Errorf("KeyFromPrivate ID = %s, want %s", k.ID, rfcThumbprint)
	}
	if bad := KeyFromPrivate(ed25519.PrivateKey{1, 2, 3}); bad.ID != "" {
		t.Errorf("short key got ID %q", bad.ID)
	}
}

func TestJWKS(t *testing.T) {
	a, b := keys(t)
	iss := NewIssuer(Config{}, a, b, nil, a)
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(iss.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 2 {
		t.Fatalf("JWKS has %d keys, want 2 (deduplicated): %s", len(set.Keys), iss.JWKS())
	}
	for idx, want := range []*Key{a, b} {
		k := set.Keys[idx]
		if k["kty"] != "OKP" || k["crv"] != "Ed25519" || k["use"] != "sig" || k["alg"] != "EdDSA" || k["kid"] != want.ID {
			t.Errorf("jwk %d = %v", idx, k)
		}
		if _, ok := k["d"]; ok {
			t.Fatal("private key material in JWKS")
		}
	}

	tok, _, err := iss.Issue(Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "u"}})
	if err != nil {
		t.Fatal(err)
	}
	x, err := base64.RawURLEncoding.DecodeString(set.Keys[0]["x"])
	if err != nil {
		t.Fatal(err)
	}
	pub := ed25519.PublicKey(x)
	if Thumbprint(pub) != set.Keys[0]["kid"] {
		t.Error("jwk kid is not the thumbprint of x")
	}
	dot := strings.LastIndexByte(tok, '.')
	sig, err := base64.RawURLEncoding.DecodeString(tok[dot+1:])
	if err != nil {
		t.Fatal(err)
	}
	if !ed25519.Verify(pub, []byte(tok[:dot]), sig) {
		t.Error("token does not verify with key from JWKS")
	}

	// Mutating the returned slice must not corrupt the issuer's copy.
	j := iss.JWKS()
	j[0] = 'X'
	if iss.JWKS()[0] != '{' {
		t.Error("JWKS returned shared buffer")
	}
	if string(NewIssuer(Config{}, nil).JWKS()) != `{"keys":[]}` {
		t.Errorf("empty JWKS = %s", NewIssuer(Config{}, nil).JWKS())
	}
}

func TestRejects(t *testing.T) {
	a, b := keys(t)
	now := time.Unix(1_700_000_000, 0)
	iss := NewIssuer(Config{Now: fixedClock(now)}, a)
	valid := func() jwt.MapClaims {
		return jwt.MapClaims{
			"iss": DefaultIssuer, "sub": "u", "iat": now.Unix(),
			"exp": now.Add(time.Minute).Unix(), "permissions": []string{"admin"},
		}
	}
	sign := func(t *testing.T, m jwt.SigningMethod, key any, claims jwt.MapClaims, kid string) string {
		t.Helper()
		tok := jwt.NewWithClaims(m, claims)
		if kid != "" {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	// Sanity check that the crafting helpers produce acceptable tokens, so
	// each rejection below is caused by the one thing it changes.
	if _, err := iss.Verify(sign(t, jwt.SigningMethodEdDSA, a.Private, valid(), a.ID)); err != nil {
		t.Fatalf("baseline token rejected: %v", err)
	}

	t.Run("alg none", func(t *testing.T) {
		hdr := b64(t, map[string]string{"alg": "none", "typ": "JWT"})
		tok := hdr + "." + b64(t, valid()) + "."
		assertInvalid(t, iss, tok)
		hdr = b64(t, map[string]string{"alg": "none", "typ": "JWT", "kid": a.ID})
		assertInvalid(t, iss, hdr+"."+b64(t, valid())+".")
	})
	t.Run("HS256 with public key bytes", func(t *testing.T) {
		assertInvalid(t, iss, sign(t, jwt.SigningMethodHS256, []byte(a.Public()), valid(), a.ID))
		// Also the JWKS x string, which an attacker can read verbatim.
		x := base64.RawURLEncoding.EncodeToString(a.Public())
		assertInvalid(t, iss, sign(t, jwt.SigningMethodHS256, []byte(x), valid(), a.ID))
	})
	t.Run("RS256", func(t *testing.T) {
		rk, err := rsa.GenerateKey(rand.Reader, 1024)
		if err != nil {
			t.Fatal(err)
		}
		assertInvalid(t, iss, sign(t, jwt.SigningMethodRS256, rk, valid(), a.ID))
	})
	t.Run("other key same kid", func(t *testing.T) {
		err := assertInvalid(t, iss, sign(t, jwt.SigningMethodEdDSA, b.Private, valid(), a.ID))
		if !errors.Is(err, jwt.ErrTokenSignatureInvalid) {
			t.Errorf("err = %v, want signature invalid", err)
		}
	})
	t.Run("tampered payload", func(t *testing.T) {
		tok := sign(t, jwt.SigningMethodEdDSA, a.Private, valid(), a.ID)
		parts := strings.Split(tok, ".")
		c := valid()
		c["permissions"] = []string{"admin", "root"}
		assertInvalid(t, iss, parts[0]+"."+b64(t, c)+"."+parts[2])
	})
	t.Run("expired", func(t *testing.T) {
		tok, _, err := iss.Issue(Claims{})
		if err != nil {
			t.Fatal(err)
		}
		// Within leeway: still accepted.
		within := NewIssuer(Config{Now: fixedClock(now.Add(DefaultTTL + 20*time.Second))}, a)
		if _, err := within.Verify(tok); err != nil {
			t.Errorf("token within leeway rejected: %v", err)
		}
		later := NewIssuer(Config{Now: fixedClock(now.Add(DefaultTTL + DefaultLeeway + time.Second))}, a)
		err = assertInvalid(t, later, tok)
		if !errors.Is(err, ErrExpired) {
			t.Errorf("err = %v, want ErrExpired", err)
		}
	})
	t.Run("expired but bad signature is not ErrExpired", func(t *testing.T) {
		c := valid()
		c["exp"] = now.Add(-time.Hour).Unix()
		err := assertInvalid(t, iss, sign(t, jwt.SigningMethodEdDSA, b.Private, c, a.ID))
		if errors.Is(err, ErrExpired) {
			t.Errorf("forged token reported as merely expired: %v", err)
		}
	})
	t.Run("missing exp", func(t *testing.T) {
		c := valid()
		delete(c, "exp")
		err := assertInvalid(t, iss, sign(t, jwt.SigningMethodEdDSA, a.Private, c, a.ID))
		if errors.Is(err, ErrExpired) {
			t.Errorf("missing exp reported as expired")
		}
	})
	t.Run("iat in future", func(t *testing.T) {
		c := valid()
		c["iat"] = now.Add(time.Hour).Unix()
		c["exp"] = now.Add(2 * time.Hour).Unix()
		assertInvalid(t, iss, sign(t, jwt.SigningMethodEdDSA, a.Private, c, a.ID))
	})
	t.Run("nbf in future", func(t *testing.T) {
		c := valid()
		c["nbf"] = now.Add(time.Hour).Unix()
		assertInvalid(t, iss, sign(t, jwt.SigningMethodEdDSA, a.Private, c, a.ID))
	})
	t.Run("wrong issuer", func(t *testing.T) {
		c := valid()
		c["iss"] = "evil"
		assertInvalid(t, iss, sign(t, jwt.SigningMethodEdDSA, a.Private, c, a.ID))
		other := NewIssuer(Config{Issuer: "other", Now: fixedClock(now)}, a)
		tok, _, err := other.Issue(Claims{})
		if err != nil {
			t.Fatal(err)
		}
		assertInvalid(t, iss, tok)
	})
	t.Run("unknown kid", func(t *testing.T) {
		assertInvalid(t, iss, sign(t, jwt.SigningMethodEdDSA, b.Private, valid(), b.ID))
		assertInvalid(t, iss, sign(t, jwt.SigningMethodEdDSA, a.Private, valid(), "nope"))
	})
	t.Run("missing kid", func(t *testing.T) {
		assertInvalid(t, iss, sign(t, jwt.SigningMethodEdDSA, a.Private, valid(), ""))
	})
	t.Run("garbage", func(t *testing.T) {
		for _, s := range []string{"", "garbage", "a.b.c", "...", "eyJhbGciOiJFZERTQSJ9..", strings.Repeat("a", maxTokenLen+1)} {
			assertInvalid(t, iss, s)
		}
	})
}

func TestVerifyOnlyKey(t *testing.T) {
	a, b := keys(t)
	old := NewIssuer(Config{}, b)
	tok, _, err := old.Issue(Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "u"}})
	if err != nil {
		t.Fatal(err)
	}
	rotated := NewIssuer(Config{}, a, b)
	c, err := rotated.Verify(tok)
	if err != nil {
		t.Fatalf("token from verify-only key rejected: %v", err)
	}
	if c.Subject != "u" {
		t.Errorf("sub = %q", c.Subject)
	}
	// New tokens are signed with the signing key, not the verify-only one.
	tok2, _, err := rotated.Issue(Claims{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewIssuer(Config{}, a).Verify(tok2); err != nil {
		t.Errorf("rotated issuer did not sign with signing key: %v", err)
	}
	// A verify-only issuer cannot sign.
	vo := NewIssuer(Config{}, nil, b)
	if _, _, err := vo.Issue(Claims{}); err == nil {
		t.Error("issuer without signing key issued a token")
	}
	if _, err := vo.Verify(tok); err != nil {
		t.Errorf("verify-only issuer rejected: %v", err)
	}
}

func TestPEM(t *testing.T) {
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	p, err := k.MarshalPrivateKeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(p), "-----BEGIN PRIVATE KEY-----") {
		t.Errorf("pem = %s", p)
	}
	back, err := ParsePrivateKeyPEM(p)
	if err != nil {
		t.Fatal(err)
	}
	if !back.Private.Equal(k.Private) || back.ID != k.ID {
		t.Error("PEM round trip changed the key")
	}

	rfc, err := ParsePrivateKeyPEM([]byte(rfc8410PEM))
	if err != nil {
		t.Fatalf("RFC 8410 key: %v", err)
	}
	if rfc.ID == "" || len(rfc.Private) != ed25519.PrivateKeySize {
		t.Errorf("RFC 8410 key = %+v", rfc)
	}

	if _, err := (&Key{Private: ed25519.PrivateKey{1}}).MarshalPrivateKeyPEM(); err == nil {
		t.Error("marshalled a malformed key")
	}
}

func TestParsePrivateKeyPEMRejects(t *testing.T) {
	rk, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8 := func(key any) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	sec1, err := x509.MarshalECPrivateKey(ek)
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string][]byte{
		"rsa pkcs8":   pkcs8(rk),
		"ecdsa pkcs8": pkcs8(ek),
		"rsa pkcs1":   pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rk)}),
		"ec sec1":     pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}),
	} {
		_, err := ParsePrivateKeyPEM(p)
		if err == nil || !strings.Contains(err.Error(), "only ed25519 keys are supported") {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	for name, p := range map[string]string{
		"empty":   "",
		"not pem": "hello",
		"bad der": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
	} {
		if _, err := ParsePrivateKeyPEM([]byte(p)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestFromHeaders(t *testing.T) {
	cases := []struct {
		name string
		h    map[string]string
		want string
	}{
		{"none", nil, ""},
		{"bearer", map[string]string{"Authorization": "Bearer abc"}, "abc"},
		{"bearer case", map[string]string{"Authorization": "bEaReR   abc  "}, "abc"},
		{"bearer beats header", map[string]string{"Authorization": "Bearer abc", "X-Access-Token": "def"}, "abc"},
		{"basic falls back", map[string]string{"Authorization": "Basic Zm9vOmJhcg==", "X-Access-Token": "def"}, "def"},
		{"basic only", map[string]string{"Authorization": "Basic Zm9vOmJhcg=="}, ""},
		{"empty bearer falls back", map[string]string{"Authorization": "Bearer ", "X-Access-Token": "def"}, "def"},
		{"bearer no space", map[string]string{"Authorization": "Bearerabc"}, ""},
		{"x-access-token", map[string]string{"X-Access-Token": "  def "}, "def"},
		{"x-access-token bearer", map[string]string{"X-Access-Token": "Bearer def"}, "def"},
		{"x-access-token bearer lower", map[string]string{"X-Access-Token": "bearer def"}, "def"},
		{"x-access-token bare bearer", map[string]string{"X-Access-Token": "Bearer"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tc.h {
				h.Set(k, v)
			}
			if got := FromHeaders(h.Get); got != tc.want {
				t.Errorf("FromHeaders = %q, want %q", got, tc.want)
			}
		})
	}
	if FromHeaders(nil) != "" {
		t.Error("nil getter")
	}
}

func TestConcurrent(t *testing.T) {
	a, _ := keys(t)
	iss := NewIssuer(Config{}, a)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 20 {
				tok, _, err := iss.Issue(Claims{Permissions: []string{"x"}})
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := iss.Verify(tok); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkIssue(b *testing.B) {
	a, _ := keys(b)
	iss := NewIssuer(Config{}, a)
	c := Claims{
		RegisteredClaims: jwt.RegisteredClaims{Subject: "user-123"},
		Tenant:           "acme", Permissions: []string{"read", "write"}, Status: "active", Kind: "user",
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := iss.Issue(c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	a, _ := keys(b)
	iss := NewIssuer(Config{}, a)
	tok, _, err := iss.Issue(Claims{
		RegisteredClaims: jwt.RegisteredClaims{Subject: "user-123"},
		Tenant:           "acme", Permissions: []string{"read", "write"}, Status: "active", Kind: "user",
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := iss.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}
