// Command regload drives an HTTP endpoint on this machine with unique
// requests (typically registrations) and reports throughput, latency
// percentiles, the status mix, transport errors and, with -pid, the
// server's peak resident memory.
//
// It only ever connects to loopback addresses (127.0.0.0/8, ::1,
// localhost): the target host is resolved and every address checked, and
// every connection is checked again when it is dialled. Runs are bounded:
// -n and/or -d is required.
//
//	regload -preset noraina -url http://127.0.0.1:8080 -c 8 -d 20s
//	regload -url http://127.0.0.1:8080/api/register -method POST \
//	    -body '{"name":"U{{n}}","mail":"u{{uniq}}@example.com","password":"correct horse battery staple"}' \
//	    -c 8 -n 1000 -pid "$(pgrep -n caddy)" -json
//
// Placeholders in -body and -header values: {{n}} (sequence number in the
// run), {{run}} (random run id), {{uniq}} ({{run}}{{n}}, unique across runs).
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/caddyregister/caddyregister/internal/loadreport"
)

// Bounds of a run: regload refuses anything larger (and anything unbounded).
const (
	maxRequests    = 10_000_000
	maxDuration    = time.Hour
	maxConcurrency = 10_000
)

// presets are ready-made requests for contracts: path, method and body.
var presets = map[string]struct{ path, method, body string }{
	"noraina": {"/api/register", http.MethodPost,
		`{"name":"Load {{n}}","mail":"load{{uniq}}@example.com","password":"correct horse battery staple"}`},
}

type headerFlags []string

func (h *headerFlags) String() string     { return strings.Join(*h, ", ") }
func (h *headerFlags) Set(v string) error { *h = append(*h, v); return nil }

type config struct {
	url         *url.URL
	method      string
	body        *template
	headers     []headerTmpl
	host        string
	concurrency int
	rate        float64
	n           int64
	d           time.Duration
	timeout     time.Duration
	pid         int
	jsonOut     bool
	insecure    bool
}

type headerTmpl struct {
	name  string
	value *template
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "regload:", err)
		os.Exit(2)
	}
	res, err := run(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "regload:", err)
		os.Exit(1)
	}
	if cfg.jsonOut {
		b, _ := json.Marshal(res)
		fmt.Println(string(b))
	} else {
		printResult(os.Stdout, res)
	}
}

