package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/caddyregister/caddyregister/internal/loadreport"
)

// Load runs (cmd/regload) and their results.

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
