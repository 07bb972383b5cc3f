package engine

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/caddyregister/caddyregister/caddyregister/mail"
	"github.com/caddyregister/caddyregister/caddyregister/ratelimit"
	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// Resending an activation link. The mail a user awaits was rendered by the
// handler of the contract that registered it: its template (the operator's
// override files), its route, its link host. A resend comes through
// another route (the account API), so the engine cannot rebuild that mail
// from the request. Two things make it possible:
//
//   - the link: Register keeps it in the user record (store.User.Resend),
//     as the text around the token, since it holds a host the Caddy layer
//     checked or a client's callback URL that no later request knows;
//   - the template: each contract that mails activation links registers a
//     Resender under ResenderKey(contract, prefix) when it is built, and
//     names it in its MailSpec; the user record keeps the name.
//
// A user whose resender is gone (the handler was removed or moved by a
// config change) gets no mail; the resend is logged.

// Resender renders a contract handler's activation mail again.
type Resender struct {
	Template *mail.Template
	// TTL of the new link; DefaultTokenTTL when zero.
	TTL time.Duration
	// Data, when set, is the extra template data for u (as MailSpec.Data),
	// rebuilt from what the user record keeps.
	Data func(u *store.User) map[string]any
}

// ResenderKey names the resender of the handler of contract mounted at
// prefix.
func ResenderKey(contract, prefix string) string { return contract + " " + prefix }

// Default limits of ResendActivation: per account (e-mail address, known
// or not) and per client network. A person who lost the mail needs one or
// two; a flood of mails to someone else's address is what they stop.
var (
	ResendAccountLimit = ratelimit.Limit{Rate: 3, Period: time.Hour, Burst: 3}
	ResendClientLimit  = ratelimit.Limit{Rate: 10, Period: time.Hour, Burst: 10}
)

// MaxPending bounds how long resends can keep a pending account: its
// PendingUntil never moves past CreatedAt + MaxPending (or the link TTL,
// if longer). Without it, whoever registered someone else's address could
// keep it from its owner for ever by asking for a new link each day.
const MaxPending = 7 * 24 * time.Hour

// resendTimeout bounds one resend's work, which runs detached from the
// request.
const resendTimeout = 30 * time.Second

// resends is the engine's resender registry and its running resends.
type resends struct {
	mu sync.RWMutex
	m  map[string]Resender
	wg sync.WaitGroup
}

// RegisterResender makes r the resender named key (ResenderKey); a later
// registration under the same key replaces it (two handlers of one
// contract at one prefix share one).
func (e *Engine) RegisterResender(key string, r Resender) {
	e.resend.mu.Lock()
	defer e.resend.mu.Unlock()
	if e.resend.m == nil {
		e.resend.m = map[string]Resender{}
	}
	e.resend.m[key] = r
}

func (e *Engine) resender(key string) (Resender, bool) {
	e.resend.mu.RLock()
	defer e.resend.mu.RUnlock()
	r, ok := e.resend.m[key]
	return r, ok
}

// resendRef is the store.User.Resend Register records for a mail with a
// resender: the link split around its token.
func resendRef(spec *MailSpec, secret string) *store.Resend {
	if spec.Resender == "" {
		return nil
	}
	link := spec.Link(secret)
	i := strings.Index(link, secret)
	if i < 0 {
		return nil // a link that hides the token cannot be rebuilt
	}
	return &store.Resend{Mailer: spec.Resender, LinkPrefix: link[:i], LinkSuffix: link[i+len(secret):]}
}

// ResendActivation mails a fresh activation link to the account with
// e-mail address email, if it is pending and awaits a mailed confirmation
// (store.User.Reissuable), for POST /account/activation/resend. The answer
// never tells whether such an account exists: nil means "accepted", and
// the lookup, the mail and the store write run after the call returns, so
// its time is the same either way. Errors are only a malformed address
// (*ValidationError), a rate limit (*RateLimitedError, charged per
// address, known or not, and per client network, in one step) and the
// limiter's store being down; none depends on the account.
//
// The new link replaces the old ones (store.Links.ReissueLink): links in
// earlier mails stop working and their undelivered mails are dropped, so
// one link is live at a time. The account's expiry moves to the new link's,
// within MaxPending of its registration; an account that already expired
// is not revived (its address is free: register again).
func (e *Engine) ResendActivation(ctx context.Context, email, clientIP string) error {
	return e.mailOnRequest(ctx, email, clientIP, "resend", "activation_resend",
		orLimit(e.cfg.ResendAccountLimit, ResendAccountLimit), orLimit(e.cfg.ResendClientLimit, ResendClientLimit),
		"activation resend failed", e.resendLink)
}

