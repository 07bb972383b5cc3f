package rpost

import (
	_ "embed" // the OpenAPI document

	"github.com/caddyregister/caddyregister/caddyregister/contract"
)

// Document is the contract's OpenAPI 3.1 document (openapi.json), kept
// beside the routes it describes; the black-box tests validate real
// requests and responses against it.
//
//go:embed openapi.json
var Document []byte

// OpenAPI implements contract.Described.
func (c *Contract) OpenAPI() []byte { return Document }

// Interface guard.
var _ contract.Described = (*Contract)(nil)
