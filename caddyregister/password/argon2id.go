package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"github.com/caddyregister/caddyregister/caddyregister/password/internal/argon2"
)

// Argon2id hashes with argon2id and encodes in PHC string format:
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>
//
// with salt and hash in unpadded standard base64. Zero fields take the
// defaults, which are the OWASP minimum recommendation (19 MiB, 2 passes,
// 1 lane): strong enough against offline cracking while keeping a login in
// the tens of milliseconds and memory per concurrent hash modest.
type Argon2id struct {
	MemoryKiB uint32 // default 19456 (19 MiB)
	Time      uint32 // default 2
	Threads   uint8  // default 1
	SaltLen   uint32 // default 16
	KeyLen    uint32 // default 32
}

// Defaults for Argon2id; see the type's documentation for the rationale.
const (
	DefaultArgon2MemoryKiB = 19456
	DefaultArgon2Time      = 2
	DefaultArgon2Threads   = 1
	DefaultArgon2SaltLen   = 16
	DefaultArgon2KeyLen    = 32
)

// Limits on argon2id parameters, enforced both when hashing and when reading
// a stored hash. The upper bounds exist so that a hostile or corrupted hash
// cannot turn one login into a memory or CPU exhaustion attack; the lower
// bounds reject parameter sets too weak to be worth storing.
const (
	MaxArgon2MemoryKiB = 1 << 20 // 1 GiB
	MaxArgon2Time      = 64
	MinArgon2SaltLen   = 8
	MaxArgon2SaltLen   = 64
	MinArgon2KeyLen    = 16
	MaxArgon2KeyLen    = 128
)

// DefaultArgon2id returns the default argon2id parameters with every field
// filled in, which is handy for logging the effective configuration.
func DefaultArgon2id() Argon2id {
	return Argon2id{
		MemoryKiB: DefaultArgon2MemoryKiB,
		Time:      DefaultArgon2Time,
		Threads:   DefaultArgon2Threads,
		SaltLen:   DefaultArgon2SaltLen,
		KeyLen:    DefaultArgon2KeyLen,
	}
}

// Name returns "argon2id".
func (a Argon2id) Name() string { return kindArgon2id }

// Check reports the error Hash would give for a's parameters (zero fields
// taking defaults), without hashing: configuration is checked where it is
// loaded, and a hash there would cost its full time and memory.
func (a Argon2id) Check() error { return a.params().check() }

// Hash returns the PHC-encoded argon2id hash of pw with a fresh random salt.
// Zero fields take defaults; out-of-range parameters are an error rather
// than being clamped, because silently hashing with other parameters than
// configured would surprise operators.
func (a Argon2id) Hash(pw []byte) (string, error) {
	p := a.params()
	if err := p.check(); err != nil {
		return "", err
	}
	salt := make([]byte, p.saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("argon2id: reading random salt: %w", err)
	}
	key := idKey(pw, salt, p)
	return argon2Hash{params: p, salt: salt, key: key}.String(), nil
}

func (a Argon2id) withDefaults() Argon2id {
	d := DefaultArgon2id()
	if a.MemoryKiB == 0 {
		a.MemoryKiB = d.MemoryKiB
	}
	if a.Time == 0 {
		a.Time = d.Time
	}
	if a.Threads == 0 {
		a.Threads = d.Threads
	}
	if a.SaltLen == 0 {
		a.SaltLen = d.SaltLen
	}
	if a.KeyLen == 0 {
		a.KeyLen = d.KeyLen
	}
	return a
}

// params returns the effective parameters, defaults applied.
func (a Argon2id) params() argon2Params { return a.withDefaults().rawParams() }

func (a Argon2id) rawParams() argon2Params {
	return argon2Params{
		memory:  a.MemoryKiB,
		time:    a.Time,
		threads: a.Threads,
		saltLen: a.SaltLen,
		keyLen:  a.KeyLen,
	}
}

// argon2Params is comparable so that NeedsRehash can compare a stored hash's
// parameters with the configured ones in one expression.
type argon2Params struct {
	memory  uint32
	time    uint32
	threads uint8
	saltLen uint32
	keyLen  uint32
}

