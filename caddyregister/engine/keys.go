package engine

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/caddyregister/caddyregister/caddyregister/secretbox"
	"github.com/caddyregister/caddyregister/caddyregister/store"
	"github.com/caddyregister/caddyregister/caddyregister/token"
)

// How often the stored key set is read again. Instances on one store must
// notice within this time when it lost its data and made a new key (or an
// operator rotated it), or their tokens stop verifying on each other.
const (
	keyRefreshInterval = 30 * time.Second
	// keyMissInterval bounds re-reads caused by tokens naming an unknown
	// kid, which anyone can forge: at most one store read per interval.
	keyMissInterval = time.Second
)

// ErrKeyUnusable is wrapped when a stored key (the signing key, the record
// of signing_key, the outbox key) cannot be used as configured: it is
// sealed and key_encryption_key is missing or another, or it is corrupt. Retrying does not help (unlike ErrNotReady), so the
// Caddy layer fails Start with it: a reload with the wrong key is refused
// and the running config stays.
var ErrKeyUnusable = errors.New("stored key unusable")

// keySetVersion is the "v" of the stored key set.
const keySetVersion = 1

// keySet is the stored signing key set: the current key's seed and the
// public halves of retired keys, which verify the tokens those keys signed
// until they expire. It is JSON, sealed by the key-encryption key when one
// is configured.
type keySet struct {
	V int `json:"v"`
	// Current is the base64url (unpadded) Ed25519 seed of the signing key.
	Current string `json:"current"`
	// Retired keys, newest first.
	Retired []retiredKey `json:"retired,omitempty"`
}

// retiredKey is a former signing key, public half only.
type retiredKey struct {
	// X is the base64url (unpadded) Ed25519 public key, as in a JWK.
	X         string    `json:"x"`
	RetiredAt time.Time `json:"retired_at"`
}

// keyState is what the engine last loaded: the issuer built from it and
// when to look at the store again.
type keyState struct {
	iss *token.Issuer
	// raw is the stored value it was built from; an unchanged value is not
	// decoded (or decrypted) again.
	raw []byte
	set *keySet
	// kept are retired keys held in memory only: the previous current key
	// when the store lost it, so this instance still accepts its own
	// earlier tokens.
	kept      []retiredKey
	refreshAt time.Time
}

// keySecret is the stored signing key set.
func keySecret(st store.Store, sealer *secretbox.Box) sealedSecret {
	return sealedSecret{st: st, box: sealer, name: SigningKeySecret, what: "signing key"}
}

func newKeySet() (*keySet, error) {
	k, err := token.GenerateKey()
	if err != nil {
		return nil, err
	}
	return &keySet{V: keySetVersion, Current: base64.RawURLEncoding.EncodeToString(k.Private.Seed())}, nil
}

func (s *keySet) signing() (*token.Key, error) {
	seed, err := base64.RawURLEncoding.DecodeString(s.Current)
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, errors.New("current key is not a base64url ed25519 seed")
	}
	return token.KeyFromPrivate(ed25519.NewKeyFromSeed(seed)), nil
}

// parseKeySet reads a stored key set's plaintext: a key set, or the
// PKCS#8 PEM earlier versions stored.
func parseKeySet(plain []byte) (*keySet, error) {
	if bytes.HasPrefix(plain, []byte("-----BEGIN")) {
		k, err := token.ParsePrivateKeyPEM(plain)
		if err != nil {
			return nil, err
		}
		return &keySet{V: keySetVersion, Current: base64.RawURLEncoding.EncodeToString(k.Private.Seed())}, nil
	}
	var s keySet
	if err := json.Unmarshal(plain, &s); err != nil {
		return nil, fmt.Errorf("stored signing key set is neither json nor pem: %w", err)
	}
	if s.V != keySetVersion {
		return nil, fmt.Errorf("stored signing key set has version %d, this build reads %d", s.V, keySetVersion)
	}
	if _, err := s.signing(); err != nil {
		return nil, fmt.Errorf("stored signing key set: %w", err)
	}
	return &s, nil
}

