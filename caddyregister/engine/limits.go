package engine

import (
	"context"
	"net/netip"

	"github.com/caddyregister/caddyregister/caddyregister/ratelimit"
)

// DefaultIPv6Prefix groups IPv6 clients by /64: one customer, one
// interface, or one cloud instance usually gets a whole /64, so a limit per
// IPv6 address would give each of them 2^64 budgets.
const DefaultIPv6Prefix = 64

// Network is the client network that per-client limits and lockouts key
// on: an IPv4 address alone, an IPv6 address's /IPv6Prefix. A client that
// is not an IP address (no client IP known) is its own network.
func (e *Engine) Network(clientIP string) string {
	addr, err := netip.ParseAddr(clientIP)
	if err != nil {
		return clientIP
	}
	addr = addr.WithZone("").Unmap()
	if addr.Is4() {
		return addr.String()
	}
	p, err := addr.Prefix(e.ipv6Prefix)
	if err != nil {
		return addr.String()
	}
	return p.String()
}

// AllowRequest charges one request on route to its client's network (see
// Network) under perClient and to every client together under global, in
// one step: when either is exhausted neither is charged (a request a client
// may not make spends nothing everyone shares), and the answer is
// *RateLimitedError with the longer wait.
func (e *Engine) AllowRequest(ctx context.Context, route, clientIP string, perClient, global ratelimit.Limit) error {
	if perClient.IsZero() && global.IsZero() {
		return nil
	}
	return e.charge(ctx, route,
		ratelimit.Check{Key: route + ":" + e.Network(clientIP), Limit: perClient},
		ratelimit.Check{Key: route + ":*", Limit: global},
	)
}
