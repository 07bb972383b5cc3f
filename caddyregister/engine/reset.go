package engine

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddyregister/caddyregister/caddyregister/mail"
	"github.com/caddyregister/caddyregister/caddyregister/password"
	"github.com/caddyregister/caddyregister/caddyregister/ratelimit"
	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// Password reset, as the OWASP Forgot Password cheat sheet has it: the
// same answer whether or not the account exists, rate limits per account
// and per client, and a single-use, short-lived link whose token is kept
// only hashed. ForgotPassword mails the link; ResetPassword uses it.

// PurposeResetPassword is the purpose of password reset tokens (and of
// the mails carrying them, store.Mail.Purpose).
const PurposeResetPassword = "reset-password"

// MailPasswordChanged is the store.Mail.Purpose of the notice that a
// password was changed: a kind of its own, so a later reset link does
// not drop it from the outbox.
const MailPasswordChanged = "password-changed"

// ResetTokenTTL is how long a password reset link works.
const ResetTokenTTL = time.Hour

// Default limits of ForgotPassword: per account (e-mail address, known or
// not) and per client network, as ResendActivation's.
var (
	ForgotAccountLimit = ratelimit.Limit{Rate: 3, Period: time.Hour, Burst: 3}
	ForgotClientLimit  = ratelimit.Limit{Rate: 10, Period: time.Hour, Burst: 10}
)

// ForgotPassword mails a password reset link to the account with e-mail
// address email if it is active and has a password, for POST
// /password/forgot. linkBase is the page that takes the token (say
// https://host/account/password/reset); the mail's link is
// linkBase?token=<token> (&token= when linkBase has a query already).
//
// As ResendActivation, the answer never tells whether such an account
// exists: nil means "accepted", and the lookup, the mail and the store
// write run after the call returns. Errors are only a malformed address
// (*ValidationError), a bad linkBase (the caller's mistake), a rate limit
// (*RateLimitedError, charged per address, known or not, and per client
// network, in one step) and the limiter's store being down.
//
// The link works once, for ResetTokenTTL; a new one replaces the user's
// earlier reset links and drops their undelivered mails
// (store.Links.ReissueLink with Purpose), so one reset link is live at a
// time.
func (e *Engine) ForgotPassword(ctx context.Context, email, clientIP, linkBase string) error {
	link, err := resetLink(linkBase)
	if err != nil {
		return err
	}
	return e.mailOnRequest(ctx, email, clientIP, "forgot", "password_forgot",
		orLimit(e.cfg.ForgotAccountLimit, ForgotAccountLimit), orLimit(e.cfg.ForgotClientLimit, ForgotClientLimit),
		"password reset link failed", func(ctx context.Context, key string) error { return e.mailResetLink(ctx, key, link) })
}

// resetLink checks linkBase and returns the link builder.
func resetLink(linkBase string) (func(token string) string, error) {
	u, err := url.Parse(linkBase)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Fragment != "" {
		return nil, fmt.Errorf("forgot password: link base %q is not an absolute URL without fragment", linkBase)
	}
	sep := "?"
	if strings.Contains(linkBase, "?") {
		sep = "&"
	}
	// The tokens are base64url: nothing to escape.
	return func(tok string) string { return linkBase + sep + "token=" + tok }, nil
}

// mailResetLink does ForgotPassword's work for the e-mail key. An address
// no account holds, or whose account cannot sign in with a password, is
// not an error: it is logged at Debug.
func (e *Engine) mailResetLink(ctx context.Context, emailKey string, link func(string) string) error {
	quiet := func(why string) error {
		e.log.Debug("password reset: nothing sent", zap.String("reason", why))
		return nil
	}
	u, err := e.userByEmailKey(ctx, emailKey)
	if err != nil {
		return err
	}
	if u == nil {
		return quiet("no account")
	}
	if u.Status != store.StatusActive || u.PasswordHash == "" {
		return quiet("not an active account with a password")
	}
	sealer, err := e.MailSealer(ctx)
	if err != nil {
		return err
	}
	tpl := e.cfg.PasswordResetMail
	if tpl == nil {
		tpl = mail.PasswordResetTemplate()
	}
	now := e.now().UTC()
	m, tok, _, err := e.composeMail(u, &MailSpec{Template: tpl, Link: link, Purpose: PurposeResetPassword, TTL: ResetTokenTTL}, sealer, now)
	if err != nil {
		return err
	}
	if _, err := e.cfg.Store.ReissueLink(ctx, store.LinkReissue{UserID: u.ID, Token: tok, Mail: m, Now: now, Purpose: PurposeResetPassword}); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return quiet("disabled or erased meanwhile")
		}
		return err
	}
	if e.cfg.MailQueued != nil {
		e.cfg.MailQueued()
	}
	e.log.Info("password reset link mailed", zap.String("user_id", u.ID))
	return nil
}

