package noraina_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/contract"
	"github.com/caddyregister/caddyregister/caddyregister/contract/noraina"
	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/password"
	"github.com/caddyregister/caddyregister/caddyregister/store"
	"github.com/caddyregister/caddyregister/caddyregister/store/boltstore"
)

// TestActivationOption: admin by default; one of admin, email, auto; only
// email mode mails links and serves /confirm.
func TestActivationOption(t *testing.T) {
	for _, tc := range []struct {
		opt        [][]string
		err        bool
		links      bool
		hasConfirm bool
	}{
		{nil, false, false, false},
		{[][]string{{"admin"}}, false, false, false},
		{[][]string{{"auto"}}, false, false, false},
		{[][]string{{"email"}}, false, true, true},
		{[][]string{{"auto"}, {"email"}}, false, true, true}, // the last line wins, as for other options
		{[][]string{{"Email"}}, true, false, false},
		{[][]string{{"email", "auto"}}, true, false, false},
		{[][]string{{}}, true, false, false},
	} {
		env := contract.Env{Prefix: "/api"}
		if tc.opt != nil {
			env.Options = contract.Options{noraina.OptActivation: tc.opt}
		}
		c, err := noraina.New(env)
		if (err != nil) != tc.err {
			t.Fatalf("%v: err %v", tc.opt, err)
		}
		if err != nil {
			continue
		}
		if got := c.(contract.LinkMailer).MailsLinks(); got != tc.links {
			t.Errorf("%v: MailsLinks %v", tc.opt, got)
		}
		has := false
		for _, rt := range c.Routes() {
			has = has || rt.Path == "/confirm"
		}
		if has != tc.hasConfirm {
			t.Errorf("%v: confirm route %v", tc.opt, has)
		}
	}
	if _, err := noraina.New(contract.Env{Options: contract.Options{"activate": {{"email"}}}}); err == nil {
		t.Fatal("a misspelt option loads")
	}
}

var linkRE = regexp.MustCompile(`https://reg\.example/api/confirm\?token=([A-Za-z0-9_-]+)`)

// TestResendNorainaLink: a resend for a user noraina registered in email
// mode mails noraina's template with a link to noraina's confirm route on
// the registration's host, and that link activates; the first link no
// longer does.
func TestResendNorainaLink(t *testing.T) {
	ctx := context.Background()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "r.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e, err := engine.New(engine.Config{
		Store:  st,
		Hasher: password.Argon2id{MemoryKiB: 1024, Time: 1, Threads: 1},
		Pool:   password.NewPool(password.PoolConfig{}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := noraina.New(contract.Env{Engine: e, Prefix: "/api", Options: contract.Options{noraina.OptActivation: {{"email"}}}})
	if err != nil {
		t.Fatal(err)
	}
	route := func(method, path string) contract.Route {
		for _, rt := range c.Routes() {
			if rt.Method == method && rt.Path == path {
				return rt
			}
		}
		t.Fatalf("no route %s %s", method, path)
		return contract.Route{}
	}
	serve := func(method, path, target, body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, target, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		route(method, path).Serve(w, r, &contract.Request{ClientIP: "192.0.2.1", Body: []byte(body), BaseURL: "https://reg.example"})
		return w
	}
	if w := serve(http.MethodPost, "/register", "/api/register", `{"name":"Ann","mail":"ann@example.com","password":"my_password"}`); w.Code != http.StatusCreated {
		t.Fatalf("register: %d %s", w.Code, w.Body)
	}
	links := func() []string {
		t.Helper()
		var out []string
		for {
			m, err := st.ClaimMail(ctx, time.Now().Add(1000*time.Hour), time.Minute)
			if errors.Is(err, store.ErrNotFound) {
				return out
			}
			if err != nil {
				t.Fatal(err)
			}
			sealer, err := e.MailSealer(ctx)
			if err != nil {
				t.Fatal(err)
			}
			subject, text, _, err := sealer.Open(m)
			if err != nil || subject != "Activate your account" {
				t.Fatalf("mail %q: %v", subject, err)
			}
			_ = st.AckMail(ctx, m.ID)
			out = append(out, linkRE.FindStringSubmatch(text)[1])
		}
	}
	first := links()
	if len(first) != 1 {
		t.Fatalf("registration mails: %d", len(first))
	}
	if err := e.ResendActivation(ctx, "ann@example.com", "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	e.WaitResends()
	again := links()
	if len(again) != 1 || again[0] == first[0] {
		t.Fatalf("resent links %v (first %v)", again, first)
	}
	if w := serve(http.MethodPost, "/confirm", "/api/confirm", `{"token":"`+first[0]+`"}`); w.Code != http.StatusBadRequest {
		t.Fatalf("first link after the resend: %d %s", w.Code, w.Body)
	}
	if w := serve(http.MethodPost, "/confirm", "/api/confirm", `{"token":"`+again[0]+`"}`); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"status":"active"`) {
		t.Fatalf("resent link: %d %s", w.Code, w.Body)
	}
}
