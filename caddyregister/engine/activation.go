package engine

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddyregister/caddyregister/caddyregister/mail"
	"github.com/caddyregister/caddyregister/caddyregister/password"
	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// DefaultTokenTTL is how long an activation link stays valid.
const DefaultTokenTTL = 24 * time.Hour

// Token purposes.
const (
	PurposeActivate    = "activate"
	PurposeSetPassword = "set-password"
)

// ErrTokenInvalid means an activation token is unknown or expired.
var ErrTokenInvalid = errors.New("token is invalid or expired")

// MailSpec asks Register to send the new user a mail carrying a fresh
// single-use token.
type MailSpec struct {
	Template *mail.Template
	// Link builds the URL the mail carries from the token.
	Link func(token string) string
	// Purpose is PurposeActivate unless the contract says otherwise.
	Purpose string
	// TTL of the token; DefaultTokenTTL when zero.
	TTL time.Duration
	// Data is extra template data; Register adds User, Link, Token and
	// Expires. Its string values are taken as registrant-supplied text and
	// go through mail.Unlinkable, as do the user's names.
	Data map[string]any
	// Resender names the registered Resender (ResenderKey) that can mail
	// this link again; Register then keeps the link with a pending user
	// awaiting it (store.User.Resend). Empty: the mail cannot be resent.
	Resender string
}

// HashToken is how tokens are stored: hex SHA-256 of the purpose and the
// secret. The secrets carry 256 random bits, so a fast hash is enough (no
// guessing to slow down); the purpose in the hash keeps a token of one kind
// from being accepted as another.
func HashToken(purpose, secret string) string {
	sum := sha256.Sum256([]byte(purpose + ":" + secret))
	return hex.EncodeToString(sum[:])
}

func newSecretToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// NewUUIDv4 is a random RFC 9562 version 4 UUID (122 random bits), for
// clients that validate the version and variant.
func NewUUIDv4() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// newToken draws a token for u and returns its record and its secret.
func newToken(u *store.User, purpose string, ttl time.Duration, uuidShape bool, now time.Time) (*store.Token, string) {
	if ttl <= 0 {
		ttl = DefaultTokenTTL
	}
	if purpose == "" {
		purpose = PurposeActivate
	}
	secret := newSecretToken()
	if uuidShape {
		secret = NewUUIDv4()
	}
	return &store.Token{Hash: HashToken(purpose, secret), Purpose: purpose, UserID: u.ID, ExpiresAt: now.Add(ttl)}, secret
}

// composeMail renders spec for u and returns the outbox record, the token
// record and the token secret (which only ever travels in the mail: the
// record's body is sealed, and lives no longer than the token).
func (e *Engine) composeMail(u *store.User, spec *MailSpec, sealer *mail.Sealer, now time.Time) (*store.Mail, *store.Token, string, error) {
	ttl := spec.TTL
	if ttl <= 0 {
		ttl = DefaultTokenTTL
	}
	purpose := spec.Purpose
	if purpose == "" {
		purpose = PurposeActivate
	}
	tok, secret := newToken(u, purpose, ttl, false, now)
	data := map[string]any{}
	for k, v := range spec.Data {
		if str, ok := v.(string); ok {
			v = mail.Unlinkable(str)
		}
		data[k] = v
	}
	// The names are the registrant's words on the operator's letterhead:
	// left out where a mail client could make a link of them. The login
	// and the address are identifiers the reader needs, and are checked
	// as such at registration.
	shown := *u
	shown.Name, shown.FirstName, shown.LastName = mail.Unlinkable(u.Name), mail.Unlinkable(u.FirstName), mail.Unlinkable(u.LastName)
	data["User"] = &shown
	data["Token"] = secret
	data["Link"] = spec.Link(secret)
	data["Expires"] = tok.ExpiresAt
	subject, text, html, err := spec.Template.Render(data)
	if err != nil {
		return nil, nil, "", fmt.Errorf("render mail: %w", err)
	}
	m := &store.Mail{
		ID:          store.NewID(now),
		To:          []string{u.Email},
		Subject:     subject,
		Text:        text,
		HTML:        html,
		Contract:    u.Contract,
		UserID:      u.ID,
		CreatedAt:   now,
		NextAttempt: now,
		ExpiresAt:   tok.ExpiresAt,
		Purpose:     purpose,
	}
	if sealer != nil {
		if err := sealer.Seal(m, secret, url.QueryEscape(secret)); err != nil {
			return nil, nil, "", err
		}
	}
	return m, tok, secret, nil
}

// Activate uses an activation token: the user becomes active. A second use
// of the same token answers the same (idempotent), as long as the token has
// not expired. A disabled (inactive) user's token is invalid: an admin
// disabled the account, and a link mailed before must not undo that.
//
// An account without a password (created by an admin without one) is not
// activated by a link: ErrPasswordNotSet, and nothing changes; its owner
// activates it by setting a password (SetPassword).
func (e *Engine) Activate(ctx context.Context, secret string) (*store.User, error) {
	return e.useToken(ctx, secret, PurposeActivate, true, func(u *store.User) error {
		if u.PasswordHash == "" {
			return ErrPasswordNotSet
		}
		u.Status = store.StatusActive
		u.PendingUntil = 0
		u.Resend = nil
		return nil
	})
}

