package caddyregister

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	"github.com/caddyregister/caddyregister/caddyregister/ratelimit"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("register", parseGlobal)
	httpcaddyfile.RegisterHandlerDirective("register", parseHandler)
	httpcaddyfile.RegisterDirectiveOrder("register", httpcaddyfile.Before, "respond")
}

// parseGlobal sets up the register app from the global option:
//
//	register {
//		store redis <url> [<namespace>] | embedded [<path>] | <redis url>
//		store redis {
//			url <url> | cluster <host:port>... | sentinel <host:port>...
//			master <name>
//			username <user>
//			password <password>
//			tls
//			namespace <namespace>
//		}
//		signing_key <pem or placeholder>
//		key_encryption_key <placeholder>
//		issuer <iss>
//		token_ttl <duration>
//		admin <login> <hash> [<permission...>]
//		admin_login_limit <events>/<period> [burst <n>]
//		hash argon2id [<memory_kib> <time> <threads>] | bcrypt [<cost>]
//		hash_pool_size <n>
//		hash_queue_wait <duration>
//		rate_limit <route> <events>/<period> [burst <n>] | off
//		global_rate_limit <route> <events>/<period> [burst <n>] | off
//		ipv6_prefix <bits>
//		lockout {
//			network_failures <n>
//			failures <n>
//			wait_increment <duration>
//			max_wait <duration>
//			reset <duration>
//		}
//		smtp <url>
//		mail_from <address>
//		public_url <url>
//		captcha_length <n>
//		captcha_ttl <duration>
//		memory_limit auto|off|<size>
//		tenant <code> <id> [<name>...]
//		group <tenant code> <group code>...
//	}
func parseGlobal(d *caddyfile.Dispenser, _ any) (any, error) {
	app := new(App)
	if err := app.UnmarshalCaddyfile(d); err != nil {
		return nil, err
	}
	return httpcaddyfile.App{Name: "register", Value: caddyconfig.JSON(app, nil)}, nil
}

