package engine_test

import (
	"context"
	"testing"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/password"
	"github.com/caddyregister/caddyregister/caddyregister/store/redisstore"
)

// BenchmarkAuthenticateToken compares verifying a token without a session
// (as registration issues today) with a session's token, whose check is
// the liveness cache (a map read under RLock; the feed is read in the
// background about once a second). The ratio of the two is what the
// session check costs a request like /me.
func BenchmarkAuthenticateToken(b *testing.B) {
	st0, err := redisstore.Open(redisServer(b).URL(0), uniqueNS())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st0.Close() })
	h, err := engine.New(engine.Config{Store: st0, Hasher: cheap, Pool: password.NewPool(password.PoolConfig{MaxWait: time.Minute})})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := h.Start(ctx); err != nil {
		b.Fatal(err)
	}
	r := reg("bench-auth@example.com")
	res, err := h.Register(ctx, r)
	if err != nil {
		b.Fatal(err)
	}
	st, err := h.StartSession(ctx, res.User.ID, "192.0.2.1", "bench", engine.SessionLimits{})
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct{ name, tok string }{
		{"session=off", res.Token},
		{"session=on", st.Access},
	} {
		b.Run(c.name, func(b *testing.B) {
			if _, err := h.AuthenticateToken(ctx, c.tok); err != nil {
				b.Fatal(err)
			}
			setParallelism(b)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := h.AuthenticateToken(ctx, c.tok); err != nil {
						b.Error(err)
						return
					}
				}
			})
			reportOpsPerSec(b)
		})
	}
}
