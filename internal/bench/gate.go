package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The gate row (issue 14): a reverse_proxy gated by register_auth ÷ the
// same reverse_proxy ungated, on one Caddy, to one local upstream,
// interleaved in rounds, with many users' session tokens (each request
// takes the next user's: not one cached token) and the session check on.

// gateTarget is the gated ÷ ungated throughput the issue asks for.
const gateTarget = 0.95

// gateCaddyfile is the gate bench's config: the users' store on Redis,
// a cheap hash (the users are made at start, not measured), limits off,
// and the two proxies. %[1]s is the Redis URL, %[2]s the site address,
// %[3]s the upstream. BENCH_GATE_ADMIN=localhost:2999 in the environment
// turns Caddy's admin endpoint on, for a CPU profile of the proxy
// (/debug/pprof/profile) during a run.
const gateCaddyfile = `{
	admin {$BENCH_GATE_ADMIN:off}
	register {
		store redis %[1]s benchgate
		hash bcrypt 4
		admin_login_limit off
		rate_limit register off
		rate_limit login off
	}
}

http://%[2]s {
	register noraina /api {
		activation auto
	}
	register account /account
	register_auth /gated/*
	handle /gated/* {
		reverse_proxy %[3]s
	}
	handle /plain/* {
		reverse_proxy %[3]s
	}
}
`

// benchUpstream is the app behind the proxy: a fixed small answer, in
// this process (whose CPU is not the proxy's).
func benchUpstream() (string, func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	body := []byte("ok\n")
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write(body)
	})}
	go func() { _ = srv.Serve(l) }()
	return l.Addr().String(), func() { _ = srv.Close() }, nil
}

// startGateCaddy runs the built Caddy on gateCaddyfile.
func (b *bench) startGateCaddy(redisURL, upstream string) (*caddy, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(b.tmp, "gate")
	for _, d := range []string{"data", "config"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	c := &caddy{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), log: filepath.Join(dir, "caddy.log"), done: make(chan struct{})}
	cfg := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, gateCaddyfile, redisURL, c.addr, upstream), 0o600); err != nil {
		return nil, err
	}
	logf, err := os.Create(c.log)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	env := append(os.Environ(), "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	c.cmd = exec.Command(b.caddyBin, "run", "--config", cfg, "--adapter", "caddyfile")
	c.cmd.Dir, c.cmd.Env, c.cmd.Stdout, c.cmd.Stderr = dir, env, logf, logf
	if err := c.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { c.err = c.cmd.Wait(); close(c.done) }()
	client := &http.Client{Timeout: 2 * time.Second}
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		select {
		case <-c.done:
			return nil, fmt.Errorf("caddy exited at start (%v); log:\n%s", c.err, tail(c.log, 20))
		default:
		}
		if resp, err := client.Get("http://" + c.addr + "/plain/"); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				b.logf("caddy (gate) pid %d on %s, upstream %s", c.pid(), c.addr, upstream)
				return c, nil
			}
		}
	}
	c.stop()
	return nil, fmt.Errorf("caddy did not answer on %s within 60s; log:\n%s", c.addr, tail(c.log, 20))
}

// gateUsers registers n active users and logs each in through the
// account API: n session tokens, each with its own sid.
func gateUsers(addr string, n int) ([]string, error) {
	base := "http://" + addr
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	defer tr.CloseIdleConnections()
	client := &http.Client{Timeout: 30 * time.Second, Transport: tr}
	post := func(path, body string, out any) error {
		resp, err := client.Post(base+path, "application/json", strings.NewReader(body))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("POST %s: %d %.200s", path, resp.StatusCode, data)
		}
		if out != nil {
			return json.Unmarshal(data, out)
		}
		return nil
	}
	tokens := make([]string, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for range 8 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				email := fmt.Sprintf("gate%s-%d@example.com", run, i)
				err := post("/api/register", fmt.Sprintf(`{"name":"Gate","mail":%q,"password":%q}`, email, goodPassword), nil)
				var tok struct {
					AccessToken string `json:"access_token"`
				}
				if err == nil {
					err = post("/account/login", fmt.Sprintf(`{"identifier":%q,"password":%q}`, email, goodPassword), &tok)
				}
				if err == nil && tok.AccessToken == "" {
					err = fmt.Errorf("login of %s answered no token", email)
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				tokens[i] = tok.AccessToken
			}
		})
	}
	wg.Wait()
	return tokens, firstErr
}

