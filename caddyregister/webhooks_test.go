package caddyregister

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"
)

func TestWebhookCaddyfile(t *testing.T) {
	var got App
	in := `register {
		webhook https://app.internal/hooks {
			events user.created user.deleted
			secret {env.WH1}
			secret {file./run/wh2}
		}
		webhook http://audit.internal/
		before_register http://app.internal/veto {
			timeout 500ms
			on_error allow
		}
		webhook_retry 1s 10s
	}`
	if err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in)); err != nil {
		t.Fatal(err)
	}
	want := App{
		Webhooks: []WebhookConfig{
			{URL: "https://app.internal/hooks", Events: []string{"user.created", "user.deleted"}, Secrets: []string{"{env.WH1}", "{file./run/wh2}"}},
			{URL: "http://audit.internal/"},
		},
		BeforeRegister: &BeforeRegisterConfig{URL: "http://app.internal/veto", Timeout: caddy.Duration(500e6), OnError: "allow"},
		WebhookRetry:   []caddy.Duration{second, 10 * second},
	}
	if g, w := mustJSON(t, &got), mustJSON(t, &want); g != w {
		t.Fatalf("got  %s\nwant %s", g, w)
	}
	for _, bad := range []string{
		"register {\n webhook\n}",
		"register {\n webhook a b\n}",
		"register {\n webhook http://x {\n events\n }\n}",
		"register {\n webhook http://x {\n secret a b\n }\n}",
		"register {\n webhook http://x {\n retries 3\n }\n}",
		"register {\n before_register http://x {\n on_error maybe\n }\n}",
		"register {\n before_register http://x\n before_register http://y\n}",
		"register {\n webhook_retry 0s\n}",
		"register {\n webhook_retry\n}",
	} {
		var a App
		if err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestProvisionWebhooks(t *testing.T) {
	sec := "whsec_" + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32)))
	t.Setenv("WH_TEST_SECRET", sec)
	ok := func(a *App) *webhookSetup {
		t.Helper()
		a.logger = zap.NewNop()
		ws, err := a.provisionWebhooks(caddy.NewReplacer())
		if err != nil {
			t.Fatalf("provisionWebhooks: %v", err)
		}
		return ws
	}
	ws := ok(&App{
		Webhooks:       []WebhookConfig{{URL: "http://a.internal/", Secrets: []string{"{env.WH_TEST_SECRET}"}}},
		BeforeRegister: &BeforeRegisterConfig{URL: "http://a.internal/veto"},
	})
	if ws.sender == nil || ws.hook == nil || ws.allowOnHookError || len(ws.endpoints) != 1 {
		t.Fatalf("setup %+v", ws)
	}
	if ws := ok(&App{}); ws.sender != nil || ws.hook != nil {
		t.Fatal("webhooks without config")
	}
	for name, a := range map[string]*App{
		"no secret":       {Webhooks: []WebhookConfig{{URL: "http://a/"}}},
		"secret unset":    {Webhooks: []WebhookConfig{{URL: "http://a/", Secrets: []string{"{env.WH_TEST_UNSET}"}}}},
		"not whsec":       {Webhooks: []WebhookConfig{{URL: "http://a/", Secrets: []string{"hunter2"}}}},
		"bad url":         {Webhooks: []WebhookConfig{{URL: "app.internal/hooks", Secrets: []string{sec}}}},
		"unknown event":   {Webhooks: []WebhookConfig{{URL: "http://a/", Events: []string{"user.exploded"}, Secrets: []string{sec}}}},
		"twice":           {Webhooks: []WebhookConfig{{URL: "http://a/", Secrets: []string{sec}}, {URL: "http://a/", Secrets: []string{sec}}}},
		"hook no secret":  {BeforeRegister: &BeforeRegisterConfig{URL: "http://a/"}},
		"hook bad url":    {BeforeRegister: &BeforeRegisterConfig{URL: "ftp://a/", Secrets: []string{sec}}},
		"hook bad policy": {BeforeRegister: &BeforeRegisterConfig{URL: "http://a/", Secrets: []string{sec}, OnError: "maybe"}},
	} {
		a.logger = zap.NewNop()
		_, err := a.provisionWebhooks(caddy.NewReplacer())
		if err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), sec) {
			t.Errorf("%s: the error shows the secret: %v", name, err)
		}
	}
}
