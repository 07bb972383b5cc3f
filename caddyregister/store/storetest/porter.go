package storetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/store"
	"github.com/caddyregister/caddyregister/caddyregister/store/port"
)

// PortSecrets are the secret names the suite stores and exports.
var PortSecrets = []string{"jwt-ed25519", "outbox-key"}

// RunPorter is the suite for store.Porter and the export/import that
// package port drives on it: every record of a populated source is moved
// into an empty target (newSrc and newDst may be different backends), the
// target then exports the same records, its indexes, links, sessions,
// chains and erasure work on what was moved, a second import writes
// nothing, and bad streams and bad records are refused.
func RunPorter(t *testing.T, newSrc, newDst func(t *testing.T) store.Store) {
	t.Run("RoundTrip", func(t *testing.T) { testPortRoundTrip(t, newSrc(t), newDst(t)) })
	t.Run("Conflicts", func(t *testing.T) { testPortConflicts(t, newSrc(t), newDst(t)) })
	t.Run("BadStreams", func(t *testing.T) { testPortBadStreams(t, newSrc(t), newDst(t)) })
	t.Run("BadRecords", func(t *testing.T) { testPorterBadRecords(t, newDst(t)) })
}

func porterOf(t *testing.T, s store.Store) store.Porter {
	t.Helper()
	p, ok := s.(store.Porter)
	if !ok {
		t.Fatalf("%T does not implement store.Porter", s)
	}
	return p
}

// portFixture is what populate wrote.
type portFixture struct {
	founder, member, loggedIn, disabled *store.User
	tenant                              *store.Tenant
	activation                          *store.Token // the founder's, unused
	session                             *store.Session
	sessionRefresh                      string   // loggedIn's current refresh hash
	chain                               []string // the founder's webhook chain
	requeued                            []string // the member's: the first out of it
	users                               int
}