// ErrPasswordNotSet means an activation link was used for an account whose
// password its owner never set: an account becomes active only with a
// password its owner chose, through a set-password link. Contracts answer
// it like an invalid token, so the link reveals nothing more.
var ErrPasswordNotSet = fmt.Errorf("%w: the account has no password yet; set one with the set-password link", ErrTokenInvalid)

// ErrTokenUsed means a single-use token that may not be replayed (setting
// a password) was used before.
var ErrTokenUsed = errors.New("token already used")

// SetPassword uses a set-password token: the password is checked against
// policy, hashed (before the store's atomic step, which must stay cheap)
// and saved, and the user becomes active. The token works once, and not
// for a disabled (inactive) user.
func (e *Engine) SetPassword(ctx context.Context, secret, purpose, pass string, policy password.Policy) (*store.User, error) {
	policy = policy.ForHasher(e.cfg.Hasher)
	check := func(identifiers ...string) error {
		if f := passwordField(policy.Check(pass, identifiers...)); f != nil {
			return &ValidationError{Fields: []*FieldError{f}}
		}
		return nil
	}
	if err := check(); err != nil {
		return nil, err
	}
	// The identifiers are known only once the token is looked up. A
	// refusal inside the store's step writes nothing and leaves the token
	// usable, so a first pass that always refuses is a read: an unknown,
	// used or expired token, or a password equal to the user's e-mail or
	// login, is answered before a hash is spent on it.
	if _, err := e.useToken(ctx, secret, purpose, false, func(u *store.User) error {
		if err := check(u.Email, u.Login); err != nil {
			return err
		}
		return errTokenUsable
	}); !errors.Is(err, errTokenUsable) {
		return nil, err
	}
	hash, err := e.cfg.Pool.Hash(ctx, e.cfg.Hasher, []byte(pass))
	if err != nil {
		return nil, err
	}
	// Checked again: the token may have been used meanwhile.
	u, err := e.useToken(ctx, secret, purpose, false, func(u *store.User) error {
		if err := check(u.Email, u.Login); err != nil {
			return err
		}
		u.PasswordHash = hash
		u.Status = store.StatusActive
		u.PendingUntil = 0
		u.Resend = nil
		return nil
	})
	if err != nil {
		return nil, err
	}
	// A new password ends every session, as a reset does: whoever held
	// the old one (or a token issued under it) is out.
	if _, err := e.RevokeUserSessions(context.WithoutCancel(ctx), u.ID, ""); err != nil {
		return nil, fmt.Errorf("set password: revoke sessions: %w", err)
	}
	return u, nil
}

// errTokenUsable ends SetPassword's first, read-only pass over its token.
var errTokenUsable = errors.New("token usable")

func (e *Engine) useToken(ctx context.Context, secret, purpose string, idempotent bool, mutate func(*store.User) error) (*store.User, error) {
	secret = strings.TrimSpace(secret)
	if secret == "" || len(secret) > 128 {
		return nil, ErrTokenInvalid
	}
	now := e.now().UTC()
	// user.activated when the token activates the user; password.reset
	// after a reset, in the same step.
	base := ""
	if purpose == PurposeResetPassword {
		base = EventPasswordReset
	}
	ws, err := e.webhookSealer(ctx, EventUserActivated, base)
	if err != nil {
		return nil, err
	}
	var events []store.OutboxFunc
	if f := e.userChangeEvents(ws, base, now); f != nil {
		events = append(events, f)
	}
	u, err := e.cfg.Store.UseToken(ctx, HashToken(purpose, secret), now, func(u *store.User) error {
		if u.Status == store.StatusInactive {
			// Refused inside the atomic step, so it writes nothing and
			// the token stays as it was.
			return ErrTokenInvalid
		}
		u.UpdatedAt = now
		return mutate(u)
	}, events...)
	switch {
	case errors.Is(err, store.ErrTokenUsed) && u != nil && u.Status == store.StatusInactive:
		return nil, ErrTokenInvalid // used, and disabled since
	case errors.Is(err, store.ErrTokenUsed) && !idempotent:
		return nil, ErrTokenUsed
	case errors.Is(err, store.ErrTokenUsed):
		e.log.Info("token reused", zap.String("purpose", purpose), zap.String("user_id", userID(u)))
		return u, nil
	case errors.Is(err, store.ErrNotFound):
		return nil, ErrTokenInvalid
	case err != nil:
		return nil, err
	}
	e.recent.forget(userID(u))
	e.webhooksQueued(ws)
	e.log.Info("token used", zap.String("purpose", purpose), zap.String("user_id", userID(u)))
	return u, nil
}

func userID(u *store.User) string {
	if u == nil {
		return ""
	}
	return u.ID
}
