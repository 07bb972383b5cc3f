package boltstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// tenantClaims validates t and returns what creating it claims: the
// record under its id, its code and, with a VAT key, its VAT index entry.
// A done ctx (checked after t) is ErrUnavailable.
func tenantClaims(ctx context.Context, op string, t *store.Tenant) ([]claim, error) {
	body, code, err := store.PrepareTenant(op, t)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, store.Unavailable(op, err)
	}
	tid := []byte(t.ID)
	claims := []claim{
		{"tenant_id", bucketTenants, tid, body},
		{"tenant_code", bucketTenantCode, []byte(code), tid},
	}
	if vat := store.TenantVATKey(t); vat != "" {
		claims = append(claims, claim{"tenant_vat", bucketTenantVAT, []byte(vat), tid})
	}
	return claims, nil
}

// checkClaims fails with the first claim already taken, as a
// *store.ConflictError it also stores in *conflict, so that the caller can
// tell it from a backend failure once the transaction has rolled back.
func checkClaims(tx *bolt.Tx, claims []claim, conflict **store.ConflictError) error {
	for _, c := range claims {
		b, err := bucket(tx, c.bucket)
		if err != nil {
			return err
		}
		if has(b, c.key) {
			*conflict = &store.ConflictError{Field: c.field}
			return *conflict
		}
	}
	return nil
}

// putAll writes every claim's value under its key.
func putAll(tx *bolt.Tx, claims []claim) error {
	for _, c := range claims {
		b, err := bucket(tx, c.bucket)
		if err != nil {
			return err
		}
		if err := b.Put(c.key, c.value); err != nil {
			return err
		}
	}
	return nil
}

// claimAll checks every claim (a taken one fails it as by checkClaims, and
// nothing is written), then writes them all.
func claimAll(tx *bolt.Tx, claims []claim, conflict **store.ConflictError) error {
	if err := checkClaims(tx, claims, conflict); err != nil {
		return err
	}
	return putAll(tx, claims)
}

// CreateTenant implements store.Store in one read-write transaction: the id,
// the code and the VAT key (when the tenant has one) are checked, then the
// record and its index entries written.
func (s *Store) CreateTenant(ctx context.Context, t *store.Tenant) error {
	const op = "create tenant"
	claims, err := tenantClaims(ctx, op, t)
	if err != nil {
		return err
	}
	var conflict *store.ConflictError
	err = s.db.Update(func(tx *bolt.Tx) error {
		return claimAll(tx, claims, &conflict) // a conflict rolls back
	})
	if conflict != nil {
		return conflict
	}
	if err != nil {
		return store.Unavailable(op, err)
	}
	return nil
}

// errCorrupt marks a stored record that does not decode: not a backend
// outage.
var errCorrupt = errors.New("corrupt record")

// EnsureTenant implements store.Store in one read-write transaction: a
// tenant stored under t.ID whose code is t's (the code index points at
// t.ID) is merged with t (store.MergeTenant) and rewritten when that
// changed it; an absent one is created as by CreateTenant.
func (s *Store) EnsureTenant(ctx context.Context, t *store.Tenant) error {
	const op = "ensure tenant"
	claims, err := tenantClaims(ctx, op, t)
	if err != nil {
		return err
	}
	id := []byte(t.ID)
	code := []byte(store.TenantCodeKey(t.Code))
	var conflict *store.ConflictError
	err = s.db.Update(func(tx *bolt.Tx) error {
		bs, err := buckets(tx, bucketTenants, bucketTenantCode)
		if err != nil {
			return err
		}
		tenants, codes := bs[0], bs[1]
		raw := tenants.Get(id)
		if raw == nil {
			return claimAll(tx, claims, &conflict)
		}
		if owner := codes.Get(code); owner == nil || string(owner) != t.ID {
			conflict = &store.ConflictError{Field: "tenant_id"}
			return conflict
		}
		var cur store.Tenant
		if err := json.Unmarshal(raw, &cur); err != nil {
			return fmt.Errorf("%w: tenant %s: %w", errCorrupt, t.ID, err)
		}
		if !store.MergeTenant(&cur, t) {
			return nil
		}
		b, err := json.Marshal(&cur)
		if err != nil {
			return fmt.Errorf("%w tenant: %w", errEncode, err)
		}
		return tenants.Put(id, b)
	})
	if conflict != nil {
		return conflict
	}
	return boltErr(op, err)
}

// TenantIDByCode implements store.Store.
func (s *Store) TenantIDByCode(ctx context.Context, code string) (string, error) {
	return s.getString(ctx, "tenant by code", bucketTenantCode, store.TenantCodeKey(code))
}

// ListTenants implements store.Store by walking the tenants bucket in one
// read-only transaction.
func (s *Store) ListTenants(ctx context.Context) ([]*store.Tenant, error) {
	const op = "list tenants"
	if err := ctx.Err(); err != nil {
		return nil, store.Unavailable(op, err)
	}
	var out []*store.Tenant
	var decodeErr error
	err := s.db.View(func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketTenants)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			var t store.Tenant
			if err := json.Unmarshal(v, &t); err != nil { // copies out of the mmap
				decodeErr = fmt.Errorf("%s: decode tenant %s: %w", op, k, err)
				return decodeErr
			}
			out = append(out, &t)
			return nil
		})
	})
	if decodeErr != nil {
		return nil, decodeErr
	}
	if err != nil {
		return nil, store.Unavailable(op, err)
	}
	store.SortTenants(out)
	if out == nil {
		out = []*store.Tenant{}
	}
	return out, nil
}
