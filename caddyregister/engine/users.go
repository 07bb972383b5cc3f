package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/caddyregister/caddyregister/caddyregister/password"
	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// User management: what the admin API (and the account API's password and
// erasure routes) call. No HTTP here; the routes come with the account
// contract.

// Limits on what UpdateUser accepts.
const (
	// MaxPermissions bounds a user's permission list.
	MaxPermissions = 100
	// MaxPermissionLen bounds one permission name (bytes).
	MaxPermissionLen = 128
	// maxEmailPrefix bounds ListUsers' e-mail prefix (bytes, as an
	// address: RFC 5321's 254).
	maxEmailPrefix = 254
)

// UserQuery selects a page of users (ListUsers). Empty fields select all.
type UserQuery struct {
	// Status is "pending", "active" or "inactive".
	Status string
	// TenantID selects a tenant's users.
	TenantID string
	// EmailPrefix selects users whose e-mail starts with it, compared as
	// e-mails are (case-insensitively; see store.EmailKey).
	EmailPrefix string
	// Limit is the page size, 1..store.MaxUserPage; 0 takes
	// store.DefaultUserPage.
	Limit int
	// Cursor is the previous page's Next; "" starts from the oldest user.
	Cursor string
}

// UserUpdate is one UpdateUser change; nil fields stay as they are.
type UserUpdate struct {
	// Status is "active" or "inactive": activating a pending user,
	// disabling one, or enabling a disabled one. Nothing goes back to
	// pending.
	Status *string
	// Permissions replace the user's ordinary permissions. "*" and the
	// admin permissions (AdminPermissions) are refused here: an ordinary
	// permission must never open an admin route.
	Permissions *[]string
	// AdminPermissions replace the user's explicit admin grants; each must
	// be one of AdminPermissions ("*" is refused: widening a grant takes
	// naming it).
	AdminPermissions *[]string
	// Password, when set, is checked against PasswordPolicy (with the
	// user's e-mail and login as identifiers), hashed and stored.
	Password       *string
	PasswordPolicy password.Policy
	// KeepSession is the session a password change keeps (the one that
	// made it); every other session of the user is revoked.
	KeepSession string
}

// GetUser returns the user with id, read from the store (not the user
// cache: an admin reads what is stored). A malformed id is
// store.ErrNotFound without a store round trip.
func (e *Engine) GetUser(ctx context.Context, id string) (*store.User, error) {
	if !store.IsID(id) {
		return nil, store.ErrNotFound
	}
	return e.cfg.Store.GetUser(ctx, id)
}

