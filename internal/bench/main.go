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
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/password"
	"github.com/caddyregister/caddyregister/internal/loadreport"
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
	cmd := exec.Command(goCmd(), "test", "-count=1", "-run", "^TestRedisRoundTrips$", "-v", "./internal/bench/")
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
}

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

// selfCPU is this process's CPU time (user + system).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// clockTick is USER_HZ, the unit of /proc/<pid>/stat times: 100 on every
// Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// procCPU is the CPU time (user + system, all threads) of process pid.
func procCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces and parentheses: fields start
	// after the last ')'. utime and stime are fields 14 and 15.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, errors.New("proc stat: no command name")
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("proc stat: short")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("proc stat: bad utime/stime")
	}
	return time.Duration(ut+st) * clockTick, nil
}

// procRSS is the current resident set of process pid in KiB.
func procRSS(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// ---------------------------------------------------------------------------
// Caddy.

type caddy struct {
	cmd  *exec.Cmd
	addr string
	log  string
	done chan struct{}
	err  error
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startCaddy runs the built Caddy on the demo Caddyfile with a fresh data
// directory; redisURL empty selects the embedded store.
func (b *bench) startCaddy(name, redisURL string) (*caddy, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(b.tmp, name)
	for _, d := range []string{"data", "config"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	c := &caddy{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), log: filepath.Join(dir, "caddy.log"), done: make(chan struct{})}
	logf, err := os.Create(c.log)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "REGISTER_") || k == "XDG_DATA_HOME" || k == "XDG_CONFIG_HOME" {
			continue
		}
		env = append(env, kv)
	}
	env = append(env,
		"REGISTER_ADDR="+c.addr,
		"REGISTER_CADDY_ADMIN=off",
		"REGISTER_RATE_LIMIT=off",
		// Figures without the access log, as Caddy's default (and the
		// figures before the demo had one).
		"REGISTER_ACCESS_LOG=discard",
		// Figures without the demo's webhook to itself, as before it
		// existed: it keeps only password.reset, which the bench never
		// does.
		"REGISTER_WEBHOOK_EVENTS=password.reset",
		// An admin, to activate the user whose session GET /account/me
		// uses (benchAdminHash is benchAdminPassword's).
		"REGISTER_ADMIN_USER=bench",
		"REGISTER_ADMIN_HASH="+benchAdminHash,
		"XDG_DATA_HOME="+filepath.Join(dir, "data"),
		"XDG_CONFIG_HOME="+filepath.Join(dir, "config"),
	)
	if redisURL != "" {
		env = append(env, "REGISTER_REDIS="+redisURL)
	}
	c.cmd = exec.Command(b.caddyBin, "run", "--config", filepath.Join(b.root, "Caddyfile"), "--adapter", "caddyfile")
	c.cmd.Dir = dir
	c.cmd.Env = env
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	if err := c.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { c.err = c.cmd.Wait(); close(c.done) }()

	// Ready when the demo's `respond` answers (404) on the site address.
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-c.done:
			return nil, fmt.Errorf("caddy exited at start (%v); log:\n%s", c.err, tail(c.log, 20))
		default:
		}
		resp, err := client.Get("http://" + c.addr + "/")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusNotFound {
				b.logf("caddy (%s store) pid %d on %s", name, c.cmd.Process.Pid, c.addr)
				return c, nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.stop()
	return nil, fmt.Errorf("caddy did not answer on %s within 60s; log:\n%s", c.addr, tail(c.log, 20))
}

func (c *caddy) pid() int { return c.cmd.Process.Pid }