// UnmarshalCaddyfile fills the app from the global option's tokens. It only
// fills fields: placeholders are resolved in Provision.
func (a *App) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // option name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "store":
			if !d.NextArg() {
				return d.ArgErr()
			}
			sc := &StoreConfig{Backend: d.Val()}
			switch {
			case sc.Backend == "redis":
				if !d.NextArg() {
					// store redis { … }: the connection by parts.
					if err := parseRedisBlock(d, sc); err != nil {
						return err
					}
					break
				}
				sc.URL = d.Val()
				if d.NextArg() {
					sc.Namespace = d.Val()
				}
			case sc.Backend == "embedded":
				if d.NextArg() {
					sc.Path = d.Val()
				}
			case isRedisURL(sc.Backend):
				// Shorthand, so one environment variable can pick the
				// backend: store {$REGISTER_REDIS:embedded}.
				sc.Backend, sc.URL = "redis", sc.Backend
				if d.NextArg() {
					sc.Namespace = d.Val()
				}
			default:
				return d.Errf("unknown store backend %q (want redis <url>, redis { … }, embedded [<path>] or a redis:// url)", sc.Backend)
			}
			if d.NextArg() {
				return d.ArgErr()
			}
			a.Store = sc
		case "signing_key":
			if !d.AllArgs(&a.SigningKey) {
				return d.ArgErr()
			}
		case "key_encryption_key":
			if !d.AllArgs(&a.KeyEncryptionKey) {
				return d.ArgErr()
			}
		case "issuer":
			if !d.AllArgs(&a.Issuer) {
				return d.ArgErr()
			}
		case "token_ttl":
			dur, err := durationArg(d)
			if err != nil {
				return err
			}
			a.TokenTTL = dur
		case "admin":
			args := d.RemainingArgs()
			if len(args) < 2 {
				return d.Errf("admin needs <login> <hash> [<permission...>]")
			}
			a.Admins = append(a.Admins, AdminConfig{Login: args[0], Hash: args[1], Permissions: args[2:]})
		case "admin_login_limit":
			l, err := limitArgs(d)
			if err != nil {
				return err
			}
			a.AdminLoginLimit = l
		case "hash":
			args := d.RemainingArgs()
			hc, err := hashArgs(args)
			if err != nil {
				return d.Err(err.Error())
			}
			a.Hash = hc
		case "hash_pool_size":
			n, err := intArg(d)
			if err != nil {
				return err
			}
			a.HashPoolSize = n
		case "hash_queue_wait":
			dur, err := durationArg(d)
			if err != nil {
				return err
			}
			a.HashQueueWait = dur
		case "rate_limit":
			if err := routeLimitArgs(d, &a.RateLimits); err != nil {
				return err
			}
		case "global_rate_limit":
			if err := routeLimitArgs(d, &a.GlobalRateLimits); err != nil {
				return err
			}
		case "ipv6_prefix":
			n, err := intArg(d)
			if err != nil {
				return err
			}
			if n < 1 || n > 128 {
				return d.Errf("ipv6_prefix: want 1..128 bits, got %d", n)
			}
			a.IPv6Prefix = n
		case "lockout":
			lc, err := lockoutBlock(d)
			if err != nil {
				return err
			}
			a.Lockout = lc
		case "sessions":
			sc, err := sessionsBlock(d)
			if err != nil {
				return err
			}
			a.Sessions = sc
		case "smtp":
			if !d.AllArgs(&a.SMTP) {
				return d.ArgErr()
			}
		case "mail_from":
			if !d.AllArgs(&a.MailFrom) {
				return d.ArgErr()
			}
		case "public_url":
			if !d.AllArgs(&a.PublicURL) {
				return d.ArgErr()
			}
		case "tenant":
			args := d.RemainingArgs()
			if len(args) < 2 {
				return d.Errf("tenant needs <code> <id> [<name>...]")
			}
			t := TenantConfig{Code: args[0], ID: args[1], Name: strings.Join(args[2:], " ")}
			for _, x := range a.Tenants {
				if x.Code == t.Code || x.ID == t.ID {
					return d.Errf("tenant %s (%s) declared twice", t.Code, t.ID)
				}
			}
			a.Tenants = append(a.Tenants, t)
		case "group":
			args := d.RemainingArgs()
			if len(args) < 2 {
				return d.Errf("group needs <tenant code> <group code>...")
			}
			found := false
			for i := range a.Tenants {
				if a.Tenants[i].Code == args[0] {
					a.Tenants[i].Groups = append(a.Tenants[i].Groups, args[1:]...)
					found = true
				}
			}
			if !found {
				return d.Errf("group: declare tenant %s before its groups", args[0])
			}
		case "memory_limit":
			if !d.AllArgs(&a.MemoryLimit) {
				return d.ArgErr()
			}
			if a.MemoryLimit != "auto" && a.MemoryLimit != "off" {
				if _, err := parseSize(a.MemoryLimit); err != nil {
					return d.Errf("memory_limit: want auto, off or a size: %v", err)
				}
			}
		case "captcha_length":
			n, err := intArg(d)
			if err != nil {
				return err
			}
			a.CaptchaLength = n
		case "captcha_ttl":
			dur, err := durationArg(d)
			if err != nil {
				return err
			}
			a.CaptchaTTL = dur
		case "webhook":
			wc, err := webhookBlock(d)
			if err != nil {
				return err
			}
			a.Webhooks = append(a.Webhooks, wc)
		case "before_register":
			if a.BeforeRegister != nil {
				return d.Errf("before_register declared twice")
			}
			br, err := beforeRegisterBlock(d)
			if err != nil {
				return err
			}
			a.BeforeRegister = br
		case "webhook_retry":
			rs, err := webhookRetryArgs(d)
			if err != nil {
				return err
			}
			a.WebhookRetry = rs
		default:
			return d.Errf("unknown register option %q", d.Val())
		}
	}
	return nil
}

func intArg(d *caddyfile.Dispenser) (int, error) {
	opt := d.Val()
	var s string
	if !d.AllArgs(&s) {
		return 0, d.ArgErr()
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, d.Errf("%s: want a non-negative integer, got %q", opt, s)
	}
	return n, nil
}

func durationArg(d *caddyfile.Dispenser) (caddy.Duration, error) {
	var s string
	if !d.AllArgs(&s) {
		return 0, d.ArgErr()
	}
	dur, err := caddy.ParseDuration(s)
	if err != nil || dur <= 0 {
		return 0, d.Errf("want a positive duration, got %q", s)
	}
	return caddy.Duration(dur), nil
}

// routeLimitArgs reads "<route> <limit...>" into m.
func routeLimitArgs(d *caddyfile.Dispenser, m *map[string]*RateLimitConfig) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	route := d.Val()
	l, err := limitArgs(d)
	if err != nil {
		return err
	}
	if *m == nil {
		*m = map[string]*RateLimitConfig{}
	}
	(*m)[route] = l
	return nil
}

// lockoutBlock reads the lockout block's subdirectives.
func lockoutBlock(d *caddyfile.Dispenser) (*LockoutConfig, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	lc := new(LockoutConfig)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch key := d.Val(); key {
		case "network_failures", "failures":
			n, err := intArg(d)
			if err != nil {
				return nil, err
			}
			if n <= 0 {
				return nil, d.Errf("lockout %s: want a positive number, got %d", key, n)
			}
			if key == "failures" {
				lc.Failures = n
			} else {
				lc.NetworkFailures = n
			}
		case "wait_increment", "max_wait", "reset":
			dur, err := durationArg(d)
			if err != nil {
				return nil, err
			}
			if dur <= 0 {
				return nil, d.Errf("lockout %s: want a positive duration", key)
			}
			*map[string]*caddy.Duration{"wait_increment": &lc.WaitIncrement, "max_wait": &lc.MaxWait, "reset": &lc.Reset}[key] = dur
		default:
			return nil, d.Errf("unknown lockout option %q", key)
		}
	}
	return lc, nil
}

