package engine

import (
	"context"
	"fmt"

	"go.uber.org/zap"

	"github.com/caddyregister/caddyregister/caddyregister/secretbox"
	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// sealedSecret is a store secret kept sealed by the key-encryption key when
// one is configured (box), in clear otherwise. The signing key set and the
// outbox key are such secrets; every instance on one store must hold the
// same box to read them.
type sealedSecret struct {
	st   store.Store
	box  *secretbox.Box // nil: stored in clear
	name string         // the store secret's name
	what string         // names it in errors and logs ("signing key")
	// sealedOnly refuses a clear value even when box is set, instead of
	// sealing it in place: for a record only ever written sealed, where a
	// clear one can only have been planted.
	sealedOnly bool
}

func (s sealedSecret) purpose() string { return SecretPurpose(s.name) }

// SecretPurpose is the secretbox purpose a store secret named name is
// sealed for, so a move between stores can open and seal it again.
func SecretPurpose(name string) string { return "secret:" + name }

// encode returns plain as stored: sealed when there is a box.
func (s sealedSecret) encode(plain []byte) ([]byte, error) {
	if s.box == nil {
		return plain, nil
	}
	return s.box.Seal(s.purpose(), plain)
}

// decode returns the plaintext of a stored value. An error wraps
// ErrKeyUnusable and names key_encryption_key: the caller must not replace
// the stored value then, or every instance that holds the right
// key-encryption key would lose it.
func (s sealedSecret) decode(raw []byte) ([]byte, error) {
	if !secretbox.IsSealed(raw) {
		if s.sealedOnly {
			return nil, fmt.Errorf("%w: the stored %s is not sealed with key_encryption_key", ErrKeyUnusable, s.what)
		}
		return raw, nil
	}
	if s.box == nil {
		return nil, fmt.Errorf("%w: the stored %s is encrypted and no key_encryption_key is configured", ErrKeyUnusable, s.what)
	}
	plain, err := s.box.Open(s.purpose(), raw)
	if err != nil {
		return nil, fmt.Errorf("%w: key_encryption_key does not decrypt the stored %s (is it the key the other instances use?): %w", ErrKeyUnusable, s.what, err)
	}
	return plain, nil
}

// load returns the stored value and its plaintext, storing create()'s
// plaintext first when there is none (LoadOrCreateSecret: concurrent
// instances all get the one winner). A value found in clear while a box is
// set is stored sealed (compare-and-set, so a concurrent change is never
// overwritten; a lost race reads again). Store failures wrap ErrNotReady,
// unusable values ErrKeyUnusable.
func (s sealedSecret) load(ctx context.Context, create func() ([]byte, error), log *zap.Logger) (raw, plain []byte, err error) {
	for range 5 {
		fresh, err := create()
		if err != nil {
			return nil, nil, err
		}
		candidate, err := s.encode(fresh)
		if err != nil {
			return nil, nil, err
		}
		raw, err := s.st.LoadOrCreateSecret(ctx, s.name, candidate)
		if err != nil {
			return nil, nil, fmt.Errorf("load %s: %w: %w", s.what, ErrNotReady, err)
		}
		plain, err := s.decode(raw)
		if err != nil {
			return nil, nil, err
		}
		if s.box == nil || secretbox.IsSealed(raw) {
			return raw, plain, nil
		}
		sealed, err := s.encode(plain)
		if err != nil {
			return nil, nil, err
		}
		ok, err := s.st.SwapSecret(ctx, s.name, raw, sealed)
		if err != nil {
			return nil, nil, fmt.Errorf("encrypt stored %s: %w: %w", s.what, ErrNotReady, err)
		}
		if ok {
			log.Info(s.what + " found in clear in the store; stored it encrypted with key_encryption_key")
			return sealed, plain, nil
		}
		// Another instance changed it meanwhile: read again.
	}
	return nil, nil, fmt.Errorf("load %s: %w: the stored value kept changing", s.what, ErrNotReady)
}

// swap replaces the stored value old with plain, sealed as configured,
// and reports whether it did (false: it changed meanwhile; read again).
func (s sealedSecret) swap(ctx context.Context, old, plain []byte) (bool, error) {
	value, err := s.encode(plain)
	if err != nil {
		return false, err
	}
	ok, err := s.st.SwapSecret(ctx, s.name, old, value)
	if err != nil {
		return false, fmt.Errorf("store %s: %w: %w", s.what, ErrNotReady, err)
	}
	return ok, nil
}
