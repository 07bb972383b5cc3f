package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddyregister/caddyregister/caddyregister/store"
	"github.com/caddyregister/caddyregister/caddyregister/store/storetest"
)

// TestPorterBadInput: every input the Porter refuses is refused with
// nothing written, and a token or message already stored is left as it
// is (false).
func TestPorterBadInput(t *testing.T) {
	forLayouts(t, func(t *testing.T, e portEnv) {
		ctx := context.Background()
		s := e.open(t)
		now := time.Now()
		u := storetest.NewTestUser("bad-port@example.com", "")
		tok := storetest.NewTestToken(u.ID, now.Add(time.Hour))
		queued := storetest.NewTestMail(u.ID, now.Add(time.Hour))
		if err := s.CreateUser(ctx, store.NewUser{User: u, Token: tok, Mails: []*store.Mail{queued}, Sequence: "acct"}); err != nil {
			t.Fatal(err)
		}
		other := storetest.NewTestUser("other-port@example.com", "")
		if err := s.CreateUser(ctx, store.NewUser{User: other}); err != nil {
			t.Fatal(err)
		}
		before := e.dump(t, s)

		expired := storetest.NewTestToken(u.ID, now.Add(-time.Second))
		noUser := storetest.NewTestToken("", now.Add(time.Hour))
		ghost := storetest.NewTestToken(store.NewID(now), now.Add(time.Hour))
		for name, c := range map[string]struct {
			tok      *store.Token
			notFound bool
		}{
			"nil":           {nil, false},
			"no hash":       {&store.Token{UserID: u.ID, ExpiresAt: now.Add(time.Hour)}, false},
			"no user":       {noUser, false},
			"expired":       {expired, true},
			"owner missing": {ghost, true},
		} {
			ok, err := s.PutToken(ctx, c.tok)
			if err == nil || ok || errors.Is(err, store.ErrNotFound) != c.notFound {
				t.Errorf("PutToken(%s) = %v, %v; want an error (ErrNotFound %v)", name, ok, err, c.notFound)
			}
		}
		// The same hash for another user, or the stored token changed:
		// already stored, left alone.
		taken := *tok
		taken.UserID = other.ID
		changed := *tok
		changed.Purpose = "reset"
		for name, c := range map[string]*store.Token{"other user": &taken, "changed": &changed} {
			if ok, err := s.PutToken(ctx, c); ok || err != nil {
				t.Errorf("PutToken(%s) = %v, %v; want false, nil", name, ok, err)
			}
		}

		chained := storetest.NewTestEvent(u.ID, "c1", "user.created", now)
		unchained := storetest.NewTestMail(u.ID, now)
		for name, c := range map[string]struct {
			m  *store.Mail
			st store.MailState
		}{
			"nil":               {nil, store.MailState{At: now}},
			"no id":             {&store.Mail{To: []string{"x@example.com"}}, store.MailState{At: now}},
			"parked and behind": {chained, store.MailState{Parked: true, Behind: true, At: now}},
			"behind, no chain":  {unchained, store.MailState{Behind: true}},
			"queued, no time":   {unchained, store.MailState{}},
			"chained, no time":  {chained, store.MailState{}},
			"parked, no time":   {unchained, store.MailState{Parked: true}},
		} {
			if ok, err := s.PutMail(ctx, c.m, c.st); err == nil || ok {
				t.Errorf("PutMail(%s) = %v, %v; want an error", name, ok, err)
			}
		}
		again := *queued
		again.Subject = "changed"
		for _, st := range []store.MailState{{At: now}, {Parked: true, At: now}} {
			if ok, err := s.PutMail(ctx, &again, st); ok || err != nil {
				t.Errorf("PutMail(stored id, %+v) = %v, %v; want false, nil", st, ok, err)
			}
		}

		if _, err := s.UserTokens(ctx, "", now); err == nil {
			t.Error("UserTokens(\"\") succeeded")
		}
		for name, c := range map[string]struct {
			seq string
			n   int64
		}{"no name": {"", 5}, "negative": {"acct", -1}} {
			if err := s.RaiseSequence(ctx, c.seq, c.n); err == nil {
				t.Errorf("RaiseSequence(%s) succeeded", name)
			}
		}
		if _, err := s.Secret(ctx, "absent"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Secret(absent) = %v, want ErrNotFound", err)
		}
		sameDump(t, "after refused writes", before, e.dump(t, s))
	})
}

