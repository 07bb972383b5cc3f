package password

import (
	"context"
	"errors"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// fastArgon is cheap enough for the race detector on a small machine; the
// algorithm's correctness does not depend on the cost parameters.
var fastArgon = Argon2id{MemoryKiB: 64, Time: 1, Threads: 1}

func mustHash(t *testing.T, h Hasher, pw string) string {
	t.Helper()
	enc, err := h.Hash([]byte(pw))
	if err != nil {
		t.Fatalf("%s.Hash: %v", h.Name(), err)
	}
	return enc
}

func TestHashVerifyRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		h    Hasher
		pw   string
		kind string
	}{
		{"argon2id small", fastArgon, "correct horse battery staple", "argon2id"},
		{"argon2id two lanes", Argon2id{MemoryKiB: 64, Time: 1, Threads: 2}, "hunter2hunter2", "argon2id"},
		{"argon2id custom lengths", Argon2id{MemoryKiB: 32, Time: 2, Threads: 1, SaltLen: 8, KeyLen: 64}, "pässwörd", "argon2id"},
		{"argon2id pointer", &Argon2id{MemoryKiB: 64, Time: 1}, "pointer receiver", "argon2id"},
		{"argon2id empty password", fastArgon, "", "argon2id"},
		{"bcrypt", Bcrypt{Cost: 4}, "correct horse battery staple", "bcrypt"},
		{"bcrypt unicode", Bcrypt{Cost: 4}, "日本語のパスワード", "bcrypt"},
		{"bcrypt 72 bytes", Bcrypt{Cost: 4}, strings.Repeat("a", 72), "bcrypt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.h.Name(); got != tt.kind {
				t.Errorf("Name() = %q, want %q", got, tt.kind)
			}
			enc := mustHash(t, tt.h, tt.pw)
			if err := ParseHash(enc); err != nil {
				t.Errorf("ParseHash(%q): %v", enc, err)
			}
			ok, err := Verify(enc, []byte(tt.pw))
			if err != nil || !ok {
				t.Errorf("Verify(right password) = %v, %v; want true, nil", ok, err)
			}
			ok, err = Verify(enc, []byte(tt.pw+"x"))
			if err != nil || ok {
				t.Errorf("Verify(wrong password) = %v, %v; want false, nil", ok, err)
			}
			if enc2 := mustHash(t, tt.h, tt.pw); enc2 == enc {
				t.Error("two hashes of the same password are identical; salt is not random")
			}
			if NeedsRehash(enc, tt.h) {
				t.Error("NeedsRehash with the producing hasher = true")
			}
		})
	}
}

