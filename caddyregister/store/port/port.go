// Package port moves every record of one store to another as JSON lines:
// what `caddy register export` writes and `caddy register import` reads.
//
// A stream is a header, then the records in the order an import must
// write them: secrets, tenants, each user followed by its live sessions
// and its unexpired link tokens, the outbox (each chain in order, so the
// import rebuilds it), the sequences, and an end record with the number of
// records of each kind. Memory stays flat in the number of users: users
// are read a page at a time and each record is written as it is read.
//
// An import is idempotent: a record already in the target (same id, same
// hash, same name) is left as it is and counted as present, so a run cut
// short is simply run again. A record that collides with a different one
// (an e-mail held by another user id, a tenant code held by another
// tenant) is a conflict: it is reported, its user's sessions and tokens
// are not written, and the import fails at the end. The end record's
// counts are checked against what was read, so a truncated stream fails
// too.
//
// Not moved, by design: idempotency records (a retry after the move
// conflicts on the e-mail instead of replaying), CAPTCHA challenges, rate
// limit and lockout counters, and the revocation feed (revoked sessions
// are gone from the store already; instances start with empty caches).
package port

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// Format names this stream's layout in its header. A reader refuses any
// other.
const Format = "caddyregister-export/1"

// Record kinds, in stream order.
const (
	KindHeader   = "header"
	KindSecret   = "secret"
	KindTenant   = "tenant"
	KindUser     = "user"
	KindSession  = "session"
	KindToken    = "token"
	KindMail     = "mail"
	KindSequence = "sequence"
	KindEnd      = "end"
)

// Kinds are the kinds of data records (not the header or end), in stream
// order.
var Kinds = []string{KindSecret, KindTenant, KindUser, KindSession, KindToken, KindMail, KindSequence}

// Record is one line of a stream. Kind says which of the other fields is
// set.
type Record struct {
	Kind string `json:"kind"`
	// Format, Created and KeyDomain: the header. KeyDomain is what the
	// source's sealed secrets are bound to (secretbox), so an import into
	// a store of another domain can seal them again for its own.
	Format    string    `json:"format,omitempty"`
	Created   time.Time `json:"created,omitzero"`
	KeyDomain string    `json:"key_domain,omitempty"`
	// Name: a secret's or a sequence's; Value a secret's bytes as stored
	// (sealed when the source has a key-encryption key); Number a
	// sequence's last drawn number.
	Name   string `json:"name,omitempty"`
	Value  []byte `json:"value,omitempty"`
	Number int64  `json:"number,omitempty"`

	Tenant  *store.Tenant    `json:"tenant,omitempty"`
	User    *store.User      `json:"user,omitempty"`
	Session *store.Session   `json:"session,omitempty"`
	Token   *store.Token     `json:"token,omitempty"`
	Mail    *store.Mail      `json:"mail,omitempty"`
	State   *store.MailState `json:"state,omitempty"`

	// Counts: the end record's number of records of each kind.
	Counts Counts `json:"counts,omitempty"`
}

// Counts is a number of records per kind.
type Counts map[string]int

// porter is the store a stream is read from or written to.
type porter interface {
	store.Store
	store.Porter
}

func asPorter(s store.Store) (porter, error) {
	p, ok := s.(porter)
	if !ok {
		return nil, fmt.Errorf("store %T cannot export or import", s)
	}
	return p, nil
}

// ExportOptions say what an export takes along besides the records.
type ExportOptions struct {
	// Secrets names the store secrets to export (those src holds).
	Secrets []string
	// KeyDomain is what src's sealed secrets are bound to (the header's).
	KeyDomain string
	// Now decides which sessions are live and which tokens unexpired.
	Now time.Time
}

// Export writes every record of src to w as a stream: the secrets named
// (those src holds), tenants, users with their live sessions and
// unexpired tokens, the outbox and sequences. It returns the counts the
// end record carries. src should have no writer meanwhile: the stream is
// not a snapshot, so a record written during the export may be missed.
func Export(ctx context.Context, src store.Store, o ExportOptions, w io.Writer) (Counts, error) {
	secrets, now := o.Secrets, o.Now
	p, err := asPorter(src)
	if err != nil {
		return nil, err
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	counts := Counts{}
	put := func(r *Record) error {
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("write %s: %w", r.Kind, err)
		}
		counts[r.Kind]++
		return nil
	}
	if err := enc.Encode(&Record{Kind: KindHeader, Format: Format, Created: now.UTC(), KeyDomain: o.KeyDomain}); err != nil {
		return nil, fmt.Errorf("write header: %w", err)
	}
	for _, name := range secrets {
		v, err := p.Secret(ctx, name)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("export secret %s: %w", name, err)
		}
		if err := put(&Record{Kind: KindSecret, Name: name, Value: v}); err != nil {
			return nil, err
		}
	}
	tenants, err := p.ListTenants(ctx)
	if err != nil {
		return nil, fmt.Errorf("export tenants: %w", err)
	}
	for _, t := range tenants {
		if err := put(&Record{Kind: KindTenant, Tenant: t}); err != nil {
			return nil, err
		}
	}
	// Users are listed through the ordered index; a store last run by a
	// release before it has users outside it until an engine starts on
	// it, which an export must not depend on. Done once, then a no-op.
	if _, err := p.BackfillUserIndex(ctx); err != nil {
		return nil, fmt.Errorf("export users: index: %w", err)
	}
	if err := exportUsers(ctx, p, put, now); err != nil {
		return nil, err
	}
	err = p.EachMail(ctx, func(m *store.Mail, st store.MailState) error {
		return put(&Record{Kind: KindMail, Mail: m, State: &st})
	})
	if err != nil {
		return nil, fmt.Errorf("export outbox: %w", err)
	}
	seqs, err := p.Sequences(ctx)
	if err != nil {
		return nil, fmt.Errorf("export sequences: %w", err)
	}
	for _, name := range slices.Sorted(maps.Keys(seqs)) {
		if err := put(&Record{Kind: KindSequence, Name: name, Number: seqs[name]}); err != nil {
			return nil, err
		}
	}
	if err := enc.Encode(&Record{Kind: KindEnd, Counts: counts}); err != nil {
		return nil, fmt.Errorf("write end: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("write: %w", err)
	}
	return counts, nil
}

// exportUsers writes every user, a page at a time, each followed by its
// live sessions and its unexpired tokens.
func exportUsers(ctx context.Context, p porter, put func(*Record) error, now time.Time) error {
	f := store.UserFilter{Limit: store.MaxUserPage}
	for {
		page, err := p.ListUsers(ctx, f)
		if err != nil {
			return fmt.Errorf("export users: %w", err)
		}
		for _, u := range page.Users {
			if err := put(&Record{Kind: KindUser, User: u}); err != nil {
				return err
			}
			sessions, err := p.ListSessions(ctx, u.ID)
			if err != nil {
				return fmt.Errorf("export sessions of user %s: %w", u.ID, err)
			}
			for _, s := range sessions {
				if !s.Live(now) {
					continue
				}
				if err := put(&Record{Kind: KindSession, Session: s}); err != nil {
					return err
				}
			}
			tokens, err := p.UserTokens(ctx, u.ID, now)
			if err != nil {
				return fmt.Errorf("export tokens of user %s: %w", u.ID, err)
			}
			for _, t := range tokens {
				if err := put(&Record{Kind: KindToken, Token: t}); err != nil {
					return err
				}
			}
		}
		if page.Next == "" {
			return nil
		}
		f.Cursor = page.Next
	}
}