// TestPorterTokens: UserTokens leaves out a token that expired (at the
// given instant) or whose record is gone under a stale ref; an imported
// token works on the target (its index, on the cluster) and a rerun
// reports it stored.
func TestPorterTokens(t *testing.T) {
	forLayouts(t, func(t *testing.T, e portEnv) {
		ctx := context.Background()
		src, dst := e.open(t), e.open(t)
		now := time.Now()
		u := storetest.NewTestUser("tokens-port@example.com", "")
		u.PendingUntil = now.Add(2 * time.Hour).UnixMilli()
		tok := storetest.NewTestToken(u.ID, now.Add(time.Hour))
		if err := src.CreateUser(ctx, store.NewUser{User: u, Token: tok}); err != nil {
			t.Fatal(err)
		}
		got, err := src.UserTokens(ctx, u.ID, now)
		if err != nil || len(got) != 1 || got[0].Hash != tok.Hash {
			t.Fatalf("UserTokens = %s, %v; want the token", jsonOf(t, got), err)
		}
		if got, err := src.UserTokens(ctx, u.ID, tok.ExpiresAt); err != nil || len(got) != 0 {
			t.Errorf("UserTokens at its expiry = %s, %v; want none", jsonOf(t, got), err)
		}
		if got, err := src.UserTokens(ctx, store.NewID(now), now); err != nil || len(got) != 0 {
			t.Errorf("UserTokens(unknown user) = %s, %v; want none", jsonOf(t, got), err)
		}

		if err := dst.CreateUser(ctx, store.NewUser{User: u}); err != nil {
			t.Fatal(err)
		}
		for i, want := range []bool{true, false} {
			if ok, err := dst.PutToken(ctx, got[0]); ok != want || err != nil {
				t.Fatalf("PutToken #%d = %v, %v; want %v", i+1, ok, err, want)
			}
		}
		activated, err := dst.UseToken(ctx, tok.Hash, now, func(u *store.User) error {
			u.Status = store.StatusActive
			return nil
		})
		if err != nil || activated.Status != store.StatusActive {
			t.Fatalf("UseToken of the imported token = %v, %v", activated, err)
		}
		if got, err := dst.UserTokens(ctx, u.ID, now); err != nil || len(got) != 1 || got[0].UsedAt == nil {
			t.Errorf("UserTokens after use = %s, %v; want the token, used", jsonOf(t, got), err)
		}

		// A stale ref: the record is gone, the ref stays.
		if err := e.admin.Del(ctx, e.tokenKey(src, u.ID, tok.Hash)).Err(); err != nil {
			t.Fatal(err)
		}
		if got, err := src.UserTokens(ctx, u.ID, now); err != nil || len(got) != 0 {
			t.Errorf("UserTokens with a stale ref = %s, %v; want none", jsonOf(t, got), err)
		}
	})
}

// TestClusterPutTokenFinishes: an import cut off between the two steps
// of the cluster's PutToken (the index entry written, not the record)
// is finished by the rerun, and the token works.
func TestClusterPutTokenFinishes(t *testing.T) {
	ctx := context.Background()
	s := openCluster(t)
	u := storetest.NewTestUser("cut-port@example.com", "")
	if err := s.CreateUser(ctx, store.NewUser{User: u}); err != nil {
		t.Fatal(err)
	}
	tok := storetest.NewTestToken(u.ID, time.Now().Add(time.Hour))
	if err := s.Client().SetArgs(ctx, s.TokenIndexKey(tok.Hash), u.ID, redis.SetArgs{ExpireAt: tok.ExpiresAt}).Err(); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.PutToken(ctx, tok); !ok || err != nil {
		t.Fatalf("PutToken after a cut = %v, %v; want written", ok, err)
	}
	if _, err := s.UseToken(ctx, tok.Hash, time.Now(), func(*store.User) error { return nil }); err != nil {
		t.Fatalf("UseToken: %v", err)
	}
}

