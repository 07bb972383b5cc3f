package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Porter is what a backend offers beyond Store so that every record can be
// moved to another store (package port drives it; `caddy register export`
// and `import` run it). Users, tenants and sessions go through Store's own
// operations (ListUsers, ListTenants, ListSessions; CreateUser,
// CreateTenant, CreateSession); Porter adds the reads Store has no use
// for at run time, and the writes that put a record back in the state it
// was exported in rather than the state a fresh write would give it.
type Porter interface {
	// Secret returns the secret stored under name, or ErrNotFound.
	// Unlike LoadOrCreateSecret it never writes: an export must not
	// leave a key behind in the store it reads.
	Secret(ctx context.Context, name string) ([]byte, error)
	// UserTokens returns the user's single-use tokens (used or not) that
	// have not expired at now, in no particular order.
	UserTokens(ctx context.Context, userID string, now time.Time) ([]*Token, error)
	// PutToken writes t as CreateUser would have written it (record,
	// expiry, the owner's reference, so erasing the user deletes it),
	// UsedAt included. A token with t's hash already stored is left as it
	// is and PutToken reports false. The owner must exist (ErrNotFound
	// otherwise), and the token must not have expired.
	PutToken(ctx context.Context, t *Token) (bool, error)
	// EachMail calls fn for every message in the outbox, parked ones
	// included, with the state it is in. A chain's messages come in chain
	// order (the one at its head first), so that PutMail, given them in
	// the same order, rebuilds the chain. fn's error stops the walk and
	// is returned. Messages written during the walk may or may not be
	// seen.
	EachMail(ctx context.Context, fn func(*Mail, MailState) error) error
	// PutMail writes m in state st: parked (st.Parked, parked at st.At),
	// or queued, due at st.At, or, when m.Chain already has messages in
	// the outbox, appended behind them (exactly where a fresh write puts
	// it), or, when st.Unchained, queued at st.At outside its chain; a
	// chained message whose chain is empty is due at st.At, or at
	// once when st.At is zero (it was behind one that has gone since).
	// An owned message (Owned) whose user exists is added to the
	// user's references, so erasing the user deletes it. A message with
	// m.ID already stored is left as it is and PutMail reports false.
	PutMail(ctx context.Context, m *Mail, st MailState) (bool, error)
	// Sequences returns every store-wide sequence (NewUser.Sequence) with
	// the last number drawn from it.
	Sequences(ctx context.Context) (map[string]int64, error)
	// RaiseSequence makes the last number drawn from sequence name n,
	// unless it is already n or more, so an import never hands out a
	// number the source store already gave.
	RaiseSequence(ctx context.Context, name string, n int64) error
}

// MailState is where an outbox message stands (Porter.EachMail).
type MailState struct {
	// Parked: the message is in the parked set (ParkMail), not the
	// outbox.
	Parked bool `json:"parked,omitempty"`
	// Behind: the message waits in its chain behind an earlier one and is
	// not due until that one is acked or parked; At is then zero.
	Behind bool `json:"behind,omitempty"`
	// Unchained: a chained message queued outside its chain (a parked
	// one that RetryMail queued again): due at At, holding nothing up.
	Unchained bool `json:"unchained,omitempty"`
	// At is when a queued message is due (a claimed one's lease end), or
	// when a parked one was parked.
	At time.Time `json:"at,omitzero"`
}

// CheckMailState refuses a state PutMail cannot write.
func CheckMailState(m *Mail, st MailState) error {
	switch {
	case m == nil || m.ID == "":
		return fmt.Errorf("put mail: %w: message without id", ErrOutbox)
	case st.Parked && st.Behind:
		return fmt.Errorf("put mail %s: parked and behind its chain at once", m.ID)
	case st.Behind && m.Chain == "":
		return fmt.Errorf("put mail %s: behind a chain but it has none", m.ID)
	case st.Unchained && (m.Chain == "" || st.Behind || st.Parked):
		return fmt.Errorf("put mail %s: out of its chain but it has none, or is not queued", m.ID)
	case !st.Behind && st.At.IsZero() && !st.Parked:
		return fmt.Errorf("put mail %s: queued but not due at any time", m.ID)
	case st.Parked && st.At.IsZero():
		return fmt.Errorf("put mail %s: no time for its state", m.ID)
	}
	return nil
}

// CheckPutToken refuses a token PutToken cannot write.
func CheckPutToken(t *Token, now time.Time) error {
	switch {
	case t == nil || t.Hash == "":
		return errors.New("put token: token without hash")
	case t.UserID == "":
		return errors.New("put token: token without user")
	case !t.ExpiresAt.After(now):
		return fmt.Errorf("put token: %w: it expired at %v", ErrNotFound, t.ExpiresAt)
	}
	return nil
}
