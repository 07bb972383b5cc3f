package redisstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddyregister/caddyregister/caddyregister/store"
	"github.com/caddyregister/caddyregister/caddyregister/store/redisstore"
	"github.com/caddyregister/caddyregister/caddyregister/store/storetest"
	"github.com/caddyregister/caddyregister/internal/testredis"
)

// porterStore is what the Porter tests drive: either layout.
type porterStore interface {
	store.Store
	store.Porter
	Namespace() string
}

// portEnv is one layout under test: fresh stores on one server (or
// cluster), an admin client, and where a token's record lives.
type portEnv struct {
	open     func(t *testing.T) porterStore
	admin    redis.Cmdable
	scan     func(t *testing.T, pattern string) []string
	tokenKey func(s porterStore, uid, hash string) string
}

// forLayouts runs f on the single-node layout and on the cluster layout.
func forLayouts(t *testing.T, f func(t *testing.T, e portEnv)) {
	t.Run("single", func(t *testing.T) {
		srv := testredis.Start(t)
		admin := srv.Client(t)
		f(t, portEnv{
			open:  func(t *testing.T) porterStore { return open(t, srv) },
			admin: admin,
			scan: func(t *testing.T, pattern string) []string {
				return scanPattern(t, admin, pattern)
			},
			tokenKey: func(s porterStore, _, hash string) string { return s.(*redisstore.Store).Key("token", hash) },
		})
	})
	t.Run("cluster", func(t *testing.T) {
		clu := cluster(t)
		cc := clu.ClusterClient(t)
		f(t, portEnv{
			open:  func(t *testing.T) porterStore { return openCluster(t) },
			admin: cc,
			scan: func(t *testing.T, pattern string) []string {
				var mu sync.Mutex
				var keys []string
				err := cc.ForEachMaster(context.Background(), func(ctx context.Context, c *redis.Client) error {
					iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
					for iter.Next(ctx) {
						mu.Lock()
						keys = append(keys, iter.Val())
						mu.Unlock()
					}
					return iter.Err()
				})
				if err != nil {
					t.Fatalf("SCAN %s: %v", pattern, err)
				}
				slices.Sort(keys)
				return keys
			},
			tokenKey: func(s porterStore, uid, hash string) string {
				return s.(*redisstore.ClusterStore).UserKey(uid, "token", hash)
			},
		})
	})
}

// dump reads every key of s's namespace (its own {ns} tag and the
// {ns:...} ones): type, value and expiry instant, by key name with the
// namespace replaced by "NS", so two namespaces compare.
func (e portEnv) dump(t *testing.T, s porterStore) map[string]string {
	t.Helper()
	ctx := context.Background()
	ns := s.Namespace()
	out := map[string]string{}
	for _, k := range append(e.scan(t, "{"+ns+"}*"), e.scan(t, "{"+ns+":*")...) {
		typ, err := e.admin.Type(ctx, k).Result()
		if err != nil {
			t.Fatalf("TYPE %s: %v", k, err)
		}
		var v string
		switch typ {
		case "string":
			v = e.admin.Get(ctx, k).Val()
		case "list":
			v = strings.Join(e.admin.LRange(ctx, k, 0, -1).Val(), ",")
		case "set":
			m := e.admin.SMembers(ctx, k).Val()
			slices.Sort(m)
			v = strings.Join(m, ",")
		case "zset":
			v = fmt.Sprint(e.admin.ZRangeWithScores(ctx, k, 0, -1).Val())
		case "hash":
			h := e.admin.HGetAll(ctx, k).Val()
			v = fmt.Sprint(slices.Sorted(maps.Keys(h)), h)
		case "none":
			continue
		}
		exp := e.admin.PExpireTime(ctx, k).Val()
		name := strings.Replace(k, "{"+ns, "{NS", 1)
		out[name] = fmt.Sprintf("%s %s exp=%d", typ, v, exp)
	}
	return out
}

// sameDump fails t unless want and got hold the same keys and values.
func sameDump(t *testing.T, what string, want, got map[string]string) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %s\n want %s\n got  %s", what, k, v, got[k])
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: extra key %s = %s", what, k, v)
		}
	}
}

// ported is one message as EachMail reported it.
type ported struct {
	m  *store.Mail
	st store.MailState
}

