package caddyregister

import (
	"encoding/json"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile" // the "caddyfile" adapter
)

const (
	minute = caddy.Duration(60e9)
	second = caddy.Duration(1e9)
)

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return string(b)
}

// knownBug guards a fixed bug: the check fails with the bug's description.
func knownBug(t *testing.T, bug string, ok bool, got string) {
	t.Helper()
	if !ok {
		t.Errorf("regression: %s (got %s)", bug, got)
	}
}

func TestAppUnmarshalCaddyfileGood(t *testing.T) {
	bcryptHash := "$2a$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW"
	tests := []struct {
		name  string
		input string
		want  App
	}{
		{"bare option", `register`, App{}},
		{"empty block", "register {\n}", App{}},
		{"store redis url", "register {\n store redis redis://127.0.0.1:6379/0\n}",
			App{Store: &StoreConfig{Backend: "redis", URL: "redis://127.0.0.1:6379/0"}}},
		{"store redis url namespace", "register {\n store redis {env.REDIS_URL} tenantA\n}",
			App{Store: &StoreConfig{Backend: "redis", URL: "{env.REDIS_URL}", Namespace: "tenantA"}}},
		{"signing_key placeholder", "register {\n signing_key {file./etc/caddy/jwt.pem}\n}",
			App{SigningKey: "{file./etc/caddy/jwt.pem}"}},
		{"signing_key quoted pem", "register {\n signing_key `-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----`\n}",
			App{SigningKey: "-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----"}},
		{"key_encryption_key placeholder", "register {\n key_encryption_key {env.REGISTER_KEY_ENCRYPTION_KEY}\n}",
			App{KeyEncryptionKey: "{env.REGISTER_KEY_ENCRYPTION_KEY}"}},
		{"issuer", "register {\n issuer https://auth.example.com\n}", App{Issuer: "https://auth.example.com"}},
		{"token_ttl minutes", "register {\n token_ttl 10m\n}", App{TokenTTL: 10 * minute}},
		{"token_ttl days", "register {\n token_ttl 1d\n}", App{TokenTTL: 24 * 60 * minute}},
		{"admin without permissions", "register {\n admin alice " + bcryptHash + "\n}",
			App{Admins: []AdminConfig{{Login: "alice", Hash: bcryptHash}}}},
		{"admins with permissions", "register {\n admin alice {env.ALICE_HASH} manage-users read-users\n admin {env.BOB} {env.BOB_HASH} manage-users\n}",
			App{Admins: []AdminConfig{
				{Login: "alice", Hash: "{env.ALICE_HASH}", Permissions: []string{"manage-users", "read-users"}},
				{Login: "{env.BOB}", Hash: "{env.BOB_HASH}", Permissions: []string{"manage-users"}},
			}}},
		{"admin_login_limit", "register {\n admin_login_limit 5/m\n}",
			App{AdminLoginLimit: &RateLimitConfig{Rate: 5, Period: minute, Burst: 5}}},
		{"admin_login_limit burst", "register {\n admin_login_limit 5/m burst 2\n}",
			App{AdminLoginLimit: &RateLimitConfig{Rate: 5, Period: minute, Burst: 2}}},
		{"admin_login_limit off", "register {\n admin_login_limit off\n}",
			App{AdminLoginLimit: &RateLimitConfig{}}},
		{"global_rate_limit", "register {\n global_rate_limit register 100/m burst 50\n global_rate_limit login off\n}",
			App{GlobalRateLimits: map[string]*RateLimitConfig{"register": {Rate: 100, Period: minute, Burst: 50}, "login": {}}}},
		{"ipv6_prefix", "register {\n ipv6_prefix 56\n}", App{IPv6Prefix: 56}},
		{"lockout", "register {\n lockout {\n  network_failures 3\n  failures 20\n  wait_increment 2m\n  max_wait 1h\n  reset 1d\n }\n}",
			App{Lockout: &LockoutConfig{NetworkFailures: 3, Failures: 20, WaitIncrement: 2 * minute, MaxWait: 60 * minute, Reset: 24 * 60 * minute}}},
		{"lockout partial", "register {\n lockout {\n  failures 50\n }\n}", App{Lockout: &LockoutConfig{Failures: 50}}},
		{"sessions", "register {\n sessions {\n  idle 7d\n  lifetime 30d\n  refresh_grace 2s\n }\n}",
			App{Sessions: &SessionsConfig{Idle: 7 * 24 * 60 * minute, Lifetime: 30 * 24 * 60 * minute, RefreshGrace: caddy.Duration(2 * time.Second)}}},
		{"sessions grace off", "register {\n sessions {\n  refresh_grace off\n }\n}", App{Sessions: &SessionsConfig{RefreshGrace: -1}}},
		{"hash argon2id defaults", "register {\n hash argon2id\n}", App{Hash: &HashConfig{Algorithm: "argon2id"}}},
		{"hash argon2id params", "register {\n hash argon2id 65536 3 4\n}",
			App{Hash: &HashConfig{Algorithm: "argon2id", MemoryKiB: 65536, Time: 3, Threads: 4}}},
		{"hash argon2id max threads", "register {\n hash argon2id 19456 2 255\n}",
			App{Hash: &HashConfig{Algorithm: "argon2id", MemoryKiB: 19456, Time: 2, Threads: 255}}},
		{"hash upper case", "register {\n hash ARGON2ID\n}", App{Hash: &HashConfig{Algorithm: "argon2id"}}},
		{"hash bcrypt default", "register {\n hash bcrypt\n}", App{Hash: &HashConfig{Algorithm: "bcrypt"}}},
		{"hash bcrypt cost", "register {\n hash bcrypt 12\n}", App{Hash: &HashConfig{Algorithm: "bcrypt", Cost: 12}}},
		{"hash_pool_size", "register {\n hash_pool_size 4\n}", App{HashPoolSize: 4}},
		{"hash_pool_size zero", "register {\n hash_pool_size 0\n}", App{}},
		{"hash_queue_wait", "register {\n hash_queue_wait 2s\n}", App{HashQueueWait: 2 * second}},
		{"rate_limit", "register {\n rate_limit register 5/m burst 2\n}",
			App{RateLimits: map[string]*RateLimitConfig{"register": {Rate: 5, Period: minute, Burst: 2}}}},
		{"rate_limit units and off", "register {\n rate_limit register 10/s\n rate_limit me 100/hour\n rate_limit login 3/1h30m\n rate_limit admin 1000/d\n rate_limit tenant off\n}",
			App{RateLimits: map[string]*RateLimitConfig{
				"register": {Rate: 10, Period: second, Burst: 10},
				"me":       {Rate: 100, Period: 60 * minute, Burst: 100},
				"login":    {Rate: 3, Period: 90 * minute, Burst: 3},
				"admin":    {Rate: 1000, Period: 24 * 60 * minute, Burst: 1000},
				"tenant":   {},
			}}},
		{"rate_limit later wins", "register {\n rate_limit register 5/m\n rate_limit register 7/m burst 1\n}",
			App{RateLimits: map[string]*RateLimitConfig{"register": {Rate: 7, Period: minute, Burst: 1}}}},
		{"everything", `register {
	store redis redis://cache:6379/2 myns
	signing_key {env.JWT_KEY}
	issuer caddyregister-test
	token_ttl 10m
	admin alice {env.ALICE_HASH} manage-users
	admin_login_limit 3/m burst 1
	hash bcrypt 11
	hash_pool_size 2
	hash_queue_wait 500ms
	rate_limit register 5/m burst 2
}`, App{
			Store:           &StoreConfig{Backend: "redis", URL: "redis://cache:6379/2", Namespace: "myns"},
			SigningKey:      "{env.JWT_KEY}",
			Issuer:          "caddyregister-test",
			TokenTTL:        10 * minute,
			Admins:          []AdminConfig{{Login: "alice", Hash: "{env.ALICE_HASH}", Permissions: []string{"manage-users"}}},
			AdminLoginLimit: &RateLimitConfig{Rate: 3, Period: minute, Burst: 1},
			Hash:            &HashConfig{Algorithm: "bcrypt", Cost: 11},
			HashPoolSize:    2,
			HashQueueWait:   caddy.Duration(500e6),
			RateLimits:      map[string]*RateLimitConfig{"register": {Rate: 5, Period: minute, Burst: 2}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got App
			if err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input)); err != nil {
				t.Fatalf("UnmarshalCaddyfile(%q): %v", tt.input, err)
			}
			if g, w := mustJSON(t, &got), mustJSON(t, &tt.want); g != w {
				t.Errorf("UnmarshalCaddyfile(%q)\n got %s\nwant %s", tt.input, g, w)
			}
		})
	}
}

