package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// ErrTenantMismatch means a tenant id and code that do not name the same
// tenant (or no tenant at all).
var ErrTenantMismatch = errors.New("tenant id and code do not match a tenant")

// ErrUnknownGroup means a group code the tenant does not have.
var ErrUnknownGroup = errors.New("unknown group")

// EnsureTenants writes the operator-declared tenants, idempotently: run at
// every start, it creates missing ones and adds declared groups to
// existing ones. A declared tenant whose id or code clashes with another
// is reported, not overwritten.
func (e *Engine) EnsureTenants(ctx context.Context) error {
	var errs []error
	for i := range e.cfg.Tenants {
		t := e.cfg.Tenants[i]
		if t.CreatedAt.IsZero() {
			t.CreatedAt = e.now().UTC()
		}
		if err := e.cfg.Store.EnsureTenant(ctx, &t); err != nil {
			errs = append(errs, fmt.Errorf("tenant %s (%s): %w", t.Code, t.ID, err))
		}
	}
	return errors.Join(errs...)
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

// CreateTenant adds a tenant (admin route).
func (e *Engine) CreateTenant(ctx context.Context, t *store.Tenant) error {
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
