package engine

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// Session defaults (SessionConfig).
const (
	DefaultSessionIdle     = 30 * 24 * time.Hour
	DefaultSessionAbsolute = 90 * 24 * time.Hour
	// DefaultRefreshGrace is short: it only spares a client that retried
	// a refresh whose response it lost from having its session revoked;
	// it never hands out a second token (see store.ErrRefreshConflict).
	DefaultRefreshGrace = 5 * time.Second
	// DefaultRevocationPoll is how often a busy instance reads the
	// revocation feed in the background.
	DefaultRevocationPoll = time.Second
	// DefaultRevocationStale bounds how old the last feed read may be
	// when a request trusts the liveness cache; past it the request reads
	// the feed itself first. It is the cross-instance revocation bound,
	// less the feed's round trip.
	DefaultRevocationStale = 3 * time.Second
	// DefaultSessionCheckMaxAge is how long a session read live is
	// trusted without reading it again: a backstop for a revocation the
	// feed missed (the revoking instance died between deleting the
	// session and publishing it).
	DefaultSessionCheckMaxAge = 30 * time.Second
)

// SessionConfig tunes sessions. Zero fields take the defaults above.
type SessionConfig struct {
	// IdleTTL ends a session this long after its last refresh.
	IdleTTL time.Duration
	// AbsoluteTTL ends a session this long after it started, used or not.
	AbsoluteTTL time.Duration
	// RefreshGrace is how long a rotated refresh token, presented again,
	// gets a conflict instead of revoking its session; negative disables
	// the window (every second presentation revokes).
	RefreshGrace time.Duration
	// RevocationPoll, RevocationStale and CheckMaxAge tune the liveness
	// cache (see the Default constants).
	RevocationPoll  time.Duration
	RevocationStale time.Duration
	CheckMaxAge     time.Duration
}

// SessionLimits override the app's session lifetimes (SessionConfig) for
// the sessions one handler opens and refreshes; zero fields keep the
// app's. A session's absolute end is fixed when it opens; its idle window
// is the one of the handler that refreshes it.
type SessionLimits struct {
	Idle     time.Duration
	Absolute time.Duration
}

// limits are e's session lifetimes with l applied.
func (e *Engine) limits(l SessionLimits) (idle, absolute time.Duration) {
	idle, absolute = e.cfg.Sessions.IdleTTL, e.cfg.Sessions.AbsoluteTTL
	if l.Idle > 0 {
		idle = l.Idle
	}
	if l.Absolute > 0 {
		absolute = l.Absolute
	}
	return min(idle, absolute), absolute
}

func (c SessionConfig) withDefaults() SessionConfig {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.IdleTTL, DefaultSessionIdle)
	def(&c.AbsoluteTTL, DefaultSessionAbsolute)
	def(&c.RefreshGrace, DefaultRefreshGrace)
	if c.RefreshGrace < 0 {
		c.RefreshGrace = 0
	}
	def(&c.RevocationPoll, DefaultRevocationPoll)
	def(&c.RevocationStale, DefaultRevocationStale)
	def(&c.CheckMaxAge, DefaultSessionCheckMaxAge)
	c.RevocationPoll = min(c.RevocationPoll, c.RevocationStale)
	return c
}

// Session errors. Both wrap ErrUnauthenticated, so a contract that does
// not tell them apart answers 401.
var (
	// ErrSessionRevoked refuses a token whose session was revoked,
	// expired or never existed.
	ErrSessionRevoked = fmt.Errorf("%w: session revoked", ErrUnauthenticated)
	// ErrRefreshReused is Refresh's answer to a used refresh token: the
	// session has been revoked (RFC 9700 §4.14).
	ErrRefreshReused = fmt.Errorf("%w: %w", ErrUnauthenticated, store.ErrRefreshReused)
	// ErrRefreshConflict is Refresh's answer to a token rotated less than
	// RefreshGrace ago: the session stays; the client must use the
	// successor it received, or log in again.
	ErrRefreshConflict = fmt.Errorf("%w: %w", ErrUnauthenticated, store.ErrRefreshConflict)
)

