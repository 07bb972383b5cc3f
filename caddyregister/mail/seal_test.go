package mail_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/caddyregister/caddyregister/caddyregister/mail"
	"github.com/caddyregister/caddyregister/caddyregister/store"
	"github.com/caddyregister/caddyregister/caddyregister/store/boltstore"
	"github.com/caddyregister/caddyregister/caddyregister/store/storetest"
	"github.com/caddyregister/caddyregister/internal/testredis"
)

const (
	sealToken = "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWpr"
	sealLink  = "https://example.com/api/confirm?token=" + sealToken
)

func newSealer(t *testing.T, fill byte) *mail.Sealer {
	t.Helper()
	s, err := mail.NewSealer(bytes.Repeat([]byte{fill}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sealedMail(t *testing.T, s *mail.Sealer, id string) *store.Mail {
	t.Helper()
	m := &store.Mail{ID: id, To: []string{"a@example.com"}, Subject: "Confirm " + sealToken,
		Text: "Open " + sealLink, HTML: `<a href="` + sealLink + `">confirm</a>`}
	if err := s.Seal(m, sealToken); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSealer(t *testing.T) {
	s := newSealer(t, 1)
	m := sealedMail(t, s, "m1")
	if m.Text != "" || m.HTML != "" || m.Sealed == "" || strings.Contains(m.Sealed, sealToken) {
		t.Fatalf("sealed = %+v", m)
	}
	if m.Subject != "Confirm [token]" {
		t.Fatalf("clear subject %q keeps the token", m.Subject)
	}
	subject, text, html, err := s.Open(m)
	if err != nil || subject != "Confirm "+sealToken || text != "Open "+sealLink || !strings.Contains(html, sealLink) {
		t.Fatalf("Open = %q %q %q %v", subject, text, html, err)
	}
	// Same secret, another instance: opens. Another secret: does not.
	if _, _, _, err := newSealer(t, 1).Open(m); err != nil {
		t.Fatalf("same key: %v", err)
	}
	if _, _, _, err := newSealer(t, 2).Open(m); !errors.Is(err, mail.ErrSealKey) {
		t.Fatalf("other key: %v", err)
	}
	// A body moved to another record, or altered, does not open.
	moved := *m
	moved.ID = "m2"
	if _, _, _, err := s.Open(&moved); !errors.Is(err, mail.ErrSealKey) {
		t.Fatalf("moved: %v", err)
	}
	altered := *m
	altered.Sealed = m.Sealed[:len(m.Sealed)-2] + "AA"
	if _, _, _, err := s.Open(&altered); !errors.Is(err, mail.ErrSealKey) {
		t.Fatalf("altered: %v", err)
	}
	// Two seals of one message differ (random nonces).
	if again := sealedMail(t, s, "m1"); again.Sealed == m.Sealed {
		t.Fatal("nonce reused")
	}
	// A message queued before sealing opens as stored.
	plain := &store.Mail{ID: "m3", Subject: "s", Text: "t"}
	if sub, text, _, err := s.Open(plain); err != nil || sub != "s" || text != "t" {
		t.Fatalf("unsealed: %q %q %v", sub, text, err)
	}
	if _, err := mail.NewSealer([]byte("short")); err == nil {
		t.Fatal("short secret accepted")
	}
}

// enqueueSealed queues one sealed mail whose link expires at expires.
func enqueueSealed(t *testing.T, st store.Store, s *mail.Sealer, due, expires time.Time) *store.Mail {
	t.Helper()
	u := storetest.NewTestUser(fmt.Sprintf("u%s@example.com", store.NewID(due)), "")
	m := sealedMail(t, s, store.NewID(due))
	m.UserID, m.CreatedAt, m.NextAttempt, m.ExpiresAt = u.ID, due, due, expires
	if err := st.CreateUser(context.Background(), store.NewUser{User: u, Mails: []*store.Mail{m}}); err != nil {
		t.Fatal(err)
	}
	return m
}

// rawStore is a store whose records a test can read as the backend holds
// them: "id=record" lines from Redis GETs, or every "key=value" of the
// bbolt file opened on its own (after which the store is closed).
type rawStore struct {
	store.Store
	raw func(t *testing.T, id string) string
}

func rawBackends() map[string]func(t *testing.T) rawStore {
	return map[string]func(t *testing.T) rawStore{
		"bolt": func(t *testing.T) rawStore {
			path := t.TempDir() + "/x.db"
			s, err := boltstore.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return rawStore{Store: s, raw: func(t *testing.T, id string) string {
				t.Helper()
				// bbolt locks its file: close, read, reopen is not
				// possible on one *Store, so read through a second
				// handle after closing the first.
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				var out string
				_ = db.View(func(tx *bolt.Tx) error {
					return tx.ForEach(func(_ []byte, b *bolt.Bucket) error {
						return b.ForEach(func(k, v []byte) error {
							out += string(k) + "=" + string(v) + "\n"
							return nil
						})
					})
				})
				if !strings.Contains(out, id) {
					t.Fatalf("mail %s not in the file", id)
				}
				return out
			}}
		},
		"redis": func(t *testing.T) rawStore {
			s := openRedis(t, testredis.Start(t), "sealtest")
			return rawStore{Store: s, raw: func(t *testing.T, id string) string {
				t.Helper()
				ctx := context.Background()
				keys, err := s.Client().Keys(ctx, s.Key("mail", "*")).Result()
				if err != nil {
					t.Fatal(err)
				}
				var out string
				for _, k := range keys {
					v, err := s.Client().Get(ctx, k).Result()
					if err != nil {
						t.Fatal(err)
					}
					out += strings.TrimPrefix(k, s.Key("mail", "")) + "=" + v + "\n"
				}
				if !strings.Contains(out, id) {
					t.Fatalf("mail %s not in Redis", id)
				}
				return out
			}}
		},
	}
}

// The worker opens a sealed body and delivers the link through real SMTP;
// the outbox held neither the token nor the link.
func TestWorkerDeliversSealed(t *testing.T) {
	for name, open := range rawBackends() {
		t.Run(name, func(t *testing.T) {
			st, k, clk := open(t), startSink(t, sinkOptions{}), newClock()
			s := newSealer(t, 7)
			enqueueSealed(t, st, s, clk.Now(), clk.Now().Add(time.Hour))
			w := mail.NewWorker(mail.WorkerConfig{
				Outbox: st, Sender: smtpSender(t, k), Now: clk.Now,
				Sealer: func(context.Context, string) (*mail.Sealer, error) { return s, nil },
			})
			runOnce(t, w, 1)
			msgs := k.Messages()
			if len(msgs) != 1 || !bytes.Contains(bytes.ReplaceAll(msgs[0].Raw, []byte("=\r\n"), nil), []byte(sealToken)) {
				t.Fatalf("delivered %d messages without the link", len(msgs))
			}
			// A second mail, still queued: its record as the backend holds it.
			m2 := enqueueSealed(t, st, s, clk.Now(), clk.Now().Add(time.Hour))
			raw := st.raw(t, m2.ID)
			if strings.Contains(raw, sealToken) || strings.Contains(raw, "example.com/api/confirm") {
				t.Fatalf("the outbox holds the token or the link:\n%s", raw)
			}
		})
	}
}

// A sealed body that cannot be opened (the key changed) is parked at once,
// not retried ten times; a key that cannot be loaded (store down) leaves
// the message for later.
func TestWorkerSealedWrongKey(t *testing.T) {
	st, k, clk, obs := backends()["redis"](t), startSink(t, sinkOptions{}), newClock(), &counter{}
	enqueueSealed(t, st, newSealer(t, 1), clk.Now(), clk.Now().Add(time.Hour))
	w := mail.NewWorker(mail.WorkerConfig{
		Outbox: st, Sender: smtpSender(t, k), Now: clk.Now, Observer: obs,
		Sealer: func(context.Context, string) (*mail.Sealer, error) { return newSealer(t, 2), nil },
	})
	runOnce(t, w, 1)
	wantCounts(t, st, 0, 1)
	if obs.parked.Load() != 1 || len(k.Messages()) != 0 {
		t.Fatalf("parked %d, sent %d", obs.parked.Load(), len(k.Messages()))
	}

	enqueueSealed(t, st, newSealer(t, 1), clk.Now(), clk.Now().Add(time.Hour))
	down := mail.NewWorker(mail.WorkerConfig{
		Outbox: st, Sender: smtpSender(t, k), Now: clk.Now,
		Sealer: func(context.Context, string) (*mail.Sealer, error) { return nil, store.ErrUnavailable },
	})
	if _, err := down.RunOnce(context.Background()); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("RunOnce with the key unavailable: %v", err)
	}
	wantCounts(t, st, 1, 1) // still queued, under its lease
}

// A mail whose link expired before it could go out is parked without its
// body and not sent; a parked mail loses its body once its link expires.
func TestWorkerDropsExpiredBodies(t *testing.T) {
	for name, open := range rawBackends() {
		t.Run(name, func(t *testing.T) {
			st, k, clk, obs := open(t), startSink(t, sinkOptions{}), newClock(), &counter{}
			s := newSealer(t, 3)
			sender := smtpSender(t, k)
			k.Close() // every send fails
			w := mail.NewWorker(mail.WorkerConfig{
				Outbox: st, Sender: sender, Now: clk.Now, Observer: obs, MaxAttempts: 1,
				Sealer: func(context.Context, string) (*mail.Sealer, error) { return s, nil },
			})
			// Parked after its one failed attempt, link still valid: the
			// body stays, for an operator to requeue.
			parked := enqueueSealed(t, st, s, clk.Now(), clk.Now().Add(time.Hour))
			runOnce(t, w, 1)
			wantCounts(t, st, 0, 1)
			if n, err := w.Sweep(context.Background()); err != nil || n != 0 {
				t.Fatalf("Sweep before expiry = %d, %v", n, err)
			}
			// Queued, but its link expires before the next attempt.
			late := enqueueSealed(t, st, s, clk.Now().Add(2*time.Hour), clk.Now().Add(90*time.Minute))
			clk.Advance(2 * time.Hour)
			runOnce(t, w, 1)
			wantCounts(t, st, 0, 2)
			if obs.parked.Load() != 2 {
				t.Fatalf("parked %d", obs.parked.Load())
			}
			if n, err := w.Sweep(context.Background()); err != nil || n != 1 {
				t.Fatalf("Sweep after expiry = %d, %v", n, err)
			}
			raw := st.raw(t, parked.ID)
			for _, id := range []string{parked.ID, late.ID} {
				rec := recordOf(t, raw, id)
				if strings.Contains(rec, `"sealed"`) || strings.Contains(rec, `"text":"O`) || !strings.Contains(rec, `"to":["a@example.com"]`) ||
					!strings.Contains(rec, `"last_error"`) || !strings.Contains(rec, `"subject":"Confirm [token]"`) {
					t.Fatalf("parked record %s:\n%s", id, rec)
				}
			}
		})
	}
}

// recordOf finds the JSON record of mail id in a raw dump (one record for
// Redis, "key=value" lines for bbolt).
func recordOf(t *testing.T, raw, id string) string {
	t.Helper()
	for _, line := range strings.Split(raw, "\n") {
		if strings.HasPrefix(line, id+"={") {
			return strings.TrimPrefix(line, id+"=")
		}
	}
	t.Fatalf("no record of %s in\n%s", id, raw)
	return ""
}