func TestAppUnmarshalCaddyfileBad(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		wantErr string // substring of the error, if not empty
	}{
		{"args after option name", "register foo {\n}", "wrong argument count"},
		{"unknown option", "register {\n storage redis x\n}", `unknown register option "storage"`},
		{"store without backend", "register {\n store\n}", "wrong argument count"},
		{"store redis without url", "register {\n store redis\n}", "store redis needs a url"},
		{"store unknown backend", "register {\n store memory x\n}", `unknown store backend "memory"`},
		{"store extra arg", "register {\n store redis redis://x ns extra\n}", "wrong argument count"},
		{"signing_key missing", "register {\n signing_key\n}", "wrong argument count"},
		{"signing_key two", "register {\n signing_key a b\n}", "wrong argument count"},
		{"key_encryption_key missing", "register {\n key_encryption_key\n}", "wrong argument count"},
		{"key_encryption_key two", "register {\n key_encryption_key a b\n}", "wrong argument count"},
		{"issuer missing", "register {\n issuer\n}", "wrong argument count"},
		{"issuer two", "register {\n issuer a b\n}", "wrong argument count"},
		{"token_ttl missing", "register {\n token_ttl\n}", "wrong argument count"},
		{"token_ttl bad", "register {\n token_ttl soon\n}", "positive duration"},
		{"token_ttl zero", "register {\n token_ttl 0s\n}", "positive duration"},
		{"token_ttl negative", "register {\n token_ttl -1m\n}", "positive duration"},
		{"token_ttl two", "register {\n token_ttl 1m 2m\n}", "wrong argument count"},
		{"admin missing", "register {\n admin\n}", "admin needs"},
		{"admin without hash", "register {\n admin alice\n}", "admin needs"},
		{"admin_login_limit missing", "register {\n admin_login_limit\n}", "rate limit"},
		{"admin_login_limit bad", "register {\n admin_login_limit 10\n}", "rate limit"},
		{"hash missing", "register {\n hash\n}", "hash needs"},
		{"hash argon2id two numbers", "register {\n hash argon2id 1 2\n}", "argon2id"},
		{"hash argon2id four numbers", "register {\n hash argon2id 1 2 3 4\n}", "argon2id"},
		{"hash argon2id zero", "register {\n hash argon2id 0 2 1\n}", "positive integer"},
		{"hash argon2id threads", "register {\n hash argon2id 65536 2 256\n}", "at most 255"},
		{"hash bcrypt two numbers", "register {\n hash bcrypt 1 2\n}", "bcrypt"},
		{"hash bcrypt not a number", "register {\n hash bcrypt high\n}", "positive integer"},
		{"hash bcrypt negative", "register {\n hash bcrypt -1\n}", "positive integer"},
		{"hash scrypt", "register {\n hash scrypt\n}", `unknown hash "scrypt"`},
		{"hash_pool_size missing", "register {\n hash_pool_size\n}", "wrong argument count"},
		{"hash_pool_size negative", "register {\n hash_pool_size -1\n}", "non-negative integer"},
		{"hash_pool_size word", "register {\n hash_pool_size many\n}", "non-negative integer"},
		{"hash_pool_size two", "register {\n hash_pool_size 1 2\n}", "wrong argument count"},
		{"hash_queue_wait bad", "register {\n hash_queue_wait forever\n}", "positive duration"},
		{"rate_limit missing route", "register {\n rate_limit\n}", "wrong argument count"},
		{"rate_limit missing limit", "register {\n rate_limit register\n}", "rate limit"},
		{"global_rate_limit missing limit", "register {\n global_rate_limit register\n}", "rate limit"},
		{"ipv6_prefix zero", "register {\n ipv6_prefix 0\n}", "1..128"},
		{"ipv6_prefix too long", "register {\n ipv6_prefix 129\n}", "1..128"},
		{"ipv6_prefix word", "register {\n ipv6_prefix wide\n}", "non-negative integer"},
		{"lockout arg", "register {\n lockout 5\n}", "wrong argument count"},
		{"lockout unknown", "register {\n lockout {\n  attempts 5\n }\n}", `unknown lockout option "attempts"`},
		{"lockout zero failures", "register {\n lockout {\n  failures 0\n }\n}", "positive number"},
		{"lockout bad duration", "register {\n lockout {\n  reset never\n }\n}", "positive duration"},
		{"sessions arg", "register {\n sessions 5\n}", "wrong argument count"},
		{"sessions unknown", "register {\n sessions {\n  absolute 5d\n }\n}", `unknown sessions option "absolute"`},
		{"sessions bad grace", "register {\n sessions {\n  refresh_grace soon\n }\n}", "positive duration or off"},
		{"sessions zero idle", "register {\n sessions {\n  idle 0s\n }\n}", "positive duration"},
	}
	tests = append(tests, badLimitCases("register {\n rate_limit register ", "\n}")...)
	tests = append(tests, badLimitCases("register {\n admin_login_limit ", "\n}")...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got App
			err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if err == nil {
				t.Fatalf("UnmarshalCaddyfile(%q): no error; got %s", tt.input, mustJSON(t, &got))
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("UnmarshalCaddyfile(%q): error %q does not contain %q", tt.input, err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), "Testfile:") {
				t.Errorf("UnmarshalCaddyfile(%q): error %q does not say where", tt.input, err)
			}
		})
	}
}

