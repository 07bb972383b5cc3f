// Package caddyregister is what `xcaddy build --with
// github.com/caddyregister/caddyregister` compiles in: it registers the
// register app and the http.handlers.register handler with Caddy.
package caddyregister

import (
	// Registers the Caddy modules.
	_ "github.com/caddyregister/caddyregister/caddyregister"
)
