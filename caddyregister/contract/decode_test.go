package contract

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

type decodeTarget struct {
	Name *string      `json:"name"`
	N    *json.Number `json:"n"`
	B    *struct {
		X string `json:"x"`
	} `json:"b"`
}

// The two request examples of the noraina document: the full registration
// and the user-only one, which has a trailing comma.
const (
	norainaFull = `{
	"name": "User",
	"mail": "a@b.c",
	"password": "my_password",
	"billing": {
		"company": "my_company",
		"vatId": "12345678X",
		"address": "22nd my_company's Street, my_postal_code, my_city",
		"creditBalance": 12345
	}
}`
	norainaTrailingComma = "{\n\t\"name\": \"User\",\n\t\"mail\": \"a@b.c\",\n\t\"password\": \"my_password\",\n}"
)

func nest(depth int) string {
	// {"a": [[...]]} is depth levels deep: the object and depth-1 arrays.
	return `{"a": ` + strings.Repeat("[", depth-1) + strings.Repeat("]", depth-1) + `}`
}

// knownBug guards a fixed bug: the check fails with the bug's description.
func knownBug(t *testing.T, bug string, ok bool, got any) {
	t.Helper()
	if !ok {
		t.Errorf("regression: %s (got %v)", bug, got)
	}
}

func TestDecodeJSONValid(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		maxDepth int
		check    func(t *testing.T, v *decodeTarget)
	}{
		{"all fields", `{"name": "User", "n": 12.50, "b": {"x": "y"}, "extra": [1, {"z": null}]}`, 0, func(t *testing.T, v *decodeTarget) {
			if v.Name == nil || *v.Name != "User" || v.N == nil || *v.N != "12.50" || v.B == nil || v.B.X != "y" {
				t.Errorf("got %+v", v)
			}
		}},
		{"empty object", `{}`, 0, func(t *testing.T, v *decodeTarget) {
			if v.Name != nil || v.N != nil || v.B != nil {
				t.Errorf("got %+v", v)
			}
		}},
		{"surrounding whitespace", " \r\n\t{\"name\": \"x\"}\n\n", 0, func(t *testing.T, v *decodeTarget) {
			if v.Name == nil || *v.Name != "x" {
				t.Errorf("got %+v", v)
			}
		}},
		{"null values", `{"name": null, "n": null, "b": null}`, 0, func(t *testing.T, v *decodeTarget) {
			if v.Name != nil || v.N != nil || v.B != nil {
				t.Errorf("got %+v", v)
			}
		}},
		{"number text kept", `{"n": 1e400}`, 0, func(t *testing.T, v *decodeTarget) {
			if v.N == nil || *v.N != "1e400" {
				t.Errorf("got %+v", v)
			}
		}},
		{"noraina full example", norainaFull, 0, func(t *testing.T, v *decodeTarget) {
			if v.Name == nil || *v.Name != "User" {
				t.Errorf("got %+v", v)
			}
		}},
		{"unicode", `{"name": "José “Pepe” 日本"}`, 0, func(t *testing.T, v *decodeTarget) {
			if v.Name == nil || *v.Name != "José “Pepe” 日本" {
				t.Errorf("got %+v", v)
			}
		}},
		{"brackets in a string do not nest", `{"name": "{[["}`, 1, func(t *testing.T, v *decodeTarget) {
			if v.Name == nil || *v.Name != "{[[" {
				t.Errorf("got %+v", v)
			}
		}},
		{"escaped quotes in a string", `{"name": "\"{[[\\", "n": 1}`, 1, func(t *testing.T, v *decodeTarget) {
			if v.Name == nil || *v.Name != `"{[[\` || v.N == nil || *v.N != "1" {
				t.Errorf("got %+v", v)
			}
		}},
		{"depth 16 with max 16", nest(16), 16, nil},
		{"depth 16 with default max", nest(16), 0, nil},
		{"depth 2 objects with max 2", `{"b": {"x": "y"}}`, 2, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v decodeTarget
			if err := DecodeJSON([]byte(tt.body), &v, tt.maxDepth); err != nil {
				t.Fatalf("DecodeJSON(%q): %v", tt.body, err)
			}
			if tt.check != nil {
				tt.check(t, &v)
			}
		})
	}
}

func TestDecodeJSONErrors(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		maxDepth int
		problem  []string // substrings of Problem
		line     int      // 0: no position
		column   int
		field    string
	}{
		{"empty body", ``, 0, []string{"request body is empty"}, 0, 0, ""},
		{"whitespace only", " \r\n\t \n", 0, []string{"request body is empty"}, 0, 0, ""},
		{"array", `[1, 2]`, 0, []string{"must be a JSON object"}, 1, 1, ""},
		{"string", `"name"`, 0, []string{"must be a JSON object"}, 1, 1, ""},
		{"indented string", "  \n   \"name\"", 0, []string{"must be a JSON object"}, 2, 4, ""},
		{"number", `42`, 0, []string{"must be a JSON object"}, 1, 1, ""},
		{"null", `null`, 0, []string{"must be a JSON object"}, 1, 1, ""},
		{"typographic quote first", `“name”`, 0, []string{"must be a JSON object"}, 1, 1, ""},
		{"noraina trailing comma", norainaTrailingComma, 0, []string{"trailing comma", "'}'"}, 5, 1, ""},
		{"trailing comma CRLF", "{\r\n\"a\": 1,\r\n}", 0, []string{"trailing comma"}, 3, 1, ""},
		{"trailing comma same line", `{"a": 1, }`, 0, []string{"trailing comma before '}'"}, 1, 10, ""},
		{"trailing comma in array", `{"a": [1, 2, ]}`, 0, []string{"trailing comma before ']'"}, 1, 14, ""},
		{"trailing comma in array multiline", "{\"a\": [\n\t1,\n]}", 0, []string{"trailing comma before ']'"}, 3, 1, ""},
		{"typographic quote", `{"a": “Indiqus"}`, 0, []string{"U+201C", "“", "double quotes"}, 1, 7, ""},
		{"typographic quote after multibyte", `{"é": “x"}`, 0, []string{"U+201C"}, 1, 7, ""},
		{"typographic key quote", "{\n  “name”: 1}", 0, []string{"U+201C"}, 2, 3, ""},
		{"columns count characters", `{"name": "日本語", "n": x}`, 0, []string{"invalid character 'x'", "beginning of value"}, 1, 22, ""},
		{"missing colon", `{"a" 1}`, 0, []string{"invalid character '1'", "after object key"}, 1, 6, ""},
		{"single quotes", `{'a': 1}`, 0, []string{"invalid character '\\''"}, 1, 2, ""},
		{"string into string field ok, number into string", `{"name": 5}`, 0, []string{`field "name" must be a string, not a number`}, 1, 10, "name"},
		{"number into nested string", `{"b": {"x": 5}}`, 0, []string{`field "b.x" must be a string, not a number`}, 1, 13, "b.x"},
		{"object into nested string", `{"b": {"x": {}}}`, 0, []string{`field "b.x" must be a string, not an object`}, 1, 13, "b.x"},
		{"array into object", `{"b": [1]}`, 0, []string{`field "b" must be an object, not an array`}, 1, 7, "b"},
		{"number into object", `{"b": 1}`, 0, []string{`field "b" must be an object, not a number`}, 1, 7, "b"},
		{"array into number", `{"n": [1]}`, 0, []string{`field "n"`, "not an array"}, 1, 7, "n"},
		{"unexpected end", `{"name": "x"`, 0, []string{"unexpected end of JSON input"}, 1, 13, ""},
		{"unexpected end in string", `{"name": "x`, 0, []string{"unexpected end of JSON input"}, 1, 12, ""},
		{"unexpected end multiline", "{\n\t\"name\": \"x\",\n", 0, []string{"unexpected end of JSON input"}, 3, 1, ""},
		{"lone brace", `{`, 0, []string{"unexpected end of JSON input"}, 1, 2, ""},
		{"data after the object", `{"a": 1} x`, 0, []string{"unexpected data after the JSON object"}, 1, 10, ""},
		{"closing brace after the object", `{"a": 1}}`, 0, []string{"unexpected data after the JSON object"}, 1, 9, ""},
		{"closing bracket after the object", "{\"a\": 1}\n]", 0, []string{"unexpected data after the JSON object"}, 2, 1, ""},
		{"17 nested arrays, max 16", strings.Repeat("[", 17) + strings.Repeat("]", 17), 16, []string{"nested deeper than 16 levels"}, 1, 17, ""},
		{"16 nested arrays are not an object", strings.Repeat("[", 16) + strings.Repeat("]", 16), 16, []string{"must be a JSON object"}, 1, 1, ""},
		{"depth 17 in object, max 16", nest(17), 16, []string{"nested deeper than 16 levels"}, 1, 22, ""},
		{"depth 17 in object, default max", nest(17), 0, []string{"nested deeper than 16 levels"}, 1, 22, ""},
		{"depth 3, max 2", `{"b": {"x": []}}`, 2, []string{"nested deeper than 2 levels"}, 1, 13, ""},
		{"bracket after a string still counts", `{"name": "{", "a": [[]]}`, 2, []string{"nested deeper than 2 levels"}, 1, 21, ""},
		{"invalid UTF-8 in string", "{\"name\": \"\xff\"}", 0, []string{"not valid UTF-8"}, 0, 0, ""},
		{"invalid UTF-8 outside string", "{\"name\": \"x\"}\xc3", 0, []string{"not valid UTF-8"}, 0, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v decodeTarget
			err := DecodeJSON([]byte(tt.body), &v, tt.maxDepth)
			if err == nil {
				t.Fatalf("DecodeJSON(%q): no error; got %+v", tt.body, v)
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("DecodeJSON(%q): %T %v, want *DecodeError", tt.body, err, err)
			}
			for _, p := range tt.problem {
				if !strings.Contains(de.Problem, p) {
					t.Errorf("DecodeJSON(%q): problem %q does not contain %q", tt.body, de.Problem, p)
				}
			}
			if de.Line != tt.line || de.Column != tt.column {
				t.Errorf("DecodeJSON(%q): at line %d, column %d; want line %d, column %d (%v)", tt.body, de.Line, de.Column, tt.line, tt.column, err)
			}
			if de.Field != tt.field {
				t.Errorf("DecodeJSON(%q): field %q, want %q", tt.body, de.Field, tt.field)
			}
			if de.Offset < 0 || de.Offset > int64(len(tt.body)) {
				t.Errorf("DecodeJSON(%q): offset %d out of range", tt.body, de.Offset)
			}
			if !de.InvalidInput() {
				t.Error("InvalidInput() = false")
			}
		})
	}
}

func TestDecodeJSONNorainaTrailingCommaMessage(t *testing.T) {
	var v decodeTarget
	err := DecodeJSON([]byte(norainaTrailingComma), &v, 0)
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, want := range []string{"trailing comma", "line 5, column 1"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not contain %q", msg, want)
		}
	}
}

