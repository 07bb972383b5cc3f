package caddyregister

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/ratelimit"
	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// errNotOpen is what a deferred store answers before Start opened it.
var errNotOpen = store.Unavailable("embedded store", errors.New("not open yet"))

// deferredStore stands in for the embedded store between Provision and
// Start: opening the file takes its lock, and `caddy validate` (which runs
// Provision) must not contend with a running Caddy for it.
type deferredStore struct {
	s atomic.Pointer[store.Store]
}

func (d *deferredStore) set(s store.Store) { d.s.Store(&s) }

func (d *deferredStore) get() (store.Store, error) {
	p := d.s.Load()
	if p == nil {
		return nil, errNotOpen
	}
	return *p, nil
}

func (d *deferredStore) CreateUser(ctx context.Context, n store.NewUser) error {
	s, err := d.get()
	if err != nil {
		return err
	}
	return s.CreateUser(ctx, n)
}

func (d *deferredStore) GetUser(ctx context.Context, id string) (*store.User, error) {
	s, err := d.get()
	if err != nil {
		return nil, err
	}
	return s.GetUser(ctx, id)
}

func (d *deferredStore) UserIDByEmail(ctx context.Context, k string) (string, error) {
	s, err := d.get()
	if err != nil {
		return "", err
	}
	return s.UserIDByEmail(ctx, k)
}

func (d *deferredStore) UserIDByLogin(ctx context.Context, k string) (string, error) {
	s, err := d.get()
	if err != nil {
		return "", err
	}
	return s.UserIDByLogin(ctx, k)
}

func (d *deferredStore) Taken(ctx context.Context, k store.UniqueKeys) error {
	s, err := d.get()
	if err != nil {
		return err
	}
	return s.Taken(ctx, k)
}

func (d *deferredStore) GetTenant(ctx context.Context, id string) (*store.Tenant, error) {
	s, err := d.get()
	if err != nil {
		return nil, err
	}
	return s.GetTenant(ctx, id)
}

func (d *deferredStore) TenantIDByVAT(ctx context.Context, k string) (string, error) {
	s, err := d.get()
	if err != nil {
		return "", err
	}
	return s.TenantIDByVAT(ctx, k)
}

func (d *deferredStore) CreateTenant(ctx context.Context, t *store.Tenant) error {
	s, err := d.get()
	if err != nil {
		return err
	}
	return s.CreateTenant(ctx, t)
}

func (d *deferredStore) EnsureTenant(ctx context.Context, t *store.Tenant) error {
	s, err := d.get()
	if err != nil {
		return err
	}
	return s.EnsureTenant(ctx, t)
}

func (d *deferredStore) TenantIDByCode(ctx context.Context, code string) (string, error) {
	s, err := d.get()
	if err != nil {
		return "", err
	}
	return s.TenantIDByCode(ctx, code)
}

func (d *deferredStore) ListTenants(ctx context.Context) ([]*store.Tenant, error) {
	s, err := d.get()
	if err != nil {
		return nil, err
	}
	return s.ListTenants(ctx)
}

func (d *deferredStore) LoadOrCreateSecret(ctx context.Context, name string, v []byte) ([]byte, error) {
	s, err := d.get()
	if err != nil {
		return nil, err
	}
	return s.LoadOrCreateSecret(ctx, name, v)
}

func (d *deferredStore) SwapSecret(ctx context.Context, name string, old, v []byte) (bool, error) {
	s, err := d.get()
	if err != nil {
		return false, err
	}
	return s.SwapSecret(ctx, name, old, v)
}

func (d *deferredStore) Ping(ctx context.Context) error {
	s, err := d.get()
	if err != nil {
		return err
	}
	return s.Ping(ctx)
}

func (d *deferredStore) PutChallenge(ctx context.Context, tok string, h []byte, ttl time.Duration) error {
	s, err := d.get()
	if err != nil {
		return err
	}
	return s.PutChallenge(ctx, tok, h, ttl)
}

func (d *deferredStore) TakeChallenge(ctx context.Context, tok string) ([]byte, error) {
	s, err := d.get()
	if err != nil {
		return nil, err
	}
	return s.TakeChallenge(ctx, tok)
}

