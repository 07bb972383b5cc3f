package tests

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMoveEmbeddedToRedis follows the README's "Moving from the embedded
// store to Redis" with the real binary: a Caddy on the embedded file signs
// a user up, logs it in and queues a reset mail it cannot deliver (its
// SMTP server is down); it is stopped, `caddy register export | caddy
// register import` moves the file into Redis, and a Caddy on Redis takes
// over: the tokens issued before the move work (the signing key and the
// session moved), the refresh token rotates, the queued mail is delivered
// (the outbox and its key moved) and its link resets the password. The
// time from stop to serving again is logged: the downtime the README
// states.
func TestMoveEmbeddedToRedis(t *testing.T) {
	bin := caddyBinary(t)
	sink := startSMTP(t)
	dir := t.TempDir()
	port := freePort()
	base := fmt.Sprintf("http://localhost:%d", port)
	caddyfile := func(name, storeLine, smtp string) string {
		cfg := fmt.Sprintf("{\n\tadmin off\n\tpersist_config off\n\tregister {\n\t\t%s\n\t\t%s\n\t\tadmin root %s manage-users\n\t\tsmtp %s\n\t}\n}\n\n"+
			"%s {\n\t%s\n\t%s\n\trespond \"fallback\" 200\n}\n", storeLine, cheapHash, mustBcrypt(t, "rootpw"), smtp, base, noraina, accountHandler)
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	down := fmt.Sprintf("smtp://127.0.0.1:%d?from=register@example.com", freePort()) // nothing listens
	oldCf := caddyfile("old.Caddyfile", "store embedded "+filepath.Join(dir, "register.db"), down)
	ns := fmt.Sprintf("move%d", os.Getpid())
	newCf := caddyfile("new.Caddyfile", fmt.Sprintf("store redis %s %s", redisSrv.URL(0), ns), sink.URL())

	old := runCaddy(t, oldCf, base, nil)
	s := &accountSite{site: &site{t: t, base: base, client: old.client}}
	reg := s.postJSON("/api/register", `{"name":"Ada","mail":"ada@example.com","password":"correct horse battery"}`)
	if reg.Status != http.StatusCreated {
		t.Fatalf("register: %d %s", reg.Status, reg.Body)
	}
	data, _ := reg.JSON(t)["data"].(map[string]any)
	regToken, _ := data["token"].(string)
	if regToken == "" {
		t.Fatalf("no token in the registration answer: %s", reg.Body)
	}
	id := s.signupID(t, "ada@example.com")
	s.setStatus(t, id, "active")
	tk := s.login(t, "ada@example.com", "correct horse battery")
	if res := s.postJSON("/account/password/forgot", `{"email":"ada@example.com"}`); res.Status != http.StatusAccepted {
		t.Fatalf("forgot: %d %s", res.Status, res.Body)
	}
	// The reset mail is written after the answer; its first delivery
	// fails and it waits in the outbox for the next attempt.
	old.awaitLog(t, "mail delivery failed; will retry")

	start := time.Now()
	old.stop()
	moved := time.Now()
	out := move(t, bin, dir, oldCf, newCf)
	pipe := time.Since(moved)
	if !strings.Contains(out, "user      1     1") || !strings.Contains(out, "mail      1     1") || !strings.Contains(out, "secret    ") {
		t.Fatalf("import report:\n%s", out)
	}
	runCaddy(t, newCf, base, nil)
	t.Logf("site down for %v: export | import %v, the rest stopping and starting Caddy", time.Since(start).Round(time.Millisecond), pipe.Round(time.Millisecond))

	// Tokens issued on the file work on Redis.
	if res := s.do(http.MethodGet, "/account/me", bearerH(tk.AccessToken), ""); res.Status != http.StatusOK {
		t.Errorf("access token from before the move: %d %s", res.Status, res.Body)
	}
	if res := s.do(http.MethodGet, "/api/me", map[string]string{"x-access-token": regToken}, ""); res.Status != http.StatusOK {
		t.Errorf("registration token from before the move: %d %s", res.Status, res.Body)
	}
	refreshed := wantTokens(t, s.postJSON("/account/refresh", fmt.Sprintf(`{"refresh_token":%q}`, tk.RefreshToken)))
	// The mail queued on the file is delivered from Redis, and its link works.
	_, text, _ := sink.waitFor("ada@example.com", 60*time.Second).parts(t)
	link := resetLinkRE.FindString(text)
	if link == "" {
		t.Fatalf("no reset link in the moved mail:\n%s", text)
	}
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	if res := s.postJSON("/account/password/reset", fmt.Sprintf(`{"token":%q,"password":"a brand new passphrase"}`, u.Query().Get("token"))); res.Status/100 != 2 {
		t.Fatalf("reset with the moved link: %d %s", res.Status, res.Body)
	}
	if res := s.do(http.MethodGet, "/account/me", bearerH(refreshed.AccessToken), ""); res.Status != http.StatusUnauthorized {
		t.Errorf("the reset did not end the moved session: %d", res.Status)
	}
	s.login(t, "ada@example.com", "a brand new passphrase")

	// Run again, the import finds everything there and writes nothing.
	if out := move(t, bin, dir, oldCf, newCf); !strings.Contains(out, "user      1     0        1") {
		t.Fatalf("second import:\n%s", out)
	}
}

// awaitLog waits until the process has logged a line holding what.
func (in *instance) awaitLog(t *testing.T, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b, _ := os.ReadFile(in.log); bytes.Contains(b, []byte(what)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log after 30 s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// signupID is the id of the user with email, through the admin API.
func (s *accountSite) signupID(t *testing.T, email string) string {
	t.Helper()
	res := s.do(http.MethodGet, "/account/users?email="+url.QueryEscape(email), rootAuth, "")
	users, _ := res.JSON(t)["users"].([]any)
	if res.Status != http.StatusOK || len(users) != 1 {
		t.Fatalf("list %s: %d %s", email, res.Status, res.Body)
	}
	return users[0].(map[string]any)["id"].(string)
}

// move runs `caddy register export --config from | caddy register import
// --config to` and returns what the import printed.
func move(t *testing.T, bin, dir, from, to string) string {
	t.Helper()
	env := append(os.Environ(), "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "HOME="+dir)
	exp := exec.Command(bin, "register", "export", "--config", from, "--adapter", "caddyfile")
	imp := exec.Command(bin, "register", "import", "--config", to, "--adapter", "caddyfile")
	exp.Env, imp.Env = env, env
	var expErr, impOut bytes.Buffer
	exp.Stderr, imp.Stdout, imp.Stderr = &expErr, &impOut, &impOut
	r, err := exp.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	imp.Stdin = r
	if err := exp.Start(); err != nil {
		t.Fatal(err)
	}
	if err := imp.Start(); err != nil {
		t.Fatal(err)
	}
	// Only the import holds the read end now: if it fails, the export's
	// writes fail instead of blocking.
	r.Close()
	if err := imp.Wait(); err != nil {
		t.Fatalf("import: %v\n%s\nexport said: %s", err, impOut.String(), expErr.String())
	}
	if err := exp.Wait(); err != nil {
		t.Fatalf("export: %v\n%s", err, expErr.String())
	}
	return impOut.String()
}
