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
	// OldHashes are the up to RefreshHistory tokens rotated out before
	// PrevHash, the newest first. Presenting one of them, or PrevHash, is
	// a proven reuse (the token really was issued to this session and
	// spent); any other hash is merely unknown and revokes nothing, so
	// knowing a sid (every access token carries it) is not enough to end
	// a session.
	OldHashes []string `json:"old_hashes,omitempty"`
}

// RefreshHistory is how many spent refresh tokens, before PrevHash, a
// session remembers to recognise an older replay (see Session.OldHashes).
const RefreshHistory = 4

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
	// ErrRefreshReused means the presented token is one the session was
	// issued and already spent (PrevHash outside the grace window, or one
	// of OldHashes): the session has been revoked. A hash the session never
	// had is ErrNotFound and revokes nothing.
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

// PublishError means sessions were deleted from the store but publishing
// them to the revocation feed failed: the revocation is made (the store
// refuses the sessions; the instance that made it must mark them dead at
// once) but other instances only learn it when their cached check of the
// session expires (engine.DefaultSessionCheckMaxAge). It wraps the
// publication's error, so errors.Is(err, ErrUnavailable) holds.
type PublishError struct {
	// SessionIDs are the sessions deleted but not published.
	SessionIDs []string
	Err        error
}

func (e *PublishError) Error() string {
	return fmt.Sprintf("%d session(s) revoked but not published to the revocation feed: %v", len(e.SessionIDs), e.Err)
}

// Unwrap returns the publication's error.
func (e *PublishError) Unwrap() error { return e.Err }

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
	// The outbox messages given (the session.created event) are enqueued
	// in the same step.
	CreateSession(ctx context.Context, s *Session, outbox ...*Mail) error
	// RotateRefresh replaces the session's refresh token atomically. When
	// r.Hash is the current token of a live session, RefreshHash becomes
	// r.NewHash (PrevHash r.Hash, RotatedAt r.Now, the former PrevHash
	// first in OldHashes), LastUsedAt r.Now, IdleExpiresAt
	// min(r.Now+r.IdleTTL, ExpiresAt), and the updated session is
	// returned. When it is PrevHash and less than r.Grace has passed since
	// RotatedAt: ErrRefreshConflict, nothing changes. When it is PrevHash
	// later, or one of OldHashes (a spent token): the session is deleted
	// (and published to the revocation feed) and ErrRefreshReused
	// returned, joined with a *PublishError when the publication failed.
	// Any other hash, and an absent or expired session: ErrNotFound,
	// nothing changes. Of concurrent rotations with one token, exactly one
	// succeeds.
	RotateRefresh(ctx context.Context, r Rotation) (*Session, error)
	// GetSession returns a live session, or ErrNotFound.
	GetSession(ctx context.Context, userID, sid string) (*Session, error)
	// ListSessions returns the user's live sessions, the most recently
	// used first.
	ListSessions(ctx context.Context, userID string) ([]*Session, error)
	// RevokeSession deletes a session and publishes it to the revocation
	// feed. An absent session is ErrNotFound; so is an expired one, whose
	// record is deleted but not published. A deleted session whose
	// publication failed is a *PublishError.
	RevokeSession(ctx context.Context, userID, sid string) error
	// RevokeUserSessions deletes every session of the user but exceptSID
	// (none when empty) in one atomic step, publishes the live ones and
	// returns their ids. Expired ones are deleted too but neither
	// published nor returned. When the publication fails the ids come
	// back with a *PublishError.
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
// or ErrRefreshConflict / ErrRefreshReused / ErrNotFound.
func ApplyRotation(cur *Session, r Rotation) (*Session, error) {
	if r.Hash == "" {
		return nil, ErrNotFound
	}
	if r.Hash == cur.RefreshHash {
		next := *cur
		next.PrevHash, next.RefreshHash, next.RotatedAt = cur.RefreshHash, r.NewHash, r.Now
		next.OldHashes = nil
		if cur.PrevHash != "" {
			next.OldHashes = append(next.OldHashes, cur.PrevHash)
		}
		for _, h := range cur.OldHashes {
			if len(next.OldHashes) < RefreshHistory {
				next.OldHashes = append(next.OldHashes, h)
			}
		}
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
	if r.Hash == cur.PrevHash {
		if r.Now.Before(cur.RotatedAt.Add(r.Grace)) {
			return nil, ErrRefreshConflict
		}
		return nil, ErrRefreshReused
	}
	if slices.Contains(cur.OldHashes, r.Hash) {
		return nil, ErrRefreshReused
	}
	// Never issued to this session: whoever forged it knows the sid, which
	// is no secret, so it must not end the session.
	return nil, ErrNotFound
}

// SortSessions orders sessions the most recently used first (then by id,
// so the order is total).
func SortSessions(ss []*Session) {
	slices.SortFunc(ss, func(a, b *Session) int {
		return cmp.Or(b.LastUsedAt.Compare(a.LastUsedAt), cmp.Compare(a.ID, b.ID))
	})
}