func parseFlags(args []string) (*config, error) {
	fs := flag.NewFlagSet("regload", flag.ContinueOnError)
	var (
		rawURL  = fs.String("url", "", "target URL (loopback only); with -preset, a base URL")
		method  = fs.String("method", "", "HTTP method (default POST with -body, else GET)")
		body    = fs.String("body", "", "request body template ({{n}}, {{uniq}}, {{run}}); a body without Content-Type header is sent as application/json")
		preset  = fs.String("preset", "", "ready-made request: noraina (POST /api/register with a unique user)")
		hdrs    headerFlags
		c       = fs.Int("c", 1, "concurrent clients")
		rate    = fs.Float64("rate", 0, "fixed request rate per second over all clients (0: as fast as the clients go)")
		n       = fs.Int64("n", 0, "number of requests (bounded run: give -n and/or -d)")
		d       = fs.Duration("d", 0, "duration of the run (bounded run: give -n and/or -d)")
		timeout = fs.Duration("timeout", 10*time.Second, "per-request timeout")
		pid     = fs.Int("pid", 0, "server process to sample peak RSS of (/proc/<pid>/status every 100ms)")
		jsonOut = fs.Bool("json", false, "print the result as one JSON line")
		k       = fs.Bool("k", false, "skip TLS certificate verification (https to a local server with an internal CA)")
		linesF  = fs.String("lines", "", "file of values for {{line}} (one a line; request n takes line n mod their count)")
	)
	fs.Var(&hdrs, "header", `request header "Name: value" (repeatable; the value may use placeholders)`)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cfg := &config{concurrency: *c, rate: *rate, n: *n, d: *d, timeout: *timeout, pid: *pid, jsonOut: *jsonOut, insecure: *k}
	if *rawURL == "" {
		return nil, errors.New("-url is required")
	}
	u, err := url.Parse(*rawURL)
	if err != nil {
		return nil, fmt.Errorf("-url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("-url %q: scheme must be http or https", *rawURL)
	}
	bodyText, meth := *body, *method
	if *preset != "" {
		p, ok := presets[*preset]
		if !ok {
			return nil, fmt.Errorf("-preset %q: unknown (known: noraina)", *preset)
		}
		if u.Path == "" || u.Path == "/" {
			u.Path = p.path
		}
		if bodyText == "" {
			bodyText = p.body
		}
		if meth == "" {
			meth = p.method
		}
	}
	if meth == "" {
		meth = http.MethodGet
		if bodyText != "" {
			meth = http.MethodPost
		}
	}
	cfg.url, cfg.method = u, strings.ToUpper(meth)
	run := newRunID()
	var lines []string
	if *linesF != "" {
		data, err := os.ReadFile(*linesF)
		if err != nil {
			return nil, fmt.Errorf("-lines: %w", err)
		}
		for l := range strings.SplitSeq(string(data), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				lines = append(lines, l)
			}
		}
		if len(lines) == 0 {
			return nil, fmt.Errorf("-lines %s: no lines", *linesF)
		}
	}
	if bodyText != "" {
		if cfg.body, err = parseTemplateLines(bodyText, run, lines); err != nil {
			return nil, fmt.Errorf("-body: %w", err)
		}
	}
	hasCT := false
	for _, h := range hdrs {
		name, value, ok := strings.Cut(h, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return nil, fmt.Errorf("-header %q: want \"Name: value\"", h)
		}
		value = strings.TrimSpace(value)
		if strings.EqualFold(name, "Host") {
			cfg.host = value
			continue
		}
		t, err := parseTemplateLines(value, run, lines)
		if err != nil {
			return nil, fmt.Errorf("-header: %w", err)
		}
		hasCT = hasCT || strings.EqualFold(name, "Content-Type")
		cfg.headers = append(cfg.headers, headerTmpl{http.CanonicalHeaderKey(name), t})
	}
	if cfg.body != nil && !hasCT {
		t, _ := parseTemplate("application/json", run)
		cfg.headers = append(cfg.headers, headerTmpl{"Content-Type", t})
	}
	switch {
	case cfg.n <= 0 && cfg.d <= 0:
		return nil, errors.New("refusing an unbounded run: give -n (requests) and/or -d (duration)")
	case cfg.n < 0 || cfg.d < 0:
		return nil, errors.New("-n and -d must not be negative")
	case cfg.n > maxRequests:
		return nil, fmt.Errorf("-n %d: at most %d", cfg.n, maxRequests)
	case cfg.d > maxDuration:
		return nil, fmt.Errorf("-d %s: at most %s", cfg.d, maxDuration)
	case cfg.concurrency < 1 || cfg.concurrency > maxConcurrency:
		return nil, fmt.Errorf("-c %d: want 1..%d", cfg.concurrency, maxConcurrency)
	case cfg.rate < 0:
		return nil, errors.New("-rate must not be negative")
	case cfg.timeout <= 0:
		return nil, errors.New("-timeout must be positive")
	}
	return cfg, nil
}

// Result is one run's report (the -json line).
type Result = loadreport.Result

// worker results, merged at the end (no shared locks on the hot path).
type tally struct {
	lat         map[int][]time.Duration // by status code
	status      map[int]int64
	retryAfter  map[int]int64
	errKinds    map[string]int64
	errSamples  []string
	bodySamples map[int]string
	responses   int64
	errors      int64
	okResponses int64
}

const maxSample = 300