// mailOnRequest is what a request for a mail to an address (an activation
// resend, a reset link) shares: the address is checked, one request is
// charged per address (known or not) and per client network in one step
// (kind prefixes the limiter keys, metric names a refusal), and send runs
// for the address's key after the answer, detached, its failure logged as
// failed. Only the checks' errors return, so the answer never depends on
// the account.
func (e *Engine) mailOnRequest(ctx context.Context, email, clientIP, kind, metric string, acct, client ratelimit.Limit, failed string, send func(ctx context.Context, emailKey string) error) error {
	email = strings.TrimSpace(email)
	if err := CheckEmail(email); err != nil {
		var v ValidationError
		v.Add(FieldEmail, "email", err.Error())
		return &v
	}
	key := store.EmailKey(email)
	if err := e.charge(ctx, metric,
		ratelimit.Check{Key: kind + "-net:" + e.Network(clientIP), Limit: client},
		ratelimit.Check{Key: kind + "-acct:" + key, Limit: acct},
	); err != nil {
		return err
	}
	e.detach(ctx, func(ctx context.Context) {
		if err := send(ctx, key); err != nil {
			e.log.Error(failed, zap.String("email", MaskEmail(email)), zap.Error(err))
		}
	})
	return nil
}

// orLimit is l, or def when l is zero.
func orLimit(l, def ratelimit.Limit) ratelimit.Limit {
	if l.IsZero() {
		return def
	}
	return l
}

// detach runs work after the request that asked for it returned (so its
// time tells nothing of the account), bounded by resendTimeout and
// counted for WaitResends.
func (e *Engine) detach(ctx context.Context, work func(ctx context.Context)) {
	e.resend.wg.Add(1)
	go func() {
		defer e.resend.wg.Done()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), resendTimeout)
		defer cancel()
		work(ctx)
	}()
}

// WaitResends waits for the detached work ResendActivation and
// ForgotPassword started to finish (tests, and a clean stop).
func (e *Engine) WaitResends() { e.resend.wg.Wait() }

// userByEmailKey reads the user holding a normalized e-mail, or nil when
// none does (the index entry, or the record it names, is gone).
func (e *Engine) userByEmailKey(ctx context.Context, emailKey string) (*store.User, error) {
	id, err := e.cfg.Store.UserIDByEmail(ctx, emailKey)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	u, err := e.cfg.Store.GetUser(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return u, err
}

// resendLink does ResendActivation's work for the e-mail key. An address
// no account holds, or whose account awaits no mailed confirmation, is
// not an error: it is logged at Debug, as refusals are.
func (e *Engine) resendLink(ctx context.Context, emailKey string) error {
	quiet := func(why string) error {
		e.log.Debug("activation resend: nothing sent", zap.String("reason", why))
		return nil
	}
	u, err := e.userByEmailKey(ctx, emailKey)
	if err != nil {
		return err
	}
	if u == nil {
		return quiet("no account")
	}
	now := e.now().UTC()
	if !u.Reissuable(now) {
		return quiet("not awaiting a mailed confirmation")
	}
	if u.Resend == nil {
		return quiet("no link recorded")
	}
	rs, ok := e.resender(u.Resend.Mailer)
	if !ok {
		e.log.Info("activation resend: the handler that registered the user is gone", zap.String("user_id", u.ID), zap.String("mailer", u.Resend.Mailer))
		return nil
	}
	ttl := rs.TTL
	if ttl <= 0 {
		ttl = DefaultTokenTTL
	}
	until := now.Add(ttl)
	if limit := u.CreatedAt.Add(max(MaxPending, ttl)); until.After(limit) {
		until = limit
	}
	if !until.After(now) {
		return quiet("pending too long")
	}
	sealer, err := e.MailSealer(ctx)
	if err != nil {
		return err
	}
	ref := u.Resend
	spec := &MailSpec{
		Template: rs.Template,
		Link:     func(tok string) string { return ref.LinkPrefix + tok + ref.LinkSuffix },
		TTL:      until.Sub(now),
	}
	if rs.Data != nil {
		spec.Data = rs.Data(u)
	}
	m, tok, _, err := e.composeMail(u, spec, sealer, now)
	if err != nil {
		return err
	}
	if _, err := e.cfg.Store.ReissueLink(ctx, store.LinkReissue{UserID: u.ID, Token: tok, Mail: m, PendingUntil: tok.ExpiresAt.UnixMilli(), Now: now}); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return quiet("activated or replaced meanwhile")
		}
		return err
	}
	if e.cfg.MailQueued != nil {
		e.cfg.MailQueued()
	}
	e.log.Info("activation link resent", zap.String("user_id", u.ID))
	return nil
}
