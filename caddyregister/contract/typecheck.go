package contract

import (
	"encoding/json"
	"reflect"
	"strings"
	"sync"
)

// encoding/json keeps decoding after a value of the wrong type and
// allocates an error for each one before it returns the first: a 64 KiB
// body of one field repeated with the wrong type cost a dozen times its
// size. firstTypeError finds that first error by walking the body against
// the target's type, without allocating, so DecodeJSON answers it without
// running encoding/json at all.

var (
	unmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	numberType      = reflect.TypeFor[json.Number]()
)

// structField is one field encoding/json decodes into.
type structField struct {
	name  string
	index int
	typ   reflect.Type
}

// structFields are a struct's fields and the sets that find them by name.
type structFields struct {
	list        []structField
	exact, fold *NameSet
}

// find is encoding/json's choice of field for a member name: an exact
// match first, then one under case folding.
func (sf *structFields) find(key []byte) *structField {
	name, ok := sf.exact.Find(key)
	if !ok {
		if name, ok = sf.fold.Find(key); !ok {
			return nil
		}
	}
	for k := range sf.list {
		if sf.list[k].name == name {
			return &sf.list[k]
		}
	}
	return nil
}

var fieldCache sync.Map // reflect.Type → *structFields

// fieldsOf lists t's exported fields under their JSON names. Embedded
// structs are not followed: no request type uses them (and a field this
// walk does not know is only skipped, as encoding/json then checks it).
func fieldsOf(t reflect.Type) *structFields {
	if fs, ok := fieldCache.Load(t); ok {
		return fs.(*structFields)
	}
	var fs []structField
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() || f.Anonymous {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fs = append(fs, structField{name: name, index: i, typ: f.Type})
	}
	names := make([]string, len(fs))
	for k := range fs {
		names[k] = fs[k].name
	}
	sf := &structFields{list: fs, exact: NewNameSet(false, names...), fold: NewNameSet(true, names...)}
	fieldCache.Store(t, sf)
	return sf
}

// badNumber marks a string bound to a json.Number that holds no number:
// DecodeJSON lets encoding/json report it.
const badNumber = "string that is no number"

// validNumber is JSON's number grammar, which encoding/json requires of a
// string bound to a json.Number.
func validNumber(s string) bool {
	i := 0
	digits := func() int {
		n := 0
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case digits() == 0:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}

// jsonKindOf names the JSON value starting with c as encoding/json's
// UnmarshalTypeError does.
func jsonKindOf(c byte) string {
	switch c {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "bool"
	default:
		return "number"
	}
}

// firstTypeError returns the first value of the valid JSON b[i:] that
// encoding/json would refuse to store into a t, in document order and as
// encoding/json reports it, or nil. Targets it cannot judge (custom
// unmarshalers, interfaces, number ranges) pass, and encoding/json judges
// them.
func firstTypeError(b []byte, i int, t reflect.Type, path []string) *json.UnmarshalTypeError {
	if i >= len(b) || b[i] == 'n' {
		return nil
	}
	for t.Kind() == reflect.Pointer {
		if t.Implements(unmarshalerType) {
			return nil
		}
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return nil
	}
	kind := jsonKindOf(b[i])
	bad := func() *json.UnmarshalTypeError {
		off := i + 1 // containers: just past their start
		if kind != "object" && kind != "array" {
			off = skipValue(b, i) // literals: their end
		}
		return &json.UnmarshalTypeError{Value: kind, Type: t, Offset: int64(off), Field: strings.Join(path, ".")}
	}
	switch t.Kind() {
	case reflect.String:
		if t == numberType && kind == "string" {
			// encoding/json takes a string that holds a number, and
			// stops at one that does not, with its own error.
			if str, ok := Unquote(b[i:skipValue(b, i)]); !ok || !validNumber(str) {
				return &json.UnmarshalTypeError{Value: badNumber, Type: t, Offset: int64(i)}
			}
			return nil
		}
		if kind == "string" || (t == numberType && kind == "number") {
			return nil
		}
		return bad()
	case reflect.Bool:
		if kind == "bool" {
			return nil
		}
		return bad()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64:
		if kind == "number" {
			return nil
		}
		return bad()
	case reflect.Slice, reflect.Array:
		if kind == "string" && t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8 {
			return nil // base64
		}
		if kind != "array" {
			return bad()
		}
		var te *json.UnmarshalTypeError
		Elements(b[i:], func(v []byte) bool {
			// v is a slice of b: its offset is what its capacity lacks.
			te = firstTypeError(b, cap(b)-cap(v), t.Elem(), path)
			return te == nil
		})
		return te
	case reflect.Map:
		if kind != "object" {
			return bad()
		}
		var te *json.UnmarshalTypeError
		Members(b[i:], func(m JSONMember) bool {
			te = firstTypeError(b, i+m.ValueStart, t.Elem(), path)
			return te == nil
		})
		return te
	case reflect.Struct:
		if kind != "object" {
			return bad()
		}
		fs := fieldsOf(t)
		var te *json.UnmarshalTypeError
		Members(b[i:], func(m JSONMember) bool {
			f := fs.find(m.Key)
			if f == nil {
				return true
			}
			te = firstTypeError(b, i+m.ValueStart, f.typ, append(path, f.name))
			return te == nil
		})
		return te
	default:
		return nil
	}
}

// knownMembers returns the object body with only the last of the
// top-level members for each field of a struct t (as JSON.parse keeps the
// last of repeated names), or nil when that is the body itself (or t is
// no struct). It checks the body's syntax before it copies anything.
func knownMembers(body []byte, t reflect.Type) ([]byte, error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || reflect.PointerTo(t).Implements(unmarshalerType) {
		return nil, nil
	}
	fs := fieldsOf(t)
	last := make([]JSONMember, len(fs.list))
	n, drop := 0, false
	Members(body, func(m JSONMember) bool {
		n++
		f := fs.find(m.Key)
		if f == nil {
			drop = true
			return true
		}
		k := f.index
		for j := range fs.list {
			if &fs.list[j] == f {
				k = j
			}
		}
		if last[k].Key != nil {
			drop = true
		}
		last[k] = m
		return true
	})
	if !drop {
		return nil, nil
	}
	if err := syntaxError(body); err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(body))
	out = append(out, '{')
	for _, m := range last {
		if m.Key == nil {
			continue
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		// The key is valid JSON string text, copied as written.
		out = append(out, '"')
		out = append(out, m.Key...)
		out = append(out, '"', ':')
		out = append(out, m.Value...)
	}
	return append(out, '}'), nil
}