func run(cfg *config) (*Result, error) {
	ctx := context.Background()
	if _, err := checkLoopback(ctx, cfg.url.Hostname(), systemLookup); err != nil {
		return nil, fmt.Errorf("refusing target %s: %w", cfg.url.Redacted(), err)
	}
	if err := raiseNoFile(uint64(cfg.concurrency) + 256); err != nil {
		fmt.Fprintln(os.Stderr, "regload: warning:", err)
	}

	dialer := &net.Dialer{Timeout: cfg.timeout, KeepAlive: 30 * time.Second, Control: loopbackControl}
	tr := &http.Transport{
		Proxy:               nil, // never through a proxy: it would not be loopback
		DialContext:         dialer.DialContext,
		MaxIdleConns:        2 * cfg.concurrency,
		MaxIdleConnsPerHost: 2 * cfg.concurrency, // >= concurrency: no connection churn
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		TLSHandshakeTimeout: cfg.timeout,
		TLSClientConfig:     &tls.Config{InsecureSkipVerify: cfg.insecure}, //nolint:gosec // opt-in (-k), loopback only
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport: tr,
		Timeout:   cfg.timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // count the redirect, do not follow it
		},
	}

	var sampler *rssSampler
	if cfg.pid > 0 {
		s, err := startRSSSampler(cfg.pid, 100*time.Millisecond)
		if err != nil {
			return nil, fmt.Errorf("-pid %d: %w", cfg.pid, err)
		}
		sampler = s
	}

	// issue is cancelled when the run's time is up (or on ^C): no new
	// requests start; those in flight finish (bounded by -timeout).
	issue, cancel := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if cfg.d > 0 {
		var c2 context.CancelFunc
		issue, c2 = context.WithTimeout(issue, cfg.d)
		defer c2()
	}

	var tokens chan struct{}
	if cfg.rate > 0 {
		tokens = make(chan struct{}, cfg.concurrency)
		go pace(issue, tokens, cfg.rate)
	}

	var seq atomic.Int64
	tallies := make([]*tally, cfg.concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range tallies {
		t := &tally{lat: map[int][]time.Duration{}, status: map[int]int64{}, retryAfter: map[int]int64{}, errKinds: map[string]int64{}, bodySamples: map[int]string{}}
		tallies[i] = t
		wg.Go(func() { worker(issue, cfg, client, &seq, tokens, t) })
	}
	wg.Wait()
	end := time.Now()

	res := merge(cfg, tallies, start, end)
	if sampler != nil {
		peak, samples, err := sampler.Stop()
		res.PID, res.RSSSamples = cfg.pid, samples
		res.PeakRSSKiB, res.VmHWMKiB, res.PeakAnonKiB, res.PeakFileKiB = peak.RSS, peak.HWM, peak.Anon, peak.File
		if err != nil {
			res.RSSError = err.Error()
		}
	}
	return res, nil
}

// pace puts one token per 1/rate seconds into tokens, on a fixed schedule
// (a busy moment is caught up on, not skipped, up to the channel's size).
func pace(ctx context.Context, tokens chan<- struct{}, rate float64) {
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	for i := int64(0); ; i++ {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		select {
		case tokens <- struct{}{}:
		case <-ctx.Done():
			return
		}
	}
}

func worker(issue context.Context, cfg *config, client *http.Client, seq *atomic.Int64, tokens <-chan struct{}, t *tally) {
	var body []byte
	for {
		if tokens != nil {
			select {
			case <-tokens:
			case <-issue.Done():
				return
			}
		} else if issue.Err() != nil {
			return
		}
		n := seq.Add(1)
		if cfg.n > 0 && n > cfg.n {
			return
		}
		var rd io.Reader
		if cfg.body != nil {
			body = cfg.body.render(body[:0], n)
			rd = strings.NewReader(string(body))
		}
		// Not issue: a request in flight when the time is up completes.
		req, err := http.NewRequestWithContext(context.Background(), cfg.method, cfg.url.String(), rd)
		if err != nil {
			t.fail(err)
			continue
		}
		for _, h := range cfg.headers {
			req.Header.Set(h.name, h.value.String(n))
		}
		if cfg.host != "" {
			req.Host = cfg.host
		}
		t0 := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			t.fail(err)
			continue
		}
		var sample []byte
		if _, seen := t.bodySamples[resp.StatusCode]; !seen {
			sample, _ = io.ReadAll(io.LimitReader(resp.Body, maxSample))
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			t.fail(err)
			continue
		}
		t.lat[resp.StatusCode] = append(t.lat[resp.StatusCode], time.Since(t0))
		t.responses++
		t.status[resp.StatusCode]++
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			t.okResponses++
		}
		if resp.Header.Get("Retry-After") != "" {
			t.retryAfter[resp.StatusCode]++
		}
		if sample != nil {
			t.bodySamples[resp.StatusCode] = string(sample)
		}
	}
}

func (t *tally) fail(err error) {
	t.errors++
	t.errKinds[errorKind(err)]++
	if len(t.errSamples) < 3 {
		t.errSamples = append(t.errSamples, err.Error())
	}
}

// errorKind classifies a transport error for the report.
func errorKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, errNotLoopback):
		return "not_loopback"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "conn_refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "conn_reset"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "too_many_open_files"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no_local_port"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	default:
		return "other"
	}
}

