// Command bench is `make bench`: performance figures of the demo server on
// this machine, in one run, against the bare password-hash rate.
//
//   - the bare argon2id rate with the default parameters on GOMAXPROCS
//     goroutines, measured in-process before and after each of the
//     registration rounds (the machine may be shared: the mean is the
//     reference, and CPU-time ratios are shown next to the wall-clock
//     ones);
//   - Caddy built once from ./cmd/caddy, started with the demo Caddyfile on
//     a throwaway redis-server and on the embedded store, rate limits off
//     (REGISTER_RATE_LIMIT=off), driven by ./cmd/regload;
//   - noraina registrations/s at concurrency 8, in rounds alternating with
//     the hash-rate measurements, ÷ hashes/s;
//   - cheap paths (GET /api/me, a registration refused by validation) ÷
//     Caddy's own `respond` on the same server, interleaved in rounds;
//   - the overload check: 500 clients registering for 30 s, the server's
//     peak RSS and max latency against their bounds, the status mix, and a
//     normal registration right after;
//   - Redis round trips per registration (TestRedisRoundTrips);
//   - every request decoder on its worst 64 KiB bodies (internal/decodebench):
//     time ÷ one argon2id hash and bytes allocated ÷ the body's size
//     (-decoders-only runs just this table).
//
// Everything runs on loopback, bounded in time. It prints a summary table
// with PASS/FAIL against the targets and exits 0 unless a step could not
// run: it is a measurement, not a test.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/password"
	"github.com/caddyregister/caddyregister/internal/testredis"
)

// Targets.
const (
	regTarget   = 0.9 // registrations/s ≥ 0.9 × hashes/s
	cheapTarget = 0.5 // cheap path req/s ≥ 0.5 × respond req/s
	rssSlackMiB = 200 // overload RSS ≤ pool × hash memory + 200 MiB

	// noisyHash flags a registration ratio whose hash rates around the
	// rounds spread by more than this fraction of their mean.
	noisyHash = 0.25
)

// goodPassword passes the demo's noraina policy; invalidBody fails
// validation (→ 400) before any hashing or store access.
const (
	goodPassword = "correct horse battery staple"
	invalidBody  = `{"name":"","mail":"not-an-address","password":"x"}`
)

type options struct {
	hashDur     time.Duration
	regDur      time.Duration
	regRounds   int
	regC        int
	cheapDur    time.Duration
	cheapC      int
	cheapRounds int
	overDur     time.Duration
	overC       int
	keep        bool
	decodeD     time.Duration
	decodeOnly  bool
	gateDur     time.Duration
	gateC       int
	gateRounds  int
	gateOnly    bool
}

func main() {
	var o options
	flag.DurationVar(&o.hashDur, "hash-d", time.Second, "duration of each bare hash-rate measurement (before the first registration round and after each; before and after the overload run)")
	flag.DurationVar(&o.regDur, "reg-d", 40*time.Second, "total duration of each store's registration rounds")
	flag.IntVar(&o.regRounds, "reg-rounds", 16, "rounds each store's registration time is split into, with a bare hash-rate measurement between rounds")
	flag.IntVar(&o.regC, "reg-c", 8, "concurrency of the registration runs")
	flag.DurationVar(&o.cheapDur, "cheap-d", 10*time.Second, "total duration of each cheap path")
	flag.IntVar(&o.cheapC, "cheap-c", 32, "concurrency of the cheap-path runs")
	flag.IntVar(&o.cheapRounds, "cheap-rounds", 4, "rounds the cheap-path time of each path is split into (respond, me, invalid, respond, ...)")
	flag.DurationVar(&o.overDur, "over-d", 30*time.Second, "duration of the overload run")
	flag.IntVar(&o.overC, "over-c", 500, "clients of the overload run")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (binaries, Caddy logs)")
	flag.DurationVar(&o.decodeD, "decode-d", 90*time.Millisecond, "time spent on each decoder's each worst-case body (fastest of three rounds)")
	flag.BoolVar(&o.decodeOnly, "decoders-only", false, "run only the decoder worst-case table")
	flag.DurationVar(&o.gateDur, "gate-d", 20*time.Second, "total duration of each side of the gate row (gated and ungated reverse_proxy), in -gate-rounds rounds")
	flag.IntVar(&o.gateC, "gate-c", 16, "concurrency of the gate row")
	flag.IntVar(&o.gateRounds, "gate-rounds", 10, "rounds the gate row's time is split into (ungated, gated, ungated, ...)")
	flag.BoolVar(&o.gateOnly, "gate-only", false, "run only the gate row (needs redis-server)")
	flag.Parse()

	b := &bench{opt: o, start: time.Now()}
	code := b.run()
	os.Exit(code)
}

