package soajs

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/caddyregister/caddyregister/caddyregister/password"
)

// The document's curl example: its query string and its form body.
const (
	docQuery = "tId=5551aca9e179c39b760f7a1a&tCode=DBTN"
	docForm  = "username=john&firstName=John&lastName=Doe&email=johndoe@domain.com"
	docJSON  = `{"username":"john","firstName":"John","lastName":"Doe","email":"johndoe@domain.com"}`
)

// Body encodings the fuzz target picks from.
var fuzzKinds = []string{formType, jsonType, ""}

// replyOf answers err as the contract does and decodes the envelope.
func replyOf(t *testing.T, err error) (int, errEnvelope) {
	t.Helper()
	c := &Contract{}
	rec := httptest.NewRecorder()
	c.WriteError(rec, httptest.NewRequest(http.MethodPost, "/urac/admin/addUser", nil), err)
	var env errEnvelope
	if e := json.Unmarshal(rec.Body.Bytes(), &env); e != nil {
		t.Fatalf("not the envelope: %v: %s", e, rec.Body)
	}
	var keys map[string]json.RawMessage
	_ = json.Unmarshal(rec.Body.Bytes(), &keys)
	if len(keys) != 2 || string(keys["result"]) != "false" {
		t.Fatalf("envelope members: %s", rec.Body)
	}
	return rec.Code, env
}

// FuzzDecodeAddUser feeds arbitrary bodies and query strings through both
// addUser decoders (form and JSON, and the sniffing of a body without a
// Content-Type) and the field checks: no panic, and every failure is
// answered in the envelope with codes of the documented set, each detail
// matching its code.
func FuzzDecodeAddUser(f *testing.F) {
	f.Add([]byte(docForm), docQuery, uint8(0))
	f.Add([]byte(docJSON), docQuery, uint8(1))
	f.Add([]byte(docForm), docQuery, uint8(2))
	f.Add([]byte(docJSON), "", uint8(2))
	f.Add([]byte(`username=j%20n&groups[]=a&groups[1]=b&pin[code]=1&pin[allowed]=maybe&profile={"a":1}&password=x&confirmation=y`), "tId=1", uint8(0))
	f.Add([]byte(`{"tId":5,"groups":"a","pin":{"code":1},"profile":{},"status":"nope","password":"12345678","confirmation":"12345678"}`), "tCode=A&tCode=B", uint8(1))
	f.Add([]byte(`{"profile":"[]","email":"a@b","username":"ü"}`), "", uint8(1))
	known := Codes()
	policy := password.NIST()
	f.Fuzz(func(t *testing.T, body []byte, rawQuery string, kind uint8) {
		query, _ := url.ParseQuery(rawQuery)
		in, err := decodeAs(fuzzKinds[int(kind)%len(fuzzKinds)], body)
		if err == nil {
			var a *addUserRequest
			var fs *Failures
			a, fs = parseAddUser(in, query, policy)
			if fs.err() == nil {
				// A request that passes is what the engine may take.
				if !validUsername(a.Username) || a.Email == "" || a.FirstName == "" || a.LastName == "" || a.TenantID == "" || a.TenantCode == "" {
					t.Fatalf("accepted an incomplete request: %+v", a)
				}
				if a.Profile != nil && !json.Valid(a.Profile) {
					t.Fatalf("profile kept as invalid JSON: %s", a.Profile)
				}
				return
			}
			err = fs
		}
		status, env := replyOf(t, err)
		if status != http.StatusOK && status != http.StatusBadRequest {
			t.Fatalf("status %d for %v", status, err)
		}
		if len(env.Errors.Codes) == 0 || len(env.Errors.Codes) != len(env.Errors.Details) {
			t.Fatalf("codes %v, details %v", env.Errors.Codes, env.Errors.Details)
		}
		for i, d := range env.Errors.Details {
			if !slices.Contains(known, d.Code) || env.Errors.Codes[i] != d.Code || d.Message == "" {
				t.Fatalf("detail %d: %+v (codes %v)", i, d, env.Errors.Codes)
			}
			switch d.Code {
			case CodeMissing:
				if !strings.HasPrefix(d.Message, "Missing required field: ") {
					t.Fatalf("172 message %q", d.Message)
				}
			case CodeInvalid:
				if !strings.HasPrefix(d.Message, "Validation failed for field: ") {
					t.Fatalf("173 message %q", d.Message)
				}
			default:
				if d.Message != messages[d.Code] {
					t.Fatalf("%d message %q", d.Code, d.Message)
				}
			}
		}
	})
}

