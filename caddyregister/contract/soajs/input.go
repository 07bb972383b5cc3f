package soajs

import (
	"bytes"
	"cmp"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
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
		if len(trimmed) == 0 {
			// An empty body is an empty object, as Express' parser has it:
			// every required field is then missing.
			return jsonInput{}, nil
		}
		if err := contract.CheckJSON(body, 0); err != nil {
			return nil, err
		}
		return indexJSON(body), nil
	}
	if !utf8.Valid(body) {
		f := &Failures{Status: http.StatusBadRequest}
		f.add(0, CodeInvalid, invalidMsg("body", "the form is not valid UTF-8"))
		return nil, f
	}
	// Express' urlencoded parser refuses more than parameterLimit pairs
	// with 413, before parsing: a map entry for each of thousands of tiny
	// pairs would cost many times the body.
	if n := bytes.Count(body, []byte("&")) + 1; n > parameterLimit {
		f := &Failures{Status: http.StatusRequestEntityTooLarge}
		f.add(0, CodeTooLarge, fmt.Sprintf("The form has too many parameters (%d; at most %d).", n, parameterLimit))
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

// parameterLimit is body-parser's default parameterLimit for forms.
const parameterLimit = 1000

// jsonFields are the member names the routes read, at any level: a JSON
// body is indexed by these alone.
var jsonFields = []string{
	"tId", "tCode", "username", "firstName", "lastName", "email", "profile", "groups", "status",
	"password", "confirmation", "pin", "code", "allowed", "token", "id", "name",
}

var jsonNames = contract.NewNameSet(false, jsonFields...)

// jsonInput is a JSON object that passed contract.DecodeJSON, indexed in
// one walk by the names in jsonFields (the last of repeated names, as
// JSON.parse keeps it). Other members are skipped without a copy: a map of
// every member would cost a few dozen bytes for each of thousands.
type jsonInput map[string][]byte

func indexJSON(obj []byte) jsonInput {
	j := jsonInput{}
	contract.Members(obj, func(m contract.JSONMember) bool {
		if name, ok := jsonNames.Find(m.Key); ok {
			j[name] = m.Value
		}
		return true
	})
	return j
}

// member returns name's value; null counts as absent. Reading a name
// missing from jsonFields is a bug that every test of the route trips on.
func (j jsonInput) member(name string) ([]byte, bool) {
	if !slices.Contains(jsonFields, name) {
		panic("soajs: " + name + " is missing from jsonFields")
	}
	r, ok := j[name]
	if !ok || contract.IsNull(r) {
		return nil, false
	}
	return r, true
}

func (j jsonInput) str(name string) (string, bool, string) {
	r, ok := j.member(name)
	if !ok {
		return "", false, ""
	}
	s, ok := contract.Unquote(r)
	if !ok {
		return "", true, "must be a string"
	}
	return s, true, ""
}

func (j jsonInput) strs(name string) ([]string, bool, string) {
	r, ok := j.member(name)
	if !ok {
		return nil, false, ""
	}
	if r[0] != '[' {
		return nil, true, "must be an array of strings"
	}
	n, bad := 0, false
	contract.Elements(r, func(v []byte) bool {
		n++
		bad = v[0] != '"'
		return !bad
	})
	if bad {
		return nil, true, "must be an array of strings"
	}
	out := make([]string, 0, n)
	contract.Elements(r, func(v []byte) bool {
		s, _ := contract.Unquote(v)
		out = append(out, s)
		return true
	})
	return out, true, ""
}

func (j jsonInput) obj(name string) (input, bool, string) {
	r, ok := j.member(name)
	if !ok {
		return nil, false, ""
	}
	if r[0] != '{' {
		return nil, true, "must be an object"
	}
	return indexJSON(r), true, ""
}

func (j jsonInput) boolean(name string) (bool, bool, string) {
	r, ok := j.member(name)
	if !ok {
		return false, false, ""
	}
	switch string(r) {
	case "true":
		return true, true, ""
	case "false":
		return false, true, ""
	default:
		return false, true, "must be a boolean"
	}
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
	slices.SortStableFunc(idx, func(a, b indexed) int { return cmp.Compare(a.i, b.i) })
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
