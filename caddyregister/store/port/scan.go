package port

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// section is where a kind may appear in a stream: never before a kind of
// an earlier section. An import relies on it (a mail's user is written
// before the mail, a user's sessions follow the user).
var section = map[string]int{
	KindSecret: 0, KindTenant: 1, KindUser: 2, KindSession: 2, KindToken: 2, KindMail: 3, KindSequence: 4,
}

var sectionNames = []string{"secret", "tenant", "user", "mail", "sequence"}

// scanner reads a stream's records one at a time and refuses any that an
// import could not write as they are: a wrong header, an unknown kind or
// field, a record missing what its kind needs, a kind out of stream
// order, a session or token that does not follow its user's record, a
// secret the caller did not name, and an end record whose counts differ
// from what was read or that is followed by more. It holds one record at a
// time.
type scanner struct {
	dec    *json.Decoder
	o      ImportOptions
	domain string // the header's KeyDomain
	n      int    // the last record's number (the header is 1)
	sec    int    // the section of the last record
	user   string // the id of the last user record
	read   Counts
	end    *Record
}

func newScanner(r io.Reader, o ImportOptions) (*scanner, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var head Record
	if err := dec.Decode(&head); err != nil {
		return nil, fmt.Errorf("read header: %w", err)
	}
	if head.Kind != KindHeader || head.Format != Format {
		return nil, fmt.Errorf("not a %s stream (first record: kind %q, format %q)", Format, head.Kind, head.Format)
	}
	return &scanner{dec: dec, o: o, domain: head.KeyDomain, n: 1, read: Counts{}}, nil
}

// next returns the next data record and its number, or io.EOF after a
// valid end record.
func (s *scanner) next() (*Record, int, error) {
	if s.end != nil {
		return nil, s.n, io.EOF
	}
	s.n++
	rec := new(Record)
	err := s.dec.Decode(rec)
	if errors.Is(err, io.EOF) {
		return nil, s.n, fmt.Errorf("%w: no end record after %d records", ErrTruncated, s.n-1)
	}
	if err != nil {
		return nil, s.n, fmt.Errorf("record %d: %w", s.n, err)
	}
	if rec.Kind == KindEnd {
		if err := s.checkEnd(rec); err != nil {
			return nil, s.n, err
		}
		s.end = rec
		return nil, s.n, io.EOF
	}
	if err := s.check(rec); err != nil {
		return nil, s.n, fmt.Errorf("record %d (%s): %w", s.n, rec.Kind, err)
	}
	s.read[rec.Kind]++
	return rec, s.n, nil
}

// check refuses a data record an import could not write.
func (s *scanner) check(rec *Record) error {
	sec, ok := section[rec.Kind]
	switch {
	case !ok:
		return fmt.Errorf("unknown record kind %q", rec.Kind)
	case sec < s.sec:
		return fmt.Errorf("a %s record after the %s records: not an export's order", rec.Kind, sectionNames[s.sec])
	}
	s.sec = sec
	switch rec.Kind {
	case KindSecret:
		if rec.Name == "" || len(rec.Value) == 0 {
			return errors.New("secret without name or value")
		}
		if s.o.Secrets != nil && !slices.Contains(s.o.Secrets, rec.Name) {
			return fmt.Errorf("secret %q is not one the engine keeps", rec.Name)
		}
		if s.o.Reseal != nil {
			v, err := s.o.Reseal(rec.Name, s.domain, rec.Value)
			if err != nil {
				return fmt.Errorf("secret %s: %w", rec.Name, err)
			}
			rec.Value = v
		}
	case KindTenant:
		if rec.Tenant == nil || rec.Tenant.ID == "" || rec.Tenant.Code == "" {
			return errors.New("tenant record without tenant id or code")
		}
	case KindUser:
		if err := store.CheckNewUser(store.NewUser{User: rec.User}); err != nil {
			return err
		}
		s.user = rec.User.ID
	case KindSession:
		if rec.Session == nil {
			return errors.New("session record without session")
		}
		if err := store.CheckSession(rec.Session); err != nil {
			return err
		}
		return s.owned(rec.Session.UserID)
	case KindToken:
		if rec.Token == nil || rec.Token.Hash == "" || rec.Token.ExpiresAt.IsZero() {
			return errors.New("token record without hash or expiry")
		}
		return s.owned(rec.Token.UserID)
	case KindMail:
		if rec.Mail == nil || rec.State == nil {
			return errors.New("mail record without mail or state")
		}
		return store.CheckMailState(rec.Mail, *rec.State)
	case KindSequence:
		if rec.Name == "" || rec.Number < 0 {
			return errors.New("sequence without name, or below 0")
		}
	}
	return nil
}

func (s *scanner) owned(owner string) error {
	if owner == "" || owner != s.user {
		return fmt.Errorf("belongs to user %q but does not follow that user's record", owner)
	}
	return nil
}

// checkEnd checks the end record: counts as read, nothing after it.
func (s *scanner) checkEnd(rec *Record) error {
	for _, k := range Kinds {
		if s.read[k] != rec.Counts[k] {
			return fmt.Errorf("%w: the export wrote %d %s records, the import read %d", ErrTruncated, rec.Counts[k], k, s.read[k])
		}
	}
	for k := range rec.Counts {
		if s.read[k] != rec.Counts[k] {
			return fmt.Errorf("%w: the export counts %d records of unknown kind %q", ErrTruncated, rec.Counts[k], k)
		}
	}
	var extra json.RawMessage
	if err := s.dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: data after the end record", ErrTruncated)
	}
	return nil
}

// Check reads a whole stream and refuses it, writing nothing, if an
// import with o would find a record it cannot write, a kind out of order,
// a secret o does not allow or cannot seal again, or counts that differ
// from its end record (see scanner). It returns the counts read.
func Check(r io.Reader, o ImportOptions) (Counts, error) {
	s, err := newScanner(r, o)
	if err != nil {
		return nil, err
	}
	for {
		_, _, err := s.next()
		if errors.Is(err, io.EOF) {
			return s.read, nil
		}
		if err != nil {
			return s.read, err
		}
	}
}
