package mail_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/textproto"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddyregister/caddyregister/caddyregister/mail"
	"github.com/caddyregister/caddyregister/caddyregister/store"
	"github.com/caddyregister/caddyregister/caddyregister/store/boltstore"
	"github.com/caddyregister/caddyregister/caddyregister/store/redisstore"
	"github.com/caddyregister/caddyregister/caddyregister/store/storetest"
	"github.com/caddyregister/caddyregister/internal/testredis"
)

// backends returns constructors for every real store backend, each giving
// a fresh, empty store closed when the test ends. The worker is tested
// against the real outbox implementations, not a fake, because the
// claim/lease semantics are exactly what a fake would get subtly wrong.
func backends() map[string]func(t *testing.T) store.Store {
	return map[string]func(t *testing.T) store.Store{
		"bolt": func(t *testing.T) store.Store {
			s, err := boltstore.Open(t.TempDir() + "/x.db")
			if err != nil {
				t.Fatalf("boltstore.Open: %v", err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
		"redis": func(t *testing.T) store.Store {
			return openRedis(t, testredis.Start(t), "mailtest")
		},
	}
}

func openRedis(t *testing.T, srv *testredis.Server, ns string) *redisstore.Store {
	t.Helper()
	s, err := redisstore.Open(srv.URL(0), ns)
	if err != nil {
		t.Fatalf("redisstore.Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// clock is a settable clock for the worker's Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now().Truncate(time.Millisecond)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// counter is an Observer that counts.
type counter struct{ sent, failed, parked atomic.Int64 }

func (c *counter) Sent()   { c.sent.Add(1) }
func (c *counter) Failed() { c.failed.Add(1) }
func (c *counter) Parked() { c.parked.Add(1) }

// enqueue registers a user with n mails due at due, the way the engine
// does: user and mails in one CreateUser.
func enqueue(t *testing.T, s store.Store, n int, due time.Time) []*store.Mail {
	t.Helper()
	u := storetest.NewTestUser(fmt.Sprintf("u%s@example.com", store.NewID(due)), "")
	mails := make([]*store.Mail, n)
	for i := range mails {
		mails[i] = &store.Mail{
			ID:          store.NewID(due),
			To:          []string{fmt.Sprintf("rcpt%d@example.com", i)},
			Subject:     fmt.Sprintf("Message %d", i),
			Text:        "text body",
			HTML:        "<p>html body</p>",
			UserID:      u.ID,
			CreatedAt:   due,
			NextAttempt: due,
		}
	}
	if err := s.CreateUser(context.Background(), store.NewUser{User: u, Mails: mails}); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	return mails
}

func wantCounts(t *testing.T, s store.Store, queued, parked int) {
	t.Helper()
	q, p, err := s.MailCounts(context.Background())
	if err != nil {
		t.Fatalf("MailCounts: %v", err)
	}
	if q != queued || p != parked {
		t.Errorf("MailCounts = queued %d, parked %d; want %d, %d", q, p, queued, parked)
	}
}

func smtpSender(t *testing.T, k *sink) mail.Sender {
	t.Helper()
	s, _ := parseURL(t, fmt.Sprintf("smtp://127.0.0.1:%d?timeout=3s", k.Port))
	return s
}

func runOnce(t *testing.T, w *mail.Worker, want int) {
	t.Helper()
	n, err := w.RunOnce(context.Background())
	if err != nil {
		t.Fatalf("RunOnce: %v", err)
	}
	if n != want {
		t.Fatalf("RunOnce processed %d, want %d", n, want)
	}
}

// messageID reads the Message-ID header of a received message.
func messageID(t *testing.T, raw []byte) string {
	t.Helper()
	h, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(raw))).ReadMIMEHeader()
	if err != nil {
		t.Fatalf("read header: %v", err)
	}
	return h.Get("Message-Id")
}

func TestWorkerDelivers(t *testing.T) {
	for name, open := range backends() {
		t.Run(name, func(t *testing.T) {
			s, k, clk, obs := open(t), startSink(t, sinkOptions{}), newClock(), &counter{}
			mails := enqueue(t, s, 3, clk.Now())
			w := mail.NewWorker(mail.WorkerConfig{
				Outbox: s, Sender: smtpSender(t, k), From: "Acme <app@acme.example>",
				Observer: obs, Now: clk.Now,
			})
			runOnce(t, w, 3)
			runOnce(t, w, 0)
			wantCounts(t, s, 0, 0)

			got := map[string]received{}
			for _, r := range k.Messages() {
				got[messageID(t, r.Raw)] = r
			}
			if len(got) != 3 {
				t.Fatalf("sink got %d distinct messages, want 3", len(got))
			}
			for i, m := range mails {
				r, ok := got["<"+m.ID+"@acme.example>"]
				if !ok {
					t.Errorf("mail %s not delivered", m.ID)
					continue
				}
				if r.From != "app@acme.example" || len(r.To) != 1 || r.To[0] != fmt.Sprintf("rcpt%d@example.com", i) {
					t.Errorf("mail %s: envelope %q → %q", m.ID, r.From, r.To)
				}
			}
			if obs.sent.Load() != 3 || obs.failed.Load() != 0 || obs.parked.Load() != 0 {
				t.Errorf("observer sent/failed/parked = %d/%d/%d", obs.sent.Load(), obs.failed.Load(), obs.parked.Load())
			}
		})
	}
}

func TestWorkerRetriesThroughSMTPOutage(t *testing.T) {
	for name, open := range backends() {
		t.Run(name, func(t *testing.T) {
			s, k, clk, obs := open(t), startSink(t, sinkOptions{}), newClock(), &counter{}
			sender := smtpSender(t, k)
			k.Close() // the SMTP server is down
			start := clk.Now()
			m := enqueue(t, s, 1, start)[0]
			w := mail.NewWorker(mail.WorkerConfig{
				Outbox: s, Sender: sender, Observer: obs, Now: clk.Now,
			})

			runOnce(t, w, 1) // attempted and failed, no error: a failed send is an outcome
			wantCounts(t, s, 1, 0)
			if obs.failed.Load() != 1 || obs.sent.Load() != 0 {
				t.Errorf("observer failed/sent = %d/%d", obs.failed.Load(), obs.sent.Load())
			}
			runOnce(t, w, 0) // not due again yet

			// Look at the rescheduled record: due within the first
			// backoff (5s ± 20%), not before. A zero lease leaves it due.
			ctx := context.Background()
			if _, err := s.ClaimMail(ctx, start.Add(3900*time.Millisecond), 0); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("claim before the backoff: %v, want ErrNotFound", err)
			}
			got, err := s.ClaimMail(ctx, start.Add(6100*time.Millisecond), 0)
			if err != nil {
				t.Fatalf("claim after the backoff: %v", err)
			}
			if got.ID != m.ID || got.Attempts != 1 || got.LastError == "" {
				t.Errorf("after one failure: id %s attempts %d last error %q", got.ID, got.Attempts, got.LastError)
			}
			if d := got.NextAttempt.Sub(start); d < 4*time.Second || d > 6*time.Second {
				t.Errorf("NextAttempt = start+%v, want 4s..6s", d)
			}

			// The server comes back on the same port; once the backoff
			// has passed the message goes out.
			k2 := startSink(t, sinkOptions{Addr: k.Addr})
			clk.Advance(10 * time.Second)
			runOnce(t, w, 1)
			wantCounts(t, s, 0, 0)
			msgs := k2.Messages()
			if len(msgs) != 1 || messageID(t, msgs[0].Raw) != "<"+m.ID+"@127.0.0.1>" {
				t.Fatalf("after recovery the sink got %d messages", len(msgs))
			}
			if obs.sent.Load() != 1 || obs.parked.Load() != 0 {
				t.Errorf("observer sent/parked = %d/%d", obs.sent.Load(), obs.parked.Load())
			}
		})
	}
}

func TestWorkerParksAfterMaxAttempts(t *testing.T) {
	for name, open := range backends() {
		t.Run(name, func(t *testing.T) {
			s, k, clk, obs := open(t), startSink(t, sinkOptions{}), newClock(), &counter{}
			sender := smtpSender(t, k)
			k.Close()
			m := enqueue(t, s, 1, clk.Now())[0]
			core, logs := observer.New(zapcore.InfoLevel)
			w := mail.NewWorker(mail.WorkerConfig{
				Outbox: s, Sender: sender, Observer: obs, Now: clk.Now, Logger: zap.New(core),
				MaxAttempts: 3, BaseBackoff: time.Second, MaxBackoff: 2 * time.Second,
			})
			for i := 0; i < 3; i++ {
				runOnce(t, w, 1)
				clk.Advance(time.Minute)
			}
			runOnce(t, w, 0) // parked: never claimed again
			wantCounts(t, s, 0, 1)
			if obs.failed.Load() != 3 || obs.parked.Load() != 1 || obs.sent.Load() != 0 {
				t.Errorf("observer failed/parked/sent = %d/%d/%d", obs.failed.Load(), obs.parked.Load(), obs.sent.Load())
			}
			parked := logs.FilterLevelExact(zapcore.ErrorLevel).FilterField(zap.String("mail_id", m.ID)).All()
			if len(parked) != 1 {
				t.Fatalf("%d error logs for the parked mail, want 1", len(parked))
			}
			if f := parked[0].ContextMap(); f["attempts"] != int64(3) || f["last_error"] == "" {
				t.Errorf("park log fields = %v", f)
			}
			if n := logs.FilterLevelExact(zapcore.WarnLevel).FilterField(zap.String("mail_id", m.ID)).Len(); n != 2 {
				t.Errorf("%d retry warnings, want 2", n)
			}
		})
	}
}

func TestWorkerParksPermanentFailureAtOnce(t *testing.T) {
	for name, open := range backends() {
		t.Run(name, func(t *testing.T) {
			s, k, clk, obs := open(t), startSink(t, sinkOptions{}), newClock(), &counter{}
			m := enqueue(t, s, 1, clk.Now())[0]
			m.To = []string{"not an address"}
			// Re-save it broken, as a bad record would be.
			if err := s.RetryMail(context.Background(), m); err != nil {
				t.Fatal(err)
			}
			w := mail.NewWorker(mail.WorkerConfig{Outbox: s, Sender: smtpSender(t, k), Observer: obs, Now: clk.Now})
			runOnce(t, w, 1)
			wantCounts(t, s, 0, 1)
			if obs.parked.Load() != 1 || len(k.Messages()) != 0 {
				t.Errorf("parked %d, delivered %d", obs.parked.Load(), len(k.Messages()))
			}
		})
	}
}

// TestWorkerKickStartStop runs the real loop: with an hour-long poll
// interval only Kick can make it deliver promptly.
func TestWorkerKickStartStop(t *testing.T) {
	for name, open := range backends() {
		t.Run(name, func(t *testing.T) {
			s, k := open(t), startSink(t, sinkOptions{})
			w := mail.NewWorker(mail.WorkerConfig{Outbox: s, Sender: smtpSender(t, k), PollInterval: time.Hour})
			if err := w.Stop(context.Background()); err != nil { // before Start: a no-op
				t.Fatal(err)
			}
			w = mail.NewWorker(mail.WorkerConfig{Outbox: s, Sender: smtpSender(t, k), PollInterval: time.Hour})
			w.Start()
			w.Start()                         // idempotent
			time.Sleep(50 * time.Millisecond) // let the first, empty poll pass
			enqueue(t, s, 2, time.Now())
			w.Kick()
			w.Kick() // never blocks
			waitFor(t, 10*time.Second, func() bool { return len(k.Messages()) == 2 })
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := w.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			if err := w.Stop(ctx); err != nil { // idempotent
				t.Fatal(err)
			}
			w.Kick() // after Stop: still never blocks
			waitFor(t, 5*time.Second, func() bool {
				q, _, err := s.MailCounts(context.Background())
				return err == nil && q == 0
			})
		})
	}
}

// TestTwoWorkersDeliverEachOnce runs two instances on one Redis outbox.
func TestTwoWorkersDeliverEachOnce(t *testing.T) {
	srv := testredis.Start(t)
	k := startSink(t, sinkOptions{})
	a, b := openRedis(t, srv, "shared"), openRedis(t, srv, "shared")
	mails := enqueue(t, a, 20, time.Now())
	obs := &counter{}
	var workers []*mail.Worker
	for _, s := range []store.Store{a, b} {
		w := mail.NewWorker(mail.WorkerConfig{
			Outbox: s, Sender: smtpSender(t, k), Observer: obs, PollInterval: 5 * time.Millisecond,
		})
		w.Start()
		workers = append(workers, w)
	}
	waitFor(t, 20*time.Second, func() bool { return obs.sent.Load() >= 20 })
	for _, w := range workers {
		if err := w.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]int{}
	for _, r := range k.Messages() {
		seen[messageID(t, r.Raw)]++
	}
	for _, m := range mails {
		if n := seen["<"+m.ID+"@127.0.0.1>"]; n != 1 {
			t.Errorf("mail %s delivered %d times, want exactly 1", m.ID, n)
		}
	}
	if len(seen) != 20 || obs.sent.Load() != 20 {
		t.Errorf("distinct %d, sent %d; want 20, 20", len(seen), obs.sent.Load())
	}
	wantCounts(t, a, 0, 0)
}

// TestWorkerSurvivesStoreOutage kills Redis under a running worker: it
// must keep running, log the outage once rather than every poll, and
// deliver again once Redis is back.
func TestWorkerSurvivesStoreOutage(t *testing.T) {
	srv := testredis.Start(t)
	s := openRedis(t, srv, "outage")
	k := startSink(t, sinkOptions{})
	core, logs := observer.New(zapcore.InfoLevel)
	w := mail.NewWorker(mail.WorkerConfig{
		Outbox: s, Sender: smtpSender(t, k), Logger: zap.New(core), PollInterval: 5 * time.Millisecond,
	})

	srv.Kill()
	_, err := w.RunOnce(context.Background())
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("RunOnce with Redis down: %v, want ErrUnavailable", err)
	}

	w.Start()
	defer w.Stop(context.Background())
	// go-redis retries a refused dial with backoff, so the first failed
	// poll can take a while under load; wait for it, then for many more.
	const outageMsg = "mail outbox unavailable; will retry"
	waitFor(t, 15*time.Second, func() bool { return logs.FilterMessage(outageMsg).Len() > 0 })
	time.Sleep(time.Second)
	if n := logs.FilterMessage(outageMsg).Len(); n != 1 {
		t.Errorf("outage logged %d times, want once", n)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	// go-redis fails fast for a moment after repeated dial errors, so
	// the enqueue itself may need a few tries.
	waitFor(t, 10*time.Second, func() bool {
		u := storetest.NewTestUser("back@example.com", "")
		m := &store.Mail{ID: store.NewID(time.Now()), To: []string{"a@example.com"}, Subject: "s", Text: "t", NextAttempt: time.Now()}
		return s.CreateUser(context.Background(), store.NewUser{User: u, Mails: []*store.Mail{m}}) == nil
	})
	w.Kick()
	waitFor(t, 30*time.Second, func() bool { return len(k.Messages()) == 1 })
}

func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestNewWorkerPanicsWithoutOutbox(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic")
		}
	}()
	mail.NewWorker(mail.WorkerConfig{Sender: mail.LogSender{}})
}

type panicSender struct{}

func (panicSender) Send(context.Context, *mail.Message) error { panic("sender bug") }

// TestWorkerRecoversFromSenderPanic: a buggy Sender must not take the
// server down with it.
func TestWorkerRecoversFromSenderPanic(t *testing.T) {
	s := backends()["bolt"](t)
	enqueue(t, s, 1, time.Now())
	core, logs := observer.New(zapcore.InfoLevel)
	w := mail.NewWorker(mail.WorkerConfig{Outbox: s, Sender: panicSender{}, Logger: zap.New(core), PollInterval: 5 * time.Millisecond})
	w.Start()
	waitFor(t, 10*time.Second, func() bool { return logs.FilterMessage("mail worker panic; recovered").Len() > 0 })
	if err := w.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantCounts(t, s, 1, 0) // still queued, to be retried after the lease
}