func (p argon2Params) check() error {
	switch {
	case p.threads == 0:
		return fmt.Errorf("argon2id: threads must be at least 1")
	case p.time == 0:
		return fmt.Errorf("argon2id: time must be at least 1")
	case p.time > MaxArgon2Time:
		return fmt.Errorf("argon2id: time %d is above the limit of %d", p.time, MaxArgon2Time)
	// RFC 9106 requires at least 8 KiB per lane; the library would otherwise
	// silently round memory up, making the encoded m= a lie.
	case uint64(p.memory) < 8*uint64(p.threads):
		return fmt.Errorf("argon2id: memory %d KiB is below the minimum of 8 KiB per thread (%d KiB for %d threads)", p.memory, 8*uint64(p.threads), p.threads)
	case p.memory > MaxArgon2MemoryKiB:
		return fmt.Errorf("argon2id: memory %d KiB is above the limit of %d KiB", p.memory, MaxArgon2MemoryKiB)
	case p.saltLen < MinArgon2SaltLen || p.saltLen > MaxArgon2SaltLen:
		return fmt.Errorf("argon2id: salt length %d bytes is outside %d..%d", p.saltLen, MinArgon2SaltLen, MaxArgon2SaltLen)
	case p.keyLen < MinArgon2KeyLen || p.keyLen > MaxArgon2KeyLen:
		return fmt.Errorf("argon2id: key length %d bytes is outside %d..%d", p.keyLen, MinArgon2KeyLen, MaxArgon2KeyLen)
	}
	return nil
}

// argon2Hash is a decoded PHC string.
type argon2Hash struct {
	params argon2Params
	salt   []byte
	key    []byte
}

// b64 is the PHC encoding. Strict rejects non-zero trailing bits, so every
// hash has exactly one accepted spelling and bit-flips in the last character
// are reported as malformed instead of being ignored.
var b64 = base64.RawStdEncoding.Strict()

func (h argon2Hash) String() string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, h.params.memory, h.params.time, h.params.threads,
		b64.EncodeToString(h.salt), b64.EncodeToString(h.key))
}

func (h argon2Hash) verify(pw []byte) bool {
	p := h.params
	got := idKey(pw, h.salt, p)
	return subtle.ConstantTimeCompare(got, h.key) == 1
}

// parseArgon2id decodes and bounds-checks a PHC argon2id string. It accepts
// only the canonical layout this package writes (v=19, parameters in m,t,p
// order, no keyid/data); anything else is rejected rather than guessed at.
func parseArgon2id(encoded string) (argon2Hash, error) {
	var h argon2Hash
	malformed := func(format string, args ...any) error {
		return fmt.Errorf("argon2id hash: %s: %w", fmt.Sprintf(format, args...), ErrMalformedHash)
	}
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, hash
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != kindArgon2id {
		return h, malformed("want 5 $-separated fields ($argon2id$v=19$m=,t=,p=$salt$hash)")
	}
	v, ok := strings.CutPrefix(parts[2], "v=")
	if !ok {
		return h, malformed("missing version")
	}
	if n, err := parsePHCUint(v, 1<<32-1); err != nil || n != argon2.Version {
		return h, malformed("unsupported version %q (want %d)", v, argon2.Version)
	}
	fields := strings.Split(parts[3], ",")
	if len(fields) != 3 {
		return h, malformed("want parameters m=,t=,p=")
	}
	var vals [3]uint64
	for i, name := range [3]string{"m", "t", "p"} {
		s, ok := strings.CutPrefix(fields[i], name+"=")
		if !ok {
			return h, malformed("parameter %d: want %s=", i+1, name)
		}
		n, err := parsePHCUint(s, 1<<32-1)
		if err != nil {
			return h, malformed("parameter %s: %v", name, err)
		}
		vals[i] = n
	}
	if vals[2] > 255 {
		return h, malformed("parallelism %d is above the limit of 255", vals[2])
	}
	var err error
	if h.salt, err = b64.DecodeString(parts[4]); err != nil {
		return h, malformed("salt is not valid unpadded base64")
	}
	if h.key, err = b64.DecodeString(parts[5]); err != nil {
		return h, malformed("hash is not valid unpadded base64")
	}
	h.params = argon2Params{
		memory:  uint32(vals[0]),
		time:    uint32(vals[1]),
		threads: uint8(vals[2]),
		saltLen: uint32(len(h.salt)),
		keyLen:  uint32(len(h.key)),
	}
	if err := h.params.check(); err != nil {
		return h, fmt.Errorf("%w: %w", err, ErrMalformedHash)
	}
	return h, nil
}

// parsePHCUint parses a PHC decimal: digits only, no sign, no leading zeros,
// so each value has a single spelling.
func parsePHCUint(s string, max uint64) (uint64, error) {
	if s == "" || (len(s) > 1 && s[0] == '0') || len(s) > 10 {
		return 0, fmt.Errorf("%q is not a canonical decimal", s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%q is not a canonical decimal", s)
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > max {
		return 0, fmt.Errorf("%q is out of range", s)
	}
	return n, nil
}
