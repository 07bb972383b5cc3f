package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// A template is a request body (or header value) with placeholders that
// make every request of a run unique:
//
//	{{n}}     the request's sequence number in this run: 1, 2, 3, ...
//	{{uniq}}  {{run}} followed by {{n}}: unique across runs too
//	{{run}}   an identifier of this run (10 random lowercase hex digits)
//	{{line}}  line n of the -lines file, cycling (n mod its line count):
//	          a value per request from a list, e.g. many users' tokens
//
// Values are lowercase alphanumerics, so they are valid inside JSON strings,
// e-mail local parts, logins and form values without escaping. Any other
// "{{...}}" is an error, so a typo cannot silently send the same body twice.
type template struct {
	parts []part
	run   string
	lines []string
}

type partKind int

const (
	literal partKind = iota
	seqN
	uniq
	runID
	line
)

type part struct {
	kind partKind
	lit  string
}

var placeholders = map[string]partKind{"n": seqN, "uniq": uniq, "run": runID, "line": line}

// newRunID returns 10 random lowercase hex digits.
func newRunID() string {
	var b [5]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return hex.EncodeToString(b[:])
}

// parseTemplate compiles s for run (see template).
func parseTemplate(s, run string) (*template, error) {
	return parseTemplateLines(s, run, nil)
}

// parseTemplateLines is parseTemplate with the values of {{line}}.
func parseTemplateLines(s, run string, lines []string) (*template, error) {
	t := &template{run: run, lines: lines}
	rest := s
	for {
		i := strings.Index(rest, "{{")
		if i < 0 {
			break
		}
		j := strings.Index(rest[i+2:], "}}")
		if j < 0 {
			return nil, fmt.Errorf("template %q: unclosed {{", s)
		}
		name := strings.TrimSpace(rest[i+2 : i+2+j])
		kind, ok := placeholders[name]
		if !ok {
			return nil, fmt.Errorf("template %q: unknown placeholder {{%s}} (want {{n}}, {{uniq}}, {{run}} or {{line}})", s, name)
		}
		if kind == line && len(lines) == 0 {
			return nil, fmt.Errorf("template %q: {{line}} needs -lines", s)
		}
		if i > 0 {
			t.parts = append(t.parts, part{kind: literal, lit: rest[:i]})
		}
		t.parts = append(t.parts, part{kind: kind})
		rest = rest[i+2+j+2:]
	}
	if rest != "" {
		t.parts = append(t.parts, part{kind: literal, lit: rest})
	}
	return t, nil
}

// unique reports whether every rendering of t differs from every other.
func (t *template) unique() bool {
	for _, p := range t.parts {
		if p.kind == seqN || p.kind == uniq {
			return true
		}
	}
	return false
}

// render appends request n's text to dst.
func (t *template) render(dst []byte, n int64) []byte {
	for _, p := range t.parts {
		switch p.kind {
		case literal:
			dst = append(dst, p.lit...)
		case seqN:
			dst = strconv.AppendInt(dst, n, 10)
		case uniq:
			dst = append(dst, t.run...)
			dst = strconv.AppendInt(dst, n, 10)
		case runID:
			dst = append(dst, t.run...)
		case line:
			dst = append(dst, t.lines[(n-1)%int64(len(t.lines))]...)
		}
	}
	return dst
}

// String renders request n.
func (t *template) String(n int64) string { return string(t.render(nil, n)) }
