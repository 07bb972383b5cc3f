// Package password hashes, verifies and vets user passwords for the
// registration engine.
//
// Hashes are stored as self-describing strings (argon2id in PHC format, or
// bcrypt's modular crypt format) so that the parameters can change over time
// without invalidating existing accounts: [Verify] reads the parameters from
// the stored hash, and [NeedsRehash] tells the caller when to upgrade one at
// the next successful login.
//
// Hashing is deliberately expensive, so production callers should go through
// a [Pool], which bounds how many hashes run at once and sheds load instead
// of letting a flood of sign-ups or logins exhaust memory.
package password

import (
	"crypto/rand"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
)

// Hasher produces encoded hashes.
//
// Implementations must be safe for concurrent use. The encoded form must be
// one that [Verify] understands, otherwise stored passwords could never be
// checked.
type Hasher interface {
	// Hash returns the encoded hash of password, including a fresh random
	// salt and every parameter needed to verify it later.
	Hash(password []byte) (string, error)
	// Name is "argon2id" or "bcrypt" (for metrics/logs).
	Name() string
}

// Kind names as returned by Hasher.Name and used as metric labels.
const (
	kindArgon2id = "argon2id"
	kindBcrypt   = "bcrypt"
	kindUnknown  = "unknown"
)

// ErrUnsupportedHash is wrapped by the errors of [Verify] and [ParseHash]
// when the encoded string is not of a kind this package can check, so that
// callers can tell "foreign hash format" apart from "corrupt hash".
var ErrUnsupportedHash = errors.New("unsupported password hash kind")

// ErrMalformedHash is wrapped by the errors of [Verify] and [ParseHash] when
// the encoded string claims a supported kind but cannot be decoded or carries
// parameters outside the accepted limits.
var ErrMalformedHash = errors.New("malformed password hash")

// Verify checks password against an encoded hash of either kind ($argon2id$
// PHC, or $2a$/$2b$/$2y$ bcrypt).
//
// It returns (false, nil) on a mismatch and an error only when the hash is
// malformed or of an unsupported kind, so that callers can treat errors as
// data corruption rather than as failed logins. The comparison is constant
// time. Argon2id parameters are bounded before any work is done, so a
// hostile stored hash cannot make a single login allocate gigabytes or spin
// for minutes.
func Verify(encoded string, password []byte) (bool, error) {
	switch kindOf(encoded) {
	case kindArgon2id:
		h, err := parseArgon2id(encoded)
		if err != nil {
			return false, err
		}
		return h.verify(password), nil
	case kindBcrypt:
		if err := validateBcrypt(encoded); err != nil {
			return false, err
		}
		return verifyBcrypt(encoded, password)
	default:
		return false, unsupported(encoded)
	}
}

// ParseHash validates an encoded hash without a password, so that operator
// configured hashes (for example admin accounts) fail at config load rather
// than at the first login.
func ParseHash(encoded string) error {
	switch kindOf(encoded) {
	case kindArgon2id:
		_, err := parseArgon2id(encoded)
		return err
	case kindBcrypt:
		return validateBcrypt(encoded)
	default:
		return unsupported(encoded)
	}
}

// NeedsRehash reports whether encoded was produced with a different
// algorithm or different parameters than h would use now. Callers rehash the
// password after a successful login when it returns true, which is the only
// moment the plaintext is available to migrate old accounts to new settings.
// A malformed hash also needs rehashing.
func NeedsRehash(encoded string, h Hasher) bool {
	switch hh := deref(h).(type) {
	case Argon2id:
		got, err := parseArgon2id(encoded)
		if err != nil {
			return true
		}
		return got.params != hh.params()
	case Bcrypt:
		if validateBcrypt(encoded) != nil {
			return true
		}
		cost, err := strconv.Atoi(encoded[4:6])
		return err != nil || cost != hh.withDefaults().Cost
	default:
		return kindOf(encoded) != h.Name()
	}
}

// kindOf classifies an encoded hash by its prefix only; full validation is
// left to the kind-specific parser.
func kindOf(encoded string) string {
	switch {
	case strings.HasPrefix(encoded, "$argon2id$"):
		return kindArgon2id
	case strings.HasPrefix(encoded, "$2a$"),
		strings.HasPrefix(encoded, "$2b$"),
		strings.HasPrefix(encoded, "$2y$"):
		return kindBcrypt
	default:
		return kindUnknown
	}
}