// SessionTokens is what StartSession and Refresh hand out.
type SessionTokens struct {
	Principal *Principal
	// Access is a signed access token with the session's sid, valid for
	// AccessTTL.
	Access    string
	AccessTTL time.Duration
	// Refresh is the session's refresh token: single use; shown once and
	// stored only as a hash.
	Refresh string
	Session *store.Session
}

// A refresh token is <user id>.<sid>.<secret>: the secret is 256 random
// bits, the prefix routes the token to its session (on Redis Cluster, to
// its user's slot) without an index. The prefix is no secret (the access
// token carries both ids); what is stored is the SHA-256 of the whole
// token.
const (
	sidBytes    = 16
	secretBytes = 32
)

var b64 = base64.RawURLEncoding

func randomB64(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random: %w", err)
	}
	return b64.EncodeToString(b), nil
}

// newRefreshToken returns a fresh refresh token for a session and its hash.
func newRefreshToken(userID, sid string) (tok, hash string, err error) {
	secret, err := randomB64(secretBytes)
	if err != nil {
		return "", "", err
	}
	tok = userID + "." + sid + "." + secret
	return tok, hashRefresh(tok), nil
}

func hashRefresh(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:])
}

// parseRefreshToken splits a refresh token; ok is false for anything not
// shaped like one (then no store is asked).
func parseRefreshToken(tok string) (userID, sid string, ok bool) {
	userID, rest, ok1 := strings.Cut(tok, ".")
	sid, secret, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || !store.IsID(userID) ||
		len(sid) != b64.EncodedLen(sidBytes) || len(secret) != b64.EncodedLen(secretBytes) {
		return "", "", false
	}
	if _, err := b64.DecodeString(sid); err != nil {
		return "", "", false
	}
	if _, err := b64.DecodeString(secret); err != nil {
		return "", "", false
	}
	return userID, sid, true
}

// sessionPrincipal reads the user and builds the principal a session's
// tokens carry: status and permissions as stored now. An inactive user
// gets ErrAccountDisabled, an absent one ErrUnauthenticated.
func (e *Engine) sessionPrincipal(ctx context.Context, userID, sid string) (*Principal, error) {
	u, err := e.cfg.Store.GetUser(ctx, userID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrUnauthenticated
	}
	if err != nil {
		return nil, err
	}
	e.recent.forget(userID) // Me sees what the new token says
	if u.Status == store.StatusInactive {
		return nil, ErrAccountDisabled
	}
	c := userClaims(u)
	return &Principal{Kind: KindUser, ID: u.ID, TenantID: u.TenantID, Status: string(u.Status), Permissions: c.Permissions, SID: sid, Email: u.Email, Login: u.Login}, nil
}

// StartSession opens a session for a user whose credentials the caller
// verified (or who just registered) and returns its first token pair. The
// token's status and permissions are read from the store now; an inactive
// user gets ErrAccountDisabled, an unknown one ErrUnauthenticated.
func (e *Engine) StartSession(ctx context.Context, userID, clientIP, userAgent string, lim SessionLimits) (*SessionTokens, error) {
	return e.openSession(ctx, userID, clientIP, userAgent, &lim, nil)
}