func TestArgon2idPHCShape(t *testing.T) {
	enc := mustHash(t, fastArgon, "pw")
	re := regexp.MustCompile(`^\$argon2id\$v=19\$m=64,t=1,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)
	if !re.MatchString(enc) {
		t.Fatalf("hash %q does not match %s", enc, re)
	}
	h, err := parseArgon2id(enc)
	if err != nil {
		t.Fatal(err)
	}
	want := argon2Params{memory: 64, time: 1, threads: 1, saltLen: 16, keyLen: 32}
	if h.params != want {
		t.Errorf("parsed params = %+v, want %+v", h.params, want)
	}
	if h.String() != enc {
		t.Errorf("re-encoding = %q, want %q", h.String(), enc)
	}
}

// TestArgon2idDefaults is one of the few tests paying for default params.
func TestArgon2idDefaults(t *testing.T) {
	d := DefaultArgon2id()
	if d != (Argon2id{MemoryKiB: 19456, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}) {
		t.Fatalf("DefaultArgon2id() = %+v", d)
	}
	enc := mustHash(t, Argon2id{}, "pw")
	if !strings.HasPrefix(enc, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("zero Argon2id hash = %q, want default parameters", enc)
	}
	h, err := parseArgon2id(enc)
	if err != nil {
		t.Fatal(err)
	}
	if h.params != d.params() {
		t.Errorf("parsed params = %+v, want %+v", h.params, d.params())
	}
	if ok, err := Verify(enc, []byte("pw")); !ok || err != nil {
		t.Errorf("Verify = %v, %v", ok, err)
	}
	if NeedsRehash(enc, d) {
		t.Error("NeedsRehash(zero-value hash, DefaultArgon2id()) = true")
	}
}

func TestArgon2idHashBadParams(t *testing.T) {
	tests := []struct {
		name string
		a    Argon2id
		want string
	}{
		{"memory too high", Argon2id{MemoryKiB: MaxArgon2MemoryKiB + 1}, "memory"},
		{"memory below 8 per lane", Argon2id{MemoryKiB: 8, Threads: 2}, "memory"},
		{"time too high", Argon2id{MemoryKiB: 64, Time: 65}, "time"},
		{"salt too short", Argon2id{MemoryKiB: 64, SaltLen: 4}, "salt"},
		{"key too long", Argon2id{MemoryKiB: 64, KeyLen: 129}, "key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.a.Hash([]byte("pw"))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Hash error = %v, want mention of %q", err, tt.want)
			}
		})
	}
}

func TestVerifyTampered(t *testing.T) {
	enc := mustHash(t, fastArgon, "pw")
	parts := strings.Split(enc, "$")
	flip := func(s string) string {
		// Swap the first character for another base64 digit so the string
		// stays decodable and only the content changes.
		c := byte('A')
		if s[0] == 'A' {
			c = 'B'
		}
		return string(c) + s[1:]
	}
	tests := []struct {
		name string
		enc  string
	}{
		{"hash flipped", strings.Join(append(parts[:5:5], flip(parts[5])), "$")},
		{"salt flipped", strings.Join([]string{"", parts[1], parts[2], parts[3], flip(parts[4]), parts[5]}, "$")},
		{"memory changed", strings.Replace(enc, "m=64,", "m=72,", 1)},
		{"time changed", strings.Replace(enc, ",t=1,", ",t=2,", 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := Verify(tt.enc, []byte("pw"))
			if ok || err != nil {
				t.Errorf("Verify(%q) = %v, %v; want false, nil", tt.enc, ok, err)
			}
		})
	}
}

func TestVerifyMalformed(t *testing.T) {
	good := mustHash(t, fastArgon, "pw")
	parts := strings.Split(good, "$")
	salt, key := parts[4], parts[5]
	phc := func(v, params string) string {
		return "$argon2id$" + v + "$" + params + "$" + salt + "$" + key
	}
	bc, err := bcrypt.GenerateFromPassword([]byte("pw"), 4)
	if err != nil {
		t.Fatal(err)
	}
	bcs := string(bc)

	tests := []struct {
		name string
		enc  string
		want error
	}{
		// Hostile parameters: must fail before any work is done.
		{"memory above 1 GiB", phc("v=19", "m=1048577,t=1,p=1"), ErrMalformedHash},
		{"memory max uint32", phc("v=19", "m=4294967295,t=1,p=1"), ErrMalformedHash},
		{"memory overflows uint32", phc("v=19", "m=4294967296,t=1,p=1"), ErrMalformedHash},
		{"time above 64", phc("v=19", "m=64,t=65,p=1"), ErrMalformedHash},
		{"time zero", phc("v=19", "m=64,t=0,p=1"), ErrMalformedHash},
		{"parallelism zero", phc("v=19", "m=64,t=1,p=0"), ErrMalformedHash},
		{"parallelism above 255", phc("v=19", "m=4096,t=1,p=256"), ErrMalformedHash},
		{"memory below 8 per lane", phc("v=19", "m=8,t=1,p=2"), ErrMalformedHash},
		// Layout.
		{"old version", phc("v=16", "m=64,t=1,p=1"), ErrMalformedHash},
		{"missing version", "$argon2id$m=64,t=1,p=1$" + salt + "$" + key, ErrMalformedHash},
		{"leading zero", phc("v=19", "m=064,t=1,p=1"), ErrMalformedHash},
		{"signed number", phc("v=19", "m=+64,t=1,p=1"), ErrMalformedHash},
		{"parameter order", phc("v=19", "t=1,m=64,p=1"), ErrMalformedHash},
		{"extra parameter", phc("v=19", "m=64,t=1,p=1,keyid=abc"), ErrMalformedHash},
		{"missing parameter", phc("v=19", "m=64,t=1"), ErrMalformedHash},
		{"trailing field", good + "$", ErrMalformedHash},
		{"missing hash", "$argon2id$v=19$m=64,t=1,p=1$" + salt, ErrMalformedHash},
		{"salt not base64", phc("v=19", "m=64,t=1,p=1")[:len("$argon2id$v=19$m=64,t=1,p=1$")] + "!!!!!!!!!!!!" + "$" + key, ErrMalformedHash},
		{"padded base64", good + "=", ErrMalformedHash},
		{"salt too short", "$argon2id$v=19$m=64,t=1,p=1$AAAAAA$" + key, ErrMalformedHash},
		{"key too short", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$AAAAAAAAAA", ErrMalformedHash},
		{"bcrypt cost too low", bcs[:4] + "03" + bcs[6:], ErrMalformedHash},
		{"bcrypt cost too high", bcs[:4] + "32" + bcs[6:], ErrMalformedHash},
		{"bcrypt truncated", bcs[:59], ErrMalformedHash},
		{"bcrypt bad character", bcs[:40] + "!" + bcs[41:], ErrMalformedHash},
		{"bcrypt cost not digits", bcs[:4] + "a4" + bcs[6:], ErrMalformedHash},
		// Unsupported kinds.
		{"empty", "", ErrUnsupportedHash},
		{"plaintext", "hunter2", ErrUnsupportedHash},
		{"argon2i", strings.Replace(good, "argon2id", "argon2i", 1), ErrUnsupportedHash},
		{"argon2d", strings.Replace(good, "argon2id", "argon2d", 1), ErrUnsupportedHash},
		{"scrypt", "$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E", ErrUnsupportedHash},
		{"bcrypt 2x", "$2x$" + bcs[4:], ErrUnsupportedHash},
		{"bcrypt without minor", "$2$" + bcs[4:], ErrUnsupportedHash},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			ok, err := Verify(tt.enc, []byte("pw"))
			if ok || !errors.Is(err, tt.want) {
				t.Errorf("Verify(%q) = %v, %v; want false, %v", tt.enc, ok, err, tt.want)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("Verify of a rejected hash took %v; parameters must be checked before hashing", d)
			}
			if err := ParseHash(tt.enc); !errors.Is(err, tt.want) {
				t.Errorf("ParseHash(%q) = %v, want %v", tt.enc, err, tt.want)
			}
			if err != nil && err.Error() != strings.ToLower(err.Error()[:1])+err.Error()[1:] {
				t.Errorf("error %q starts with a capital", err)
			}
		})
	}
}

func TestUnsupportedErrorDoesNotLeakSecret(t *testing.T) {
	err := ParseHash("$secretscheme$my-plaintext-password")
	if err == nil || strings.Contains(err.Error(), "plaintext") {
		t.Fatalf("ParseHash error = %v; must not echo the hash body", err)
	}
	err = ParseHash("hunter2")
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("ParseHash error = %v; must not echo a plaintext", err)
	}
}

func TestBcrypt(t *testing.T) {
	t.Run("too long", func(t *testing.T) {
		_, err := Bcrypt{Cost: 4}.Hash([]byte(strings.Repeat("a", 73)))
		if !errors.Is(err, ErrPasswordTooLong) {
			t.Fatalf("Hash(73 bytes) error = %v, want ErrPasswordTooLong", err)
		}
		if !strings.Contains(err.Error(), "72") {
			t.Errorf("error %q should state the 72-byte limit", err)
		}
	})
	t.Run("long password does not match its prefix", func(t *testing.T) {
		prefix := strings.Repeat("a", 72)
		enc := mustHash(t, Bcrypt{Cost: 4}, prefix)
		ok, err := Verify(enc, []byte(prefix+"extra"))
		if ok || err != nil {
			t.Errorf("Verify(prefix+extra) = %v, %v; want false, nil", ok, err)
		}
	})
	t.Run("bad cost", func(t *testing.T) {
		for _, c := range []int{-1, 3, 32} {
			if _, err := (Bcrypt{Cost: c}).Hash([]byte("pw")); err == nil {
				t.Errorf("Bcrypt{Cost: %d}.Hash succeeded", c)
			}
		}
	})
	t.Run("default cost", func(t *testing.T) {
		enc := mustHash(t, Bcrypt{}, "pw")
		if c, err := bcrypt.Cost([]byte(enc)); err != nil || c != bcrypt.DefaultCost {
			t.Errorf("bcrypt.Cost = %d, %v; want %d", c, err, bcrypt.DefaultCost)
		}
	})
}

// TestVerifyCaddyHashPassword checks hashes in the format `caddy
// hash-password` prints ($2a$14$... by default; cost 4 here for speed) and
// the other bcrypt minor versions that the same algorithm produces.
func TestVerifyCaddyHashPassword(t *testing.T) {
	raw, err := bcrypt.GenerateFromPassword([]byte("s3cret!"), 4)
	if err != nil {
		t.Fatal(err)
	}
	caddy := string(raw)
	if !strings.HasPrefix(caddy, "$2a$04$") {
		t.Fatalf("unexpected bcrypt prefix in %q", caddy)
	}
	for _, prefix := range []string{"$2a$", "$2b$", "$2y$"} {
		t.Run(prefix, func(t *testing.T) {
			enc := prefix + caddy[4:]
			if err := ParseHash(enc); err != nil {
				t.Fatalf("ParseHash: %v", err)
			}
			if ok, err := Verify(enc, []byte("s3cret!")); !ok || err != nil {
				t.Errorf("Verify(right) = %v, %v", ok, err)
			}
			if ok, err := Verify(enc, []byte("s3cret?")); ok || err != nil {
				t.Errorf("Verify(wrong) = %v, %v", ok, err)
			}
		})
	}
}

func TestNeedsRehash(t *testing.T) {
	argon := mustHash(t, fastArgon, "pw")
	bc := mustHash(t, Bcrypt{Cost: 4}, "pw")
	tests := []struct {
		name string
		enc  string
		h    Hasher
		want bool
	}{
		{"same argon2id", argon, fastArgon, false},
		{"stronger argon2id", argon, Argon2id{MemoryKiB: 128, Time: 1, Threads: 1}, true},
		{"longer key", argon, Argon2id{MemoryKiB: 64, Time: 1, Threads: 1, KeyLen: 64}, true},
		{"bcrypt to argon2id", bc, fastArgon, true},
		{"same bcrypt", bc, Bcrypt{Cost: 4}, false},
		{"higher bcrypt cost", bc, Bcrypt{Cost: 5}, true},
		{"argon2id to bcrypt", argon, Bcrypt{Cost: 4}, true},
		{"malformed", "garbage", fastArgon, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NeedsRehash(tt.enc, tt.h); got != tt.want {
				t.Errorf("NeedsRehash = %v, want %v", got, tt.want)
			}
		})
	}
}

type failingHasher struct{}

func (failingHasher) Hash([]byte) (string, error) { return "", errors.New("boom") }
func (failingHasher) Name() string                { return "failing" }

func TestDummyVerify(t *testing.T) {
	h := Argon2id{MemoryKiB: 72, Time: 1, Threads: 1}
	DummyVerify(h, []byte("whatever"))
	DummyVerify(&h, []byte("whatever"))
	DummyVerify(Bcrypt{Cost: 4}, []byte("whatever"))
	DummyVerify(failingHasher{}, []byte("whatever")) // must not panic

	dummyCache.mu.Lock()
	e := dummyCache.entries[h.withDefaults()]
	dummyCache.mu.Unlock()
	if e == nil || e.err != nil {
		t.Fatalf("no cached dummy hash for %+v (entry %+v)", h, e)
	}
	first := e.encoded
	if NeedsRehash(first, h) {
		t.Errorf("dummy hash %q was not made with the hasher's parameters", first)
	}
	DummyVerify(h, []byte("again"))
	if e.encoded != first {
		t.Error("dummy hash was recomputed instead of cached")
	}
}

func TestPolicyCheck(t *testing.T) {
	tests := []struct {
		name      string
		p         Policy
		pw        string
		ids       []string
		wantRule  string
		wantLimit int
		wantMsg   string
	}{
		{"zero policy accepts anything", Policy{}, "", nil, "", 0, ""},
		{"min length", Policy{MinLength: 8}, "short", nil, RuleMinLength, 8, "password must be at least 8 characters long"},
		{"min length singular", Policy{MinLength: 1}, "", nil, RuleMinLength, 1, "password must be at least 1 character long"},
		{"min length ok", Policy{MinLength: 5}, "exact", nil, "", 0, ""},
		{"max length", Policy{MaxLength: 4}, "toolong", nil, RuleMaxLength, 4, "password must be at most 4 characters long"},
		{"no spaces", Policy{NoSpaces: true}, "has space", nil, RuleNoSpaces, 0, "password must not contain spaces"},
		{"no spaces tab", Policy{NoSpaces: true}, "tab\there", nil, RuleNoSpaces, 0, "password must not contain spaces"},
		{"no spaces nbsp", Policy{NoSpaces: true}, "nb\u00a0sp", nil, RuleNoSpaces, 0, "password must not contain spaces"},
		{"lowercase", Policy{MinLower: 2}, "ABCDEFa1", nil, RuleMinLower, 2, "password must contain at least 2 lowercase letters"},
		{"capital", Policy{MinUpper: 1}, "abcdef1!", nil, RuleMinUpper, 1, "password must contain at least 1 capital letter"},
		{"capital non-ASCII", Policy{MinUpper: 1}, "Ämter", nil, "", 0, ""},
		{"digits", Policy{MinDigits: 3}, "abc12", nil, RuleMinDigits, 3, "password must contain at least 3 digits"},
		{"special", Policy{MinSpecial: 1}, "abcABC123", nil, RuleMinSpecial, 1, "password must contain at least 1 special character"},
		{"special counts space", Policy{MinSpecial: 1}, "abc def", nil, "", 0, ""},
		{"special counts emoji", Policy{MinSpecial: 1}, "abc🔑", nil, "", 0, ""},
		{"identifier equal", Policy{NotEqualIdentifiers: true}, "Alice@Example.com", []string{"alice@example.com"}, RuleNotIdentifier, 0, "password must not be the same as the e-mail or login"},
		{"identifier trimmed", Policy{NotEqualIdentifiers: true}, " alice ", []string{"bob@example.com", "ALICE"}, RuleNotIdentifier, 0, "password must not be the same as the e-mail or login"},
		{"identifier substring ok", Policy{NotEqualIdentifiers: true}, "alice123", []string{"alice"}, "", 0, ""},
		{"identifier empty ignored", Policy{NotEqualIdentifiers: true}, "", []string{"", "  "}, "", 0, ""},
		{"identifier rule off", Policy{}, "alice", []string{"alice"}, "", 0, ""},
		{"invalid utf-8", Policy{}, "bad\xffbyte", nil, RuleEncoding, 0, "password must be valid UTF-8 text"},
		// Order: the first broken rule wins.
		{"order min before max", Policy{MinLength: 10, MaxLength: 2}, "abc", nil, RuleMinLength, 10, "password must be at least 10 characters long"},
		{"order spaces before lower", Policy{NoSpaces: true, MinLower: 1}, "A B", nil, RuleNoSpaces, 0, "password must not contain spaces"},
		{"order lower before upper", Policy{MinLower: 1, MinUpper: 1}, "123", nil, RuleMinLower, 1, "password must contain at least 1 lowercase letter"},
		{"order upper before digits", Policy{MinUpper: 1, MinDigits: 1}, "abc", nil, RuleMinUpper, 1, "password must contain at least 1 capital letter"},
		{"order digits before special", Policy{MinDigits: 1, MinSpecial: 1}, "abc", nil, RuleMinDigits, 1, "password must contain at least 1 digit"},
		{"order special before identifier", Policy{MinSpecial: 1, NotEqualIdentifiers: true}, "alice", []string{"alice"}, RuleMinSpecial, 1, "password must contain at least 1 special character"},
		{"everything satisfied", Policy{MinLength: 8, MaxLength: 64, MinLower: 1, MinUpper: 1, MinDigits: 1, MinSpecial: 1, NoSpaces: true, NotEqualIdentifiers: true}, "Tr0ub4dor&3", []string{"alice"}, "", 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Check(tt.pw, tt.ids...)
			if tt.wantRule == "" {
				if err != nil {
					t.Fatalf("Check(%q) = %v, want nil", tt.pw, err)
				}
				return
			}
			var pe *PolicyError
			if !errors.As(err, &pe) {
				t.Fatalf("Check(%q) = %v, want *PolicyError", tt.pw, err)
			}
			if pe.Rule != tt.wantRule || pe.Limit != tt.wantLimit || pe.Message != tt.wantMsg {
				t.Errorf("Check(%q) = {%q %d %q}, want {%q %d %q}", tt.pw, pe.Rule, pe.Limit, pe.Message, tt.wantRule, tt.wantLimit, tt.wantMsg)
			}
			if err.Error() != pe.Message {
				t.Errorf("Error() = %q, want Message %q", err.Error(), pe.Message)
			}
		})
	}
}