// unsupported builds the error for an unknown hash kind. Only the scheme
// identifier is quoted: the rest of the string may be a secret (or a
// plaintext password pasted into the wrong config field).
func unsupported(encoded string) error {
	if encoded == "" {
		return fmt.Errorf("empty password hash: %w", ErrUnsupportedHash)
	}
	scheme := "(none)"
	if strings.HasPrefix(encoded, "$") {
		if i := strings.IndexByte(encoded[1:], '$'); i >= 0 && i <= 16 {
			scheme = encoded[1 : i+1]
		}
	}
	return fmt.Errorf("password hash scheme %q: %w (want argon2id or bcrypt $2a$/$2b$/$2y$)", scheme, ErrUnsupportedHash)
}

// deref lets callers pass *Argon2id or *Bcrypt wherever the value types are
// recognised, so both spellings behave the same.
func deref(h Hasher) Hasher {
	switch hh := h.(type) {
	case *Argon2id:
		if hh != nil {
			return *hh
		}
	case *Bcrypt:
		if hh != nil {
			return *hh
		}
	}
	return h
}

// maxDummyEntries caps the dummy-hash cache so that a misbehaving caller
// creating hashers with ever-changing parameters cannot grow it unbounded.
const maxDummyEntries = 64

var dummyCache struct {
	mu      sync.Mutex
	entries map[any]*dummyEntry
}

type dummyEntry struct {
	once    sync.Once
	encoded string
	err     error
}

// DummyVerify spends about the same time as a Verify against a hash produced
// by h. Login handlers call it when the user does not exist, so that response
// time does not reveal which accounts are registered.
//
// The dummy hash (of a random password) is computed lazily on first use and
// cached per parameter set, so only the first call per configuration pays for
// an extra hash.
func DummyVerify(h Hasher, password []byte) {
	encoded, err := dummyHash(h)
	if err != nil {
		// Nothing sensible to burn time against; a Hasher that cannot hash
		// will fail real registrations loudly anyway.
		return
	}
	_, _ = Verify(encoded, password)
}

func dummyHash(h Hasher) (string, error) {
	key := dummyKey(h)
	if key == nil {
		return newDummyHash(h)
	}
	dummyCache.mu.Lock()
	if dummyCache.entries == nil {
		dummyCache.entries = make(map[any]*dummyEntry)
	}
	e, ok := dummyCache.entries[key]
	if !ok {
		if len(dummyCache.entries) >= maxDummyEntries {
			dummyCache.mu.Unlock()
			return newDummyHash(h)
		}
		e = &dummyEntry{}
		dummyCache.entries[key] = e
	}
	dummyCache.mu.Unlock()
	// Hash outside the lock so that different parameter sets do not wait on
	// each other; sync.Once makes concurrent first callers share one hash.
	e.once.Do(func() { e.encoded, e.err = newDummyHash(h) })
	return e.encoded, e.err
}

// dummyKey identifies a parameter set. Defaults are applied first so that
// Argon2id{} and DefaultArgon2id() share an entry. It returns nil when h
// cannot be used as a map key.
func dummyKey(h Hasher) any {
	switch hh := deref(h).(type) {
	case Argon2id:
		return hh.withDefaults()
	case Bcrypt:
		return hh.withDefaults()
	}
	if h == nil || !reflect.ValueOf(h).Comparable() {
		return nil
	}
	return h
}

func newDummyHash(h Hasher) (string, error) {
	if h == nil {
		return "", errors.New("dummy hash: nil hasher")
	}
	pw := make([]byte, 18)
	if _, err := rand.Read(pw); err != nil {
		return "", fmt.Errorf("dummy hash: reading random password: %w", err)
	}
	encoded, err := h.Hash(pw)
	if err != nil {
		return "", fmt.Errorf("dummy hash with %s: %w", h.Name(), err)
	}
	return encoded, nil
}

func parseConfigUint(s, what string, max uint64) (uint64, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("password hasher: %s %q is not a non-negative whole number", what, s)
	}
	if n > max {
		return 0, fmt.Errorf("password hasher: %s %d is above the limit of %d", what, n, max)
	}
	return n, nil
}
