package port

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
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

// Workers is how many users an import writes at once. A user's writes
// (its record, then its sessions and tokens) stay in order; different
// users' are independent, and writing one at a time leaves the import
// waiting on round trips: into one Redis node eight at once moved 6,056
// users/s against 1,875 one at a time (BenchmarkMove, two cores, export
// and check included; the Redis server's CPU is then the limit).
const Workers = 8

// ErrConflicts is returned (wrapped) by Import when records collided with
// different ones in the target; Report.Problems names them.
var ErrConflicts = errors.New("records conflict with the target store")

// ErrTruncated is returned (wrapped) when the stream ends without its end
// record, or its counts differ from what was read.
var ErrTruncated = errors.New("export stream incomplete")

func newReport() *Report {
	return &Report{Read: Counts{}, Expected: Counts{}, Written: Counts{}, Present: Counts{}, Skipped: Counts{}, Conflicts: Counts{}}
}

// ImportOptions say how an import treats what is not plain records.
type ImportOptions struct {
	// Secrets names the secrets a stream may hold (nil: any); another is
	// refused.
	Secrets []string
	// Reseal, when set, gives the value to store for a secret of the
	// stream, whose sealed values are bound to fromDomain (the header's
	// KeyDomain): the caller opens and seals them again for the target's
	// domain, or refuses them (the stream is then refused whole).
	Reseal func(name, fromDomain string, value []byte) ([]byte, error)
	// Now decides which sessions and tokens expired since the export.
	Now time.Time
}

