package contract

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestActivationGET(t *testing.T) {
	for accept, want := range map[string]bool{
		"":          false,
		"*/*":       false,
		"text/html": false,
		"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8": false,
		"application/*":                     false,
		"text/html, application/json;q=0.5": false,
		"application/json;q=0":              false,
		"application/json":                  true,
		"Application/JSON":                  true,
		"application/problem+json":          true,
		"application/json, text/html":       true,
		"application/json;q=0.9, */*;q=0.1": true,
		"garbage;;;":                        false,
	} {
		r := httptest.NewRequest("GET", "/confirm?token=x", nil)
		if accept != "" {
			r.Header.Set("Accept", accept)
		}
		if got := ActivationGET(r); got != want {
			t.Errorf("Accept %q: activates = %v, want %v", accept, got, want)
		}
	}
}

func TestActivationToken(t *testing.T) {
	for _, c := range []struct{ ct, body, query, want string }{
		{"application/x-www-form-urlencoded", "token=body", "token=query", "body"},
		{"", "token=body", "", "body"},
		{"application/json", `{"token":"json"}`, "token=query", "json"},
		{"application/json", `{}`, "token=query", "query"},
		{"", "", "token=query", "query"},
		{"", "", "", ""},
	} {
		r := httptest.NewRequest("POST", "/confirm?"+c.query, strings.NewReader(c.body))
		if c.ct != "" {
			r.Header.Set("Content-Type", c.ct)
		}
		got, err := ActivationToken(r, []byte(c.body), "token")
		if err != nil || got != c.want {
			t.Errorf("%+v: %q, %v", c, got, err)
		}
	}
	for _, body := range []string{`{"token":1}`, `[`, `{"token":`} {
		r := httptest.NewRequest("POST", "/confirm", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		if _, err := ActivationToken(r, []byte(body), "token"); err == nil {
			t.Errorf("%s accepted", body)
		}
	}
	r := httptest.NewRequest("POST", "/confirm", nil)
	if _, err := ActivationToken(r, []byte("%zz"), "token"); err == nil {
		t.Error("bad form accepted")
	}
}
