package mail

import (
	"errors"
	"strings"
	"unicode"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// Registrants choose some of the text a mail carries (their name, the app
// they say they came from), and the mail goes out from the operator's
// domain. Such text must not become a second line, a forged paragraph, or a
// link the reader trusts because of who sent it. Two rules keep it inert:
// it is one line of printable text (CheckLine, at the request), and text a
// mail client could turn into a link is left out of the mail altogether
// (Unlinkable, at rendering). Leaving it out is the robust choice: every
// client autolinks differently (bare domains, www., schemes, addresses),
// and escaping tricks that fool one are undone by another.

// ErrNotOneLine is what CheckLine returns.
var ErrNotOneLine = errors.New("must be one line of printable text")

// CheckLine reports whether s is one line of printable text: letters,
// marks, numbers, punctuation, symbols and the ASCII space only. Line and
// paragraph separators, tabs, control characters, and invisible format
// characters (bidi overrides, zero-width spaces) are refused.
func CheckLine(s string) error {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return ErrNotOneLine
		}
	}
	if _, ok := store.Invisible(s); ok {
		// Printable by category, but drawn as nothing (a Hangul filler,
		// a variation selector): text that reads as something else.
		return ErrNotOneLine
	}
	return nil
}

// Unlinkable returns s when no mail client could make a link of it, and ""
// otherwise: text with a scheme or a path (':' or '/'), an address ('@'),
// or a dot between two letters or digits ("evil.example", "www.x"). A name
// such as "St.John" is dropped too: the mail then just greets without it,
// which costs less than a link on the operator's letterhead.
func Unlinkable(s string) string {
	if strings.ContainsAny(s, ":/\\@") {
		return ""
	}
	rs := []rune(s)
	for i := 1; i+1 < len(rs); i++ {
		if isDot(rs[i]) && isAlnum(rs[i-1]) && isAlnum(rs[i+1]) {
			return ""
		}
	}
	if CheckLine(s) != nil {
		return ""
	}
	return s
}

// isDot matches '.' and the characters IDNA maps to it (ideographic and
// fullwidth full stops), which some clients autolink as dots.
func isDot(r rune) bool {
	switch r {
	case '.', '\u3002', '\uFF0E', '\uFF61':
		return true
	}
	return false
}

func isAlnum(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }
