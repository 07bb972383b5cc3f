package caddyregister

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/secretbox"
	"github.com/caddyregister/caddyregister/caddyregister/store/redisstore"
)

// embeddedKeyDomain binds sealed values of the embedded store; Redis ones
// are bound to their namespace, so a value copied between namespaces does
// not open.
const embeddedKeyDomain = "embedded"

// keyDomain is what sealed values of the configured store are bound to.
func (a *App) keyDomain() string {
	if a.Store.Backend == "redis" {
		if a.Store.Namespace != "" {
			return a.Store.Namespace
		}
		return redisstore.DefaultNamespace
	}
	return embeddedKeyDomain
}

// provisionSealer builds the Box that seals the stored signing key from
// key_encryption_key, or nil when none resolves (the demo Caddyfile names
// an environment variable that may be unset).
func (a *App) provisionSealer(repl *caddy.Replacer) (*secretbox.Box, error) {
	kek := strings.TrimSpace(repl.ReplaceKnown(a.KeyEncryptionKey, ""))
	if kek == "" {
		return nil, nil
	}
	box, err := secretbox.New([]byte(kek), a.keyDomain())
	if err != nil {
		return nil, fmt.Errorf("register: key_encryption_key: %w", err)
	}
	a.sealed, a.box = true, box
	return box, nil
}

// warnKeyStorage tells the operator, at Start, of a Redis setup that
// exposes or can lose the signing key: no key_encryption_key (whoever
// reads Redis can mint admin tokens, or with a configured signing_key
// read queued mails' links), no persistence or an eviction policy
// (a restart or full memory drops the key, and users with it).
func (a *App) warnKeyStorage() {
	rs, ok := a.redisStore()
	if !ok {
		return // the embedded file is 0600 in a 0700 directory
	}
	// Its own short budget: a Redis that is down must not eat the time
	// the signing key gets to load.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if !a.sealed && a.SigningKey == "" {
		a.logger.Warn("the generated signing key is stored in clear in Redis: whoever can read Redis can mint tokens, admin ones included; set key_encryption_key (e.g. key_encryption_key {env.REGISTER_KEY_ENCRYPTION_KEY}, openssl rand -base64 32) to store it encrypted",
			zap.String("key", rs.Key("secret", engine.SigningKeySecret)))
	} else if !a.sealed {
		a.logger.Warn("the outbox key, which seals queued mail bodies (their links), is stored in clear in Redis: whoever can read Redis can read queued links; set key_encryption_key to store it encrypted",
			zap.String("key", rs.Key("secret", engine.OutboxKeySecret)))
	}
	d, err := rs.Durability(ctx)
	if err != nil {
		a.logger.Debug("could not read Redis persistence settings (CONFIG and INFO refused or failing); not checked", zap.Error(err))
		return
	}
	if !d.Persistent {
		a.logger.Warn("Redis has no persistence (no RDB snapshots, appendonly no): a restart empties it, losing users and the signing key (instances then make a new one and earlier tokens fail); enable appendonly or save",
			zap.String("source", d.Source))
	}
	if d.EvictionPolicy != "" && d.EvictionPolicy != "noeviction" {
		a.logger.Warn("Redis may evict keys when memory is full (maxmemory-policy is not noeviction): users, sessions or the signing key can disappear; set maxmemory-policy noeviction",
			zap.String("maxmemory_policy", d.EvictionPolicy), zap.String("source", d.Source))
	}
}

// redisStore returns the Redis store, if that is the backend.
func (a *App) redisStore() (*redisstore.Store, bool) {
	if a.engine == nil {
		return nil, false
	}
	rs, ok := a.engine.Store().(*redisstore.Store)
	return rs, ok
}
