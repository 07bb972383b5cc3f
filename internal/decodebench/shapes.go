// Package decodebench feeds every request decoder (the shared JSON decoder
// and each contract's) the worst bodies an anonymous client can send
// within the body limit, and measures what they cost. The test beside it
// holds the allocation bound (bytes allocated < 8× the body), and
// internal/bench (make bench) prints the time against one argon2id hash:
// decoding runs before any rate or pool check, so it must stay far below
// the cost it protects.
package decodebench

import (
	"fmt"
	"strings"
)

// BodySize is the handler's default body limit
// (caddyregister.DefaultMaxBodySize; a test keeps them equal): every shape
// is filled up to it.
const BodySize = 64 << 10

// MaxDepth is the shared decoder's nesting limit
// (contract.DefaultMaxDepth; a test keeps them equal).
const MaxDepth = 16

// Shape is one worst-case body.
type Shape struct {
	Name string
	Body []byte
}

// fields are the names a decoder reads, used to aim shapes at the code
// paths that do work (a known member is converted, an unknown one
// skipped).
type fields struct {
	// Str is a string member of the top-level object.
	Str string
	// Arr is an array-of-strings member ("" if none: Str is used).
	Arr string
	// Obj is an object member ("" if none: Str is used).
	Obj string
	// NumOpen, Num and NumClose place a json.Number member ("" if none):
	// NumOpen opens the objects around it.
	NumOpen, Num, NumClose string
}

// fill repeats item(i) separated by sep between open and close, as many
// times as fit in BodySize.
func fill(open string, item func(i int) string, sep, close string) []byte {
	var b strings.Builder
	b.WriteString(open)
	for i := 0; ; i++ {
		it := item(i)
		extra := len(it)
		if i > 0 {
			extra += len(sep)
		}
		if b.Len()+extra+len(close) > BodySize {
			break
		}
		if i > 0 {
			b.WriteString(sep)
		}
		b.WriteString(it)
	}
	b.WriteString(close)
	return []byte(b.String())
}

// pad fills one string value so that the whole body is BodySize.
func pad(open, unit, close string) []byte {
	n := (BodySize - len(open) - len(close)) / len(unit)
	return []byte(open + strings.Repeat(unit, n) + close)
}

func same(s string) func(int) string { return func(int) string { return s } }

// escapeAll writes every byte of an ASCII name as a \u escape.
func escapeAll(name string) string {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		fmt.Fprintf(&b, `\u%04x`, name[i])
	}
	return b.String()
}

// nest wraps v in n arrays.
func nest(n int, v string) string {
	return strings.Repeat("[", n) + v + strings.Repeat("]", n)
}

// nestObj wraps v in n objects of one member "a".
func nestObj(n int, v string) string {
	return strings.Repeat(`{"a":`, n) + v + strings.Repeat("}", n)
}

// jsonShapes are the worst JSON bodies for a decoder reading f.
func jsonShapes(f fields) []Shape {
	s, arr, obj := f.Str, f.Arr, f.Obj
	if arr == "" {
		arr = s
	}
	if obj == "" {
		obj = s
	}
	q := func(k string) string { return `"` + k + `":` }
	shapes := []Shape{
		{"repeated " + s, fill("{", same(q(s)+`"a"`), ",", "}")},
		{"repeated " + s + ", one a line", fill("{\n", same(q(s)+`"a"`), ",\n", "\n}")},
		{"repeated " + s + " in mixed case", fill("{", func(i int) string {
			if i%2 == 1 {
				return q(strings.ToUpper(s)) + `"a"`
			}
			return q(strings.ToLower(s)) + `"a"`
		}, ",", "}")},
		{"tiny unknown members", fill("{", same(`"":0`), ",", "}")},
		{"distinct unknown keys", fill("{", func(i int) string { return fmt.Sprintf(`"%x":0`, i) }, ",", "}")},
		{"long unknown keys", fill("{", func(i int) string { return fmt.Sprintf(`"%0120x":0`, i) }, ",", "}")},
		{"escaped " + s + " keys", fill("{", same(`"`+escapeAll(s)+`":"a"`), ",", "}")},
		{"escaped unknown keys", fill("{", func(i int) string { return `"` + escapeAll(fmt.Sprintf("%x", i)) + `":0` }, ",", "}")},
		{"long string", pad("{"+q(s)+`"`, "a", `"}`)},
		{"long string of \\u escapes", pad("{"+q(s)+`"`, `\u00e9`, `"}`)},
		{"long string of \\n escapes", pad("{"+q(s)+`"`, `\n`, `"}`)},
		{"long string of surrogate pairs", pad("{"+q(s)+`"`, `\ud83d\ude00`, `"}`)},
		{"long string of lone surrogates", pad("{"+q(s)+`"`, `\ud83d`, `"}`)},
		{"long number", pad("{"+q(s), "1", "}")},
		{"deep arrays", fill("{", same(q(s)+nest(MaxDepth-1, "0")), ",", "}")},
		{"deep objects", fill("{", same(q(obj)+nestObj(MaxDepth-1, "0")), ",", "}")},
		{"wide arrays", fill("{", same(q(s)+"[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]"), ",", "}")},
		{"one long array", fill("{"+q(arr)+"[", same(`"a"`), ",", "]}")},
		{"one long array of empty arrays", fill("{"+q(arr)+"[", same(`[]`), ",", "]}")},
		{"one object of many members", fill("{"+q(obj)+"{", func(i int) string { return fmt.Sprintf(`"%x":0`, i) }, ",", "}}")},
		{"wrong type numbers", fill("{", same(q(s)+"1"), ",", "}")},
		{"wrong type objects", fill("{", same(q(s)+"{}"), ",", "}")},
		{"wrong type booleans", fill("{", same(q(s)+"true"), ",", "}")},
		{"nulls", fill("{", same(q(s)+"null"), ",", "}")},
		{"syntax error at the end", fill("{", same(q(s)+`"a"`), ",", ",}")},
		{"unclosed at the end", fill("{", same(q(s)+`"a"`), ",", "")},
	}
	if f.Num != "" {
		shapes = append(shapes, Shape{"non-numbers for " + f.Num, fill(f.NumOpen, same(q(f.Num)+`"x"`), ",", f.NumClose)})
	}
	return shapes
}

// formShapes are the worst application/x-www-form-urlencoded bodies for a
// decoder reading the string field str and the array field arr.
func formShapes(str, arr string) []Shape {
	return []Shape{
		{"repeated " + str, fill("", same(str+"=a"), "&", "")},
		{"tiny unknown pairs", fill("", same("a"), "&", "")},
		{"empty pairs", pad("", "&", "")},
		{"distinct unknown keys", fill("", func(i int) string { return fmt.Sprintf("%x=", i) }, "&", "")},
		{"escaped " + str + " keys", fill("", same(strings.ReplaceAll(escapeAll(str), `\u00`, "%")+"=a"), "&", "")},
		{"indexed " + arr, fill("", func(i int) string { return fmt.Sprintf("%s[%d]=a", arr, i) }, "&", "")},
		{"appended " + arr, fill("", same(arr+"[]=a"), "&", "")},
		{"sub keys of " + str, fill("", func(i int) string { return fmt.Sprintf("%s[%x]=a", str, i) }, "&", "")},
		{"long value", pad(str+"=", "a", "")},
		{"long escaped value", pad(str+"=", "%C3%A9", "")},
		{"long value of plus signs", pad(str+"=", "+", "")},
		{"bad escape at the end", fill("", same(str+"=a"), "&", "&%zz")},
	}
}
