package password

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Policy is a password policy. Zero values mean "no requirement".
//
// Lengths are counted in Unicode code points rather than bytes so that users
// writing in non-Latin scripts are held to the same rule as everyone else.
type Policy struct {
	MinLength int // in Unicode code points (runes)
	MaxLength int // runes; 0 = no max
	// MaxBytes bounds the UTF-8 length; 0 = no max. It follows the hash
	// (ForHasher): bcrypt reads at most 72 bytes, and a longer password
	// must be refused as the user's mistake, not fail as a hashing error.
	MaxBytes   int
	MinLower   int  // lowercase letters (unicode.IsLower)
	MinUpper   int  // capital letters (unicode.IsUpper)
	MinDigits  int  // unicode.IsDigit
	MinSpecial int  // special = any rune that is neither a letter nor a digit (unicode.IsLetter/IsDigit)
	NoSpaces   bool // rejects any unicode.IsSpace rune
	// NotEqualIdentifiers requires that the password not equal
	// (case-insensitively, trimmed) any identifier passed to Check, such as
	// the e-mail address or login, which are the first guesses of any
	// attacker.
	NotEqualIdentifiers bool
}

// Rule names reported in [PolicyError.Rule]. They are stable identifiers
// meant for clients and translations; the Message is for humans.
const (
	RuleMinLength     = "length"
	RuleMaxLength     = "maxLength"
	RuleNoSpaces      = "noSpaces"
	RuleMinLower      = "minLowercase"
	RuleMinUpper      = "minCapital"
	RuleMinDigits     = "minDigits"
	RuleMinSpecial    = "minSpecial"
	RuleNotIdentifier = "notIdentifier"
	RuleEncoding      = "encoding"
)

// NIST returns the NIST SP 800-63B default: MinLength 8, MaxLength 128,
// NotEqualIdentifiers true, nothing else. NIST advises against composition
// rules because they push users to predictable patterns.
func NIST() Policy {
	return Policy{MinLength: 8, MaxLength: 128, NotEqualIdentifiers: true}
}

// PolicyError describes the first policy rule a password broke.
type PolicyError struct {
	// Rule is one of the Rule* constants.
	Rule string
	// Limit is the configured number for that rule (0 where not applicable).
	Limit int
	// Message is an English sentence suitable for showing to the user.
	Message string
}

// Error returns Message.
func (e *PolicyError) Error() string { return e.Message }

