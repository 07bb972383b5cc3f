package caddyregister

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/mail"
	"github.com/caddyregister/caddyregister/caddyregister/webhook"
)

// WebhookConfig is one endpoint the app is told about its users at
// (Caddyfile: webhook <url> { events ...; secret ... }).
type WebhookConfig struct {
	// URL is where events are POSTed: http:// (internal networks) or
	// https:// (certificates verified as usual).
	URL string `json:"url"`
	// Events are the event types it receives (engine.WebhookEvents);
	// empty: all.
	Events []string `json:"events,omitempty"`
	// Secrets sign every delivery, one signature each: "whsec_" and
	// base64 (Standard Webhooks), usually {env.X} or {file.path}. The
	// first is the current one; list the next before it to rotate.
	Secrets []string `json:"secrets,omitempty"`
}

// BeforeRegisterConfig is the blocking hook that can veto a signup
// (Caddyfile: before_register <url> { timeout 2s; on_error deny|allow;
// secret ... }).
type BeforeRegisterConfig struct {
	URL string `json:"url"`
	// Timeout bounds the call. Default 2s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// OnError is what a timeout, a network error or a 5xx does: "deny"
	// (the default: 503, retry later) or "allow".
	OnError string `json:"on_error,omitempty"`
	// Secrets sign the call as webhooks are signed; default the first
	// webhook's.
	Secrets []string `json:"secrets,omitempty"`
}

// webhookSetup is what provisionWebhooks derives from the config.
type webhookSetup struct {
	sender           *webhook.Sender // nil without webhooks
	endpoints        []engine.WebhookEndpoint
	schedule         []time.Duration
	hook             engine.BeforeRegisterFunc
	allowOnHookError bool
}

// provisionWebhooks checks the webhook config and builds the sender and
// the hook; no network I/O (that happens at delivery).
func (a *App) provisionWebhooks(repl *caddy.Replacer) (*webhookSetup, error) {
	ws := &webhookSetup{}
	var eps []webhook.Endpoint
	var firstKeys [][]byte
	for i, wc := range a.Webhooks {
		url := strings.TrimSpace(repl.ReplaceKnown(wc.URL, ""))
		if err := webhook.CheckURL(url); err != nil {
			return nil, fmt.Errorf("register: webhook %d: %w", i+1, err)
		}
		if err := engine.CheckWebhookEvents(wc.Events); err != nil {
			return nil, fmt.Errorf("register: webhook %s: %w", url, err)
		}
		if slices.ContainsFunc(eps, func(e webhook.Endpoint) bool { return e.URL == url }) {
			return nil, fmt.Errorf("register: webhook %s declared twice", url)
		}
		keys, err := webhookKeys(repl, wc.Secrets)
		if err != nil {
			return nil, fmt.Errorf("register: webhook %s: %w", url, err)
		}
		if len(keys) == 0 {
			return nil, fmt.Errorf("register: webhook %s: a secret is required (whsec_ and base64, e.g. {env.WEBHOOK_SECRET})", url)
		}
		if i == 0 {
			firstKeys = keys
		}
		eps = append(eps, webhook.Endpoint{URL: url, Keys: keys})
		ws.endpoints = append(ws.endpoints, engine.WebhookEndpoint{URL: url, Events: wc.Events})
	}
	if len(eps) > 0 {
		ws.sender = webhook.NewSender(eps, nil, a.logger.Named("webhook"))
	}
	for _, d := range a.WebhookRetry {
		if d <= 0 {
			return nil, fmt.Errorf("register: webhook_retry: durations must be positive")
		}
		ws.schedule = append(ws.schedule, time.Duration(d))
	}
	if br := a.BeforeRegister; br != nil {
		url := strings.TrimSpace(repl.ReplaceKnown(br.URL, ""))
		if err := webhook.CheckURL(url); err != nil {
			return nil, fmt.Errorf("register: before_register: %w", err)
		}
		keys, err := webhookKeys(repl, br.Secrets)
		if err != nil {
			return nil, fmt.Errorf("register: before_register: %w", err)
		}
		if len(keys) == 0 {
			keys = firstKeys
		}
		if len(keys) == 0 {
			return nil, fmt.Errorf("register: before_register: a secret is required (its own, or a webhook's)")
		}
		switch br.OnError {
		case "", "deny":
		case "allow":
			ws.allowOnHookError = true
		default:
			return nil, fmt.Errorf("register: before_register on_error: want deny or allow, got %q", br.OnError)
		}
		timeout := time.Duration(br.Timeout)
		if timeout <= 0 {
			timeout = webhook.DefaultHookTimeout
		}
		hook := &webhook.Hook{URL: url, Keys: keys, Client: webhook.NewClient(timeout)}
		ws.hook = hookFunc(hook)
	}
	return ws, nil
}

