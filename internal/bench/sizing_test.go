package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/password"
	"github.com/caddyregister/caddyregister/caddyregister/ratelimit"
	"github.com/caddyregister/caddyregister/caddyregister/store"
	"github.com/caddyregister/caddyregister/caddyregister/store/redisstore"
	"github.com/caddyregister/caddyregister/internal/testredis"
)

func usedMemory(t *testing.T, c *redis.Client) int64 {
	t.Helper()
	info, err := c.Info(context.Background(), "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no used_memory in INFO memory")
	return 0
}

// TestRedisSizing measures, on a single Redis node, the memory of n users
// each active with one session (as after a login) and no queued mail,
// and the round trips of a login and of a gated request's session check.
// `make bench` reports the lines it logs.
func TestRedisSizing(t *testing.T) {
	const n = 1000
	srv := testredis.Start(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { c.Close() })
	const ns = "sizing"
	e, err := engine.New(engine.Config{
		Store:   redisstore.New(c, ns),
		Limiter: ratelimit.NewRedis(c, "{"+ns+"}:"),
		Hasher:  password.Argon2id{MemoryKiB: 1024, Time: 1, Threads: 1},
		Pool:    password.NewPool(password.PoolConfig{}),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	const pass = "correct horse battery staple"
	// A first user loads the scripts and the keys that do not grow with
	// users (signing key, outbox key).
	var counter *roundTrips // set once the figures are being taken
	var regTrips []string
	newUser := func(i int) *engine.SessionTokens {
		t.Helper()
		email := fmt.Sprintf("sizing%06d@example.com", i)
		if _, err := e.Register(ctx, engine.Registration{Contract: "noraina", ClientIP: "192.0.2.1", Email: email,
			Name: "Sizing User", Password: pass, Policy: password.NIST(), Status: store.StatusActive}); err != nil {
			t.Fatalf("Register: %v", err)
		}
		if counter != nil {
			regTrips = counter.take()
		}
		st, err := e.LoginSession(ctx, net.IPv4(10, byte(i>>16), byte(i>>8), byte(i)).String(), "sizing/1.0", email, pass, engine.SessionLimits{})
		if err != nil {
			t.Fatalf("LoginSession: %v", err)
		}
		return st
	}
	newUser(0)
	// Rate-limit state is per client and expires within minutes: measure
	// without it. (The lockout's memory of the networks a user logged in
	// from, "known:", is the user's and counts.)
	dropRates := func() {
		t.Helper()
		if keys := scanKeys(t, c, "rate:*"); len(keys) > 0 {
			if err := c.Del(ctx, keys...).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	dropRates()
	before := usedMemory(t, c)
	counter = &roundTrips{}
	c.AddHook(counter)
	var login []string
	for i := 1; i <= n; i++ {
		counter.take()
		newUser(i)
		if i == n {
			login = counter.take()
		}
	}
	dropRates()
	after := usedMemory(t, c)
	per := (after - before) / n
	t.Logf("redis memory per active user with one session: %d bytes (%d users, %d → %d bytes used)", per, n, before, after)
	t.Logf("redis memory for 10 million such users: %.1f GiB (plus the allocator's fragmentation and replication buffers)", float64(per)*1e7/(1<<30))

	// A gated request's session check: the first sight of a sid reads
	// its session (one round trip); later requests are answered from the
	// liveness cache with none, while the instance reads the revocation
	// feed about once a second whatever the traffic.
	counter.take()
	st := newUser(n + 1)
	counter.take()
	if _, err := e.AuthenticateToken(ctx, st.Access); err != nil {
		t.Fatal(err)
	}
	first := counter.take()
	for range 100 {
		if _, err := e.AuthenticateToken(ctx, st.Access); err != nil {
			t.Fatal(err)
		}
	}
	cached := counter.take()
	first, login, cached = withoutDial(first), withoutDial(login), withoutDial(cached)
	t.Logf("redis round trips of a registration without its rate limit (taken, create): %d (%s)", len(regTrips), strings.Join(regTrips, ", "))
	t.Logf("redis round trips of a login (LoginSession, with the lockout's checks): %d (%s)", len(login), strings.Join(login, ", "))
	t.Logf("redis round trips of a gated request: %d at a session's first sight (%s), %d for the next 100 requests", len(first), strings.Join(first, ", "), len(cached))
	if per <= 0 || per > maxBytesPerUser {
		t.Errorf("%d bytes per user, want 1..%d", per, maxBytesPerUser)
	}
	if len(cached) > 1 {
		t.Errorf("100 cached session checks made %d round trips, want at most one feed read", len(cached))
	}
}

func scanKeys(t *testing.T, c *redis.Client, pattern string) []string {
	t.Helper()
	var out []string
	iter := c.Scan(context.Background(), 0, pattern, 1000).Iterator()
	for iter.Next(context.Background()) {
		out = append(out, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// withoutDial drops a new connection's handshake (HELLO, CLIENT SETINFO)
// from a list of round trips: the pool's, not the operation's.
func withoutDial(trips []string) []string {
	var out []string
	for _, t := range trips {
		if t != "hello" && !strings.HasPrefix(t, "pipeline[client") {
			out = append(out, t)
		}
	}
	return out
}