// retention is how long a retired key keeps verifying: one token lifetime
// plus the verifier's leeway, so every token it signed has expired.
func retention(c token.Config) time.Duration {
	ttl, leeway := c.TTL, c.Leeway
	if ttl <= 0 {
		ttl = token.DefaultTTL
	}
	switch {
	case leeway == 0:
		leeway = token.DefaultLeeway
	case leeway < 0:
		leeway = 0
	}
	return ttl + leeway
}

// liveRetired returns the retired keys still within keep at now.
func liveRetired(rs []retiredKey, now time.Time, keep time.Duration) []retiredKey {
	var out []retiredKey
	for _, r := range rs {
		if now.Before(r.RetiredAt.Add(keep)) {
			out = append(out, r)
		}
	}
	return out
}

// readKeySet loads the stored key set, creating one if the store has none,
// and stores it sealed when a sealer is set and it was found in clear
// (sealedSecret.load). It returns the value now stored and its decoded set.
func readKeySet(ctx context.Context, st store.Store, sealer *secretbox.Box, log *zap.Logger) ([]byte, *keySet, error) {
	raw, plain, err := keySecret(st, sealer).load(ctx, func() ([]byte, error) {
		fresh, err := newKeySet()
		if err != nil {
			return nil, err
		}
		return json.Marshal(fresh)
	}, log)
	if err != nil {
		return nil, nil, err
	}
	set, err := parseKeySet(plain)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrKeyUnusable, err)
	}
	return raw, set, nil
}

// Rotation is what RotateSigningKey did.
type Rotation struct {
	// OldKID is the retired key's kid, NewKID the new signing key's.
	OldKID, NewKID string
	// RetiredUntil is when the old key leaves the JWKS and stops
	// verifying: one token lifetime plus leeway after the rotation.
	RetiredUntil time.Time
}

// RotateSigningKey replaces the stored signing key with a fresh one and
// keeps the old one's public half as retired, so tokens it signed verify
// until they expire; retired keys older than one lifetime of tc's tokens
// (plus leeway) are dropped. Running instances pick the new key up within
// keyRefreshInterval, or at once when they see a token it signed. sealer
// must be the Box the instances use (nil when they have no
// key_encryption_key). It is a compare-and-set: a concurrent rotation or
// data loss makes it read again rather than overwrite.
func RotateSigningKey(ctx context.Context, st store.Store, sealer *secretbox.Box, tc token.Config, now time.Time) (*Rotation, error) {
	keep := retention(tc)
	for range 5 {
		raw, set, err := readKeySet(ctx, st, sealer, zap.NewNop())
		if err != nil {
			return nil, err
		}
		old, _ := set.signing() // parseKeySet checked it
		next, err := newKeySet()
		if err != nil {
			return nil, err
		}
		next.Retired = append([]retiredKey{{X: base64.RawURLEncoding.EncodeToString(old.Public()), RetiredAt: now.UTC()}},
			liveRetired(set.Retired, now, keep)...)
		b, err := json.Marshal(next)
		if err != nil {
			return nil, fmt.Errorf("rotate signing key: %w", err)
		}
		ok, err := keySecret(st, sealer).swap(ctx, raw, b)
		if err != nil {
			return nil, fmt.Errorf("rotate signing key: %w", err)
		}
		if ok {
			k, _ := next.signing()
			return &Rotation{OldKID: old.ID, NewKID: k.ID, RetiredUntil: now.Add(keep)}, nil
		}
	}
	return nil, errors.New("rotate signing key: the stored key kept changing; try again")
}

// loadKeys reads the stored key set and installs its issuer, logging when
// the current key changed under a running instance. Callers hold e.mu.
func (e *Engine) loadKeys(ctx context.Context) (*token.Issuer, error) {
	if e.cfg.SigningKey != nil {
		return e.loadConfigured(ctx)
	}
	now := e.now()
	prev := e.keys.Load()
	raw, set, err := readKeySet(ctx, e.cfg.Store, e.cfg.Sealer, e.log)
	if err != nil {
		return nil, err
	}
	keep := retention(e.cfg.Token)
	var kept []retiredKey
	if prev != nil {
		kept = prev.kept
		if bytes.Equal(raw, prev.raw) {
			set = prev.set
		} else {
			kept = e.keyChanged(prev, set, now)
		}
	}
	signing, _ := set.signing()
	var pubs []ed25519.PublicKey
	refreshAt := now.Add(keyRefreshInterval)
	for _, r := range slices.Concat(liveRetired(set.Retired, now, keep), liveRetired(kept, now, keep)) {
		pub, err := base64.RawURLEncoding.DecodeString(r.X)
		if err != nil || len(pub) != ed25519.PublicKeySize {
			continue
		}
		pubs = append(pubs, pub)
		// Rebuild when it expires, so it leaves the JWKS on time.
		if until := r.RetiredAt.Add(keep); until.Before(refreshAt) {
			refreshAt = until
		}
	}
	iss := token.NewIssuerPublic(e.cfg.Token, signing, pubs)
	e.keys.Store(&keyState{iss: iss, raw: raw, set: set, kept: liveRetired(kept, now, keep), refreshAt: refreshAt})
	return iss, nil
}