// webhookKeys resolves and decodes secrets.
func webhookKeys(repl *caddy.Replacer, secrets []string) ([][]byte, error) {
	var keys [][]byte
	for i, s := range secrets {
		key, err := webhook.ParseSecret(repl.ReplaceKnown(s, ""))
		if err != nil {
			// Never the value: it is a secret.
			return nil, fmt.Errorf("secret %d: %w", i+1, err)
		}
		keys = append(keys, key)
	}
	return keys, nil
}

// hookFunc is the engine's before_register over HTTP: the proposal goes
// out as a signed event of type engine.EventBeforeRegister.
func hookFunc(h *webhook.Hook) engine.BeforeRegisterFunc {
	return func(ctx context.Context, p *engine.Proposal) (engine.HookVerdict, error) {
		now := time.Now()
		body, err := engine.WebhookBody(engine.EventBeforeRegister, now, p)
		if err != nil {
			return engine.HookVerdict{}, err
		}
		v, err := h.Call(ctx, engine.NewWebhookID(now), body)
		if err != nil {
			return engine.HookVerdict{}, err
		}
		return engine.HookVerdict{Allowed: v.Allowed, Permissions: v.Permissions, Message: v.Message}, nil
	}
}

// worker fills the worker's webhook fields.
func (ws *webhookSetup) worker(cfg *mail.WorkerConfig) {
	if ws.sender != nil {
		cfg.Webhooks = ws.sender
	}
	cfg.WebhookSchedule = ws.schedule
	cfg.WebhookObserver = webhookObserver{}
}

// engineConfig is the engine's webhook config.
func (ws *webhookSetup) engineConfig() engine.WebhookConfig {
	return engine.WebhookConfig{Endpoints: ws.endpoints, BeforeRegister: ws.hook, AllowOnHookError: ws.allowOnHookError}
}

// webhookBlock reads
//
//	webhook <url> {
//		events <type>...
//		secret <whsec_...>
//	}
func webhookBlock(d *caddyfile.Dispenser) (WebhookConfig, error) {
	var wc WebhookConfig
	if !d.NextArg() {
		return wc, d.ArgErr()
	}
	wc.URL = d.Val()
	if d.NextArg() {
		return wc, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch key := d.Val(); key {
		case "events":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return wc, d.ArgErr()
			}
			wc.Events = append(wc.Events, args...)
		case "secret":
			var s string
			if !d.AllArgs(&s) {
				return wc, d.ArgErr()
			}
			wc.Secrets = append(wc.Secrets, s)
		default:
			return wc, d.Errf("unknown webhook option %q", key)
		}
	}
	return wc, nil
}

// beforeRegisterBlock reads
//
//	before_register <url> {
//		timeout <duration>
//		on_error deny|allow
//		secret <whsec_...>
//	}
func beforeRegisterBlock(d *caddyfile.Dispenser) (*BeforeRegisterConfig, error) {
	br := new(BeforeRegisterConfig)
	if !d.NextArg() {
		return nil, d.ArgErr()
	}
	br.URL = d.Val()
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch key := d.Val(); key {
		case "timeout":
			dur, err := durationArg(d)
			if err != nil {
				return nil, err
			}
			br.Timeout = dur
		case "on_error":
			if !d.AllArgs(&br.OnError) {
				return nil, d.ArgErr()
			}
			if br.OnError != "deny" && br.OnError != "allow" {
				return nil, d.Errf("before_register on_error: want deny or allow, got %q", br.OnError)
			}
		case "secret":
			var s string
			if !d.AllArgs(&s) {
				return nil, d.ArgErr()
			}
			br.Secrets = append(br.Secrets, s)
		default:
			return nil, d.Errf("unknown before_register option %q", key)
		}
	}
	return br, nil
}

// webhookRetryArgs reads "webhook_retry <duration>..." (the waits before
// each retry; tests shorten them).
func webhookRetryArgs(d *caddyfile.Dispenser) ([]caddy.Duration, error) {
	args := d.RemainingArgs()
	if len(args) == 0 {
		return nil, d.ArgErr()
	}
	var out []caddy.Duration
	for _, s := range args {
		dur, err := caddy.ParseDuration(s)
		if err != nil || dur <= 0 {
			return nil, d.Errf("webhook_retry: want positive durations, got %q", s)
		}
		out = append(out, caddy.Duration(dur))
	}
	return out, nil
}

type webhookObserver struct{}

func (webhookObserver) Sent()   { metricWebhook.WithLabelValues("sent").Inc() }
func (webhookObserver) Failed() { metricWebhook.WithLabelValues("failed").Inc() }
func (webhookObserver) Parked() { metricWebhook.WithLabelValues("parked").Inc() }
