package engine

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"

	"go.uber.org/zap"

	"github.com/caddyregister/caddyregister/caddyregister/token"
)

// ConfiguredKeySecret is the store secret recording, sealed by the
// key-encryption key, the public half of the configured signing_key and of
// the keys it replaced. It lets a change of signing_key keep the previous
// key verifying for one token lifetime, and lets instances still running
// the previous config verify the new key's tokens during a rolling change.
// Without a key-encryption key nothing is recorded: an unauthenticated
// record in Redis could slip an attacker's public key into the verifiers.
const ConfiguredKeySecret = "jwt-ed25519-configured"

// configuredSecret is the stored record of configured keys. It is only
// ever written sealed: a clear one was planted, and is refused.
func (e *Engine) configuredSecret() sealedSecret {
	return sealedSecret{st: e.cfg.Store, box: e.cfg.Sealer, name: ConfiguredKeySecret, what: "record of signing_key", sealedOnly: true}
}

// configuredRecord is the stored record of the configured signing keys.
type configuredRecord struct {
	V int `json:"v"`
	// X is the public key of the signing_key configured on the instance
	// that last started with a new one.
	X       string       `json:"x"`
	Retired []retiredKey `json:"retired,omitempty"`
}

// staticKey reports whether the signing key never changes at run time: it
// is configured and there is no sealed record to learn other keys from.
func (e *Engine) staticKey() bool {
	return e.cfg.SigningKey != nil && e.cfg.Sealer == nil
}

// loadConfigured reads the record of configured keys and installs an
// issuer that signs with the configured key and also verifies the record's
// other keys. On its first successful read, an instance whose signing_key
// differs from the recorded one retires the recorded one (compare-and-set)
// and logs it. Callers hold e.mu.
func (e *Engine) loadConfigured(ctx context.Context) (*token.Issuer, error) {
	own := e.cfg.SigningKey
	ownX := base64.RawURLEncoding.EncodeToString(own.Public())
	now := e.now()
	keep := retention(e.cfg.Token)
	ss := e.configuredSecret()
	for range 5 {
		raw, plain, err := ss.load(ctx, func() ([]byte, error) {
			return json.Marshal(configuredRecord{V: keySetVersion, X: ownX})
		}, e.log)
		if err != nil {
			return nil, err
		}
		var rec configuredRecord
		if err := json.Unmarshal(plain, &rec); err != nil || rec.V != keySetVersion {
			return nil, fmt.Errorf("%w: stored record of signing_key: version %d: %v", ErrKeyUnusable, rec.V, err)
		}
		if rec.X != ownX && !e.configuredClaimed {
			next := configuredRecord{V: keySetVersion, X: ownX,
				Retired: append([]retiredKey{{X: rec.X, RetiredAt: now.UTC()}}, liveRetired(rec.Retired, now, keep)...)}
			next.Retired = slices.DeleteFunc(next.Retired, func(r retiredKey) bool { return r.X == ownX })
			b, _ := json.Marshal(next)
			ok, err := ss.swap(ctx, raw, b)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
			e.log.Warn("signing_key changed; the previous key verifies the tokens it signed until they expire",
				zap.String("old_kid", thumbprintX(rec.X)), zap.String("new_kid", own.ID))
			rec = next
		}
		e.configuredClaimed = true

		var pubs []ed25519.PublicKey
		refreshAt := now.Add(keyRefreshInterval)
		if pub := decodeX(rec.X); pub != nil && rec.X != ownX {
			// Another instance's current key (a rolling change of config).
			pubs = append(pubs, pub)
		}
		for _, r := range liveRetired(rec.Retired, now, keep) {
			if pub := decodeX(r.X); pub != nil && r.X != ownX {
				pubs = append(pubs, pub)
				if until := r.RetiredAt.Add(keep); until.Before(refreshAt) {
					refreshAt = until
				}
			}
		}
		iss := token.NewIssuerPublic(e.cfg.Token, own, pubs)
		e.keys.Store(&keyState{iss: iss, refreshAt: refreshAt})
		return iss, nil
	}
	return nil, fmt.Errorf("load signing_key record: %w: it kept changing", ErrNotReady)
}

func decodeX(x string) ed25519.PublicKey {
	pub, err := base64.RawURLEncoding.DecodeString(x)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return nil
	}
	return pub
}

func thumbprintX(x string) string {
	if pub := decodeX(x); pub != nil {
		return token.Thumbprint(pub)
	}
	return ""
}
