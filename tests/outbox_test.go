package tests

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// rawDump is every stored key and value as the backend holds them: Redis
// string values (GET) and sorted-set members, or every bucket's keys and
// values of the embedded file (Caddy lets go of it for the look).
func (s *site) rawDump() string {
	s.t.Helper()
	var b strings.Builder
	if s.backend == backendEmbedded {
		s.load(idleConfig())
		defer s.load(s.cfg)
		db, err := bolt.Open(s.dbPath, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
		if err != nil {
			s.t.Fatalf("open embedded store: %v", err)
		}
		defer db.Close()
		err = db.View(func(tx *bolt.Tx) error {
			return tx.ForEach(func(name []byte, bk *bolt.Bucket) error {
				return bk.ForEach(func(k, v []byte) error {
					fmt.Fprintf(&b, "%s:%s=%s\n", name, k, v)
					return nil
				})
			})
		})
		if err != nil {
			s.t.Fatal(err)
		}
		return b.String()
	}
	ctx := context.Background()
	for _, k := range s.keys() {
		switch s.rdb.Type(ctx, k).Val() {
		case "string":
			fmt.Fprintf(&b, "%s=%s\n", k, s.rdb.Get(ctx, k).Val())
		case "zset":
			fmt.Fprintf(&b, "%s=%v\n", k, s.rdb.ZRange(ctx, k, 0, -1).Val())
		case "hash":
			fmt.Fprintf(&b, "%s=%v\n", k, s.rdb.HGetAll(ctx, k).Val())
		}
	}
	return b.String()
}

// The outbox keeps no token and no link at rest: a mail waiting for a
// down SMTP server is read raw from the store, then delivered when the
// server is back, and its link works.
func TestOutboxHoldsNoToken(t *testing.T) { eachBackend(t, testOutboxHoldsNoToken) }

func testOutboxHoldsNoToken(t *testing.T, backend string) {
	// The SMTP port is held by a listener that hangs up on every
	// connection, so sends fail and the mail waits in the outbox; the sink
	// takes the port over afterwards. (A free port could meanwhile become
	// some client connection's own port.)
	hold, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	attempted := make(chan struct{}, 100)
	go func() {
		for {
			c, err := hold.Accept()
			if err != nil {
				return
			}
			c.Close()
			attempted <- struct{}{}
		}
	}()
	sink := &smtpSink{t: t, addr: hold.Addr().String(), new: make(chan struct{}, 100)}
	t.Cleanup(sink.Stop)
	s := &rpostSite{site: startSite(t, backend, "smtp "+sink.URL(), fmt.Sprintf(rpostHandler, "")), sink: sink}
	expectRegistered(t, s.register(rpostJSON, docRpostSample), "user@company.com")
	// The first attempt has failed (the hold hung up), so the mail is back
	// in the outbox, due in 5s, and not claimed by a send that the dump's
	// config reload (embedded) would cut short (it would wait out the
	// 2-minute lease).
	select {
	case <-attempted:
	case <-time.After(30 * time.Second):
		t.Fatal("no delivery attempt")
	}
	dump := s.rawDump()
	if !strings.Contains(dump, "user@company.com") || !strings.Contains(dump, `"sealed":"v1.`) {
		t.Fatalf("no sealed mail in the store:\n%s", dump)
	}
	hold.Close()
	sink.Start(sink.addr)
	link := s.mailLink("user@company.com", rpostActivateRE)
	code := mustQuery(t, link, "code")
	// The token in any form, and the mail's body: the user record keeps
	// the link around the token (its resend link prefix, public), never
	// the mail.
	for _, secret := range []string{code, url.QueryEscape(code), "If you did not register"} {
		if strings.Contains(dump, secret) {
			t.Fatalf("the store held %q in clear:\n%s", secret, dump)
		}
	}
	if res := s.activate(pathOf(t, link)); res.Status != http.StatusOK || string(res.Body) != activatedBody {
		t.Fatalf("activate: %d %s", res.Status, res.Body)
	}
}
