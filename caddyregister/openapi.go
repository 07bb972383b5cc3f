package caddyregister

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path"
	"strings"

	"github.com/caddyregister/caddyregister/caddyregister/contract"
)

// OpenAPIPath is where, under its prefix, a handler with openapi on
// serves its contract's OpenAPI document.
const OpenAPIPath = "/openapi.json"

// provisionOpenAPI precomputes the document the handler serves: the
// contract's, with servers naming the handler's prefix (the contract
// documents are written for their documented prefix, and a handler may be
// mounted elsewhere). Done once here, so serving it costs a write.
func (h *Handler) provisionOpenAPI() error {
	h.openapiDoc = nil
	if !h.OpenAPI {
		return nil
	}
	d, ok := h.contract.(contract.Described)
	if !ok {
		return fmt.Errorf("register handler: contract %s has no OpenAPI document", h.Contract)
	}
	doc, err := withServer(d.OpenAPI(), h.Prefix)
	if err != nil {
		return fmt.Errorf("register handler: contract %s: openapi document: %w", h.Contract, err)
	}
	h.openapiDoc = doc
	return nil
}

// withServer returns doc with its servers replaced by the one prefix
// ("/" for a handler at the root). Path-level servers (indiqus' login,
// mounted outside the prefix) are left as they are.
func withServer(doc []byte, prefix string) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(doc, &m); err != nil {
		return nil, err
	}
	if prefix == "" {
		prefix = "/"
	}
	servers, err := json.Marshal([]map[string]string{{"url": prefix, "description": "this handler's prefix"}})
	if err != nil {
		return nil, err
	}
	m["servers"] = servers
	return json.Marshal(m)
}

// isOpenAPIPath matches the document's path as lookup matches routes.
func (h *Handler) isOpenAPIPath(p string) bool {
	want := h.Prefix + OpenAPIPath
	if p == want {
		return true
	}
	c := path.Clean(p)
	if h.foldRoutes != nil {
		return strings.EqualFold(c, want)
	}
	return c == want
}

// serveOpenAPI writes the precomputed document. Integrators fetch it
// from tools on other origins (generators, viewers), and it holds nothing
// secret, so any origin may read it.
func (h *Handler) serveOpenAPI(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	if r.Method == http.MethodHead {
		return nil
	}
	_, err := w.Write(h.openapiDoc)
	return err
}
