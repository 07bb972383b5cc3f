package soajs

import (
	"bytes"
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/caddyregister/caddyregister/caddyregister/contract"
	"github.com/caddyregister/caddyregister/caddyregister/password"
)

// input is a decoded body: a JSON object's members or a form's values, read
// with the same accessors so both encodings follow the same rules. Each
// accessor reports present false for an absent field (or JSON null), and in
// bad why a present value has the wrong type.
type input interface {
	str(name string) (val string, present bool, bad string)
	strs(name string) (vals []string, present bool, bad string)
	obj(name string) (in input, present bool, bad string)
	boolean(name string) (val, present bool, bad string)
}

// decodeBody reads the body by its Content-Type; without one, a body that
// starts with "{" is JSON and anything else a form (curl -d sends a form).
// A body that is neither is a *contract.DecodeError (JSON) or *Failures
// with status 400 (form).
func decodeBody(r *http.Request, body []byte) (input, error) {
	kind := ""
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err == nil {
			kind = strings.ToLower(mt)
		}
	}
	return decodeAs(kind, body)
}

// DecodeAddUser decodes body as the addUser route does for a request of
// Content-Type kind (a media type, or "" to sniff) and reads its fields
// with the NIST password policy: the entry point of the decoder worst-case
// benchmark (internal/decodebench).
func DecodeAddUser(kind string, body []byte) error {
	in, err := decodeAs(kind, body)
	if err != nil {
		return err
	}
	_, f := parseAddUser(in, nil, password.NIST())
	return f.err()
}

func decodeAs(kind string, body []byte) (input, error) {
	trimmed := bytes.TrimSpace(body)
	if kind == "" {
		kind = formType
		if len(trimmed) > 0 && trimmed[0] == '{' {
			kind = jsonType
		}
	}
	if kind == jsonType {
		m := map[string]json.RawMessage{}
		if len(trimmed) == 0 {
			// An empty body is an empty object, as Express' parser has it:
			// every required field is then missing.
			return jsonInput(m), nil
		}
		if err := contract.DecodeJSON(body, &m, 0); err != nil {
			return nil, err
		}
		return jsonInput(m), nil
	}
	if !utf8.Valid(body) {
		f := &Failures{Status: http.StatusBadRequest}
		f.add(0, CodeInvalid, invalidMsg("body", "the form is not valid UTF-8"))
		return nil, f
	}
	v, err := url.ParseQuery(string(body))
	if err != nil {
		f := &Failures{Status: http.StatusBadRequest}
		f.add(0, CodeInvalid, invalidMsg("body", "invalid form encoding: "+err.Error()))
		return nil, f
	}
	return formInput{v: v}, nil
}

// jsonInput is a JSON object's members.
type jsonInput map[string]json.RawMessage

func isNull(r json.RawMessage) bool {
	return r == nil || bytes.Equal(bytes.TrimSpace(r), []byte("null"))
}

func (j jsonInput) str(name string) (string, bool, string) {
	r, ok := j[name]
	if !ok || isNull(r) {
		return "", false, ""
	}
	var s string
	if err := json.Unmarshal(r, &s); err != nil {
		return "", true, "must be a string"
	}
	return s, true, ""
}

func (j jsonInput) strs(name string) ([]string, bool, string) {
	r, ok := j[name]
	if !ok || isNull(r) {
		return nil, false, ""
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(r, &raw); err != nil {
		return nil, true, "must be an array of strings"
	}
	out := make([]string, 0, len(raw))
	for _, e := range raw {
		var s string
		if isNull(e) || json.Unmarshal(e, &s) != nil {
			return nil, true, "must be an array of strings"
		}
		out = append(out, s)
	}
	return out, true, ""
}

func (j jsonInput) obj(name string) (input, bool, string) {
	r, ok := j[name]
	if !ok || isNull(r) {
		return nil, false, ""
	}
	t := bytes.TrimSpace(r)
	m := map[string]json.RawMessage{}
	if len(t) == 0 || t[0] != '{' || json.Unmarshal(t, &m) != nil {
		return nil, true, "must be an object"
	}
	return jsonInput(m), true, ""
}

func (j jsonInput) boolean(name string) (bool, bool, string) {
	r, ok := j[name]
	if !ok || isNull(r) {
		return false, false, ""
	}
	var b bool
	if err := json.Unmarshal(r, &b); err != nil {
		return false, true, "must be a boolean"
	}
	return b, true, ""
}

// formInput is a form's values; prefix scopes it to one object
// ("pin" reads pin[code]).
type formInput struct {
	v      url.Values
	prefix string
}

func (f formInput) key(name string) string {
	if f.prefix == "" {
		return name
	}
	return f.prefix + "[" + name + "]"
}

// subKeys returns the keys that start with k + "[".
func (f formInput) subKeys(k string) []string {
	var out []string
	for key := range f.v {
		if strings.HasPrefix(key, k+"[") {
			out = append(out, key)
		}
	}
	return out
}

func (f formInput) str(name string) (string, bool, string) {
	k := f.key(name)
	vs, ok := f.v[k]
	if len(f.subKeys(k)) > 0 {
		return "", true, "must be a string"
	}
	if !ok {
		return "", false, ""
	}
	if len(vs) > 1 {
		return "", true, "must be a single value, not a list"
	}
	if !utf8.ValidString(vs[0]) {
		return "", true, "must be valid UTF-8 text"
	}
	return vs[0], true, ""
}

func (f formInput) strs(name string) ([]string, bool, string) {
	k := f.key(name)
	out, present := append([]string(nil), f.v[k]...), len(f.v[k]) > 0
	out = append(out, f.v[k+"[]"]...)
	present = present || len(f.v[k+"[]"]) > 0
	// groups[0]=a&groups[1]=b, in index order.
	type indexed struct {
		i int
		v []string
	}
	var idx []indexed
	for _, key := range f.subKeys(k) {
		if key == k+"[]" {
			continue
		}
		inner := strings.TrimSuffix(strings.TrimPrefix(key, k+"["), "]")
		n, err := strconv.Atoi(inner)
		if err != nil || n < 0 || !strings.HasSuffix(key, "]") || strings.ContainsAny(inner, "[]") {
			return nil, true, "must be an array of strings"
		}
		idx = append(idx, indexed{n, f.v[key]})
	}
	for i := 1; i < len(idx); i++ {
		for j := i; j > 0 && idx[j].i < idx[j-1].i; j-- {
			idx[j], idx[j-1] = idx[j-1], idx[j]
		}
	}
	for _, x := range idx {
		out = append(out, x.v...)
		present = true
	}
	for _, s := range out {
		if !utf8.ValidString(s) {
			return nil, true, "must be an array of valid UTF-8 strings"
		}
	}
	return out, present, ""
}

func (f formInput) obj(name string) (input, bool, string) {
	k := f.key(name)
	if _, ok := f.v[k]; ok {
		return nil, true, "must be an object"
	}
	if len(f.subKeys(k)) == 0 {
		return nil, false, ""
	}
	return formInput{v: f.v, prefix: k}, true, ""
}

func (f formInput) boolean(name string) (bool, bool, string) {
	s, present, bad := f.str(name)
	if !present || bad != "" {
		return false, present, bad
	}
	switch s {
	case "true":
		return true, true, ""
	case "false":
		return false, true, ""
	default:
		return false, true, "must be a boolean (true or false)"
	}
}