// badLimitCases are rate limit arguments that must be rejected, wrapped in
// the given option text.
func badLimitCases(before, after string) []struct {
	name    string
	input   string
	wantErr string
} {
	bad := []struct{ args, wantErr string }{
		{"10", "want <events>/<period>"},
		{"x/m", "events must be a positive integer"},
		{"0/m", "events must be a positive integer"},
		{"-5/m", "events must be a positive integer"},
		{"10/fortnight", "period must be"},
		{"10/0s", "period must be"},
		{"10/m burst", "rate limit"},
		{"10/m burst 0", "burst must be a positive integer"},
		{"10/m burst -1", "burst must be a positive integer"},
		{"10/m burst x", "burst must be a positive integer"},
		{"10/m bursts 2", `unexpected "bursts"`},
		{"10/m burst 2 3", "rate limit"},
		{"10/m 20/m", "rate limit"},
		{"off now", "rate limit"},
	}
	var out []struct {
		name    string
		input   string
		wantErr string
	}
	for _, b := range bad {
		out = append(out, struct {
			name    string
			input   string
			wantErr string
		}{strings.TrimSpace(before) + " " + b.args, before + b.args + after, b.wantErr})
	}
	return out
}

// TestAppUnmarshalCaddyfileKnownBugs documents parse results that are wrong
// today; see knownBug.
func TestAppUnmarshalCaddyfileKnownBugs(t *testing.T) {
	t.Run("argon2id memory overflowing uint32", func(t *testing.T) {
		// 4294967296 KiB does not fit the uint32 field and is truncated to 0,
		// which Provision then reads as "use the default" without a word.
		var a App
		err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser("register {\n hash argon2id 4294967296 2 1\n}"))
		knownBug(t, "hash argon2id memory_kib > 2^32-1 is silently truncated (uint32 conversion in hashArgs)", err != nil, mustJSON(t, &a))
	})
	t.Run("argon2id time overflowing uint32", func(t *testing.T) {
		var a App
		err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser("register {\n hash argon2id 65536 4294967297 1\n}"))
		knownBug(t, "hash argon2id time > 2^32-1 is silently truncated (4294967297 becomes 1)", err != nil, mustJSON(t, &a))
	})
	t.Run("integer error names the option", func(t *testing.T) {
		var a App
		err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser("register {\n hash_pool_size many\n}"))
		if err == nil {
			t.Fatal("no error")
		}
		knownBug(t, "intArg's message starts with d.Val() after AllArgs, i.e. the bad value, not the option name", strings.Contains(err.Error(), "hash_pool_size"), err.Error())
	})
}

