package main

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func fakeLookup(m map[string][]string) lookupFunc {
	return func(_ context.Context, _, host string) ([]netip.Addr, error) {
		ss, ok := m[host]
		if !ok {
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
		var out []netip.Addr
		for _, s := range ss {
			out = append(out, netip.MustParseAddr(s))
		}
		return out, nil
	}
}

func TestCheckLoopback(t *testing.T) {
	lookup := fakeLookup(map[string][]string{
		"localhost":      {"127.0.0.1", "::1"},
		"loop.test":      {"127.0.0.53"},
		"mixed.test":     {"127.0.0.1", "192.0.2.7"},
		"mixed6.test":    {"::1", "2001:db8::1"},
		"public.test":    {"93.184.216.34"},
		"empty.test":     {},
		"evillocal.test": {"10.0.0.1"},
	})
	ok := []string{"127.0.0.1", "127.255.255.254", "127.1.2.3", "::1", "[::1]", "::ffff:127.0.0.1", "localhost", "loop.test"}
	for _, h := range ok {
		if _, err := checkLoopback(context.Background(), h, lookup); err != nil {
			t.Errorf("checkLoopback(%q) = %v, want ok", h, err)
		}
	}
	refused := []string{"", "0.0.0.0", "::", "10.0.0.1", "192.168.1.1", "128.0.0.1", "126.255.255.255", "::2",
		"::ffff:10.0.0.1", "fe80::1%lo", "mixed.test", "mixed6.test", "public.test", "empty.test", "evillocal.test", "nosuch.test"}
	for _, h := range refused {
		if _, err := checkLoopback(context.Background(), h, lookup); err == nil {
			t.Errorf("checkLoopback(%q) = ok, want refused", h)
		}
	}
	if _, err := checkLoopback(context.Background(), "mixed.test", lookup); !errors.Is(err, errNotLoopback) {
		t.Errorf("mixed.test: %v, want errNotLoopback", err)
	}
}

func TestCheckLoopbackSystemLocalhost(t *testing.T) {
	// The real resolver: localhost must resolve to loopback only here.
	if _, err := checkLoopback(context.Background(), "localhost", systemLookup); err != nil {
		t.Fatalf("localhost: %v", err)
	}
}

func TestLoopbackControl(t *testing.T) {
	for _, a := range []string{"127.0.0.1:80", "[::1]:8080", "127.9.9.9:1"} {
		if err := loopbackControl("tcp", a, nil); err != nil {
			t.Errorf("%s: %v", a, err)
		}
	}
	for _, a := range []string{"10.0.0.1:80", "[2001:db8::1]:443", "0.0.0.0:80", "bogus"} {
		if err := loopbackControl("tcp", a, nil); err == nil {
			t.Errorf("%s: allowed", a)
		}
	}
}

func TestRefusesNonLoopbackTarget(t *testing.T) {
	cfg, err := parseFlags([]string{"-url", "http://192.0.2.1/x", "-n", "1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := run(cfg); !errors.Is(err, errNotLoopback) {
		t.Fatalf("run = %v, want errNotLoopback", err)
	}
}

func TestTemplate(t *testing.T) {
	tm, err := parseTemplate(`{"name":"U{{n}}","mail":"u{{uniq}}@example.com","r":"{{ run }}"}`, "abc123")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tm.String(7), `{"name":"U7","mail":"uabc1237@example.com","r":"abc123"}`; got != want {
		t.Errorf("render(7) = %s, want %s", got, want)
	}
	if !tm.unique() {
		t.Error("unique() = false")
	}
	// Every rendering differs, and stays valid JSON.
	seen := map[string]bool{}
	for n := int64(1); n <= 1000; n++ {
		s := tm.String(n)
		if seen[s] {
			t.Fatalf("duplicate body %s", s)
		}
		seen[s] = true
		var v map[string]string
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	for _, s := range []string{"", "plain", "{not a placeholder}", "a{{n}}{{n}}b"} {
		if _, err := parseTemplate(s, "r"); err != nil {
			t.Errorf("parseTemplate(%q): %v", s, err)
		}
	}
	if tm, _ := parseTemplate("plain {{run}}", "r"); tm.unique() {
		t.Error("a template without {{n}}/{{uniq}} reported unique")
	}
	if tm, _ := parseTemplate("a{{n}}{{n}}b", "r"); tm.String(12) != "a1212b" {
		t.Errorf("got %q", tm.String(12))
	}
	for _, s := range []string{"{{nn}}", "{{n", "x{{}}", "{{UNIQ}}"} {
		if _, err := parseTemplate(s, "r"); err == nil {
			t.Errorf("parseTemplate(%q) accepted", s)
		}
	}
	// {{line}}: request n takes line n, cycling; without lines, an error.
	tl, err := parseTemplateLines("Bearer {{line}}", "r", []string{"a", "b", "c"})
	if err != nil {
		t.Fatal(err)
	}
	for n, want := range map[int64]string{1: "Bearer a", 2: "Bearer b", 3: "Bearer c", 4: "Bearer a", 302: "Bearer b"} {
		if got := tl.String(n); got != want {
			t.Errorf("line template render(%d) = %q, want %q", n, got, want)
		}
	}
	if _, err := parseTemplate("{{line}}", "r"); err == nil {
		t.Error("{{line}} without lines accepted")
	}
	// Run ids differ and are lowercase hex.
	a, b := newRunID(), newRunID()
	if a == b || len(a) != 10 || strings.Trim(a, "0123456789abcdef") != "" {
		t.Errorf("run ids %q %q", a, b)
	}
}

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i))
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50}, {90, 90}, {99, 99}, {100, 100}, {1, 1}, {0, 1}, {99.5, 100}, {0.5, 1}} {
		if got := percentile(ds, c.p); got != c.want {
			t.Errorf("p%g of 1..100 = %d, want %d", c.p, got, c.want)
		}
	}
	ten := ds[:10] // 1..10: nearest rank
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 5}, {90, 9}, {99, 10}, {10, 1}, {11, 2}} {
		if got := percentile(ten, c.p); got != c.want {
			t.Errorf("p%g of 1..10 = %d, want %d", c.p, got, c.want)
		}
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("empty: %d", got)
	}
	if got := percentile([]time.Duration{42}, 99); got != 42 {
		t.Errorf("single: %d", got)
	}
	l := summarize([]time.Duration{3 * time.Millisecond, time.Millisecond, 2 * time.Millisecond})
	if l.Min != 1 || l.Max != 3 || l.P50 != 2 || l.Mean != 2 || l.P99 != 3 {
		t.Errorf("summarize = %+v", l)
	}
}

