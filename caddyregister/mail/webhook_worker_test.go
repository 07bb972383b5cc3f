package mail_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/mail"
	"github.com/caddyregister/caddyregister/caddyregister/store"
	"github.com/caddyregister/caddyregister/caddyregister/store/storetest"
	"github.com/caddyregister/caddyregister/internal/testredis"
)

// hookSender records webhook deliveries and fails them while fail says so.
type hookSender struct {
	mu   sync.Mutex
	got  []string // event types delivered, in order
	ids  []string // ids of every attempt
	fail func(event string, attempt int) error
}

func (h *hookSender) Deliver(_ context.Context, id, url string, body []byte) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, x := range h.ids {
		if x == id {
			n++
		}
	}
	h.ids = append(h.ids, id)
	ev := string(body)
	if h.fail != nil {
		if err := h.fail(ev, n); err != nil {
			return err
		}
	}
	h.got = append(h.got, ev)
	return nil
}

// enqueueEvents registers a user with webhook events (bodies = event
// names, for the test sender) on one chain.
func enqueueEvents(t *testing.T, s store.Store, due time.Time, events ...string) []*store.Mail {
	t.Helper()
	u := storetest.NewTestUser(fmt.Sprintf("w%s@example.com", store.NewID(due)), "")
	var ms []*store.Mail
	for _, ev := range events {
		m := storetest.NewTestEvent(u.ID, "ep:"+u.ID, ev, due)
		m.Text = ev
		ms = append(ms, m)
	}
	if err := s.CreateUser(context.Background(), store.NewUser{User: u, Mails: ms}); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	return ms
}

// A failing webhook event is retried on the schedule, with jitter, and
// parked after len(schedule)+1 attempts; webhook outcomes go to their own
// observer.
func TestWorkerWebhookScheduleAndPark(t *testing.T) {
	for name, open := range backends() {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			clk := newClock()
			schedule := []time.Duration{time.Second, time.Minute, time.Hour}
			hs := &hookSender{fail: func(string, int) error { return errors.New("HTTP 500") }}
			var mails, hooks counter
			w := mail.NewWorker(mail.WorkerConfig{Outbox: s, Sender: mail.LogSender{}, Webhooks: hs,
				WebhookSchedule: schedule, Observer: &mails, WebhookObserver: &hooks, Now: clk.Now})
			enqueueEvents(t, s, clk.Now(), "user.created")
			for i, d := range schedule {
				runOnce(t, w, 1)
				runOnce(t, w, 0)
				// Not due before the schedule's wait less the jitter.
				clk.Advance(time.Duration(float64(d) * 0.79))
				runOnce(t, w, 0)
				clk.Advance(time.Duration(float64(d) * 0.42))
				if got := hooks.failed.Load(); got != int64(i+1) {
					t.Fatalf("after attempt %d: %d failures counted", i+1, got)
				}
			}
			runOnce(t, w, 1) // the last attempt parks it
			wantCounts(t, s, 0, 1)
			if hooks.parked.Load() != 1 || hooks.failed.Load() != int64(len(schedule)+1) {
				t.Fatalf("webhook observer: failed %d parked %d", hooks.failed.Load(), hooks.parked.Load())
			}
			if mails.failed.Load()+mails.parked.Load()+mails.sent.Load() != 0 {
				t.Fatal("webhook outcomes counted as mails")
			}
		})
	}
}

// ErrPermanent (a 410, an endpoint no longer configured) parks at once,
// and the next event of the chain goes out.
func TestWorkerWebhookPermanent(t *testing.T) {
	for name, open := range backends() {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			hs := &hookSender{fail: func(ev string, _ int) error {
				if ev == "user.created" {
					return fmt.Errorf("gone: %w", mail.ErrPermanent)
				}
				return nil
			}}
			var hooks counter
			w := mail.NewWorker(mail.WorkerConfig{Outbox: s, Sender: mail.LogSender{}, Webhooks: hs, WebhookObserver: &hooks})
			enqueueEvents(t, s, time.Now(), "user.created", "user.updated")
			runOnce(t, w, 2)
			wantCounts(t, s, 0, 1)
			if fmt.Sprint(hs.got) != "[user.updated]" || hooks.parked.Load() != 1 {
				t.Fatalf("delivered %v, parked %d", hs.got, hooks.parked.Load())
			}
		})
	}
}