// populate writes one of everything a store keeps, and enough users to
// span more than one page of ListUsers.
func populate(t *testing.T, s store.Store) portFixture {
	t.Helper()
	c := ctx(t)
	now := time.Now().Truncate(time.Millisecond)
	var f portFixture
	for _, name := range PortSecrets {
		if _, err := s.LoadOrCreateSecret(c, name, []byte("value of "+name)); err != nil {
			t.Fatalf("LoadOrCreateSecret: %v", err)
		}
	}
	f.tenant = NewTestTenant("PORT", "es 99.999.999-p")
	if err := s.CreateTenant(c, NewTestTenant("OTHER", "")); err != nil {
		t.Fatalf("CreateTenant: %v", err)
	}
	f.founder = NewTestFounder("founder@port.example", "founder", f.tenant)
	f.founder.PendingUntil = now.Add(time.Hour).UnixMilli()
	f.founder.Resend = &store.Resend{Mailer: "default", LinkPrefix: "https://port.example/activate?t="}
	f.activation = NewTestToken(f.founder.ID, now.Add(time.Hour))
	due := NewTestMail(f.founder.ID, now.Add(-time.Minute))
	later := NewTestMail(f.founder.ID, now.Add(time.Hour))
	later.ExpiresAt, later.Purpose = now.Add(2*time.Hour), "activation"
	var hooks []*store.Mail
	for i := range 3 {
		h := NewTestMail(f.founder.ID, now)
		h.Kind, h.Event, h.Chain = store.KindWebhook, fmt.Sprintf("user.event%d", i), "user:"+f.founder.ID
		h.To = []string{"https://hooks.port.example/in"}
		hooks = append(hooks, h)
		f.chain = append(f.chain, h.ID)
	}
	create(t, s, store.NewUser{User: f.founder, Tenant: f.tenant, Token: f.activation, Sequence: "acct",
		Mails:   append([]*store.Mail{due, later}, hooks...),
		Session: NewTestSession(f.founder.ID, now, time.Hour, 2*time.Hour)})

	// A member who activated: its token is used, and stays until it expires.
	f.member = NewTestUser("member@port.example", "member")
	f.member.TenantID = f.tenant.ID
	used := NewTestToken(f.member.ID, now.Add(time.Hour))
	var rq []*store.Mail
	for _, ev := range []string{"user.created", "user.updated", "user.activated"} {
		rq = append(rq, NewTestEvent(f.member.ID, "user:"+f.member.ID, ev, now.Add(-3*time.Minute)))
		f.requeued = append(f.requeued, rq[len(rq)-1].ID)
	}
	create(t, s, store.NewUser{User: f.member, Token: used, Sequence: "acct", Mails: rq})
	// The member's first event is parked, then queued again by an
	// operator: out of its chain, due in an hour; the second heads it.
	m := claim(t, s, now, time.Minute)
	if m.ID != rq[0].ID {
		t.Fatalf("claimed %s, want the earliest %s", m.ID, rq[0].ID)
	}
	if err := s.ParkMail(c, m); err != nil {
		t.Fatalf("ParkMail: %v", err)
	}
	m.NextAttempt = now.Add(time.Hour)
	if err := s.RetryMail(c, m); err != nil {
		t.Fatalf("RetryMail: %v", err)
	}
	if _, err := s.UseToken(c, used.Hash, now, func(u *store.User) error { u.Status = store.StatusActive; return nil }); err != nil {
		t.Fatalf("UseToken: %v", err)
	}

	// A user with a login session rotated twice, and an expired one.
	f.loggedIn = NewTestUser("login@port.example", "")
	f.loggedIn.Status = store.StatusActive
	create(t, s, store.NewUser{User: f.loggedIn, Sequence: "acct"})
	f.session = NewTestSession(f.loggedIn.ID, now, time.Hour, 24*time.Hour)
	if err := s.CreateSession(c, f.session); err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	hash := f.session.RefreshHash
	for range 2 {
		if _, err := s.RotateRefresh(c, rotation(f.session, hash, now)); err != nil {
			t.Fatalf("RotateRefresh: %v", err)
		}
		got, err := s.GetSession(c, f.loggedIn.ID, f.session.ID)
		if err != nil {
			t.Fatalf("GetSession: %v", err)
		}
		hash = got.RefreshHash
	}
	f.sessionRefresh = hash
	if err := s.CreateSession(c, NewTestSession(f.loggedIn.ID, now.Add(-3*time.Hour), time.Hour, 2*time.Hour)); err != nil {
		t.Fatalf("CreateSession (expired): %v", err)
	}

	f.disabled = NewTestUser("disabled@port.example", "")
	create(t, s, store.NewUser{User: f.disabled})
	inactive := store.StatusInactive
	if _, err := s.UpdateUser(c, f.disabled.ID, store.UserPatch{Status: &inactive, Now: now}); err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}

	// A parked message.
	bouncer := NewTestUser("bounced@port.example", "")
	bounced := NewTestMail(bouncer.ID, now.Add(-2*time.Minute))
	create(t, s, store.NewUser{User: bouncer, Mails: []*store.Mail{bounced}})
	m = claim(t, s, now, time.Minute)
	if m.ID != bounced.ID {
		t.Fatalf("claimed %s, want the earliest %s", m.ID, bounced.ID)
	}
	m.Attempts, m.LastError = 5, "550 mailbox unavailable"
	if err := s.ParkMail(c, m); err != nil {
		t.Fatalf("ParkMail: %v", err)
	}

	bulk := store.MaxUserPage + 5
	errs := RunConcurrent(bulk, func(i int) error {
		return s.CreateUser(c, store.NewUser{User: NewTestUser(fmt.Sprintf("bulk%d@port.example", i), ""), Sequence: "acct"})
	})
	for _, err := range errs {
		if err != nil {
			t.Fatalf("CreateUser (bulk): %v", err)
		}
	}
	f.users = 5 + bulk
	return f
}

// exported runs an export of s and returns the stream and its records
// without the header, each re-encoded, plus the end record's counts.
func exported(t *testing.T, s store.Store) ([]byte, []string, port.Counts) {
	t.Helper()
	var buf bytes.Buffer
	counts, err := port.Export(ctx(t), s, port.ExportOptions{Secrets: PortSecrets, Now: time.Now()}, &buf)
	if err != nil {
		t.Fatalf("Export: %v", err)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n")[1:] {
		lines = append(lines, l)
	}
	return buf.Bytes(), lines, counts
}

