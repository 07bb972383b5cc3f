package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/password"
	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// drainEvents claims, opens and acks every due webhook event, in claim
// order, and returns "url event" per event. Bodies must be sealed at rest.
func drainEvents(t *testing.T, h *harness) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	for {
		m, err := h.env.store.ClaimMail(ctx, time.Now().Add(time.Second), time.Minute)
		if errors.Is(err, store.ErrNotFound) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if m.Kind != store.KindWebhook {
			t.Fatalf("a %q message in the outbox", m.Kind)
		}
		if m.Text != "" || m.Sealed == "" {
			t.Fatalf("event %s not sealed at rest", m.ID)
		}
		s, err := h.e.MailSealer(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, text, _, err := s.Open(m)
		if err != nil {
			t.Fatal(err)
		}
		var env struct {
			Type string         `json:"type"`
			Data map[string]any `json:"data"`
		}
		if err := json.Unmarshal([]byte(text), &env); err != nil || env.Type != m.Event {
			t.Fatalf("body %s of a %s event: %v", text, m.Event, err)
		}
		out = append(out, m.To[0]+" "+env.Type)
		if err := h.env.store.AckMail(ctx, m.ID); err != nil {
			t.Fatal(err)
		}
	}
}

func webhookOpts(eps ...engine.WebhookEndpoint) func(*engine.Config) {
	return func(c *engine.Config) { c.Webhooks.Endpoints = eps }
}

// Every change reports its events, in its own step, to the endpoints that
// want them, in order.
func TestWebhookEvents(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			all := engine.WebhookEndpoint{URL: "http://all.internal/"}
			gone := engine.WebhookEndpoint{URL: "https://gone.internal/", Events: []string{engine.EventUserDeleted}}
			h := newHarness(t, be.open(t), webhookOpts(all, gone))
			res := mustRegister(t, h.e, reg("events@example.com"))
			active := "active"
			if _, err := h.e.UpdateUser(ctx, res.User.ID, engine.UserUpdate{Status: &active}); err != nil {
				t.Fatal(err)
			}
			if err := h.e.DeleteUser(ctx, res.User.ID); err != nil {
				t.Fatal(err)
			}
			got := drainEvents(t, h)
			var toAll []string
			for _, g := range got {
				if g[:len(all.URL)] == all.URL {
					toAll = append(toAll, g[len(all.URL)+1:])
				}
			}
			want := []string{"user.created", "session.created", "user.activated", "user.updated", "user.deleted"}
			if !slices.Equal(toAll, want) {
				t.Fatalf("events to the catch-all endpoint %v, want %v", toAll, want)
			}
			if !slices.Contains(got, gone.URL+" user.deleted") || len(got) != len(want)+1 {
				t.Fatalf("events %v", got)
			}
		})
	}
}

// No endpoint: nothing queued, nothing sealed.
func TestWebhookNoEndpoints(t *testing.T) {
	be := backends()[0]
	h := newHarness(t, be.open(t))
	mustRegister(t, h.e, reg("none@example.com"))
	if got := drainEvents(t, h); len(got) != 0 {
		t.Fatalf("events without endpoints: %v", got)
	}
}

type hookCalls struct {
	mu    sync.Mutex
	calls []*engine.Proposal
}

func (c *hookCalls) n() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.calls)
}