// ListUsers returns one page of users in a stable order (creation time,
// then id) and the cursor of the next (store.UserPage). A page may hold
// fewer users than the limit, even none, with a cursor still: the store
// examines at most store.UserScanBudget users per call, however few match
// the filter. Bad input is a *ValidationError naming the field (status,
// tenant, email, limit, cursor).
func (e *Engine) ListUsers(ctx context.Context, q UserQuery) (*store.UserPage, error) {
	var v ValidationError
	f := store.UserFilter{Status: store.Status(q.Status), TenantID: q.TenantID, Limit: q.Limit, Cursor: q.Cursor}
	switch f.Status {
	case "", store.StatusPending, store.StatusActive, store.StatusInactive:
	default:
		v.Add("status", "enum", "must be pending, active or inactive")
	}
	if q.TenantID != "" && !store.IsID(q.TenantID) {
		v.Add("tenant", "format", "must be a tenant id (24 hexadecimal digits)")
	}
	if q.EmailPrefix != "" {
		if len(q.EmailPrefix) > maxEmailPrefix || !utf8.ValidString(q.EmailPrefix) {
			v.Add("email", "format", fmt.Sprintf("must be valid UTF-8 of at most %d bytes", maxEmailPrefix))
		} else {
			// The prefix of a key is the key of the prefix for what
			// people type (ASCII, precomposed letters); see README.
			f.EmailPrefix = store.EmailKey(q.EmailPrefix)
		}
	}
	if q.Limit < 0 || q.Limit > store.MaxUserPage {
		v.Add("limit", "range", fmt.Sprintf("must be between 1 and %d", store.MaxUserPage))
	}
	if _, _, err := store.ParseUserCursor(q.Cursor); err != nil {
		v.Add("cursor", "format", "is not a cursor this API returned")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	return e.cfg.Store.ListUsers(ctx, f)
}

// UpdateUser applies u to the user with id in one atomic store step and
// returns the new record. Activation clears the pending expiry. A disable
// revokes every session of the user; a password change every session but
// u.KeepSession. Either way, and whatever else changed, this instance's
// user cache forgets the user at once (other instances within its
// second). An unknown user is store.ErrNotFound; bad input a
// *ValidationError naming the field. When the change is stored but the
// revocation fails, the new record comes back with the error: a disabled
// user's sessions still end at their next refresh (which re-reads the
// user), but after a password change the caller must retry
// RevokeUserSessions (or report the failure).
func (e *Engine) UpdateUser(ctx context.Context, id string, u UserUpdate) (*store.User, error) {
	if !store.IsID(id) {
		return nil, store.ErrNotFound
	}
	patch := store.UserPatch{}
	var v ValidationError
	if u.Status != nil {
		switch st := store.Status(*u.Status); st {
		case store.StatusActive, store.StatusInactive:
			patch.Status = &st
		default:
			v.Add("status", "enum", "must be active or inactive")
		}
	}
	if u.Permissions != nil {
		perms, f := checkPermissions("permissions", *u.Permissions, func(p string) string {
			if IsAdminPermission(p) {
				return fmt.Sprintf("%q is an admin permission: grant it in admin_permissions", p)
			}
			return ""
		})
		if f != nil {
			v.Fields = append(v.Fields, f)
		}
		patch.Permissions = &perms
	}
	if u.AdminPermissions != nil {
		perms, f := checkPermissions("admin_permissions", *u.AdminPermissions, func(p string) string {
			if !slices.Contains(AdminPermissions, p) {
				return fmt.Sprintf("%q is not an admin permission (%s)", p, strings.Join(AdminPermissions, ", "))
			}
			return ""
		})
		if f != nil {
			v.Fields = append(v.Fields, f)
		}
		patch.AdminPermissions = &perms
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	if u.Password != nil {
		// The policy compares the password with the user's identifiers,
		// so the user is read first; e-mail and login never change, so
		// the read cannot go stale.
		cur, err := e.cfg.Store.GetUser(ctx, id)
		if err != nil {
			return nil, err
		}
		if f := passwordField(u.PasswordPolicy.ForHasher(e.cfg.Hasher).Check(*u.Password, identifiers(cur)...)); f != nil {
			return nil, &ValidationError{Fields: []*FieldError{f}}
		}
		hash, err := e.cfg.Pool.Hash(ctx, e.cfg.Hasher, []byte(*u.Password))
		if err != nil {
			return nil, err
		}
		patch.PasswordHash = &hash
	}
	patch.Now = e.now().UTC()
	ws, err := e.webhookSealer(ctx, EventUserUpdated, EventUserActivated)
	if err != nil {
		return nil, err
	}
	patch.Outbox = e.userChangeEvents(ws, EventUserUpdated, patch.Now)
	out, err := e.cfg.Store.UpdateUser(ctx, id, patch)
	e.recent.forget(id)
	if err != nil {
		return nil, err
	}
	e.webhooksQueued(ws)
	revoke, keep := false, ""
	switch {
	case u.Status != nil && out.Status == store.StatusInactive:
		revoke = true
	case u.Password != nil:
		revoke, keep = true, u.KeepSession
	}
	if revoke {
		if _, err := e.RevokeUserSessions(ctx, id, keep); err != nil {
			return out, fmt.Errorf("update user: revoke sessions: %w", err)
		}
	}
	e.log.Info("user updated", zap.String("user_id", id), zap.String("status", string(out.Status)),
		zap.Bool("password_changed", u.Password != nil), zap.Bool("sessions_revoked", revoke))
	return out, nil
}

// DeleteUser erases the user with id (store.Users.DeleteUser: record,
// index entries, link tokens, queued and parked mails, sessions and
// refresh tokens, in one atomic step; tenants stay). The user's sessions
// are dead at once on this instance and, through the revocation feed,
// within the revocation bound on the others. An unknown user is
// store.ErrNotFound.
func (e *Engine) DeleteUser(ctx context.Context, id string) error {
	if !store.IsID(id) {
		return store.ErrNotFound
	}
	ws, err := e.webhookSealer(ctx, EventUserDeleted)
	if err != nil {
		return err
	}
	// Written in the erasure's step, behind the user's queued events; it
	// carries the id only: the rest is what was erased.
	now := e.now().UTC()
	deleted, err := e.webhookEvent(ws, EventUserDeleted, id, struct {
		ID string `json:"id"`
	}{id}, now)
	if err != nil {
		return err
	}
	_, sids, err := e.cfg.Store.DeleteUser(ctx, id, deleted...)
	e.recent.forget(id)
	if err == nil {
		e.webhooksQueued(ws)
	}
	if len(sids) > 0 {
		e.sessions.kill(sids...)
	}
	// A failed publication leaves the user erased (see Logout).
	if err := e.unpublished("delete user", err); err != nil {
		return err
	}
	e.log.Info("user erased", zap.String("user_id", id), zap.Int("sessions_ended", len(sids)))
	return nil
}

// backfillTimeout bounds the user index backfill. It runs inside Start,
// whose own deadline is short, but only until it completes once per store
// (then it is one read); a large store's first start after the upgrade
// takes that long.
const backfillTimeout = 5 * time.Minute

// BackfillUserIndex adds users written before the ordered user index
// existed to it (once per store; see store.Users). Start runs it.
func (e *Engine) BackfillUserIndex(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), backfillTimeout)
	defer cancel()
	n, err := e.cfg.Store.BackfillUserIndex(ctx)
	if err != nil {
		return fmt.Errorf("user index backfill: %w", err)
	}
	if n > 0 {
		e.log.Info("user index backfilled", zap.Int("users", n))
	}
	return nil
}

