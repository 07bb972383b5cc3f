package caddyregister

// The demo Caddyfile's access log uses Caddy's filter encoder, which the
// caddy binary (cmd/caddy) registers with the standard modules; adapting
// the demo here needs it too.
import _ "github.com/caddyserver/caddy/v2/modules/logging"
