package caddyregister

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("register_auth", parseGate)
	// Right after request_header, which sits with Caddy's authentication
	// directives (basic_auth, forward_auth): before handle, route, respond
	// and reverse_proxy, so a handle block holding the app cannot run
	// ungated; and after request_header, so a site-wide
	// `request_header -X-User-*` keeps clients' own identity headers off
	// the paths the gate does not cover without deleting those it sets. It
	// is also before register: a register_auth without a matcher gates the
	// signup and login routes too, so it takes a matcher (or sits in the
	// app's handle block).
	httpcaddyfile.RegisterDirectiveOrder("register_auth", httpcaddyfile.After, "request_header")
}

// parseGate sets up register_auth from Caddyfile tokens:
//
//	register_auth [<matcher>] {
//		require <permission...>
//		allow_pending
//		header <Name> <field>       # id email login tenant permissions status sid kind
//		headers off
//		assertion <Header>
//		login_url <path or URL>
//		cookie <name>
//		basic
//		forward_token
//	}
func parseGate(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var g GateHandler
	err := g.UnmarshalCaddyfile(h.Dispenser)
	return &g, err
}

// UnmarshalCaddyfile implements caddyfile.Unmarshaler.
func (g *Gate) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	flag := func(v *bool) error {
		if d.NextArg() {
			return d.ArgErr()
		}
		*v = true
		return nil
	}
	one := func(v *string) error {
		if !d.NextArg() {
			return d.ArgErr()
		}
		*v = d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
		return nil
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "require":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			g.Require = append(g.Require, args...)
		case "allow_pending":
			err = flag(&g.AllowPending)
		case "header":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.Errf("header needs a name and a field (id, email, login, tenant, permissions, status, sid, kind)")
			}
			if g.Headers == nil {
				g.Headers = map[string]string{}
			}
			g.Headers[args[0]] = args[1]
		case "headers":
			var v string
			if err = one(&v); err == nil && v != "off" {
				return d.Errf("headers: only 'headers off' is known")
			}
			g.HeadersOff = true
		case "assertion":
			err = one(&g.Assertion)
		case "login_url":
			err = one(&g.LoginURL)
		case "cookie":
			err = one(&g.Cookie)
		case "basic":
			err = flag(&g.Basic)
		case "forward_token":
			err = flag(&g.ForwardToken)
		default:
			return d.Errf("register_auth: unknown option %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Interface guards.
var _ caddyfile.Unmarshaler = (*Gate)(nil)
