// Package secretbox encrypts small secrets the engine keeps at rest (the
// signing key set; later queued mail bodies) under an operator-supplied
// key-encryption key (KEK), so that whoever reads the store does not read
// the secrets.
//
// A Box derives its key from the KEK with HKDF-SHA256 and seals with
// XChaCha20-Poly1305: its 192-bit random nonces never collide in practice,
// whatever number of values one KEK seals, which AES-GCM's 96-bit ones do
// not promise for the many values a mail queue writes. Every value is bound
// to the Box's domain (the store's namespace) and to a purpose (what the
// value is, e.g. "secret:jwt-ed25519") as associated data, so a sealed value
// copied to another key or namespace does not open.
package secretbox

import (
	"bytes"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
)

// MinKEKLen is the shortest key-encryption key accepted. HKDF is not a
// password hash: the KEK must be random (openssl rand -base64 32 prints 44
// characters), not a memorable phrase.
const MinKEKLen = 32

// prefix starts every sealed value; its version lets a later format (other
// cipher, key id) be told apart from this one, and lets readers tell sealed
// values from clear ones they migrate.
const prefix = "sealed:v1:"

// hkdfInfo separates this use of the KEK from any other.
const hkdfInfo = "caddyregister secretbox v1"

// ErrOpen is wrapped by Open when a value does not authenticate: it was
// sealed under another KEK, for another domain or purpose, or altered.
var ErrOpen = errors.New("secretbox: value does not open with this key (other key-encryption key, other purpose, or altered)")

// Box seals and opens values. It is safe for concurrent use.
type Box struct {
	domain string
	aead   interface {
		Seal(dst, nonce, plaintext, additionalData []byte) []byte
		Open(dst, nonce, ciphertext, additionalData []byte) ([]byte, error)
		NonceSize() int
	}
}

// New derives a Box from kek for domain (for instance the store namespace;
// values sealed for one domain do not open in another). kek must be at
// least MinKEKLen bytes.
func New(kek []byte, domain string) (*Box, error) {
	if len(kek) < MinKEKLen {
		return nil, fmt.Errorf("secretbox: key-encryption key is %d bytes, want at least %d random bytes (e.g. openssl rand -base64 32)", len(kek), MinKEKLen)
	}
	key, err := hkdf.Key(sha256.New, kek, nil, hkdfInfo, chacha20poly1305.KeySize)
	if err != nil {
		return nil, fmt.Errorf("secretbox: derive key: %w", err)
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, fmt.Errorf("secretbox: %w", err)
	}
	return &Box{domain: domain, aead: aead}, nil
}

// WithDomain returns a Box with b's key for another domain: what moving a
// sealed value from one store to another needs (open it for the source's
// domain, seal it for the target's), without the key-encryption key kept
// around.
func (b *Box) WithDomain(domain string) *Box {
	return &Box{domain: domain, aead: b.aead}
}

// ad binds a value to the Box's domain and to purpose. The NUL cannot occur
// in a namespace, so distinct (domain, purpose) pairs give distinct data.
func (b *Box) ad(purpose string) []byte {
	return []byte(prefix + b.domain + "\x00" + purpose)
}

// Seal encrypts plaintext for purpose. The result is printable ASCII
// ("sealed:v1:" then base64url of nonce and ciphertext), so it can sit in
// a JSON field or a Redis string alike; it is 50 bytes plus 4/3 of the
// plaintext long.
func (b *Box) Seal(purpose string, plaintext []byte) ([]byte, error) {
	nonce := make([]byte, b.aead.NonceSize(), b.aead.NonceSize()+len(plaintext)+chacha20poly1305.Overhead)
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("secretbox: nonce: %w", err)
	}
	raw := b.aead.Seal(nonce, nonce, plaintext, b.ad(purpose))
	out := make([]byte, len(prefix)+base64.RawURLEncoding.EncodedLen(len(raw)))
	copy(out, prefix)
	base64.RawURLEncoding.Encode(out[len(prefix):], raw)
	return out, nil
}

// Open decrypts a value Seal returned for the same purpose. A value that
// is not sealed at all (see IsSealed) is an error, not passed through:
// callers that migrate clear values check IsSealed first.
func (b *Box) Open(purpose string, sealed []byte) ([]byte, error) {
	if !IsSealed(sealed) {
		return nil, errors.New("secretbox: value is not sealed")
	}
	raw, err := base64.RawURLEncoding.DecodeString(string(sealed[len(prefix):]))
	if err != nil {
		return nil, fmt.Errorf("%w: bad encoding", ErrOpen)
	}
	n := b.aead.NonceSize()
	if len(raw) < n+chacha20poly1305.Overhead {
		return nil, fmt.Errorf("%w: too short", ErrOpen)
	}
	plain, err := b.aead.Open(nil, raw[:n], raw[n:], b.ad(purpose))
	if err != nil {
		return nil, ErrOpen
	}
	return plain, nil
}

// IsSealed reports whether v is in Seal's format (whatever key sealed it).
func IsSealed(v []byte) bool {
	return bytes.HasPrefix(v, []byte(prefix))
}
