package contract

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// Members, KeyEqual and Unquote read what encoding/json reads.
func TestMembersAgreeWithEncodingJSON(t *testing.T) {
	body := []byte(` { "a" : "x" , "\u0062":[1,{"c":"]}"}], "a\"b": "\ud83d\ude00\n\u00e9", "lone":"\ud83d!", "e":{"f":[]},"n":null ,"t":true}`)
	var want map[string]json.RawMessage
	if err := json.Unmarshal(body, &want); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	Members(body, func(m JSONMember) bool {
		got[UnquoteKey(m.Key)] = string(m.Value)
		if string(body[m.ValueStart:m.ValueStart+len(m.Value)]) != string(m.Value) || body[m.KeyEnd-1] != '"' {
			t.Errorf("offsets of %s: key end %d, value start %d", m.Key, m.KeyEnd, m.ValueStart)
		}
		return true
	})
	if len(got) != len(want) {
		t.Fatalf("members %v, encoding/json %v", got, want)
	}
	for k, v := range want {
		if got[k] != string(v) {
			t.Errorf("member %q = %s, encoding/json %s", k, got[k], v)
		}
		var ws string
		if json.Unmarshal(v, &ws) == nil && string(v) != "null" {
			if gs, ok := Unquote([]byte(got[k])); !ok || gs != ws {
				t.Errorf("Unquote(%s) = %q, encoding/json %q", v, gs, ws)
			}
		}
	}
	if v, ok := Member(body, "b"); !ok || string(v) != `[1,{"c":"]}"}]` {
		t.Errorf(`Member "b" = %s, %v`, v, ok)
	}
	var els []string
	Elements([]byte(`[ "a" ,[1,2], {"x":[]} ,3]`), func(v []byte) bool { els = append(els, string(v)); return true })
	if strings.Join(els, "|") != `"a"|[1,2]|{"x":[]}|3` {
		t.Errorf("elements %q", els)
	}
}

func TestKeyEqual(t *testing.T) {
	for _, c := range []struct {
		key, name  string
		fold, want bool
	}{
		{"Email", "Email", false, true},
		{"email", "Email", false, false},
		{"email", "Email", true, true},
		{`\u0045mail`, "Email", false, true},
		{`\u0065MAIL`, "Email", true, true},
		{"Emai", "Email", true, false},
		{"Emaill", "Email", true, false},
		{"\u212a", "k", true, true}, // Kelvin sign folds to k, as strings.EqualFold has it
		{"@", "`", true, false},
		{`\ud83d\ude00`, "😀", false, true},
	} {
		if got := KeyEqual([]byte(c.key), c.name, c.fold); got != c.want {
			t.Errorf("KeyEqual(%q, %q, %v) = %v", c.key, c.name, c.fold, got)
		}
	}
}

// The first of many values of the wrong type is reported, with its path,
// as encoding/json reports it.
func TestDecodeJSONFirstTypeError(t *testing.T) {
	body := `{"name":"ok","b":{"x":"y"},"b":{"x":5},"name":1,` + strings.Repeat(`"name":2,`, 1000) + `"n":true}`
	var v decodeTarget
	err := DecodeJSON([]byte(body), &v, 0)
	var de *DecodeError
	if !errors.As(err, &de) || de.Field != "b.x" || !strings.Contains(de.Problem, `field "b.x" must be a string, not a number`) {
		t.Fatalf("got %v (%+v)", err, de)
	}
	if de.Column != len(`{"name":"ok","b":{"x":"y"},"b":{"x":`)+1 {
		t.Errorf("column %d", de.Column)
	}
}

func TestNameSet(t *testing.T) {
	exact := NewNameSet(false, "email", "tId")
	fold := NewNameSet(true, "Email", "IsAdminUser", "Kind")
	for _, c := range []struct {
		set  *NameSet
		key  string
		want string
	}{
		{exact, "email", "email"},
		{exact, "Email", ""},
		{exact, `\u0074Id`, "tId"},
		{exact, "tid", ""},
		{fold, "email", "Email"},
		{fold, `EM\u0041IL`, "Email"},
		{fold, "isadminuser", "IsAdminUser"},
		{fold, "\u212aind", "Kind"}, // Kelvin sign
		{fold, "Emails", ""},
		{fold, strings.Repeat("a", 300), ""},
	} {
		got, ok := c.set.Find([]byte(c.key))
		if got != c.want || ok != (c.want != "") {
			t.Errorf("Find(%q) = %q, %v; want %q", c.key, got, ok, c.want)
		}
	}
}

// A string that holds no number, bound to a json.Number, is refused even
// when a later member of that name holds one, as encoding/json stops at it.
func TestDecodeJSONBadNumberBeforeGoodOne(t *testing.T) {
	var v decodeTarget
	err := DecodeJSON([]byte(`{"n":"x","n":1,"b":{"x":"y"}}`), &v, 0)
	var de *DecodeError
	if !errors.As(err, &de) || de.Field != "n" || !strings.Contains(de.Problem, `field "n" must be a number, not a string`) {
		t.Fatalf("got %v", err)
	}
	for _, s := range []string{"0", "-1", "1.5e3", "12E-2", "-0.0"} {
		if !validNumber(s) {
			t.Errorf("validNumber(%q) = false", s)
		}
	}
	for _, s := range []string{"", "-", "01", "1.", ".5", "1e", "+1", "1x", " 1"} {
		if validNumber(s) {
			t.Errorf("validNumber(%q) = true", s)
		}
	}
}
