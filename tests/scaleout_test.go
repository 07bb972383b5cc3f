package tests

import (
	"context"
	"fmt"
	"net/http"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/store/redisstore"
	"github.com/caddyregister/caddyregister/internal/testredis"
)

// Several Caddy instances on one store, behind Caddy's own reverse_proxy
// (issue "Scale out"): two cmd/caddy processes share the store, and the
// in-process Caddy balances between them round robin.

// scaleOut is two instances and the balancer in front of them.
type scaleOut struct {
	lb       *site
	a, b     *instance
	sink     *smtpSink
	hooks    *receiver
	whKey    []byte
	redisURL string
	ns       string
}

func startScaleOut(t *testing.T, redisURL string) *scaleOut {
	t.Helper()
	nsCounter++
	so := &scaleOut{sink: startSMTP(t), hooks: newReceiver(t), redisURL: redisURL, ns: fmt.Sprintf("scale%d", nsCounter)}
	whsec, key := newWhsec(t)
	so.whKey = key
	global := fmt.Sprintf("store redis %s %s\n\t\t%s\n\t\tsmtp %s\n\t\t%s", redisURL, so.ns, cheapHash, so.sink.URL(),
		webhookGlobal(so.hooks.srv.URL, whsec))
	site := `register noraina /api {
		activation email
		rate_limit register off
	}
	register account /account {
		rate_limit login 5/m burst 5
	}`
	so.a = startInstance(t, global, site)
	so.b = startInstance(t, global, site)
	// In a handle block: the harness's fallback respond would otherwise
	// run first (respond is ordered before reverse_proxy).
	lb := fmt.Sprintf("handle {\n\t\treverse_proxy %s %s {\n\t\t\tlb_policy round_robin\n\t\t}\n\t}", strings.TrimPrefix(so.a.base, "http://"), strings.TrimPrefix(so.b.base, "http://"))
	so.lb = startSite(t, backendEmbedded, "", lb)
	return so
}

// TestScaleOutTwoInstances runs the scale-out checks on a single Redis
// node and on a real Redis Cluster (three masters, three replicas).
func TestScaleOutTwoInstances(t *testing.T) {
	t.Run("redis", func(t *testing.T) { testScaleOut(t, redisSrv.URL(0)) })
	t.Run("redis-cluster", func(t *testing.T) { testScaleOut(t, "redis+cluster://"+strings.Join(testCluster(t).Seeds(), ",")) })
}

// sharedCluster is one Redis Cluster for the whole test binary, started
// on first use and stopped by TestMain (stopTestCluster).
var sharedCluster testredis.SharedCluster

func testCluster(t *testing.T) *testredis.Cluster { return sharedCluster.Get(t) }

func stopTestCluster() { sharedCluster.Stop() }

func testScaleOut(t *testing.T, redisURL string) {
	so := startScaleOut(t, redisURL)

	// 100 concurrent registrations of one e-mail, spread over both
	// instances: exactly one succeeds.
	const n = 100
	statuses := make([]int, n)
	tokens := make([]string, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			res := so.lb.postJSON("/api/register", `{"name":"Racer","mail":"race@example.com","password":"my_password"}`)
			statuses[i] = res.Status
			if res.Status == http.StatusCreated {
				tokens[i], _ = res.JSON(t)["data"].(map[string]any)["token"].(string)
			}
		}()
	}
	close(start)
	wg.Wait()
	count := map[int]int{}
	var tok string
	for i, st := range statuses {
		count[st]++
		if tokens[i] != "" {
			tok = tokens[i]
		}
	}
	if count[http.StatusCreated] != 1 || count[http.StatusConflict] != n-1 {
		t.Fatalf("statuses %v, want one 201 and %d 409", count, n-1)
	}

	// A token issued through one instance verifies on both, and a logout
	// through one is refused by the other within the bound.
	for _, in := range []*instance{so.a, so.b} {
		if st := in.status(t, http.MethodGet, "/api/me", map[string]string{"x-access-token": tok}); st != http.StatusOK {
			t.Fatalf("%s: the registration's token: %d", in.base, st)
		}
	}
	if st := so.a.status(t, http.MethodPost, "/account/logout", bearerH(tok)); st != http.StatusNoContent {
		t.Fatalf("logout through the first instance: %d", st)
	}
	took := so.b.awaitRefused(t, tok)
	if took > revocationBound {
		t.Errorf("the other instance refused the logged-out token after %v, bound %v", took, revocationBound)
	}

	// The per-client limit is one limit for both instances: of ten
	// logins through the balancer (round robin: five on each), five are
	// let through and five refused, not ten let through.
	limited := 0
	for i := range 10 {
		res := so.lb.postJSON("/account/login", fmt.Sprintf(`{"identifier":"nobody%d@example.com","password":"wrong password"}`, i))
		switch res.Status {
		case http.StatusTooManyRequests:
			limited++
		case http.StatusUnauthorized:
		default:
			t.Fatalf("login %d: %d %s", i, res.Status, res.Body)
		}
	}
	if limited != 5 {
		t.Errorf("%d of 10 logins rate limited, want 5 (the limit is shared)", limited)
	}

	// Mails and webhook events are delivered once per message id, though
	// both instances' workers claim from the one outbox.
	const users = 20
	for i := range users {
		if res := so.lb.postJSON("/api/register", fmt.Sprintf(`{"name":"U","mail":"u%d@example.com","password":"my_password"}`, i)); res.Status != http.StatusCreated {
			t.Fatalf("register %d: %d %s", i, res.Status, res.Body)
		}
	}
	so.awaitOutboxEmpty(t)
	// Mails: the first registration's activation mail and one per user.
	ids := map[string]int{}
	for _, m := range so.sink.all() {
		msg, err := mail.ReadMessage(strings.NewReader(string(m.Raw)))
		if err != nil {
			t.Fatal(err)
		}
		ids[msg.Header.Get("Message-Id")]++
	}
	if len(ids) != users+1 {
		t.Errorf("%d distinct mails, want %d", len(ids), users+1)
	}
	for id, c := range ids {
		if c != 1 {
			t.Errorf("mail %s delivered %d times", id, c)
		}
	}
	// Webhooks: user.created and session.created for each of the 21
	// users (the registration's token opens a session), and the
	// logout's nothing.
	got := delivered(so.hooks.all())
	seen := map[string]int{}
	types := map[string]int{}
	for _, d := range got {
		verify(t, d, so.whKey)
		seen[d.ID]++
		types[d.Type]++
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("webhook %s delivered %d times", id, c)
		}
	}
	if types["user.created"] != users+1 || types["session.created"] != users+1 {
		t.Errorf("webhook events %v, want %d user.created and session.created", types, users+1)
	}
}

// all returns the messages the sink received so far.
func (s *smtpSink) all() []*received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*received(nil), s.msgs...)
}

// awaitOutboxEmpty waits until nothing is queued or parked: every message
// was acknowledged, so no later delivery can come.
func (so *scaleOut) awaitOutboxEmpty(t *testing.T) {
	t.Helper()
	st, err := redisstore.OpenStore(so.redisURL, so.ns)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	deadline := time.Now().Add(60 * time.Second)
	for {
		q, p, err := st.MailCounts(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if q == 0 && p == 0 {
			return
		}
		if p > 0 || time.Now().After(deadline) {
			t.Fatalf("outbox: %d queued, %d parked", q, p)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
