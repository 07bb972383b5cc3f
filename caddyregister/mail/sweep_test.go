package mail_test

import (
	"context"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddyregister/caddyregister/caddyregister/mail"
	"github.com/caddyregister/caddyregister/caddyregister/store"
	"github.com/caddyregister/caddyregister/caddyregister/store/boltstore"
	"github.com/caddyregister/caddyregister/caddyregister/store/storetest"
	"github.com/caddyregister/caddyregister/internal/testredis"
)

// withCorruptParked returns a store holding parked mails with expired
// links, one of whose records cannot be decoded, for each backend.
func withCorruptParked() map[string]func(t *testing.T) (store.Store, *store.Mail) {
	return map[string]func(t *testing.T) (store.Store, *store.Mail){
		"bolt": func(t *testing.T) (store.Store, *store.Mail) {
			path := t.TempDir() + "/x.db"
			s, err := boltstore.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			bad := storetest.ParkExpired(t, s, 2)[0]
			// bbolt locks its file: write the bad record through a
			// handle of its own, then open the store again.
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			err = db.Update(func(tx *bolt.Tx) error {
				return tx.Bucket([]byte("mail")).Put([]byte(bad.ID), []byte("{not json"))
			})
			if cerr := db.Close(); err != nil || cerr != nil {
				t.Fatal(err, cerr)
			}
			if s, err = boltstore.Open(path); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s, bad
		},
		"redis": func(t *testing.T) (store.Store, *store.Mail) {
			s := openRedis(t, testredis.Start(t), "sweeptest")
			bad := storetest.ParkExpired(t, s, 2)[0]
			if err := s.Client().Set(context.Background(), s.Key("mail", bad.ID), "{not json", 0).Err(); err != nil {
				t.Fatal(err)
			}
			return s, bad
		},
	}
}

// sentSignal is an Observer that signals each sent mail.
type sentSignal chan struct{}

func (s sentSignal) Sent() { s <- struct{}{} }
func (sentSignal) Failed() {}
func (sentSignal) Parked() {}

// An undecodable parked record neither stops the sweep nor holds up
// delivery: the sweep logs it once and the worker, idle with a poll
// interval of an hour, still answers the next kick by sending a fresh
// mail (before, the failed sweep put the loop in its store backoff, where
// kicks are ignored, and retried the sweep at every poll).
func TestCorruptParkedDoesNotStallDelivery(t *testing.T) {
	for name, open := range withCorruptParked() {
		t.Run(name, func(t *testing.T) {
			st, bad := open(t)
			k := startSink(t, sinkOptions{})
			logged := make(chan zapcore.Entry, 16)
			core, logs := observer.New(zapcore.ErrorLevel)
			log := zap.New(zapcore.RegisterHooks(core, func(e zapcore.Entry) error {
				select {
				case logged <- e:
				default:
				}
				return nil
			}))
			sent := make(sentSignal, 1)
			w := mail.NewWorker(mail.WorkerConfig{
				Outbox: st, Sender: smtpSender(t, k), Logger: log, Observer: sent,
				PollInterval: time.Hour, SweepInterval: time.Hour,
			})
			w.Start()
			t.Cleanup(func() { _ = w.Stop(context.Background()) })

			// The first poll's sweep meets the bad record.
			guard := time.NewTimer(30 * time.Second) // a hung test, not a speed limit
			defer guard.Stop()
			select {
			case e := <-logged:
				if !strings.Contains(e.Message, "cannot be decoded") {
					t.Errorf("sweep logged %q, want the skipped record", e.Message)
				}
			case <-guard.C:
				t.Fatal("the sweep never reported the corrupt record")
			}
			if l := logs.All(); len(l) != 1 || !strings.Contains(l[0].ContextMap()["error"].(string), bad.ID) {
				t.Errorf("sweep log does not name %s: %v", bad.ID, l)
			}

			m := enqueue(t, st, 1, time.Now().Add(-time.Second))[0]
			w.Kick()
			select {
			case <-sent:
			case <-guard.C:
				t.Fatal("a fresh mail was not sent on a kick after the corrupt record: delivery is backing off")
			}
			if msgs := k.Messages(); len(msgs) != 1 || !strings.Contains(string(msgs[0].Raw), m.Subject) {
				t.Fatalf("delivered %d messages", len(msgs))
			}
			// The sweep ran once: no further error was logged.
			if n := logs.Len(); n != 1 {
				t.Fatalf("%d error logs, want the one about the corrupt record", n)
			}
		})
	}
}
