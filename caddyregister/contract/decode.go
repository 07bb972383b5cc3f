package contract

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// DefaultMaxDepth bounds JSON nesting; no contract needs more than a few
// levels, and deep nesting is a cheap way to burn CPU.
const DefaultMaxDepth = 16

// DecodeError is a body that is not the JSON a route expects. Its message
// names the problem and where it is, for people fixing their client.
type DecodeError struct {
	Problem string
	// Field is the JSON path of a value of the wrong type, if any.
	Field  string
	Offset int64
	Line   int
	Column int
}

// InvalidInput marks the error as the client's mistake for outcome logs.
func (e *DecodeError) InvalidInput() bool { return true }

func (e *DecodeError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("invalid JSON at line %d, column %d: %s", e.Line, e.Column, e.Problem)
	}
	return "invalid JSON: " + e.Problem
}

// DecodeJSON decodes one JSON object from body into v. Unknown fields are
// ignored, as the documents' clients expect; numbers keep their text when v
// uses json.Number. Of several values of the wrong type, the first is
// reported; of repeated members the last is kept whole (as JSON.parse
// does; encoding/json alone would merge repeated objects). Its cost is
// linear in the body, and it allocates little more than the values v
// keeps (internal/decodebench holds it to that) as long as v holds no
// slices: encoding/json spends a string header and slice growth on each
// element, so contracts walk lists with Elements instead.
func DecodeJSON(body []byte, v any, maxDepth int) error {
	if err := checkShape(body, maxDepth); err != nil {
		return err
	}
	// The walk needs no valid JSON to be safe, but a syntax error comes
	// before a type error: the body is checked only when there is one.
	if te := firstTypeError(body, bytes.IndexByte(body, '{'), reflect.TypeOf(v), nil); te != nil {
		if err := syntaxError(body); err != nil {
			return err
		}
		if te.Value == badNumber {
			return decodeError(body, json.Unmarshal(body, v))
		}
		return decodeError(body, te)
	}
	// Unmarshal, not a Decoder: a Decoder copies the body into buffers
	// that grow by doubling, several times its size in all. Members v has
	// no field for, and all but the last of repeated ones, are left out
	// first (after checking the whole body): encoding/json spends far more
	// on each member than the walk.
	in, err := knownMembers(body, reflect.TypeOf(v))
	if err != nil {
		return err
	}
	if in == nil {
		in = body
	}
	if err := json.Unmarshal(in, v); err != nil {
		if &in[0] != &body[0] {
			err = json.Unmarshal(body, v) // positions in the body as sent
		}
		return decodeError(body, err)
	}
	return nil
}

// syntaxError is the body's JSON syntax error, or nil.
func syntaxError(body []byte) error {
	// Unmarshal checks the whole text before it looks at its target, and
	// a nil target stops it there.
	var se *json.SyntaxError
	if err := json.Unmarshal(body, (*struct{})(nil)); errors.As(err, &se) {
		return decodeError(body, err)
	}
	return nil
}

// CheckJSON checks that body is one JSON object DecodeJSON would accept,
// without decoding it, for contracts that then read it with Members; its
// errors are DecodeJSON's.
func CheckJSON(body []byte, maxDepth int) error {
	if err := checkShape(body, maxDepth); err != nil {
		return err
	}
	return syntaxError(body)
}

// checkShape makes the cheap checks: not empty, UTF-8, nesting, an object.
func checkShape(body []byte, maxDepth int) error {
	if maxDepth <= 0 {
		maxDepth = DefaultMaxDepth
	}
	trimmed := trimJSONSpace(body)
	if len(trimmed) == 0 {
		return &DecodeError{Problem: "request body is empty"}
	}
	if !utf8.Valid(body) {
		return &DecodeError{Problem: "request body is not valid UTF-8"}
	}
	if err := checkDepth(body, maxDepth); err != nil {
		return err
	}
	if trimmed[0] != '{' {
		off := int64(bytes.IndexByte(body, trimmed[0]))
		return at(body, off, "request body must be a JSON object")
	}
	return nil
}

// jsonSpace is JSON's whitespace (RFC 8259): bytes.TrimSpace also strips
// \v, \f and Unicode spaces, which JSON does not allow.
const jsonSpace = " \t\r\n"

func trimJSONSpace(b []byte) []byte { return bytes.Trim(b, jsonSpace) }

// decodeError turns encoding/json's error into a DecodeError.
func decodeError(body []byte, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off := se.Offset - 1
		if off < 0 {
			off = 0
		}
		if off >= int64(len(body)) || se.Error() == "unexpected end of JSON input" {
			return at(body, int64(len(body)), "unexpected end of JSON input")
		}
		if strings.Contains(se.Error(), "after top-level value") {
			return at(body, off, "unexpected data after the JSON object")
		}
		r, _ := utf8.DecodeRune(body[off:])
		if (r == '}' || r == ']') && prevNonSpace(body, off) == ',' {
			return at(body, off, fmt.Sprintf("trailing comma before '%c'", r))
		}
		if r >= 0x80 {
			return at(body, off, fmt.Sprintf("invalid character %q (U+%04X); JSON strings need plain double quotes (\")", r, r))
		}
		return at(body, off, fmt.Sprintf("invalid character %q %s", r, syntaxContext(se.Error())))
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "body"
		}
		want := jsonKind(te.Type.Kind().String())
		if te.Type == reflect.TypeFor[json.Number]() {
			want = "a number"
		}
		d := at(body, valueStart(body, te.Offset), fmt.Sprintf("field %q must be %s, not %s", field, want, valueKind(te.Value))).(*DecodeError)
		d.Field = field
		return d
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return at(body, int64(len(body)), "unexpected end of JSON input")
	case strings.Contains(err.Error(), "invalid number literal"):
		// A JSON string that is not a number, bound to a json.Number:
		// encoding/json names the literal but not where it is.
		if start, ok := findValue(body, numberLiteral(err.Error())); ok {
			field := keyBefore(body, start)
			d := at(body, start, fmt.Sprintf("field %q must be a number, not a string", field)).(*DecodeError)
			d.Field = field
			return d
		}
		return &DecodeError{Problem: "a number field holds a string that is not a number"}
	default:
		return &DecodeError{Problem: strings.TrimPrefix(err.Error(), "json: ")}
	}
}

