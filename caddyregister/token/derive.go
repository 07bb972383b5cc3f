package token

import (
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
)

// Derive returns n bytes derived with HKDF-SHA256 from the signing key's
// private seed under info, for secrets every instance holding the signing
// key must share without storing another one (the outbox sealer's key).
// Distinct infos give independent secrets; none reveals the key.
func (i *Issuer) Derive(info string, n int) ([]byte, error) {
	if !i.signing.valid() {
		return nil, errors.New("token: derive: no signing key")
	}
	b, err := hkdf.Key(sha256.New, i.signing.Private.Seed(), nil, "caddyregister derive: "+info, n)
	if err != nil {
		return nil, fmt.Errorf("token: derive: %w", err)
	}
	return b, nil
}
