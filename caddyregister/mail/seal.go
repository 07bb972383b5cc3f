package mail

import (
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/caddyregister/caddyregister/caddyregister/secretbox"
	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// A queued mail carries its link, and the link carries a token that the
// store otherwise keeps only as a hash. So the body is sealed before it is
// written to the outbox with the project's one sealer (package secretbox:
// XChaCha20-Poly1305 under an HKDF-derived key), keyed from a secret every
// instance holds (the engine's outbox key, a store secret of its own that
// signing-key rotation does not touch), with the message id as the
// purpose, so a sealed body cannot be moved to another record. Whoever
// reads the store sees recipients, subject and times, not the link.

// sealVersion prefixes sealed bodies, so the format can change.
const sealVersion = "v1"

// sealDomain and sealIDInfo separate this use of the outbox key from any
// other; changing one makes every queued body unreadable.
const (
	sealDomain = "outbox"
	sealIDInfo = "caddyregister outbox body key id v1"
)

// ErrSealKey means a sealed body was made with another key (the store
// lost the outbox key since it was queued) or was altered. Retrying
// cannot help.
var ErrSealKey = errors.New("sealed mail body cannot be opened with the current key")

// Sealer seals and opens outbox bodies. It is safe for concurrent use.
type Sealer struct {
	id  string // names the key in sealed bodies, so a keyring can pick one
	box *secretbox.Box
}

// NewSealer derives a sealer from secret (at least 32 bytes of key
// material; the engine's random outbox key).
func NewSealer(secret []byte) (*Sealer, error) {
	box, err := secretbox.New(secret, sealDomain)
	if err != nil {
		return nil, fmt.Errorf("mail: sealer: %w", err)
	}
	id, err := hkdf.Key(sha256.New, secret, nil, sealIDInfo, 6)
	if err != nil {
		return nil, fmt.Errorf("mail: sealer: %w", err)
	}
	return &Sealer{id: base64.RawURLEncoding.EncodeToString(id), box: box}, nil
}

// KeyID names s's key; sealed bodies carry it (see SealedKeyID).
func (s *Sealer) KeyID() string { return s.id }

// SealedKeyID returns the id of the key m's body was sealed with, or ""
// when m is not sealed (or not in a format this build reads).
func SealedKeyID(m *store.Mail) string {
	parts := strings.SplitN(m.Sealed, ".", 3)
	if len(parts) != 3 || parts[0] != sealVersion {
		return ""
	}
	return parts[1]
}

// sealed is what the ciphertext holds.
type sealed struct {
	Subject string `json:"s"`
	Text    string `json:"t,omitempty"`
	HTML    string `json:"h,omitempty"`
}

// Seal encrypts m's subject, text and HTML into m.Sealed and clears Text
// and HTML. The clear Subject stays for operators, with every occurrence
// of each of secrets (the link's token) blanked, in case a template put it
// there; the sealed copy keeps the real one.
func (s *Sealer) Seal(m *store.Mail, secrets ...string) error {
	if m.ID == "" {
		return errors.New("mail: seal: message without id")
	}
	plain, err := json.Marshal(sealed{Subject: m.Subject, Text: m.Text, HTML: m.HTML})
	if err != nil {
		return fmt.Errorf("mail: seal: %w", err)
	}
	ct, err := s.box.Seal("mail:"+m.ID, plain)
	if err != nil {
		return fmt.Errorf("mail: seal: %w", err)
	}
	m.Sealed = sealVersion + "." + s.id + "." + string(ct)
	for _, sec := range secrets {
		if sec != "" {
			m.Subject = strings.ReplaceAll(m.Subject, sec, "[token]")
		}
	}
	m.Text, m.HTML = "", ""
	return nil
}

// Open returns the subject and bodies of a sealed m, leaving m as it is
// (the worker saves m again on failure, and must save it sealed). A mail
// that is not sealed comes back as stored: one queued before sealing.
func (s *Sealer) Open(m *store.Mail) (subject, text, html string, err error) {
	if m.Sealed == "" {
		return m.Subject, m.Text, m.HTML, nil
	}
	parts := strings.SplitN(m.Sealed, ".", 3)
	if len(parts) != 3 || parts[0] != sealVersion {
		return "", "", "", fmt.Errorf("mail: open: unknown sealed format: %w", ErrSealKey)
	}
	if parts[1] != s.id {
		return "", "", "", fmt.Errorf("mail: open: sealed with key %s, have %s: %w", parts[1], s.id, ErrSealKey)
	}
	plain, err := s.box.Open("mail:"+m.ID, []byte(parts[2]))
	if err != nil {
		return "", "", "", fmt.Errorf("mail: open: %w: %w", ErrSealKey, err)
	}
	var b sealed
	if err := json.Unmarshal(plain, &b); err != nil {
		return "", "", "", fmt.Errorf("mail: open: %w", err)
	}
	return b.Subject, b.Text, b.HTML, nil
}
