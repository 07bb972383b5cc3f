package caddyregister

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/redis/go-redis/v9"

	"github.com/caddyregister/caddyregister/caddyregister/store/redisstore"
	"github.com/caddyregister/caddyregister/internal/testredis"
)

// TestStoreRedisBlock: `store redis { … }` and the URL shorthands fill
// StoreConfig and nothing else.
func TestStoreRedisBlock(t *testing.T) {
	for _, tc := range []struct {
		name, input string
		want        StoreConfig
	}{
		{"cluster shorthand", "register {\n store redis+cluster://a:1,b:2 ns\n}",
			StoreConfig{Backend: "redis", URL: "redis+cluster://a:1,b:2", Namespace: "ns"}},
		{"sentinel shorthand", "register {\n store rediss+sentinel://a:1?master=m\n}",
			StoreConfig{Backend: "redis", URL: "rediss+sentinel://a:1?master=m"}},
		{"block url", "register {\n store redis {\n url {env.REDIS_URL}\n namespace ns\n }\n}",
			StoreConfig{Backend: "redis", URL: "{env.REDIS_URL}", Namespace: "ns"}},
		{"block cluster", "register {\n store redis {\n cluster a:7000 b:7001\n cluster c:7002\n username reg\n password {env.REDIS_PASSWORD}\n tls\n }\n}",
			StoreConfig{Backend: "redis", Cluster: []string{"a:7000", "b:7001", "c:7002"}, Username: "reg", Password: "{env.REDIS_PASSWORD}", TLS: true}},
		{"block sentinel", "register {\n store redis {\n sentinel s1:26379 s2:26379 s3:26379\n master regmaster\n password {file./run/secrets/redis}\n }\n}",
			StoreConfig{Backend: "redis", Sentinels: []string{"s1:26379", "s2:26379", "s3:26379"}, Master: "regmaster", Password: "{file./run/secrets/redis}"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var a App
			if err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input)); err != nil {
				t.Fatalf("UnmarshalCaddyfile: %v", err)
			}
			if a.Store == nil || !reflect.DeepEqual(*a.Store, tc.want) {
				t.Fatalf("store = %+v, want %+v", a.Store, tc.want)
			}
		})
	}
	for _, tc := range []struct{ name, input, want string }{
		{"empty block", "register {\n store redis {\n }\n}", "needs a url, cluster seed nodes or sentinels"},
		{"unknown subdirective", "register {\n store redis {\n nodes a:1\n }\n}", `unknown store redis subdirective "nodes"`},
		{"cluster without nodes", "register {\n store redis {\n cluster\n }\n}", "cluster needs at least one host:port"},
		{"sentinel without nodes", "register {\n store redis {\n sentinel\n }\n}", "sentinel needs at least one host:port"},
		{"tls with argument", "register {\n store redis {\n cluster a:1\n tls yes\n }\n}", "wrong argument count"},
		{"password twice", "register {\n store redis {\n cluster a:1\n password a b\n }\n}", "wrong argument count"},
		{"master missing", "register {\n store redis {\n sentinel a:1\n master\n }\n}", "wrong argument count"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var a App
			err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("UnmarshalCaddyfile = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestStoreRedisURL: the parts resolve to one URL in redisstore's forms,
// and contradictory parts are refused without quoting the password.
func TestStoreRedisURL(t *testing.T) {
	t.Setenv("REGISTER_TEST_REDIS_PW", "p@ss/w:rd")
	t.Setenv("REGISTER_TEST_REDIS_SEEDS", "a:1,b:2")
	repl := caddy.NewReplacer()
	for _, tc := range []struct {
		name string
		sc   StoreConfig
		want string
	}{
		{"url", StoreConfig{URL: "redis://h:1/2"}, "redis://h:1/2"},
		{"cluster", StoreConfig{Cluster: []string{"a:1", "b:2"}}, "redis+cluster://a:1,b:2"},
		{"cluster from env", StoreConfig{Cluster: []string{"{env.REGISTER_TEST_REDIS_SEEDS}", "c:3"}}, "redis+cluster://a:1,b:2,c:3"},
		{"cluster tls acl", StoreConfig{Cluster: []string{"a:1"}, Username: "reg", Password: "{env.REGISTER_TEST_REDIS_PW}", TLS: true},
			"rediss+cluster://reg:p%40ss%2Fw%3Ard@a:1"},
		{"password only", StoreConfig{Cluster: []string{"a:1"}, Password: "pw"}, "redis+cluster://:pw@a:1"},
		{"sentinel", StoreConfig{Sentinels: []string{"s:26379"}, Master: "my master", Username: "reg"}, "redis+sentinel://reg@s:26379?master=my+master"},
	} {
		got, err := tc.sc.redisURL(repl)
		if err != nil || got != tc.want {
			t.Errorf("%s: redisURL = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	// The built URL parses with the password intact.
	u, _ := (&StoreConfig{Cluster: []string{"a:1"}, Username: "reg", Password: "{env.REGISTER_TEST_REDIS_PW}"}).redisURL(repl)
	c, _, err := redisstore.NewClient(u)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if o := c.(*redis.ClusterClient).Options(); o.Username != "reg" || o.Password != "p@ss/w:rd" || !reflect.DeepEqual(o.Addrs, []string{"a:1"}) {
		t.Fatalf("parsed back: user %q password ok %v addrs %v", o.Username, o.Password == "p@ss/w:rd", o.Addrs)
	}

	for _, tc := range []struct {
		name string
		sc   StoreConfig
		want string
	}{
		{"nothing", StoreConfig{}, "needs a url, cluster seed nodes or sentinels"},
		{"url and cluster", StoreConfig{URL: "redis://h:1", Cluster: []string{"a:1"}}, "one of url, cluster and sentinel"},
		{"cluster and sentinel", StoreConfig{Cluster: []string{"a:1"}, Sentinels: []string{"s:1"}}, "one of url, cluster and sentinel"},
		{"url and password", StoreConfig{URL: "redis://h:1", Password: "secret-pw"}, "put the user, password and TLS"},
		{"sentinel without master", StoreConfig{Sentinels: []string{"s:1"}}, "sentinel needs master"},
		{"master without sentinel", StoreConfig{Cluster: []string{"a:1"}, Master: "m"}, "master goes with sentinel"},
		{"bad node", StoreConfig{Cluster: []string{"a"}, Password: "secret-pw"}, `node "a": want host:port`},
		{"empty env url", StoreConfig{URL: "{env.REGISTER_TEST_UNSET}"}, "resolved empty"},
		{"empty env seeds", StoreConfig{Cluster: []string{"{env.REGISTER_TEST_UNSET}"}}, "resolved empty"},
	} {
		_, err := tc.sc.redisURL(repl)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "secret-pw") {
			t.Errorf("%s: redisURL error %v, want %q without the password", tc.name, err, tc.want)
		}
	}
}

// TestProvisionCluster: a cluster store provisions (no network: `caddy
// validate` passes) on the cluster layout.
func TestProvisionCluster(t *testing.T) {
	for _, sc := range []*StoreConfig{
		{Backend: "redis", URL: "redis+cluster://reg:secret-pw@127.0.0.1:1,127.0.0.1:2"},
		{Backend: "redis", Cluster: []string{"127.0.0.1:1"}, Password: "secret-pw"},
	} {
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		a := &App{Store: sc}
		err := a.Provision(ctx)
		if err != nil {
			cancel()
			t.Fatalf("Provision = %v, want the cluster layout", err)
		}
		if _, ok := a.engine.Store().(*redisstore.ClusterStore); !ok {
			t.Errorf("store is a %T, want *redisstore.ClusterStore", a.engine.Store())
		}
		a.Cleanup()
		cancel()
	}
}

// TestStoreCluster: the app runs on a real Redis Cluster given by its
// seed nodes: Start writes the signing key, which lands in the
// namespace's slot on one master.
func TestStoreCluster(t *testing.T) {
	clu := sharedCluster(t)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	a := &App{Store: &StoreConfig{Backend: "redis", Cluster: clu.Seeds(), Namespace: "clusterns"}}
	if err := a.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer a.Cleanup()
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	cc := clu.ClusterClient(t)
	n, err := cc.Exists(context.Background(), "{clusterns}:secret:signing-keys").Result()
	var keys []string
	if err == nil && n == 0 {
		var mu sync.Mutex // ForEachMaster calls the masters concurrently
		err = cc.ForEachMaster(context.Background(), func(ctx context.Context, c *redis.Client) error {
			ks, err := c.Keys(ctx, "{clusterns}:secret:*").Result()
			mu.Lock()
			keys = append(keys, ks...)
			mu.Unlock()
			return err
		})
		n = int64(len(keys))
	}
	if err != nil || n == 0 {
		t.Fatalf("signing key on the cluster: %v, %v", keys, err)
	}
}

// TestStoreSentinel: the app runs on Sentinel, given by parts with an ACL
// user whose password comes from the environment: Start writes the
// signing key through the master the sentinel names.
func TestStoreSentinel(t *testing.T) {
	sen := testredis.StartSentinel(t, "regmaster", 1)
	for _, s := range sen.Data {
		if err := s.Client(t).Do(context.Background(), "ACL", "SETUSER", "reg", "on", ">sen-pw", "~*", "&*", "+@all").Err(); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("REGISTER_TEST_SEN_PW", "sen-pw")
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	a := &App{Store: &StoreConfig{Backend: "redis", Sentinels: sen.Addrs(), Master: "regmaster",
		Username: "reg", Password: "{env.REGISTER_TEST_SEN_PW}", Namespace: "sentns"}}
	if err := a.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer a.Cleanup()
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	m, err := sen.Master()
	if err != nil {
		t.Fatal(err)
	}
	admin := redis.NewClient(&redis.Options{Addr: m.Addr, Username: "reg", Password: "sen-pw"})
	defer admin.Close()
	keys, err := admin.Keys(context.Background(), "{sentns}:secret:*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("signing key on the master: %v, %v", keys, err)
	}
}

// TestStartRefusesClusterNode: a redis:// URL that names a cluster node
// passes Provision (no I/O there) and stops Start with the not-yet reason,
// instead of failing request by request with MOVED.
func TestStartRefusesClusterNode(t *testing.T) {
	node := testredis.StartClusterNode(t)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	a := &App{Store: &StoreConfig{Backend: "redis", URL: node.URL(0)}}
	if err := a.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer a.Cleanup()
	err := a.Start()
	if err == nil {
		a.Stop()
		t.Fatal("Start succeeded on a cluster node")
	}
	if !errors.Is(err, redisstore.ErrClusterLayout) || !strings.Contains(err.Error(), "names a node of a redis cluster") {
		t.Fatalf("Start = %v, want the cluster node refused", err)
	}
}