func parse(t *testing.T, kind, body, query string) (*addUserRequest, []Detail) {
	t.Helper()
	in, err := decodeAs(kind, []byte(body))
	if err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
	q, _ := url.ParseQuery(query)
	a, f := parseAddUser(in, q, password.NIST())
	return a, f.details()
}

func TestDocumentExampleBothEncodings(t *testing.T) {
	for _, c := range []struct{ kind, body string }{{formType, docForm}, {jsonType, docJSON}, {"", docForm}, {"", docJSON}} {
		a, d := parse(t, c.kind, c.body, docQuery)
		if len(d) != 0 {
			t.Fatalf("%s: %v", c.kind, d)
		}
		if a.Username != "john" || a.FirstName != "John" || a.LastName != "Doe" || a.Email != "johndoe@domain.com" ||
			a.TenantID != "5551aca9e179c39b760f7a1a" || a.TenantCode != "DBTN" || a.Status != "pending" || a.Password != "" {
			t.Fatalf("%s: %+v", c.kind, a)
		}
	}
}

func TestFormArraysAndObjects(t *testing.T) {
	form := docForm + "&groups=a&groups[]=b&groups[1]=d&groups[0]=c&groups=a&pin[code]=1234&pin[allowed]=true&profile=" + url.QueryEscape(`{ "gender": "female" }`)
	js := `{"username":"john","firstName":"John","lastName":"Doe","email":"johndoe@domain.com","groups":["a","b","c","d"],"pin":{"code":"1234","allowed":true},"profile":"{ \"gender\": \"female\" }"}`
	for _, c := range []struct{ kind, body string }{{formType, form}, {jsonType, js}} {
		a, d := parse(t, c.kind, c.body, docQuery)
		if len(d) != 0 {
			t.Fatalf("%s: %v", c.kind, d)
		}
		if strings.Join(a.Groups, ",") != "a,b,c,d" || a.Pin == nil || a.Pin.Code != "1234" || !a.Pin.Allowed || string(a.Profile) != `{"gender":"female"}` {
			t.Fatalf("%s: %+v %+v %s", c.kind, a, a.Pin, a.Profile)
		}
	}
}

func TestBodyWinsOverQuery(t *testing.T) {
	a, d := parse(t, formType, docForm+"&tCode=OTHR", docQuery)
	if len(d) != 0 || a.TenantCode != "OTHR" || a.TenantID != "5551aca9e179c39b760f7a1a" {
		t.Fatalf("%+v %v", a, d)
	}
}

func codesOf(d []Detail) []int {
	var out []int
	for _, x := range d {
		out = append(out, x.Code)
	}
	return out
}

func TestFieldFailures(t *testing.T) {
	for _, c := range []struct {
		name, kind, body, query string
		codes                   []int
		contains                string
	}{
		{"nothing", jsonType, `{}`, "", []int{172, 172, 172, 172, 172, 172}, "Missing required field: tId"},
		{"empty form", formType, ``, docQuery, []int{172, 172, 172, 172}, "Missing required field: username"},
		{"username chars", formType, strings.Replace(docForm, "john", "jo hn", 1), docQuery, []int{173}, "username"},
		{"username type", jsonType, strings.Replace(docJSON, `"john"`, `5`, 1), docQuery, []int{173}, "username must be a string"},
		{"email", formType, strings.Replace(docForm, "johndoe@domain.com", "nope", 1), docQuery, []int{173}, "email"},
		{"profile object", jsonType, strings.Replace(docJSON, `}`, `,"profile":{"a":1}}`, 1), docQuery, []int{413}, ""},
		{"profile string", formType, docForm + "&profile=hello", docQuery, []int{413}, ""},
		{"profile array", formType, docForm + "&profile=[]", docQuery, []int{413}, ""},
		{"groups type", jsonType, strings.Replace(docJSON, `}`, `,"groups":"a"}`, 1), docQuery, []int{173}, "groups"},
		{"status", formType, docForm + "&status=gone", docQuery, []int{173}, "status"},
		{"mismatch", formType, docForm + "&password=correct+horse&confirmation=correct+hors", docQuery, []int{408}, ""},
		{"no confirmation", formType, docForm + "&password=correct+horse", docQuery, []int{408}, ""},
		{"weak", formType, docForm + "&password=short&confirmation=short", docQuery, []int{173}, "password"},
		{"same as login", formType, docForm + "&password=johndoe@domain.com&confirmation=johndoe@domain.com", docQuery, []int{173}, "password"},
		{"pin partial", formType, docForm + "&pin[code]=1", docQuery, []int{172}, "pin.allowed"},
		{"pin scalar", formType, docForm + "&pin=1", docQuery, []int{173}, "pin"},
		{"pin allowed type", jsonType, strings.Replace(docJSON, `}`, `,"pin":{"code":"1","allowed":"yes"}}`, 1), docQuery, []int{173}, "pin.allowed"},
		{"repeated username", formType, docForm + "&username=jane", docQuery, []int{173}, "single value"},
		{"several", formType, "firstName=John&email=bad&password=a&confirmation=b&profile=x", docQuery, []int{172, 172, 173, 413, 408}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, d := parse(t, c.kind, c.body, c.query)
			if !slices.Equal(codesOf(d), c.codes) {
				t.Fatalf("codes %v, want %v: %v", codesOf(d), c.codes, d)
			}
			if c.contains != "" && !strings.Contains(d[0].Message, c.contains) {
				t.Fatalf("message %q lacks %q", d[0].Message, c.contains)
			}
		})
	}
}

