package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/password"
	"github.com/caddyregister/caddyregister/caddyregister/ratelimit"
	"github.com/caddyregister/caddyregister/caddyregister/store/redisstore"
	"github.com/caddyregister/caddyregister/internal/testredis"
)

// minRoundTrips is the design minimum of Redis round trips for one
// successful registration with its rate limit on: the rate limit (1
// script), the duplicate pre-check (1 pipeline) and the atomic create (1
// script). A pipeline is one round trip.
const minRoundTrips = 3

// roundTrips is a go-redis hook counting round trips: one per command sent
// alone, one per pipeline (however many commands it holds).
type roundTrips struct {
	mu    sync.Mutex
	trips []string
}

func (r *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		r.add(describe(cmd))
		return next(ctx, cmd)
	}
}

func (r *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		names := make([]string, len(cmds))
		for i, c := range cmds {
			names[i] = describe(c)
		}
		r.add("pipeline[" + strings.Join(names, " ") + "]")
		return next(ctx, cmds)
	}
}

// describe names a command, with the first key of a script call so the log
// tells the rate limit from the create.
func describe(c redis.Cmder) string {
	args := c.Args()
	if name := c.Name(); (name == "evalsha" || name == "eval") && len(args) > 3 {
		return fmt.Sprintf("%s %v", name, args[3])
	}
	return c.FullName()
}

func (r *roundTrips) add(s string) {
	r.mu.Lock()
	r.trips = append(r.trips, s)
	r.mu.Unlock()
}

func (r *roundTrips) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.trips
	r.trips = nil
	return t
}

// TestRedisRoundTrips counts the Redis round trips of one successful
// registration as the noraina handler makes it (per-client limit and global
// ceiling charged in one script, then Register issuing a token), after a first registration has loaded the
// signing key and the scripts, and checks it is the design minimum.
// `make bench` reports the line it logs.
func TestRedisRoundTrips(t *testing.T) {
	srv := testredis.Start(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { c.Close() })
	counter := &roundTrips{}
	c.AddHook(counter)
	const ns = "roundtrips"
	st := redisstore.New(c, ns)
	lim := ratelimit.NewRedis(c, "{"+ns+"}:")
	e, err := engine.New(engine.Config{
		Store:   st,
		Limiter: lim,
		Hasher:  password.Argon2id{MemoryKiB: 1024, Time: 1, Threads: 1}, // the hash costs no round trip
		Pool:    password.NewPool(password.PoolConfig{}),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	limit := ratelimit.Limit{Rate: 30, Period: time.Minute, Burst: 30}
	global := ratelimit.Limit{Rate: 600, Period: time.Minute, Burst: 600} // the handler's default ceiling
	register := func(i int) {
		t.Helper()
		ip := net.IPv4(192, 0, 2, byte(i)).String()
		if err := e.AllowRequest(ctx, "noraina:register", ip, limit, global); err != nil {
			t.Fatalf("Allow: %v", err)
		}
		res, err := e.Register(ctx, engine.Registration{
			Contract:   "noraina",
			ClientIP:   ip,
			Email:      fmt.Sprintf("roundtrip%d@example.com", i),
			Name:       "Round Trip",
			Password:   "correct horse battery staple",
			Policy:     password.NIST(),
			IssueToken: true,
		})
		if err != nil {
			t.Fatalf("Register: %v", err)
		}
		if res.Token == "" {
			t.Fatal("no token")
		}
	}
	// Warm-up: loads the scripts (EVALSHA falls back to EVAL once) and
	// opens the connection.
	register(1)
	counter.take()

	register(2)
	trips := counter.take()
	names := make([]string, len(trips))
	for i, trip := range trips {
		names[i], _, _ = strings.Cut(trip, " ")
	}
	t.Logf("redis round trips per registration: %d (%s)", len(trips), strings.Join(names, ", "))
	t.Logf("round trips with their first keys: %s", strings.Join(trips, ", "))
	if len(trips) != minRoundTrips {
		t.Errorf("a registration took %d Redis round trips, want the design minimum %d: %s", len(trips), minRoundTrips, strings.Join(trips, ", "))
	}
}
