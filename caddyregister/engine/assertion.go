package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/token"
)

// Assertion signs a short-lived JWT saying that p is calling, for an app
// behind the gate that does not trust its network: EdDSA with the tokens'
// current key (so it verifies against the published JWKS), typ
// token.AssertionType (so it is never taken for an access token), aud the
// app's host, and the identity the gate sends in its headers.
func (e *Engine) Assertion(ctx context.Context, p *Principal, audience string, ttl time.Duration) (string, error) {
	iss, err := e.tokens(ctx)
	if err != nil {
		return "", err
	}
	c := token.Claims{Kind: p.Kind, Tenant: p.TenantID, Status: p.Status, Permissions: p.Permissions, SID: p.SID, Email: p.Email, Login: p.Login}
	c.Subject = p.ID
	if audience != "" {
		c.Audience = []string{audience}
	}
	tok, err := iss.IssueAssertion(c, ttl)
	if err != nil {
		return "", fmt.Errorf("assertion: %w", err)
	}
	return tok, nil
}