func TestHandlerUnmarshalCaddyfileGood(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  Handler
	}{
		{"contract only", "register noraina", Handler{Contract: "noraina"}},
		{"contract and prefix", "register noraina /api", Handler{Contract: "noraina", Prefix: "/api"}},
		{"empty block", "register noraina /api {\n}", Handler{Contract: "noraina", Prefix: "/api"}},
		{"block without prefix", "register noraina {\n jwks off\n}", Handler{Contract: "noraina", DisableJWKS: true}},
		{"rate_limit", "register noraina {\n rate_limit register 5/m burst 2\n rate_limit me 60/m\n}",
			Handler{Contract: "noraina", RateLimits: map[string]*RateLimitConfig{
				"register": {Rate: 5, Period: minute, Burst: 2},
				"me":       {Rate: 60, Period: minute, Burst: 60},
			}}},
		{"global_rate_limit", "register noraina {\n global_rate_limit register 300/m\n}",
			Handler{Contract: "noraina", GlobalRateLimits: map[string]*RateLimitConfig{"register": {Rate: 300, Period: minute, Burst: 300}}}},
		{"rate_limit off", "register noraina {\n rate_limit register off\n}",
			Handler{Contract: "noraina", RateLimits: map[string]*RateLimitConfig{"register": {}}}},
		{"password empty", "register noraina {\n password {\n }\n}", Handler{Contract: "noraina", Password: &PolicyConfig{}}},
		{"password no block", "register noraina {\n password\n}", Handler{Contract: "noraina", Password: &PolicyConfig{}}},
		{"password all", `register noraina /api {
	password {
		min_length 10
		max_length 64
		min_lowercase 1
		min_capital 2
		min_digits 3
		min_special 4
		no_spaces
		not_identifier
	}
}`, Handler{Contract: "noraina", Prefix: "/api", Password: &PolicyConfig{
			MinLength: 10, MaxLength: 64, MinLowercase: 1, MinCapital: 2, MinDigits: 3, MinSpecial: 4,
			NoSpaces: true, NotIdentifier: true,
		}}},
		{"password then other options", "register noraina {\n password {\n  min_length 12\n }\n max_body_size 1KiB\n}",
			Handler{Contract: "noraina", Password: &PolicyConfig{MinLength: 12}, MaxBodySize: 1024}},
		{"max_body_size bytes", "register noraina {\n max_body_size 1000\n}", Handler{Contract: "noraina", MaxBodySize: 1000}},
		{"max_body_size b", "register noraina {\n max_body_size 100B\n}", Handler{Contract: "noraina", MaxBodySize: 100}},
		{"max_body_size KiB", "register noraina {\n max_body_size 32KiB\n}", Handler{Contract: "noraina", MaxBodySize: 32 << 10}},
		{"max_body_size kb", "register noraina {\n max_body_size 64kb\n}", Handler{Contract: "noraina", MaxBodySize: 64000}},
		{"max_body_size k", "register noraina {\n max_body_size 8k\n}", Handler{Contract: "noraina", MaxBodySize: 8 << 10}},
		{"max_body_size MiB", "register noraina {\n max_body_size 1MiB\n}", Handler{Contract: "noraina", MaxBodySize: 1 << 20}},
		{"max_body_size MB", "register noraina {\n max_body_size 2MB\n}", Handler{Contract: "noraina", MaxBodySize: 2000000}},
		{"max_body_size m", "register noraina {\n max_body_size 3m\n}", Handler{Contract: "noraina", MaxBodySize: 3 << 20}},
		{"jwks off", "register noraina {\n jwks off\n}", Handler{Contract: "noraina", DisableJWKS: true}},
		{"sessions", "register account {\n sessions {\n  idle 1h\n  lifetime 8h\n }\n}",
			Handler{Contract: "account", Sessions: &SessionsConfig{Idle: caddy.Duration(time.Hour), Lifetime: caddy.Duration(8 * time.Hour)}}},
		{"everything", `register noraina /api {
	rate_limit register off
	password {
		min_length 10
		min_capital 1
	}
	max_body_size 32KiB
	jwks off
}`, Handler{
			Contract:    "noraina",
			Prefix:      "/api",
			RateLimits:  map[string]*RateLimitConfig{"register": {}},
			Password:    &PolicyConfig{MinLength: 10, MinCapital: 1},
			MaxBodySize: 32 << 10,
			DisableJWKS: true,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got Handler
			if err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input)); err != nil {
				t.Fatalf("UnmarshalCaddyfile(%q): %v", tt.input, err)
			}
			if g, w := mustJSON(t, &got), mustJSON(t, &tt.want); g != w {
				t.Errorf("UnmarshalCaddyfile(%q)\n got %s\nwant %s", tt.input, g, w)
			}
		})
	}
}