func TestDecodeErrorError(t *testing.T) {
	tests := []struct {
		err  *DecodeError
		want string
	}{
		{&DecodeError{Problem: "request body is empty"}, "invalid JSON: request body is empty"},
		{&DecodeError{Problem: "trailing comma before '}'", Offset: 65, Line: 5, Column: 1}, "invalid JSON at line 5, column 1: trailing comma before '}'"},
		{&DecodeError{Problem: `field "b.x" must be a string, not a number`, Field: "b.x", Offset: 12, Line: 1, Column: 13}, `invalid JSON at line 1, column 13: field "b.x" must be a string, not a number`},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
	// The message a client sees for the noraina example, end to end.
	err := DecodeJSON([]byte(norainaTrailingComma), new(decodeTarget), 0)
	if want := "invalid JSON at line 5, column 1: trailing comma before '}'"; err == nil || err.Error() != want {
		t.Errorf("DecodeJSON(noraina example) = %v, want %q", err, want)
	}
}

// TestDecodeJSONKnownBugs documents positions and messages that are wrong
// today; see knownBug.
func TestDecodeJSONKnownBugs(t *testing.T) {
	decode := func(body string) *DecodeError {
		t.Helper()
		var v decodeTarget
		err := DecodeJSON([]byte(body), &v, 0)
		var de *DecodeError
		if !errors.As(err, &de) {
			t.Fatalf("DecodeJSON(%q) = %v, want a *DecodeError", body, err)
		}
		return de
	}
	t.Run("string that is not a number into json.Number", func(t *testing.T) {
		// encoding/json reports this with a plain error, which falls through
		// to decodeError's default case: no position, no field, and the
		// message is Go's ("json: invalid number literal, trying to
		// unmarshal ...").
		de := decode(`{"n": "abc"}`)
		knownBug(t, `non-numeric string into a json.Number field has no line/column/field and leaks encoding/json's message`,
			de.Line == 1 && de.Column == 7 && de.Field == "n" && !strings.Contains(de.Problem, "json:"), de)
	})
	t.Run("wrong type points at the start of the value", func(t *testing.T) {
		// UnmarshalTypeError.Offset is the end of a literal, so for
		// "12345" (columns 10-14) the column is 14.
		de := decode(`{"name": 12345}`)
		knownBug(t, "type error column is the last character of a string/number literal, not its first", de.Column == 10, de)
	})
	t.Run("wrong type string points at its opening quote", func(t *testing.T) {
		de := decode(`{"b": "text"}`)
		knownBug(t, "type error column is the closing quote of a string value, not its opening quote", de.Column == 7, de)
	})
	t.Run("json.Number field is described as a number", func(t *testing.T) {
		// json.Number's kind is string, so jsonKind says "a string".
		de := decode(`{"n": true}`)
		knownBug(t, `a json.Number field is described as "must be a string" (and the value as "bool" rather than "a boolean")`,
			strings.Contains(de.Problem, "must be a number"), de.Problem)
	})
	for _, tt := range []struct{ name, body string }{
		{"trailing object", `{"a": 1} {"b": 2}`},
		{"trailing string", `{"a": 1} "s"`},
		{"trailing number", `{"a": 1} 12`},
		{"trailing array", `{"a": 1} [1]`},
	} {
		t.Run("data after the object: "+tt.name, func(t *testing.T) {
			// dec.Token() consumes a valid token before InputOffset is read,
			// so the position is past the trailing value's first token.
			de := decode(tt.body)
			knownBug(t, "position of data after the object is InputOffset after dec.Token() consumed it, not where it starts (column 10)",
				de.Line == 1 && de.Column == 10, de)
		})
	}
	t.Run("syntax message does not repeat itself", func(t *testing.T) {
		de := decode(`{"a": tru}`)
		knownBug(t, `syntaxContext falls back to the whole encoding/json message, so the problem reads "invalid character '}': invalid character '}' in literal true ..."`,
			strings.Count(de.Problem, "invalid character") == 1, de.Problem)
	})
}

func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{
		norainaFull,
		norainaTrailingComma,
		`{"a": “Indiqus"}`,
		`{"name": "{[[", "n": 1.5e3, "b": {"x": "y"}}`,
		`{"b": {"x": 5}}`,
		`{"a": 1} {"b": 2}`,
		"{\"name\": \"\xff\"}",
		"",
		"[]",
		nest(17),
	} {
		f.Add([]byte(s), 0)
	}
	f.Add([]byte(nest(5)), 4)
	f.Fuzz(func(t *testing.T, body []byte, maxDepth int) {
		var v decodeTarget
		err := DecodeJSON(body, &v, maxDepth%40)
		depth := maxDepth % 40
		if depth <= 0 {
			depth = DefaultMaxDepth
		}
		if tb := trimJSONSpace(body); json.Valid(body) && utf8.Valid(body) && checkDepth(body, depth) == nil && tb[0] == '{' {
			// The walk that finds the first wrong type answers as
			// encoding/json would have.
			var w decodeTarget
			want := json.Unmarshal(body, &w)
			if want != nil {
				want = decodeError(body, want)
			}
			if (err == nil) != (want == nil) || (err != nil && want != nil && err.Error() != want.Error()) {
				t.Fatalf("DecodeJSON(%q) = %v, encoding/json says %v", body, err, want)
			}
		}
		if err == nil {
			if !json.Valid(body) {
				t.Fatalf("DecodeJSON(%q) accepted invalid JSON", body)
			}
			return
		}
		var de *DecodeError
		if !errors.As(err, &de) {
			t.Fatalf("DecodeJSON(%q): %T %v, want *DecodeError", body, err, err)
		}
		if de.Offset < 0 || de.Offset > int64(len(body)) {
			t.Fatalf("DecodeJSON(%q): offset %d outside 0..%d", body, de.Offset, len(body))
		}
		if de.Offset > 0 && de.Line < 1 {
			t.Fatalf("DecodeJSON(%q): offset %d but line %d", body, de.Offset, de.Line)
		}
		if de.Line >= 1 && de.Column < 1 {
			t.Fatalf("DecodeJSON(%q): line %d but column %d", body, de.Line, de.Column)
		}
		if de.Problem == "" || err.Error() == "" {
			t.Fatalf("DecodeJSON(%q): empty message", body)
		}
	})
}
