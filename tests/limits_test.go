package tests

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"
)

// The tests in this file pin, through a running Caddy, the limits and
// Retry-After values the README states. Their numbers are literals.

// limitCase is one rate-limited route: its default burst and the time one
// more request is earned (period ÷ rate).
type limitCase struct {
	name   string
	method string
	path   string
	header map[string]string
	burst  int
	every  time.Duration
}

// exhaust sends c's requests one after another from one client until the
// first 429, and checks that exactly the burst got through (plus what the
// rate earned back meanwhile, if the machine was slow) and that the 429's
// Retry-After is the time to the next earned request. The rate limit comes
// before anything else a route does, so requests that fail validation or
// authentication count, and cost no hash.
func exhaust(t *testing.T, s *site, c limitCase) {
	t.Helper()
	start := time.Now()
	allowed := 0
	var res *response
	for range 3*c.burst + 10 {
		res = s.do(c.method, c.path, c.header, "")
		if res.Status == http.StatusTooManyRequests {
			break
		}
		allowed++
	}
	elapsed := time.Since(start)
	if res.Status != http.StatusTooManyRequests {
		t.Fatalf("%s: %d requests, none refused with 429 (last %d %.200s)", c.name, allowed, res.Status, res.Body)
	}
	if most := c.burst + int(elapsed/c.every); allowed < c.burst || allowed > most {
		t.Fatalf("%s: %d requests in %v before the 429, want a burst of %d (at most %d with what %v earned back)", c.name, allowed, elapsed, c.burst, most, elapsed)
	}
	ra, err := strconv.Atoi(res.Header.Get("Retry-After"))
	hi := int(math.Ceil(c.every.Seconds()))
	lo := max(1, int(math.Ceil((c.every - elapsed).Seconds())))
	if err != nil || ra < lo || ra > hi {
		t.Fatalf("%s: Retry-After %q after %v, want %d..%d (one request per %v)", c.name, res.Header.Get("Retry-After"), elapsed, lo, hi, c.every)
	}
	t.Logf("%s: %d allowed in %v, Retry-After %d", c.name, allowed, elapsed, ra)
	if !json.Valid(res.Body) {
		t.Fatalf("%s: 429 body is not the contract's JSON envelope: %s", c.name, res.Body)
	}
}

// allContracts mounts every contract on one site, with no rate_limit
// lines: each route runs on its default.
const allContracts = `register noraina /api
	register indiqus /api
	register saymon /node/api
	register soajs
	register rpost /api/v1
	register account /account`

// TestDefaultRateLimits exercises every route's default limit at run time
// (README: register/signup 30/min; create/addUser and captcha/confirm
// 60/min burst 30; login 20/min burst 10; soajs resetPassword 10/min).
// CAPTCHA generation is limited too: an admin's 31st CAPTCHA in a burst
// is refused.
func TestDefaultRateLimits(t *testing.T) { eachBackend(t, testDefaultRateLimits) }

func testDefaultRateLimits(t *testing.T, backend string) {
	global := fmt.Sprintf("admin root %s manage-users", mustBcrypt(t, "rootpw"))
	s := startSite(t, backend, global, allContracts)
	root := map[string]string{"Authorization": basicHeader("root", "rootpw")}
	const (
		hash  = 2 * time.Second // 30/min
		link  = time.Second     // 60/min
		login = 3 * time.Second // 20/min
		reset = 6 * time.Second // 10/min
	)
	for _, c := range []limitCase{
		{name: "noraina register", method: http.MethodPost, path: "/api/register", burst: 30, every: hash},
		{name: "saymon signup", method: http.MethodPost, path: "/node/api/users/signup", burst: 30, every: hash},
		{name: "rpost register", method: http.MethodPost, path: "/api/v1/Account/Register", burst: 30, every: hash},
		{name: "indiqus create", method: http.MethodPost, path: "/api/pass/createNewUser", burst: 30, every: link},
		{name: "soajs addUser", method: http.MethodPost, path: "/urac/admin/addUser", burst: 30, every: link},
		{name: "saymon captcha", method: http.MethodGet, path: "/node/api/users/captcha", header: root, burst: 30, every: link},
		{name: "saymon confirm", method: http.MethodGet, path: "/node/api/users/confirm?token=x", burst: 30, every: link},
		{name: "rpost confirm", method: http.MethodGet, path: "/api/v1/Account/Activate?code=x", burst: 30, every: link},
		{name: "soajs confirm", method: http.MethodGet, path: "/urac/join/validate?token=x", burst: 30, every: link},
		{name: "indiqus login", method: http.MethodPost, path: "/auth/login", burst: 10, every: login},
		{name: "soajs resetPassword", method: http.MethodPost, path: "/urac/resetPassword", burst: 10, every: reset},
		{name: "account login", method: http.MethodPost, path: "/account/login", burst: 10, every: login},
		{name: "account activation resend", method: http.MethodPost, path: "/account/activation/resend", burst: 10, every: reset},
	} {
		exhaust(t, s, c)
	}
	// The CAPTCHAs were really drawn: 30 of them are stored.
	if backend == backendRedis {
		n := 0
		iter := s.rdb.Scan(t.Context(), 0, "{"+s.ns+"}:challenge:*", 1000).Iterator()
		for iter.Next(t.Context()) {
			n++
		}
		if n != 30 {
			t.Fatalf("%d challenges stored, want the 30 of the burst", n)
		}
	}
}

