package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/password"
)

// TestBcryptPasswordOverLimitIsInvalid: with bcrypt, a password over 72
// bytes is the user's mistake (a password field error naming the limit),
// not a hashing failure; the limit counts bytes, so 30 letters of 2 and 3 bytes
// are refused too. Before, the hash failed and the request answered 500.
func TestBcryptPasswordOverLimitIsInvalid(t *testing.T) {
	ev := openBolt(t)
	h := newHarness(t, ev, func(c *engine.Config) { c.Hasher = password.Bcrypt{Cost: 4} })
	for _, tc := range []struct {
		name, pw string
		ok       bool
	}{
		{"72 bytes", strings.Repeat("a", 72), true},
		{"73 bytes", strings.Repeat("a", 73), false},
		{"30 letters in 75 bytes", strings.Repeat("ж€", 15), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := reg(strings.ReplaceAll(tc.name, " ", "") + "@example.com")
			r.Password = tc.pw
			before := ev.snapshot(t)
			hashes := h.hashes.total()
			_, err := h.e.Register(context.Background(), r)
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var ve *engine.ValidationError
			if !errors.As(err, &ve) || len(ve.Fields) != 1 || ve.Fields[0].Field != "password" || ve.Fields[0].Rule != password.RuleMaxLength || !strings.Contains(ve.Fields[0].Message, "72 bytes") {
				t.Fatalf("Register = %v, want a password maxLength error naming 72 bytes", err)
			}
			if h.hashes.total() != hashes {
				t.Error("a refused password was hashed")
			}
			if ev.snapshot(t) != before {
				t.Error("the store changed")
			}
		})
	}
	// The argon2id policy keeps its limit in characters only.
	ha := newHarness(t, openBolt(t))
	r := reg("argon@example.com")
	r.Password = strings.Repeat("a", 100)
	mustRegister(t, ha.e, r)
}

func TestPolicyForHasher(t *testing.T) {
	p := password.NIST().ForHasher(password.Bcrypt{})
	if p.MaxBytes != 72 || p.MaxLength != 128 {
		t.Fatalf("bcrypt policy %+v, want MaxBytes 72", p)
	}
	if p := password.NIST().ForHasher(cheap); p.MaxBytes != 0 {
		t.Fatalf("argon2id policy %+v, want no byte limit", p)
	}
	if p := (password.Policy{MaxBytes: 40}).ForHasher(password.Bcrypt{}); p.MaxBytes != 40 {
		t.Fatalf("a lower configured byte limit was raised: %+v", p)
	}
}
