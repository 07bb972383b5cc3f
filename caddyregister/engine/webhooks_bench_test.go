package engine_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/password"
	"github.com/caddyregister/caddyregister/caddyregister/ratelimit"
	"github.com/caddyregister/caddyregister/caddyregister/store/redisstore"
)

// BenchmarkRegisterWebhookCost is a registration with a cheap hash on
// Redis, with no webhook and with one endpoint taking user.created and
// session.created: the difference is what the events cost a registration
// (two sealed records and a chain entry each, in the same script run).
func BenchmarkRegisterWebhookCost(b *testing.B) {
	srv := redisServer(b)
	for _, eps := range [][]engine.WebhookEndpoint{nil, {{URL: "http://app.internal/"}}} {
		b.Run(fmt.Sprintf("endpoints=%d", len(eps)), func(b *testing.B) {
			ns := uniqueNS()
			st, err := redisstore.Open(srv.URL(0), ns)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { st.Close() })
			e, err := engine.New(engine.Config{
				Store: st, Limiter: ratelimit.NewRedis(st.Client(), "{"+ns+"}:"), Hasher: cheap,
				Pool:     password.NewPool(password.PoolConfig{MaxWait: time.Minute}),
				Webhooks: engine.WebhookConfig{Endpoints: eps},
			})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			if err := e.Start(ctx); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := range b.N {
				r := engine.Registration{Contract: "bench", ClientIP: "192.0.2.1", Email: fmt.Sprintf("w%d-%s@example.com", i, ns),
					Password: goodPassword, Policy: password.NIST(), IssueToken: true}
				if _, err := e.Register(ctx, r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
