package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddyregister/caddyregister/caddyregister/store"
	"github.com/caddyregister/caddyregister/caddyregister/store/redisstore"
	"github.com/caddyregister/caddyregister/caddyregister/store/storetest"
	"github.com/caddyregister/caddyregister/internal/testredis"
)

// TestClusterDistribution: 100,000 users' keys spread over the three
// masters within ±10% of their mean. The keys are the ones a registration
// writes per user (record, refs, e-mail and login entries, token index
// and token record), named by the store's own key functions and written
// directly in pipelines: registering 100,000 users through CreateUser
// would cost minutes on a shared two-core machine and prove nothing more
// about where the keys go. 1,000 real registrations then check that
// CreateUser writes where those functions say, on every master.
func TestClusterDistribution(t *testing.T) {
	clu := cluster(t)
	s := openCluster(t)
	ctx := context.Background()
	const users = 100_000
	const batch = 2_000
	for from := 0; from < users; from += batch {
		_, err := s.Client().Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := from; i < from+batch; i++ {
				id := store.NewID(time.Now())
				h := fmt.Sprintf("%064x", i)
				p.Set(ctx, s.UserKey(id, "user"), "u", time.Hour)
				p.SAdd(ctx, s.UserKey(id, "refs"), "token:"+h)
				p.Set(ctx, s.EmailKey(fmt.Sprintf("user%d@example.com", i)), id, time.Hour)
				p.Set(ctx, s.LoginKey(fmt.Sprintf("user%d", i)), id, time.Hour)
				p.Set(ctx, s.TokenIndexKey(h), id, time.Hour)
				p.Set(ctx, s.UserKey(id, "token", h), "t", time.Hour)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("writing users %d..: %v", from, err)
		}
	}
	counts := keysPerMaster(t, clu, s.Namespace())
	var total int64
	for _, n := range counts {
		total += n
	}
	if total != 6*users {
		t.Fatalf("found %d keys, wrote %d", total, 6*users)
	}
	mean := float64(total) / float64(len(counts))
	for addr, n := range counts {
		dev := (float64(n) - mean) / mean
		t.Logf("master %s: %d keys (%+.2f%% of the mean)", addr, n, 100*dev)
		if dev > 0.10 || dev < -0.10 {
			t.Errorf("master %s holds %d keys, mean %.0f: outside ±10%%", addr, n, mean)
		}
	}
	if len(counts) != 3 {
		t.Fatalf("keys on %d masters, want 3", len(counts))
	}

	// Real registrations, with a token and a mail, land on every master.
	real := openCluster(t)
	for i := range 1000 {
		u := storetest.NewTestUser(fmt.Sprintf("real%d@example.com", i), fmt.Sprintf("real%d", i))
		tok := &store.Token{Hash: fmt.Sprintf("%064x", i+1), Purpose: "activate", UserID: u.ID, ExpiresAt: time.Now().Add(time.Hour)}
		m := &store.Mail{ID: store.NewID(time.Now()), To: []string{u.Email}, Subject: "hi", Text: "x", UserID: u.ID, NextAttempt: time.Now().Add(time.Hour)}
		if err := real.CreateUser(ctx, store.NewUser{User: u, Token: tok, Mails: []*store.Mail{m}}); err != nil {
			t.Fatalf("CreateUser %d: %v", i, err)
		}
	}
	rc := keysPerMaster(t, clu, real.Namespace())
	for addr, n := range rc {
		t.Logf("1000 registrations: master %s holds %d keys", addr, n)
	}
	if len(rc) != 3 {
		t.Fatalf("1000 registrations wrote to %d masters, want 3: %v", len(rc), rc)
	}
	for addr, n := range rc {
		if n < 1000 {
			t.Errorf("master %s holds %d of the registrations' keys: not spread", addr, n)
		}
	}
}

