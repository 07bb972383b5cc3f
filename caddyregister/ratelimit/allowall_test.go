package ratelimit

import (
	"context"
	"testing"
	"time"
)

// TestAllowBurstAndRetry: the Redis script and Memory give the same GCRA
// decisions: a burst, then a refusal whose Retry-After is one emission
// interval, less the time the test took.
func TestAllowBurstAndRetry(t *testing.T) {
	lockBackends(t, func(t *testing.T, l Limiter) {
		ctx := context.Background()
		lim := Limit{Rate: 3, Period: time.Minute}
		for i := range 3 {
			if r, err := l.Allow(ctx, "k", lim); err != nil || !r.Allowed {
				t.Fatalf("event %d: %+v, %v", i+1, r, err)
			}
		}
		r, err := l.Allow(ctx, "k", lim)
		if err != nil || r.Allowed || r.RetryAfter <= 15*time.Second || r.RetryAfter > 20*time.Second {
			t.Fatalf("fourth event: %+v, %v; want refused for about 20s", r, err)
		}
		if r, _ := l.Allow(ctx, "other", lim); !r.Allowed {
			t.Fatal("another key refused")
		}
		if r, _ := l.Allow(ctx, "k", Limit{}); !r.Allowed {
			t.Fatal("a zero limit refused")
		}
	})
}

// TestAllowAllIsAllOrNothing: when one limit refuses, no other is
// charged, and the answer carries the longest wait.
func TestAllowAllIsAllOrNothing(t *testing.T) {
	lockBackends(t, func(t *testing.T, l Limiter) {
		ctx := context.Background()
		client := Limit{Rate: 1, Period: time.Hour}
		global := Limit{Rate: 3, Period: time.Minute}
		all := func(who string) Result {
			t.Helper()
			r, err := l.AllowAll(ctx, Check{Key: "route:" + who, Limit: client}, Check{Key: "route:*", Limit: global}, Check{Key: "unlimited"})
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		if !all("a").Allowed {
			t.Fatal("first request refused")
		}
		// a's own limit refuses: the global budget is not spent.
		for range 5 {
			if r := all("a"); r.Allowed || r.RetryAfter <= 59*time.Minute {
				t.Fatalf("a again: %+v, want refused for about an hour", r)
			}
		}
		if !all("b").Allowed || !all("c").Allowed {
			t.Fatal("the global budget was spent by refused requests")
		}
		// The global ceiling refuses d, whose own budget stays whole.
		if r := all("d"); r.Allowed || r.RetryAfter > 20*time.Second {
			t.Fatalf("d over the ceiling: %+v, want refused for at most 20s", r)
		}
		if r, _ := l.Allow(ctx, "route:d", client); !r.Allowed {
			t.Fatal("a request refused by the ceiling spent the client's budget")
		}
		if r, err := l.AllowAll(ctx); err != nil || !r.Allowed {
			t.Fatalf("no checks: %+v, %v", r, err)
		}
	})
}
