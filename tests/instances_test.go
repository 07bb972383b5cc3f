package tests

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// A second Caddy sharing the store: caddytest runs one Caddy per process,
// so the other instance is this module's cmd/caddy, built once per test
// run and started as its own process.

var caddyBin struct {
	once sync.Once
	path string
	err  error
}

// caddyBinary builds cmd/caddy (stock Caddy plus this plugin) once.
func caddyBinary(t *testing.T) string {
	t.Helper()
	caddyBin.once.Do(func() {
		dir, err := os.MkdirTemp("", "caddyregister-tests-")
		if err != nil {
			caddyBin.err = err
			return
		}
		caddyBin.path = filepath.Join(dir, "caddy")
		cmd := exec.Command("go", "build", "-o", caddyBin.path, "github.com/caddyregister/caddyregister/cmd/caddy")
		if out, err := cmd.CombinedOutput(); err != nil {
			caddyBin.err = fmt.Errorf("go build cmd/caddy: %v\n%s", err, out)
		}
	})
	if caddyBin.err != nil {
		t.Fatal(caddyBin.err)
	}
	return caddyBin.path
}

// instance is a Caddy process of its own.
type instance struct {
	base   string
	client *http.Client
	log    string
	// stop kills the process and waits for it to exit (once; the test's
	// end calls it too).
	stop func()
}

// startInstance runs cmd/caddy on a Caddyfile whose global register block
// holds registerBlock and whose one site block (plain HTTP on a free port)
// holds siteBody. It returns once the site answers; the process is
// stopped when the test ends, and its log printed if the test failed.
func startInstance(t *testing.T, registerBlock, siteBody string) *instance {
	t.Helper()
	port := freePort()
	cfg := fmt.Sprintf("{\n\tadmin off\n\tpersist_config off\n\tregister {\n\t\t%s\n\t}\n}\n\nhttp://localhost:%d {\n\t%s\n\trespond \"fallback\" 200\n}\n",
		registerBlock, port, siteBody)
	cf := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(cf, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return runCaddy(t, cf, fmt.Sprintf("http://localhost:%d", port), nil)
}

// runCaddy runs cmd/caddy on the Caddyfile cf with env added to the
// test's environment, and returns once base answers.
func runCaddy(t *testing.T, cf, base string, env []string) *instance {
	t.Helper()
	bin := caddyBinary(t)
	dir := t.TempDir()
	in := &instance{base: base, log: filepath.Join(dir, "caddy.log"), client: &http.Client{Timeout: 30 * time.Second}}
	logf, err := os.Create(in.log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", cf, "--adapter", "caddyfile")
	cmd.Stdout, cmd.Stderr = logf, logf
	// Caddy's data and config directories are the test's own (the
	// embedded store lives there by default).
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "HOME="+dir)
	cmd.Env = append(cmd.Env, env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var once sync.Once
	in.stop = func() {
		once.Do(func() {
			_ = cmd.Process.Kill()
			<-exited
		})
	}
	t.Cleanup(func() {
		in.stop()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(in.log)
			t.Logf("log of the Caddy process:\n%s", b)
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err // for stop, at the test's end
			b, _ := os.ReadFile(in.log)
			t.Fatalf("Caddy process exited: %v\n%s", err, b)
		default:
		}
		res, err := in.client.Get(in.base + "/.ready")
		if err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			return in
		}
		if time.Now().After(deadline) {
			t.Fatalf("Caddy process not answering: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (in *instance) status(t *testing.T, method, path string, headers map[string]string) int {
	t.Helper()
	req, err := http.NewRequest(method, in.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := in.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

// revocationBound is what the README promises: a revoked session is
// refused within 5 s by every instance sharing the store.
const revocationBound = 5 * time.Second

// awaitRefused polls the other instance until it refuses tok and returns
// how long that took; past twice the bound the test fails (the bound
// itself is checked by the caller, so a slow machine reports a figure).
func (in *instance) awaitRefused(t *testing.T, tok string) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		switch st := in.status(t, http.MethodGet, "/account/me", bearerH(tok)); st {
		case http.StatusUnauthorized:
			return time.Since(start)
		case http.StatusOK:
		default:
			t.Fatalf("other instance: /account/me %d", st)
		}
		if time.Since(start) > 2*revocationBound {
			t.Fatalf("other instance still accepts the token after %v", time.Since(start))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRevocationAcrossInstances: a logout, a disable and a password
// change made through one Caddy are refused by a second Caddy on the same
// Redis within the revocation bound, and at once by the first.
func TestRevocationAcrossInstances(t *testing.T) {
	a := startAccount(t, backendRedis)
	b := startInstance(t, fmt.Sprintf("store redis %s %s\n\t\t%s", redisSrv.URL(0), a.ns, cheapHash), accountHandler)

	a.signup(t, "twice@example.com", "my_password", true)
	var figures []string
	check := func(what string, tok string, revoke func()) {
		t.Helper()
		if st := b.status(t, http.MethodGet, "/account/me", bearerH(tok)); st != http.StatusOK {
			t.Fatalf("%s: other instance refuses the live token: %d", what, st)
		}
		revoke()
		if res := a.do(http.MethodGet, "/account/me", bearerH(tok), ""); res.Status != http.StatusUnauthorized {
			t.Fatalf("%s: the instance that revoked still accepts the token: %d", what, res.Status)
		}
		took := b.awaitRefused(t, tok)
		figures = append(figures, fmt.Sprintf("%s %v", what, took.Round(time.Millisecond)))
		if took > revocationBound {
			t.Errorf("%s: other instance refused the token after %v, bound %v", what, took, revocationBound)
		}
	}

	tok := a.login(t, "twice@example.com", "my_password")
	check("logout", tok.AccessToken, func() {
		if res := a.do(http.MethodPost, "/account/logout", bearerH(tok.AccessToken), ""); res.Status != http.StatusNoContent {
			t.Fatalf("logout: %d %s", res.Status, res.Body)
		}
	})

	keep, other := a.login(t, "twice@example.com", "my_password"), a.login(t, "twice@example.com", "my_password")
	check("password change", other.AccessToken, func() {
		res := a.do(http.MethodPost, "/account/password/change", bearerH(keep.AccessToken), `{"current_password":"my_password","new_password":"my_new_password"}`)
		if res.Status != http.StatusNoContent {
			t.Fatalf("password change: %d %s", res.Status, res.Body)
		}
	})
	if st := b.status(t, http.MethodGet, "/account/me", bearerH(keep.AccessToken)); st != http.StatusOK {
		t.Fatalf("the session that changed the password was ended on the other instance: %d", st)
	}

	id := keep.User["id"].(string)
	check("disable", keep.AccessToken, func() { a.setStatus(t, id, "inactive") })
	t.Logf("revocation seen by the second instance after: %s", strings.Join(figures, ", "))
}
