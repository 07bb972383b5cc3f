package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddyregister/caddyregister/caddyregister/password"
	"github.com/caddyregister/caddyregister/caddyregister/store"
	"github.com/caddyregister/caddyregister/caddyregister/token"
)

// NewTenant is the company a registration founds.
type NewTenant struct {
	Company       string
	VATID         string
	Address       string
	CreditBalance json.Number
}

// Registration is one request to create a user, already decoded and checked
// for wire-level rules by its contract.
type Registration struct {
	Contract  string
	ClientIP  string
	Email     string
	Login     string
	Name      string
	FirstName string
	LastName  string
	Password  string
	Policy    password.Policy
	// Status defaults to pending: a new user holds no permissions until
	// activated. A pending registration with Mail expires with its link
	// (store.User.PendingUntil): after it, a new registration of its
	// e-mail or login replaces it.
	Status      store.Status
	Permissions []string
	Tenant      *NewTenant
	Attributes  store.Attrs
	// IssueToken asks for an access token for the new user. Like every
	// token the engine issues it belongs to a session, opened in the
	// same atomic step as the user (see tokenSession), so a disable, an
	// erasure or a password reset ends it.
	IssueToken bool
	// UserAgent is stored with that session.
	UserAgent string
	// Invalid carries the contract's own wire-level field errors, so the
	// reply lists them together with the engine's; fields already reported
	// there are not checked again.
	Invalid *ValidationError
	// Captcha, when set, must verify before anything is written; it is
	// consumed whether right or wrong.
	Captcha *CaptchaAnswer
	// Mail, when set, queues a mail with a fresh token for the new user in
	// the same atomic step as the user.
	Mail *MailSpec
	// Sequence names a store-wide sequence to draw the user's number from
	// (store.SeqAttr in the user's attributes), inside the atomic create so
	// failed creates leave no gaps.
	Sequence string
	// Idempotency makes a retry of the same request replay the first
	// result instead of creating again.
	Idempotency *IdempotencySpec
	// UserToken, when set (and Mail is not), creates a single-use token
	// for the new user that Register returns instead of mailing it.
	UserToken *TokenSpec
	// TenantID joins the user to an existing tenant (checked by the
	// contract; the store checks it still exists when it writes).
	TenantID string
	// NoPassword creates the user without a password when Password is
	// empty: the user sets one later through a set-password token
	// (UserToken with PurposeSetPassword) and cannot log in before.
	NoPassword bool
	// FieldNames maps the engine's field names (FieldEmail, FieldLogin,
	// FieldName, FieldFirstName, FieldLastName; FieldCompany is spelt as
	// noraina does) to the contract's, so the
	// engine's field errors name what the client sent; a field not in the
	// map keeps the engine's name.
	FieldNames map[string]string
}

// TokenSpec asks for a single-use token.
type TokenSpec struct {
	Purpose string
	// TTL; DefaultTokenTTL when zero.
	TTL time.Duration
	// UUIDShape draws 128 random bits written as a UUID, for contracts
	// whose clients expect that shape; otherwise 256 bits, base64url.
	UUIDShape bool
}

// IdempotencySpec identifies a request for replay.
type IdempotencySpec struct {
	// Key is scoped by the contract (route, caller, header value).
	Key string
	// Fingerprint is a hash of the request body: the same key with another
	// body is refused with ErrIdempotencyMismatch.
	Fingerprint string
	// TTL is how long the key is remembered; DefaultIdempotencyTTL if 0.
	TTL time.Duration
}

// DefaultIdempotencyTTL is how long an Idempotency-Key is remembered.
const DefaultIdempotencyTTL = 24 * time.Hour

// ErrIdempotencyMismatch means an Idempotency-Key was reused with a
// different request body.
var ErrIdempotencyMismatch = errors.New("idempotency key was used with a different request")

// CaptchaAnswer is a challenge token and the user's answer.
type CaptchaAnswer struct {
	Token  string
	Answer string
}

// Registered is the outcome of a successful registration.
type Registered struct {
	User   *store.User
	Tenant *store.Tenant
	Token  string
	// UserToken is the secret of Registration.UserToken (never stored).
	UserToken string
	// Replayed is true when an idempotent retry returned the user the
	// first request created.
	Replayed bool
}

// MaxEmailLength is RFC 5321's limit on a forward path.
const MaxEmailLength = 254

