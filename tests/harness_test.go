// Package tests holds the black-box tests: a real Caddy (caddytest, in this
// process), a real redis-server, and plain HTTP clients.
package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/redis/go-redis/v9"
	bolt "go.etcd.io/bbolt"

	_ "github.com/caddyregister/caddyregister"
	"github.com/caddyregister/caddyregister/internal/testredis"
)

var (
	redisSrv  *testredis.Server
	adminPort int
	httpPort  int
)

func TestMain(m *testing.M) {
	var err error
	redisSrv, err = testredis.StartServer()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	adminPort, httpPort = freePort(), freePort()
	// No TLS in these tests; caddytest's default expects certificate files.
	caddytest.Default.Certificates = nil
	caddytest.Default.AdminPort = adminPort
	caddytest.Default.LoadRequestTimeout = 30 * time.Second
	code := m.Run()
	reportExercised()
	stopTestCluster()
	redisSrv.Stop()
	os.Exit(code)
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// site is one Caddy config under test.
type site struct {
	t       *testing.T
	tc      *caddytest.Tester
	cfg     string
	backend string
	base    string
	rdb     *redis.Client // redis backend
	ns      string        // redis backend
	dbPath  string        // embedded backend
	client  *http.Client
	// loaded is the config last loaded: the handlers whose OpenAPI
	// documents requests are checked against (conform).
	loaded string
}

// Backends the key cases run on.
const (
	backendRedis    = "redis"
	backendEmbedded = "embedded"
)

var backends = []string{backendRedis, backendEmbedded}

// eachBackend runs f as a subtest per backend.
func eachBackend(t *testing.T, f func(t *testing.T, backend string)) {
	for _, b := range backends {
		t.Run(b, func(t *testing.T) { f(t, b) })
	}
}

var nsCounter int

// cheapHash keeps the race-instrumented tests fast; the real default
// parameters are exercised by the engine benchmarks.
const cheapHash = "hash argon2id 1024 1 1"

// startSite loads a Caddyfile whose global register block gets globalExtra
// and whose site block gets siteBody. Each call uses a fresh key namespace,
// so tests never see each other's records.
//
// backend is "redis" (the shared test server), "embedded" (a fresh file),
// or a redis:// URL.
func startSite(t *testing.T, backend, globalExtra, siteBody string) *site {
	t.Helper()
	nsCounter++
	s := &site{t: t, backend: backendRedis, ns: fmt.Sprintf("t%d_%d", os.Getpid(), nsCounter)}
	var storeLine, redisURL string
	switch {
	case backend == backendEmbedded:
		s.backend = backendEmbedded
		s.dbPath = filepath.Join(t.TempDir(), "register.db")
		storeLine = "store embedded " + s.dbPath
	case backend == backendRedis:
		redisURL = redisSrv.URL(0)
		storeLine = "store redis " + redisURL + " " + s.ns
	default:
		redisURL = backend
		storeLine = "store redis " + redisURL + " " + s.ns
	}
	s.cfg = fmt.Sprintf(`{
	admin localhost:%d
	http_port %d
	skip_install_trust
	register {
		%s
		%s
		%s
	}
}

http://localhost:%d {
	%s
	respond "fallback" 200
}
`, adminPort, httpPort, storeLine, cheapHash, globalExtra, httpPort, siteBody)
	s.tc = caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{TestRequestTimeout: 60 * time.Second})
	s.load(s.cfg)
	if redisURL != "" {
		opt, err := redis.ParseURL(redisURL)
		if err != nil {
			t.Fatal(err)
		}
		s.rdb = redis.NewClient(opt)
		t.Cleanup(func() { s.rdb.Close() })
	}
	s.base = fmt.Sprintf("http://localhost:%d", httpPort)
	s.client = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 100}}
	s.awaitServing()
	return s
}

func (s *site) load(cfg string) {
	s.t.Helper()
	s.tc.InitServer(cfg, "caddyfile")
	s.loaded = cfg
	if s.t.Failed() {
		s.t.FailNow()
	}
	if s.client != nil {
		s.awaitServing()
	}
}

// awaitServing waits until the server of the config just loaded answers.
// A reload shuts the previous servers down while the new ones take over
// the listener, so a connection the old one accepted or kept alive may be
// closed under a test's first request (seen as EOF on a POST, which the
// client does not retry). Pooled connections are dropped, and an
// idempotent probe, which the client does retry, rides out the handover.
func (s *site) awaitServing() {
	s.t.Helper()
	s.client.CloseIdleConnections()
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := s.client.Get(s.base + "/.caddytest-ready")
		if err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("server not answering after the config load: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// idleConfig serves nothing and holds no store, so the embedded file is
// closed while a test inspects it.
func idleConfig() string {
	return fmt.Sprintf("{\n\tadmin localhost:%d\n\thttp_port %d\n}\n\nhttp://localhost:%d {\n\trespond 404\n}\n", adminPort, httpPort, httpPort)
}

// response is a decoded reply.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r *response) JSON(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("response is not a JSON object: %v: %s", err, r.Body)
	}
	return m
}

func (s *site) do(method, path string, header map[string]string, body string) *response {
	s.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.base+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := s.client.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	out := &response{Status: res.StatusCode, Header: res.Header, Body: b}
	s.conform(method, path, req.Header, []byte(body), out)
	return out
}

func (s *site) postJSON(path, body string) *response {
	s.t.Helper()
	return s.do(http.MethodPost, path, map[string]string{"Content-Type": "application/json"}, body)
}

// keys lists the stored records (rate-limit buckets live elsewhere), to
// prove a failed request wrote nothing: the namespace's keys on Redis, or
// "bucket:key" pairs of the embedded file, which Caddy releases for the
// look (bbolt locks it) and takes back after.
func (s *site) keys() []string {
	s.t.Helper()
	if s.backend == backendEmbedded {
		return s.embeddedKeys()
	}
	var out []string
	// The namespace's keys and those kept in each user's slot.
	for _, pattern := range []string{"{" + s.ns + "}:*", "{" + s.ns + ":u:*"} {
		iter := s.rdb.Scan(context.Background(), 0, pattern, 1000).Iterator()
		for iter.Next(context.Background()) {
			out = append(out, iter.Val())
		}
		if err := iter.Err(); err != nil {
			s.t.Fatal(err)
		}
	}
	sort.Strings(out)
	return out
}

// dataKeys are keys minus shared state: the signing key, the ordered user
// index (one Redis ZSET for all users; its bbolt entries mirror the user
// records) and its backfill marker. The store suite checks the index.
func (s *site) dataKeys() []string {
	var out []string
	for _, k := range s.keys() {
		switch {
		case strings.Contains(k, ":secret:"), strings.Contains(k, ":secrets:"),
			strings.HasSuffix(k, "}:users"), strings.HasSuffix(k, "}:users:indexed"),
			strings.Contains(k, ":users_by_created:"), strings.HasSuffix(k, ":meta:user_index"):
		default:
			out = append(out, k)
		}
	}
	return out
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func compactJSON(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func (s *site) embeddedKeys() []string {
	s.t.Helper()
	s.load(idleConfig())
	defer s.load(s.cfg)
	db, err := bolt.Open(s.dbPath, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		s.t.Fatalf("open embedded store: %v", err)
	}
	defer db.Close()
	var out []string
	err = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return b.ForEach(func(k, _ []byte) error {
				out = append(out, ":"+string(name)+":"+string(k))
				return nil
			})
		})
	})
	if err != nil {
		s.t.Fatal(err)
	}
	sort.Strings(out)
	return out
}