// openSession is StartSession; without limits (nil) the session is a
// tokenSession and the pair has no refresh token.
//
// known, when set, is the user's principal as the caller just read it (a
// login, which read the user to verify the password): it spares a second
// read, and the store's atomic create still refuses a user erased or
// disabled since.
func (e *Engine) openSession(ctx context.Context, userID, clientIP, userAgent string, lim *SessionLimits, known *Principal) (*SessionTokens, error) {
	sess, refresh, err := e.tokenSession(userID, clientIP, userAgent)
	if err != nil {
		return nil, fmt.Errorf("start session: %w", err)
	}
	var p *Principal
	if known != nil && known.Kind == KindUser && known.ID == userID {
		cp := *known
		cp.SID = sess.ID
		p = &cp
		e.recent.forget(userID) // Me sees what the new token says
	} else if p, err = e.sessionPrincipal(ctx, userID, sess.ID); err != nil {
		return nil, err
	}
	if lim != nil {
		// Refreshable: the token is shown, and the session lives on.
		idle, absolute := e.limits(*lim)
		sess.IdleExpiresAt = sess.CreatedAt.Add(idle)
		sess.ExpiresAt = sess.CreatedAt.Add(absolute)
	} else {
		refresh = ""
	}
	ws, err := e.webhookSealer(ctx, EventSessionCreated)
	if err != nil {
		return nil, fmt.Errorf("start session: %w", err)
	}
	opened, err := e.webhookEvent(ws, EventSessionCreated, userID, webhookSession(sess), e.now().UTC())
	if err != nil {
		return nil, fmt.Errorf("start session: %w", err)
	}
	if err := e.cfg.Store.CreateSession(ctx, sess, opened...); errors.Is(err, store.ErrNotFound) {
		// Erased since sessionPrincipal read it (DeleteUser): the store
		// refuses the session in its atomic step.
		return nil, ErrUnauthenticated
	} else if errors.Is(err, store.ErrUserInactive) {
		return nil, ErrAccountDisabled // disabled since (UpdateUser)
	} else if err != nil {
		return nil, fmt.Errorf("start session: %w", err)
	}
	e.webhooksQueued(ws)
	return e.sessionTokens(ctx, p, refresh, sess)
}

// tokenSession is the session of an access token handed out without a
// refresh token (a registration's, a contract's login): it lasts as long
// as the token verifies (its lifetime plus the verifier's leeway), since
// nothing can extend it, and its refresh hash is that of the token it
// returns, which such callers show nobody, so it can never be refreshed.
// openSession makes it refreshable by showing that token and extending
// the expiries.
func (e *Engine) tokenSession(userID, clientIP, userAgent string) (*store.Session, string, error) {
	sid, err := randomB64(sidBytes)
	if err != nil {
		return nil, "", fmt.Errorf("token session: %w", err)
	}
	refresh, hash, err := newRefreshToken(userID, sid)
	if err != nil {
		return nil, "", fmt.Errorf("token session: %w", err)
	}
	now := e.now()
	end := now.Add(min(retention(e.cfg.Token), e.cfg.Sessions.AbsoluteTTL))
	return &store.Session{
		ID: sid, UserID: userID, CreatedAt: now, LastUsedAt: now,
		ClientIP: clientIP, UserAgent: truncateUA(userAgent),
		IdleExpiresAt: end, ExpiresAt: end, RefreshHash: hash,
	}, refresh, nil
}

func (e *Engine) sessionTokens(ctx context.Context, p *Principal, refresh string, sess *store.Session) (*SessionTokens, error) {
	access, err := e.IssueToken(ctx, p)
	if err != nil {
		return nil, err
	}
	shown := *sess
	shown.RefreshHash, shown.PrevHash, shown.OldHashes = "", "", nil // the caller has the token itself
	return &SessionTokens{Principal: p, Access: access, AccessTTL: e.TokenTTL(), Refresh: refresh, Session: &shown}, nil
}

// maxUserAgent bounds the stored user agent (bytes).
const maxUserAgent = 512

func truncateUA(ua string) string {
	if len(ua) <= maxUserAgent {
		return ua
	}
	return strings.ToValidUTF8(ua[:maxUserAgent], "")
}

