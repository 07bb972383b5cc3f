// Package token issues and verifies the JWT access tokens of the
// registration engine. Tokens are signed with Ed25519 (EdDSA) only: a single
// asymmetric algorithm lets other services verify tokens through the JWKS
// without sharing secrets, and pinning it rules out algorithm-confusion
// attacks.
package token

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Defaults applied by NewIssuer for zero Config fields.
const (
	DefaultIssuer = "caddyregister"
	DefaultTTL    = 15 * time.Minute
	DefaultLeeway = 30 * time.Second
)

// maxTokenLen bounds the input to Verify so oversized headers cannot make us
// spend time base64- and JSON-decoding attacker data before the signature
// check; real tokens are a few hundred bytes.
const maxTokenLen = 8 << 10

// algEdDSA is the only accepted JWS algorithm.
const algEdDSA = "EdDSA"

var (
	// ErrInvalidToken is wrapped by every error Verify returns, so callers
	// can answer 401 without inspecting the cause.
	ErrInvalidToken = errors.New("invalid token")
	// ErrExpired is additionally wrapped when the only problem is an elapsed
	// exp, letting clients be told to refresh rather than log in again.
	ErrExpired = errors.New("token expired")
	// ErrUnknownKey is additionally wrapped when the token names a kid this
	// Issuer does not hold: the signer may have a newer key than ours, so
	// the caller may re-read its keys once and verify again.
	ErrUnknownKey = errors.New("unknown signing key")
)

// Claims are the access token claims.
type Claims struct {
	// RegisteredClaims carries iss, sub, iat, exp, jti (ID) and optionally
	// aud and nbf.
	jwt.RegisteredClaims
	// Tenant scopes the subject in multi-tenant deployments.
	Tenant string `json:"tenant,omitempty"`
	// Permissions is always serialised, as [] when empty, so consumers
	// never have to distinguish a missing claim from no permissions.
	Permissions []string `json:"permissions"`
	// Status is the account status: "pending", "active" or "inactive".
	Status string `json:"status,omitempty"`
	// Kind is the principal kind: "user" or "admin".
	Kind string `json:"kind,omitempty"`
	// CredentialFingerprint binds an admin's token to the credential it
	// was issued against (a digest of the configured hash, never the hash):
	// the engine refuses the token once the admin's hash changes. Verify
	// does not look at it.
	CredentialFingerprint string `json:"cfp,omitempty"`
	// SID names the server-side session the token belongs to: the engine
	// refuses the token once that session is revoked. Tokens issued
	// outside a session have none. Verify does not look at it.
	SID string `json:"sid,omitempty"`
	// Email and Login identify a user to the apps behind the gate
	// (register_auth's identity headers and assertion) without a user
	// lookup per request; like Status and Permissions they are as of
	// issue, at most one token lifetime old.
	Email string `json:"email,omitempty"`
	Login string `json:"login,omitempty"`
}

// Config tunes an Issuer. Zero fields take their defaults.
type Config struct {
	// Issuer is the iss claim written and required; default "caddyregister".
	Issuer string
	// TTL is the token lifetime; zero or negative means 15m.
	TTL time.Duration
	// Leeway is the clock skew tolerated when verifying exp, nbf and iat;
	// zero means 30s and a negative value disables it.
	Leeway time.Duration
	// Now replaces time.Now, for tests.
	Now func() time.Time
}

// Issuer signs and verifies tokens. It is safe for concurrent use.
type Issuer struct {
	cfg     Config
	signing *Key
	// keys maps kid to public key for every key accepted on verification.
	keys   map[string]ed25519.PublicKey
	parser *jwt.Parser
	jwks   []byte
}

// NewIssuer builds an Issuer that signs with signing and verifies with it and
// with the verifyOnly keys, which lets tokens signed by a retired key stay
// valid until they expire during a rotation. Nil or malformed keys are
// skipped; if signing is unusable the Issuer can still verify but Issue
// fails.
func NewIssuer(cfg Config, signing *Key, verifyOnly ...*Key) *Issuer {
	var pubs []ed25519.PublicKey
	for _, k := range verifyOnly {
		if k.valid() {
			pubs = append(pubs, k.Public())
		}
	}
	return NewIssuerPublic(cfg, signing, pubs)
}

// NewIssuerPublic is NewIssuer with the verify-only keys given as public
// keys: a retired key needs no private half to verify the tokens it signed,
// so a key set need not keep it. Keys of the wrong length are skipped.
func NewIssuerPublic(cfg Config, signing *Key, verifyOnly []ed25519.PublicKey) *Issuer {
	if cfg.Issuer == "" {
		cfg.Issuer = DefaultIssuer
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	switch {
	case cfg.Leeway == 0:
		cfg.Leeway = DefaultLeeway
	case cfg.Leeway < 0:
		cfg.Leeway = 0
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}

	i := &Issuer{cfg: cfg, keys: make(map[string]ed25519.PublicKey)}
	var ordered []jwk
	addPublic := func(pub ed25519.PublicKey) string {
		// Recompute rather than trust k.ID: a wrong hand-set ID would make
		// the kid header lie about which key verifies the token.
		kid := Thumbprint(pub)
		if _, dup := i.keys[kid]; !dup {
			i.keys[kid] = pub
			ordered = append(ordered, jwk{
				Kty: "OKP", Crv: "Ed25519",
				X:   base64.RawURLEncoding.EncodeToString(pub),
				Kid: kid, Use: "sig", Alg: algEdDSA,
			})
		}
		return kid
	}
	if signing.valid() {
		i.signing = &Key{Private: signing.Private, ID: addPublic(signing.Public())}
	}
	for _, pub := range verifyOnly {
		if len(pub) == ed25519.PublicKeySize {
			addPublic(pub)
		}
	}

	if ordered == nil {
		ordered = []jwk{}
	}
	// Marshalling fixed string fields cannot fail.
	i.jwks, _ = json.Marshal(jwkSet{Keys: ordered})

	i.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{algEdDSA}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(cfg.Now),
	)
	return i
}