func testPortRoundTrip(t *testing.T, src, dst store.Store) {
	f := populate(t, src)
	stream, srcLines, counts := exported(t, src)
	want := port.Counts{port.KindSecret: 2, port.KindTenant: 2, port.KindUser: f.users,
		port.KindSession: 2, port.KindToken: 2, port.KindMail: 9, port.KindSequence: 1}
	for _, k := range port.Kinds {
		if counts[k] != want[k] {
			t.Errorf("export counts %d %s records, want %d (all: %v)", counts[k], k, want[k], counts)
		}
	}

	rep, err := port.Import(ctx(t), dst, bytes.NewReader(stream), port.ImportOptions{Secrets: PortSecrets, Now: time.Now()})
	if err != nil {
		t.Fatalf("Import: %v (report %+v)", err, rep)
	}
	for _, k := range port.Kinds {
		if rep.Written[k] != want[k] || rep.Present[k] != 0 || rep.Skipped[k] != 0 {
			t.Errorf("%s: written %d present %d skipped %d, want %d written", k, rep.Written[k], rep.Present[k], rep.Skipped[k], want[k])
		}
	}
	_, dstLines, _ := exported(t, dst)
	wantSameRecords(t, srcLines, dstLines)

	// A second import finds everything there.
	rep, err = port.Import(ctx(t), dst, bytes.NewReader(stream), port.ImportOptions{Secrets: PortSecrets, Now: time.Now()})
	if err != nil {
		t.Fatalf("second Import: %v", err)
	}
	for _, k := range port.Kinds {
		if rep.Written[k] != 0 || rep.Present[k] != want[k] {
			t.Errorf("second import, %s: written %d present %d, want %d present", k, rep.Written[k], rep.Present[k], want[k])
		}
	}
	_, again, _ := exported(t, dst)
	wantSameRecords(t, srcLines, again)

	portedWorks(t, dst, f)
}

// wantSameRecords compares two exports' records as sets, and the order of
// each chain's messages.
func wantSameRecords(t *testing.T, want, got []string) {
	t.Helper()
	a, b := slices.Sorted(slices.Values(want)), slices.Sorted(slices.Values(got))
	if !slices.Equal(a, b) {
		for _, l := range a {
			if !slices.Contains(b, l) {
				t.Errorf("missing after import: %s", l)
			}
		}
		for _, l := range b {
			if !slices.Contains(a, l) {
				t.Errorf("not in the source: %s", l)
			}
		}
	}
	if c1, c2 := chainOrder(t, want), chainOrder(t, got); !maps.EqualFunc(c1, c2, slices.Equal) {
		t.Errorf("chain order %v, want %v", c2, c1)
	}
}

// chainOrder is the order of each chain's messages in an export (the
// chains themselves may come in any order; one queued outside its chain
// is not in it).
func chainOrder(t *testing.T, lines []string) map[string][]string {
	chains := map[string][]string{}
	for _, l := range lines {
		var r port.Record
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("decode %s: %v", l, err)
		}
		if r.Kind == port.KindMail && r.Mail.Chain != "" && !r.State.Unchained && !r.State.Parked {
			chains[r.Mail.Chain] = append(chains[r.Mail.Chain], r.Mail.ID)
		}
	}
	return chains
}

