package tests

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	rpostapi "github.com/caddyregister/caddyregister/caddyregister/contract/rpost"
)

// TestOpenAPIServed: with openapi on, a handler serves its contract's
// document at {prefix}/openapi.json (application/json, servers naming the
// prefix, a valid OpenAPI 3.1 document with the contract's paths; indiqus'
// login at its configured login_path, "/" at the root); without it the
// path is not the handler's (the site's fallback answers).
func TestOpenAPIServed(t *testing.T) {
	s := startSite(t, backendRedis, "", `register rpost /signup/v1 {
		openapi on
	}
	register indiqus / {
		openapi on
		login_path /signin
	}
	register noraina /api`)

	load := func(path, wantServer string) *openapi3.T {
		t.Helper()
		res := s.do(http.MethodGet, path, nil, "")
		if res.Status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, res.Status, res.Body)
		}
		if ct := res.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("GET %s: Content-Type %q, want application/json", path, ct)
		}
		doc, err := openapi3.NewLoader().LoadFromData(res.Body)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		if err := doc.Validate(context.Background()); err != nil {
			t.Fatalf("GET %s: invalid document: %v", path, err)
		}
		if !doc.IsOpenAPI31OrLater() {
			t.Errorf("GET %s: openapi %q, want 3.1", path, doc.OpenAPI)
		}
		if len(doc.Servers) != 1 || doc.Servers[0].URL != wantServer {
			t.Errorf("GET %s: servers %v, want one %q", path, doc.Servers, wantServer)
		}
		return doc
	}

	rp := load("/signup/v1/openapi.json", "/signup/v1")
	var want struct {
		Paths map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(rpostapi.Document, &want); err != nil {
		t.Fatal(err)
	}
	for p := range want.Paths {
		if rp.Paths.Value(p) == nil {
			t.Errorf("served rpost document lacks %s", p)
		}
	}
	if rp.Paths.Len() != len(want.Paths) {
		t.Errorf("served rpost document has %d paths, the contract's %d", rp.Paths.Len(), len(want.Paths))
	}
	// rpost's paths are case-insensitive (ASP.NET); so is its document's.
	if res := s.do(http.MethodGet, "/SIGNUP/v1/OpenAPI.json", nil, ""); res.Status != http.StatusOK {
		t.Errorf("GET /SIGNUP/v1/OpenAPI.json: %d", res.Status)
	}
	if res := s.do(http.MethodHead, "/signup/v1/openapi.json", nil, ""); res.Status != http.StatusOK || len(res.Body) != 0 {
		t.Errorf("HEAD: %d with %d bytes", res.Status, len(res.Body))
	}

	ind := load("/openapi.json", "/")
	var paths []string
	for p := range ind.Paths.Map() {
		paths = append(paths, p)
	}
	if !slices.Contains(paths, "/signin") || slices.Contains(paths, "/auth/login") {
		t.Errorf("indiqus paths %v: want the login at /signin", paths)
	}

	// Off by default: the path is not noraina's, the fallback answers.
	if res := s.do(http.MethodGet, "/api/openapi.json", nil, ""); res.Status != http.StatusOK || string(res.Body) != "fallback" {
		t.Errorf("GET /api/openapi.json without openapi on: %d %s, want the fallback", res.Status, res.Body)
	}
}