func TestHandlerUnmarshalCaddyfileBad(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		wantErr string
	}{
		{"no contract", "register", "needs a contract name"},
		{"no contract with block", "register {\n}", "needs a contract name"},
		{"extra args after prefix", "register noraina /api extra", "wrong argument count"},
		{"extra args after prefix with block", "register noraina /api extra more {\n}", "wrong argument count"},
		{"unknown option", "register noraina {\n prefix /api\n}", `unknown register option "prefix"`},
		{"global option in handler", "register noraina {\n hash bcrypt\n}", `unknown register option "hash"`},
		{"rate_limit missing route", "register noraina {\n rate_limit\n}", "wrong argument count"},
		{"rate_limit missing limit", "register noraina {\n rate_limit register\n}", "rate limit"},
		{"password with arg", "register noraina {\n password strict {\n }\n}", "wrong argument count"},
		{"password unknown sub-option", "register noraina {\n password {\n  min_uppercase 1\n }\n}", `unknown password policy option "min_uppercase"`},
		{"password min_length missing", "register noraina {\n password {\n  min_length\n }\n}", "wrong argument count"},
		{"password min_length word", "register noraina {\n password {\n  min_length ten\n }\n}", "non-negative integer"},
		{"password min_length negative", "register noraina {\n password {\n  min_length -1\n }\n}", "non-negative integer"},
		{"password min_length two", "register noraina {\n password {\n  min_length 1 2\n }\n}", "wrong argument count"},
		{"password no_spaces arg", "register noraina {\n password {\n  no_spaces yes\n }\n}", "wrong argument count"},
		{"password not_identifier arg", "register noraina {\n password {\n  not_identifier true\n }\n}", "wrong argument count"},
		{"max_body_size missing", "register noraina {\n max_body_size\n}", "wrong argument count"},
		{"max_body_size word", "register noraina {\n max_body_size big\n}", "max_body_size"},
		{"max_body_size zero", "register noraina {\n max_body_size 0\n}", "max_body_size"},
		{"max_body_size negative", "register noraina {\n max_body_size -1KiB\n}", "max_body_size"},
		{"max_body_size fraction", "register noraina {\n max_body_size 1.5MiB\n}", "max_body_size"},
		{"max_body_size GiB", "register noraina {\n max_body_size 1GiB\n}", "max_body_size"},
		{"max_body_size suffix only", "register noraina {\n max_body_size KiB\n}", "max_body_size"},
		{"max_body_size split unit", "register noraina {\n max_body_size 64 KiB\n}", "wrong argument count"},
		{"jwks missing", "register noraina {\n jwks\n}", "jwks takes only 'off'"},
		{"jwks on", "register noraina {\n jwks on\n}", "jwks takes only 'off'"},
		{"jwks off twice", "register noraina {\n jwks off off\n}", "jwks takes only 'off'"},
		{"sessions refresh_grace", "register account {\n sessions {\n  refresh_grace 2s\n }\n}", "belongs in the register app block"},
		{"sessions idle zero", "register account {\n sessions {\n  idle 0s\n }\n}", "positive duration"},
		{"sessions unknown", "register account {\n sessions {\n  grace 2s\n }\n}", `unknown sessions option "grace"`},
	}
	tests = append(tests, badLimitCases("register noraina {\n rate_limit register ", "\n}")...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got Handler
			err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if err == nil {
				t.Fatalf("UnmarshalCaddyfile(%q): no error; got %s", tt.input, mustJSON(t, &got))
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("UnmarshalCaddyfile(%q): error %q does not contain %q", tt.input, err, tt.wantErr)
			}
		})
	}
}