// portedWorks uses what was moved: lookups, the link token, the rotated
// session's current refresh token, the outbox with its chain, erasure.
func portedWorks(t *testing.T, s store.Store, f portFixture) {
	c := ctx(t)
	now := time.Now()
	wantEmailIndex(t, s, f.founder.EmailKey, f.founder.ID)
	wantLoginIndex(t, s, f.member.LoginKey, f.member.ID)
	if id, err := s.TenantIDByCode(c, "port"); err != nil || id != f.tenant.ID {
		t.Errorf("TenantIDByCode = %q, %v; want %s", id, err, f.tenant.ID)
	}
	if err := s.Taken(c, store.UniqueKeys{EmailKey: f.member.EmailKey}); err == nil {
		t.Error("the member's e-mail is free in the target")
	}
	if _, err := s.RotateRefresh(c, rotation(f.session, f.sessionRefresh, now)); err != nil {
		t.Errorf("RotateRefresh with the current refresh token: %v", err)
	}
	// The sequence goes on after the source's numbers.
	next := NewTestUser("next@port.example", "")
	create(t, s, store.NewUser{User: next, Sequence: "acct"})
	if got := string(next.Attributes[store.SeqAttr]); got != fmt.Sprint(f.users-2+1) {
		t.Errorf("next number %s, want %d", got, f.users-2+1)
	}
	// Every queued message comes due, each chain in its order: the
	// founder's head is acked, so its second follows; the member's
	// requeued event is due on its own, its second heads the chain and
	// its third waits behind it.
	var order, claimed []string
	for {
		m, err := s.ClaimMail(c, now.Add(2*time.Hour), time.Minute)
		if errors.Is(err, store.ErrNotFound) {
			break
		}
		if err != nil {
			t.Fatalf("ClaimMail: %v", err)
		}
		claimed = append(claimed, m.ID)
		if m.Chain == "user:"+f.founder.ID {
			order = append(order, m.ID)
		}
		if m.ID == f.chain[0] {
			if err := s.AckMail(c, m.ID); err != nil {
				t.Fatalf("AckMail: %v", err)
			}
			continue
		}
		m.Attempts, m.NextAttempt = m.Attempts+1, now.Add(3*time.Hour)
		if err := s.RetryMail(c, m); err != nil {
			t.Fatalf("RetryMail: %v", err)
		}
	}
	if !slices.Equal(order, f.chain[:2]) {
		t.Errorf("the founder's chain came due as %v, want %v", order, f.chain[:2])
	}
	if !slices.Contains(claimed, f.requeued[0]) || !slices.Contains(claimed, f.requeued[1]) || slices.Contains(claimed, f.requeued[2]) {
		t.Errorf("of the member's events %v came due; want the requeued one and the head, not the one behind it", claimed)
	}
	if q, p, err := s.MailCounts(c); err != nil || p != 1 {
		t.Errorf("MailCounts = %d queued, %d parked, %v; want 1 parked", q, p, err)
	}
	// The link works once, and erasure takes the moved token and mails.
	if _, err := s.UseToken(c, f.activation.Hash, now, func(u *store.User) error { u.Status = store.StatusActive; u.PendingUntil = 0; return nil }); err != nil {
		t.Errorf("UseToken on the moved link: %v", err)
	}
	if _, err := s.UseToken(c, f.activation.Hash, now, func(*store.User) error { return nil }); !errors.Is(err, store.ErrTokenUsed) {
		t.Errorf("second UseToken = %v, want ErrTokenUsed", err)
	}
	q0, _, _ := s.MailCounts(c)
	if _, _, err := s.DeleteUser(c, f.founder.ID); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	if toks, err := porterOf(t, s).UserTokens(c, f.founder.ID, now); err != nil || len(toks) != 0 {
		t.Errorf("tokens of the erased founder: %d, %v", len(toks), err)
	}
	if q1, _, _ := s.MailCounts(c); q0-q1 != 2 {
		t.Errorf("erasing the founder dequeued %d messages, want its 2 mails (webhooks stay)", q0-q1)
	}
}

func testPortConflicts(t *testing.T, src, dst store.Store) {
	f := populate(t, src)
	stream, _, _ := exported(t, src)
	// The target already has another user with the logged-in user's e-mail.
	squatter := NewTestUser(f.loggedIn.Email, "")
	create(t, dst, store.NewUser{User: squatter})
	rep, err := port.Import(ctx(t), dst, bytes.NewReader(stream), port.ImportOptions{Secrets: PortSecrets, Now: time.Now()})
	if !errors.Is(err, port.ErrConflicts) {
		t.Fatalf("Import = %v, want ErrConflicts", err)
	}
	if rep.Conflicts[port.KindUser] != 1 || len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], f.loggedIn.ID) {
		t.Errorf("conflicts %v, problems %q; want the one user", rep.Conflicts, rep.Problems)
	}
	if rep.Skipped[port.KindSession] != 1 || rep.Written[port.KindSession] != 1 {
		t.Errorf("sessions: skipped %d written %d; want the squatted user's skipped, the founder's written", rep.Skipped[port.KindSession], rep.Written[port.KindSession])
	}
	if id, _ := dst.UserIDByEmail(ctx(t), f.loggedIn.EmailKey); id != squatter.ID {
		t.Errorf("the e-mail now belongs to %s, want the target's %s", id, squatter.ID)
	}
	if _, err := dst.GetSession(ctx(t), f.loggedIn.ID, f.session.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the squatted user's session was written: %v", err)
	}
	member, err := src.GetUser(ctx(t), f.member.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantUser(t, dst, member) // the rest went in
}

