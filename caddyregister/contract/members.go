package contract

import (
	"bytes"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// This file reads JSON that DecodeJSON has already checked, without
// building a map or a copy of it: the contracts that bind members by name
// (case-insensitively, or one at a time, or refusing repeats) walk the
// body once and pay only for the members they keep. A map of every member
// costs a few dozen bytes per member, so a 64 KiB body of tiny members
// would cost megabytes; a walk costs nothing per member it skips.

// JSONMember is one member of a JSON object, as slices of the body.
type JSONMember struct {
	// Key is the member's name as written, without its quotes (escapes
	// not decoded: compare with KeyEqual, decode with UnquoteKey).
	Key []byte
	// Value is the member's value as written.
	Value []byte
	// KeyEnd and ValueStart are byte offsets in the walked text: just past
	// the name's closing quote, and where the value begins.
	KeyEnd, ValueStart int
}

// Members calls fn for each member of the JSON object that starts obj
// (after white space), in order, until fn returns false. obj must be
// valid JSON (DecodeJSON or json.Valid passed); anything else walks no
// members.
func Members(obj []byte, fn func(m JSONMember) bool) {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return
	}
	i = skipSpace(obj, i+1)
	for i < len(obj) && obj[i] == '"' {
		kEnd := skipString(obj, i)
		j := skipSpace(obj, kEnd)
		if j >= len(obj) || obj[j] != ':' {
			return
		}
		vStart := skipSpace(obj, j+1)
		vEnd := skipValue(obj, vStart)
		if vEnd < 0 {
			return
		}
		if !fn(JSONMember{Key: obj[i+1 : kEnd-1], Value: obj[vStart:vEnd], KeyEnd: kEnd, ValueStart: vStart}) {
			return
		}
		i = skipSpace(obj, vEnd)
		if i < len(obj) && obj[i] == ',' {
			i = skipSpace(obj, i+1)
		}
	}
}

// Member returns the value of obj's last member named name (exactly, as
// JavaScript's JSON.parse and PHP's json_decode keep the last of repeated
// names), or false.
func Member(obj []byte, name string) ([]byte, bool) {
	var v []byte
	found := false
	Members(obj, func(m JSONMember) bool {
		if KeyEqual(m.Key, name, false) {
			v, found = m.Value, true
		}
		return true
	})
	return v, found
}

// Elements calls fn for each element of the JSON array that starts arr
// (after white space), in order, until fn returns false. arr must be
// valid JSON.
func Elements(arr []byte, fn func(v []byte) bool) {
	i := skipSpace(arr, 0)
	if i >= len(arr) || arr[i] != '[' {
		return
	}
	i = skipSpace(arr, i+1)
	for i < len(arr) && arr[i] != ']' {
		end := skipValue(arr, i)
		if end < 0 || !fn(arr[i:end]) {
			return
		}
		i = skipSpace(arr, end)
		if i < len(arr) && arr[i] == ',' {
			i = skipSpace(arr, i+1)
		}
	}
}

// IsNull reports whether the JSON value v is null.
func IsNull(v []byte) bool { return string(bytes.Trim(v, jsonSpace)) == "null" }

// KeyEqual reports whether the member name key (as written, escapes
// included) is name, or with fold is name under Unicode case folding
// (strings.EqualFold), without allocating.
func KeyEqual(key []byte, name string, fold bool) bool {
	if !fold && bytes.IndexByte(key, '\\') < 0 {
		return string(key) == name
	}
	i := 0
	for _, want := range name {
		if i >= len(key) {
			return false
		}
		r, n := nextRune(key, i)
		i += n
		if r != want && (!fold || !equalFoldRune(r, want)) {
			return false
		}
	}
	return i == len(key)
}

func equalFoldRune(a, b rune) bool {
	if a < utf8.RuneSelf && b < utf8.RuneSelf {
		return a|0x20 == b|0x20 && unicode.IsLetter(a)
	}
	for r := unicode.SimpleFold(a); r != a; r = unicode.SimpleFold(r) {
		if r == b {
			return true
		}
	}
	return false
}

// UnquoteKey decodes a member name as written (JSONMember.Key).
func UnquoteKey(key []byte) string {
	if bytes.IndexByte(key, '\\') < 0 {
		return string(key)
	}
	var b strings.Builder
	b.Grow(len(key))
	for i := 0; i < len(key); {
		// Copy up to the next escape at once.
		j := bytes.IndexByte(key[i:], '\\')
		if j < 0 {
			b.Write(key[i:])
			break
		}
		b.Write(key[i : i+j])
		r, n := nextRune(key, i+j)
		b.WriteRune(r)
		i += j + n
	}
	return b.String()
}