func (c *caddy) stop() {
	select {
	case <-c.done:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(15 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

func tail(path string, n int) string {
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

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

// loadResult is regload's -json line plus the server's CPU time over the
// run.
type loadResult struct {
	loadreport.Result

	serverCPU time.Duration
}

// add accumulates another run of the same requests (interleaved rounds).
func (r *loadResult) add(o *loadResult) {
	if r.Status == nil {
		r.Status, r.RetryAfter, r.ErrorKinds = map[string]int64{}, map[string]int64{}, map[string]int64{}
	}
	r.Requests += o.Requests
	r.Responses += o.Responses
	r.Errors += o.Errors
	r.ElapsedS += o.ElapsedS
	r.serverCPU += o.serverCPU
	for k, v := range o.Status {
		r.Status[k] += v
	}
	for k, v := range o.RetryAfter {
		r.RetryAfter[k] += v
	}
	for k, v := range o.ErrorKinds {
		r.ErrorKinds[k] += v
	}
	if r.ElapsedS > 0 {
		r.RPS = float64(r.Responses) / r.ElapsedS
	}
	r.Latency.P50 = max(r.Latency.P50, o.Latency.P50)
	r.Latency.P99 = max(r.Latency.P99, o.Latency.P99)
	r.Latency.Max = max(r.Latency.Max, o.Latency.Max)
}

// rate is responses with status code per second.
func (r *loadResult) rate(code int) float64 {
	if r.ElapsedS <= 0 {
		return 0
	}
	return float64(r.Status[strconv.Itoa(code)]) / r.ElapsedS
}

// cpuPer is the server's CPU time per response with status code.
func (r *loadResult) cpuPer(code int) time.Duration {
	n := r.Status[strconv.Itoa(code)]
	if n == 0 || r.serverCPU <= 0 {
		return 0
	}
	return r.serverCPU / time.Duration(n)
}

// others lists the responses not in want and the transport errors.
func (r *loadResult) others(want ...int) string {
	var parts []string
	var codes []string
	for k := range r.Status {
		codes = append(codes, k)
	}
	sort.Strings(codes)
	for _, k := range codes {
		c, _ := strconv.Atoi(k)
		if !slices.Contains(want, c) {
			parts = append(parts, fmt.Sprintf("%s×%d", k, r.Status[k]))
		}
	}
	if r.Errors > 0 {
		parts = append(parts, fmt.Sprintf("%d transport errors", r.Errors))
	}
	return strings.Join(parts, ", ")
}

func (r *loadResult) mix() string {
	var codes []string
	for k := range r.Status {
		codes = append(codes, k)
	}
	sort.Strings(codes)
	var parts []string
	for _, k := range codes {
		s := fmt.Sprintf("%s×%d", k, r.Status[k])
		if ra := r.RetryAfter[k]; ra > 0 {
			s += fmt.Sprintf(" (%d Retry-After)", ra)
		}
		parts = append(parts, s)
	}
	if r.Errors > 0 {
		var kinds []string
		for k, v := range r.ErrorKinds {
			kinds = append(kinds, fmt.Sprintf("%s %d", k, v))
		}
		sort.Strings(kinds)
		parts = append(parts, fmt.Sprintf("errors×%d (%s)", r.Errors, strings.Join(kinds, ", ")))
	}
	return strings.Join(parts, ", ")
}

// load runs regload against the server with process id pid and returns its
// result with the server's CPU time over the run.
func (b *bench) load(label string, pid int, args ...string) (*loadResult, error) {
	args = append(args, "-json", "-pid", strconv.Itoa(pid))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.regloadBin, args...)
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
	cpu0, cpuErr := procCPU(pid)
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("regload %s: %w", strings.Join(args, " "), err)
	}
	cpu1, cpuErr1 := procCPU(pid)
	var last string
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if s := strings.TrimSpace(sc.Text()); s != "" {
			last = s
		}
	}
	var r loadResult
	if err := json.Unmarshal([]byte(last), &r); err != nil {
		return nil, fmt.Errorf("regload output %q: %w", last, err)
	}
	if cpuErr == nil && cpuErr1 == nil {
		r.serverCPU = cpu1 - cpu0
	}
	b.logf("  %-34s %8.1f req/s  p50 %6.1fms p99 %7.1fms max %7.1fms  server CPU %5.1fs  %s",
		label, r.RPS, r.Latency.P50, r.Latency.P99, r.Latency.Max, r.serverCPU.Seconds(), r.mix())
	for k, v := range r.BodySamples {
		b.logf("    %s body: %.200s", k, v)
	}
	for _, s := range r.ErrorSamples {
		b.logf("    error: %s", s)
	}
	return &r, nil
}

// ---------------------------------------------------------------------------
// Per-store runs: registrations and cheap paths.

// registrations drives noraina registrations in -reg-rounds rounds,
// measuring the bare hash rate before the first round and after each one.
// A shared machine's speed drifts by more than the 10% the target allows
// within a minute; alternating in short rounds puts that drift on both
// sides of the ratio alike, as the cheap paths' rounds do. It returns the
// rounds' sum, the mean hash figure and how far the hash rate moved
// (spread ÷ mean).
func (b *bench) registrations(store string, c *caddy) (*loadResult, *hashFig, float64, error) {
	rounds := max(1, b.opt.regRounds)
	each := b.opt.regDur / time.Duration(rounds)
	hashes := []*hashFig{b.hashRate(fmt.Sprintf("before %s round 1", store))}
	var total loadResult
	var err error
	for i := range rounds {
		var r *loadResult
		r, err = b.load(fmt.Sprintf("registrations c=%d %s %d/%d", b.opt.regC, each, i+1, rounds), c.pid(),
			"-preset", "noraina", "-url", "http://"+c.addr, "-c", strconv.Itoa(b.opt.regC), "-d", each.String(), "-timeout", "30s")
		hashes = append(hashes, b.hashRate(fmt.Sprintf("after %s round %d", store, i+1)))
		if err != nil {
			break
		}
		if hb, ha := hashes[i], hashes[i+1]; hb != nil && ha != nil {
			b.logf("  round %d: %.1f registrations/s ÷ %.1f hashes/s (mean of before and after) = %.2f",
				i+1, r.rate(http.StatusCreated), (hb.opsPerSec+ha.opsPerSec)/2, 2*r.rate(http.StatusCreated)/(hb.opsPerSec+ha.opsPerSec))
		}
		total.add(r)
		total.PeakRSSKiB = max(total.PeakRSSKiB, r.PeakRSSKiB)
		total.PeakAnonKiB = max(total.PeakAnonKiB, r.PeakAnonKiB)
		total.PeakFileKiB = max(total.PeakFileKiB, r.PeakFileKiB)
	}
	h := meanHash(hashes...)
	var noisy float64
	if h != nil {
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, x := range hashes {
			if x != nil {
				lo, hi = min(lo, x.opsPerSec), max(hi, x.opsPerSec)
			}
		}
		noisy = (hi - lo) / h.opsPerSec
	}
	if err != nil {
		return nil, h, noisy, err
	}
	return &total, h, noisy, nil
}

func (b *bench) storeRuns(store, redisURL string) {
	b.section(fmt.Sprintf("%s store (demo Caddyfile, rate limits off)", store))
	c, err := b.startCaddy(store, redisURL)
	if err != nil {
		b.problem("%s: start caddy: %v", store, err)
		return
	}
	defer c.stop()
	base := "http://" + c.addr

	// Warm-up, and the token for GET /api/me.
	status, tok, _, err := register(c.addr)
	if err != nil || status != http.StatusCreated {
		b.problem("%s: first registration: status %d, %v; log:\n%s", store, status, err, tail(c.log, 10))
		return
	}
	sessTok, err := accountSession(c.addr)
	if err != nil {
		b.problem("%s: account session: %v; log:\n%s", store, err, tail(c.log, 10))
		return
	}
	var transportErrors int64
	defer func() {
		b.add("transport errors (all runs above)", strconv.FormatInt(transportErrors, 10), "0", verdict(transportErrors == 0))
	}()

	reg, h, noisy, err := b.registrations(store, c)
	if h != nil {
		b.add(fmt.Sprintf("bare hash rate (mean of %d, around the rounds)", b.opt.regRounds+1), h.String(), "", "")
	}
	if err != nil {
		b.problem("%s: registrations: %v", store, err)
	} else {
		transportErrors += reg.Errors
		rps := reg.rate(http.StatusCreated)
		val := fmt.Sprintf("%.1f /s (p50 ≤ %.0f ms, p99 ≤ %.0f ms)", rps, reg.Latency.P50, reg.Latency.P99)
		if o := reg.others(http.StatusCreated); o != "" {
			val += "; also " + o
		}
		b.add(fmt.Sprintf("registrations/s (c=%d, %s in %d rounds)", b.opt.regC, b.opt.regDur, b.opt.regRounds), val, "", "")
		if h != nil {
			ratio := rps / h.opsPerSec
			val := fmt.Sprintf("%.3f", ratio) // three places: a rounded 0.90 may be below the target
			if noisy > noisyHash {
				val += fmt.Sprintf(" (noisy: the hash rate moved %.0f%% over the rounds; see the CPU-time ratio)", 100*noisy)
			}
			b.add("registrations/s ÷ hashes/s", val, fmt.Sprintf("≥ %.1f", regTarget), verdict(ratio >= regTarget && reg.Errors == 0))
			if cpu := reg.cpuPer(http.StatusCreated); cpu > 0 {
				ratio := float64(h.cpuPerHash) / float64(cpu)
				b.add("  by CPU time: hash ÷ server per registration",
					fmt.Sprintf("%.2f (%.1f ms ÷ %.1f ms)", ratio, msf(h.cpuPerHash), msf(cpu)), fmt.Sprintf("≥ %.1f", regTarget), verdict(ratio >= regTarget))
			}
		}
		b.add("server peak RSS (registrations)", fmt.Sprintf("%.0f MiB (anon %.0f, file %.0f)",
			float64(reg.PeakRSSKiB)/1024, float64(reg.PeakAnonKiB)/1024, float64(reg.PeakFileKiB)/1024), "", "")
	}

	// Cheap paths against `respond`, interleaved in rounds so a
	// neighbour's load falls on all three alike.
	type path struct {
		label, row string
		code       int
		args       []string
		total      loadResult
	}
	paths := []*path{
		{label: "respond GET / (404)", row: "respond baseline GET /", code: http.StatusNotFound, args: []string{"-url", base + "/"}},
		{label: "GET /api/me (200)", row: "GET /api/me with a token", code: http.StatusOK,
			args: []string{"-url", base + "/api/me", "-header", "x-access-token: " + tok}},
		{label: "GET /account/me (200)", row: "GET /account/me with a session token", code: http.StatusOK,
			args: []string{"-url", base + "/account/me", "-header", "Authorization: Bearer " + sessTok}},
		{label: "POST /api/register invalid (400)", row: "POST /api/register refused by validation", code: http.StatusBadRequest,
			args: []string{"-url", base + "/api/register", "-method", "POST", "-body", invalidBody}},
	}
	rounds := max(1, b.opt.cheapRounds)
	each := b.opt.cheapDur / time.Duration(rounds)
	for i := range rounds {
		for _, p := range paths {
			r, err := b.load(fmt.Sprintf("%s %d/%d", p.label, i+1, rounds), c.pid(),
				append([]string{"-c", strconv.Itoa(b.opt.cheapC), "-d", each.String()}, p.args...)...)
			if err != nil {
				b.problem("%s: %s: %v", store, p.label, err)
				return
			}
			p.total.add(r)
		}
	}
	what := fmt.Sprintf("c=%d, %s in %d rounds", b.opt.cheapC, b.opt.cheapDur, rounds)
	respond := &paths[0].total
	transportErrors += respond.Errors
	base404 := respond.rate(http.StatusNotFound)
	val := fmt.Sprintf("%.0f req/s (%.0f µs server CPU each)", base404, us(respond.cpuPer(http.StatusNotFound)))
	if o := respond.others(http.StatusNotFound); o != "" {
		val += "; also " + o
	}
	b.add(fmt.Sprintf("respond baseline GET / (%s)", what), val, "", "")
	for _, p := range paths[1:] {
		r := &p.total
		transportErrors += r.Errors
		rps := r.rate(p.code)
		ratio := 0.0
		if base404 > 0 {
			ratio = rps / base404
		}
		val := fmt.Sprintf("%.0f req/s = %.2f × respond", rps, ratio)
		if o := r.others(p.code); o != "" {
			val += "; also " + o
		}
		b.add(fmt.Sprintf("%s (%d)", p.row, p.code), val, fmt.Sprintf("≥ %.1f × respond", cheapTarget), verdict(ratio >= cheapTarget && r.others(p.code) == ""))
		if cpu, cpu0 := r.cpuPer(p.code), respond.cpuPer(http.StatusNotFound); cpu > 0 && cpu0 > 0 {
			ratio := float64(cpu0) / float64(cpu)
			b.add("  by server CPU per request", fmt.Sprintf("%.2f (%.0f µs vs %.0f µs)", ratio, us(cpu), us(cpu0)),
				fmt.Sprintf("≥ %.1f", cheapTarget), verdict(ratio >= cheapTarget))
		}
	}
}

// ---------------------------------------------------------------------------
// Overload.

func (b *bench) overload() {
	b.section(fmt.Sprintf("overload: %d clients registering for %s (redis store, rate limits off)", b.opt.overC, b.opt.overDur))
	c, err := b.startCaddy("overload", b.redis.URL(1))
	if err != nil {
		b.problem("overload: start caddy: %v", err)
		return
	}
	defer c.stop()
	if status, _, _, err := register(c.addr); err != nil || status != http.StatusCreated {
		b.problem("overload: first registration: status %d, %v", status, err)
		return
	}
	idleRSS := procRSS(c.pid())
	hBefore := b.hashRate("before the overload run")
	r, err := b.load(fmt.Sprintf("registrations c=%d %s", b.opt.overC, b.opt.overDur), c.pid(),
		"-preset", "noraina", "-url", "http://"+c.addr, "-c", strconv.Itoa(b.opt.overC), "-d", b.opt.overDur.String(), "-timeout", "60s")
	if err != nil {
		b.problem("overload: %v", err)
		return
	}
	// The normal registration right after.
	status, _, lat, regErr := register(c.addr)
	hAfter := b.hashRate("after the overload run")
	h := meanHash(hBefore, hAfter)
	if h != nil {
		b.add("bare hash rate (mean of before, after)", h.String(), "", "")
	}

	b.add("status mix", r.mix(), "201 and 503 only", verdict(r.others(http.StatusCreated, http.StatusServiceUnavailable) == "" && r.Requests > 0))
	n503 := r.Status["503"]
	b.add("503 with Retry-After", fmt.Sprintf("%d of %d", r.RetryAfter["503"], n503), "all", verdict(r.RetryAfter["503"] == n503))
	under := fmt.Sprintf("%.1f /s", r.rate(http.StatusCreated))
	if h != nil {
		under += fmt.Sprintf(" = %.2f × hashes/s", r.rate(http.StatusCreated)/h.opsPerSec)
	}
	b.add("registrations/s under overload", under, "", "")
	b.add("transport errors", fmt.Sprintf("%d", r.Errors), "0", verdict(r.Errors == 0))

	poolSize := runtime.GOMAXPROCS(0) // the demo leaves hash_pool_size at its default, GOMAXPROCS
	hashMiB := float64(password.DefaultArgon2id().MemoryKiB) / 1024
	bound := float64(poolSize)*hashMiB + rssSlackMiB
	peak := float64(r.PeakRSSKiB) / 1024
	rssVal := fmt.Sprintf("%.0f MiB (anon %.0f, file %.0f; %.0f at idle)", peak, float64(r.PeakAnonKiB)/1024, float64(r.PeakFileKiB)/1024, float64(idleRSS)/1024)
	if r.RSSError != "" {
		rssVal += " (" + r.RSSError + ")"
	}
	b.add("server peak RSS", rssVal, fmt.Sprintf("≤ %d × %.0f MiB + %d MiB = %.0f MiB", poolSize, hashMiB, rssSlackMiB, bound), verdict(r.PeakRSSKiB > 0 && peak <= bound))

	if h != nil {
		latBound := password.DefaultMaxWait + h.perHash
		b.add("max latency", fmt.Sprintf("%.0f ms (p50 %.0f, p99 %.0f; max 201 %.0f, max 503 %.0f)",
			r.Latency.Max, r.Latency.P50, r.Latency.P99, r.StatusLatency["201"].Max, r.StatusLatency["503"].Max),
			fmt.Sprintf("≤ %s wait + %.0f ms hash = %.0f ms", password.DefaultMaxWait, msf(h.perHash), msf(latBound)),
			verdict(r.Latency.Max > 0 && r.Latency.Max <= msf(latBound)))
	} else {
		b.add("max latency", fmt.Sprintf("%.0f ms", r.Latency.Max), "no hash time measured", "")
	}
	if regErr != nil {
		b.add("registration right after", fmt.Sprintf("error: %v", regErr), "201", "FAIL")
	} else {
		b.add("registration right after", fmt.Sprintf("%d in %.0f ms", status, msf(lat)), "201", verdict(status == http.StatusCreated))
	}
}

// ---------------------------------------------------------------------------
// Summary.

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