func eachMail(t *testing.T, s store.Porter) []ported {
	t.Helper()
	var out []ported
	if err := s.EachMail(context.Background(), func(m *store.Mail, st store.MailState) error {
		out = append(out, ported{m, st})
		return nil
	}); err != nil {
		t.Fatalf("EachMail: %v", err)
	}
	return out
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// byID indexes what EachMail gave, failing on an id seen twice.
func byID(t *testing.T, ps []ported) map[string]ported {
	t.Helper()
	out := map[string]ported{}
	for _, p := range ps {
		if _, dup := out[p.m.ID]; dup {
			t.Fatalf("EachMail gave %s twice", p.m.ID)
		}
		out[p.m.ID] = p
	}
	return out
}

// positions returns where each id of ids stands in ps.
func positions(ps []ported, ids ...string) []int {
	out := make([]int, len(ids))
	for i, id := range ids {
		out[i] = slices.IndexFunc(ps, func(p ported) bool { return p.m.ID == id })
	}
	return out
}

// portSource is the store TestPorterRoundTrip exports: users with links
// reissued, used and not, mail queued, claimed, parked and chained,
// sequences and a secret.
type portSource struct {
	a, b, c          *store.User
	tokA, tokA2, tok *store.Token // tokA replaced by tokA2; tok is b's, used
	mailA2, parked   *store.Mail
	events           []*store.Mail // a's webhook chain, ev[0] claimed
	leaseEnd         time.Time
	parkedFrom       time.Time
	parkedTo         time.Time
	secret           []byte
}

func populate(t *testing.T, s porterStore) *portSource {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	p := &portSource{}
	p.a = storetest.NewTestUser("port-a@example.com", "porta")
	p.a.PendingUntil = now.Add(2 * time.Hour).UnixMilli()
	p.tokA = storetest.NewTestToken(p.a.ID, now.Add(time.Hour))
	mailA := storetest.NewTestMail(p.a.ID, now.Add(time.Hour))
	chain := "user:" + p.a.ID + ":hooks"
	for _, ev := range []string{"user.created", "user.updated", "user.activated"} {
		p.events = append(p.events, storetest.NewTestEvent(p.a.ID, chain, ev, now.Add(-time.Second)))
	}
	if err := s.CreateUser(ctx, store.NewUser{User: p.a, Token: p.tokA, Sequence: "acct",
		Mails: append([]*store.Mail{mailA}, p.events...)}); err != nil {
		t.Fatalf("CreateUser a: %v", err)
	}
	p.tokA2 = storetest.NewTestToken(p.a.ID, now.Add(90*time.Minute))
	p.mailA2 = storetest.NewTestMail(p.a.ID, now.Add(time.Hour))
	if _, err := s.ReissueLink(ctx, store.LinkReissue{UserID: p.a.ID, Token: p.tokA2, Mail: p.mailA2,
		PendingUntil: now.Add(3 * time.Hour).UnixMilli(), Now: now}); err != nil {
		t.Fatalf("ReissueLink: %v", err)
	}

	p.b = storetest.NewTestUser("port-b@example.com", "")
	p.tok = storetest.NewTestToken(p.b.ID, now.Add(time.Hour))
	p.parked = storetest.NewTestMail(p.b.ID, now.Add(-time.Hour))
	p.parked.ExpiresAt = now.Add(time.Hour) // listed for DropParkedBodies
	if err := s.CreateUser(ctx, store.NewUser{User: p.b, Token: p.tok, Sequence: "acct", Mails: []*store.Mail{p.parked}}); err != nil {
		t.Fatalf("CreateUser b: %v", err)
	}
	if _, err := s.UseToken(ctx, p.tok.Hash, now, func(u *store.User) error {
		u.Status = store.StatusActive
		return nil
	}); err != nil {
		t.Fatalf("UseToken: %v", err)
	}
	m, err := s.ClaimMail(ctx, now, time.Minute)
	if err != nil || m.ID != p.parked.ID {
		t.Fatalf("ClaimMail = %v, %v; want the parked-to-be mail", m, err)
	}
	p.parkedFrom = time.Now()
	if err := s.ParkMail(ctx, m); err != nil {
		t.Fatalf("ParkMail: %v", err)
	}
	p.parkedTo = time.Now()
	// The chain's head, claimed: its due time is the lease's end.
	if m, err = s.ClaimMail(ctx, now, 10*time.Minute); err != nil || m.ID != p.events[0].ID {
		t.Fatalf("ClaimMail = %v, %v; want the chain's head", m, err)
	}
	p.leaseEnd = time.UnixMilli(now.Add(10 * time.Minute).UnixMilli())

	p.c = storetest.NewTestUser("port-c@example.com", "")
	if err := s.CreateUser(ctx, store.NewUser{User: p.c, Sequence: "invoice"}); err != nil {
		t.Fatalf("CreateUser c: %v", err)
	}
	p.secret = []byte("-----BEGIN PRIVATE KEY-----\nport\n-----END PRIVATE KEY-----\n")
	if _, err := s.LoadOrCreateSecret(ctx, "signing", p.secret); err != nil {
		t.Fatal(err)
	}
	return p
}

// exported is everything the Porter reads of a store.
type exported struct {
	tokens map[string][]*store.Token
	mails  []ported
	seqs   map[string]int64
	secret []byte
}

func export(t *testing.T, s porterStore, users ...*store.User) exported {
	t.Helper()
	ctx := context.Background()
	x := exported{tokens: map[string][]*store.Token{}}
	for _, u := range users {
		toks, err := s.UserTokens(ctx, u.ID, time.Now())
		if err != nil {
			t.Fatalf("UserTokens %s: %v", u.ID, err)
		}
		slices.SortFunc(toks, func(a, b *store.Token) int { return strings.Compare(a.Hash, b.Hash) })
		x.tokens[u.ID] = toks
	}
	x.mails = eachMail(t, s)
	var err error
	if x.seqs, err = s.Sequences(ctx); err != nil {
		t.Fatalf("Sequences: %v", err)
	}
	if x.secret, err = s.Secret(ctx, "signing"); err != nil {
		t.Fatalf("Secret: %v", err)
	}
	return x
}

// importInto writes x into s (users copied from src first), checking
// every write reports written (first) or already there (again).
func importInto(t *testing.T, src, s porterStore, x exported, again bool, users ...*store.User) {
	t.Helper()
	ctx := context.Background()
	for _, u := range users {
		got, err := src.GetUser(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		err = s.CreateUser(ctx, store.NewUser{User: got})
		if again && !errors.As(err, new(*store.ConflictError)) || !again && err != nil {
			t.Fatalf("CreateUser %s (again %v): %v", u.ID, again, err)
		}
		for _, tok := range x.tokens[u.ID] {
			if ok, err := s.PutToken(ctx, tok); err != nil || ok == again {
				t.Fatalf("PutToken %s (again %v) = %v, %v", tok.Hash, again, ok, err)
			}
		}
	}
	for _, p := range x.mails {
		if ok, err := s.PutMail(ctx, p.m, p.st); err != nil || ok == again {
			t.Fatalf("PutMail %s %+v (again %v) = %v, %v", p.m.ID, p.st, again, ok, err)
		}
	}
	for name, n := range x.seqs {
		if err := s.RaiseSequence(ctx, name, n); err != nil {
			t.Fatalf("RaiseSequence %s %d: %v", name, n, err)
		}
	}
	if _, err := s.LoadOrCreateSecret(ctx, "signing", x.secret); err != nil {
		t.Fatal(err)
	}
}

// TestPorterRoundTrip exports a store with the Porter reads (and the
// users through Store), imports it into a fresh namespace, and checks
// that the target holds exactly the keys the source does, value and
// expiry alike; that a rerun writes nothing; that the chain comes out of
// the target in order; and that erasing a user on the target takes its
// imported tokens and owned mails with it.
func TestPorterRoundTrip(t *testing.T) {
	forLayouts(t, func(t *testing.T, e portEnv) {
		ctx := context.Background()
		src, dst := e.open(t), e.open(t)
		p := populate(t, src)
		users := []*store.User{p.a, p.b, p.c}
		x := export(t, src, users...)

		// What the reads gave.
		if got, want := jsonOf(t, x.tokens[p.a.ID]), jsonOf(t, []*store.Token{p.tokA2}); got != want {
			t.Errorf("UserTokens(a) = %s, want the reissued token only %s", got, want)
		}
		if toks := x.tokens[p.b.ID]; len(toks) != 1 || toks[0].Hash != p.tok.Hash || toks[0].UsedAt == nil {
			t.Errorf("UserTokens(b) = %s, want its token, used", jsonOf(t, toks))
		}
		if len(x.tokens[p.c.ID]) != 0 {
			t.Errorf("UserTokens(c) = %s, want none", jsonOf(t, x.tokens[p.c.ID]))
		}
		mails := byID(t, x.mails)
		if len(mails) != 5 {
			t.Errorf("EachMail gave %d messages, want 5: %s", len(mails), jsonOf(t, x.mails))
		}
		wantSt := map[string]store.MailState{
			p.mailA2.ID:    {At: time.UnixMilli(p.mailA2.NextAttempt.UnixMilli())},
			p.events[0].ID: {At: p.leaseEnd},
			p.events[1].ID: {Behind: true},
			p.events[2].ID: {Behind: true},
			p.parked.ID:    {Parked: true},
		}
		for id, want := range wantSt {
			got, ok := mails[id]
			switch {
			case !ok:
				t.Errorf("EachMail left out %s", id)
			case got.st.Parked != want.Parked || got.st.Behind != want.Behind:
				t.Errorf("state of %s = %+v, want %+v", id, got.st, want)
			case want.Parked && (got.st.At.Before(p.parkedFrom.Truncate(time.Millisecond)) || got.st.At.After(p.parkedTo)):
				t.Errorf("parked %s at %v, want between %v and %v", id, got.st.At, p.parkedFrom, p.parkedTo)
			case !want.Parked && !got.st.At.Equal(want.At):
				t.Errorf("%s due %v, want %v", id, got.st.At, want.At)
			}
		}
		if pos := positions(x.mails, p.events[0].ID, p.events[1].ID, p.events[2].ID); !slices.IsSorted(pos) {
			t.Errorf("chain came at positions %v, want in chain order", pos)
		}
		if want := map[string]int64{"acct": 2, "invoice": 1}; !maps.Equal(x.seqs, want) {
			t.Errorf("Sequences = %v, want %v", x.seqs, want)
		}
		if string(x.secret) != string(p.secret) {
			t.Errorf("Secret = %q, want %q", x.secret, p.secret)
		}

		// Imported: the same keys, values and expiries.
		importInto(t, src, dst, x, false, users...)
		want := e.dump(t, src)
		sameDump(t, "target after import", want, e.dump(t, dst))
		if got := export(t, dst, users...); jsonOf(t, got.tokens) != jsonOf(t, x.tokens) || !maps.Equal(got.seqs, x.seqs) {
			t.Errorf("target reads tokens %s seqs %v, want %s %v", jsonOf(t, got.tokens), got.seqs, jsonOf(t, x.tokens), x.seqs)
		}

		// Rerun: everything is there already, nothing changes.
		importInto(t, src, dst, x, true, users...)
		sameDump(t, "target after a rerun", want, e.dump(t, dst))

		// Erasing b on the target takes its used token and parked mail;
		// erasing a its token and queued mail, not its webhook events.
		for _, u := range []*store.User{p.b, p.a} {
			if _, _, err := dst.DeleteUser(ctx, u.ID); err != nil {
				t.Fatalf("DeleteUser %s: %v", u.ID, err)
			}
		}
		after := e.dump(t, dst)
		for k, v := range after {
			if strings.HasSuffix(k, ":outbox:parked:bodies") {
				// An ack (the cluster's erasure acks) leaves the entry:
				// DropParkedBodies drops it, finding the record gone.
				continue
			}
			for _, gone := range []string{p.a.ID, p.b.ID, p.tok.Hash, p.tokA2.Hash, p.parked.ID, p.mailA2.ID} {
				user := gone == p.a.ID || gone == p.b.ID
				// a's webhook chain stays, named after a.
				if strings.Contains(k, gone) && !(user && strings.Contains(k, ":chain:")) || !user && strings.Contains(v, gone) {
					t.Errorf("after DeleteUser: %s = %s still holds %s", k, v, gone)
				}
			}
		}
		if q, pk, err := dst.MailCounts(ctx); err != nil || q != 1 || pk != 0 {
			t.Errorf("MailCounts after the deletes = %d, %d, %v; want the chain's head queued, nothing parked", q, pk, err)
		}

		// The chain comes out of the target in order.
		var got []string
		later := time.Now().Add(time.Hour)
		for {
			m, err := dst.ClaimMail(ctx, later, time.Minute)
			if errors.Is(err, store.ErrNotFound) {
				break
			}
			if err != nil {
				t.Fatalf("ClaimMail: %v", err)
			}
			got = append(got, m.ID)
			if err := dst.AckMail(ctx, m.ID); err != nil {
				t.Fatal(err)
			}
		}
		if want := []string{p.events[0].ID, p.events[1].ID, p.events[2].ID}; !slices.Equal(got, want) {
			t.Errorf("claimed from the target %q, want the chain in order %q", got, want)
		}
	})
}

// TestPorterContract runs the store-agnostic Porter suite (export and
// import through package port) on each layout, source and target in two
// namespaces of one server (or cluster).
func TestPorterContract(t *testing.T) {
	t.Run("single", func(t *testing.T) {
		srv := testredis.Start(t)
		fresh := func(t *testing.T) store.Store { return open(t, srv) }
		storetest.RunPorter(t, fresh, fresh)
	})
	t.Run("cluster", func(t *testing.T) {
		fresh := func(t *testing.T) store.Store { return openCluster(t) }
		storetest.RunPorter(t, fresh, fresh)
	})
}