// TestPorterMailPlacement: PutMail puts a message where a fresh write
// would: queued at its time, behind its chain's messages when the chain
// has some, at its chain's head (due at once) when it has none, parked
// and listed for its body's expiry; an owned message of a user that does
// not exist is written without a ref.
func TestPorterMailPlacement(t *testing.T) {
	forLayouts(t, func(t *testing.T, e portEnv) {
		ctx := context.Background()
		s := e.open(t)
		now := time.Now()
		claim := func(at time.Time) string {
			t.Helper()
			m, err := s.ClaimMail(ctx, at, time.Hour)
			if errors.Is(err, store.ErrNotFound) {
				return ""
			}
			if err != nil {
				t.Fatalf("ClaimMail: %v", err)
			}
			if err := s.AckMail(ctx, m.ID); err != nil {
				t.Fatal(err)
			}
			return m.ID
		}
		put := func(m *store.Mail, st store.MailState) {
			t.Helper()
			if ok, err := s.PutMail(ctx, m, st); !ok || err != nil {
				t.Fatalf("PutMail %+v = %v, %v", st, ok, err)
			}
		}

		// Queued at st.At, not at the record's NextAttempt.
		due := now.Add(time.Hour)
		plain := storetest.NewTestMail("", now)
		put(plain, store.MailState{At: due})
		if id := claim(due.Add(-time.Millisecond)); id != "" {
			t.Errorf("claimed %s before its due time", id)
		}
		if id := claim(due); id != plain.ID {
			t.Errorf("claimed %q at its due time, want %s", id, plain.ID)
		}

		// Behind with its chain empty: the head, due at once.
		lone := storetest.NewTestEvent("u1", "lone", "user.updated", now.Add(time.Hour))
		put(lone, store.MailState{Behind: true})
		if id := claim(time.Now().Add(time.Second)); id != lone.ID {
			t.Errorf("claimed %q, want the lone chained message due at once", id)
		}

		// Queued but its chain has a message: behind it.
		head := storetest.NewTestEvent("u2", "busy", "user.created", now)
		next := storetest.NewTestEvent("u2", "busy", "user.updated", now)
		put(head, store.MailState{At: due})
		put(next, store.MailState{At: now.Add(-time.Hour)})
		if id := claim(now); id != "" {
			t.Errorf("claimed %s, but the chain's head is not due", id)
		}
		for i, want := range []string{head.ID, next.ID} {
			if id := claim(due); id != want {
				t.Errorf("claim #%d = %q, want %s", i+1, id, want)
			}
		}

		// Parked at st.At, its body listed for expiry; its user is
		// absent, so no ref is written.
		ghost := store.NewID(now)
		parked := storetest.NewTestMail(ghost, now)
		parked.ExpiresAt = now.Add(time.Hour)
		put(parked, store.MailState{Parked: true, At: now.Add(-time.Minute)})
		if q, p, err := s.MailCounts(ctx); q != 0 || p != 1 || err != nil {
			t.Errorf("MailCounts = %d, %d, %v; want the parked one only", q, p, err)
		}
		if n, err := s.DropParkedBodies(ctx, parked.ExpiresAt.Add(time.Second), 10); n != 1 || err != nil {
			t.Errorf("DropParkedBodies = %d, %v; want the parked body dropped", n, err)
		}
		if keys := e.scan(t, fmt.Sprintf("*%s*", ghost)); len(keys) != 0 {
			t.Errorf("keys of an absent owner: %q", keys)
		}
	})
}

