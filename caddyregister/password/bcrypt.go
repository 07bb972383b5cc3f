package password

import (
	"errors"
	"fmt"
	"strconv"

	"golang.org/x/crypto/bcrypt"
)

// Bcrypt hashes with bcrypt. It exists for compatibility with hashes made by
// `caddy hash-password` and other bcrypt-based systems; prefer [Argon2id]
// for new deployments because bcrypt ignores everything past 72 bytes and is
// not memory-hard.
type Bcrypt struct {
	// Cost is the log2 work factor, 4..31. Zero means bcrypt.DefaultCost (10).
	Cost int
}

const (
	defaultBcryptCost = bcrypt.DefaultCost
	minBcryptCost     = bcrypt.MinCost
	maxBcryptCost     = bcrypt.MaxCost
	// MaxBcryptPasswordLen is the longest password bcrypt can hash; longer
	// input would be silently truncated by the algorithm.
	MaxBcryptPasswordLen = 72
)

// ErrPasswordTooLong is wrapped by [Bcrypt.Hash] for passwords longer than
// [MaxBcryptPasswordLen] bytes, so that handlers can report it as a user
// error instead of an internal failure.
var ErrPasswordTooLong = errors.New("password is too long for bcrypt")

// MaxPasswordBytes returns MaxBcryptPasswordLen (see ByteLimited).
func (b Bcrypt) MaxPasswordBytes() int { return MaxBcryptPasswordLen }

// Name returns "bcrypt".
func (b Bcrypt) Name() string { return kindBcrypt }

// Check reports the error Hash would give for b's cost (zero taking the
// default), without hashing.
func (b Bcrypt) Check() error { return b.withDefaults().check() }

// Hash returns the bcrypt hash of pw ($2a$ prefix). Passwords longer than 72
// bytes are refused rather than truncated, because truncation would let any
// password sharing the first 72 bytes log in.
func (b Bcrypt) Hash(pw []byte) (string, error) {
	b = b.withDefaults()
	if err := b.check(); err != nil {
		return "", err
	}
	if len(pw) > MaxBcryptPasswordLen {
		return "", fmt.Errorf("bcrypt: password is %d bytes, at most %d are allowed: %w", len(pw), MaxBcryptPasswordLen, ErrPasswordTooLong)
	}
	out, err := bcrypt.GenerateFromPassword(pw, b.Cost)
	if err != nil {
		return "", fmt.Errorf("bcrypt: hashing: %w", err)
	}
	return string(out), nil
}

func (b Bcrypt) withDefaults() Bcrypt {
	if b.Cost == 0 {
		b.Cost = defaultBcryptCost
	}
	return b
}

func (b Bcrypt) check() error {
	if b.Cost < minBcryptCost || b.Cost > maxBcryptCost {
		return fmt.Errorf("bcrypt: cost %d is outside %d..%d", b.Cost, minBcryptCost, maxBcryptCost)
	}
	return nil
}

// validateBcrypt checks the modular crypt layout $2x$NN$<53 chars> itself,
// because the library only checks the prefix and cost and would accept a
// truncated or garbled salt/hash section.
func validateBcrypt(encoded string) error {
	malformed := func(format string, args ...any) error {
		return fmt.Errorf("bcrypt hash: %s: %w", fmt.Sprintf(format, args...), ErrMalformedHash)
	}
	// $2a$ + 2-digit cost + $ + 22 salt chars + 31 hash chars
	const encodedLen = 60
	if len(encoded) != encodedLen {
		return malformed("want %d characters, got %d", encodedLen, len(encoded))
	}
	if encoded[6] != '$' || encoded[4] < '0' || encoded[4] > '9' || encoded[5] < '0' || encoded[5] > '9' {
		return malformed("want $2a$NN$ prefix with a two-digit cost")
	}
	cost, _ := strconv.Atoi(encoded[4:6])
	if cost < minBcryptCost || cost > maxBcryptCost {
		return malformed("cost %d is outside %d..%d", cost, minBcryptCost, maxBcryptCost)
	}
	for i := 7; i < encodedLen; i++ {
		if !isBcryptB64(encoded[i]) {
			return malformed("invalid character at position %d", i)
		}
	}
	return nil
}

// isBcryptB64 reports membership in bcrypt's base64 alphabet (./A-Za-z0-9).
func isBcryptB64(c byte) bool {
	return c == '.' || c == '/' ||
		(c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
}

func verifyBcrypt(encoded string, pw []byte) (bool, error) {
	// bcrypt would compare only the first 72 bytes, so a longer password
	// could match a hash of its prefix. Hash refuses such passwords, so no
	// legitimate hash can correspond to one; treat it as a mismatch.
	if len(pw) > MaxBcryptPasswordLen {
		return false, nil
	}
	err := bcrypt.CompareHashAndPassword([]byte(encoded), pw)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, bcrypt.ErrMismatchedHashAndPassword):
		return false, nil
	default:
		return false, fmt.Errorf("bcrypt hash: %w: %w", err, ErrMalformedHash)
	}
}

var _ ByteLimited = Bcrypt{}