// Unquote decodes the JSON string value v (with its quotes) as
// encoding/json does (a lone surrogate becomes U+FFFD); false if v is not
// a string.
func Unquote(v []byte) (string, bool) {
	v = bytes.Trim(v, jsonSpace)
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return "", false
	}
	return UnquoteKey(v[1 : len(v)-1]), true
}

// nextRune decodes the character at s[i] of a JSON string's contents.
func nextRune(s []byte, i int) (rune, int) {
	if s[i] != '\\' {
		return utf8.DecodeRune(s[i:])
	}
	if i+1 >= len(s) {
		return utf8.RuneError, 1
	}
	switch s[i+1] {
	case 'b':
		return '\b', 2
	case 'f':
		return '\f', 2
	case 'n':
		return '\n', 2
	case 'r':
		return '\r', 2
	case 't':
		return '\t', 2
	case 'u':
		r := hex4(s, i+2)
		if r < 0 {
			return utf8.RuneError, 2
		}
		if utf16.IsSurrogate(r) {
			if i+11 < len(s) && s[i+6] == '\\' && s[i+7] == 'u' {
				if r2 := hex4(s, i+8); r2 >= 0 {
					if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
						return d, 12
					}
				}
			}
			return utf8.RuneError, 6
		}
		return r, 6
	default: // '"', '\\', '/'
		return rune(s[i+1]), 2
	}
}

func hex4(s []byte, i int) rune {
	if i+4 > len(s) {
		return -1
	}
	var r rune
	for _, c := range s[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			r = r<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return -1
		}
	}
	return r
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the offset just past the string that opens at b[i].
func skipString(b []byte, i int) int {
	i++
	for {
		j := bytes.IndexByte(b[i:], '"')
		if j < 0 {
			return len(b)
		}
		q := i + j
		k := q - 1
		for k >= i && b[k] == '\\' {
			k--
		}
		if (q-k-1)%2 == 0 {
			return q + 1
		}
		i = q + 1
	}
}

// skipValue returns the offset just past the value that starts at b[i],
// or -1 if there is none.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return -1
	default:
		j := i
	scan:
		for j < len(b) {
			switch b[j] {
			case ',', '}', ']', ' ', '\t', '\r', '\n':
				break scan
			}
			j++
		}
		if j == i {
			return -1
		}
		return j
	}
}

// NameSet tells which of a few member names a key is, without allocating
// and without comparing the key with each name: binding walks thousands of
// members of which a handful matter.
type NameSet struct {
	fold  bool
	names []string
	index map[string]string // name, lowercased when fold → name
	lens  uint64            // bit n set: a name is n bytes long (n < 64)
	long  bool              // a name is 64 bytes or longer
}

// NewNameSet builds the set of names; with fold, keys match under Unicode
// case folding (strings.EqualFold), as ASP.NET binds them.
func NewNameSet(fold bool, names ...string) *NameSet {
	s := &NameSet{fold: fold, names: names, index: make(map[string]string, len(names))}
	for _, n := range names {
		k := n
		if fold {
			k = strings.ToLower(n)
		}
		s.index[k] = n
		if len(n) < 64 {
			s.lens |= 1 << len(n)
		} else {
			s.long = true
		}
	}
	return s
}

// plain reports whether key is ASCII without escapes: its length is then
// the length of the name it may be.
func plain(key []byte) bool {
	for _, c := range key {
		if c == '\\' || c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// Find returns the name key (as written, escapes included) is, if any.
func (s *NameSet) Find(key []byte) (string, bool) {
	if !s.long && plain(key) && (len(key) >= 64 || s.lens&(1<<len(key)) == 0) {
		return "", false
	}
	if !s.fold && bytes.IndexByte(key, '\\') < 0 {
		n, ok := s.index[string(key)]
		return n, ok
	}
	// Decode (and lowercase) into a buffer on the stack; a key longer
	// than any name in it cannot be one.
	var buf [128]byte
	k := buf[:0]
	for i := 0; i < len(key); {
		r, n := nextRune(key, i)
		i += n
		if s.fold && r >= utf8.RuneSelf {
			// A non-ASCII letter may fold to an ASCII one (K, ſ).
			for _, name := range s.names {
				if KeyEqual(key, name, true) {
					return name, true
				}
			}
			return "", false
		}
		if s.fold && 'A' <= r && r <= 'Z' {
			r += 'a' - 'A'
		}
		if len(k)+utf8.UTFMax > len(buf) {
			return "", false
		}
		k = utf8.AppendRune(k, r)
	}
	n, ok := s.index[string(k)]
	return n, ok
}
