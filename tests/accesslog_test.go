package tests

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// demoLogBlock is the demo Caddyfile's access log block, its output sent
// to file instead of stderr (its default).
func demoLogBlock(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile("../Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if l != "\tlog {" {
			continue
		}
		for j := i + 1; j < len(lines); j++ {
			if lines[j] == "\t}" {
				block := strings.Join(lines[i:j+1], "\n")
				const output = "output {$REGISTER_ACCESS_LOG:stderr}"
				if !strings.Contains(block, output) {
					t.Fatalf("the demo's log block has no %q:\n%s", output, block)
				}
				return strings.Replace(block, output, "output file "+file, 1)
			}
		}
	}
	t.Fatal("no log block in the demo Caddyfile's site")
	return ""
}

// The demo's access log shows link tokens in query strings redacted:
// soajs' and saymon's token, rpost's code.
func TestAccessLogRedactsLinkTokens(t *testing.T) {
	file := filepath.Join(t.TempDir(), "access.log")
	s := startSite(t, backendRedis, "", demoLogBlock(t, file)+"\n\tregister soajs /urac\n\tregister rpost /api/v1")
	paths := []string{
		"/urac/join/validate?token=SECRETJOIN1&lang=en",
		"/urac/resetPassword?token=SECRETRESET2",
		"/node/api/users/confirm?token=SECRETCONFIRM3",
		"/api/v1/Account/Activate?code=SECRETCODE4",
	}
	for _, p := range paths {
		s.do(http.MethodGet, p, nil, "")
	}
	// A browser that sends the link's page as its Referer (older ones
	// ignore the page's Referrer-Policy).
	s.do(http.MethodGet, "/urac/join/validate", map[string]string{"Referer": s.base + "/urac/join/validate?token=SECRETREFERER5"}, "")
	s.do(http.MethodGet, "/api/v1/Account/Activate", nil, "")
	// Wait for the last request's line.
	var log string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		b, _ := os.ReadFile(file)
		log = string(b)
		if strings.Count(log, "/api/v1/Account/Activate") >= 2 {
			break
		}
	}
	for _, p := range paths {
		path, _, _ := strings.Cut(p, "?")
		if !strings.Contains(log, path) {
			t.Errorf("no access log line for %s:\n%s", path, log)
		}
	}
	if strings.Contains(log, "SECRET") {
		t.Errorf("a token reached the access log:\n%s", log)
	}
	for _, want := range []string{"token=REDACTED", "code=REDACTED", "lang=en"} {
		if !strings.Contains(log, want) {
			t.Errorf("access log lacks %q:\n%s", want, log)
		}
	}
}
