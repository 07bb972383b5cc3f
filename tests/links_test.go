package tests

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/redis/go-redis/v9"
)

// startRpostAt is startRpost on the redis backend with the site address
// (siteAddr, with %d for the port), the global server options and the
// register app lines chosen by the test.
func startRpostAt(t *testing.T, serverOpts, siteAddr, global string) *rpostSite {
	t.Helper()
	sink := startSMTP(t)
	nsCounter++
	s := &site{t: t, backend: backendRedis, ns: fmt.Sprintf("t%d_%d", os.Getpid(), nsCounter)}
	redisURL := redisSrv.URL(0)
	s.cfg = fmt.Sprintf(`{
	admin localhost:%d
	http_port %d
	skip_install_trust
	servers {
		%s
	}
	register {
		store redis %s %s
		%s
		smtp %s
		%s
	}
}

`+siteAddr+` {
	%s
	respond "fallback" 200
}
`, adminPort, httpPort, serverOpts, redisURL, s.ns, cheapHash, sink.URL(), global, httpPort, fmt.Sprintf(rpostHandler, ""))
	s.tc = caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{TestRequestTimeout: 60 * time.Second})
	s.load(s.cfg)
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	s.rdb = redis.NewClient(opt)
	t.Cleanup(func() { s.rdb.Close() })
	s.base = fmt.Sprintf("http://localhost:%d", httpPort)
	s.client = &http.Client{Timeout: 60 * time.Second}
	return &rpostSite{site: s, sink: sink}
}

// registerAs posts the sample registration for email with the given Host
// and extra headers.
func (s *rpostSite) registerAs(host, email string, h map[string]string) {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.base+"/api/v1/Account/Register",
		strings.NewReader(rpostBody(map[string]string{"Email": fmt.Sprintf("%q", email)})))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", rpostJSON)
	for k, v := range h {
		req.Header.Set(k, v)
	}
	if host != "" {
		req.Host = host
	}
	res, err := s.client.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	out := &response{Status: res.StatusCode, Header: res.Header, Body: b}
	s.conform(http.MethodPost, "/api/v1/Account/Register", req.Header, []byte(rpostBody(map[string]string{"Email": fmt.Sprintf("%q", email)})), out)
	expectRegistered(s.t, out, email)
}

// loadError posts cfg to the admin API and returns its error text; the
// running config stays as it was.
func loadError(t *testing.T, cfg string) string {
	t.Helper()
	res, err := http.Post(fmt.Sprintf("http://localhost:%d/load", adminPort), "text/caddyfile", strings.NewReader(cfg))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode == http.StatusOK {
		t.Fatalf("config loaded, want an error:\n%s", cfg)
	}
	return string(b)
}

// A catch-all site has no host matcher, so any Host reaches the handler: with
// public_url the link ignores the request's Host.
func TestLinkCatchAllUsesPublicURL(t *testing.T) {
	s := startRpostAt(t, "", "http://:%d", "public_url https://register.example.com/")
	s.registerAs("evil.example", "spoofed@company.com", nil)
	link := s.mailLink("spoofed@company.com", rpostActivateRE)
	if !strings.HasPrefix(link, "https://register.example.com/api/v1/Account/Activate?code=") {
		t.Fatalf("link %q is not built from public_url", link)
	}
}

// Without public_url a catch-all site cannot start a link-mailing contract:
// the error names the fix.
func TestLinkCatchAllWithoutPublicURLRefused(t *testing.T) {
	s := startRpostAt(t, "", "http://:%d", "public_url https://register.example.com")
	for _, addr := range []string{"http://:%d", ":%d"} {
		cfg := strings.Replace(s.cfg, "public_url https://register.example.com", "", 1)
		cfg = strings.Replace(cfg, fmt.Sprintf("http://:%d {", httpPort), fmt.Sprintf(addr+" {", httpPort), 1)
		msg := loadError(t, cfg)
		if !strings.Contains(msg, "public_url") || !strings.Contains(msg, "rpost") {
			t.Fatalf("%s: load error does not name public_url: %s", addr, msg)
		}
	}
	// A route without a host matcher inside a host-matched site is fine;
	// a handler behind a path-only route in a catch-all site is not.
	cfg := strings.Replace(s.cfg, "public_url https://register.example.com", "", 1)
	cfg = strings.Replace(cfg, fmt.Sprintf("http://:%d {", httpPort), fmt.Sprintf("http://:%d {\n\thandle /api/* {", httpPort), 1)
	cfg = strings.Replace(cfg, "respond \"fallback\" 200", "}\n\trespond \"fallback\" 200", 1)
	if msg := loadError(t, cfg); !strings.Contains(msg, "public_url") {
		t.Fatalf("nested route: load error does not name public_url: %s", msg)
	}
	// The site still runs on the config it had.
	s.registerAs("", "still@company.com", nil)
	if link := s.mailLink("still@company.com", rpostActivateRE); !strings.HasPrefix(link, "https://register.example.com/") {
		t.Fatalf("link %q", link)
	}
	// A bad public_url is refused with a reason.
	cfg = strings.Replace(s.cfg, "public_url https://register.example.com", "public_url register.example.com", 1)
	if msg := loadError(t, cfg); !strings.Contains(msg, "public_url") {
		t.Fatalf("bad public_url: %s", msg)
	}
}

// X-Forwarded-Proto is the client's word unless Caddy trusts the peer as a
// proxy (trusted_proxies).
func TestLinkForwardedProto(t *testing.T) {
	t.Run("untrusted", func(t *testing.T) {
		s := startRpostAt(t, "", "http://localhost:%d", "")
		s.registerAs("", "untrusted@company.com", map[string]string{"X-Forwarded-Proto": "https"})
		link := s.mailLink("untrusted@company.com", rpostActivateRE)
		if !strings.HasPrefix(link, s.base+"/api/v1/Account/Activate?code=") {
			t.Fatalf("link %q follows an untrusted X-Forwarded-Proto", link)
		}
	})
	t.Run("trusted", func(t *testing.T) {
		s := startRpostAt(t, "trusted_proxies static 127.0.0.1/8", "http://localhost:%d", "")
		s.registerAs("", "trusted@company.com", map[string]string{"X-Forwarded-Proto": "https"})
		link := s.mailLink("trusted@company.com", rpostActivateRE)
		want := strings.Replace(s.base, "http://", "https://", 1) + "/api/v1/Account/Activate?code="
		if !strings.HasPrefix(link, want) {
			t.Fatalf("link %q, want prefix %q", link, want)
		}
		// Without the header the connection's scheme is used.
		s.registerAs("", "plain@company.com", nil)
		if link := s.mailLink("plain@company.com", rpostActivateRE); !strings.HasPrefix(link, s.base+"/") {
			t.Fatalf("link %q", link)
		}
	})
}