// Check returns nil or a *PolicyError for the first broken rule, in this
// order: encoding, min length, max length, spaces, lower, upper, digits,
// special, identifiers. Reporting one rule at a time keeps the message
// short and actionable; the fixed order keeps it predictable.
//
// Invalid UTF-8 is rejected (Rule "encoding") because rune counts and
// character classes are meaningless for it, and because the same bytes could
// be rendered differently by different clients.
func (p Policy) Check(password string, identifiers ...string) error {
	if !utf8.ValidString(password) {
		return &PolicyError{Rule: RuleEncoding, Message: "password must be valid UTF-8 text"}
	}
	n := utf8.RuneCountInString(password)
	if p.MinLength > 0 && n < p.MinLength {
		return &PolicyError{Rule: RuleMinLength, Limit: p.MinLength,
			Message: fmt.Sprintf("password must be at least %s long", plural(p.MinLength, "character"))}
	}
	if p.MaxLength > 0 && n > p.MaxLength {
		return &PolicyError{Rule: RuleMaxLength, Limit: p.MaxLength,
			Message: fmt.Sprintf("password must be at most %s long", plural(p.MaxLength, "character"))}
	}
	if p.MaxBytes > 0 && len(password) > p.MaxBytes {
		return &PolicyError{Rule: RuleMaxLength, Limit: p.MaxBytes,
			Message: fmt.Sprintf("password must be at most %d bytes long (the password hash's limit; letters outside ASCII take 2 to 4 bytes each)", p.MaxBytes)}
	}

	var lower, upper, digits, special, spaces int
	for _, r := range password {
		switch {
		case unicode.IsLower(r):
			lower++
		case unicode.IsUpper(r):
			upper++
		}
		switch {
		case unicode.IsDigit(r):
			digits++
		case !unicode.IsLetter(r):
			special++
		}
		if unicode.IsSpace(r) {
			spaces++
		}
	}

	if p.NoSpaces && spaces > 0 {
		return &PolicyError{Rule: RuleNoSpaces, Message: "password must not contain spaces"}
	}
	for _, c := range []struct {
		min, got int
		rule     string
		what     string
	}{
		{p.MinLower, lower, RuleMinLower, "lowercase letter"},
		{p.MinUpper, upper, RuleMinUpper, "capital letter"},
		{p.MinDigits, digits, RuleMinDigits, "digit"},
		{p.MinSpecial, special, RuleMinSpecial, "special character"},
	} {
		if c.min > 0 && c.got < c.min {
			return &PolicyError{Rule: c.rule, Limit: c.min,
				Message: fmt.Sprintf("password must contain at least %s", plural(c.min, c.what))}
		}
	}

	if p.NotEqualIdentifiers {
		pw := strings.TrimSpace(password)
		for _, id := range identifiers {
			id = strings.TrimSpace(id)
			// An empty identifier (e.g. no login name configured) must not
			// make an empty password "equal" to it; MinLength covers that.
			if id != "" && strings.EqualFold(pw, id) {
				return &PolicyError{Rule: RuleNotIdentifier, Message: "password must not be the same as the e-mail or login"}
			}
		}
	}
	return nil
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// Merge returns p with every non-zero field of o overriding, so that a
// per-route override only has to spell out what differs from the global
// policy. Booleans can only be switched on by o: false is indistinguishable
// from "not set".
func (p Policy) Merge(o Policy) Policy {
	if o.MinLength != 0 {
		p.MinLength = o.MinLength
	}
	if o.MaxLength != 0 {
		p.MaxLength = o.MaxLength
	}
	if o.MaxBytes != 0 {
		p.MaxBytes = o.MaxBytes
	}
	if o.MinLower != 0 {
		p.MinLower = o.MinLower
	}
	if o.MinUpper != 0 {
		p.MinUpper = o.MinUpper
	}
	if o.MinDigits != 0 {
		p.MinDigits = o.MinDigits
	}
	if o.MinSpecial != 0 {
		p.MinSpecial = o.MinSpecial
	}
	if o.NoSpaces {
		p.NoSpaces = true
	}
	if o.NotEqualIdentifiers {
		p.NotEqualIdentifiers = true
	}
	return p
}

// Validate reports configuration mistakes (negative numbers, a maximum
// below the minimum, or composition rules that cannot fit in the maximum
// length) so that they fail at config load instead of rejecting every
// password at run time.
func (p Policy) Validate() error {
	for _, f := range []struct {
		name string
		v    int
	}{
		{"min_length", p.MinLength}, {"max_length", p.MaxLength},
		{"min_lowercase", p.MinLower}, {"min_capital", p.MinUpper},
		{"min_digits", p.MinDigits}, {"min_special", p.MinSpecial},
	} {
		if f.v < 0 {
			return fmt.Errorf("password policy: %s must not be negative, got %d", f.name, f.v)
		}
	}
	if p.MaxLength == 0 {
		return nil
	}
	if p.MaxLength < p.MinLength {
		return fmt.Errorf("password policy: max_length %d is below min_length %d", p.MaxLength, p.MinLength)
	}
	// Lowercase and capital letters, digits and specials are disjoint
	// classes, so their minimums add up.
	if sum := p.MinLower + p.MinUpper + p.MinDigits + p.MinSpecial; sum > p.MaxLength {
		return fmt.Errorf("password policy: composition rules need at least %d characters but max_length is %d", sum, p.MaxLength)
	}
	return nil
}

// ByteLimited is a Hasher that cannot hash passwords longer than
// MaxPasswordBytes bytes.
type ByteLimited interface {
	MaxPasswordBytes() int
}

// ForHasher returns p with MaxBytes lowered to what h can hash, so the
// policy, not the hash, refuses a password that is too long.
func (p Policy) ForHasher(h Hasher) Policy {
	if bl, ok := h.(ByteLimited); ok {
		if n := bl.MaxPasswordBytes(); n > 0 && (p.MaxBytes == 0 || n < p.MaxBytes) {
			p.MaxBytes = n
		}
	}
	return p
}
