package redisstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// CreateTenant implements store.Store in one round trip (createScript): the
// record, its code and VAT index entries are claimed, and the id added to
// {ns}:tenants, together or not at all.
func (s *Store) CreateTenant(ctx context.Context, t *store.Tenant) error {
	const op = "create tenant"
	body, code, err := store.PrepareTenant(op, t)
	if err != nil {
		return err
	}
	claims := []write{
		set("tenant_id", s.Key("tenant", t.ID), string(body)),
		set("tenant_code", s.Key("idx", "tenant_code", code), t.ID),
	}
	if vat := store.TenantVATKey(t); vat != "" {
		claims = append(claims, set("tenant_vat", s.Key("idx", "tenant_vat", vat), t.ID))
	}
	field, _, err := s.runCreate(ctx, op, time.Time{}, claims, []write{{"", s.Key("tenants"), "sadd", t.ID, ""}})
	if err != nil {
		return err
	}
	if field != "" {
		return &store.ConflictError{Field: field}
	}
	return nil
}

// ensureScript creates a tenant, or updates it by compare-and-set.
//
// KEYS = tenant, code index, tenants set[, VAT index]; ARGV = id, record
// to create, expected current record, record to replace it with.
//
// With no record under the id, it claims the code (and VAT) index and
// writes the record to create, as CreateTenant does. With one, whose code
// index entry points at the id, it adds the id to the set (healing a
// tenant written before the set existed) and, when the record is exactly
// the expected one, replaces it; otherwise it returns the record, for the
// caller to merge and retry with. Every check (and the type check of the
// set) runs before the first write.
//
// Reply {kind, value}: {"created", ""}, {"updated", ""},
// {"conflict", field} or {"current", record}.
var ensureScript = redis.NewScript(`#!lua
local t = redis.call('TYPE', KEYS[3])['ok']
if t ~= 'none' and t ~= 'set' then
  return redis.error_reply('WRONGTYPE ' .. KEYS[3] .. ' is a ' .. t .. ', not a set')
end
local cur = redis.call('GET', KEYS[1])
local owner = redis.call('GET', KEYS[2])
if cur then
  if owner ~= ARGV[1] then
    return {'conflict', 'tenant_id'}
  end
  redis.call('SADD', KEYS[3], ARGV[1])
  if cur ~= ARGV[3] then
    return {'current', cur}
  end
  redis.call('SET', KEYS[1], ARGV[4])
  return {'updated', ''}
end
if owner then
  return {'conflict', 'tenant_code'}
end
if KEYS[4] and redis.call('EXISTS', KEYS[4]) == 1 then
  return {'conflict', 'tenant_vat'}
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[1])
if KEYS[4] then
  redis.call('SET', KEYS[4], ARGV[1])
end
redis.call('SADD', KEYS[3], ARGV[1])
return {'created', ''}
`)

// ensureAttempts bounds EnsureTenant's compare-and-set retries. A caller
// loses a round only to another caller's successful write, and each caller
// writes at most once, so with fewer than ensureAttempts callers changing
// one tenant at once every one of them lands. (Instances started with one
// config contend far less: after the first write, the others' merges find
// nothing to change.)
const ensureAttempts = 64

// EnsureTenant implements store.Store with ensureScript: creating the
// tenant, or finding it unchanged by the redeclaration, is one round trip;
// a redeclaration that changes it takes a second (the record is merged
// here, with store.MergeTenant, and written only if it is still the one
// merged, else merged again, at most ensureAttempts times). Every write is
// atomic, so concurrent EnsureTenant calls of one tenant all land.
func (s *Store) EnsureTenant(ctx context.Context, t *store.Tenant) error {
	const op = "ensure tenant"
	body, code, err := store.PrepareTenant(op, t)
	if err != nil {
		return err
	}
	keys := []string{s.Key("tenant", t.ID), s.Key("idx", "tenant_code", code), s.Key("tenants")}
	if vat := store.TenantVATKey(t); vat != "" {
		keys = append(keys, s.Key("idx", "tenant_vat", vat))
	}
	var expect, merged string
	for range ensureAttempts {
		reply, err := ensureScript.Run(ctx, s.c, keys, t.ID, string(body), expect, merged).StringSlice()
		if err != nil {
			return store.Unavailable(op, err)
		}
		if len(reply) != 2 {
			return store.Unavailable(op, fmt.Errorf("unexpected script reply %q", reply))
		}
		switch kind, v := reply[0], reply[1]; kind {
		case "created", "updated":
			return nil
		case "conflict":
			return &store.ConflictError{Field: v}
		case "current":
			var cur store.Tenant
			if err := json.Unmarshal([]byte(v), &cur); err != nil {
				return fmt.Errorf("%s: decode %s: %w: %w", op, keys[0], errDecode, err)
			}
			if !store.MergeTenant(&cur, t) {
				return nil
			}
			b, err := json.Marshal(&cur)
			if err != nil {
				return fmt.Errorf("%s: encode tenant: %w", op, err)
			}
			expect, merged = v, string(b)
		default:
			return store.Unavailable(op, fmt.Errorf("unexpected script reply %q", reply))
		}
	}
	return store.Unavailable(op, fmt.Errorf("tenant %s: still contended after %d attempts", t.ID, ensureAttempts))
}

// TenantIDByCode implements store.Store.
func (s *Store) TenantIDByCode(ctx context.Context, code string) (string, error) {
	key := store.TenantCodeKey(code)
	if key == "" {
		return "", store.ErrNotFound
	}
	return s.getString(ctx, "tenant by code", s.Key("idx", "tenant_code", key))
}

// listTenantsScript returns the records of every id in the tenants set,
// skipping ids whose record is gone. The tenant keys are built from
// ARGV[1]: they share the {ns} hash tag, hence the slot, with KEYS[1].
//
// KEYS[1] = tenants set; ARGV[1] = tenant key prefix.
var listTenantsScript = redis.NewScript(`#!lua flags=no-writes
local ids = redis.call('SMEMBERS', KEYS[1])
local out = {}
for _, id in ipairs(ids) do
  local body = redis.call('GET', ARGV[1] .. id)
  if body then
    out[#out + 1] = body
  end
end
return out
`)

// ListTenants implements store.Store in one round trip (listTenantsScript).
// It lists the tenants in {ns}:tenants: every tenant created or ensured by
// CreateTenant, EnsureTenant or CreateUser since the set exists (a tenant
// written before is listed once EnsureTenant has met it).
func (s *Store) ListTenants(ctx context.Context) ([]*store.Tenant, error) {
	const op = "list tenants"
	bodies, err := listTenantsScript.Run(ctx, s.c, []string{s.Key("tenants")}, s.Key("tenant")+":").StringSlice()
	if err != nil {
		return nil, store.Unavailable(op, err)
	}
	out := make([]*store.Tenant, 0, len(bodies))
	for _, b := range bodies {
		var t store.Tenant
		if err := json.Unmarshal([]byte(b), &t); err != nil {
			return nil, fmt.Errorf("%s: decode tenant: %w: %w", op, errDecode, err)
		}
		out = append(out, &t)
	}
	store.SortTenants(out)
	return out, nil
}
