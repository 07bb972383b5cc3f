package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/caddyregister/caddyregister/caddyregister/store"
	"github.com/caddyregister/caddyregister/caddyregister/store/redisstore"
	"github.com/caddyregister/caddyregister/caddyregister/store/storetest"
	"github.com/caddyregister/caddyregister/internal/testredis"
)

// One cluster and one Sentinel setup per test binary: nine processes
// are dear on a small machine. TestMain stops them.
var (
	sharedClu  testredis.SharedCluster
	sentOnce   sync.Once
	sharedSent *testredis.Sentinel
	sentErr    error
)

// tlsFiles are the CA and certificate of TestConnectTLS's servers. The CA
// is trusted through SSL_CERT_FILE, set before anything loads the system
// pool, as an operator with a private CA would: the rediss forms verify
// against the system pool.
var tlsFiles *testredis.TLSFiles

func TestMain(m *testing.M) {
	var err error
	if tlsFiles, err = testredis.NewTLSFiles(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("SSL_CERT_FILE", tlsFiles.CA)
	code := m.Run()
	tlsFiles.Remove()
	sharedClu.Stop()
	if sharedSent != nil {
		sharedSent.Stop()
	}
	os.Exit(code)
}

func cluster(t *testing.T) *testredis.Cluster { return sharedClu.Get(t) }

func sentinel(t *testing.T) *testredis.Sentinel {
	t.Helper()
	sentOnce.Do(func() { sharedSent, sentErr = testredis.StartSentinelServer("regmaster", 1) })
	if sentErr != nil {
		t.Fatalf("testredis: %v", sentErr)
	}
	return sharedSent
}

// aclUser adds user reg with password pw on every server: ACL users are
// per node (neither replicated nor shared by a cluster).
func aclUser(t *testing.T, servers []*testredis.Server, user, pw string) {
	t.Helper()
	for _, s := range servers {
		if err := s.Client(t).Do(context.Background(), "ACL", "SETUSER", user, "reset", "on", ">"+pw, "~*", "&*", "+@all").Err(); err != nil {
			t.Fatalf("ACL SETUSER on %s: %v", s.Addr, err)
		}
	}
}

// roundTrip writes and reads keys in many slots through c.
func roundTrip(t *testing.T, c redis.UniversalClient) {
	t.Helper()
	ctx := context.Background()
	for i := range 30 {
		k := fmt.Sprintf("connect:%d", i)
		if err := c.Set(ctx, k, i, 0).Err(); err != nil {
			t.Fatalf("SET %s: %v", k, err)
		}
		if v, err := c.Get(ctx, k).Int(); err != nil || v != i {
			t.Fatalf("GET %s = %d, %v", k, v, err)
		}
	}
}

func TestConnectForms(t *testing.T) {
	clu := cluster(t)
	sen := sentinel(t)
	single := testredis.Start(t)
	aclUser(t, clu.Nodes, "reg", "s3cr3t-pw")
	aclUser(t, sen.Data, "reg", "s3cr3t-pw")
	aclUser(t, []*testredis.Server{single}, "reg", "s3cr3t-pw")
	seeds := clu.Seeds()

	for _, tc := range []struct {
		name, url string
		mode      redisstore.Mode
	}{
		{"single", single.URL(0), redisstore.ModeSingle},
		{"single acl", "redis://reg:s3cr3t-pw@" + single.Addr + "/0", redisstore.ModeSingle},
		{"cluster", "redis+cluster://" + strings.Join(seeds, ","), redisstore.ModeCluster},
		{"cluster one seed", "redis+cluster://" + seeds[4] + "/", redisstore.ModeCluster},
		{"cluster acl", "redis+cluster://reg:s3cr3t-pw@" + strings.Join(seeds[:2], ",") + "?dial_timeout=2s", redisstore.ModeCluster},
		{"cluster scheme case", "Redis+Cluster://" + seeds[0], redisstore.ModeCluster},
		{"sentinel", sen.URL(), redisstore.ModeSentinel},
		{"sentinel acl", "redis+sentinel://reg:s3cr3t-pw@" + strings.Join(sen.Addrs(), ",") + "/0?master=regmaster", redisstore.ModeSentinel},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, mode, err := redisstore.NewClient(tc.url)
			if err != nil {
				t.Fatalf("NewClient: %v", err)
			}
			defer c.Close()
			if mode != tc.mode {
				t.Fatalf("mode %s, want %s", mode, tc.mode)
			}
			roundTrip(t, c)
		})
	}

	// A wrong password is refused by the server, and the error says so
	// without the password.
	for _, u := range []string{
		"redis://reg:wrong-pw@" + single.Addr,
		"redis+cluster://reg:wrong-pw@" + seeds[0],
		"redis+sentinel://reg:wrong-pw@" + sen.Addrs()[0] + "?master=regmaster",
	} {
		c, _, err := redisstore.NewClient(u)
		if err != nil {
			t.Fatalf("NewClient: %v", err)
		}
		err = c.Ping(context.Background()).Err()
		c.Close()
		if err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
			t.Errorf("wrong password: ping = %v, want WRONGPASS", err)
		}
		if err != nil && strings.Contains(err.Error(), "wrong-pw") {
			t.Errorf("error quotes the password: %v", err)
		}
	}
}