// TTL returns the configured token lifetime, e.g. for the expires_in field of
// a token response.
func (i *Issuer) TTL() time.Duration { return i.cfg.TTL }

// KeyID returns the kid of the signing key, or "" for a verify-only Issuer.
func (i *Issuer) KeyID() string {
	if i.signing == nil {
		return ""
	}
	return i.signing.ID
}

// Issue fills iss, iat, exp (iat+TTL) and a random 128-bit jti, then signs
// with EdDSA under the signing key's kid. Subject, Tenant, Permissions,
// Status, Kind and, if set, Audience and NotBefore come from c; any iss, iat,
// exp or jti in c are overwritten so callers cannot mint long-lived tokens by
// accident. It returns the token and the claims exactly as encoded.
func (i *Issuer) Issue(c Claims) (string, *Claims, error) {
	return i.issue(c, i.cfg.TTL, "")
}

// issue is Issue with the lifetime and, if not empty, the typ header
// given (IssueAssertion).
func (i *Issuer) issue(c Claims, ttl time.Duration, typ string) (string, *Claims, error) {
	if i.signing == nil {
		return "", nil, errors.New("issue token: no signing key configured")
	}
	jti, err := newJTI()
	if err != nil {
		return "", nil, fmt.Errorf("issue token: %w", err)
	}
	now := i.cfg.Now()
	out := c
	out.Issuer = i.cfg.Issuer
	// NewNumericDate truncates to seconds, so the returned claims match what
	// Verify later decodes.
	out.IssuedAt = jwt.NewNumericDate(now)
	out.ExpiresAt = jwt.NewNumericDate(now.Add(ttl))
	out.ID = jti
	// Copy so later mutation of the caller's slices cannot change the
	// returned claims, and so an empty list encodes as [] not null.
	out.Permissions = append(make([]string, 0, len(c.Permissions)), c.Permissions...)
	out.Audience = slices.Clone(c.Audience)

	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, &out)
	t.Header["kid"] = i.signing.ID
	if typ != "" {
		t.Header["typ"] = typ
	}
	s, err := t.SignedString(i.signing.Private)
	if err != nil {
		return "", nil, fmt.Errorf("issue token: sign: %w", err)
	}
	return s, &out, nil
}

// Verify parses tokenString and checks its signature and claims: the
// algorithm must be EdDSA, the kid header must name a known key, exp is
// required, iat must not be in the future, and iss must match, all with the
// configured leeway. Every error wraps ErrInvalidToken; an otherwise valid
// but expired token also wraps ErrExpired.
func (i *Issuer) Verify(tokenString string) (*Claims, error) {
	if tokenString == "" {
		return nil, fmt.Errorf("%w: empty token", ErrInvalidToken)
	}
	if len(tokenString) > maxTokenLen {
		return nil, fmt.Errorf("%w: token too long", ErrInvalidToken)
	}
	var c Claims
	t, err := i.parser.ParseWithClaims(tokenString, &c, i.keyFunc)
	if err == nil && !accessType(t.Header["typ"]) {
		// An assertion (IssueAssertion) is signed by the same key but is
		// not an access token: one leaked by an app must not open the
		// gate or the account API.
		err = fmt.Errorf("typ %q is not an access token", t.Header["typ"])
	}
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return nil, fmt.Errorf("%w: %w: %w", ErrInvalidToken, ErrExpired, err)
		}
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if c.Permissions == nil {
		c.Permissions = []string{}
	}
	return &c, nil
}

// keyFunc selects the verification key by kid. The key is picked only by kid
// and never by trying all keys, so a token cannot be matched against a key
// it did not name.
func (i *Issuer) keyFunc(t *jwt.Token) (any, error) {
	// Re-checked here although the parser already pins the algorithm, so
	// that an ed25519 public key is never handed to another method.
	if _, ok := t.Method.(*jwt.SigningMethodEd25519); !ok {
		return nil, fmt.Errorf("unexpected signing method %q", t.Method.Alg())
	}
	kid, ok := t.Header["kid"].(string)
	if !ok || kid == "" {
		return nil, errors.New("missing kid header")
	}
	pub, ok := i.keys[kid]
	if !ok {
		return nil, fmt.Errorf("%w: kid %q", ErrUnknownKey, kid)
	}
	return pub, nil
}

// JWKS returns the JSON Web Key Set (RFC 7517) of all verification keys,
// signing key first, for publication at a well-known endpoint.
func (i *Issuer) JWKS() []byte {
	// A copy keeps callers from corrupting the shared cached document.
	return slices.Clone(i.jwks)
}

// jwk is an RFC 8037 OKP public key in JWK form.
type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
}

// jwkSet is the RFC 7517 key set document.
type jwkSet struct {
	Keys []jwk `json:"keys"`
}

// newJTI returns 128 random bits, enough that ids never collide and can key
// a revocation list.
func newJTI() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate jti: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}
