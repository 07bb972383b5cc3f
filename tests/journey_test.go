package tests

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/caddyregister/caddyregister/caddyregister/store/redisstore"
)

// journeyScript is the README's "User journey" shell block: the second
// sh block of that section (the first starts the demo).
func journeyScript(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), "\n## User journey\n")
	if !ok {
		t.Fatal("README has no User journey section")
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	blocks := strings.Split(sec, "```sh\n")
	if len(blocks) != 3 {
		t.Fatalf("User journey has %d sh blocks, want 2", len(blocks)-1)
	}
	script, _, ok := strings.Cut(blocks[2], "```")
	if !ok {
		t.Fatal("unterminated sh block")
	}
	return script
}

// TestUserJourney runs the README's journey, as written, against the demo
// Caddyfile (started as the README says: an admin, mail into files) on
// each store. Only the address, the mail directory and the scratch files
// are moved to the test's own.
func TestUserJourney(t *testing.T) {
	if _, err := exec.LookPath("jq"); err != nil {
		t.Fatal("jq is needed (make deps installs it)")
	}
	script := journeyScript(t)
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			dir := t.TempDir()
			port := freePort()
			addr := fmt.Sprintf("localhost:%d", port)
			mailDir := filepath.Join(dir, "mail")
			env := []string{
				"REGISTER_ADDR=" + addr,
				"REGISTER_ADMIN_HASH=" + mustBcrypt(t, "admin-secret"),
				"REGISTER_SMTP=file://" + mailDir,
				"REGISTER_ACCESS_LOG=discard",
			}
			if backend == backendRedis {
				env = append(env, "REGISTER_REDIS="+redisSrv.URL(0))
				// The demo's default namespace: start from a clean one.
				flushDemoNamespace(t)
			}
			in := runCaddy(t, "../Caddyfile", "http://"+addr, env)

			s := strings.NewReplacer("localhost:8080", addr, "/tmp/caddyregister-mail", mailDir, "/tmp/tokens", filepath.Join(dir, "tokens")).Replace(script)
			cmd := exec.Command("bash", "-c", "set -euo pipefail\n"+s)
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			if err := cmd.Run(); err != nil {
				t.Fatalf("journey: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
			}
			got := out.String()
			t.Logf("journey output:\n%s", got)
			for _, want := range []string{
				`"message":"User successfully created."`, // 1. noraina
				`"status":"active"`,                      // 2. activated
				`"sessions":[`,                           // 5. the account's list
				"X-User-Email: ada@example.com",          // 5. the gate's identity headers
				"401\n",                                  // 6. refused after logout
			} {
				if !strings.Contains(got, want) {
					t.Errorf("journey output lacks %q", want)
				}
			}
			// 8. and 9.: the reset mail and the notice were written; the
			// account is gone, its address free.
			mails, _ := filepath.Glob(filepath.Join(mailDir, "*.eml"))
			if len(mails) != 2 {
				t.Errorf("mails written: %v, want the reset link and the notice", mails)
			}
			req, _ := http.NewRequest(http.MethodGet, in.base+"/account/users?email=ada@example.com", nil)
			req.SetBasicAuth("admin", "admin-secret")
			res, err := in.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var body bytes.Buffer
			_, _ = body.ReadFrom(res.Body)
			res.Body.Close()
			if res.StatusCode != 200 || !strings.Contains(body.String(), `"users":[]`) {
				t.Errorf("after the erasure: %d %s", res.StatusCode, body.String())
			}
		})
	}
}

// flushDemoNamespace deletes the demo's default Redis namespace (only the
// journey test uses it), its users' slots included.
func flushDemoNamespace(t *testing.T) {
	t.Helper()
	opt, err := redis.ParseURL(redisSrv.URL(0))
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	defer c.Close()
	ctx := context.Background()
	iter := c.Scan(ctx, 0, "{"+redisstore.DefaultNamespace+"*", 1000).Iterator()
	for iter.Next(ctx) {
		if err := c.Del(ctx, iter.Val()).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
}