func TestPolicyCountsRunes(t *testing.T) {
	tests := []struct {
		pw       string
		p        Policy
		wantRule string
	}{
		{"äöü", Policy{MinLength: 3}, ""},           // 6 bytes, 3 runes
		{"日本", Policy{MinLength: 3}, RuleMinLength}, // 6 bytes, 2 runes
		{"日本語", Policy{MaxLength: 3}, ""},           // 9 bytes, 3 runes
		{"🔑🔑🔑🔑", Policy{MaxLength: 3}, RuleMaxLength},
		{"日本語", Policy{MinLower: 1}, RuleMinLower}, // letters without case
		{"١٢٣", Policy{MinDigits: 3}, ""},          // Arabic-Indic digits
	}
	for _, tt := range tests {
		err := tt.p.Check(tt.pw)
		var got string
		var pe *PolicyError
		if errors.As(err, &pe) {
			got = pe.Rule
		} else if err != nil {
			t.Fatalf("Check(%q) = %v", tt.pw, err)
		}
		if got != tt.wantRule {
			t.Errorf("Check(%q, %+v) rule = %q, want %q", tt.pw, tt.p, got, tt.wantRule)
		}
	}
}

func TestNIST(t *testing.T) {
	want := Policy{MinLength: 8, MaxLength: 128, NotEqualIdentifiers: true}
	if got := NIST(); got != want {
		t.Fatalf("NIST() = %+v, want %+v", got, want)
	}
	if err := NIST().Check("alllowercasebutlong"); err != nil {
		t.Errorf("NIST rejected a long password without composition: %v", err)
	}
	if err := NIST().Check("bob@example.com", "bob@example.com"); err == nil {
		t.Error("NIST accepted the e-mail as password")
	}
}

