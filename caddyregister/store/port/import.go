package port

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// Report is what an import did, per kind.
type Report struct {
	// Read counts the stream's records; Expected the counts its end
	// record states.
	Read     Counts `json:"read"`
	Expected Counts `json:"expected"`
	// Written were written; Present were in the target already (same id,
	// hash or value); Skipped had expired by the import (a session or a
	// token whose time ran out since the export), or belong to a user
	// that was not imported (a conflict).
	Written Counts `json:"written"`
	Present Counts `json:"present"`
	Skipped Counts `json:"skipped"`
	// Conflicts counts records that collide with a different record in
	// the target; Problems describes the first MaxProblems of them.
	Conflicts Counts   `json:"conflicts"`
	Problems  []string `json:"problems,omitempty"`
}

// MaxProblems bounds Report.Problems.
const MaxProblems = 20

// ErrConflicts is returned (wrapped) by Import when records collided with
// different ones in the target; Report.Problems names them.
var ErrConflicts = errors.New("records conflict with the target store")

// ErrTruncated is returned (wrapped) when the stream ends without its end
// record, or its counts differ from what was read.
var ErrTruncated = errors.New("export stream incomplete")

func newReport() *Report {
	return &Report{Read: Counts{}, Expected: Counts{}, Written: Counts{}, Present: Counts{}, Skipped: Counts{}, Conflicts: Counts{}}
}

func (r *Report) conflict(kind, what string) {
	r.Conflicts[kind]++
	if len(r.Problems) < MaxProblems {
		r.Problems = append(r.Problems, what)
	}
}

// Import writes the records of the stream r into dst (see the package
// comment for what it does with records already there), checks the end
// record's counts and returns what it did. now decides which sessions and
// tokens have expired since the export. The report is returned with an
// error too, so far as the import got.
func Import(ctx context.Context, dst store.Store, r io.Reader, now time.Time) (*Report, error) {
	p, err := asPorter(dst)
	if err != nil {
		return nil, err
	}
	rep := newReport()
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var head Record
	if err := dec.Decode(&head); err != nil {
		return rep, fmt.Errorf("read header: %w", err)
	}
	if head.Kind != KindHeader || head.Format != Format {
		return rep, fmt.Errorf("not a %s stream (first record: kind %q, format %q)", Format, head.Kind, head.Format)
	}
	im := importer{p: p, rep: rep, now: now}
	for n := 2; ; n++ {
		var rec Record
		err := dec.Decode(&rec)
		if errors.Is(err, io.EOF) {
			return rep, fmt.Errorf("%w: no end record after %d records", ErrTruncated, n-1)
		}
		if err != nil {
			return rep, fmt.Errorf("record %d: %w", n, err)
		}
		if rec.Kind == KindEnd {
			if err := im.end(dec, rec); err != nil {
				return rep, err
			}
			break
		}
		rep.Read[rec.Kind]++
		if err := im.put(ctx, &rec); err != nil && !errors.Is(err, errSkip) {
			return rep, fmt.Errorf("record %d (%s): %w", n, rec.Kind, err)
		}
	}
	if len(rep.Problems) > 0 {
		return rep, fmt.Errorf("%w: %d of them, first: %s", ErrConflicts, total(rep.Conflicts), rep.Problems[0])
	}
	return rep, nil
}

func total(c Counts) int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

// importer writes one stream's records.
type importer struct {
	p   porter
	rep *Report
	now time.Time
	// user is the id of the last user record and ok whether it is in the
	// target now: its sessions and tokens follow it.
	user string
	ok   bool
}

// end checks the end record: nothing after it, counts as read.
func (im *importer) end(dec *json.Decoder, rec Record) error {
	im.rep.Expected = rec.Counts
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: data after the end record", ErrTruncated)
	}
	for _, k := range Kinds {
		if im.rep.Read[k] != rec.Counts[k] {
			return fmt.Errorf("%w: the export wrote %d %s records, the import read %d", ErrTruncated, rec.Counts[k], k, im.rep.Read[k])
		}
	}
	for k := range rec.Counts {
		if im.rep.Read[k] != rec.Counts[k] {
			return fmt.Errorf("%w: the export counts %d records of unknown kind %q", ErrTruncated, rec.Counts[k], k)
		}
	}
	return nil
}

