package store

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// User management: updating, erasing and listing users (the operations
// behind the admin API). See Users.

// Page sizes of ListUsers.
const (
	// DefaultUserPage is the page size when UserFilter.Limit is 0.
	DefaultUserPage = 50
	// MaxUserPage bounds UserFilter.Limit.
	MaxUserPage = 200
	// UserScanBudget bounds how many entries of the ordered user index one
	// ListUsers call examines: with a filter that matches few users, a
	// page may come back short (even empty) with a Next cursor, so the
	// work per request stays bounded whatever the filter.
	UserScanBudget = 2000
)

// ErrBadCursor means a ListUsers cursor was not made by ListUsers.
var ErrBadCursor = errors.New("malformed user list cursor")

// UserPatch is one UpdateUser change; nil fields stay as they are.
type UserPatch struct {
	// Status, when set, must be one of the three statuses. Any status
	// but pending clears PendingUntil (an activated user never expires).
	Status *Status
	// Permissions and AdminPermissions, when set, replace the lists (an
	// empty list clears them). The store does not judge them: the engine
	// keeps admin permissions out of Permissions.
	Permissions      *[]string
	AdminPermissions *[]string
	// PasswordHash, when set, replaces the hash (a password reset or
	// change); it must not be empty.
	PasswordHash *string
	// Now becomes UpdatedAt; required.
	Now time.Time
	// Outbox, when set, builds messages (webhook events) from the
	// updated user that the update enqueues in its atomic step.
	Outbox OutboxFunc
}

// UserFilter selects and pages ListUsers. Empty fields select all.
type UserFilter struct {
	Status   Status
	TenantID string
	// EmailPrefix matches users whose EmailKey starts with it: the caller
	// normalizes it as EmailKey does (IdentifierKey).
	EmailPrefix string
	// Limit is the page size, 1..MaxUserPage; 0 means DefaultUserPage.
	Limit int
	// Cursor continues from a previous page's Next; "" starts at the
	// oldest user.
	Cursor string
}

// UserPage is one page of ListUsers.
type UserPage struct {
	// Users are in index order: by CreatedAt (to the millisecond), then
	// by id.
	Users []*User
	// Next continues the walk; "" when the index was read to its end. A
	// page may be shorter than Limit (even empty) and still have a Next:
	// the walk stopped after UserScanBudget entries.
	Next string
}

// Users are the store operations on existing users.
type Users interface {
	// UpdateUser applies p to the user with id in one atomic step and
	// returns the new record; ErrNotFound when there is none. Index
	// entries (e-mail, login, the ordered index) do not change.
	UpdateUser(ctx context.Context, id string, p UserPatch) (*User, error)
	// DeleteUser erases the user with id in one atomic step: its record,
	// its e-mail and login index entries, its entry in the ordered index,
	// everything it owns (UserRefs: link tokens, queued and parked mails)
	// and its sessions with their refresh tokens. The e-mail and login are
	// free again at once; tenants it founded stay. It returns the erased
	// record and the ids of the live sessions it ended, which it has
	// published to the revocation feed (when that fails, the ids come
	// back with a *PublishError: the user is erased); ErrNotFound when there is no such
	// user. Of a delete racing a CreateSession, either the session is
	// ended by the delete or CreateSession fails with ErrNotFound.
	// The outbox messages given (the user.deleted event) are enqueued in
	// the same step; they are not the user's (Owned), and neither are its
	// queued webhook events, which stay queued.
	DeleteUser(ctx context.Context, id string, outbox ...*Mail) (*User, []string, error)
	// ListUsers walks the ordered user index (CreatedAt, then id) from
	// f.Cursor and returns the users that match f, at most f.Limit, having
	// examined at most UserScanBudget entries. It never scans the
	// keyspace. A malformed cursor is ErrBadCursor; a bad limit or status
	// an error.
	ListUsers(ctx context.Context, f UserFilter) (*UserPage, error)
	// BackfillUserIndex adds to the ordered index the users written
	// before it existed, once per store (a marker records that it ran),
	// and returns how many it added. Idempotent, and safe to run from
	// several instances at once.
	BackfillUserIndex(ctx context.Context) (int, error)
}

// ApplyUserPatch is UpdateUser's backend-neutral step: it validates p and
// applies it to u.
func ApplyUserPatch(u *User, p UserPatch) error {
	if p.Now.IsZero() {
		return errors.New("update user: now is required")
	}
	if p.Status != nil {
		switch *p.Status {
		case StatusPending, StatusActive, StatusInactive:
		default:
			return fmt.Errorf("update user: unknown status %q", *p.Status)
		}
		u.Status = *p.Status
		if u.Status != StatusPending {
			u.PendingUntil = 0
		}
	}
	if p.Permissions != nil {
		u.Permissions = slices.Clone(*p.Permissions)
		if u.Permissions == nil {
			u.Permissions = []string{}
		}
	}
	if p.AdminPermissions != nil {
		u.AdminPermissions = slices.Clone(*p.AdminPermissions)
		if len(u.AdminPermissions) == 0 {
			u.AdminPermissions = nil
		}
	}
	if p.PasswordHash != nil {
		if *p.PasswordHash == "" {
			return errors.New("update user: empty password hash")
		}
		u.PasswordHash = *p.PasswordHash
	}
	u.UpdatedAt = p.Now
	return nil
}

// CheckUserFilter validates f and returns its page size.
func CheckUserFilter(f UserFilter) (int, error) {
	switch f.Status {
	case "", StatusPending, StatusActive, StatusInactive:
	default:
		return 0, fmt.Errorf("list users: unknown status %q", f.Status)
	}
	switch {
	case f.Limit == 0:
		return DefaultUserPage, nil
	case f.Limit < 0 || f.Limit > MaxUserPage:
		return 0, fmt.Errorf("list users: limit %d outside 1..%d", f.Limit, MaxUserPage)
	}
	return f.Limit, nil
}

// Match reports whether u passes f's filters.
func (f UserFilter) Match(u *User) bool {
	return (f.Status == "" || u.Status == f.Status) &&
		(f.TenantID == "" || u.TenantID == f.TenantID) &&
		strings.HasPrefix(u.EmailKey, f.EmailPrefix)
}

// UserIndexScore is a user's position in the ordered index: its CreatedAt
// in Unix milliseconds (0 for a time before 1970), ties broken by id.
func UserIndexScore(u *User) int64 { return max(u.CreatedAt.UnixMilli(), 0) }

// UserCursor is a position in the ordered index: after the user with
// this score and id.
type UserCursor struct {
	Score int64
	ID    string
}

// String encodes c as an opaque cursor.
func (c UserCursor) String() string {
	return base64.RawURLEncoding.EncodeToString([]byte("u1." + strconv.FormatInt(c.Score, 10) + "." + c.ID))
}

// After reports whether (score, id) comes after c in index order.
func (c UserCursor) After(score int64, id string) bool {
	return score > c.Score || score == c.Score && id > c.ID
}

// ParseUserCursor decodes a cursor made by UserCursor.String; "" is the
// start (ok false). Anything else is ErrBadCursor.
func ParseUserCursor(s string) (c UserCursor, ok bool, err error) {
	if s == "" {
		return UserCursor{}, false, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return UserCursor{}, false, ErrBadCursor
	}
	parts := strings.SplitN(string(b), ".", 3)
	if len(parts) != 3 || parts[0] != "u1" || parts[2] == "" {
		return UserCursor{}, false, ErrBadCursor
	}
	score, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || score < 0 {
		return UserCursor{}, false, ErrBadCursor
	}
	return UserCursor{Score: score, ID: parts[2]}, true, nil
}