// One user's events go out in order even when the first fails a few
// times, while another user's flow meanwhile.
func TestWorkerWebhookOrder(t *testing.T) {
	for name, open := range backends() {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			clk := newClock()
			hs := &hookSender{fail: func(ev string, n int) error {
				if ev == "a.created" && n < 3 {
					return errors.New("HTTP 503")
				}
				return nil
			}}
			w := mail.NewWorker(mail.WorkerConfig{Outbox: s, Sender: mail.LogSender{}, Webhooks: hs,
				WebhookSchedule: []time.Duration{time.Second, time.Second, time.Second, time.Second}, Now: clk.Now})
			enqueueEvents(t, s, clk.Now(), "a.created", "a.session", "a.updated")
			enqueueEvents(t, s, clk.Now(), "b.created", "b.session")
			for range 10 {
				if _, err := w.RunOnce(context.Background()); err != nil {
					t.Fatal(err)
				}
				clk.Advance(2 * time.Second)
				// A chain's next event is due at the store's clock when
				// its predecessor is acked; the test clock runs ahead.
			}
			hs.mu.Lock()
			defer hs.mu.Unlock()
			var a, b []string
			for _, ev := range hs.got {
				switch ev[0] {
				case 'a':
					a = append(a, ev)
				case 'b':
					b = append(b, ev)
				}
			}
			if fmt.Sprint(a) != "[a.created a.session a.updated]" || fmt.Sprint(b) != "[b.created b.session]" {
				t.Fatalf("delivered a %v, b %v", a, b)
			}
			wantCounts(t, s, 0, 0)
		})
	}
}

// Two instances sharing one Redis outbox deliver each user's events in
// order: the chain rule holds across claimers, not just within one.
func TestWorkerWebhookOrderTwoInstances(t *testing.T) {
	srv := testredis.Start(t)
	a, b := openRedis(t, srv, "twoinst"), openRedis(t, srv, "twoinst")
	hs := &hookSender{fail: func(ev string, n int) error {
		time.Sleep(time.Millisecond) // let the other instance run meanwhile
		if strings.HasSuffix(ev, ".1") && n == 0 {
			return errors.New("HTTP 503") // a first event fails once
		}
		return nil
	}}
	const users, per = 4, 5
	for u := range users {
		var evs []string
		for i := range per {
			evs = append(evs, fmt.Sprintf("u%d.%d", u, i+1))
		}
		enqueueEvents(t, a, time.Now(), evs...)
	}
	sched := []time.Duration{time.Millisecond, time.Millisecond, time.Millisecond}
	var wg sync.WaitGroup
	for _, st := range []store.Store{a, b} {
		w := mail.NewWorker(mail.WorkerConfig{Outbox: st, Sender: mail.LogSender{}, Webhooks: hs, WebhookSchedule: sched})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				hs.mu.Lock()
				done := len(hs.got) == users*per
				hs.mu.Unlock()
				if done {
					return
				}
				if _, err := w.RunOnce(context.Background()); err != nil {
					t.Error(err)
					return
				}
				time.Sleep(time.Millisecond) // a failed event is due again in ~1ms
			}
		}()
	}
	wg.Wait()
	next := map[string]int{}
	for _, ev := range hs.got {
		user, nth, _ := strings.Cut(ev, ".")
		next[user]++
		if want := fmt.Sprint(next[user]); nth != want {
			t.Fatalf("%s delivered as the %s event of %s: %v", ev, want, user, hs.got)
		}
	}
}
