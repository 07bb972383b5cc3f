package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Resend is what a user awaiting an e-mail confirmation keeps so the link
// can be mailed again (engine.ResendActivation): which registered resender
// renders the mail (a handler's template, by contract and prefix) and the
// link around the token, as the registration built it. The link is kept
// rather than rebuilt because it may hold the request's checked host or a
// client's callback URL, which a later request (on another host, through
// another contract) cannot know.
type Resend struct {
	// Mailer names the resender (engine.ResenderKey).
	Mailer string `json:"mailer"`
	// LinkPrefix and LinkSuffix surround the token in the link.
	LinkPrefix string `json:"link_prefix"`
	LinkSuffix string `json:"link_suffix,omitempty"`
}

// LinkReissue is a fresh confirmation link for a user awaiting one (see
// Links.ReissueLink).
type LinkReissue struct {
	UserID string
	// Token is the new link's token and Mail the mail carrying it.
	Token *Token
	Mail  *Mail
	// PendingUntil is the user's new expiry (User.PendingUntil, Unix ms).
	PendingUntil int64
	// Now is when the reissue happens: the user must not have expired
	// pending by then, and UpdatedAt becomes it.
	Now time.Time
}

// Links is how a confirmation link is mailed again.
type Links interface {
	// ReissueLink replaces, in one atomic step, the link tokens and the
	// undelivered mails (queued or parked) of a user awaiting an e-mail
	// confirmation with r.Token and r.Mail (queued at its NextAttempt),
	// sets the user's PendingUntil to r.PendingUntil, and lists the new
	// token and mail in the user's refs (UserRefs), so erasure and the
	// replacement of an expired pending user find them. Older links stop
	// working: only the newest mail's link confirms.
	//
	// The user must exist, be pending with a PendingUntil after r.Now
	// (User.PendingExpired false, PendingUntil set): otherwise ErrNotFound
	// and nothing is written. A token hash or mail id already stored is a
	// *ConflictError ("token", "mail_id"). It returns the updated user.
	ReissueLink(ctx context.Context, r LinkReissue) (*User, error)
}

// CheckReissue validates r before a backend writes it and returns the
// token and mail with their owner filled in (as PrepareToken does).
func CheckReissue(r LinkReissue) (*Token, *Mail, error) {
	switch {
	case r.UserID == "":
		return nil, nil, errors.New("reissue link: empty user id")
	case r.Token == nil || r.Token.Hash == "":
		return nil, nil, errors.New("reissue link: token without hash")
	case r.Token.ExpiresAt.UnixMilli() <= 0:
		return nil, nil, errors.New("reissue link: token without expiry")
	case r.Mail == nil || r.Mail.ID == "":
		return nil, nil, errors.New("reissue link: mail without id")
	case r.PendingUntil <= 0:
		return nil, nil, errors.New("reissue link: no pending expiry")
	}
	t, m := *r.Token, *r.Mail
	if err := setOwner("token", &t.UserID, r.UserID); err != nil {
		return nil, nil, fmt.Errorf("reissue link: %w", err)
	}
	if err := setOwner("mail", &m.UserID, r.UserID); err != nil {
		return nil, nil, fmt.Errorf("reissue link: %w", err)
	}
	return &t, &m, nil
}

// Reissuable reports whether u may get a reissued link at now: pending,
// awaiting a mailed confirmation (PendingUntil set) that has not expired.
func (u *User) Reissuable(now time.Time) bool {
	return u.Status == StatusPending && u.PendingUntil > 0 && !u.PendingExpired(now)
}

// IsLinkRef reports whether ref (an entry of UserRefs) names a link token
// or a mail, what ReissueLink replaces.
func IsLinkRef(ref string) bool {
	return strings.HasPrefix(ref, "token:") || strings.HasPrefix(ref, "mail:")
}
