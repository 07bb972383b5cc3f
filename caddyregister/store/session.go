package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Session is a server-side login session: every refresh token belongs to
// one, and access tokens name it in their sid claim so a revoked session
// refuses them (see package engine).
//
// A session ends at IdleExpiresAt unless a refresh moves that on (never
// past ExpiresAt, the absolute end); backends make an expired session read
// as ErrNotFound and delete it (Redis: PEXPIREAT; bbolt: on read and by
// the expiry sweep).
type Session struct {
	// ID is the sid: 128 random bits, base64url (see NewSessionID).
	ID         string    `json:"id"`
	UserID     string    `json:"user_id"`
	CreatedAt  time.Time `json:"created_at"`
	LastUsedAt time.Time `json:"last_used_at"`
	ClientIP   string    `json:"client_ip,omitempty"`
	UserAgent  string    `json:"user_agent,omitempty"`
	// IdleExpiresAt is LastUsedAt plus the idle lifetime, capped by
	// ExpiresAt.
	IdleExpiresAt time.Time `json:"idle_expires_at"`
	// ExpiresAt is the absolute end, fixed at creation.
	ExpiresAt time.Time `json:"expires_at"`

	// RefreshHash is the hex SHA-256 of the session's current refresh
	// token: the only one that rotates. The token itself is never stored.
	RefreshHash string `json:"refresh_hash"`
	// PrevHash is the token RefreshHash replaced, at RotatedAt: the one
	// token the grace window applies to (see Sessions.RotateRefresh).
	PrevHash  string    `json:"prev_hash,omitempty"`
	RotatedAt time.Time `json:"rotated_at,omitzero"`
}

// Live reports whether s has not expired at now.
func (s *Session) Live(now time.Time) bool {
	return now.Before(s.IdleExpiresAt) && now.Before(s.ExpiresAt)
}

// Rotation is one refresh-token rotation (Sessions.RotateRefresh).
type Rotation struct {
	UserID    string
	SessionID string
	// Hash is the hex SHA-256 of the presented refresh token.
	Hash string
	// NewHash is the hex SHA-256 of its successor.
	NewHash string
	Now     time.Time
	// IdleTTL moves IdleExpiresAt to Now+IdleTTL (capped by ExpiresAt).
	IdleTTL time.Duration
	// Grace is how long after a rotation the token it replaced may be
	// presented again without revoking the session (a client retrying
	// after a lost response): it then gets ErrRefreshConflict. Zero
	// disables the window.
	Grace time.Duration
	// ClientIP and UserAgent, when not empty, replace the session's.
	ClientIP  string
	UserAgent string
}

// Errors of refresh-token rotation.
var (
	// ErrRefreshReused means the presented token names a live session but
	// is not its current token, outside the grace window: a used token
	// (or one forged by someone who knows the sid, which only the session's
	// own access tokens carry). The session has been revoked.
	ErrRefreshReused = errors.New("refresh token reused: session revoked")
	// ErrRefreshConflict means the token was rotated less than the grace
	// window ago: the session stays; the client must use the successor it
	// was given, or log in again (the successor is only stored hashed, so
	// it cannot be handed out twice).
	ErrRefreshConflict = errors.New("refresh token already rotated")
	// ErrUserInactive means CreateSession found the user inactive
	// (disabled) as it ran.
	ErrUserInactive = errors.New("user inactive")
	// ErrRevocationGap means revocations after the caller's cursor were
	// dropped from the feed (it fell too far behind): the caller must
	// forget every session it believes live.
	ErrRevocationGap = errors.New("revocation feed gap")
)

// RevocationFeedSize is how many revocations a backend's feed keeps; a
// reader further behind gets ErrRevocationGap.
const RevocationFeedSize = 8192

// Revocation is one entry of the revocation feed.
type Revocation struct {
	// Seq orders the feed; it starts at 1 and has no gaps.
	Seq       uint64
	SessionID string
}