// sessionsBlock reads
//
//	sessions {
//		idle <duration>
//		lifetime <duration>
//		refresh_grace <duration>|off
//	}
func sessionsBlock(d *caddyfile.Dispenser) (*SessionsConfig, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	sc := new(SessionsConfig)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch key := d.Val(); key {
		case "refresh_grace":
			args := d.RemainingArgs()
			if len(args) != 1 {
				return nil, d.ArgErr()
			}
			if args[0] == "off" {
				sc.RefreshGrace = -1
				continue
			}
			dur, err := caddy.ParseDuration(args[0])
			if err != nil || dur <= 0 {
				return nil, d.Errf("sessions refresh_grace: want a positive duration or off, got %q", args[0])
			}
			sc.RefreshGrace = caddy.Duration(dur)
		case "idle", "lifetime":
			dur, err := durationArg(d)
			if err != nil {
				return nil, err
			}
			if dur <= 0 {
				return nil, d.Errf("sessions %s: want a positive duration", key)
			}
			if key == "idle" {
				sc.Idle = dur
			} else {
				sc.Lifetime = dur
			}
		default:
			return nil, d.Errf("unknown sessions option %q", key)
		}
	}
	return sc, nil
}

// limitArgs reads "<events>/<period> [burst <n>]" or "off".
func limitArgs(d *caddyfile.Dispenser) (*RateLimitConfig, error) {
	args := d.RemainingArgs()
	if len(args) == 1 && args[0] == "off" {
		return &RateLimitConfig{}, nil
	}
	if len(args) != 1 && len(args) != 3 {
		return nil, d.Errf("rate limit: want <events>/<period> [burst <n>] or off")
	}
	l, err := ratelimit.ParseLimit(args[0])
	if err != nil {
		return nil, d.Err(err.Error())
	}
	rc := &RateLimitConfig{Rate: l.Rate, Period: caddy.Duration(l.Period), Burst: l.Burst}
	if len(args) == 3 {
		if args[1] != "burst" {
			return nil, d.Errf("rate limit: unexpected %q (want burst <n>)", args[1])
		}
		b, err := strconv.Atoi(args[2])
		if err != nil || b <= 0 {
			return nil, d.Errf("rate limit: burst must be a positive integer")
		}
		rc.Burst = b
	}
	return rc, nil
}

func hashArgs(args []string) (*HashConfig, error) {
	if len(args) == 0 {
		return nil, fmt.Errorf("hash needs argon2id or bcrypt")
	}
	hc := &HashConfig{Algorithm: strings.ToLower(args[0])}
	nums := make([]int, 0, len(args)-1)
	for _, a := range args[1:] {
		n, err := strconv.ParseUint(a, 10, 32)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("hash: %q is not a positive integer below 2^32", a)
		}
		nums = append(nums, int(n))
	}
	switch hc.Algorithm {
	case "argon2id":
		switch len(nums) {
		case 0:
		case 3:
			if nums[2] > 255 {
				return nil, fmt.Errorf("hash argon2id: threads must be at most 255")
			}
			hc.MemoryKiB, hc.Time, hc.Threads = uint32(nums[0]), uint32(nums[1]), uint8(nums[2])
		default:
			return nil, fmt.Errorf("hash argon2id takes no numbers or <memory_kib> <time> <threads>")
		}
	case "bcrypt":
		switch len(nums) {
		case 0:
		case 1:
			hc.Cost = nums[0]
		default:
			return nil, fmt.Errorf("hash bcrypt takes at most a cost")
		}
	default:
		return nil, fmt.Errorf("unknown hash %q (want argon2id or bcrypt)", args[0])
	}
	return hc, nil
}

// parseSize reads a byte count with an optional KB/KiB/MB/MiB suffix.
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"kib", 1 << 10}, {"mib", 1 << 20}, {"kb", 1000}, {"mb", 1000 * 1000}, {"k", 1 << 10}, {"m", 1 << 20}, {"b", 1}}
	ls := strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(ls, u.suffix) {
			ls, mult = strings.TrimSpace(strings.TrimSuffix(ls, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(ls, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("want a positive size like 64KiB, got %q", s)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return n * mult, nil
}

// Interface guards.
var (
	_ caddyfile.Unmarshaler = (*Handler)(nil)
)
