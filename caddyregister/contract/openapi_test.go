package contract_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/caddyregister/caddyregister/caddyregister/contract"
	"github.com/caddyregister/caddyregister/caddyregister/contract/account"
	"github.com/caddyregister/caddyregister/caddyregister/contract/indiqus"
	"github.com/caddyregister/caddyregister/caddyregister/contract/noraina"
	"github.com/caddyregister/caddyregister/caddyregister/contract/rpost"
	"github.com/caddyregister/caddyregister/caddyregister/contract/saymon"
	"github.com/caddyregister/caddyregister/caddyregister/contract/soajs"
)

// documents are the contracts' OpenAPI documents, by contract name.
var documents = map[string][]byte{
	account.Name: account.Document,
	indiqus.Name: indiqus.Document,
	noraina.Name: noraina.Document,
	rpost.Name:   rpost.Document,
	saymon.Name:  saymon.Document,
	soajs.Name:   soajs.Document,
}

// TestOpenAPIDocumentsValidate loads every contract's document as an
// OpenAPI 3.1 document and validates it (kin-openapi).
func TestOpenAPIDocumentsValidate(t *testing.T) {
	if got, want := len(documents), len(contract.Names()); got != want {
		t.Fatalf("%d documents for %d contracts (%v)", got, want, contract.Names())
	}
	for name, b := range documents {
		t.Run(name, func(t *testing.T) {
			doc, err := openapi3.NewLoader().LoadFromData(b)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			if !doc.IsOpenAPI31OrLater() {
				t.Fatalf("openapi %q, want 3.1", doc.OpenAPI)
			}
			if err := doc.Validate(context.Background()); err != nil {
				t.Fatalf("validate: %v", err)
			}
		})
	}
}

// TestOpenAPIDocumentsCoverRoutes checks each document against the route
// table of its contract, built with options that serve every route: every
// route has its operation, and every operation a route.
func TestOpenAPIDocumentsCoverRoutes(t *testing.T) {
	opts := map[string]contract.Options{
		noraina.Name: {"activation": {{"email"}}},
	}
	for name := range documents {
		t.Run(name, func(t *testing.T) {
			f, _ := contract.Lookup(name)
			c, err := f(contract.Env{Prefix: "/p", Options: opts[name]})
			if err != nil {
				t.Fatal(err)
			}
			var doc struct {
				Paths map[string]map[string]json.RawMessage `json:"paths"`
			}
			if err := json.Unmarshal(c.(contract.Described).OpenAPI(), &doc); err != nil {
				t.Fatal(err)
			}
			var routes, ops []string
			for _, rt := range c.Routes() {
				routes = append(routes, rt.Method+" "+rt.Path)
			}
			for p, item := range doc.Paths {
				for m := range item {
					switch m {
					case "get", "post", "put", "patch", "delete", "head", "options":
						ops = append(ops, strings.ToUpper(m)+" "+p)
					}
				}
			}
			slices.Sort(routes)
			slices.Sort(ops)
			if !slices.Equal(routes, ops) {
				t.Errorf("routes and documented operations differ:\nroutes     %q\noperations %q", routes, ops)
			}
		})
	}
}