func TestHandlerUnmarshalCaddyfileKnownBugs(t *testing.T) {
	t.Run("max_body_size overflow", func(t *testing.T) {
		// 2^54+1 KiB is 2^64+1024 bytes, which wraps to 1024 in int64.
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("register noraina {\n max_body_size 18014398509481985KiB\n}"))
		knownBug(t, "parseSize does not check n*mult for overflow; 18014398509481985KiB wraps to 1024 bytes", err != nil, mustJSON(t, &h))
	})
	t.Run("max_body_size overflow to negative", func(t *testing.T) {
		// 2^63-1 KiB wraps to -1024, which Provision silently replaces by
		// the 64 KiB default.
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("register noraina {\n max_body_size 9223372036854775807KiB\n}"))
		knownBug(t, "parseSize does not check n*mult for overflow; 9223372036854775807KiB wraps to -1024", err != nil, mustJSON(t, &h))
	})
	t.Run("integer error names the option", func(t *testing.T) {
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("register noraina {\n password {\n  min_length ten\n }\n}"))
		if err == nil {
			t.Fatal("no error")
		}
		knownBug(t, "intArg's message starts with d.Val() after AllArgs, i.e. the bad value, not the option name", strings.Contains(err.Error(), "min_length"), err.Error())
	})
}

