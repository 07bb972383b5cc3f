package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// ErrTenantMismatch means a tenant id and code that do not name the same
// tenant (or no tenant at all).
var ErrTenantMismatch = errors.New("tenant id and code do not match a tenant")

// ErrUnknownGroup means a group code the tenant does not have.
var ErrUnknownGroup = errors.New("unknown group")

// PublicTenantCodePrefix starts the code of every tenant a public
// registration founds (noraina billing: "vat-" and the normalized VAT id).
// Tenants the operator declares or an admin creates may not use it, so a
// code the public claims can never be one the operator declares later.
const PublicTenantCodePrefix = "vat-"

// PublicTenantCode is the code of the tenant a registration founds for the
// normalized VAT id vatKey.
func PublicTenantCode(vatKey string) string { return PublicTenantCodePrefix + vatKey }

// IsPublicTenantCode reports whether code is in the public tenants'
// reserved namespace (compared as codes are, case-insensitively).
func IsPublicTenantCode(code string) bool {
	return strings.HasPrefix(store.TenantCodeKey(code), PublicTenantCodePrefix)
}

// ErrReservedTenantCode means a declared or admin-created tenant's code
// uses PublicTenantCodePrefix.
var ErrReservedTenantCode = fmt.Errorf("tenant codes starting with %q are reserved for tenants founded by public registrations (noraina billing); choose another code", PublicTenantCodePrefix)

// CheckTenantCode refuses a code for a declared or admin-created tenant
// that is in the public tenants' namespace.
func CheckTenantCode(code string) error {
	if IsPublicTenantCode(code) {
		return fmt.Errorf("tenant code %q: %w", code, ErrReservedTenantCode)
	}
	return nil
}

// EnsureTenants writes the operator-declared tenants, idempotently: run at
// every start, it creates missing ones and adds declared groups to
// existing ones. A declared tenant whose id or code clashes with another
// is reported, naming the tenant that holds it, not overwritten.
func (e *Engine) EnsureTenants(ctx context.Context) error {
	var errs []error
	for i := range e.cfg.Tenants {
		t := e.cfg.Tenants[i]
		if t.CreatedAt.IsZero() {
			t.CreatedAt = e.now().UTC()
		}
		if err := e.cfg.Store.EnsureTenant(ctx, &t); err != nil {
			errs = append(errs, fmt.Errorf("declared tenant %s (id %s): %w", t.Code, t.ID, e.explainClash(ctx, &t, err)))
		}
	}
	return errors.Join(errs...)
}

// ErrTenantClash means a declared tenant's code or id is held by another
// tenant in the store: a configuration error (not an outage), which Caddy
// reports by refusing to start.
var ErrTenantClash = errors.New("declared tenant clashes with a stored tenant")

// explainClash turns EnsureTenant's conflict on a declared tenant t into a
// message that names the tenant holding the code or id, and how it came
// to be (a public registration, with its founding user, or an admin).
// Other errors pass unchanged.
func (e *Engine) explainClash(ctx context.Context, t *store.Tenant, err error) error {
	var ce *store.ConflictError
	if !errors.As(err, &ce) {
		return err
	}
	err = fmt.Errorf("%w: %w", ErrTenantClash, err)
	var holderID string
	switch ce.Field {
	case "tenant_code":
		holderID, _ = e.cfg.Store.TenantIDByCode(ctx, t.Code)
	case "tenant_id":
		holderID = t.ID
	default:
		return err
	}
	holder, herr := e.cfg.Store.GetTenant(ctx, holderID)
	if herr != nil {
		return err
	}
	origin := "created by an admin or declared earlier"
	if holder.CreatedBy != "" {
		origin = "founded by the public registration of user " + holder.CreatedBy
	}
	if ce.Field == "tenant_code" {
		return fmt.Errorf("%w: code %q is held by tenant %s (code %q, name %q, %s, %s); change the declared code, or remove that tenant",
			err, t.Code, holder.ID, holder.Code, holder.Name, origin, holder.CreatedAt.UTC().Format(time.RFC3339))
	}
	return fmt.Errorf("%w: id %s is held by tenant with code %q (name %q, %s); declare it with that code or another id",
		err, t.ID, holder.Code, holder.Name, origin)
}

// ResolveTenant returns the tenant that id and code both name.
func (e *Engine) ResolveTenant(ctx context.Context, id, code string) (*store.Tenant, error) {
	if !store.IsID(id) || strings.TrimSpace(code) == "" {
		return nil, ErrTenantMismatch
	}
	t, err := e.cfg.Store.GetTenant(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrTenantMismatch
	}
	if err != nil {
		return nil, err
	}
	if store.TenantCodeKey(t.Code) != store.TenantCodeKey(code) {
		return nil, ErrTenantMismatch
	}
	return t, nil
}

// CheckGroups returns ErrUnknownGroup naming the first group t lacks.
func CheckGroups(t *store.Tenant, groups []string) error {
	for _, g := range groups {
		if !slices.Contains(t.Groups, g) {
			return fmt.Errorf("%w %q in tenant %s", ErrUnknownGroup, g, t.Code)
		}
	}
	return nil
}

// CreateTenant adds a tenant (admin route). A code in the public tenants'
// namespace is refused as a "code" field error (rule "reserved").
func (e *Engine) CreateTenant(ctx context.Context, t *store.Tenant) error {
	if err := CheckTenantCode(t.Code); err != nil {
		v := &ValidationError{}
		v.Add("code", "reserved", err.Error())
		return v
	}
	if t.ID == "" {
		t.ID = store.NewID(e.now())
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = e.now().UTC()
	}
	err := e.cfg.Store.CreateTenant(ctx, t)
	if err == nil {
		e.log.Info("tenant created", zap.String("tenant_id", t.ID), zap.String("code", t.Code))
	}
	return err
}

// ListTenants lists every tenant.
func (e *Engine) ListTenants(ctx context.Context) ([]*store.Tenant, error) {
	return e.cfg.Store.ListTenants(ctx)
}