func (d *deferredStore) UseToken(ctx context.Context, h string, now time.Time, mutate func(*store.User) error, outbox ...store.OutboxFunc) (*store.User, error) {
	s, err := d.get()
	if err != nil {
		return nil, err
	}
	return s.UseToken(ctx, h, now, mutate, outbox...)
}

func (d *deferredStore) ReissueLink(ctx context.Context, r store.LinkReissue) (*store.User, error) {
	s, err := d.get()
	if err != nil {
		return nil, err
	}
	return s.ReissueLink(ctx, r)
}

func (d *deferredStore) ClaimMail(ctx context.Context, now time.Time, lease time.Duration) (*store.Mail, error) {
	s, err := d.get()
	if err != nil {
		return nil, err
	}
	return s.ClaimMail(ctx, now, lease)
}

func (d *deferredStore) AckMail(ctx context.Context, id string) error {
	s, err := d.get()
	if err != nil {
		return err
	}
	return s.AckMail(ctx, id)
}

func (d *deferredStore) RetryMail(ctx context.Context, m *store.Mail) error {
	s, err := d.get()
	if err != nil {
		return err
	}
	return s.RetryMail(ctx, m)
}

func (d *deferredStore) ParkMail(ctx context.Context, m *store.Mail) error {
	s, err := d.get()
	if err != nil {
		return err
	}
	return s.ParkMail(ctx, m)
}

func (d *deferredStore) DropParkedBodies(ctx context.Context, now time.Time, limit int) (int, error) {
	s, err := d.get()
	if err != nil {
		return 0, err
	}
	return s.DropParkedBodies(ctx, now, limit)
}

func (d *deferredStore) MailCounts(ctx context.Context) (int, int, error) {
	s, err := d.get()
	if err != nil {
		return 0, 0, err
	}
	return s.MailCounts(ctx)
}

func (d *deferredStore) GetIdempotency(ctx context.Context, key string) (*store.Idempotency, error) {
	s, err := d.get()
	if err != nil {
		return nil, err
	}
	return s.GetIdempotency(ctx, key)
}

// Close does nothing: the pool owns the real store.
func (d *deferredStore) Close() error { return nil }

// deferredLimiter is the embedded mode's limiter, set in Start with the
// store it is pooled with.
type deferredLimiter struct {
	l atomic.Pointer[ratelimit.Memory]
}

func (d *deferredLimiter) Allow(ctx context.Context, key string, l ratelimit.Limit) (ratelimit.Result, error) {
	m := d.l.Load()
	if m == nil {
		return ratelimit.Result{}, errNotOpen
	}
	return m.Allow(ctx, key, l)
}

func (d *deferredLimiter) AllowAll(ctx context.Context, checks ...ratelimit.Check) (ratelimit.Result, error) {
	m := d.l.Load()
	if m == nil {
		return ratelimit.Result{}, errNotOpen
	}
	return m.AllowAll(ctx, checks...)
}

func (d *deferredLimiter) Begin(ctx context.Context, fails ...ratelimit.Failure) (time.Duration, error) {
	m := d.l.Load()
	if m == nil {
		return 0, errNotOpen
	}
	return m.Begin(ctx, fails...)
}

func (d *deferredLimiter) End(ctx context.Context, failed bool, fails ...ratelimit.Failure) (time.Duration, error) {
	m := d.l.Load()
	if m == nil {
		return 0, errNotOpen
	}
	return m.End(ctx, failed, fails...)
}

func (d *deferredLimiter) Forget(ctx context.Context, key string) error {
	m := d.l.Load()
	if m == nil {
		return errNotOpen
	}
	return m.Forget(ctx, key)
}

func (d *deferredLimiter) Remember(ctx context.Context, key string, ttl time.Duration) error {
	m := d.l.Load()
	if m == nil {
		return errNotOpen
	}
	return m.Remember(ctx, key, ttl)
}

func (d *deferredLimiter) Remembered(ctx context.Context, key string) (bool, error) {
	m := d.l.Load()
	if m == nil {
		return false, errNotOpen
	}
	return m.Remembered(ctx, key)
}

var (
	_ store.Store       = (*deferredStore)(nil)
	_ ratelimit.Limiter = (*deferredLimiter)(nil)
)
