package engine_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/password"
	"github.com/caddyregister/caddyregister/caddyregister/ratelimit"
	"github.com/caddyregister/caddyregister/caddyregister/store"
	"github.com/caddyregister/caddyregister/caddyregister/store/boltstore"
	"github.com/caddyregister/caddyregister/caddyregister/store/redisstore"
)

// benchGoroutines is the number of concurrent callers every benchmark uses,
// so hashes/s and registrations/s are comparable.
const benchGoroutines = 8

// setParallelism makes RunParallel use about benchGoroutines goroutines.
func setParallelism(b *testing.B) {
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism(max(1, (benchGoroutines+procs-1)/procs))
}

func reportOpsPerSec(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// BenchmarkHashArgon2idDefault is the bare hash rate with the default
// parameters on all cores (one hashing goroutine per core, as the engine's
// pool runs them): the ceiling for registrations/s.
func BenchmarkHashArgon2idDefault(b *testing.B) {
	h := password.DefaultArgon2id()
	pw := []byte(goodPassword)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := h.Hash(pw); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportOpsPerSec(b)
}

func benchRegister(b *testing.B, st store.Store, lim ratelimit.Limiter) {
	e, err := engine.New(engine.Config{
		Store:   st,
		Limiter: lim,
		Hasher:  password.DefaultArgon2id(),
		// Size 0 = GOMAXPROCS; a long MaxWait so queueing is measured, not shed.
		Pool: password.NewPool(password.PoolConfig{MaxWait: time.Minute}),
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := e.Start(ctx); err != nil {
		b.Fatal(err)
	}
	var seq atomic.Int64
	prefix := fmt.Sprintf("bench%d", time.Now().UnixNano())
	setParallelism(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := engine.Registration{
				Contract:   "bench",
				ClientIP:   "192.0.2.1",
				Email:      fmt.Sprintf("%s-%d@example.com", prefix, seq.Add(1)),
				Password:   goodPassword,
				Policy:     password.NIST(),
				IssueToken: true,
			}
			res, err := e.Register(ctx, r)
			if err != nil {
				b.Error(err)
				return
			}
			if res.Token == "" {
				b.Error("no token")
				return
			}
		}
	})
	reportOpsPerSec(b)
}

// BenchmarkRegisterRedis is Engine.Register end to end on a real
// redis-server (rate limiting off: Register does not charge a limit).
func BenchmarkRegisterRedis(b *testing.B) {
	srv := redisServer(b)
	ns := uniqueNS()
	st, err := redisstore.Open(srv.URL(0), ns)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	benchRegister(b, st, ratelimit.NewRedis(st.Client(), "{"+ns+"}:"))
}

// BenchmarkRegisterEmbedded is the same on the bbolt store.
func BenchmarkRegisterEmbedded(b *testing.B) {
	st, err := boltstore.Open(b.TempDir() + "/r.db")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	benchRegister(b, st, ratelimit.NewMemory())
}
