package tests

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// readmeBlock returns the first ```lang block after heading in README.md.
func readmeBlock(t *testing.T, heading, lang string) string {
	t.Helper()
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(raw)
	i := strings.Index(s, heading)
	if i < 0 {
		t.Fatalf("README has no %q", heading)
	}
	s = s[i:]
	open := "```" + lang + "\n"
	j := strings.Index(s, open)
	if j < 0 {
		t.Fatalf("README has no %s block after %q", lang, heading)
	}
	s = s[j+len(open):]
	k := strings.Index(s, "```")
	if k < 0 {
		t.Fatalf("unterminated %s block", lang)
	}
	return s[:k]
}

// The README's webhook verification snippets, in Go, Python and Node.js,
// verify a real delivery and refuse it tampered.
func TestWebhookReadmeSnippets(t *testing.T) {
	const heading = "#### Verifying a webhook"
	rcv := newReceiver(t)
	sec, _ := newWhsec(t)
	s := startSite(t, backendRedis, webhookGlobal(rcv.srv.URL, sec), noraina)
	if res := s.postJSON("/api/register", `{"name":"Snippet","mail":"snippet@example.com","password":"my_password"}`); res.Status != http.StatusCreated {
		t.Fatalf("register: %d %s", res.Status, res.Body)
	}
	d := rcv.await("a delivery", func(ds []delivery) bool { return len(ds) > 0 })[0]

	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	goDir := filepath.Join(dir, "gosnippet")
	if err := os.Mkdir(goDir, 0o700); err != nil {
		t.Fatal(err)
	}
	write("gosnippet/verify.go", readmeBlock(t, heading, "go"))
	write("gosnippet/main.go", `package main

import (
	"fmt"
	"io"
	"os"
)

func main() {
	body, _ := io.ReadAll(os.Stdin)
	fmt.Print(verify(os.Getenv("S"), os.Getenv("ID"), os.Getenv("TS"), os.Getenv("SIG"), body))
}
`)
	write("gosnippet/go.mod", "module snippet\n\ngo 1.22\n")
	py := write("verify.py", readmeBlock(t, heading, "python")+`
import os, sys
print(verify(os.environ["S"], os.environ["ID"], os.environ["TS"], os.environ["SIG"], sys.stdin.buffer.read()), end="")
`)
	js := write("verify.js", readmeBlock(t, heading, "js")+`
process.stdout.write(String(verify(process.env.S, process.env.ID, process.env.TS, process.env.SIG, require("fs").readFileSync(0))));
`)
	run := func(body []byte, name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		if name == "go" {
			cmd.Dir = goDir
		}
		cmd.Env = append(os.Environ(), "S="+sec, "ID="+d.ID, "TS="+d.Timestamp, "SIG="+d.Signature, "GOWORK=off", "GOFLAGS=")
		cmd.Stdin = strings.NewReader(string(body))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return strings.ToLower(strings.TrimSpace(string(out)))
	}
	tampered := append([]byte(nil), d.Body...)
	tampered[len(tampered)-2] ^= 1
	for _, c := range []struct {
		name string
		args []string
	}{{"go", []string{"run", "."}}, {"python3", []string{py}}, {"node", []string{js}}} {
		if got := run(d.Body, c.name, c.args...); got != "true" {
			t.Errorf("%s snippet refused a genuine delivery: %q", c.name, got)
		}
		if got := run(tampered, c.name, c.args...); got != "false" {
			t.Errorf("%s snippet accepted a tampered body: %q", c.name, got)
		}
	}
}