// gate measures the gated proxy against the ungated one.
func (b *bench) gate(redisURL string) {
	const users = 1000
	b.section(fmt.Sprintf("gate: register_auth + reverse_proxy ÷ reverse_proxy (redis store, %d users' session tokens)", users))
	upstream, stopUp, err := benchUpstream()
	if err != nil {
		b.problem("gate: upstream: %v", err)
		return
	}
	defer stopUp()
	c, err := b.startGateCaddy(redisURL, upstream)
	if err != nil {
		b.problem("gate: start caddy: %v", err)
		return
	}
	defer c.stop()
	t0 := time.Now()
	tokens, err := gateUsers(c.addr, users)
	if err != nil {
		b.problem("gate: users: %v; log:\n%s", err, tail(c.log, 10))
		return
	}
	b.logf("  %d users registered and logged in in %.1fs", users, time.Since(t0).Seconds())
	lines := filepath.Join(b.tmp, "gate", "tokens")
	if err := os.WriteFile(lines, []byte(strings.Join(tokens, "\n")+"\n"), 0o600); err != nil {
		b.problem("gate: %v", err)
		return
	}
	base := "http://" + c.addr
	runs := []struct {
		label string
		args  []string
		total loadResult
	}{
		// The same requests, tokens included: the gate's cost to an app
		// that is already behind a proxy (ungated, the app gets the token;
		// gated, the identity headers instead).
		{label: "reverse_proxy ungated", args: []string{"-url", base + "/plain/x", "-lines", lines, "-header", "Authorization: Bearer {{line}}"}},
		{label: "reverse_proxy gated", args: []string{"-url", base + "/gated/x", "-lines", lines, "-header", "Authorization: Bearer {{line}}"}},
	}
	// One warm-up pass over every token: the first request of each
	// session reads it from the store once (then it is cached, as on any
	// instance that has served that user before).
	if _, err := b.load("gate warm-up", c.pid(), "-c", "16", "-n", strconv.Itoa(users), "-url", base+"/gated/x", "-lines", lines, "-header", "Authorization: Bearer {{line}}"); err != nil {
		b.problem("gate: warm-up: %v", err)
		return
	}
	// Short rounds, alternating: this machine's speed drifts within
	// seconds, and the drift must fall on both sides alike.
	rounds := max(1, b.opt.gateRounds)
	each := b.opt.gateDur / time.Duration(rounds)
	for i := range rounds {
		for j := range runs {
			r := &runs[j]
			res, err := b.load(fmt.Sprintf("%s %d/%d", r.label, i+1, rounds), c.pid(), append([]string{"-c", strconv.Itoa(b.opt.gateC), "-d", each.String()}, r.args...)...)
			if err != nil {
				b.problem("gate: %s: %v", r.label, err)
				return
			}
			r.total.add(res)
		}
	}
	plain, gated := &runs[0].total, &runs[1].total
	p, g := plain.rate(http.StatusOK), gated.rate(http.StatusOK)
	what := fmt.Sprintf("c=%d, %s in %d rounds", b.opt.gateC, b.opt.gateDur, rounds)
	val := fmt.Sprintf("%.0f req/s (%.1f µs proxy CPU each)", p, us(plain.cpuPer(http.StatusOK)))
	if o := plain.others(http.StatusOK); o != "" {
		val += "; also " + o
	}
	b.add(fmt.Sprintf("reverse_proxy ungated (%s)", what), val, "", "")
	ratio := 0.0
	if p > 0 {
		ratio = g / p
	}
	val = fmt.Sprintf("%.0f req/s = %.3f × ungated", g, ratio)
	if o := gated.others(http.StatusOK); o != "" {
		val += "; also " + o
	}
	b.add("reverse_proxy gated by register_auth ÷ ungated", val, fmt.Sprintf("≥ %.2f", gateTarget), verdict(ratio >= gateTarget && gated.others(http.StatusOK) == "" && plain.others(http.StatusOK) == ""))
	if cg, cp := gated.cpuPer(http.StatusOK), plain.cpuPer(http.StatusOK); cg > 0 && cp > 0 {
		b.add("  proxy CPU per request, gated vs ungated",
			fmt.Sprintf("%.1f µs vs %.1f µs (+%.1f µs; ratio %.3f)", us(cg), us(cp), us(cg-cp), float64(cp)/float64(cg)), "", "")
	}
}