// TestPorterPaging: EachMail over more messages than a page, with equal
// due times (the cursor's ties) and a chain longer than a page, gives
// every message once, the chain in order.
func TestPorterPaging(t *testing.T) {
	forLayouts(t, func(t *testing.T, e portEnv) {
		ctx := context.Background()
		s := e.open(t)
		now := time.Now()
		u := storetest.NewTestUser("paging-port@example.com", "")
		due := now.Add(time.Hour)
		var mails, chain []*store.Mail
		for range 250 {
			mails = append(mails, storetest.NewTestMail(u.ID, due))
		}
		for i := range 230 {
			chain = append(chain, storetest.NewTestEvent(u.ID, "long", fmt.Sprint("e", i), now))
		}
		if err := s.CreateUser(ctx, store.NewUser{User: u, Mails: append(slices.Clone(mails), chain...)}); err != nil {
			t.Fatal(err)
		}
		got := eachMail(t, s)
		seen := byID(t, got)
		if len(seen) != 480 {
			t.Fatalf("EachMail gave %d messages, want 480", len(seen))
		}
		for _, m := range mails {
			if st := seen[m.ID].st; !st.At.Equal(time.UnixMilli(due.UnixMilli())) || st.Behind || st.Parked {
				t.Fatalf("mail %s: %+v, want due %v", m.ID, st, due)
			}
		}
		var ids []string
		for _, m := range chain {
			ids = append(ids, m.ID)
		}
		if pos := positions(got, ids...); !slices.IsSorted(pos) {
			t.Errorf("chain out of order: %v", pos)
		}
		for i, m := range chain {
			if st := seen[m.ID].st; st.Behind != (i > 0) || (i == 0) == st.At.IsZero() {
				t.Fatalf("chain message %d: %+v", i, st)
			}
		}

		// fn's error stops the walk.
		stop := errors.New("stop")
		calls := 0
		err := s.EachMail(ctx, func(*store.Mail, store.MailState) error {
			if calls++; calls == 3 {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) || calls != 3 {
			t.Errorf("EachMail with a failing fn = %v after %d calls, want stop after 3", err, calls)
		}
	})
}

// TestPorterSequences: Sequences reads every sequence (a name with ':'
// and glob characters too); RaiseSequence never lowers one, raises it
// atomically, writes nothing for 0, and refuses a corrupt value, which
// Sequences reports.
func TestPorterSequences(t *testing.T) {
	forLayouts(t, func(t *testing.T, e portEnv) {
		ctx := context.Background()
		s := e.open(t)
		for i, name := range []string{"acct", "acct", "acct", "inv:2026*"} {
			u := storetest.NewTestUser(fmt.Sprintf("seq%d-port@example.com", i), "")
			if err := s.CreateUser(ctx, store.NewUser{User: u, Sequence: name}); err != nil {
				t.Fatal(err)
			}
		}
		seqs := func() map[string]int64 {
			t.Helper()
			got, err := s.Sequences(ctx)
			if err != nil {
				t.Fatalf("Sequences: %v", err)
			}
			return got
		}
		if got := seqs(); fmt.Sprint(got) != fmt.Sprint(map[string]int64{"acct": 3, "inv:2026*": 1}) {
			t.Fatalf("Sequences = %v", got)
		}
		for _, n := range []int64{2, 3, 0} {
			if err := s.RaiseSequence(ctx, "acct", n); err != nil {
				t.Fatal(err)
			}
		}
		if got := seqs()["acct"]; got != 3 {
			t.Errorf("acct lowered to %d", got)
		}
		if err := s.RaiseSequence(ctx, "acct", 10); err != nil {
			t.Fatal(err)
		}
		if err := s.RaiseSequence(ctx, "fresh", 0); err != nil {
			t.Fatal(err)
		}
		if got := seqs(); fmt.Sprint(got) != fmt.Sprint(map[string]int64{"acct": 10, "inv:2026*": 1}) {
			t.Errorf("Sequences after raising = %v, want acct 10 and nothing for fresh", got)
		}
		u := storetest.NewTestUser("seq-next-port@example.com", "")
		n := store.NewUser{User: u, Sequence: "acct"}
		if err := s.CreateUser(ctx, n); err != nil {
			t.Fatal(err)
		}
		if got := seqs()["acct"]; got != 11 {
			t.Errorf("the next number drawn left acct at %d, want 11", got)
		}

		// Concurrent raises end at the highest.
		errs := storetest.RunConcurrent(20, func(i int) error { return s.RaiseSequence(ctx, "race", int64(i+1)) })
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if got := seqs()["race"]; got != 20 {
			t.Errorf("race ended at %d, want 20", got)
		}

		bad := "{" + s.Namespace() + "}:seq:bad"
		if err := e.admin.Set(ctx, bad, "abc", 0).Err(); err != nil {
			t.Fatal(err)
		}
		if err := s.RaiseSequence(ctx, "bad", 5); err == nil {
			t.Error("RaiseSequence on a corrupt value succeeded")
		}
		if v := e.admin.Get(ctx, bad).Val(); v != "abc" {
			t.Errorf("corrupt sequence became %q", v)
		}
		if _, err := s.Sequences(ctx); !errors.Is(err, store.ErrCorrupt) {
			t.Errorf("Sequences with a corrupt value = %v, want ErrCorrupt", err)
		}
	})
}

// TestPorterRequeuedChained: a chain's head parked (the next one queued
// in its place), then requeued by RetryMail, is in the outbox but out of
// its chain: EachMail gives both once, as queued, and the messages
// behind the new head behind it.
func TestPorterRequeuedChained(t *testing.T) {
	forLayouts(t, func(t *testing.T, e portEnv) {
		ctx := context.Background()
		s := e.open(t)
		now := time.Now()
		u := storetest.NewTestUser("requeue-port@example.com", "")
		evs := []*store.Mail{
			storetest.NewTestEvent(u.ID, "rq", "user.created", now.Add(-time.Minute)),
			storetest.NewTestEvent(u.ID, "rq", "user.updated", now.Add(-time.Minute)),
			storetest.NewTestEvent(u.ID, "rq", "user.activated", now.Add(-time.Minute)),
		}
		if err := s.CreateUser(ctx, store.NewUser{User: u, Mails: evs}); err != nil {
			t.Fatal(err)
		}
		m, err := s.ClaimMail(ctx, now, time.Minute)
		if err != nil || m.ID != evs[0].ID {
			t.Fatalf("ClaimMail = %v, %v", m, err)
		}
		if err := s.ParkMail(ctx, m); err != nil {
			t.Fatal(err)
		}
		m.NextAttempt = now.Add(time.Hour)
		if err := s.RetryMail(ctx, m); err != nil {
			t.Fatal(err)
		}
		got := byID(t, eachMail(t, s))
		if len(got) != 3 {
			t.Fatalf("EachMail gave %d messages, want 3", len(got))
		}
		if st := got[evs[0].ID].st; st.Behind || st.Parked || !st.At.Equal(time.UnixMilli(m.NextAttempt.UnixMilli())) {
			t.Errorf("requeued message: %+v, want queued at %v", st, m.NextAttempt)
		}
		if st := got[evs[1].ID].st; st.Behind || st.Parked || st.At.IsZero() {
			t.Errorf("new head: %+v, want queued", st)
		}
		if st := got[evs[2].ID].st; !st.Behind {
			t.Errorf("third: %+v, want behind", st)
		}
	})
}
