package engine

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"

	"go.uber.org/zap"

	"github.com/caddyregister/caddyregister/caddyregister/password"
	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// The account API's credential steps: a login that opens a session, and
// the checks of the current password that a password change and an
// erasure need. Each verifies through the account lockout (checkPassword),
// as Login does, so a stolen access token cannot be used to guess the
// password faster than a login could.

// LoginSession checks credentials as Login does (same flood guard, same
// lockout, same cost for unknown accounts; ErrNotActivated and
// ErrAccountDisabled only after the password verified) and opens a
// refreshable session for the user (StartSession). A configured admin
// gets an admin access token and no session (Refresh and Session are
// empty; the admin logs in again when it expires).
func (e *Engine) LoginSession(ctx context.Context, clientIP, userAgent, identifier, pass string, lim SessionLimits) (*SessionTokens, error) {
	return e.login(ctx, clientIP, userAgent, identifier, pass, &lim)
}

// CheckUserPassword verifies pass as the password of the user with id,
// through the account lockout (a wrong one counts a failure against the
// account; a locked account is refused without a hash). A wrong password
// and an unknown user are both ErrUnauthenticated.
func (e *Engine) CheckUserPassword(ctx context.Context, clientIP, id, pass string) error {
	if !store.IsID(id) || pass == "" {
		return ErrUnauthenticated
	}
	if err := e.Allow(ctx, "login-ip", e.Network(clientIP), e.cfg.AdminLoginLimit); err != nil {
		return err
	}
	u, err := e.cfg.Store.GetUser(ctx, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return e.checkPassword(ctx, userAccount(id), clientIP, e.userPassword(ctx, u, pass))
}

// ChangePassword sets a user's new password after verifying the current
// one (CheckUserPassword), under policy, and revokes every other session
// of the user (UpdateUser with KeepSession: the session that asked stays).
// A wrong current password is ErrUnauthenticated; a new one the policy
// refuses a *ValidationError on "new_password"; nothing changes then.
func (e *Engine) ChangePassword(ctx context.Context, clientIP string, p *Principal, current, next string, policy password.Policy) error {
	if p == nil || p.Kind != KindUser {
		return fmt.Errorf("%w: only users have a password to change", ErrForbidden)
	}
	if err := e.CheckUserPassword(ctx, clientIP, p.ID, current); err != nil {
		return err
	}
	_, err := e.UpdateUser(ctx, p.ID, UserUpdate{Password: &next, PasswordPolicy: policy, KeepSession: p.SID})
	var v *ValidationError
	if errors.As(err, &v) {
		for _, f := range v.Fields {
			if f.Field == "password" {
				f.Field = "new_password"
			}
		}
	}
	if errors.Is(err, store.ErrNotFound) {
		return ErrUnauthenticated // erased meanwhile
	}
	return err
}

// DeleteAccount erases the user p after verifying pass
// (CheckUserPassword), as DeleteUser does for an admin.
func (e *Engine) DeleteAccount(ctx context.Context, clientIP string, p *Principal, pass string) error {
	if p == nil || p.Kind != KindUser {
		return fmt.Errorf("%w: only users can erase their account", ErrForbidden)
	}
	if err := e.CheckUserPassword(ctx, clientIP, p.ID, pass); err != nil {
		return err
	}
	err := e.DeleteUser(ctx, p.ID)
	if errors.Is(err, store.ErrNotFound) {
		return ErrUnauthenticated
	}
	if err == nil {
		e.log.Info("account erased by its user", zap.String("user_id", p.ID))
	}
	return err
}

// LogoutRefresh ends the session a refresh token belongs to, for a client
// that holds no live access token. Only the session's current token
// counts: the user id and sid in front of it are no secret, so anything
// else (a spent token, a forged one) is ErrUnauthenticated and ends
// nothing.
func (e *Engine) LogoutRefresh(ctx context.Context, refresh string) error {
	userID, sid, ok := parseRefreshToken(refresh)
	if !ok {
		return ErrUnauthenticated
	}
	sess, err := e.cfg.Store.GetSession(ctx, userID, sid)
	if errors.Is(err, store.ErrNotFound) {
		return ErrUnauthenticated
	}
	if err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(sess.RefreshHash), []byte(hashRefresh(refresh))) != 1 {
		return ErrUnauthenticated
	}
	err = e.Logout(ctx, userID, sid)
	if errors.Is(err, store.ErrNotFound) {
		return nil // ended meanwhile: what was asked is done
	}
	return err
}
