package engine

import (
	"context"
	"errors"
	"slices"

	"go.uber.org/zap"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// The before_register hook: the app sees each registration that passed
// validation, before the password is hashed, and lets it through (with
// permissions of its own, perhaps) or refuses it. The engine knows it as
// a function; the Caddy layer implements it over HTTP (package webhook).

// Proposal is the registration the hook sees: never the password.
type Proposal struct {
	Contract  string `json:"contract"`
	Email     string `json:"email"`
	Login     string `json:"login,omitempty"`
	Name      string `json:"name,omitempty"`
	FirstName string `json:"first_name,omitempty"`
	LastName  string `json:"last_name,omitempty"`
	// TenantID is the tenant the user joins; Tenant the one it founds.
	TenantID    string          `json:"tenant_id,omitempty"`
	Tenant      *ProposedTenant `json:"tenant,omitempty"`
	Status      string          `json:"status"`
	Permissions []string        `json:"permissions"`
	Attributes  store.Attrs     `json:"attributes,omitempty"`
}

// ProposedTenant is a tenant a registration founds.
type ProposedTenant struct {
	Code    string `json:"code"`
	Company string `json:"company"`
	VATID   string `json:"vat_id,omitempty"`
}

// HookVerdict is the app's answer to a Proposal.
type HookVerdict struct {
	Allowed bool
	// Permissions are added to the user's (admin permissions excepted:
	// only the operator grants those).
	Permissions []string
	// Message is the app's reason for a refusal.
	Message string
}

// BeforeRegisterFunc asks the app about p. An error means no verdict
// (timeout, 5xx, ...): WebhookConfig.AllowOnHookError decides.
type BeforeRegisterFunc func(ctx context.Context, p *Proposal) (HookVerdict, error)

// WebhookConfig configures the events sent to the app and the
// before_register hook.
type WebhookConfig struct {
	Endpoints []WebhookEndpoint
	// BeforeRegister, when set, is called by Register.
	BeforeRegister BeforeRegisterFunc
	// AllowOnHookError lets a registration through when BeforeRegister
	// gave no verdict (on_error allow); by default it is refused
	// (ErrHookUnavailable).
	AllowOnHookError bool
}

// RefusedError is a registration the app refused through before_register;
// contracts answer it with 403 (or their documented status) and Message.
type RefusedError struct {
	Message string
}

func (e *RefusedError) Error() string {
	if e.Message == "" {
		return "registration refused by the application"
	}
	return e.Message
}

// ErrHookUnavailable refuses a registration when the before_register hook
// gave no verdict and on_error is deny: contracts answer 503, retry later.
var ErrHookUnavailable = errors.New("the registration cannot be checked right now, retry later")

// beforeRegister calls the hook, if any, about u (and the tenant t it
// founds) and applies its verdict to u.
func (e *Engine) beforeRegister(ctx context.Context, u *store.User, t *store.Tenant) error {
	hook := e.cfg.Webhooks.BeforeRegister
	if hook == nil {
		return nil
	}
	p := &Proposal{
		Contract: u.Contract, Email: u.Email, Login: u.Login, Name: u.Name,
		FirstName: u.FirstName, LastName: u.LastName, TenantID: u.TenantID,
		Status: string(u.Status), Permissions: u.Permissions, Attributes: u.Attributes,
	}
	if t != nil {
		p.TenantID = ""
		p.Tenant = &ProposedTenant{Code: t.Code, Company: t.Name}
		if t.Billing != nil {
			p.Tenant.VATID = t.Billing.VATID
		}
	}
	v, err := hook(ctx, p)
	if err != nil {
		if e.cfg.Webhooks.AllowOnHookError {
			e.log.Warn("before_register hook gave no verdict; registration let through (on_error allow)",
				zap.String("contract", u.Contract), zap.Error(err))
			return nil
		}
		e.log.Warn("before_register hook gave no verdict; registration refused (on_error deny)",
			zap.String("contract", u.Contract), zap.Error(err))
		return ErrHookUnavailable
	}
	if !v.Allowed {
		return &RefusedError{Message: v.Message}
	}
	for _, perm := range v.Permissions {
		switch {
		case perm == "" || slices.Contains(u.Permissions, perm):
		case IsAdminPermission(perm):
			e.log.Warn("before_register hook granted an admin permission; ignored (only the operator grants those)",
				zap.String("permission", perm))
		default:
			u.Permissions = append(u.Permissions, perm)
		}
	}
	return nil
}