// TestConnectTLS: each form over TLS against servers that speak only TLS
// (a TLS cluster also replicates and gossips over TLS), with an ACL user;
// the plain form of the same URL is refused by those servers.
func TestConnectTLS(t *testing.T) {
	single := testredis.StartTLS(t, tlsFiles)
	clu := testredis.StartClusterTLS(t, tlsFiles)
	sen := testredis.StartSentinelTLS(t, "tlsmaster", 1, tlsFiles)
	aclUser(t, []*testredis.Server{single}, "reg", "tls-pw")
	aclUser(t, clu.Nodes, "reg", "tls-pw")
	aclUser(t, sen.Data, "reg", "tls-pw")
	for _, tc := range []struct {
		name, url string
		mode      redisstore.Mode
	}{
		{"single", "rediss://reg:tls-pw@" + single.Addr + "/0", redisstore.ModeSingle},
		{"cluster", "rediss+cluster://reg:tls-pw@" + strings.Join(clu.Seeds()[:3], ","), redisstore.ModeCluster},
		{"sentinel", "rediss+sentinel://reg:tls-pw@" + strings.Join(sen.Addrs(), ",") + "?master=tlsmaster", redisstore.ModeSentinel},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, mode, err := redisstore.NewClient(tc.url)
			if err != nil {
				t.Fatalf("NewClient: %v", err)
			}
			defer c.Close()
			if mode != tc.mode {
				t.Fatalf("mode %s, want %s", mode, tc.mode)
			}
			roundTrip(t, c)
			plain, _, err := redisstore.NewClient(strings.Replace(tc.url, "rediss", "redis", 1))
			if err != nil {
				t.Fatal(err)
			}
			defer plain.Close()
			if err := plain.Ping(context.Background()).Err(); err == nil {
				t.Errorf("plain connection to a TLS-only %s answered", tc.name)
			}
		})
	}
	// The store runs on Sentinel over TLS.
	s, err := redisstore.Open("rediss+sentinel://reg:tls-pw@"+sen.Addrs()[0]+"?master=tlsmaster", "tlsns")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.LoadOrCreateSecret(context.Background(), "probe", []byte("v")); err != nil {
		t.Fatalf("store over TLS sentinel: %v", err)
	}
}

