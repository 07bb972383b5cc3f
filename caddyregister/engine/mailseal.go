package engine

import (
	"context"
	"fmt"
	"sync"

	"github.com/caddyregister/caddyregister/caddyregister/mail"
	"github.com/caddyregister/caddyregister/caddyregister/token"
)

// sealerCache keeps the outbox sealer of the current signing key, so the
// key derivation runs once per key, not once per mail.
type sealerCache struct {
	mu     sync.Mutex
	issuer *token.Issuer
	sealer *mail.Sealer
}

// MailSealer returns the sealer for outbox bodies, derived from the token
// signing key: every instance on one store holds that key, so any of them
// can open what another queued, and the store alone cannot.
func (e *Engine) MailSealer(ctx context.Context) (*mail.Sealer, error) {
	iss, err := e.tokens(ctx)
	if err != nil {
		return nil, err
	}
	c := &e.sealers
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.issuer == iss {
		return c.sealer, nil
	}
	secret, err := iss.Derive("outbox sealer", 32)
	if err != nil {
		return nil, fmt.Errorf("mail sealer: %w", err)
	}
	s, err := mail.NewSealer(secret)
	if err != nil {
		return nil, err
	}
	c.issuer, c.sealer = iss, s
	return s, nil
}

// mailSealer names mail.Sealer where net/mail holds the name mail.
type mailSealer = mail.Sealer
