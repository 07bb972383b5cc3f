package caddyregister

import (
	"testing"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/ratelimit"
)

func TestGlobalLimitDefaults(t *testing.T) {
	perClient := ratelimit.Limit{Rate: 30, Period: time.Minute, Burst: 10}
	for _, c := range []struct {
		name         string
		per          ratelimit.Limit
		app, handler *RateLimitConfig
		want         ratelimit.Limit
	}{
		{"default: 20x rate and burst", perClient, nil, nil, ratelimit.Limit{Rate: 600, Period: time.Minute, Burst: 200}},
		{"burst unset: 20x rate", ratelimit.Limit{Rate: 5, Period: time.Second}, nil, nil, ratelimit.Limit{Rate: 100, Period: time.Second, Burst: 100}},
		{"per-client off: off", ratelimit.Limit{}, nil, nil, ratelimit.Limit{}},
		{"app", perClient, &RateLimitConfig{Rate: 7}, nil, ratelimit.Limit{Rate: 7, Period: time.Minute}},
		{"handler over app", perClient, &RateLimitConfig{Rate: 7}, &RateLimitConfig{Rate: 9}, ratelimit.Limit{Rate: 9, Period: time.Minute}},
		{"handler off", perClient, nil, &RateLimitConfig{}, ratelimit.Limit{Period: time.Minute}},
	} {
		if got := globalLimit(c.per, c.app, c.handler); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}
