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

// LinkReissue is a fresh link for a user, replacing the earlier ones (see
// Links.ReissueLink): a confirmation link for a user awaiting one (Purpose
// empty), or a link of one purpose for an active account, such as a
// password reset (Purpose set).
type LinkReissue struct {
	UserID string
	// Token is the new link's token and Mail the mail carrying it. With
	// Purpose set, Token may be nil: the user's links of Purpose are
	// revoked and Mail (a notice without a link, such as "your password
	// was changed") is queued in the same step.
	Token *Token
	Mail  *Mail
	// PendingUntil is the user's new expiry (User.PendingUntil, Unix ms);
	// zero, and the expiry untouched, with Purpose set.
	PendingUntil int64
	// Now is when the reissue happens: a pending user must not have
	// expired by then, and its UpdatedAt becomes it.
	Now time.Time
	// Purpose, when set, scopes the reissue to an active account with a
	// password (User.Status active, PasswordHash set) and to links of
	// this purpose: only the user's tokens of Purpose and the undelivered
	// mails whose Mail.Purpose is Purpose are replaced; other links (a
	// used activation link, which answers again) and other mails stay,
	// and the user record is not written. Token, when set, must have
	// this purpose.
	Purpose string
}

// Links is how a link is mailed again, or anew: a confirmation link
// (engine.ResendActivation), a password reset link
// (engine.ForgotPassword).
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
	//
	// With r.Purpose set, the user must instead be active with a
	// password (otherwise ErrNotFound, nothing written), only its tokens
	// and undelivered mails of r.Purpose are replaced, r.Token may be nil
	// (the links are revoked and r.Mail queued), and the user record is
	// returned as it was.
	ReissueLink(ctx context.Context, r LinkReissue) (*User, error)
}

// CheckReissue validates r before a backend writes it and returns the
// token and mail with their owner filled in (as PrepareToken does).
func CheckReissue(r LinkReissue) (*Token, *Mail, error) {
	switch {
	case r.UserID == "":
		return nil, nil, errors.New("reissue link: empty user id")
	case r.Token == nil && r.Purpose == "":
		return nil, nil, errors.New("reissue link: no token")
	case r.Token != nil && r.Token.Hash == "":
		return nil, nil, errors.New("reissue link: token without hash")
	case r.Token != nil && r.Token.ExpiresAt.UnixMilli() <= 0:
		return nil, nil, errors.New("reissue link: token without expiry")
	case r.Token != nil && r.Purpose != "" && r.Token.Purpose != r.Purpose:
		return nil, nil, fmt.Errorf("reissue link: token of purpose %q in a reissue of %q", r.Token.Purpose, r.Purpose)
	case r.Mail == nil || r.Mail.ID == "":
		return nil, nil, errors.New("reissue link: mail without id")
	case r.Purpose == "" && r.PendingUntil <= 0:
		return nil, nil, errors.New("reissue link: no pending expiry")
	case r.Purpose != "" && r.PendingUntil != 0:
		return nil, nil, errors.New("reissue link: a pending expiry for an active account")
	}
	m := *r.Mail
	if err := setOwner("mail", &m.UserID, r.UserID); err != nil {
		return nil, nil, fmt.Errorf("reissue link: %w", err)
	}
	if r.Token == nil {
		return nil, &m, nil
	}
	t := *r.Token
	if err := setOwner("token", &t.UserID, r.UserID); err != nil {
		return nil, nil, fmt.Errorf("reissue link: %w", err)
	}
	return &t, &m, nil
}

// Eligible reports whether u may get the reissue r at r.Now (see
// Links.ReissueLink): pending and Reissuable for a confirmation link,
// active with a password for a link of r.Purpose.
func (r LinkReissue) Eligible(u *User) bool {
	if r.Purpose == "" {
		return u.Reissuable(r.Now)
	}
	return u.Status == StatusActive && u.PasswordHash != ""
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