// Sessions are the store operations on sessions. Every operation names
// the user, so a backend can keep a user's sessions together (on Redis
// Cluster, in that user's slot).
type Sessions interface {
	// CreateSession writes s (ID, UserID, RefreshHash, times set; see
	// CheckSession). A taken ID is *ConflictError{Field: "session_id"}.
	// The user must exist as the session is written: otherwise nothing
	// is written and the error wraps ErrNotFound (so a DeleteUser racing
	// a login never leaves a session of an erased user); and must not be
	// inactive: ErrUserInactive (so a disable racing a login, which
	// revokes the sessions it finds, never leaves one either).
	CreateSession(ctx context.Context, s *Session) error
	// RotateRefresh replaces the session's refresh token atomically. When
	// r.Hash is the current token of a live session, RefreshHash becomes
	// r.NewHash (PrevHash r.Hash, RotatedAt r.Now), LastUsedAt r.Now,
	// IdleExpiresAt min(r.Now+r.IdleTTL, ExpiresAt), and the updated
	// session is returned. When it is PrevHash and less than r.Grace has
	// passed since RotatedAt: ErrRefreshConflict, nothing changes. Any
	// other hash: the session is deleted (and published to the revocation
	// feed) and ErrRefreshReused returned. An absent or expired session:
	// ErrNotFound. Of concurrent rotations with one token, exactly one
	// succeeds.
	RotateRefresh(ctx context.Context, r Rotation) (*Session, error)
	// GetSession returns a live session, or ErrNotFound.
	GetSession(ctx context.Context, userID, sid string) (*Session, error)
	// ListSessions returns the user's live sessions, the most recently
	// used first.
	ListSessions(ctx context.Context, userID string) ([]*Session, error)
	// RevokeSession deletes a session (ErrNotFound when absent) and
	// publishes it to the revocation feed.
	RevokeSession(ctx context.Context, userID, sid string) error
	// RevokeUserSessions deletes every session of the user but exceptSID
	// (none when empty) in one atomic step, publishes them and returns
	// their ids.
	RevokeUserSessions(ctx context.Context, userID, exceptSID string) ([]string, error)
	// Revocations returns up to limit feed entries with Seq > after, in
	// order, and the Seq to pass next time (the last returned, or after
	// when there are none). When entries after `after` were dropped it
	// returns ErrRevocationGap with the feed's current head as next.
	Revocations(ctx context.Context, after uint64, limit int) ([]Revocation, uint64, error)
}

// CheckSession validates a session before CreateSession writes it.
func CheckSession(s *Session) error {
	switch {
	case s == nil:
		return errors.New("create session: nil session")
	case s.ID == "" || s.UserID == "":
		return errors.New("create session: id and user id are required")
	case s.RefreshHash == "":
		return errors.New("create session: refresh hash is required")
	case s.ExpiresAt.IsZero() || s.IdleExpiresAt.IsZero():
		return errors.New("create session: expiry is required")
	case s.IdleExpiresAt.After(s.ExpiresAt):
		return fmt.Errorf("create session: idle expiry %v after absolute expiry %v", s.IdleExpiresAt, s.ExpiresAt)
	}
	return nil
}

// ApplyRotation is RotateRefresh's decision (the Redis backend makes the
// same one in Lua): given
// the stored session cur (live at r.Now), it returns the updated session
// or ErrRefreshConflict / ErrRefreshReused.
func ApplyRotation(cur *Session, r Rotation) (*Session, error) {
	if r.Hash == cur.RefreshHash {
		next := *cur
		next.PrevHash, next.RefreshHash, next.RotatedAt = cur.RefreshHash, r.NewHash, r.Now
		next.LastUsedAt = r.Now
		next.IdleExpiresAt = r.Now.Add(r.IdleTTL)
		if next.IdleExpiresAt.After(next.ExpiresAt) {
			next.IdleExpiresAt = next.ExpiresAt
		}
		if r.ClientIP != "" {
			next.ClientIP = r.ClientIP
		}
		if r.UserAgent != "" {
			next.UserAgent = r.UserAgent
		}
		return &next, nil
	}
	if r.Hash == cur.PrevHash && r.Now.Before(cur.RotatedAt.Add(r.Grace)) {
		return nil, ErrRefreshConflict
	}
	return nil, ErrRefreshReused
}

// SortSessions orders sessions the most recently used first (then by id,
// so the order is total).
func SortSessions(ss []*Session) {
	slices.SortFunc(ss, func(a, b *Session) int {
		return cmp.Or(b.LastUsedAt.Compare(a.LastUsedAt), cmp.Compare(a.ID, b.ID))
	})
}