// TestConnectOptions: the retry defaults stay fail-fast in every form
// unless the URL sets them, and rediss+ turns TLS on for clusters and
// Sentinel as rediss:// does for one node.
func TestConnectOptions(t *testing.T) {
	opts := func(u string) (retries, dial int, tls bool) {
		t.Helper()
		c, _, err := redisstore.NewClient(u)
		if err != nil {
			t.Fatalf("NewClient(%s): %v", u, err)
		}
		defer c.Close()
		switch c := c.(type) {
		case *redis.ClusterClient:
			o := c.Options()
			return o.MaxRetries, o.DialerRetries, o.TLSConfig != nil
		case *redis.Client:
			o := c.Options()
			return o.MaxRetries, o.DialerRetries, o.TLSConfig != nil
		}
		t.Fatalf("client %T", c)
		return
	}
	for _, tc := range []struct {
		url           string
		retries, dial int
		tls           bool
	}{
		{"redis://h:1", 1, 1, false},
		{"rediss://h:1?max_retries=4", 4, 1, true},
		{"redis+cluster://h:1,h:2", 1, 1, false},
		{"rediss+cluster://h:1,h:2?max_retries=5&dialer_retries=3", 5, 3, true},
		{"redis+sentinel://h:1?master=m", 1, 1, false},
		{"rediss+sentinel://h:1,h:2?master=m&max_retries=2", 2, 1, true},
	} {
		r, d, tls := opts(tc.url)
		if r != tc.retries || (tc.dial != 0 && d != tc.dial) || tls != tc.tls {
			t.Errorf("%s: max_retries %d dialer_retries %d tls %v; want %d %d %v", tc.url, r, d, tls, tc.retries, tc.dial, tc.tls)
		}
	}
}

// TestConnectBadURLs: every malformed URL is refused with what is wrong,
// never with the password it holds.
func TestConnectBadURLs(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"localhost:6379", "not a url"},
		{"http://u:pw-secret@h:1", "unknown scheme"},
		{"redis+cloud://u:pw-secret@h:1", "unknown scheme"},
		{"redis://u:pw-secret@h:xx/0", "invalid port"},
		{"redis://u:pw-secret@h:1/zz", "invalid database"},
		{"redis://u:pw-secret@h:1/0?bogus=1", "unexpected option"},
		{"redis+cluster://u:pw-secret@h1:1,h2", "want host:port"},
		{"redis+cluster://u:pw-secret@", "want host:port"},
		{"redis+cluster://u:pw-secret@h:1/3", "only database 0"},
		{"redis+cluster://u:pw-secret@h:1?bogus=1", "unexpected option"},
		{"redis+sentinel://u:pw-secret@h:1,h:2", "master="},
		{"redis+sentinel://u:pw-secret@h:1?master=m&bogus=1", "unexpected option"},
		{"redis+sentinel://u:pw-secret@h:1/x?master=m", "invalid database"},
		// A password with an unescaped '/' or '?' splits the URL early:
		// the parsers then quote a piece of it as a port or a database.
		{"redis://u:pw-secret/x@h:1", "invalid port"},
		{"redis://u:pw?secret@h:1", "invalid"},
		{"redis+cluster://u:pw-secret/x@h:1", "invalid"},
		{"redis+sentinel://u:pw-secret/x@h:1?master=m", "invalid"},
	} {
		_, _, err := redisstore.NewClient(tc.url)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewClient(%s) = %v, want %q", tc.url, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("NewClient(%s) = %v: quotes the password", tc.url, err)
		}
		if _, err := redisstore.Open(tc.url, "x"); err == nil || strings.Contains(err.Error(), "secret") {
			t.Errorf("Open(%s) = %v: want an error without the password", tc.url, err)
		}
	}
}

// TestOpenRefusesCluster: a cluster URL is refused at Open, with the
// reason and the issue, until the key layout spreads (issue 15); the
// findings behind it are in docs/cluster-layout.md.
func TestOpenRefusesCluster(t *testing.T) {
	for _, u := range []string{"redis+cluster://u:pw-secret@h:1,h:2", "rediss+cluster://h:1"} {
		_, err := redisstore.Open(u, "x")
		if !errors.Is(err, redisstore.ErrClusterLayout) {
			t.Fatalf("Open(%s) = %v, want ErrClusterLayout", u, err)
		}
		if strings.Contains(err.Error(), "pw-secret") || !strings.Contains(err.Error(), "issue 15") {
			t.Errorf("Open(%s): %v", u, err)
		}
	}
}

