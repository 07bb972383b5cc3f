package token

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
)

// pemTypePrivateKey is the PEM block type of PKCS#8 private keys; it is the
// only one accepted because legacy types (PKCS#1, SEC1) never hold Ed25519.
const pemTypePrivateKey = "PRIVATE KEY"

// errOnlyEd25519 is shared so every rejection of a foreign key type reads the
// same and operators can grep for it.
var errOnlyEd25519 = errors.New("only ed25519 keys are supported")

// Key is an Ed25519 signing key with its key id.
type Key struct {
	// Private is the Ed25519 private key (seed followed by public key).
	Private ed25519.PrivateKey
	// ID is the RFC 7638 JWK thumbprint (base64url, no padding) of the
	// public key. Deriving it from the key material rather than choosing it
	// freely keeps ids stable across restarts and unique across keys.
	ID string
}

// GenerateKey creates a fresh Ed25519 key from crypto/rand.
func GenerateKey() (*Key, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate ed25519 key: %w", err)
	}
	return KeyFromPrivate(priv), nil
}

// KeyFromPrivate wraps priv and computes its key id. A priv of the wrong
// length yields a Key with an empty ID, which NewIssuer ignores, so that a
// corrupt key cannot panic the caller here.
func KeyFromPrivate(priv ed25519.PrivateKey) *Key {
	k := &Key{Private: priv}
	if len(priv) == ed25519.PrivateKeySize {
		k.ID = Thumbprint(k.Public())
	}
	return k
}

// Public returns the public half of the key.
func (k *Key) Public() ed25519.PublicKey {
	return k.Private.Public().(ed25519.PublicKey)
}

// valid reports whether the key can be used; it guards against hand-built
// Key values with truncated material that would otherwise panic in Public.
func (k *Key) valid() bool {
	return k != nil && len(k.Private) == ed25519.PrivateKeySize
}

// Thumbprint returns the RFC 7638 JWK thumbprint of an Ed25519 public key
// (SHA-256, base64url without padding). RFC 8037 section 2 fixes the
// required members for OKP keys to crv, kty and x in that lexicographic order.
func Thumbprint(pub ed25519.PublicKey) string {
	// Built by hand because the RFC mandates an exact byte sequence (sorted
	// members, no whitespace) that must not depend on encoder behaviour.
	canonical := `{"crv":"Ed25519","kty":"OKP","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`
	sum := sha256.Sum256([]byte(canonical))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// ParsePrivateKeyPEM accepts a PKCS#8 "PRIVATE KEY" PEM block holding an
// Ed25519 key, as written by `openssl genpkey -algorithm ed25519`. Other
// key types are rejected explicitly so a misconfigured RSA or EC key is not
// mistaken for a corrupt file.
func ParsePrivateKeyPEM(pemBytes []byte) (*Key, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("parse private key: no pem block found")
	}
	if block.Type != pemTypePrivateKey {
		return nil, fmt.Errorf("parse private key: pem block type %q: %w", block.Type, errOnlyEd25519)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	priv, ok := parsed.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("parse private key: got %T: %w", parsed, errOnlyEd25519)
	}
	return KeyFromPrivate(priv), nil
}

// MarshalPrivateKeyPEM encodes the key as a PKCS#8 PEM block, the format
// ParsePrivateKeyPEM reads, so generated keys can be persisted in the store.
func (k *Key) MarshalPrivateKeyPEM() ([]byte, error) {
	if !k.valid() {
		return nil, errors.New("marshal private key: invalid ed25519 key")
	}
	der, err := x509.MarshalPKCS8PrivateKey(k.Private)
	if err != nil {
		return nil, fmt.Errorf("marshal private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemTypePrivateKey, Bytes: der}), nil
}
