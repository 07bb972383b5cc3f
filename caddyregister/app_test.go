package caddyregister

import (
	"context"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// TestProvisionRejectsHashParameters: unusable hash parameters fail
// Provision (so `caddy validate` reports them), with Hash's own message.
func TestProvisionRejectsHashParameters(t *testing.T) {
	for name, tc := range map[string]struct {
		hash *HashConfig
		want string
	}{
		"argon2id memory below 8 KiB per thread": {&HashConfig{Algorithm: "argon2id", MemoryKiB: 4}, "below the minimum"},
		"argon2id too many passes":               {&HashConfig{Algorithm: "argon2id", Time: 1000}, "above the limit"},
		"bcrypt cost too high":                   {&HashConfig{Algorithm: "bcrypt", Cost: 40}, "bcrypt"},
		"unknown algorithm":                      {&HashConfig{Algorithm: "md5"}, "unknown hash algorithm"},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			a := &App{Store: &StoreConfig{Backend: "redis", URL: "redis://127.0.0.1:1/0"}, Hash: tc.hash}
			err := a.Provision(ctx)
			if err == nil || !strings.Contains(err.Error(), "register: ") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Provision = %v, want an error with %q", err, tc.want)
			}
		})
	}
}