// put writes one record and counts the outcome.
func (im *importer) put(ctx context.Context, rec *Record) error {
	kind := rec.Kind
	done := func(wrote bool, err error) error {
		switch {
		case errors.Is(err, errSkip):
			return nil // counted as a conflict
		case err != nil:
			return err
		case wrote:
			im.rep.Written[kind]++
		default:
			im.rep.Present[kind]++
		}
		return nil
	}
	switch kind {
	case KindSecret:
		if rec.Name == "" || len(rec.Value) == 0 {
			return errors.New("secret without name or value")
		}
		return done(im.secret(ctx, rec.Name, rec.Value))
	case KindTenant:
		if rec.Tenant == nil {
			return errors.New("tenant record without tenant")
		}
		return done(im.tenant(ctx, rec.Tenant))
	case KindUser:
		if rec.User == nil || rec.User.ID == "" {
			return errors.New("user record without user")
		}
		return done(im.userRecord(ctx, rec.User))
	case KindSession, KindToken:
		return im.owned(ctx, rec, done)
	case KindMail:
		if rec.Mail == nil || rec.State == nil {
			return errors.New("mail record without mail or state")
		}
		return done(im.p.PutMail(ctx, rec.Mail, *rec.State))
	case KindSequence:
		if rec.Name == "" || rec.Number < 0 {
			return errors.New("sequence without name, or below 0")
		}
		return done(im.sequence(ctx, rec.Name, rec.Number))
	default:
		return fmt.Errorf("unknown record kind %q", kind)
	}
}

// secret stores value under name, replacing what the target holds: the
// target may have made a key of its own when it was started before the
// import, and the moved tokens and sealed mails need the source's.
func (im *importer) secret(ctx context.Context, name string, value []byte) (bool, error) {
	cur, err := im.p.Secret(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		if cur, err = im.p.LoadOrCreateSecret(ctx, name, value); err == nil && bytes.Equal(cur, value) {
			return true, nil
		}
	}
	for range 5 {
		switch {
		case err != nil:
			return false, err
		case bytes.Equal(cur, value):
			return false, nil
		}
		ok, err := im.p.SwapSecret(ctx, name, cur, value)
		if err != nil || ok {
			return ok, err
		}
		cur, err = im.p.Secret(ctx, name)
	}
	return false, fmt.Errorf("secret %s kept changing: is an instance running on the target?", name)
}

// sequence raises sequence name to n, and reports whether it was below.
func (im *importer) sequence(ctx context.Context, name string, n int64) (bool, error) {
	cur, err := im.p.Sequences(ctx)
	if err != nil {
		return false, err
	}
	if cur[name] >= n {
		return false, nil
	}
	return true, im.p.RaiseSequence(ctx, name, n)
}

// tenant creates t unless a tenant with its id is there already.
func (im *importer) tenant(ctx context.Context, t *store.Tenant) (bool, error) {
	err := im.p.CreateTenant(ctx, t)
	var ce *store.ConflictError
	switch {
	case err == nil:
		return true, nil
	case !errors.As(err, &ce):
		return false, err
	}
	if got, gerr := im.p.GetTenant(ctx, t.ID); gerr == nil && store.TenantCodeKey(got.Code) == store.TenantCodeKey(t.Code) {
		return false, nil
	}
	im.rep.conflict(KindTenant, fmt.Sprintf("tenant %s (code %q): %v", t.ID, t.Code, err))
	return false, errSkip
}

// userRecord creates u unless a user with its id is there already.
func (im *importer) userRecord(ctx context.Context, u *store.User) (bool, error) {
	im.user, im.ok = u.ID, false
	err := im.p.CreateUser(ctx, store.NewUser{User: u})
	if err == nil {
		im.ok = true
		return true, nil
	}
	var ce *store.ConflictError
	if !errors.As(err, &ce) && !errors.Is(err, store.ErrNotFound) {
		return false, err
	}
	if got, gerr := im.p.GetUser(ctx, u.ID); gerr == nil && got.EmailKey == u.EmailKey {
		im.ok = true
		return false, nil
	}
	im.rep.conflict(KindUser, fmt.Sprintf("user %s (%s): %v", u.ID, u.Email, err))
	return false, errSkip
}

// owned writes a session or token of the user record before it.
func (im *importer) owned(ctx context.Context, rec *Record, done func(bool, error) error) error {
	var owner string
	switch {
	case rec.Kind == KindSession && rec.Session != nil:
		owner = rec.Session.UserID
	case rec.Kind == KindToken && rec.Token != nil:
		owner = rec.Token.UserID
	default:
		return fmt.Errorf("%s record without its %s", rec.Kind, rec.Kind)
	}
	if owner != im.user {
		return fmt.Errorf("%s of user %s does not follow its user's record", rec.Kind, owner)
	}
	if !im.ok {
		im.rep.Skipped[rec.Kind]++
		return nil
	}
	if rec.Kind == KindToken {
		if !rec.Token.ExpiresAt.After(im.now) {
			im.rep.Skipped[rec.Kind]++
			return nil
		}
		return done(im.p.PutToken(ctx, rec.Token))
	}
	if !rec.Session.Live(im.now) {
		im.rep.Skipped[rec.Kind]++
		return nil
	}
	err := im.p.CreateSession(ctx, rec.Session)
	var ce *store.ConflictError
	if errors.As(err, &ce) {
		return done(false, nil)
	}
	if errors.Is(err, store.ErrUserInactive) {
		im.rep.Skipped[rec.Kind]++ // a disabled user has no sessions
		return nil
	}
	return done(err == nil, err)
}

// errSkip marks a record counted as a conflict: the import goes on.
var errSkip = errors.New("skipped")
