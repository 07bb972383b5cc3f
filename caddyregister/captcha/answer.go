package captcha

import (
	"crypto/sha256"
	"crypto/subtle"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// Normalize maps a user's answer to the form answers are compared in: NFKC
// (so full-width characters typed through an East Asian input method match
// their ASCII counterparts), case-folded, with all white space and invisible
// format characters (zero-width spaces from copy and paste) removed, since
// none of them can be part of an answer.
func Normalize(answer string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) || unicode.Is(unicode.Cf, r) {
			return -1
		}
		return fold(r)
	}, norm.NFKC.String(answer))
}

// fold is simple case folding: upper-casing first then lower-casing maps
// every case variant of a letter (including oddities like the Kelvin sign)
// to one rune without changing the string's length in runes.
func fold(r rune) rune {
	return unicode.ToLower(unicode.ToUpper(r))
}

// HashAnswer returns the SHA-256 of Normalize(answer), for the challenge
// store to keep instead of the answer itself, so a leaked store or log does
// not hand out answers to live challenges. It is unkeyed on purpose: the
// answer space is small enough to brute-force anyway, the point is only to
// keep it out of plain sight; what protects a challenge is that it is
// single-use and short-lived.
func HashAnswer(answer string) []byte {
	sum := sha256.Sum256([]byte(Normalize(answer)))
	return sum[:]
}

// Check reports whether answer matches the hash stored by [HashAnswer]. The
// comparison is constant-time so response timing does not reveal how close
// a guess was.
func Check(stored []byte, answer string) bool {
	if len(stored) != sha256.Size {
		return false
	}
	return subtle.ConstantTimeCompare(stored, HashAnswer(answer)) == 1
}