// Import writes the records of the stream r into dst (see the package
// comment for what it does with records already there) and returns what
// it did. It reads r twice: first whole, through Check, so a stream an
// import would refuse part-way (a bad record, a kind out of order, a
// secret not allowed or that cannot be sealed again, counts that differ
// from its end record) is refused before anything is written; then it
// seeks back and writes. Users
// are written Workers at a time, each with its sessions and tokens in
// order; every other record in stream order. What can still stop an
// import part-way is the target failing (or ctx ending): the report is
// returned with the error, so far as the import got, and running it again
// completes it.
func Import(ctx context.Context, dst store.Store, r io.ReadSeeker, o ImportOptions) (*Report, error) {
	p, err := asPorter(dst)
	if err != nil {
		return nil, err
	}
	now := o.Now
	if _, err := Check(r, o); err != nil {
		return newReport(), err
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return newReport(), fmt.Errorf("read the stream again: %w", err)
	}
	sc, err := newScanner(r, o)
	if err != nil {
		return newReport(), err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	im := &importer{p: p, rep: newReport(), now: now, cancel: cancel, slots: make(chan struct{}, Workers)}
	im.rep.Read = sc.read
	err = im.run(ctx, sc)
	im.wait()
	if im.err != nil {
		err = im.err // the cause; the reader only stopped for it
	}
	if sc.end != nil {
		im.rep.Expected = sc.end.Counts
	}
	if err != nil {
		return im.rep, err
	}
	if len(im.rep.Problems) > 0 {
		return im.rep, fmt.Errorf("%w: %d of them, first: %s", ErrConflicts, total(im.rep.Conflicts), im.rep.Problems[0])
	}
	return im.rep, nil
}

// run hands each record on; a user's group is written by a worker once
// the next record shows it complete.
func (im *importer) run(ctx context.Context, sc *scanner) error {
	var g *group
	for {
		rec, n, err := sc.next()
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		switch {
		case err == nil && (rec.Kind == KindSession || rec.Kind == KindToken):
			g.owned = append(g.owned, rec)
			continue
		case err == nil && rec.Kind == KindUser:
			if ctx.Err() != nil {
				im.wait()
				if im.err != nil {
					return im.err // a worker failed: stop reading
				}
				return ctx.Err()
			}
			im.start(ctx, g)
			g = &group{n: n, user: rec.User}
			continue
		}
		im.start(ctx, g)
		g = nil
		// Everything after the users may depend on them (a mail is
		// referenced from its user), and goes in stream order.
		im.wait()
		if im.err != nil {
			return im.err
		}
		if err != nil {
			return nil // io.EOF: the end record, checked
		}
		if err := im.put(ctx, rec); err != nil {
			return fmt.Errorf("record %d (%s): %w", n, rec.Kind, err)
		}
	}
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
	now time.Time

	mu  sync.Mutex // guards rep and err while workers run
	rep *Report
	err error // a worker's first error

	seqs map[string]int64 // the target's sequences before the import

	cancel context.CancelFunc
	slots  chan struct{} // one per running worker
	wg     sync.WaitGroup
}

// group is a user record with the sessions and tokens that follow it.
type group struct {
	n     int // the user's record number, for errors
	user  *store.User
	owned []*Record
}

// start writes g in a worker, waiting for a free one: at most Workers
// groups are in memory.
func (im *importer) start(ctx context.Context, g *group) {
	if g == nil {
		return
	}
	im.slots <- struct{}{}
	im.wg.Add(1)
	go func() {
		defer func() { <-im.slots; im.wg.Done() }()
		if err := im.putGroup(ctx, g); err != nil {
			im.mu.Lock()
			if im.err == nil {
				im.err = fmt.Errorf("record %d (user %s): %w", g.n, g.user.ID, err)
			}
			im.mu.Unlock()
			im.cancel()
		}
	}()
}

// wait returns once every started group is written.
func (im *importer) wait() { im.wg.Wait() }

// count records the outcome of one record.
func (im *importer) count(kind string, wrote bool) {
	im.mu.Lock()
	defer im.mu.Unlock()
	if wrote {
		im.rep.Written[kind]++
	} else {
		im.rep.Present[kind]++
	}
}

func (im *importer) skip(kind string) {
	im.mu.Lock()
	defer im.mu.Unlock()
	im.rep.Skipped[kind]++
}

func (im *importer) conflict(kind, what string) {
	im.mu.Lock()
	defer im.mu.Unlock()
	im.rep.Conflicts[kind]++
	if len(im.rep.Problems) < MaxProblems {
		im.rep.Problems = append(im.rep.Problems, what)
	}
}

// put writes one record that is not a user's, in stream order.
func (im *importer) put(ctx context.Context, rec *Record) error {
	var wrote bool
	var err error
	switch rec.Kind { // the scanner checked each record's fields
	case KindSecret:
		wrote, err = im.secret(ctx, rec.Name, rec.Value)
	case KindTenant:
		wrote, err = im.tenant(ctx, rec.Tenant)
	case KindMail:
		wrote, err = im.p.PutMail(ctx, rec.Mail, *rec.State)
	case KindSequence:
		wrote, err = im.sequence(ctx, rec.Name, rec.Number)
	default:
		return fmt.Errorf("unknown record kind %q", rec.Kind)
	}
	switch {
	case errors.Is(err, errSkip):
		return nil // counted as a conflict
	case err != nil:
		return err
	}
	im.count(rec.Kind, wrote)
	return nil
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
// The target's sequences are read once (a SCAN on Redis), at the first.
func (im *importer) sequence(ctx context.Context, name string, n int64) (bool, error) {
	if im.seqs == nil {
		seqs, err := im.p.Sequences(ctx)
		if err != nil {
			return false, err
		}
		im.seqs = seqs
	}
	if im.seqs[name] >= n {
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
	im.conflict(KindTenant, fmt.Sprintf("tenant %s (code %q): %v", t.ID, t.Code, err))
	return false, errSkip
}

// putGroup writes a user unless a user with its id is there already, then
// its sessions and tokens; a user in conflict takes them with it.
func (im *importer) putGroup(ctx context.Context, g *group) error {
	u := g.user
	err := im.p.CreateUser(ctx, store.NewUser{User: u})
	var ce *store.ConflictError
	switch {
	case err == nil:
		im.count(KindUser, true)
	case !errors.As(err, &ce) && !errors.Is(err, store.ErrNotFound):
		return err
	default:
		if got, gerr := im.p.GetUser(ctx, u.ID); gerr != nil || got.EmailKey != u.EmailKey {
			im.conflict(KindUser, fmt.Sprintf("user %s (%s): %v", u.ID, u.Email, err))
			for _, rec := range g.owned {
				im.skip(rec.Kind)
			}
			return nil
		}
		im.count(KindUser, false)
	}
	for _, rec := range g.owned {
		if err := im.putOwned(ctx, rec); err != nil {
			return fmt.Errorf("%s: %w", rec.Kind, err)
		}
	}
	return nil
}

// putOwned writes a session or token of a user in the target.
func (im *importer) putOwned(ctx context.Context, rec *Record) error {
	if rec.Kind == KindToken {
		if !rec.Token.ExpiresAt.After(im.now) {
			im.skip(rec.Kind)
			return nil
		}
		wrote, err := im.p.PutToken(ctx, rec.Token)
		if err != nil {
			return err
		}
		im.count(rec.Kind, wrote)
		return nil
	}
	if !rec.Session.Live(im.now) {
		im.skip(rec.Kind)
		return nil
	}
	err := im.p.CreateSession(ctx, rec.Session)
	var ce *store.ConflictError
	switch {
	case errors.As(err, &ce):
		im.count(rec.Kind, false)
	case errors.Is(err, store.ErrUserInactive):
		im.skip(rec.Kind) // a disabled user has no sessions
	case err != nil:
		return err
	default:
		im.count(rec.Kind, true)
	}
	return nil
}

// errSkip marks a record counted as a conflict: the import goes on.
var errSkip = errors.New("skipped")