func TestUndecodableBodies(t *testing.T) {
	for _, c := range []struct{ kind, body string }{{jsonType, `{"username":`}, {jsonType, `[1]`}, {formType, "a=%zz"}, {"", `{"a":1,}`}} {
		_, err := decodeAs(c.kind, []byte(c.body))
		if err == nil {
			t.Fatalf("%q decoded", c.body)
		}
		status, env := replyOf(t, err)
		if status != http.StatusBadRequest || !slices.Equal(env.Errors.Codes, []int{173}) || !strings.Contains(env.Errors.Details[0].Message, "field: body") {
			t.Fatalf("%q: %d %+v", c.body, status, env)
		}
	}
}

func TestResetPasswordParse(t *testing.T) {
	for _, c := range []struct {
		body, query string
		codes       []int
	}{
		{`token=abc&password=correct+horse&confirmation=correct+horse`, "", nil},
		{`password=correct+horse&confirmation=correct+horse`, "token=abc", nil},
		{`password=correct+horse`, "token=abc", []int{172}},
		{`password=correct+horse&confirmation=other+horse`, "token=abc", []int{408}},
		{``, "", []int{172, 172, 172}},
	} {
		in, err := decodeAs(formType, []byte(c.body))
		if err != nil {
			t.Fatal(err)
		}
		q, _ := url.ParseQuery(c.query)
		tok, _, f := parseResetPassword(in, q)
		if got := codesOf(f.details()); !slices.Equal(got, c.codes) || (c.codes == nil && tok != "abc") {
			t.Fatalf("%q %q: %v %q", c.body, c.query, got, tok)
		}
	}
}

// Express' urlencoded parser refuses more than 1000 parameters with 413
// before parsing; 1000 pass.
func TestFormParameterLimit(t *testing.T) {
	many := docForm + strings.Repeat("&x=1", parameterLimit-4)
	if _, err := decodeAs(formType, []byte(many)); err != nil {
		t.Fatalf("1000 parameters: %v", err)
	}
	_, err := decodeAs(formType, []byte(many+"&x=1"))
	if err == nil {
		t.Fatal("1001 parameters decoded")
	}
	status, env := replyOf(t, err)
	if status != http.StatusRequestEntityTooLarge || !slices.Equal(env.Errors.Codes, []int{CodeTooLarge}) || !strings.Contains(env.Errors.Details[0].Message, "too many parameters (1001; at most 1000)") {
		t.Fatalf("%d %+v", status, env)
	}
}

// JSON fields are read as JSON.parse leaves them: the last of repeated
// names, escapes decoded, nested objects and lists.
func TestJSONFieldsAsJSONParse(t *testing.T) {
	body := `{"username":"first","firstName":"J\u00f6","lastName":"Doe","email":"johndoe@domain.com","\u0075sername":"second",` +
		`"groups":["b","a","b"],"pin":{"code":"1","allowed":true,"code":"2"},"tId":"5","tCode":"T"}`
	in, err := decodeAs(jsonType, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	a, f := parseAddUser(in, nil, password.NIST())
	if err := f.err(); err != nil {
		t.Fatal(err)
	}
	if a.Username != "second" || a.FirstName != "Jö" || !slices.Equal(a.Groups, []string{"b", "a"}) || a.Pin == nil || a.Pin.Code != "2" || !a.Pin.Allowed {
		t.Fatalf("%+v %+v", a, a.Pin)
	}
}