// CheckEmail validates an address the way every contract needs: one plain
// address, no display name, no more than MaxEmailLength bytes.
func CheckEmail(addr string) error {
	a := strings.TrimSpace(addr)
	if a == "" {
		return errors.New("e-mail address is required")
	}
	if len(a) > MaxEmailLength {
		return fmt.Errorf("e-mail address is longer than %d characters", MaxEmailLength)
	}
	p, err := mail.ParseAddress(a)
	if err != nil || p.Name != "" || p.Address != a || !strings.Contains(a[strings.LastIndexByte(a, '@')+1:], ".") {
		return errors.New("e-mail address is not valid")
	}
	return nil
}

// Register creates a user. It runs every cheap check first (validation,
// duplicate pre-check) and hashes the password only when the registration
// can still succeed, so floods of bad or duplicate requests cost almost
// nothing.
func (e *Engine) Register(ctx context.Context, r Registration) (res *Registered, err error) {
	start := e.now()
	defer func() { e.logRegistration(r, res, err, start) }()

	if r.Idempotency != nil {
		// A retry of a request that already succeeded replays it, even
		// if validation rules changed since.
		if res, err := e.replay(ctx, r.Idempotency); res != nil || err != nil {
			return res, err
		}
	}
	var v ValidationError
	if r.Invalid != nil {
		v.Fields = append(v.Fields, r.Invalid.Fields...)
	}
	if err := CheckEmail(r.Email); err != nil && !v.Has(r.fieldName(FieldEmail)) {
		v.Add(r.fieldName(FieldEmail), "email", err.Error())
	}
	r.checkIdentifiers(&v)
	ids := []string{r.Email}
	if r.Login != "" {
		ids = append(ids, r.Login)
	}
	if v.Has("password") || (r.NoPassword && r.Password == "") {
		// Already reported by the contract, or deliberately absent.
	} else if f := passwordField(r.Policy.ForHasher(e.cfg.Hasher).Check(r.Password, ids...)); f != nil {
		v.Fields = append(v.Fields, f)
	}
	var t *store.Tenant
	now := e.now().UTC()
	if r.Tenant != nil {
		vat := store.VATKey(r.Tenant.VATID)
		if vat == "" && !v.Has("billing.vatId") {
			v.Add("billing.vatId", "required", "VAT id is required with billing")
		}
		if strings.TrimSpace(r.Tenant.Company) == "" && !v.Has(FieldCompany) {
			v.Add(FieldCompany, "required", "company is required with billing")
		}
		t = &store.Tenant{
			ID:   store.NewID(now),
			Code: PublicTenantCode(vat),
			Name: strings.TrimSpace(r.Tenant.Company),
			Billing: &store.Billing{
				Company:       strings.TrimSpace(r.Tenant.Company),
				VATID:         strings.TrimSpace(r.Tenant.VATID),
				VATKey:        vat,
				Address:       r.Tenant.Address,
				CreditBalance: r.Tenant.CreditBalance,
			},
			CreatedAt: now,
		}
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	if r.Captcha != nil {
		if err := e.VerifyChallenge(ctx, r.Captcha.Token, r.Captcha.Answer); err != nil {
			return nil, err
		}
	}

	u := &store.User{
		ID:          store.NewID(now),
		Email:       r.Email,
		EmailKey:    store.EmailKey(r.Email),
		Login:       r.Login,
		Name:        r.Name,
		FirstName:   r.FirstName,
		LastName:    r.LastName,
		Status:      r.Status,
		Permissions: r.Permissions,
		Contract:    r.Contract,
		Attributes:  r.Attributes,
		CreatedAt:   now,
		UpdatedAt:   now,
	}
	if r.Login != "" {
		u.LoginKey = store.LoginKey(r.Login)
	}
	if u.Status == "" {
		u.Status = store.StatusPending
	}
	if u.Permissions == nil {
		u.Permissions = []string{}
	}
	if t == nil {
		u.TenantID = r.TenantID
	}
	nu := store.NewUser{User: u, Tenant: t, Sequence: r.Sequence}
	if ip := r.Idempotency; ip != nil {
		ttl := ip.TTL
		if ttl <= 0 {
			ttl = DefaultIdempotencyTTL
		}
		nu.Idempotency = &store.Idempotency{Key: ip.Key, Fingerprint: ip.Fingerprint, CreatedAt: now, ExpiresAt: now.Add(ttl)}
	}
	if t != nil {
		u.TenantID = t.ID
		t.CreatedBy = u.ID
	}

	if e.cfg.Pool.WouldShed(ctx) {
		// Refuse before the store round trip: under a flood the answer
		// is the same and this one costs nothing.
		return nil, e.cfg.Pool.Shed(ctx)
	}
	if err := e.Taken(ctx, nu.Of()); err != nil {
		return e.replayOnConflict(ctx, r, err)
	}
	// The app's say, once the request is known valid and before the hash.
	if err := e.beforeRegister(ctx, u, t); err != nil {
		return nil, err
	}
	// Fail before hashing if the events cannot be sealed afterwards.
	ws, err := e.webhookSealer(ctx, EventUserCreated, EventSessionCreated)
	if err != nil {
		return nil, err
	}
	var iss *token.Issuer
	if r.IssueToken {
		// Fail before hashing if no token can be issued afterwards.
		if iss, err = e.tokens(ctx); err != nil {
			return nil, err
		}
	}
	var sealer *mailSealer
	if r.Mail != nil {
		// Fail before hashing if the mail cannot be sealed afterwards.
		if sealer, err = e.MailSealer(ctx); err != nil {
			return nil, err
		}
	}
	if !(r.NoPassword && r.Password == "") {
		hash, err := e.cfg.Pool.Hash(ctx, e.cfg.Hasher, []byte(r.Password))
		if err != nil {
			return nil, err
		}
		u.PasswordHash = hash
	}
	var userSecret string
	switch {
	case r.Mail != nil:
		m, tok, secret, err := e.composeMail(u, r.Mail, sealer, now)
		if err != nil {
			return nil, err
		}
		nu.Mails, nu.Token = []*store.Mail{m}, tok
		if u.Status == store.StatusPending && tok.Purpose == PurposeActivate {
			u.Resend = resendRef(r.Mail, secret)
			// Waiting for the mailed confirmation: the account expires
			// with its link, so an address someone else registered (and
			// never confirmed) is free again after it (see
			// store.User.PendingUntil). Users an admin creates pending,
			// or invites with a set-password mail, do not expire.
			u.PendingUntil = tok.ExpiresAt.UnixMilli()
		}
	case r.UserToken != nil:
		var tok *store.Token
		tok, userSecret = newToken(u, r.UserToken.Purpose, r.UserToken.TTL, r.UserToken.UUIDShape, now)
		nu.Token = tok
	}
	var sid string
	if iss != nil {
		if nu.Session, _, err = e.tokenSession(u.ID, r.ClientIP, r.UserAgent); err != nil {
			return nil, err
		}
		sid = nu.Session.ID
	}
	// In the registration's atomic step: user.created, then the session.
	created, err := e.webhookEvent(ws, EventUserCreated, u.ID, webhookUser(u), now)
	if err != nil {
		return nil, err
	}
	nu.Mails = append(nu.Mails, created...)
	if s := nu.Session; s != nil {
		opened, err := e.webhookEvent(ws, EventSessionCreated, u.ID, webhookSession(s), now)
		if err != nil {
			return nil, err
		}
		nu.Mails = append(nu.Mails, opened...)
	}
	if err := e.cfg.Store.CreateUser(ctx, nu); err != nil {
		return e.replayOnConflict(ctx, r, err)
	}
	if len(nu.Mails) > 0 && e.cfg.MailQueued != nil {
		e.cfg.MailQueued()
	}
	res = &Registered{User: u, Tenant: t, UserToken: userSecret}
	if iss != nil {
		c := userClaims(u)
		c.SID = sid
		tok, _, err := iss.Issue(c)
		if err != nil {
			return nil, fmt.Errorf("issue token: %w", err)
		}
		res.Token = tok
	}
	return res, nil
}

// Taken is the duplicate pre-check, with tenant conflicts mapped to
// ErrTenantExists.
func (e *Engine) Taken(ctx context.Context, k store.UniqueKeys) error {
	return mapConflict(e.cfg.Store.Taken(ctx, k))
}

// replayOnConflict handles a conflict of an idempotent request: a
// concurrent request with the same key may have won the race (its user then
// holds the e-mail, or its key the idempotency claim), so the result is
// replayed when the key is now known; otherwise the conflict stands.
func (e *Engine) replayOnConflict(ctx context.Context, r Registration, err error) (*Registered, error) {
	var ce *store.ConflictError
	if r.Idempotency != nil && errors.As(err, &ce) {
		if res, rerr := e.replay(ctx, r.Idempotency); res != nil || rerr != nil {
			return res, rerr
		}
	}
	return nil, mapConflict(err)
}

// replay returns the user an earlier request with the same idempotency key
// created, nil if the key is unknown, or ErrIdempotencyMismatch.
func (e *Engine) replay(ctx context.Context, ip *IdempotencySpec) (*Registered, error) {
	rec, err := e.cfg.Store.GetIdempotency(ctx, ip.Key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if rec.Fingerprint != ip.Fingerprint {
		return nil, ErrIdempotencyMismatch
	}
	u, err := e.cfg.Store.GetUser(ctx, rec.UserID)
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	return &Registered{User: u, Replayed: true}, nil
}

func mapConflict(err error) error {
	var ce *store.ConflictError
	if errors.As(err, &ce) && strings.HasPrefix(ce.Field, "tenant") {
		return ErrTenantExists
	}
	return err
}

// userClaims are the token claims of u: a user holds no permissions until
// the account is active.
func userClaims(u *store.User) token.Claims {
	c := token.Claims{Tenant: u.TenantID, Status: string(u.Status), Kind: "user", Permissions: []string{}, Email: u.Email, Login: u.Login}
	c.Subject = u.ID
	if u.Status == store.StatusActive {
		c.Permissions = u.Permissions
	}
	return c
}

// Outcome names a registration result for logs and metrics.
func Outcome(err error) string {
	var ve *ValidationError
	var ce *store.ConflictError
	var rl *RateLimitedError
	var ie interface{ InvalidInput() bool }
	switch {
	case err == nil:
		return "created"
	case errors.As(err, &ve), errors.As(err, &ie) && ie.InvalidInput():
		return "invalid"
	case errors.Is(err, ErrCaptchaRequired), errors.Is(err, ErrCaptchaExpired), errors.Is(err, ErrCaptchaWrong):
		return "captcha_failed"
	case errors.As(err, &ce):
		return "duplicate"
	case errors.Is(err, ErrTenantExists):
		return "tenant_exists"
	case errors.Is(err, ErrIdempotencyMismatch):
		return "idempotency_mismatch"
	case errors.As(err, &rl):
		return "rate_limited"
	case errors.Is(err, ErrUnauthenticated):
		return "unauthenticated"
	case errors.Is(err, ErrForbidden):
		return "forbidden"
	case errors.Is(err, password.ErrOverloaded):
		return "overloaded"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		// The client left or its deadline passed; stores wrap these in
		// ErrUnavailable too.
		return "canceled"
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, ErrNotReady):
		return "unavailable"
	default:
		return "error"
	}
}

// Reject records a registration that failed its contract's wire checks
// before reaching Register (a body that did not decode, say), so logs and
// metrics see every attempt.
func (e *Engine) Reject(contract, clientIP string, err error) {
	e.logRegistration(Registration{Contract: contract, ClientIP: clientIP}, nil, err, e.now())
}

func (e *Engine) recordOutcome(contract, outcome string) {
	if e.cfg.Metrics != nil {
		e.cfg.Metrics.Registration(contract, outcome)
	}
}

func (e *Engine) logRegistration(r Registration, res *Registered, err error, start time.Time) {
	outcome := Outcome(err)
	if res != nil && res.Replayed {
		outcome = "replayed"
	}
	e.recordOutcome(r.Contract, outcome)
	level := zapcore.ErrorLevel
	switch outcome {
	case "replayed", "created":
		level = zapcore.InfoLevel
	case "invalid", "duplicate", "tenant_exists", "idempotency_mismatch", "rate_limited", "captcha_failed", "forbidden", "unauthenticated":
		// Refusals are the client's doing and come in floods: a line each
		// at Info would let anyone fill the disk, and cost a tenth of the
		// CPU of a refusal. Metrics count them; Debug shows them, as Caddy
		// logs its own 4xx errors at Debug.
		level = zapcore.DebugLevel
	}
	ce := e.log.Check(level, "registration")
	if ce == nil {
		return
	}
	fields := []zap.Field{
		zap.String("contract", r.Contract),
		zap.String("outcome", outcome),
		zap.String("email", MaskEmail(r.Email)),
		zap.String("client_ip", r.ClientIP),
		zap.Duration("duration", e.now().Sub(start)),
	}
	if res != nil {
		fields = append(fields, zap.String("user_id", res.User.ID))
		if res.Tenant != nil {
			fields = append(fields, zap.String("tenant_id", res.Tenant.ID))
		}
	}
	if level == zapcore.ErrorLevel {
		// Store and driver errors never carry request secrets, so the
		// message is safe to log; it is what an operator needs.
		fields = append(fields, zap.Error(err))
	}
	ce.Write(fields...)
}

// MaskEmail keeps enough of an address to correlate log lines without
// exposing it: "jane.doe@example.com" becomes "j***@example.com".
func MaskEmail(addr string) string {
	addr = strings.TrimSpace(addr)
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 {
		if addr == "" {
			return ""
		}
		return "***"
	}
	local := []rune(addr[:at])
	return string(local[0]) + "***" + addr[at:]
}
