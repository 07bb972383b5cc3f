package caddyregister

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddyregister/caddyregister/caddyregister/contract"

	"github.com/caddyregister/caddyregister/caddyregister/contract/indiqus"
)

// TestHandlerOpenAPICaddyfile: openapi on|off fills Handler.OpenAPI
// (JSON "openapi"); anything else is refused at adapt time.
func TestHandlerOpenAPICaddyfile(t *testing.T) {
	for in, want := range map[string]bool{
		"register noraina":                    false,
		"register noraina {\n openapi on\n}":  true,
		"register noraina {\n openapi off\n}": false,
	} {
		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in)); err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if h.OpenAPI != want {
			t.Errorf("%q: OpenAPI %v, want %v", in, h.OpenAPI, want)
		}
		b, _ := json.Marshal(h)
		if got := strings.Contains(string(b), `"openapi":true`); got != want {
			t.Errorf("%q: JSON %s", in, b)
		}
	}
	for _, in := range []string{"register noraina {\n openapi\n}", "register noraina {\n openapi yes\n}", "register noraina {\n openapi on off\n}"} {
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in))
		if err == nil || !strings.Contains(err.Error(), "openapi takes on or off") {
			t.Errorf("%q: error %v, want 'openapi takes on or off'", in, err)
		}
	}
}

// TestWithServer: the served document names the handler's prefix as its
// one server ("/" at the root) and keeps everything else, path-level
// servers included.
func TestWithServer(t *testing.T) {
	for prefix, want := range map[string]string{"/signup/api": "/signup/api", "": "/"} {
		b, err := withServer(indiqus.Document, prefix)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			OpenAPI string `json:"openapi"`
			Servers []struct {
				URL string `json:"url"`
			} `json:"servers"`
			Paths map[string]struct {
				Servers []struct {
					URL string `json:"url"`
				} `json:"servers"`
			} `json:"paths"`
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		if len(doc.Servers) != 1 || doc.Servers[0].URL != want {
			t.Errorf("prefix %q: servers %+v, want one %q", prefix, doc.Servers, want)
		}
		if doc.OpenAPI != "3.1.0" || len(doc.Paths) != 5 {
			t.Errorf("prefix %q: openapi %q with %d paths", prefix, doc.OpenAPI, len(doc.Paths))
		}
		if s := doc.Paths["/auth/login"].Servers; len(s) != 1 || s[0].URL != "/" {
			t.Errorf("prefix %q: the login's path-level servers are %+v, want /", prefix, s)
		}
	}
	if _, err := withServer([]byte("not json"), "/api"); err == nil {
		t.Error("withServer accepted a document that is not JSON")
	}
}

// apiContracts are the contracts that must ship an OpenAPI document.
var apiContracts = []string{"account", "indiqus", "noraina", "rpost", "saymon", "soajs"}

// TestOpenAPIStatusesOfTheHandler: what the handler adds in front of
// every route is in each document: a route that reads a body can answer
// 400, 413 and 415 and one that reads none cannot; a route refused to
// cross-site requests (crossSiteGuarded) documents 403; every route
// documents 429 (limits are the operator's to set), 500 and 503.
func TestOpenAPIStatusesOfTheHandler(t *testing.T) {
	opts := map[string]contract.Options{"noraina": {"activation": {{"email"}}}, "account": {"cookie": {{"session"}}}}
	for _, name := range contract.Names() {
		f, _ := contract.Lookup(name)
		c, err := f(contract.Env{Prefix: "/p", Options: opts[name]})
		if err != nil {
			t.Fatal(err)
		}
		d, ok := c.(contract.Described)
		if !ok {
			// Only APIs have documents (the pages contract serves HTML).
			if slices.Contains(apiContracts, name) {
				t.Errorf("contract %s has no OpenAPI document", name)
			}
			continue
		}
		var doc struct {
			Paths map[string]map[string]json.RawMessage `json:"paths"`
		}
		if err := json.Unmarshal(d.OpenAPI(), &doc); err != nil {
			t.Fatal(err)
		}
		for _, rt := range c.Routes() {
			raw, ok := doc.Paths[rt.Path][strings.ToLower(rt.Method)]
			if !ok {
				t.Errorf("%s %s %s: not documented", name, rt.Method, rt.Path)
				continue
			}
			var op struct {
				Responses map[string]json.RawMessage `json:"responses"`
			}
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatal(err)
			}
			has := func(s string) bool { _, ok := op.Responses[s]; return ok }
			for _, s := range []string{"429", "500", "503"} {
				if !has(s) {
					t.Errorf("%s %s %s: %s not documented", name, rt.Method, rt.Path, s)
				}
			}
			body := len(rt.ContentTypes) > 0
			for _, s := range []string{"413", "415"} {
				if has(s) != body {
					t.Errorf("%s %s %s: reads a body %v, documents %s %v", name, rt.Method, rt.Path, body, s, has(s))
				}
			}
			if body && !has("400") {
				t.Errorf("%s %s %s: reads a body, 400 not documented", name, rt.Method, rt.Path)
			}
			if crossSiteGuarded(&rt) && !has("403") {
				t.Errorf("%s %s %s: refused cross-site, 403 not documented", name, rt.Method, rt.Path)
			}
		}
	}
}
