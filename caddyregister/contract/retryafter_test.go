package contract_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/contract"
	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/password"
	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// retryAfterHeader is the Retry-After header contract.SetRetryAfter writes
// for d.
func retryAfterHeader(d time.Duration) string {
	w := httptest.NewRecorder()
	contract.SetRetryAfter(w, d)
	return w.Header().Get("Retry-After")
}

// TestRetryAfterValues pins the Retry-After values the README states, as
// values: a store outage says 2 seconds; an overloaded hash pool says
// max(1s, hash_queue_wait), rounded up to whole seconds.
func TestRetryAfterValues(t *testing.T) {
	shed := func(maxWait time.Duration) error {
		p := password.NewPool(password.PoolConfig{Size: 1, MaxWait: maxWait})
		// A done context makes Shed answer without its delay.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		return p.Shed(ctx)
	}
	for _, tc := range []struct {
		name   string
		err    error
		status int
		after  time.Duration
		header string
	}{
		{"store unavailable", store.Unavailable("get user", errors.New("dial tcp: connection refused")), 503, 2 * time.Second, "2"},
		{"engine not ready", fmt.Errorf("load signing key: %w", engine.ErrNotReady), 503, 2 * time.Second, "2"},
		{"overload, default hash_queue_wait (2s)", shed(0), 503, 2 * time.Second, "2"},
		{"overload, hash_queue_wait 3s", shed(3 * time.Second), 503, 3 * time.Second, "3"},
		{"overload, hash_queue_wait 1500ms", shed(1500 * time.Millisecond), 503, 1500 * time.Millisecond, "2"},
		{"overload, hash_queue_wait 300ms: at least 1s", shed(300 * time.Millisecond), 503, time.Second, "1"},
		{"overload, hash_queue_wait 1ms: at least 1s", shed(time.Millisecond), 503, time.Second, "1"},
		{"overload without a hint", fmt.Errorf("hash: %w", password.ErrOverloaded), 503, time.Second, "1"},
		{"rate limited", &engine.RateLimitedError{RetryAfter: 2500 * time.Millisecond}, http.StatusTooManyRequests, 2500 * time.Millisecond, "3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, after, _ := contract.Status(tc.err)
			if status != tc.status || after != tc.after {
				t.Fatalf("Status(%v) = %d, %v; want %d, %v", tc.err, status, after, tc.status, tc.after)
			}
			if got := retryAfterHeader(after); got != tc.header {
				t.Fatalf("Retry-After %q, want %q", got, tc.header)
			}
		})
	}
}
