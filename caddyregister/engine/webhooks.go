package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// Webhooks: the app behind the plugin is told what happens to its users.
// Every event is an outbox message (store.KindWebhook) written in the same
// atomic step as the change it reports, one per endpoint that wants it,
// chained per user and endpoint so one user's events arrive in order
// (store/outbox.go). The worker delivers them (package webhook). Payloads
// hold personal data: they are sealed at rest like mail bodies.

// Webhook event types.
const (
	EventUserCreated    = "user.created"
	EventUserActivated  = "user.activated"
	EventUserUpdated    = "user.updated"
	EventUserDeleted    = "user.deleted"
	EventSessionCreated = "session.created"
	EventPasswordReset  = "password.reset"
	// EventBeforeRegister is the type of the before_register hook's body.
	EventBeforeRegister = "user.before_register"
)

// WebhookEvents are the event types an endpoint may subscribe to.
var WebhookEvents = []string{
	EventUserCreated, EventUserActivated, EventUserUpdated,
	EventUserDeleted, EventSessionCreated, EventPasswordReset,
}

// WebhookEndpoint is one receiver of events.
type WebhookEndpoint struct {
	URL string
	// Events it receives (of WebhookEvents); empty: all.
	Events []string
}

func (w *WebhookEndpoint) wants(ev string) bool {
	return len(w.Events) == 0 || slices.Contains(w.Events, ev)
}

// CheckWebhookEvents refuses an event name outside WebhookEvents.
func CheckWebhookEvents(events []string) error {
	for _, ev := range events {
		if !slices.Contains(WebhookEvents, ev) {
			return fmt.Errorf("unknown webhook event %q (known: %v)", ev, WebhookEvents)
		}
	}
	return nil
}

// WebhookUser is the user in an event's data: never the password hash,
// tokens or internal bookkeeping.
type WebhookUser struct {
	ID          string      `json:"id"`
	Email       string      `json:"email"`
	Login       string      `json:"login,omitempty"`
	Name        string      `json:"name,omitempty"`
	FirstName   string      `json:"first_name,omitempty"`
	LastName    string      `json:"last_name,omitempty"`
	Status      string      `json:"status"`
	TenantID    string      `json:"tenant_id,omitempty"`
	Permissions []string    `json:"permissions"`
	Contract    string      `json:"contract,omitempty"`
	Attributes  store.Attrs `json:"attributes,omitempty"`
	CreatedAt   time.Time   `json:"created_at"`
	UpdatedAt   time.Time   `json:"updated_at"`
}

func webhookUser(u *store.User) *WebhookUser {
	perms := u.Permissions
	if perms == nil {
		perms = []string{}
	}
	return &WebhookUser{
		ID: u.ID, Email: u.Email, Login: u.Login, Name: u.Name,
		FirstName: u.FirstName, LastName: u.LastName, Status: string(u.Status),
		TenantID: u.TenantID, Permissions: perms, Contract: u.Contract,
		Attributes: u.Attributes, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt,
	}
}

// WebhookSession is the data of session.created.
type WebhookSession struct {
	ID        string    `json:"id"`
	UserID    string    `json:"user_id"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

func webhookSession(s *store.Session) *WebhookSession {
	return &WebhookSession{ID: s.ID, UserID: s.UserID, CreatedAt: s.CreatedAt, ExpiresAt: s.ExpiresAt}
}

// WebhookBody is the JSON body of an event, as Standard Webhooks shapes
// it: {"type", "timestamp", "data"}.
func WebhookBody(event string, at time.Time, data any) ([]byte, error) {
	b, err := json.Marshal(struct {
		Type      string    `json:"type"`
		Timestamp time.Time `json:"timestamp"`
		Data      any       `json:"data"`
	}{event, at.UTC(), data})
	if err != nil {
		return nil, fmt.Errorf("webhook body: %w", err)
	}
	return b, nil
}

// NewWebhookID returns a fresh webhook-id ("msg_" and a store id).
func NewWebhookID(now time.Time) string { return "msg_" + store.NewID(now) }

// webhookChain is the outbox chain of a user's events to one endpoint.
func webhookChain(url, userID string) string {
	sum := sha256.Sum256([]byte(url))
	return "wh:" + hex.EncodeToString(sum[:6]) + ":" + userID
}

// hasWebhooks reports whether any endpoint wants one of events.
func (e *Engine) hasWebhooks(events ...string) bool {
	for i := range e.cfg.Webhooks.Endpoints {
		for _, ev := range events {
			if e.cfg.Webhooks.Endpoints[i].wants(ev) {
				return true
			}
		}
	}
	return false
}

// webhookSealer returns the outbox sealer when some endpoint wants one of
// events, nil when none does. It is fetched before the store step that
// enqueues, since loading it may read the store.
func (e *Engine) webhookSealer(ctx context.Context, events ...string) (*mailSealer, error) {
	if !e.hasWebhooks(events...) {
		return nil, nil
	}
	s, err := e.MailSealer(ctx)
	if err != nil {
		return nil, fmt.Errorf("webhook: outbox key: %w", err)
	}
	return s, nil
}

// webhookEvent returns the messages of one event about userID, one per
// endpoint that wants it, sealed with s (nil: no endpoint wants any).
func (e *Engine) webhookEvent(s *mailSealer, event, userID string, data any, now time.Time) ([]*store.Mail, error) {
	if s == nil {
		return nil, nil
	}
	var out []*store.Mail
	var body []byte
	for i := range e.cfg.Webhooks.Endpoints {
		ep := &e.cfg.Webhooks.Endpoints[i]
		if !ep.wants(event) {
			continue
		}
		if body == nil {
			var err error
			if body, err = WebhookBody(event, now, data); err != nil {
				return nil, err
			}
		}
		m := &store.Mail{
			ID:          NewWebhookID(now),
			Kind:        store.KindWebhook,
			Event:       event,
			Chain:       webhookChain(ep.URL, userID),
			To:          []string{ep.URL},
			Text:        string(body),
			UserID:      userID,
			CreatedAt:   now,
			NextAttempt: now,
		}
		if err := s.Seal(m); err != nil {
			return nil, fmt.Errorf("webhook: %w", err)
		}
		out = append(out, m)
	}
	return out, nil
}

// userChangeEvents is the OutboxFunc of a change to a user: user.activated
// when it made a user active, then base (user.updated, password.reset,
// or none when "").
func (e *Engine) userChangeEvents(s *mailSealer, base string, now time.Time) store.OutboxFunc {
	if s == nil {
		return nil
	}
	return func(before, after *store.User) ([]*store.Mail, error) {
		var out []*store.Mail
		events := []string{}
		if before.Status != store.StatusActive && after.Status == store.StatusActive {
			events = append(events, EventUserActivated)
		}
		if base != "" {
			events = append(events, base)
		}
		for _, ev := range events {
			ms, err := e.webhookEvent(s, ev, after.ID, webhookUser(after), now)
			if err != nil {
				return nil, err
			}
			out = append(out, ms...)
		}
		return out, nil
	}
}

// webhooksQueued wakes the outbox worker after events were queued.
func (e *Engine) webhooksQueued(s *mailSealer) {
	if s != nil && e.cfg.MailQueued != nil {
		e.cfg.MailQueued()
	}
}