type row struct {
	name, value, target, verdict string
}

type bench struct {
	opt   options
	start time.Time

	root, tmp  string
	caddyBin   string
	regloadBin string
	redis      *testredis.Server

	rows     []row
	problems []string // steps that could not run
}

func (b *bench) logf(format string, args ...any) {
	fmt.Printf("[%5.0fs] %s\n", time.Since(b.start).Seconds(), fmt.Sprintf(format, args...))
}

// problem records a step that could not run (exit status 1 at the end).
func (b *bench) problem(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	b.problems = append(b.problems, msg)
	b.logf("ERROR: %s", msg)
}

func (b *bench) add(name, value, target, verdict string) {
	b.rows = append(b.rows, row{name, value, target, verdict})
}

func (b *bench) section(name string) { b.rows = append(b.rows, row{name: name}) }

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

func (b *bench) run() int {
	var err error
	if b.root, err = repoRoot(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	if b.tmp, err = os.MkdirTemp("", "caddyregister-bench-*"); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	if b.opt.keep {
		defer fmt.Printf("kept %s\n", b.tmp)
	} else {
		defer os.RemoveAll(b.tmp)
	}

	b.logf("machine: %d CPUs, GOMAXPROCS %d, %s/%s, %s", runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH, runtime.Version())
	if !b.opt.gateOnly {
		b.decoders()
	}
	if b.opt.decodeOnly {
		b.summary()
		return len(b.problems)
	}
	if err := b.build(); err != nil {
		b.problem("build: %v", err)
		b.summary()
		return 1
	}
	b.redis, err = testredis.StartServer()
	if err != nil {
		b.problem("redis: %v", err)
	} else {
		defer b.redis.Stop()
		b.logf("redis-server on %s", b.redis.Addr)
	}

	if b.opt.gateOnly {
		if b.redis != nil {
			b.gate(b.redis.URL(2))
		} else {
			b.problem("gate: skipped, no redis-server")
		}
		b.summary()
		return len(b.problems)
	}

	b.roundTrips()

	stores := []struct {
		name, redisURL string
	}{{"redis", ""}, {"embedded", ""}}
	if b.redis != nil {
		stores[0].redisURL = b.redis.URL(0)
	} else {
		stores = stores[1:]
	}
	for _, s := range stores {
		b.storeRuns(s.name, s.redisURL)
	}
	if b.redis != nil {
		b.gate(b.redis.URL(2))
		b.cluster()
		b.overload()
	} else {
		b.problem("overload: skipped, no redis-server")
	}
	b.summary()
	if len(b.problems) > 0 {
		return 1
	}
	return 0
}

// repoRoot is the directory of this module's go.mod, from the working
// directory up.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			bytes.Contains(data, []byte("module github.com/caddyregister/caddyregister\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run from inside the caddyregister checkout (no go.mod found)")
		}
		dir = parent
	}
}

func goCmd() string {
	if g := os.Getenv("GO"); g != "" {
		return g
	}
	return "go"
}

func (b *bench) build() error {
	b.caddyBin = filepath.Join(b.tmp, "caddy")
	b.regloadBin = filepath.Join(b.tmp, "regload")
	for _, p := range []struct{ out, pkg string }{{b.caddyBin, "./cmd/caddy"}, {b.regloadBin, "./cmd/regload"}} {
		b.logf("go build -o %s %s", p.out, p.pkg)
		cmd := exec.Command(goCmd(), "build", "-o", p.out, p.pkg)
		cmd.Dir = b.root
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build %s: %w", p.pkg, err)
		}
	}
	return nil
}

// ---------------------------------------------------------------------------
// Redis round trips.

var roundTripRE = regexp.MustCompile(`redis round trips per registration: (\d+) \((.*)\)`)

func (b *bench) roundTrips() {
	b.section("Redis round trips (TestRedisRoundTrips)")
	b.logf("go test -run '^TestRedisRoundTrips$' ./internal/bench/")
	cmd := exec.Command(goCmd(), "test", "-count=1", "-run", "^(TestRedisRoundTrips|TestRedisSizing)$", "-v", "./internal/bench/")
	cmd.Dir = b.root
	out, err := cmd.CombinedOutput()
	m := roundTripRE.FindSubmatch(out)
	if m == nil {
		b.problem("round trips: no count in the test's output (%v):\n%s", err, out)
		b.add("round trips per registration", "?", "= 3 (design minimum)", "")
		return
	}
	n, _ := strconv.Atoi(string(m[1]))
	b.logf("redis round trips per registration: %d (%s)", n, m[2])
	b.add("round trips per registration", fmt.Sprintf("%d (%s)", n, m[2]), "= 3 (design minimum)", verdict(err == nil && n == 3))
	// Sizing (TestRedisSizing): memory per user, round trips of a login
	// and of a gated request; figures, with the test's own bound.
	for _, re := range sizingREs {
		if m := re.re.FindSubmatch(out); m != nil {
			b.add(re.name, string(m[1]), re.target, verdict(err == nil))
		} else {
			b.problem("sizing: no %q in the test's output", re.name)
		}
	}
}