// numberLiteral extracts the literal from encoding/json's message
// `json: invalid number literal, trying to unmarshal "\"abc\"" into Number`.
func numberLiteral(msg string) string {
	i := strings.Index(msg, "unmarshal ")
	j := strings.LastIndex(msg, " into ")
	if i < 0 || j < i+len("unmarshal ") {
		return ""
	}
	lit, err := strconv.Unquote(msg[i+len("unmarshal ") : j])
	if err != nil {
		return ""
	}
	return lit
}

// findValue finds the first place lit stands as an object member's value.
func findValue(b []byte, lit string) (int64, bool) {
	if lit == "" {
		return 0, false
	}
	for off := 0; ; {
		i := bytes.Index(b[off:], []byte(lit))
		if i < 0 {
			return 0, false
		}
		at := int64(off + i)
		if keyBefore(b, at) != "" {
			return at, true
		}
		off += i + 1
	}
}

// keyBefore returns the object key whose value starts at off ("" if none).
func keyBefore(b []byte, off int64) string {
	i := off - 1
	for i >= 0 && strings.IndexByte(jsonSpace, b[i]) >= 0 {
		i--
	}
	if i < 0 || b[i] != ':' {
		return ""
	}
	i--
	for i >= 0 && strings.IndexByte(jsonSpace, b[i]) >= 0 {
		i--
	}
	if i < 0 || b[i] != '"' {
		return ""
	}
	start := valueStart(b, i+1)
	var key string
	if json.Unmarshal(b[start:i+1], &key) != nil {
		return ""
	}
	return key
}

// valueStart finds where the value ending at byte offset end begins:
// encoding/json reports type errors at the end of the offending value.
func valueStart(b []byte, end int64) int64 {
	if end > int64(len(b)) {
		end = int64(len(b))
	}
	i := end - 1
	if i < 0 {
		return 0
	}
	switch b[i] {
	case '"':
		for j := i - 1; j >= 0; j-- {
			if b[j] == '"' {
				// Count the backslashes before it: an odd number escapes it.
				k := j - 1
				for k >= 0 && b[k] == '\\' {
					k--
				}
				if (j-k-1)%2 == 0 {
					return j
				}
			}
		}
		return 0
	case '{', '[':
		// encoding/json reports objects and arrays just past their start.
		return i
	default:
		j := i
		for j >= 0 && strings.IndexByte("0123456789+-.eEtrufalsn", b[j]) >= 0 {
			j--
		}
		return j + 1
	}
}

// valueKind names encoding/json's description of a JSON value for people.
func valueKind(v string) string {
	switch v {
	case "number", "string":
		return "a " + v
	case "array", "object":
		return "an " + v
	case "bool":
		return "a boolean"
	default:
		if strings.HasPrefix(v, "number") {
			return "a number"
		}
		return v
	}
}

// syntaxContext keeps what encoding/json says after "invalid character 'x'"
// ("looking for beginning of value", "in literal true (expecting 'e')"):
// what was expected there.
func syntaxContext(msg string) string {
	const prefix = "invalid character "
	if strings.HasPrefix(msg, prefix) {
		rest := msg[len(prefix):]
		// Skip the quoted character, which may itself be a quote.
		if len(rest) > 2 {
			if i := strings.Index(rest[2:], "' "); i >= 0 {
				return rest[2+i+2:]
			}
		}
	}
	return "(" + msg + ")"
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64", "float32", "float64":
		return "a number"
	case "slice", "array":
		return "an array"
	case "struct", "map":
		return "an object"
	default:
		return "a " + goKind
	}
}

func prevNonSpace(b []byte, off int64) byte {
	for i := off - 1; i >= 0; i-- {
		switch b[i] {
		case ' ', '\t', '\r', '\n':
			continue
		default:
			return b[i]
		}
	}
	return 0
}

// at builds a DecodeError for byte offset off, with 1-based line and column
// (columns count characters, tabs as one).
func at(body []byte, off int64, problem string) error {
	if off > int64(len(body)) {
		off = int64(len(body))
	}
	line, col := 1, 1
	for i := 0; i < int(off); {
		r, n := utf8.DecodeRune(body[i:])
		if r == '\n' {
			line++
			col = 1
		} else {
			col++
		}
		i += n
	}
	return &DecodeError{Problem: problem, Offset: off, Line: line, Column: col}
}

// checkDepth rejects nesting deeper than max without decoding.
func checkDepth(b []byte, max int) error {
	depth := 0
	inStr, esc := false, false
	for i, c := range b {
		if inStr {
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
			continue
		}
		switch c {
		case '"':
			inStr = true
		case '{', '[':
			depth++
			if depth > max {
				return at(b, int64(i), fmt.Sprintf("JSON nested deeper than %d levels", max))
			}
		case '}', ']':
			depth--
		}
	}
	return nil
}
