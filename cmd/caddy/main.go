// Command caddy is stock Caddy with caddyregister compiled in:
// `go run ./cmd/caddy run` serves the demo Caddyfile.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// Stock Caddy's modules.
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	// This plugin.
	_ "github.com/caddyregister/caddyregister"
)

func main() {
	caddycmd.Main()
}