func TestPolicyMerge(t *testing.T) {
	tests := []struct {
		name    string
		base, o Policy
		want    Policy
	}{
		{"empty override", NIST(), Policy{}, NIST()},
		{"override ints", NIST(), Policy{MinLength: 12, MinDigits: 1}, Policy{MinLength: 12, MaxLength: 128, MinDigits: 1, NotEqualIdentifiers: true}},
		{"all fields", Policy{}, Policy{MinLength: 1, MaxLength: 2, MinLower: 3, MinUpper: 4, MinDigits: 5, MinSpecial: 6, NoSpaces: true, NotEqualIdentifiers: true},
			Policy{MinLength: 1, MaxLength: 2, MinLower: 3, MinUpper: 4, MinDigits: 5, MinSpecial: 6, NoSpaces: true, NotEqualIdentifiers: true}},
		{"false does not clear", Policy{NoSpaces: true, NotEqualIdentifiers: true}, Policy{MinLength: 3}, Policy{MinLength: 3, NoSpaces: true, NotEqualIdentifiers: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.base.Merge(tt.o); got != tt.want {
				t.Errorf("Merge = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestPolicyValidate(t *testing.T) {
	tests := []struct {
		name    string
		p       Policy
		wantErr bool
	}{
		{"zero", Policy{}, false},
		{"nist", NIST(), false},
		{"negative", Policy{MinDigits: -1}, true},
		{"max below min", Policy{MinLength: 10, MaxLength: 8}, true},
		{"composition exceeds max", Policy{MaxLength: 3, MinLower: 2, MinUpper: 2}, true},
		{"composition without max", Policy{MinLower: 20}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.p.Validate(); (err != nil) != tt.wantErr {
				t.Errorf("Validate() = %v, wantErr %v", err, tt.wantErr)
			}
		})
	}
}

// blockingHasher holds its pool slot until released, so tests control
// exactly when the pool is full.
type blockingHasher struct {
	entered chan struct{}
	release chan struct{}
}

func newBlockingHasher() *blockingHasher {
	return &blockingHasher{entered: make(chan struct{}, 100), release: make(chan struct{})}
}

func (h *blockingHasher) Hash([]byte) (string, error) {
	h.entered <- struct{}{}
	<-h.release
	return "blocked", nil
}

func (h *blockingHasher) Name() string { return "blocking" }

// fillPool occupies every slot of p with h and returns a func that frees
// them and waits for the holders to finish.
func fillPool(t *testing.T, p *Pool, h *blockingHasher) (release func()) {
	t.Helper()
	var wg sync.WaitGroup
	for range p.Size() {
		wg.Go(func() {
			if _, err := p.Hash(context.Background(), h, nil); err != nil {
				t.Errorf("filling pool: %v", err)
			}
		})
		<-h.entered
	}
	return func() {
		close(h.release)
		wg.Wait()
	}
}

func TestPoolOverloaded(t *testing.T) {
	p := NewPool(PoolConfig{Size: 2, MaxWait: 30 * time.Millisecond})
	h := newBlockingHasher()
	release := fillPool(t, p, h)
	defer release()

	calls := []struct {
		name string
		call func() error
	}{
		{"Hash", func() error { _, err := p.Hash(context.Background(), fastArgon, []byte("pw")); return err }},
		{"Verify", func() error { _, err := p.Verify(context.Background(), "$argon2id$x", []byte("pw")); return err }},
		{"DummyVerify", func() error { return p.DummyVerify(context.Background(), fastArgon, []byte("pw")) }},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			err := c.call()
			var oe *OverloadedError
			if !errors.As(err, &oe) {
				t.Fatalf("err = %v, want *OverloadedError", err)
			}
			if !errors.Is(err, ErrOverloaded) {
				t.Error("errors.Is(err, ErrOverloaded) = false")
			}
			if oe.RetryAfter != time.Second {
				t.Errorf("RetryAfter = %v, want 1s (max of 1s and MaxWait)", oe.RetryAfter)
			}
			if err.Error() != "password hashing is overloaded" {
				t.Errorf("Error() = %q", err.Error())
			}
			// The pool keeps an eighth of MaxWait back for work outside it.
			if d := time.Since(start); d < 30*time.Millisecond*7/8 {
				t.Errorf("gave up after %v, before its budget", d)
			}
		})
	}
	if errors.Is(errors.New("password hashing is overloaded"), ErrOverloaded) {
		t.Error("unrelated error matched ErrOverloaded")
	}
	if oe := (&OverloadedError{}); errors.Is(oe, context.Canceled) {
		t.Error("OverloadedError matched context.Canceled")
	}
}

func TestPoolRetryAfter(t *testing.T) {
	for _, tt := range []struct{ maxWait, want time.Duration }{
		{10 * time.Millisecond, time.Second},
		{5 * time.Second, 5 * time.Second},
	} {
		p := NewPool(PoolConfig{Size: 1, MaxWait: tt.maxWait})
		if got := p.overloaded().RetryAfter; got != tt.want {
			t.Errorf("MaxWait %v: RetryAfter = %v, want %v", tt.maxWait, got, tt.want)
		}
	}
}

func TestPoolContextCancel(t *testing.T) {
	p := NewPool(PoolConfig{Size: 1, MaxWait: 10 * time.Second})
	h := newBlockingHasher()

	t.Run("already cancelled with free slot", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := p.Hash(ctx, h, nil)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if len(h.entered) != 0 {
			t.Fatal("hasher ran despite cancelled context")
		}
	})

	release := fillPool(t, p, h)
	defer release()

	t.Run("cancelled while queued", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(20*time.Millisecond, cancel)
		start := time.Now()
		ok, err := p.Verify(ctx, "$argon2id$x", []byte("pw"))
		if ok || !errors.Is(err, context.Canceled) || errors.Is(err, ErrOverloaded) {
			t.Fatalf("Verify = %v, %v; want false, context.Canceled", ok, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("cancellation took %v; should not wait for MaxWait", d)
		}
	})
	t.Run("deadline while queued", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		err := p.DummyVerify(ctx, fastArgon, []byte("pw"))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want context.DeadlineExceeded", err)
		}
	})
}