func merge(cfg *config, tallies []*tally, start, end time.Time) *Result {
	r := &Result{
		Method: cfg.method, URL: cfg.url.Redacted(), Concurrency: cfg.concurrency, Rate: cfg.rate,
		Status: map[string]int64{}, StatusLatency: map[string]Latency{}, RetryAfter: map[string]int64{}, ErrorKinds: map[string]int64{}, BodySamples: map[string]string{},
	}
	var lat []time.Duration
	byStatus := map[int][]time.Duration{}
	var ok int64
	for _, t := range tallies {
		for code, ds := range t.lat {
			lat = append(lat, ds...)
			byStatus[code] = append(byStatus[code], ds...)
		}
		r.Responses += t.responses
		r.Errors += t.errors
		ok += t.okResponses
		for k, v := range t.status {
			r.Status[strconv.Itoa(k)] += v
		}
		for k, v := range t.retryAfter {
			r.RetryAfter[strconv.Itoa(k)] += v
		}
		for k, v := range t.errKinds {
			r.ErrorKinds[k] += v
		}
		for k, v := range t.bodySamples {
			if _, ok := r.BodySamples[strconv.Itoa(k)]; !ok && (k < 200 || k >= 300) {
				r.BodySamples[strconv.Itoa(k)] = v
			}
		}
		for _, s := range t.errSamples {
			if len(r.ErrorSamples) < 5 {
				r.ErrorSamples = append(r.ErrorSamples, s)
			}
		}
	}
	r.Requests = r.Responses + r.Errors
	elapsed := end.Sub(start)
	r.ElapsedS = elapsed.Seconds()
	if r.ElapsedS > 0 {
		r.RPS = float64(r.Responses) / r.ElapsedS
		r.OKRPS = float64(ok) / r.ElapsedS
	}
	r.Latency = summarize(lat)
	for code, ds := range byStatus {
		r.StatusLatency[strconv.Itoa(code)] = summarize(ds)
	}
	return r
}

// printResult writes r as the human-readable report.
func printResult(w io.Writer, r *Result) {
	rate := ""
	if r.Rate > 0 {
		rate = fmt.Sprintf("  rate=%g/s", r.Rate)
	}
	fmt.Fprintf(w, "target     %s %s  c=%d%s\n", r.Method, r.URL, r.Concurrency, rate)
	fmt.Fprintf(w, "requests   %d in %.2fs: %.1f req/s (2xx: %.1f/s)\n", r.Requests, r.ElapsedS, r.RPS, r.OKRPS)
	l := r.Latency
	fmt.Fprintf(w, "latency    p50 %.1fms  p90 %.1fms  p99 %.1fms  max %.1fms  (min %.1fms, mean %.1fms)\n", l.P50, l.P90, l.P99, l.Max, l.Min, l.Mean)
	codes := make([]string, 0, len(r.Status))
	for k := range r.Status {
		codes = append(codes, k)
	}
	sort.Strings(codes)
	var mix []string
	for _, k := range codes {
		s := fmt.Sprintf("%s: %d", k, r.Status[k])
		if ra := r.RetryAfter[k]; ra > 0 {
			s += fmt.Sprintf(" (%d with Retry-After)", ra)
		}
		if l, ok := r.StatusLatency[k]; ok && len(r.Status) > 1 {
			s += fmt.Sprintf(" [p50 %.1fms, p99 %.1fms, max %.1fms]", l.P50, l.P99, l.Max)
		}
		mix = append(mix, s)
	}
	fmt.Fprintf(w, "status     %s\n", strings.Join(mix, ", "))
	fmt.Fprintf(w, "errors     %d", r.Errors)
	if r.Errors > 0 {
		var kinds []string
		for k, v := range r.ErrorKinds {
			kinds = append(kinds, fmt.Sprintf("%s: %d", k, v))
		}
		sort.Strings(kinds)
		fmt.Fprintf(w, " (%s)", strings.Join(kinds, ", "))
	}
	fmt.Fprintln(w)
	for _, s := range r.ErrorSamples {
		fmt.Fprintf(w, "  error    %s\n", s)
	}
	for _, k := range codes {
		if s, ok := r.BodySamples[k]; ok {
			fmt.Fprintf(w, "  %s body %q\n", k, s)
		}
	}
	if r.PID > 0 {
		fmt.Fprintf(w, "server     pid %d peak RSS %.1f MiB (VmHWM %.1f MiB; sampled peaks: anon %.1f MiB, file %.1f MiB; %d samples)",
			r.PID, float64(r.PeakRSSKiB)/1024, float64(r.VmHWMKiB)/1024, float64(r.PeakAnonKiB)/1024, float64(r.PeakFileKiB)/1024, r.RSSSamples)
		if r.RSSError != "" {
			fmt.Fprintf(w, " [%s]", r.RSSError)
		}
		fmt.Fprintln(w)
	}
}
