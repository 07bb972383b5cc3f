package engine

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// PermManageUsers lets an admin create users and tenants (soajs addUser,
// saymon signup, indiqus createNewUser).
const PermManageUsers = "manage-users"

// AdminPermissions are the permissions the plugin's own admin routes
// require. They are held by configured admins, or by a user the operator
// granted one explicitly (store.User.AdminPermissions); never by a user
// through default_permissions or registration. Contracts name their admin
// permission from this list, so a new one is added here.
var AdminPermissions = []string{PermManageUsers}

// IsAdminPermission reports whether perm grants an admin route: one of
// AdminPermissions, or PermissionAll.
func IsAdminPermission(perm string) bool {
	return perm == PermissionAll || slices.Contains(AdminPermissions, perm)
}

// CheckDefaultPermissions refuses permissions that would make every new
// user an admin: "*" and the plugin's admin permissions. Handlers call it
// at provision, so the mistake stops the config from loading.
func CheckDefaultPermissions(perms []string) error {
	for _, p := range perms {
		switch {
		case p == PermissionAll:
			return fmt.Errorf("default_permissions: %q grants every permission, including the admin ones (%s), to every new user; list the permissions users need instead", p, strings.Join(AdminPermissions, ", "))
		case IsAdminPermission(p):
			return fmt.Errorf("default_permissions: %q is an admin permission and would make every new user an admin; remove it (admins are declared in the global register block: admin <login> <hash> %s)", p, p)
		}
	}
	return nil
}

// RequireAdmin returns nil when p may call an admin route that needs perm:
// a configured admin holding perm (HTTP Basic or an admin token, whose
// permissions come from the current config), or an active user the
// operator explicitly granted perm (store.User.AdminPermissions, read
// from the store, so a withdrawn grant holds within the user cache's
// second). A user's ordinary permissions never count, whatever they
// hold: they come from default_permissions and registration, which anyone
// who can sign up controls. Else ErrForbidden.
func (e *Engine) RequireAdmin(ctx context.Context, p *Principal, perm string) error {
	if p == nil {
		return ErrUnauthenticated
	}
	switch p.Kind {
	case KindAdmin:
		if p.Has(perm) {
			return nil
		}
	case KindUser:
		u, err := e.recentUser(ctx, p.ID)
		if errors.Is(err, store.ErrNotFound) {
			// A valid token for a user that no longer exists.
			return ErrUnauthenticated
		}
		if err != nil {
			return err
		}
		// Grants are exact names: "*" in a grant is not every permission,
		// so widening what the admin API set takes another explicit act.
		if u.Status == store.StatusActive && slices.Contains(u.AdminPermissions, perm) {
			return nil
		}
	}
	return fmt.Errorf("%w: needs an admin with %q", ErrForbidden, perm)
}

// recentUser reads a user record through the one-second user cache.
func (e *Engine) recentUser(ctx context.Context, id string) (*store.User, error) {
	if u, ok := e.recent.get(id, e.now()); ok {
		return u, nil
	}
	u, err := e.cfg.Store.GetUser(ctx, id)
	if err != nil {
		return nil, err
	}
	e.recent.put(id, u, e.now())
	return u, nil
}

// credentialFingerprint binds an admin token to the configured hash it was
// issued against, so changing an admin's hash retires their tokens at once.
// It is a truncated SHA-256 of the hash under a domain prefix: the token is
// readable by whoever holds it, and the hash (with its salt) must not be;
// without the salt the fingerprint gives no way to test passwords.
func credentialFingerprint(hash string) string {
	sum := sha256.Sum256([]byte("caddyregister admin credential\x00" + hash))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}