// identifiers are what a password may not equal: the e-mail and login.
func identifiers(u *store.User) []string {
	ids := []string{u.Email}
	if u.Login != "" {
		ids = append(ids, u.Login)
	}
	return ids
}

// checkPermissions validates a permission list for field: each a
// non-empty printable name without spaces, at most MaxPermissionLen
// bytes, not refused by deny (which returns why), at most MaxPermissions
// of them. Duplicates are dropped, order kept.
func checkPermissions(field string, perms []string, deny func(string) string) ([]string, *FieldError) {
	if len(perms) > MaxPermissions {
		return nil, &FieldError{Field: field, Rule: "max_items", Message: fmt.Sprintf("at most %d permissions", MaxPermissions)}
	}
	out := make([]string, 0, len(perms))
	for _, p := range perms {
		switch {
		case p == "" || len(p) > MaxPermissionLen || !utf8.ValidString(p) || strings.ContainsFunc(p, func(r rune) bool {
			return unicode.IsSpace(r) || !unicode.IsPrint(r)
		}):
			return nil, &FieldError{Field: field, Rule: "format", Message: fmt.Sprintf("each permission is 1 to %d printable characters without spaces", MaxPermissionLen)}
		case p == PermissionAll && field == "permissions":
			return nil, &FieldError{Field: field, Rule: "admin", Message: fmt.Sprintf("%q grants every permission, including the admin ones", p)}
		}
		if why := deny(p); why != "" {
			rule := "admin"
			if field == "admin_permissions" {
				rule = "enum"
			}
			return nil, &FieldError{Field: field, Rule: rule, Message: why}
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out, nil
}