// keyChanged logs a change of the stored key set under a running instance
// and returns the in-memory retired keys to keep: the previous current key
// when the store no longer knows it.
func (e *Engine) keyChanged(prev *keyState, set *keySet, now time.Time) []retiredKey {
	oldKey, _ := prev.set.signing()
	newKey, _ := set.signing()
	if oldKey.ID == newKey.ID {
		return prev.kept
	}
	oldX := base64.RawURLEncoding.EncodeToString(oldKey.Public())
	if slices.ContainsFunc(set.Retired, func(r retiredKey) bool { return r.X == oldX }) {
		e.log.Warn("signing key rotated in the store; now signing with the new key, the old one verifies until its tokens expire",
			zap.String("old_kid", oldKey.ID), zap.String("new_kid", newKey.ID))
		return prev.kept
	}
	e.log.Error("signing key in the store changed and the previous key is not among its retired keys: the store lost its data (restart without persistence, eviction, flush); tokens signed before now fail on other instances",
		zap.String("old_kid", oldKey.ID), zap.String("new_kid", newKey.ID))
	return append([]retiredKey{{X: oldX, RetiredAt: now}}, prev.kept...)
}

// tokens returns the issuer, loading the signing key on first use and
// reading the store again every keyRefreshInterval. A failed re-read keeps
// the current key (the store may be briefly down) and is tried again after
// another interval; only one caller re-reads, the others go on with the
// current issuer meanwhile.
func (e *Engine) tokens(ctx context.Context) (*token.Issuer, error) {
	if ks := e.keys.Load(); ks != nil {
		if e.staticKey() || e.now().Before(ks.refreshAt) || !e.mu.TryLock() {
			return ks.iss, nil
		}
		defer e.mu.Unlock()
		if cur := e.keys.Load(); cur != ks {
			return cur.iss, nil
		}
		iss, err := e.loadKeys(ctx)
		if err != nil {
			lvl := zap.WarnLevel // the store may be briefly down
			if errors.Is(err, ErrKeyUnusable) {
				lvl = zap.ErrorLevel // instances disagree on key_encryption_key
			}
			e.log.Log(lvl, "re-reading the signing key failed; keeping the current one", zap.Error(err))
			next := *ks
			next.refreshAt = e.now().Add(keyRefreshInterval)
			e.keys.Store(&next)
			return ks.iss, nil
		}
		return iss, nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if ks := e.keys.Load(); ks != nil {
		return ks.iss, nil
	}
	return e.loadKeys(ctx)
}

// tokensAfterMiss re-reads the key set after a token named a kid that
// used (the issuer it was checked with) does not hold: another instance may
// sign with a key we have not seen yet. A load already in flight (periodic,
// or for another such token) is waited for and its result used; otherwise
// the store is read at most once per keyMissInterval, whatever the number
// of such tokens (anyone can forge a kid). It returns nil when there is
// nothing newer than used.
func (e *Engine) tokensAfterMiss(ctx context.Context, used *token.Issuer) *token.Issuer {
	if e.staticKey() {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if ks := e.keys.Load(); ks != nil && ks.iss != used {
		return ks.iss
	}
	now := e.now().UnixNano()
	if now-e.lastMiss.Load() < int64(keyMissInterval) {
		return nil
	}
	e.lastMiss.Store(now)
	iss, err := e.loadKeys(ctx)
	if err != nil {
		e.log.Warn("re-reading the signing key after a token with an unknown kid failed", zap.Error(err))
		return nil
	}
	return iss
}