func TestBeforeRegisterHook(t *testing.T) {
	be := backends()[0]
	ctx := context.Background()
	calls := &hookCalls{}
	verdict := func(p *engine.Proposal) (engine.HookVerdict, error) {
		switch p.Email {
		case "allow@example.com":
			return engine.HookVerdict{Allowed: true, Permissions: []string{"beta", engine.PermManageUsers, "beta"}}, nil
		case "refuse@example.com":
			return engine.HookVerdict{Message: "closed"}, nil
		}
		return engine.HookVerdict{}, errors.New("timeout")
	}
	hook := func(allow bool) func(*engine.Config) {
		return func(c *engine.Config) {
			c.Webhooks.AllowOnHookError = allow
			c.Webhooks.BeforeRegister = func(_ context.Context, p *engine.Proposal) (engine.HookVerdict, error) {
				calls.mu.Lock()
				calls.calls = append(calls.calls, p)
				calls.mu.Unlock()
				return verdict(p)
			}
		}
	}
	h := newHarness(t, be.open(t), hook(false))

	// Invalid: never asked.
	bad := reg("not an address")
	if _, err := h.e.Register(ctx, bad); err == nil {
		t.Fatal("invalid registration accepted")
	}
	if calls.n() != 0 {
		t.Fatal("the hook was asked about an invalid registration")
	}

	r := reg("allow@example.com")
	r.Permissions = []string{"read"}
	res := mustRegister(t, h.e, r)
	if !slices.Equal(res.User.Permissions, []string{"read", "beta"}) {
		t.Fatalf("permissions %v", res.User.Permissions)
	}
	if p := calls.calls[0]; p.Email != "allow@example.com" || p.Contract != "test" {
		t.Fatalf("proposal %+v", p)
	}

	hashes := h.hashes.total()
	_, err := h.e.Register(ctx, reg("refuse@example.com"))
	var re *engine.RefusedError
	if !errors.As(err, &re) || re.Message != "closed" {
		t.Fatalf("refused: %v", err)
	}
	if _, err := h.e.Register(ctx, reg("down@example.com")); !errors.Is(err, engine.ErrHookUnavailable) {
		t.Fatalf("no verdict, deny: %v", err)
	}
	if h.hashes.total() != hashes {
		t.Fatal("a refused registration was hashed")
	}
	for _, e := range []string{"refuse@example.com", "down@example.com"} {
		if _, err := h.env.store.UserIDByEmail(ctx, store.EmailKey(e)); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("%s stored: %v", e, err)
		}
	}

	allow := newHarness(t, be.open(t), hook(true))
	mustRegister(t, allow.e, reg("down@example.com"))
}

// split sorts drained messages into mails and the event types of webhook
// events, in claim order.
func split(ms []*store.Mail) (mails []*store.Mail, events []string) {
	for _, m := range ms {
		if m.Kind == store.KindWebhook {
			events = append(events, m.Event)
		} else {
			mails = append(mails, m)
		}
	}
	return mails, events
}

// Token uses report too: an activation link user.activated (once, not on
// the idempotent reuse), a login session.created, a reset password.reset.
func TestWebhookTokenEvents(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			ep := engine.WebhookEndpoint{URL: "http://app.internal/",
				Events: []string{engine.EventUserActivated, engine.EventSessionCreated, engine.EventPasswordReset}}
			h := newHarness(t, be.open(t), webhookOpts(ep))
			var links linkCatcher
			r := reg("tokens@example.com")
			r.IssueToken = false
			r.Mail = links.spec(time.Hour)
			uid := mustRegister(t, h.e, r).User.ID
			links.mu.Lock()
			link := links.links[0]
			links.mu.Unlock()
			for range 2 {
				if _, err := h.e.Activate(ctx, link); err != nil {
					t.Fatalf("Activate: %v", err)
				}
			}
			mustStart(t, h.e, uid)
			if _, events := split(drainMails(t, h)); !slices.Equal(events, []string{engine.EventUserActivated, engine.EventSessionCreated}) {
				t.Fatalf("events %v", events)
			}
			forgot(t, h, "tokens@example.com")
			h.e.WaitResends()
			mails, events := split(drainMails(t, h))
			if len(events) != 0 {
				t.Fatalf("events of a forgot: %v", events)
			}
			if err := h.e.ResetPassword(ctx, resetToken(t, mails), "a brand new passphrase 42", password.NIST()); err != nil {
				t.Fatalf("ResetPassword: %v", err)
			}
			h.e.WaitResends()
			if _, events := split(drainMails(t, h)); !slices.Equal(events, []string{engine.EventPasswordReset}) {
				t.Fatalf("events of a reset %v", events)
			}
		})
	}
}