func testPortBadStreams(t *testing.T, src, dst store.Store) {
	now := time.Now()
	if _, err := src.LoadOrCreateSecret(ctx(t), PortSecrets[0], []byte("key")); err != nil {
		t.Fatal(err)
	}
	u := NewTestUser("one@port.example", "")
	create(t, src, store.NewUser{User: u, Mails: []*store.Mail{NewTestMail(u.ID, now)},
		Session: NewTestSession(u.ID, now, time.Hour, 2*time.Hour), Token: NewTestToken(u.ID, now.Add(time.Hour))})
	stream, _, _ := exported(t, src)
	lines := strings.SplitAfter(string(stream), "\n")
	lines = lines[:len(lines)-1] // the empty string after the last newline
	// header, secret, user, session, token, mail, end
	if len(lines) != 7 {
		t.Fatalf("export of %d lines:\n%s", len(lines), stream)
	}
	hdr, secret, user, session, token, mail, end := lines[0], lines[1], lines[2], lines[3], lines[4], lines[5], lines[6]
	other := strings.ReplaceAll(session, u.ID, "6b0000000000000000000000")
	join := func(ls ...string) string { return strings.Join(ls, "") }
	for name, c := range map[string]struct {
		stream string
		want   error
	}{
		"no end":             {join(hdr, secret, user, session, token, mail), port.ErrTruncated},
		"a record missing":   {join(hdr, secret, user, session, token, end), port.ErrTruncated},
		"a record too many":  {join(hdr, secret, user, session, token, mail, mail, end), port.ErrTruncated},
		"after the end":      {join(hdr, secret, user, session, token, mail, end, mail), port.ErrTruncated},
		"not a stream":       {`{"users":[]}` + "\n", nil},
		"other format":       {`{"kind":"header","format":"caddyregister-export/9"}` + "\n", nil},
		"empty":              {"", nil},
		"cut mid-record":     {join(hdr, secret, user, session[:len(session)/2]), nil},
		"unknown kind":       {join(hdr, secret, user, `{"kind":"gadget"}`+"\n", end), nil},
		"unknown field":      {join(hdr, secret, strings.Replace(user, `{"kind"`, `{"extra":1,"kind"`, 1), end), nil},
		"session orphan":     {join(hdr, secret, session, end), nil},
		"another's session":  {join(hdr, secret, user, other, end), nil},
		"token orphan":       {join(hdr, secret, token, user, end), nil},
		"user after mails":   {join(hdr, secret, mail, user, end), nil},
		"secret after users": {join(hdr, user, secret, end), nil},
		"unknown secret":     {join(hdr, strings.Replace(secret, PortSecrets[0], "planted", 1), end), nil},
		"secret no value":    {join(hdr, `{"kind":"secret","name":"jwt-ed25519"}`+"\n", end), nil},
		"user no user":       {join(hdr, `{"kind":"user"}`+"\n", end), nil},
		"user no id":         {join(hdr, `{"kind":"user","user":{"email_key":"a@b.c"}}`+"\n", end), nil},
		"tenant no tenant":   {join(hdr, `{"kind":"tenant"}`+"\n", end), nil},
		"session invalid":    {join(hdr, user, `{"kind":"session","session":{"id":"s","user_id":"`+u.ID+`","refresh_hash":"","idle_expires_at":"2030-01-01T00:00:00Z","expires_at":"2030-01-01T00:00:00Z"}}`+"\n", end), nil},
		"token no hash":      {join(hdr, user, `{"kind":"token","token":{"user_id":"`+u.ID+`"}}`+"\n", end), nil},
		"mail no state":      {join(hdr, `{"kind":"mail","mail":{"id":"m"}}`+"\n", end), nil},
		"mail bad state":     {join(hdr, `{"kind":"mail","mail":{"id":"m"},"state":{"behind":true}}`+"\n", end), nil},
		"negative sequence":  {join(hdr, `{"kind":"sequence","name":"acct","number":-1}`+"\n", end), nil},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := port.Import(ctx(t), dst, strings.NewReader(c.stream), port.ImportOptions{Secrets: PortSecrets, Now: time.Now()})
			if err == nil || c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("Import = %v, want an error (%v)", err, c.want)
			}
			// Refused whole: the target is as empty as it was.
			if _, recs, _ := exported(t, dst); len(recs) != 1 {
				t.Fatalf("the refused stream left %d records:\n%s", len(recs)-1, strings.Join(recs, "\n"))
			}
		})
	}
	if _, err := port.Import(ctx(t), dst, strings.NewReader(string(stream)), port.ImportOptions{Secrets: PortSecrets, Now: now}); err != nil {
		t.Fatalf("the whole stream after the broken ones: %v", err)
	}
}