func TestParseStatus(t *testing.T) {
	m, err := parseStatus([]byte("Name:\tcaddy\nVmPeak:\t 999 kB\nVmHWM:\t   51200 kB\nVmRSS:\t   40960 kB\nRssAnon:\t 30000 kB\nRssFile:\t 10960 kB\nThreads: 9\n"))
	if err != nil || m != (procMem{RSS: 40960, HWM: 51200, Anon: 30000, File: 10960}) {
		t.Fatalf("parseStatus = %+v %v", m, err)
	}
	if _, err := parseStatus([]byte("Name:\tkthreadd\n")); err == nil {
		t.Error("no Vm lines accepted")
	}
}

func TestFlagsBounded(t *testing.T) {
	for _, args := range [][]string{
		{"-url", "http://127.0.0.1:1/"},             // unbounded
		{"-url", "http://127.0.0.1:1/", "-n", "-1"}, // negative
		{"-url", "http://127.0.0.1:1/", "-d", "2h"}, // too long
		{"-url", "http://127.0.0.1:1/", "-n", "1", "-c", "0"},
		{"-url", "ftp://127.0.0.1/", "-n", "1"},
		{"-n", "1"},
		{"-url", "http://127.0.0.1:1/", "-n", "1", "-body", "{{bad}}"},
		{"-url", "http://127.0.0.1:1/", "-n", "1", "-preset", "nope"},
	} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("parseFlags(%q) accepted", args)
		}
	}
	cfg, err := parseFlags([]string{"-url", "http://127.0.0.1:1", "-preset", "noraina", "-d", "1s"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.method != "POST" || cfg.url.Path != "/api/register" || cfg.body == nil || !cfg.body.unique() {
		t.Errorf("preset: %+v", cfg)
	}
}

// TestRun drives a local server: every body unique, the status mix,
// Retry-After and the RSS of this very process.
func TestRun(t *testing.T) {
	seen := make(chan string, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Content-Type") != "application/json" || r.Header.Get("X-Seq") == "" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		var b struct{ Mail string }
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		seen <- b.Mail
		if strings.HasSuffix(r.Header.Get("X-Seq"), "0") {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()
	cfg, err := parseFlags([]string{"-url", srv.URL, "-preset", "noraina", "-n", "100", "-c", "4", "-header", "X-Seq: {{n}}",
		"-pid", strconv.Itoa(os.Getpid())})
	if err != nil {
		t.Fatal(err)
	}
	res, err := run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	close(seen)
	uniq := map[string]bool{}
	for m := range seen {
		uniq[m] = true
	}
	if len(uniq) != 100 {
		t.Errorf("%d distinct mails, want 100", len(uniq))
	}
	if res.Requests != 100 || res.Errors != 0 || res.Status["201"] != 90 || res.Status["503"] != 10 || res.RetryAfter["503"] != 10 {
		t.Errorf("result %+v", res)
	}
	if res.StatusLatency["201"].Max <= 0 || res.StatusLatency["503"].Max <= 0 || res.StatusLatency["201"].Max > res.Latency.Max {
		t.Errorf("status latency %+v", res.StatusLatency)
	}
	if res.PeakRSSKiB <= 0 || res.PeakAnonKiB <= 0 || res.RSSSamples < 1 || res.Latency.Max <= 0 || res.RPS <= 0 {
		t.Errorf("result %+v", res)
	}
}