// adapt runs the Caddyfile adapter and decodes its JSON.
func adapt(t *testing.T, src string) (map[string]any, []caddyconfig.Warning) {
	t.Helper()
	adapter := caddyconfig.GetAdapter("caddyfile")
	if adapter == nil {
		t.Fatal(`no "caddyfile" config adapter registered`)
	}
	out, warnings, err := adapter.Adapt([]byte(src), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatalf("Adapt: %v", err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatalf("adapted config is not JSON: %v\n%s", err, out)
	}
	return cfg, warnings
}

// handlers returns every object with a "handler" key, depth first; arrays
// keep their order (and map keys are visited sorted), so the order of the
// handlers is the order they run in.
func handlers(v any) []map[string]any {
	var out []map[string]any
	switch v := v.(type) {
	case map[string]any:
		if _, ok := v["handler"].(string); ok {
			out = append(out, v)
		}
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			out = append(out, handlers(v[k])...)
		}
	case []any:
		for _, e := range v {
			out = append(out, handlers(e)...)
		}
	}
	return out
}

func normalize(t *testing.T, v any) any {
	t.Helper()
	var out any
	if err := json.Unmarshal([]byte(mustJSON(t, v)), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestAdaptCaddyfile(t *testing.T) {
	const src = `{
	register {
		store redis redis://cache:6379/2 myns
		admin alice {env.ALICE_HASH} manage-users read-users
		admin bob $2a$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW
		hash bcrypt 12
		rate_limit register 5/m burst 2
		token_ttl 10m
	}
}

http://localhost:8080 {
	respond 404

	register noraina /api {
		rate_limit register off
		password {
			min_length 10
			min_capital 1
		}
		max_body_size 32KiB
	}
}
`
	cfg, warnings := adapt(t, src)
	if len(warnings) != 0 {
		t.Errorf("warnings: %+v", warnings)
	}
	apps, _ := cfg["apps"].(map[string]any)
	wantApp := normalize(t, &App{
		Store: &StoreConfig{Backend: "redis", URL: "redis://cache:6379/2", Namespace: "myns"},
		Admins: []AdminConfig{
			{Login: "alice", Hash: "{env.ALICE_HASH}", Permissions: []string{"manage-users", "read-users"}},
			{Login: "bob", Hash: "$2a$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW"},
		},
		Hash:       &HashConfig{Algorithm: "bcrypt", Cost: 12},
		RateLimits: map[string]*RateLimitConfig{"register": {Rate: 5, Period: minute, Burst: 2}},
		TokenTTL:   10 * minute,
	})
	if !reflect.DeepEqual(apps["register"], wantApp) {
		t.Errorf("register app\n got %s\nwant %s", mustJSON(t, apps["register"]), mustJSON(t, wantApp))
	}

	hs := handlers(cfg)
	var names []string
	reg, regAt, respAt := map[string]any(nil), -1, -1
	for i, h := range hs {
		names = append(names, h["handler"].(string))
		switch h["handler"] {
		case "register":
			reg, regAt = h, i
		case "static_response":
			respAt = i
		}
	}
	if reg == nil || respAt < 0 {
		t.Fatalf("handlers %v: want register and static_response\n%s", names, mustJSON(t, cfg))
	}
	if regAt > respAt {
		t.Errorf("handlers run as %v: register must come before respond", names)
	}
	wantHandler := map[string]any{
		"handler":       "register",
		"contract":      "noraina",
		"prefix":        "/api",
		"rate_limits":   map[string]any{"register": map[string]any{"rate": 0.0}},
		"password":      map[string]any{"min_length": 10.0, "min_capital": 1.0},
		"max_body_size": 32768.0,
	}
	if !reflect.DeepEqual(reg, wantHandler) {
		t.Errorf("register handler\n got %s\nwant %s", mustJSON(t, reg), mustJSON(t, wantHandler))
	}
}

func TestAdaptCaddyfileErrors(t *testing.T) {
	for name, src := range map[string]string{
		"bad global option": "{\n\tregister {\n\t\thash scrypt\n\t}\n}\n\n:8080 {\n\trespond 404\n}\n",
		"bad directive":     ":8080 {\n\tregister noraina /api extra\n}\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), nil)
			if err == nil {
				t.Fatalf("Adapt(%q): no error", src)
			}
		})
	}
}

func TestAdaptDemoCaddyfile(t *testing.T) {
	src, err := os.ReadFile("../Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	// The demo reads {$REGISTER_*} at adapt time; test it with its defaults.
	for _, k := range []string{"REGISTER_ADDR", "REGISTER_REDIS", "REGISTER_ADMIN_USER", "REGISTER_ADMIN_HASH", "REGISTER_SMTP", "REGISTER_CADDY_ADMIN"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	cfg, warnings := adapt(t, string(src))
	if len(warnings) != 0 {
		t.Errorf("warnings: %+v", warnings)
	}
	apps, _ := cfg["apps"].(map[string]any)
	if _, ok := apps["register"].(map[string]any); !ok {
		t.Errorf("no register app in %s", mustJSON(t, cfg))
	}
	found := false
	for _, h := range handlers(cfg) {
		if h["handler"] == "register" && h["contract"] == "noraina" {
			found = true
		}
	}
	if !found {
		t.Errorf("no register handler for contract noraina in %s", mustJSON(t, cfg))
	}
}