// countingHasher records the peak number of concurrent Hash calls.
type countingHasher struct {
	cur, peak atomic.Int32
}

func (h *countingHasher) Hash([]byte) (string, error) {
	n := h.cur.Add(1)
	defer h.cur.Add(-1)
	for {
		p := h.peak.Load()
		if n <= p || h.peak.CompareAndSwap(p, n) {
			break
		}
	}
	time.Sleep(2 * time.Millisecond)
	return "counted", nil
}

func (h *countingHasher) Name() string { return "counting" }

func TestPoolBoundsConcurrency(t *testing.T) {
	const size = 3
	p := NewPool(PoolConfig{Size: size, MaxWait: 30 * time.Second})
	if p.Size() != size {
		t.Fatalf("Size() = %d, want %d", p.Size(), size)
	}
	h := &countingHasher{}
	var wg sync.WaitGroup
	for range 40 {
		wg.Go(func() {
			if _, err := p.Hash(context.Background(), h, nil); err != nil {
				t.Errorf("Hash: %v", err)
			}
		})
	}
	wg.Wait()
	if peak := h.peak.Load(); peak > size || peak < 1 {
		t.Errorf("peak concurrency = %d, want 1..%d", peak, size)
	} else {
		t.Logf("peak concurrency %d of %d", peak, size)
	}
}