// sizingREs pick TestRedisSizing's figures out of its log.
var sizingREs = []struct {
	name, target string
	re           *regexp.Regexp
}{
	{"redis bytes per active user (one session)", fmt.Sprintf("<= %d", maxBytesPerUser), regexp.MustCompile(`memory per active user with one session: (\d+ bytes)`)},
	{"redis memory for 10 million users", "", regexp.MustCompile(`memory for 10 million such users: ([0-9.]+ GiB)`)},
	{"redis round trips of a login", "", regexp.MustCompile(`round trips of a login \(LoginSession, with the lockout's checks\): (\d+)`)},
	{"redis round trips of a gated request", "", regexp.MustCompile(`round trips of a gated request: (\d+ at a session's first sight \([^)]*\)+, \d+ for the next 100 requests)`)},
}

// maxBytesPerUser bounds the Redis memory one active user with one
// session and no queued mail may take (record, e-mail index, user index
// entry, session hash and session index): TestRedisSizing's regression
// guard, far above what is measured, and the report's target.
const maxBytesPerUser = 4096

// ---------------------------------------------------------------------------
// Bare hash rate.

type hashFig struct {
	opsPerSec  float64
	perHash    time.Duration // mean wall time of one hash
	cpuPerHash time.Duration // mean CPU time of one hash (this process, GC included)
	hashes     int64
	procs      int
}

// hashRate hashes with the default argon2id parameters on GOMAXPROCS
// goroutines for -hash-d, as the server's pool does.
func (b *bench) hashRate(when string) *hashFig {
	h := password.DefaultArgon2id()
	procs := runtime.GOMAXPROCS(0)
	pw := []byte(goodPassword)
	var n, busy atomic.Int64
	var failed atomic.Value
	cpu0 := selfCPU()
	start := time.Now()
	deadline := start.Add(b.opt.hashDur)
	var wg sync.WaitGroup
	for range procs {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				t0 := time.Now()
				if _, err := h.Hash(pw); err != nil {
					failed.Store(err)
					return
				}
				busy.Add(int64(time.Since(t0)))
				n.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := selfCPU() - cpu0
	if err, _ := failed.Load().(error); err != nil || n.Load() == 0 {
		b.problem("hash rate: %v", err)
		return nil
	}
	f := &hashFig{
		opsPerSec:  float64(n.Load()) / elapsed.Seconds(),
		perHash:    time.Duration(busy.Load() / n.Load()),
		cpuPerHash: cpu / time.Duration(n.Load()),
		hashes:     n.Load(),
		procs:      procs,
	}
	b.logf("bare hash rate %s: %.1f hashes/s (%d argon2id m=%dKiB t=%d p=%d on %d goroutines; %.1f ms, %.1f ms CPU each)",
		when, f.opsPerSec, f.hashes, h.MemoryKiB, h.Time, h.Threads, procs, msf(f.perHash), msf(f.cpuPerHash))
	return f
}

// meanHash averages the measurements taken around a run (or its rounds),
// so a neighbour's load that comes or goes during it weighs on both sides
// of the ratio alike.
func meanHash(hs ...*hashFig) *hashFig {
	var out hashFig
	k := 0
	for _, h := range hs {
		if h == nil {
			continue
		}
		k++
		out.opsPerSec += h.opsPerSec
		out.perHash += h.perHash
		out.cpuPerHash += h.cpuPerHash
		out.hashes += h.hashes
		out.procs = h.procs
	}
	if k == 0 {
		return nil
	}
	out.opsPerSec /= float64(k)
	out.perHash /= time.Duration(k)
	out.cpuPerHash /= time.Duration(k)
	return &out
}

func (h *hashFig) String() string {
	return fmt.Sprintf("%.1f hashes/s (%.0f ms, %.0f ms CPU per hash)", h.opsPerSec, msf(h.perHash), msf(h.cpuPerHash))
}

func msf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }

// register makes one noraina registration and returns its status, token and
// latency.
func register(addr string) (int, string, time.Duration, error) {
	body := fmt.Sprintf(`{"name":"Bench","mail":"bench%d@example.com","password":%q}`, time.Now().UnixNano(), goodPassword)
	client := &http.Client{Timeout: 30 * time.Second}
	t0 := time.Now()
	resp, err := client.Post("http://"+addr+"/api/register", "application/json", strings.NewReader(body))
	if err != nil {
		return 0, "", 0, err
	}
	defer resp.Body.Close()
	var out struct {
		Data struct {
			Token string `json:"token"`
		} `json:"data"`
	}
	data, err := io.ReadAll(resp.Body)
	lat := time.Since(t0)
	if err != nil {
		return resp.StatusCode, "", lat, err
	}
	if resp.StatusCode == http.StatusCreated {
		if err := json.Unmarshal(data, &out); err != nil || out.Data.Token == "" {
			return resp.StatusCode, "", lat, fmt.Errorf("201 without a token: %.200s", data)
		}
	}
	return resp.StatusCode, out.Data.Token, lat, nil
}

// The bench admin: benchAdminHash is a bcrypt hash (cost 4) of
// benchAdminPassword.
const (
	benchAdminPassword = "bench-admin-password"
	benchAdminHash     = "$2a$04$0bssdfTG/s2etjRMHbm0i.zLeyC.DL/Q1IqenLwUqgauRrp7Fu3N2"
)

// accountSession registers a user through noraina, has the bench admin
// activate it (the demo's noraina waits for an admin) and logs it in
// through the account API: the access token carries a session, so GET
// /account/me pays the session check.
func accountSession(addr string) (string, error) {
	base := "http://" + addr
	client := &http.Client{Timeout: 30 * time.Second}
	email := fmt.Sprintf("benchacct%d@example.com", time.Now().UnixNano())
	do := func(method, path, body string, basic bool, out any) error {
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		if basic {
			req.SetBasicAuth("bench", benchAdminPassword)
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("%s %s: %d %.200s", method, path, resp.StatusCode, data)
		}
		if out != nil {
			return json.Unmarshal(data, out)
		}
		return nil
	}
	if err := do(http.MethodPost, "/api/register", fmt.Sprintf(`{"name":"Bench","mail":%q,"password":%q}`, email, goodPassword), false, nil); err != nil {
		return "", err
	}
	var page struct {
		Users []struct {
			ID string `json:"id"`
		} `json:"users"`
	}
	if err := do(http.MethodGet, "/account/users?email="+email, "", true, &page); err != nil {
		return "", err
	}
	if len(page.Users) != 1 {
		return "", fmt.Errorf("GET /account/users?email=%s: %d users", email, len(page.Users))
	}
	if err := do(http.MethodPatch, "/account/users/"+page.Users[0].ID, `{"status":"active"}`, true, nil); err != nil {
		return "", err
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := do(http.MethodPost, "/account/login", fmt.Sprintf(`{"identifier":%q,"password":%q}`, email, goodPassword), false, &tok); err != nil {
		return "", err
	}
	if tok.AccessToken == "" {
		return "", errors.New("login answered no access token")
	}
	return tok.AccessToken, nil
}

// ---------------------------------------------------------------------------
// regload.

func (b *bench) summary() {
	w0, w1, w2 := 0, 0, 0
	for _, r := range b.rows {
		if r.value == "" && r.target == "" {
			continue
		}
		w0 = max(w0, len([]rune(r.name)))
		w1 = max(w1, len([]rune(r.value)))
		w2 = max(w2, len([]rune(r.target)))
	}
	pad := func(s string, w int) string { return s + strings.Repeat(" ", max(0, w-len([]rune(s)))) }
	h := password.DefaultArgon2id()
	fmt.Println()
	fmt.Printf("caddyregister bench: %d CPUs (GOMAXPROCS %d), %s/%s, %s, argon2id m=%dKiB t=%d p=%d, wall time %s\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH, runtime.Version(), h.MemoryKiB, h.Time, h.Threads,
		time.Since(b.start).Round(time.Second))
	line := strings.Repeat("-", w0+w1+w2+14)
	fmt.Println(line)
	fmt.Printf("%s  %s  %s  %s\n", pad("figure", w0+2), pad("value", w1), pad("target", w2), "result")
	pass, fail := 0, 0
	for _, r := range b.rows {
		if r.value == "" && r.target == "" {
			fmt.Println(line)
			fmt.Println(r.name)
			continue
		}
		fmt.Printf("  %s  %s  %s  %s\n", pad(r.name, w0), pad(r.value, w1), pad(r.target, w2), r.verdict)
		switch r.verdict {
		case "PASS":
			pass++
		case "FAIL":
			fail++
		}
	}
	fmt.Println(line)
	fmt.Printf("%d PASS, %d FAIL against the targets (a measurement: the exit status only reports steps that could not run)\n", pass, fail)
	fmt.Println("Wall-clock ratios compare runs made at different moments; on a shared machine the CPU-time rows are the steadier reading.")
	for _, p := range b.problems {
		fmt.Printf("COULD NOT RUN: %s\n", firstLine(p))
	}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