// keysPerMaster counts the keys of namespace ns on each master (SCAN per
// node: a cluster client's SCAN would hop between nodes).
func keysPerMaster(t *testing.T, clu *testredis.Cluster, ns string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	var mu sync.Mutex
	cc := clu.ClusterClient(t)
	err := cc.ForEachMaster(context.Background(), func(ctx context.Context, c *redis.Client) error {
		var n int64
		iter := c.Scan(ctx, 0, "{"+ns+":*", 10_000).Iterator()
		for iter.Next(ctx) {
			n++
		}
		if err := iter.Err(); err != nil {
			return err
		}
		mu.Lock()
		out[c.Options().Addr] = n
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatalf("counting keys: %v", err)
	}
	for a, n := range out {
		if n == 0 {
			delete(out, a)
		}
	}
	return out
}

// TestClusterFailover: registrations run on two instances while a master
// is killed. One instance runs with min_replicas_ack=1, the other
// without. Afterwards: the replica took over and the instance without
// the option registers again without a restart; no e-mail is held by two
// users; and every registration acknowledged with min_replicas_ack=1 is
// still there (without it, asynchronous replication may lose the last
// writes of the killed master: this test does not assert on those).
func TestClusterFailover(t *testing.T) {
	clu := testredis.StartCluster(t)
	ns := "failover"
	// Through OpenStore and the URL forms the plugin uses (its fail-fast
	// retry settings included).
	open := func(query string) *redisstore.ClusterStore {
		b, err := redisstore.OpenStore("redis+cluster://"+strings.Join(clu.Seeds(), ",")+query, ns)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b.(*redisstore.ClusterStore)
	}
	acked, plain := open("?min_replicas_ack=1&replicas_ack_timeout=500ms"), open("")
	ctx := context.Background()

	type result struct {
		u   *store.User
		ack bool // registered through the min_replicas_ack instance
	}
	var (
		mu       sync.Mutex
		done     []result
		seq      atomic.Int64
		stop     atomic.Bool
		killed   atomic.Bool
		afterOK  atomic.Int64 // plain successes after the failover
		okBefore atomic.Int64
	)
	const dups = 20
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := acked
			if w%2 == 1 {
				s = plain
			}
			for !stop.Load() {
				i := seq.Add(1)
				email := fmt.Sprintf("user%d@example.com", i)
				if i%3 == 0 {
					email = fmt.Sprintf("dup%d@example.com", i%dups) // raced by every worker
				}
				u := storetest.NewTestUser(email, "")
				if err := s.CreateUser(ctx, store.NewUser{User: u}); err != nil {
					continue // conflicts, and failures while the master is down
				}
				mu.Lock()
				done = append(done, result{u, s == acked})
				mu.Unlock()
				if killed.Load() && s == plain {
					afterOK.Add(1)
				} else {
					okBefore.Add(1)
				}
			}
		}()
	}
	start := time.Now()
	waitUntil(t, "100 registrations before the kill", func() bool { return okBefore.Load() >= 100 })
	t.Logf("100 registrations in %v", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	if _, err := clu.KillMaster(0); err != nil {
		stop.Store(true)
		wg.Wait()
		t.Fatal(err)
	}
	killed.Store(true)
	t.Logf("master killed, replica promoted, cluster ok in %v", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	waitUntil(t, "50 registrations after the failover, without a restart", func() bool { return afterOK.Load() >= 50 })
	t.Logf("50 registrations after the failover in %v", time.Since(start).Round(time.Millisecond))
	stop.Store(true)
	wg.Wait()
	// The instances saw the failover; each walks its users once the
	// cluster serves again (Reconcile) and settles a user whose e-mail
	// entry the dead master took with it.
	start = time.Now()
	waitUntil(t, "a reconcile after the failover", func() bool { return plain.Reconciles() >= 1 && acked.Reconciles() >= 1 })
	t.Logf("users reconciled %v after the last registration", time.Since(start).Round(time.Millisecond))

	check := open("")
	// One address may be acknowledged twice only when the first
	// acknowledgment was lost to asynchronous replication (a plain
	// registration the killed master had not yet passed on: the address
	// was free again); two of them must never both exist afterwards.
	owners := map[string][]result{}
	for _, r := range done {
		owners[r.u.EmailKey] = append(owners[r.u.EmailKey], r)
	}
	for _, rs := range owners {
		if len(rs) < 2 {
			continue
		}
		var alive []string
		for _, r := range rs {
			if _, err := check.GetUser(ctx, r.u.ID); err == nil {
				alive = append(alive, r.u.ID)
			}
		}
		if len(alive) > 1 {
			t.Errorf("e-mail %s acknowledged to users that all exist: %v", rs[0].u.Email, alive)
		}
	}
	var nAcked, lostPlain int
	var ackedIDs []*store.User
	for _, r := range done {
		if !r.ack {
			if _, err := check.GetUser(ctx, r.u.ID); err != nil {
				lostPlain++
			}
			continue
		}
		nAcked++
		if _, err := check.GetUser(ctx, r.u.ID); err != nil {
			t.Errorf("acknowledged user %s (%s) lost: %v", r.u.ID, r.u.Email, err)
		}
		if id, err := check.UserIDByEmail(ctx, r.u.EmailKey); err != nil || id != r.u.ID {
			t.Errorf("acknowledged e-mail %s resolves to %q, %v; want %s", r.u.Email, id, err, r.u.ID)
		}
		ackedIDs = append(ackedIDs, r.u)
	}
	// No e-mail is held by two users, acknowledged or not: walk the
	// whole user list.
	seen := map[string]string{}
	cursor := ""
	for {
		page, err := check.ListUsers(ctx, store.UserFilter{Limit: store.MaxUserPage, Cursor: cursor})
		if err != nil {
			t.Fatalf("ListUsers: %v", err)
		}
		for _, u := range page.Users {
			if prev, ok := seen[u.EmailKey]; ok {
				t.Errorf("e-mail %s held by users %s and %s", u.Email, prev, u.ID)
			}
			seen[u.EmailKey] = u.ID
		}
		if cursor = page.Next; cursor == "" {
			break
		}
	}
	for _, u := range ackedIDs {
		if seen[u.EmailKey] != u.ID {
			t.Errorf("acknowledged user %s (%s) is not in the user list", u.ID, u.Email)
		}
	}
	t.Logf("%d registrations acknowledged (%d with min_replicas_ack=1), %d users listed; %d acknowledged without min_replicas_ack were lost", len(done), nAcked, len(seen), lostPlain)
	if nAcked == 0 {
		t.Fatal("no registration was acknowledged with min_replicas_ack=1")
	}
}

// waitUntil polls cond (an event: registrations counted), failing after
// a minute.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestClusterRoundTrips counts the round trips of a registration on the
// cluster layout (a pipeline over several masters is one: go-redis sends
// each master its share in parallel): three (reserve, finalize, clear the
// intent), four with a sequence number, three for one refused (the
// holder's record is read: an entry whose user is gone or expired pending
// is not a conflict), and two more WAITs with min_replicas_ack.
func TestClusterRoundTrips(t *testing.T) {
	s := openCluster(t)
	h := &countHook{}
	s.Client().AddHook(h)
	bg := context.Background()
	full := func(email, code, vat string, seq bool) store.NewUser {
		tenant := storetest.NewTestTenant(code, vat)
		u := storetest.NewTestFounder(email, "login"+code, tenant)
		n := store.NewUser{
			User: u, Tenant: tenant,
			Mails: []*store.Mail{storetest.NewTestMail(u.ID, time.Now()), storetest.NewTestMail(u.ID, time.Now())},
			Token: storetest.NewTestToken(u.ID, time.Now().Add(time.Hour)),
		}
		if seq {
			n.Sequence = "acct"
			n.Idempotency = storetest.NewTestIdempotency("key-"+code, "{}", time.Hour)
		}
		return n
	}
	for _, c := range []struct {
		name string
		n    store.NewUser
		want int64
	}{
		{"e-mail only", store.NewUser{User: storetest.NewTestUser("plain@example.com", "")}, 3},
		{"founder with login, two mails and a token", full("a@example.com", "A", "ES11111111A", false), 3},
		{"with a sequence number and an idempotency key", full("b@example.com", "B", "ES22222222B", true), 4},
	} {
		h.n.Store(0)
		if err := s.CreateUser(bg, c.n); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if n := h.n.Load(); n != c.want {
			t.Errorf("%s: %d round trips, want %d", c.name, n, c.want)
		}
	}
	h.n.Store(0)
	var ce *store.ConflictError
	if err := s.CreateUser(bg, full("b@example.com", "C", "ES33333333C", false)); !errors.As(err, &ce) {
		t.Fatalf("duplicate CreateUser: %v", err)
	}
	if n := h.n.Load(); n != 3 {
		t.Errorf("refused CreateUser took %d round trips, want 3 (reserve, read the holder's record, release)", n)
	}

	// With min_replicas_ack, each WAIT runs on a connection of its own per
	// master (not through the cluster client's hooks): count them by the
	// masters' command statistics instead.
	acked := openCluster(t)
	acked.SetMinReplicasAck(1, 5*time.Second)
	before := waitCalls(t)
	if err := acked.CreateUser(bg, full("c@example.com", "D", "ES44444444D", false)); err != nil {
		t.Fatal(err)
	}
	if n := waitCalls(t) - before; n < 2 || n > 6 {
		t.Errorf("min_replicas_ack registration sent %d WAITs, want one per master written, in two rounds (2..6)", n)
	}
}

// waitCalls is how many WAIT commands the cluster's masters ran.
func waitCalls(t *testing.T) int64 {
	t.Helper()
	var total atomic.Int64
	err := cluster(t).ClusterClient(t).ForEachMaster(context.Background(), func(ctx context.Context, c *redis.Client) error {
		info, err := c.Info(ctx, "commandstats").Result()
		if err != nil {
			return err
		}
		for _, line := range strings.Split(info, "\n") {
			if rest, ok := strings.CutPrefix(line, "cmdstat_wait:calls="); ok {
				var n int64
				fmt.Sscan(strings.SplitN(rest, ",", 2)[0], &n)
				total.Add(n)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return total.Load()
}

// TestClusterReshard: slots move between masters (redis-cli --cluster
// reshard, keys MIGRATEd with them) while registrations run. go-redis
// follows MOVED and ASK, so every registration succeeds, and each one is
// whole afterwards (record, e-mail entry, user list).
func TestClusterReshard(t *testing.T) {
	clu := cluster(t)
	s := openCluster(t)
	ctx := context.Background()
	var (
		mu    sync.Mutex
		done  []*store.User
		errs  []error
		seq   atomic.Int64
		stop  atomic.Bool
		moved atomic.Bool
		after atomic.Int64
	)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				u := storetest.NewTestUser(fmt.Sprintf("reshard%d@example.com", seq.Add(1)), "")
				err := s.CreateUser(ctx, store.NewUser{User: u, Token: storetest.NewTestToken(u.ID, time.Now().Add(time.Hour))})
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					done = append(done, u)
				}
				mu.Unlock()
				if moved.Load() {
					after.Add(1)
				}
			}
		}()
	}
	waitUntil(t, "registrations running", func() bool { return seq.Load() >= 50 })
	if err := clu.Reshard(0, 1, 300); err != nil {
		stop.Store(true)
		wg.Wait()
		t.Fatal(err)
	}
	moved.Store(true)
	waitUntil(t, "registrations after the reshard", func() bool { return after.Load() >= 50 })
	stop.Store(true)
	wg.Wait()
	for _, err := range errs {
		t.Errorf("registration during the reshard: %v", err)
	}
	for _, u := range done {
		if id, err := s.UserIDByEmail(ctx, u.EmailKey); err != nil || id != u.ID {
			t.Errorf("user %s after the reshard: %q, %v", u.Email, id, err)
		}
	}
	page, err := s.ListUsers(ctx, store.UserFilter{Limit: store.MaxUserPage})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d registrations during and after moving 300 slots, %d errors; first page lists %d", len(done), len(errs), len(page.Users))
}