// Refresh rotates a refresh token: the old one is spent, a new pair is
// returned, and the access token's status and permissions are re-read
// from the store. A token already used revokes its whole session
// (ErrRefreshReused) unless it was rotated less than RefreshGrace ago
// (ErrRefreshConflict, nothing revoked); an unknown, malformed or expired
// one is ErrUnauthenticated, and so is a secret the session was never
// issued (or spent longer ago than store.RefreshHistory rotations),
// which revokes nothing: the user id and sid in front of it are no
// secret. A user who is now inactive or gone has the
// session revoked (ErrAccountDisabled / ErrUnauthenticated).
func (e *Engine) Refresh(ctx context.Context, refresh, clientIP, userAgent string, lim SessionLimits) (*SessionTokens, error) {
	userID, sid, ok := parseRefreshToken(refresh)
	if !ok {
		return nil, ErrUnauthenticated
	}
	// The user first: a store failure here spends nothing, and a user who
	// is now inactive or gone loses the session before any rotation.
	p, err := e.sessionPrincipal(ctx, userID, sid)
	if errors.Is(err, ErrAccountDisabled) || errors.Is(err, ErrUnauthenticated) {
		if rerr := e.Logout(ctx, userID, sid); rerr != nil && !errors.Is(rerr, store.ErrNotFound) {
			return nil, errors.Join(err, rerr)
		}
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	next, nextHash, err := newRefreshToken(userID, sid)
	if err != nil {
		return nil, fmt.Errorf("refresh: %w", err)
	}
	idle, _ := e.limits(lim)
	sess, err := e.cfg.Store.RotateRefresh(ctx, store.Rotation{
		UserID: userID, SessionID: sid, Hash: hashRefresh(refresh), NewHash: nextHash,
		Now: e.now(), IdleTTL: idle, Grace: e.cfg.Sessions.RefreshGrace,
		ClientIP: clientIP, UserAgent: truncateUA(userAgent),
	})
	switch {
	case errors.Is(err, store.ErrRefreshReused):
		e.sessions.kill(sid)
		e.log.Warn("refresh token reused: session revoked", zapSession(userID, sid))
		e.unpublished("refresh token reuse", err)
		return nil, ErrRefreshReused
	case errors.Is(err, store.ErrRefreshConflict):
		return nil, ErrRefreshConflict
	case errors.Is(err, store.ErrNotFound):
		return nil, ErrUnauthenticated
	case err != nil:
		return nil, fmt.Errorf("refresh: %w", err)
	}
	return e.sessionTokens(ctx, p, next, sess)
}

// Logout revokes one session of a user (its refresh token and, within the
// revocation bound, its access tokens). An unknown session is
// store.ErrNotFound. A session deleted from the store is dead on this
// instance at once, even when publishing the revocation failed
// (store.PublishError): that is logged, not returned, since the logout
// itself is done and a retry would find nothing to revoke; other
// instances then refuse the session when their cached check of it
// expires (CheckMaxAge, 30 s by default) instead of within the feed's
// bound.
func (e *Engine) Logout(ctx context.Context, userID, sid string) error {
	err := e.cfg.Store.RevokeSession(ctx, userID, sid)
	var pe *store.PublishError
	if err == nil || errors.Is(err, store.ErrNotFound) || errors.As(err, &pe) {
		e.sessions.kill(sid) // at once on this instance
	}
	return e.unpublished("logout", err)
}

// RevokeUserSessions revokes every session of a user but exceptSID (none
// when empty), as a password change or a disable needs, and returns the
// revoked sids. As with Logout, a failed publication is logged, not
// returned: the sessions are deleted and dead here at once.
func (e *Engine) RevokeUserSessions(ctx context.Context, userID, exceptSID string) ([]string, error) {
	sids, err := e.cfg.Store.RevokeUserSessions(ctx, userID, exceptSID)
	e.sessions.kill(sids...)
	return sids, e.unpublished("revoke user sessions", err)
}

// unpublished logs a store.PublishError in err and returns err without
// it (nil when it was the only error): the sessions it names are deleted
// (the caller marked them dead here), and other instances catch up when
// their cached check expires (the store's client already retried the
// round trip, so one more try here would rarely succeed).
func (e *Engine) unpublished(op string, err error) error {
	var pe *store.PublishError
	if !errors.As(err, &pe) {
		return err
	}
	e.log.Warn("revocation not published: other instances refuse these sessions when their cached check expires",
		zap.String("op", op), zap.Strings("sids", pe.SessionIDs), zap.Duration("within", e.cfg.Sessions.CheckMaxAge), zap.Error(pe.Err))
	if err == error(pe) {
		return nil
	}
	return err
}

// ListSessions returns a user's live sessions, the most recently used
// first. The refresh hashes are cleared: they are nobody's business.
func (e *Engine) ListSessions(ctx context.Context, userID string) ([]*store.Session, error) {
	ss, err := e.cfg.Store.ListSessions(ctx, userID)
	if err != nil {
		return nil, err
	}
	for _, s := range ss {
		s.RefreshHash, s.PrevHash, s.OldHashes = "", "", nil
	}
	return ss, nil
}