// TestContractSentinel: the whole store contract holds through Sentinel's
// failover client (one master at a time: today's layout runs unchanged).
func TestContractSentinel(t *testing.T) {
	sen := sentinel(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := redisstore.Open(sen.URL(), fmt.Sprintf("sen%d", nsSeq.Add(1)))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestSentinelFailoverStore: a store on Sentinel keeps working across a
// failover without being reopened, with its fail-fast retry defaults:
// go-redis follows the sentinels' switch to the promoted replica. Writes
// acknowledged by a replica (WAIT) before the switch are all there.
func TestSentinelFailoverStore(t *testing.T) {
	sen := testredis.StartSentinel(t, "fomaster", 1)
	s, err := redisstore.Open(sen.URL(), "fo")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	before := storetest.NewTestUser("before@example.com", "before")
	if err := s.CreateUser(ctx, store.NewUser{User: before}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Client().Do(ctx, "WAIT", 1, 10000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT: %d, %v", n, err)
	}
	if _, err := sen.Failover(); err != nil {
		t.Fatal(err)
	}
	// The first command may meet a connection the old master closed or a
	// READONLY reply (it is a replica now): go-redis retries once (the
	// store's default) after asking the sentinels again. At most one
	// request may fail; here none did.
	after := storetest.NewTestUser("after@example.com", "after")
	if err := s.CreateUser(ctx, store.NewUser{User: after}); err != nil {
		t.Logf("first request after the failover: %v", err)
		if err := s.CreateUser(ctx, store.NewUser{User: after}); err != nil {
			t.Fatalf("store did not recover after the failover: %v", err)
		}
	}
	for _, u := range []*store.User{before, after} {
		if id, err := s.UserIDByEmail(ctx, u.EmailKey); err != nil || id != u.ID {
			t.Errorf("user %s after failover: %q, %v", u.Email, id, err)
		}
	}
}

// TestCheckDeployment: a plain URL naming a node of a real cluster is
// recognised (Caddy then refuses to start), one node and Sentinel are not.
func TestCheckDeployment(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name, url string
		cluster   bool
	}{
		{"cluster node", cluster(t).Nodes[0].URL(0), true},
		{"single", testredis.Start(t).URL(0), false},
		{"sentinel", sentinel(t).URL(), false},
	} {
		s, err := redisstore.Open(tc.url, "chk")
		if err != nil {
			t.Fatal(err)
		}
		err = s.CheckDeployment(ctx)
		s.Close()
		if got := errors.Is(err, redisstore.ErrClusterLayout); got != tc.cluster || (!tc.cluster && err != nil) {
			t.Errorf("%s: CheckDeployment = %v", tc.name, err)
		}
	}
}

// TestConnectSentinelAuth: sentinels with their own ACL user take
// sentinel_username and sentinel_password; the URL's user:pass is the
// data nodes'. Without the sentinel's credentials the master is not found.
func TestConnectSentinelAuth(t *testing.T) {
	sen := testredis.StartSentinel(t, "authmaster", 1)
	ctx := context.Background()
	aclUser(t, sen.Data, "reg", "data-pw")
	for _, sn := range sen.Sentinels {
		c := sn.Client(t)
		if err := c.Do(ctx, "ACL", "SETUSER", "watcher", "on", ">sent-pw", "allcommands", "allchannels").Err(); err != nil {
			t.Fatalf("ACL SETUSER on sentinel: %v", err)
		}
		if err := c.Do(ctx, "ACL", "SETUSER", "default", "off").Err(); err != nil {
			t.Fatalf("ACL SETUSER default off: %v", err)
		}
	}
	base := "redis+sentinel://reg:data-pw@" + sen.Addrs()[0] + "?master=authmaster"
	c, _, err := redisstore.NewClient(base + "&sentinel_username=watcher&sentinel_password=sent-pw")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip(t, c)

	bad, _, err := redisstore.NewClient(base)
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if err := bad.Ping(ctx).Err(); err == nil {
		t.Fatal("reached the master through a sentinel that wants credentials, without them")
	}
}
