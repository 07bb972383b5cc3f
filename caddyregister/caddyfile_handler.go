package caddyregister

import (
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddyregister/caddyregister/caddyregister/contract"
)

// The register directive's Caddyfile syntax (the handler); the app's is
// in caddyfile.go with the helpers both use.

// parseHandler sets up the handler from:
//
//	register <contract> [<prefix>] {
//		rate_limit <route> <events>/<period> [burst <n>] | off
//		global_rate_limit <route> <events>/<period> [burst <n>] | off
//		password {
//			min_length <n>
//			max_length <n>
//			min_lowercase <n>
//			min_capital <n>
//			min_digits <n>
//			min_special <n>
//			no_spaces
//			not_identifier
//		}
//		max_body_size <bytes>
//		jwks off
//		captcha required|off
//		signup on|off
//		default_permissions <permission...>
//		default_object_permissions include|exclude <id...>
//		link_ttl <duration>
//		sessions {
//			idle <duration>
//			lifetime <duration>
//		}
//		public_url <url>
//		mail_template subject|text|html <file>
//	}
func parseHandler(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var hd Handler
	err := hd.UnmarshalCaddyfile(h.Dispenser)
	return &hd, err
}

// UnmarshalCaddyfile implements caddyfile.Unmarshaler.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if !d.NextArg() {
		return d.Errf("register needs a contract name")
	}
	h.Contract = d.Val()
	if d.NextArg() {
		h.Prefix = d.Val()
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "rate_limit":
			if err := routeLimitArgs(d, &h.RateLimits); err != nil {
				return err
			}
		case "global_rate_limit":
			if err := routeLimitArgs(d, &h.GlobalRateLimits); err != nil {
				return err
			}
		case "password":
			if d.NextArg() {
				return d.ArgErr()
			}
			p := new(PolicyConfig)
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				key := d.Val()
				switch key {
				case "no_spaces":
					p.NoSpaces = true
				case "not_identifier":
					p.NotIdentifier = true
				case "min_length", "max_length", "min_lowercase", "min_capital", "min_digits", "min_special":
					n, err := intArg(d)
					if err != nil {
						return err
					}
					*map[string]*int{
						"min_length": &p.MinLength, "max_length": &p.MaxLength,
						"min_lowercase": &p.MinLowercase, "min_capital": &p.MinCapital,
						"min_digits": &p.MinDigits, "min_special": &p.MinSpecial,
					}[key] = n
					continue
				default:
					return d.Errf("unknown password policy option %q", key)
				}
				if d.NextArg() {
					return d.ArgErr()
				}
			}
			h.Password = p
		case "max_body_size":
			if !d.NextArg() {
				return d.ArgErr()
			}
			n, err := parseSize(d.Val())
			if err != nil {
				return d.Errf("max_body_size: %v", err)
			}
			h.MaxBodySize = n
			if d.NextArg() {
				return d.ArgErr()
			}
		case "openapi":
			var v string
			if !d.AllArgs(&v) || (v != "on" && v != "off") {
				return d.Errf("openapi takes on or off")
			}
			h.OpenAPI = v == "on"
		case "jwks":
			var v string
			if !d.AllArgs(&v) || v != "off" {
				return d.Errf("jwks takes only 'off'")
			}
			h.DisableJWKS = true
		case "captcha":
			var v string
			if !d.AllArgs(&v) || (v != "required" && v != "off") {
				return d.Errf("captcha takes required or off")
			}
			h.Captcha = v
		case "signup":
			var v string
			if !d.AllArgs(&v) || (v != "on" && v != "off") {
				return d.Errf("signup takes on or off")
			}
			h.SignupDisabled = v == "off"
		case "default_permissions":
			h.DefaultPermissions = append(h.DefaultPermissions, d.RemainingArgs()...)
			if len(h.DefaultPermissions) == 0 {
				return d.ArgErr()
			}
		case "default_object_permissions":
			args := d.RemainingArgs()
			if len(args) < 2 || (args[0] != "include" && args[0] != "exclude") {
				return d.Errf("default_object_permissions include|exclude <id...>")
			}
			if h.DefaultObjectPermissions == nil {
				h.DefaultObjectPermissions = &contract.ObjectPermissions{Include: []string{}, Exclude: []string{}}
			}
			if args[0] == "include" {
				h.DefaultObjectPermissions.Include = append(h.DefaultObjectPermissions.Include, args[1:]...)
			} else {
				h.DefaultObjectPermissions.Exclude = append(h.DefaultObjectPermissions.Exclude, args[1:]...)
			}
		case "link_ttl":
			dur, err := durationArg(d)
			if err != nil {
				return err
			}
			h.LinkTTL = dur
		case "sessions":
			sc, err := sessionsBlock(d)
			if err != nil {
				return err
			}
			if sc.RefreshGrace != 0 {
				return d.Err("sessions refresh_grace belongs in the register app block")
			}
			h.Sessions = sc
		case "public_url":
			if !d.AllArgs(&h.PublicURL) {
				return d.ArgErr()
			}
		case "mail_template":
			var part, file string
			if !d.AllArgs(&part, &file) {
				return d.ArgErr()
			}
			if h.MailTemplate == nil {
				h.MailTemplate = new(contract.TemplateFiles)
			}
			switch part {
			case "subject":
				h.MailTemplate.Subject = file
			case "text":
				h.MailTemplate.Text = file
			case "html":
				h.MailTemplate.HTML = file
			default:
				return d.Errf("mail_template part must be subject, text or html")
			}
		default:
			// A contract-specific option.
			name := d.Val()
			known, ok := contract.OptionNames(h.Contract)
			if !ok {
				return d.Errf("unknown contract %q (known: %s)", h.Contract, strings.Join(contract.Names(), ", "))
			}
			if !slices.Contains(known, name) {
				return d.Errf("unknown register option %q for contract %s", name, h.Contract)
			}
			args := d.RemainingArgs()
			if d.NextBlock(d.Nesting()) {
				return d.Errf("option %q takes no block", name)
			}
			if h.Options == nil {
				h.Options = contract.Options{}
			}
			h.Options[name] = append(h.Options[name], args)
		}
	}
	return nil
}
