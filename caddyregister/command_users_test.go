package caddyregister

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/password"
	"github.com/caddyregister/caddyregister/caddyregister/store/boltstore"
	"github.com/caddyregister/caddyregister/caddyregister/store/redisstore"
	"github.com/caddyregister/caddyregister/caddyregister/store/storetest"
	"github.com/caddyregister/caddyregister/internal/testredis"
)

// runRegister runs `caddy register <args…>` as Caddy's command line does
// (cobra, the register command's flags) and returns what it printed.
func runRegister(t *testing.T, cf string, args ...string) (string, error) {
	t.Helper()
	root := &cobra.Command{Use: "register", SilenceUsage: true, SilenceErrors: true}
	root.PersistentFlags().StringP("config", "c", "", "")
	root.PersistentFlags().StringP("adapter", "a", "", "")
	addOperatorCommands(root)
	var out bytes.Buffer
	commandOut = &out
	t.Cleanup(func() { commandOut = nil })
	root.SetArgs(append(args, "--config", cf, "--adapter", "caddyfile"))
	err := root.Execute()
	return out.String(), err
}

func mustRun(t *testing.T, cf string, args ...string) string {
	t.Helper()
	out, err := runRegister(t, cf, args...)
	if err != nil {
		t.Fatalf("caddy register %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// seedUsers registers two pending users through the app the commands
// provision (each with its registration token's session).
func seedUsers(t *testing.T, cf string) {
	t.Helper()
	ctx := context.Background()
	a, done, err := commandApp(ctx, cf, "caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	for _, email := range []string{"ada@example.com", "bob@example.com"} {
		if _, err := a.Engine().Register(ctx, engine.Registration{Contract: "test", ClientIP: "192.0.2.1", Email: email,
			Password: "correct horse battery", Policy: password.NIST(), IssueToken: true}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestUserCommands(t *testing.T) {
	srv := testredis.Start(t)
	for name, storeLine := range map[string]string{
		"redis":         "store redis " + srv.URL(0) + " usercmd",
		"redis-cluster": "store redis redis+cluster://" + strings.Join(sharedCluster(t).Seeds(), ",") + " usercmd",
		"embedded":      "store embedded " + filepath.Join(t.TempDir(), "register.db"),
	} {
		t.Run(name, func(t *testing.T) {
			cf := writeCaddyfile(t, "\t\t"+storeLine+"\n\t\thash argon2id 1024 1 1")
			seedUsers(t, cf)

			out := mustRun(t, cf, "users", "list")
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID ") || !strings.Contains(lines[1], "ada@example.com") || !strings.Contains(lines[2], "pending") {
				t.Fatalf("users list:\n%s", out)
			}
			if out := mustRun(t, cf, "users", "list", "--limit", "1"); !strings.Contains(out, "more: --cursor ") {
				t.Fatalf("a page of one: %s", out)
			}
			var page struct {
				Users []struct {
					ID, Email, Status string
				} `json:"users"`
				Next *string `json:"next_cursor"`
			}
			if err := json.Unmarshal([]byte(mustRun(t, cf, "users", "list", "--json", "--email", "bo")), &page); err != nil || len(page.Users) != 1 || page.Users[0].Email != "bob@example.com" || page.Next != nil {
				t.Fatalf("users list --json --email bo: %+v, %v", page, err)
			}
			if _, err := runRegister(t, cf, "users", "list", "--status", "gone"); err == nil || !strings.Contains(err.Error(), "status") {
				t.Fatalf("bad status: %v", err)
			}

			if out := mustRun(t, cf, "users", "activate", "ada@example.com"); !strings.Contains(out, "(ada@example.com) is active") {
				t.Fatalf("activate: %s", out)
			}
			var shown struct {
				ID       string            `json:"id"`
				Status   string            `json:"status"`
				Sessions []json.RawMessage `json:"sessions"`
			}
			if err := json.Unmarshal([]byte(mustRun(t, cf, "users", "show", "ada@example.com", "--json")), &shown); err != nil || shown.Status != "active" || len(shown.Sessions) != 1 {
				t.Fatalf("show: %+v, %v", shown, err)
			}
			if out := mustRun(t, cf, "users", "show", shown.ID); !strings.Contains(out, "sessions:") || strings.Contains(out, "hash") {
				t.Fatalf("show by id:\n%s", out)
			}
			if out := mustRun(t, cf, "sessions", "revoke", "ada@example.com"); !strings.Contains(out, "1 session(s)") {
				t.Fatalf("sessions revoke: %s", out)
			}
			if _, err := runRegister(t, cf, "sessions", "revoke", "ada@example.com", "--sid", "nope"); err == nil || !strings.Contains(err.Error(), "no live session") {
				t.Fatalf("revoke an unknown sid: %v", err)
			}
			if out := mustRun(t, cf, "users", "disable", "bob@example.com"); !strings.Contains(out, "is inactive") {
				t.Fatalf("disable: %s", out)
			}
			if out := mustRun(t, cf, "users", "delete", "ada@example.com"); !strings.Contains(out, "erased") {
				t.Fatalf("delete: %s", out)
			}
			if _, err := runRegister(t, cf, "users", "show", "ada@example.com"); err == nil || !strings.Contains(err.Error(), "no user with id, e-mail or login") {
				t.Fatalf("show after delete: %v", err)
			}
			if out := mustRun(t, cf, "users", "list", "--json"); strings.Contains(out, "ada@") || !strings.Contains(out, `"status": "inactive"`) {
				t.Fatalf("list after delete and disable: %s", out)
			}
		})
	}
}

// TestUserCommandsEmbeddedLocked: while a Caddy holds the embedded file,
// the commands say so and name the way out.
func TestUserCommandsEmbeddedLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "register.db")
	held, err := boltstore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	cf := writeCaddyfile(t, "\t\tstore embedded "+path)
	_, err = runRegister(t, cf, "users", "list")
	if err == nil || !strings.Contains(err.Error(), "locked by a running Caddy") || !strings.Contains(err.Error(), "admin API") {
		t.Fatalf("users list on a held file: %v", err)
	}
	// A move has no admin API to fall back on.
	for _, cmd := range []string{"export", "import"} {
		_, err = runRegister(t, cf, cmd)
		if err == nil || !strings.Contains(err.Error(), "stop it first") || strings.Contains(err.Error(), "admin API") {
			t.Fatalf("%s on a held file: %v", cmd, err)
		}
	}
}

func TestMailCommands(t *testing.T) {
	srv := testredis.Start(t)
	st, err := redisstore.Open(srv.URL(0), "mailcmd")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	parked := storetest.ParkExpired(t, st, 2)
	cf := writeCaddyfile(t, "\t\tstore redis "+srv.URL(0)+" mailcmd\n\t\thash argon2id 1024 1 1")

	out := mustRun(t, cf, "mail", "list")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 3 || !strings.Contains(out, "550 no such user") || !strings.Contains(out, parked[0].ID) {
		t.Fatalf("mail list:\n%s", out)
	}
	if strings.Contains(out, parked[0].Text) {
		t.Fatalf("mail list shows a body:\n%s", out)
	}
	if _, err := runRegister(t, cf, "mail", "retry"); err == nil || !strings.Contains(err.Error(), "--all") {
		t.Fatalf("retry without ids: %v", err)
	}
	if _, err := runRegister(t, cf, "mail", "retry", "nope"); err == nil || !strings.Contains(err.Error(), "no message nope") {
		t.Fatalf("retry of an unknown id: %v", err)
	}
	if out := mustRun(t, cf, "mail", "retry", parked[0].ID); !strings.Contains(out, "1 message(s) queued again") {
		t.Fatalf("retry one: %s", out)
	}
	var res struct{ Retried, Skipped []string }
	if err := json.Unmarshal([]byte(mustRun(t, cf, "mail", "retry", "--all", "--json")), &res); err != nil || len(res.Retried) != 1 || res.Retried[0] != parked[1].ID {
		t.Fatalf("retry --all: %+v, %v", res, err)
	}
	if out := mustRun(t, cf, "mail", "list", "--json"); !strings.Contains(out, `"parked": []`) {
		t.Fatalf("after the retries: %s", out)
	}
	if q, p, err := st.MailCounts(context.Background()); err != nil || q != 2 || p != 0 {
		t.Fatalf("MailCounts = %d queued, %d parked, %v", q, p, err)
	}
}
