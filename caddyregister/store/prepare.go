package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"
)

// This file holds the backend-neutral steps of the Store methods that
// write: validating what the caller hands in, deriving the records to store
// from it, and reporting the outcome back. Backends call them so that every
// backend accepts, refuses and fills in exactly the same.

// CheckNewUser is CreateUser's first check: n.User must be set, with an ID
// and an EmailKey, and a tenant founded with the user needs an ID.
func CheckNewUser(n NewUser) error {
	switch u := n.User; {
	case u == nil:
		return errors.New("create user: nil user")
	case u.ID == "":
		return errors.New("create user: empty user id")
	case u.EmailKey == "":
		return errors.New("create user: empty email key")
	case n.Tenant != nil && n.Tenant.ID == "":
		return errors.New("create user: empty tenant id")
	}
	return nil
}

// PrepareIdempotency is CreateUser's first step: it checks n.User
// (CheckNewUser), then validates n.Idempotency and returns the record to
// store: a copy with UserID (from n.User.ID) and, when zero, CreatedAt
// filled in, and Seq cleared (the backend sets the drawn number when it
// writes). The record is nil without an Idempotency.
func PrepareIdempotency(n NewUser) (*Idempotency, error) {
	if err := CheckNewUser(n); err != nil {
		return nil, err
	}
	if n.Idempotency == nil {
		return nil, nil
	}
	r := *n.Idempotency
	r.Seq = 0
	switch {
	case r.Key == "":
		return nil, errors.New("create user: idempotency without key")
	case len(r.Key) > MaxIdempotencyKeyLen:
		return nil, fmt.Errorf("create user: idempotency key longer than %d bytes", MaxIdempotencyKeyLen)
	case r.ExpiresAt.UnixMilli() <= 0:
		return nil, errors.New("create user: idempotency without expiry")
	}
	if err := setOwner("idempotency record", &r.UserID, n.User.ID); err != nil {
		return nil, err
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = time.Now()
	}
	return &r, nil
}

// PrepareToken validates n.Token and returns the record CreateUser stores,
// and its encoding: a copy with UserID filled in (from n.User.ID) when the
// caller left it empty. It returns nils without a Token. n.User must have
// passed CheckNewUser (see PrepareIdempotency).
func PrepareToken(n NewUser) (*Token, []byte, error) {
	if n.Token == nil {
		return nil, nil, nil
	}
	t := *n.Token
	switch {
	case t.Hash == "":
		return nil, nil, errors.New("create user: token without hash")
	case t.ExpiresAt.UnixMilli() <= 0:
		return nil, nil, errors.New("create user: token without expiry")
	}
	if err := setOwner("token", &t.UserID, n.User.ID); err != nil {
		return nil, nil, err
	}
	body, err := json.Marshal(&t)
	if err != nil {
		return nil, nil, fmt.Errorf("encode token: %w", err)
	}
	return &t, body, nil
}

// setOwner fills in a record's empty *owner with userID, and refuses a
// record (what) that names another user.
func setOwner(what string, owner *string, userID string) error {
	switch *owner {
	case "":
		*owner = userID
	case userID:
	default:
		return fmt.Errorf("create user: %s belongs to user %q, not %q", what, *owner, userID)
	}
	return nil
}

// PrepareMails validates CreateUser's mails, refusing a nil one, one
// without an ID and one repeating another's ID, and returns their
// encodings, in order.
func PrepareMails(mails []*Mail) ([][]byte, error) {
	seen := make(map[string]bool, len(mails))
	for _, m := range mails {
		if m == nil || m.ID == "" {
			return nil, errors.New("create user: mail without id")
		}
		if seen[m.ID] {
			return nil, fmt.Errorf("create user: mail id %q given twice", m.ID)
		}
		seen[m.ID] = true
	}
	bodies := make([][]byte, len(mails))
	for i, m := range mails {
		b, err := json.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("encode mail: %w", err)
		}
		bodies[i] = b
	}
	return bodies, nil
}

// SeqJSON is a drawn sequence number as stored in Attributes[SeqAttr].
func SeqJSON(seq int64) json.RawMessage {
	return json.RawMessage(strconv.FormatInt(seq, 10))
}

// UserWithSeq returns a copy of u whose Attributes[SeqAttr] is v, for
// encoding the record CreateUser stores with a sequence number. The
// attribute map is cloned (allocated when nil), so u is left alone.
func UserWithSeq(u *User, v json.RawMessage) *User {
	c := *u
	c.Attributes = maps.Clone(u.Attributes)
	if c.Attributes == nil {
		c.Attributes = Attrs{}
	}
	c.Attributes[SeqAttr] = v
	return &c
}

// FinishCreate reports a committed CreateUser back into the caller's
// records, as NewUser documents: with n.Sequence, seq is set in
// n.User.Attributes[SeqAttr] (allocating the map); with n.Idempotency, its
// UserID and CreatedAt become those of idem (the record PrepareIdempotency
// returned, as stored) and its Seq becomes seq.
func FinishCreate(n NewUser, idem *Idempotency, seq int64) {
	if n.Sequence != "" {
		u := n.User
		if u.Attributes == nil {
			u.Attributes = Attrs{}
		}
		u.Attributes[SeqAttr] = SeqJSON(seq)
	}
	if n.Idempotency != nil {
		n.Idempotency.UserID = idem.UserID
		n.Idempotency.CreatedAt = idem.CreatedAt
		n.Idempotency.Seq = seq
	}
}