func TestPoolDefaults(t *testing.T) {
	p := NewPool(PoolConfig{})
	if p.Size() != runtime.GOMAXPROCS(0) {
		t.Errorf("default Size() = %d, want GOMAXPROCS %d", p.Size(), runtime.GOMAXPROCS(0))
	}
	if p.maxWait != DefaultMaxWait {
		t.Errorf("default MaxWait = %v, want %v", p.maxWait, DefaultMaxWait)
	}
}

type recordingObserver struct {
	mu     sync.Mutex
	waits  int
	hashes []string
}

func (o *recordingObserver) ObserveQueueWait(d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if d < 0 {
		panic("negative wait")
	}
	o.waits++
}

func (o *recordingObserver) ObserveHash(hasher string, d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if d <= 0 {
		panic("non-positive hash duration")
	}
	o.hashes = append(o.hashes, hasher)
}

func TestPoolFunctionalAndObserver(t *testing.T) {
	obs := &recordingObserver{}
	p := NewPool(PoolConfig{Size: 1, Observer: obs})
	ctx := context.Background()

	enc, err := p.Hash(ctx, fastArgon, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := p.Verify(ctx, enc, []byte("pw")); !ok || err != nil {
		t.Errorf("Pool.Verify(right) = %v, %v", ok, err)
	}
	if ok, err := p.Verify(ctx, enc, []byte("nope")); ok || err != nil {
		t.Errorf("Pool.Verify(wrong) = %v, %v", ok, err)
	}
	if _, err := p.Verify(ctx, "garbage", []byte("pw")); !errors.Is(err, ErrUnsupportedHash) {
		t.Errorf("Pool.Verify(garbage) err = %v, want ErrUnsupportedHash", err)
	}
	if err := p.DummyVerify(ctx, Bcrypt{Cost: 4}, []byte("pw")); err != nil {
		t.Errorf("Pool.DummyVerify: %v", err)
	}
	if _, err := p.Hash(ctx, Bcrypt{Cost: 4}, []byte(strings.Repeat("x", 73))); !errors.Is(err, ErrPasswordTooLong) {
		t.Errorf("Pool.Hash passes hasher errors through: got %v", err)
	}

	obs.mu.Lock()
	defer obs.mu.Unlock()
	want := []string{"argon2id", "argon2id", "argon2id", "unknown", "bcrypt", "bcrypt"}
	if strings.Join(obs.hashes, ",") != strings.Join(want, ",") {
		t.Errorf("ObserveHash names = %v, want %v", obs.hashes, want)
	}
	if obs.waits != len(want) {
		t.Errorf("ObserveQueueWait calls = %d, want %d", obs.waits, len(want))
	}
}

func TestPoolObservesOverloadWait(t *testing.T) {
	obs := &recordingObserver{}
	p := NewPool(PoolConfig{Size: 1, MaxWait: 10 * time.Millisecond, Observer: obs})
	h := newBlockingHasher()
	release := fillPool(t, p, h)
	if _, err := p.Hash(context.Background(), fastArgon, nil); !errors.Is(err, ErrOverloaded) {
		t.Fatalf("err = %v, want overload", err)
	}
	release()
	obs.mu.Lock()
	defer obs.mu.Unlock()
	// One wait for the filler, one for the shed request; one hash (filler).
	if obs.waits != 2 || len(obs.hashes) != 1 {
		t.Errorf("waits = %d, hashes = %v; want 2 waits, 1 hash", obs.waits, obs.hashes)
	}
}

func BenchmarkArgon2idDefault(b *testing.B) {
	h := DefaultArgon2id()
	pw := []byte("correct horse battery staple")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := h.Hash(pw); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkBcrypt10(b *testing.B) {
	h := Bcrypt{Cost: 10}
	pw := []byte("correct horse battery staple")
	for b.Loop() {
		if _, err := h.Hash(pw); err != nil {
			b.Fatal(err)
		}
	}
}
