// Package ratelimit limits request rates with GCRA, on Redis (shared by every
// instance on one Redis) through github.com/go-redis/redis_rate.
package ratelimit

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// Limit is Rate events per Period with bursts of up to Burst.
type Limit struct {
	Rate   int           `json:"rate"`
	Period time.Duration `json:"period"`
	Burst  int           `json:"burst,omitempty"`
}

// IsZero reports whether l is unset (no limiting).
func (l Limit) IsZero() bool { return l.Rate <= 0 || l.Period <= 0 }

// String renders l in the form ParseLimit reads.
func (l Limit) String() string {
	s := strconv.Itoa(l.Rate) + "/" + l.Period.String()
	if l.Burst > 0 {
		s += " burst " + strconv.Itoa(l.Burst)
	}
	return s
}

// ParseLimit reads "10/m", "5/s", "100/h", "3/1m30s" (events per duration).
// Burst defaults to Rate.
func ParseLimit(s string) (Limit, error) {
	n, per, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return Limit{}, fmt.Errorf("rate limit %q: want <events>/<period>, like 10/m", s)
	}
	rate, err := strconv.Atoi(n)
	if err != nil || rate <= 0 {
		return Limit{}, fmt.Errorf("rate limit %q: events must be a positive integer", s)
	}
	var d time.Duration
	switch per {
	case "s", "sec", "second":
		d = time.Second
	case "m", "min", "minute":
		d = time.Minute
	case "h", "hour":
		d = time.Hour
	case "d", "day":
		d = 24 * time.Hour
	default:
		d, err = time.ParseDuration(per)
		if err != nil || d <= 0 {
			return Limit{}, fmt.Errorf("rate limit %q: period must be s, m, h, d or a duration", s)
		}
	}
	return Limit{Rate: rate, Period: d, Burst: rate}, nil
}

// Result is one decision.
type Result struct {
	Allowed    bool
	RetryAfter time.Duration
}

// Limiter decides whether one more event under key fits limit l.
type Limiter interface {
	Allow(ctx context.Context, key string, l Limit) (Result, error)
}

// Redis is a Limiter shared by every instance on one Redis.
type Redis struct {
	l      *redis_rate.Limiter
	prefix string
}

// NewRedis returns a Redis limiter; prefix namespaces its keys.
func NewRedis(c redis.UniversalClient, prefix string) *Redis {
	return &Redis{l: redis_rate.NewLimiter(c), prefix: prefix}
}

// Allow implements Limiter.
func (r *Redis) Allow(ctx context.Context, key string, l Limit) (Result, error) {
	if l.IsZero() {
		return Result{Allowed: true}, nil
	}
	burst := l.Burst
	if burst <= 0 {
		burst = l.Rate
	}
	res, err := r.l.Allow(ctx, r.prefix+key, redis_rate.Limit{Rate: l.Rate, Period: l.Period, Burst: burst})
	if err != nil {
		return Result{}, fmt.Errorf("rate limit: %w", err)
	}
	out := Result{Allowed: res.Allowed > 0}
	if !out.Allowed {
		out.RetryAfter = res.RetryAfter
		if out.RetryAfter < time.Second {
			out.RetryAfter = time.Second
		}
	}
	return out, nil
}