func testPorterBadRecords(t *testing.T, s store.Store) {
	p := porterOf(t, s)
	c := ctx(t)
	now := time.Now()
	u := NewTestUser("owner@port.example", "")
	create(t, s, store.NewUser{User: u})
	if _, err := p.Secret(c, "absent"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Secret(absent) = %v, want ErrNotFound", err)
	}
	for name, tok := range map[string]*store.Token{
		"nil":     nil,
		"no hash": {UserID: u.ID, ExpiresAt: now.Add(time.Hour)},
		"no user": {Hash: RandomHash(), ExpiresAt: now.Add(time.Hour)},
		"expired": {Hash: RandomHash(), UserID: u.ID, ExpiresAt: now.Add(-time.Second)},
		"orphan":  {Hash: RandomHash(), UserID: "nobody", ExpiresAt: now.Add(time.Hour)},
	} {
		if ok, err := p.PutToken(c, tok); err == nil || ok {
			t.Errorf("PutToken(%s) = %v, %v; want refused", name, ok, err)
		}
	}
	good := NewTestToken(u.ID, now.Add(time.Hour))
	if ok, err := p.PutToken(c, good); err != nil || !ok {
		t.Fatalf("PutToken = %v, %v", ok, err)
	}
	clash := *good
	clash.Purpose = "other"
	if ok, err := p.PutToken(c, &clash); err != nil || ok {
		t.Errorf("PutToken of a stored hash = %v, %v; want false", ok, err)
	}
	if toks, err := p.UserTokens(c, u.ID, now); err != nil || len(toks) != 1 || toks[0].Purpose != good.Purpose {
		t.Errorf("UserTokens = %v, %v; want the first token only", toks, err)
	}
	m := NewTestMail(u.ID, now)
	for name, st := range map[string]store.MailState{
		"parked and behind": {Parked: true, Behind: true, At: now},
		"behind, no chain":  {Behind: true},
		"queued, no time":   {},
		"parked, no time":   {Parked: true},
	} {
		if ok, err := p.PutMail(c, m, st); err == nil || ok {
			t.Errorf("PutMail(%s) = %v, %v; want refused", name, ok, err)
		}
	}
	if ok, err := p.PutMail(c, &store.Mail{}, store.MailState{At: now}); err == nil || ok {
		t.Errorf("PutMail without id = %v, %v; want refused", ok, err)
	}
	wantCounts(t, s, 0, 0)
	if ok, err := p.PutMail(c, m, store.MailState{At: now}); err != nil || !ok {
		t.Fatalf("PutMail = %v, %v", ok, err)
	}
	if ok, err := p.PutMail(c, m, store.MailState{Parked: true, At: now}); err != nil || ok {
		t.Errorf("PutMail of a stored id = %v, %v; want false", ok, err)
	}
	wantCounts(t, s, 1, 0)
	if err := p.RaiseSequence(c, "acct", 7); err != nil {
		t.Fatal(err)
	}
	if err := p.RaiseSequence(c, "acct", 3); err != nil {
		t.Fatal(err)
	}
	if seqs, err := p.Sequences(c); err != nil || seqs["acct"] != 7 {
		t.Errorf("Sequences = %v, %v; want acct 7 (never lowered)", seqs, err)
	}
	for _, bad := range []struct {
		name string
		n    int64
	}{{"", 1}, {"acct", -1}} {
		if err := p.RaiseSequence(c, bad.name, bad.n); err == nil {
			t.Errorf("RaiseSequence(%q, %d) accepted", bad.name, bad.n)
		}
	}
	// Erasure takes what was put.
	if _, _, err := s.DeleteUser(c, u.ID); err != nil {
		t.Fatal(err)
	}
	wantCounts(t, s, 0, 0)
	if toks, err := p.UserTokens(c, u.ID, now); err != nil || len(toks) != 0 {
		t.Errorf("UserTokens after erasure = %d, %v", len(toks), err)
	}
}