// ResetPassword uses a password reset token (ForgotPassword's link) to
// set the user's password, for POST /password/reset. An unknown, used or
// expired token, or one of a disabled account, is ErrTokenInvalid; a
// password policy refuses with a *ValidationError. Either way nothing is
// written, the token stays as it was, and no hash is spent: the token is
// looked up, and the password checked against the user's e-mail and
// login, before hashing (as SetPassword does). A zero policy is
// password.NIST(); the password may never equal the user's e-mail or
// login.
//
// The new password is saved in the same atomic step that spends the
// token (store.UseToken). Then every session of the user is revoked (no
// exception: no automatic login either), the account's lockout failures
// are forgotten (its owner proved control of the mailbox), and a notice
// "your password was changed" is queued with the user's other reset
// links revoked (store.Links.ReissueLink with Purpose, no token). Those
// follow the password change rather than share its step, which UseToken
// cannot extend: a failed revocation is returned (the password is set and
// the token spent; the caller answers 503 and the user's sessions die at
// their next refresh only if retried, so the error must not be dropped);
// a failed notice or lockout reset is logged only.
func (e *Engine) ResetPassword(ctx context.Context, token, newPassword string, policy password.Policy) error {
	if policy == (password.Policy{}) {
		policy = password.NIST()
	}
	policy.NotEqualIdentifiers = true
	policy = policy.ForHasher(e.cfg.Hasher)
	check := func(identifiers ...string) error {
		if f := passwordField(policy.Check(newPassword, identifiers...)); f != nil {
			return &ValidationError{Fields: []*FieldError{f}}
		}
		return nil
	}
	if err := check(); err != nil {
		return err
	}
	use := func(apply func(u *store.User)) (*store.User, error) {
		u, err := e.useToken(ctx, token, PurposeResetPassword, false, func(u *store.User) error {
			if u.Status != store.StatusActive {
				return ErrTokenInvalid
			}
			if err := check(identifiers(u)...); err != nil {
				return err
			}
			if apply == nil {
				return errTokenUsable
			}
			apply(u)
			return nil
		})
		if errors.Is(err, ErrTokenUsed) {
			return nil, ErrTokenInvalid // single use: a replay is as good as unknown
		}
		return u, err
	}
	// First pass: read only (see SetPassword).
	if _, err := use(nil); !errors.Is(err, errTokenUsable) {
		return err
	}
	hash, err := e.cfg.Pool.Hash(ctx, e.cfg.Hasher, []byte(newPassword))
	if err != nil {
		return err
	}
	u, err := use(func(u *store.User) { u.PasswordHash = hash })
	if err != nil {
		return err
	}
	after := context.WithoutCancel(ctx)
	if _, err := e.RevokeUserSessions(after, u.ID, ""); err != nil {
		return fmt.Errorf("reset password: revoke sessions: %w", err)
	}
	if lim := e.cfg.Limiter; lim != nil {
		_, acctKey, _ := e.lockKeys(userAccount(u.ID), "")
		if err := lim.Forget(after, acctKey); err != nil {
			e.log.Warn("password reset: forgetting lockout failures", zap.String("user_id", u.ID), zap.Error(err))
		}
	}
	if err := e.mailPasswordChanged(after, u); err != nil {
		e.log.Error("password reset: change notice not queued", zap.String("user_id", u.ID), zap.Error(err))
	}
	e.log.Info("password reset", zap.String("user_id", u.ID))
	return nil
}

// mailPasswordChanged queues the notice that u's password changed and
// revokes u's other reset links, in one store step.
func (e *Engine) mailPasswordChanged(ctx context.Context, u *store.User) error {
	tpl := e.cfg.PasswordChangedMail
	if tpl == nil {
		tpl = mail.PasswordChangedTemplate()
	}
	now := e.now().UTC()
	shown := *u
	shown.Name, shown.FirstName, shown.LastName = mail.Unlinkable(u.Name), mail.Unlinkable(u.FirstName), mail.Unlinkable(u.LastName)
	subject, text, html, err := tpl.Render(map[string]any{"User": &shown, "When": now})
	if err != nil {
		return fmt.Errorf("render mail: %w", err)
	}
	m := &store.Mail{
		ID: store.NewID(now), To: []string{u.Email}, Subject: subject, Text: text, HTML: html,
		Contract: u.Contract, UserID: u.ID, CreatedAt: now, NextAttempt: now, Purpose: MailPasswordChanged,
	}
	sealer, err := e.MailSealer(ctx)
	if err != nil {
		return err
	}
	if sealer != nil {
		if err := sealer.Seal(m); err != nil {
			return err
		}
	}
	if _, err := e.cfg.Store.ReissueLink(ctx, store.LinkReissue{UserID: u.ID, Mail: m, Now: now, Purpose: PurposeResetPassword}); err != nil {
		return err
	}
	if e.cfg.MailQueued != nil {
		e.cfg.MailQueued()
	}
	return nil
}