// PrepareTenant validates a tenant for CreateTenant or EnsureTenant (not
// nil, with an ID and a non-empty TenantCodeKey) and returns its encoded
// record and code key. Errors are prefixed with op.
func PrepareTenant(op string, t *Tenant) (body []byte, codeKey string, err error) {
	if t == nil {
		return nil, "", fmt.Errorf("%s: nil tenant", op)
	}
	if t.ID == "" {
		return nil, "", fmt.Errorf("%s: empty tenant id", op)
	}
	if codeKey = TenantCodeKey(t.Code); codeKey == "" {
		return nil, "", fmt.Errorf("%s: empty tenant code", op)
	}
	if body, err = json.Marshal(t); err != nil {
		return nil, "", fmt.Errorf("%s: encode tenant: %w", op, err)
	}
	return body, codeKey, nil
}

// TenantVATKey is t's Billing.VATKey, "" without billing.
func TenantVATKey(t *Tenant) string {
	if t.Billing == nil {
		return ""
	}
	return t.Billing.VATKey
}

// TokenUse is what one use of a token writes back, both encoded: the user
// as mutate left it and the token marked used.
type TokenUse struct {
	User  []byte
	Token []byte
}

// ApplyTokenUse is UseToken's backend-neutral step, between reading the
// token tok (unexpired) with its user u and writing them back. It returns
// UseToken's answer and, when the use goes ahead, the records to write:
//
//   - tok used before: u, unchanged, and ErrTokenUsed; mutate is not called.
//   - mutate fails, or changes what CheckMutation refuses, or a record does
//     not encode: nil and that error.
//   - otherwise: u, mutated, with the records (u, and tok with UsedAt now).
//
// Nothing is to be written unless the error is nil. tok is left alone.
func ApplyTokenUse(tok *Token, u *User, now time.Time, mutate func(*User) error) (*User, TokenUse, error) {
	const op = "use token"
	if tok.UsedAt != nil {
		return u, TokenUse{}, ErrTokenUsed
	}
	before := *u
	if err := mutate(u); err != nil {
		return nil, TokenUse{}, err
	}
	if err := CheckMutation(&before, u); err != nil {
		return nil, TokenUse{}, err
	}
	userJSON, err := json.Marshal(u)
	if err != nil {
		return nil, TokenUse{}, fmt.Errorf("%s: encode user: %w", op, err)
	}
	used, at := *tok, now
	used.UsedAt = &at
	tokJSON, err := json.Marshal(&used)
	if err != nil {
		return nil, TokenUse{}, fmt.Errorf("%s: encode token: %w", op, err)
	}
	return u, TokenUse{User: userJSON, Token: tokJSON}, nil
}

// CheckMutation refuses the changes UseToken's mutate may not make: the
// backend rewrites the user record only, so the fields its indexes (and
// tenant) hang on (ID, TenantID, Email, EmailKey, Login, LoginKey, and
// CreatedAt for the ordered user index) must stay as they were in before.
func CheckMutation(before, after *User) error {
	var changed []string
	for _, f := range []struct {
		name     string
		old, new string
	}{
		{"ID", before.ID, after.ID},
		{"TenantID", before.TenantID, after.TenantID},
		{"Email", before.Email, after.Email},
		{"EmailKey", before.EmailKey, after.EmailKey},
		{"Login", before.Login, after.Login},
		{"LoginKey", before.LoginKey, after.LoginKey},
	} {
		if f.old != f.new {
			changed = append(changed, f.name)
		}
	}
	if !before.CreatedAt.Equal(after.CreatedAt) {
		// The ordered user index is keyed by it (Users.ListUsers).
		changed = append(changed, "CreatedAt")
	}
	if len(changed) > 0 {
		return fmt.Errorf("use token: mutate changed %s, which UseToken may not change", strings.Join(changed, ", "))
	}
	return nil
}

// UserRefs lists the records a new user owns besides its own record and
// index entries, so that the step deleting the user (CreateUser replacing
// a user that expired pending, and erasing a user) finds them without a
// scan: "token:<hash>" for its token and "mail:<id>" for each mail. They
// are key suffixes after the Redis namespace prefix; the embedded store
// keeps the same strings. n must have passed CheckNewUser.
func UserRefs(n NewUser) []string {
	var refs []string
	if n.Token != nil && n.Token.Hash != "" {
		refs = append(refs, "token:"+n.Token.Hash)
	}
	for _, m := range n.Mails {
		if m != nil && m.ID != "" && Owned(m) {
			refs = append(refs, "mail:"+m.ID)
		}
	}
	return refs
}

// PrepareSession checks n.Session for CreateUser and returns it (nil
// without one): it must pass CheckSession and belong to n.User (an empty
// UserID is filled in on a copy).
func PrepareSession(n NewUser) (*Session, error) {
	if n.Session == nil {
		return nil, nil
	}
	s := *n.Session
	if err := setOwner("session", &s.UserID, n.User.ID); err != nil {
		return nil, err
	}
	if err := CheckSession(&s); err != nil {
		return nil, fmt.Errorf("create user: %w", err)
	}
	return &s, nil
}
