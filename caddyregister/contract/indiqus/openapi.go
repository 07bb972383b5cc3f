package indiqus

import (
	_ "embed" // the OpenAPI document
	"encoding/json"

	"github.com/caddyregister/caddyregister/caddyregister/contract"
)

// Document is the contract's OpenAPI 3.1 document (openapi.json), kept
// beside the routes it describes; the black-box tests validate real
// requests and responses against it. Its login route sits at the default
// login_path, outside the prefix (a path-level server "/").
//
//go:embed openapi.json
var Document []byte

// defaultLoginPath is where Document puts the login route.
const defaultLoginPath = "/auth/login"

// OpenAPI implements contract.Described: Document, with the login route
// moved to this handler's login_path.
func (c *Contract) OpenAPI() []byte {
	if c.cfg.LoginPath == defaultLoginPath {
		return Document
	}
	var doc map[string]json.RawMessage
	var paths map[string]json.RawMessage
	if json.Unmarshal(Document, &doc) != nil || json.Unmarshal(doc["paths"], &paths) != nil {
		return Document // the embedded document is valid JSON (tested)
	}
	paths[c.cfg.LoginPath] = paths[defaultLoginPath]
	delete(paths, defaultLoginPath)
	b, err := json.Marshal(paths)
	if err != nil {
		return Document
	}
	doc["paths"] = b
	if b, err = json.Marshal(doc); err != nil {
		return Document
	}
	return b
}

// Interface guard.
var _ contract.Described = (*Contract)(nil)
