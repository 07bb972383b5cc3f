package tests

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

// TestConformanceCatchesDrift holds the checker itself to account: each
// kind of drift between a contract and its document is reported, and the
// exchanges a document allows pass. No server: the exchanges are made up.
func TestConformanceCatchesDrift(t *testing.T) {
	const base = "http://localhost:1"
	cfg := "http://localhost:1 {\n\tregister noraina /api {\n\t\tactivation email\n\t}\n\tregister soajs\n\trespond \"fallback\" 200\n}\n"
	js := http.Header{"Content-Type": {"application/json"}}
	jsonRes := func(status int, body string) *response {
		return &response{Status: status, Header: http.Header{"Content-Type": {"application/json; charset=utf-8"}}, Body: []byte(body)}
	}
	allow := func(r *response) *response { r.Header.Set("Allow", "POST"); return r }
	created := `{"status":"success","data":{"message":"User successfully created.","token":"t"}}`
	good := `{"name":"A","mail":"a@example.com","password":"pw"}`
	cases := []struct {
		name                 string
		method, target, body string
		header               http.Header
		res                  *response
		want                 string // "" passes
	}{
		{"documented exchange", "POST", "/api/register", good, js, jsonRes(201, created), ""},
		{"path cleaned as the handler cleans it", "POST", "/api//register/", good, js, jsonRes(201, created), ""},
		{"bad input refused by both", "POST", "/api/register", `{"name":1}`, js, jsonRes(400, `{"status":"error","message":"Invalid request.","data":null}`), ""},
		{"soajs refuses with 200 and its envelope", "POST", "/urac/admin/addUser", `{"status":"bogus"}`, js, jsonRes(200, `{"result":false,"errors":{"codes":[173],"details":[{"code":173,"message":"x"}]}}`), ""},
		{"the fallback is not the handler's", "GET", "/api/nothing", "", nil, &response{Status: 200, Body: []byte("fallback")}, ""},
		{"wrong method answered 405", "PUT", "/api/register", "", nil, allow(jsonRes(405, `{"status":"error","message":"Method not allowed.","data":null}`)), ""},

		{"undocumented status", "POST", "/api/register", good, js, jsonRes(202, created), "status"},
		{"body off its schema", "POST", "/api/register", good, js, jsonRes(201, `{"status":"success","data":{"message":"Created.","token":"t"}}`), "doesn't match"},
		{"error envelope off its schema", "POST", "/api/register", good, js, jsonRes(409, `{"error":"exists"}`), "doesn't match"},
		{"undocumented content type", "POST", "/api/register", good, js, &response{Status: 201, Header: http.Header{"Content-Type": {"text/plain"}}, Body: []byte("ok")}, "Content-Type"},
		{"undocumented route answered by the handler", "GET", "/api/users", "", nil, jsonRes(200, `{}`), errNotDocumented.Error()},
		{"a method the document lacks answered", "PUT", "/api/register", "", nil, jsonRes(200, created), "method not in the document"},
		{"405 without Allow", "PUT", "/api/register", "", nil, jsonRes(405, `{"status":"error","message":"Method not allowed.","data":null}`), "without Allow"},
		{"405 off the contract's envelope", "PUT", "/api/register", "", nil, allow(jsonRes(405, `{"error":"method"}`)), "405 body"},
		{"document stricter than the server", "POST", "/api/register", `{"name":"A"}`, js, jsonRes(201, created), "the document refuses the request"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := c.header
			if h == nil {
				h = http.Header{}
			}
			err := conformance(base, cfg, c.method, c.target, h, []byte(c.body), c.res)
			switch {
			case c.want == "" && err != nil:
				t.Errorf("reported %v", err)
			case c.want != "" && err == nil:
				t.Errorf("not reported (want %q)", c.want)
			case c.want != "" && !strings.Contains(err.Error(), c.want) && !errors.Is(err, errNotDocumented):
				t.Errorf("reported %v, want %q", err, c.want)
			}
		})
	}
}