// TestGlobalRateLimit: a rate_limit in the global register block replaces
// the default of every route of that name, and a handler's own rate_limit
// replaces the global one.
func TestGlobalRateLimit(t *testing.T) {
	s := startSite(t, backendRedis, "rate_limit register 4/m burst 2", `register noraina /api
	register rpost /api/v1 {
		rate_limit register 3/m
	}`)
	exhaust(t, s, limitCase{name: "noraina register (global)", method: http.MethodPost, path: "/api/register", burst: 2, every: 15 * time.Second})
	exhaust(t, s, limitCase{name: "rpost register (handler)", method: http.MethodPost, path: "/api/v1/Account/Register", burst: 3, every: 20 * time.Second})
}

// TestRetryAfterStoreOutage: with the store down, the 503 says to come
// back in 2 seconds.
func TestRetryAfterStoreOutage(t *testing.T) {
	own := startOwnRedis(t)
	s := startSite(t, own.URL(0), "", noraina)
	ok := s.postJSON("/api/register", `{"name":"U","mail":"before@example.com","password":"my_password"}`)
	if ok.Status != http.StatusCreated {
		t.Fatalf("before the outage: %d %s", ok.Status, ok.Body)
	}
	tok := ok.JSON(t)["data"].(map[string]any)["token"].(string)
	own.Kill()
	for _, res := range []*response{
		s.postJSON("/api/register", `{"name":"U","mail":"down@example.com","password":"my_password"}`),
		s.do(http.MethodGet, "/api/me", map[string]string{"x-access-token": tok}, ""),
	} {
		if res.Status != http.StatusServiceUnavailable || res.Header.Get("Retry-After") != "2" {
			t.Fatalf("store down: %d, Retry-After %q; want 503 and 2", res.Status, res.Header.Get("Retry-After"))
		}
	}
}

// TestRetryAfterOverload: a registration refused because no hashing slot
// came free within hash_queue_wait (here 1.5s) says to come back after
// hash_queue_wait, in whole seconds rounded up: 2.
func TestRetryAfterOverload(t *testing.T) {
	s := startSite(t, backendRedis, "hash_pool_size 1\n\t\thash_queue_wait 1500ms\n\t\thash argon2id 65536 3 1", noraina+` {
		rate_limit register off
	}`)
	// One slot and a hash of tens of milliseconds: of 24 registrations at
	// once, those still queued 1.5s later are refused.
	const n = 24
	var wg sync.WaitGroup
	results := make([]*response, n)
	for i := range n {
		wg.Go(func() {
			results[i] = s.postJSON("/api/register", fmt.Sprintf(`{"name":"U","mail":"ov%d@example.com","password":"my_password"}`, i))
		})
	}
	wg.Wait()
	busy := 0
	for _, r := range results {
		switch r.Status {
		case http.StatusCreated:
		case http.StatusServiceUnavailable:
			busy++
			if got := r.Header.Get("Retry-After"); got != "2" {
				t.Fatalf("overload: Retry-After %q, want 2", got)
			}
		default:
			t.Fatalf("unexpected %d %s", r.Status, r.Body)
		}
	}
	if busy == 0 {
		t.Fatalf("none of %d concurrent registrations was refused", n)
	}
}
