package mail_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/mail"
	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// The tests in this file pin the outbox defaults the README states, with
// every worker built from the defaults (no Lease, MaxAttempts or backoff
// set) and the numbers written here as literals: parked after 10
// failures, a 2-minute lease, backoff 5s doubling to 1h with ±20% jitter.

// claimAt probes the outbox as another instance would at time at, with a
// zero lease (a message found stays due).
func claimAt(t *testing.T, s store.Store, at time.Time) *store.Mail {
	t.Helper()
	m, err := s.ClaimMail(context.Background(), at, 0)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		t.Fatalf("ClaimMail: %v", err)
	}
	return m
}

// TestOutboxDefaultRetryScheduleAndParking: with the SMTP server down, a
// message is retried after 5s, 10s, 20s … (each ±20%), and the tenth
// failure parks it.
func TestOutboxDefaultRetryScheduleAndParking(t *testing.T) {
	for name, open := range backends() {
		t.Run(name, func(t *testing.T) {
			s, k, clk, obs := open(t), startSink(t, sinkOptions{}), newClock(), &counter{}
			sender := smtpSender(t, k)
			k.Close() // every attempt fails, temporarily
			m := enqueue(t, s, 1, clk.Now())[0]
			w := mail.NewWorker(mail.WorkerConfig{Outbox: s, Sender: sender, Observer: obs, Now: clk.Now})

			jittered := false
			nominal := 5 * time.Second
			for attempt := 1; attempt <= 9; attempt++ {
				failedAt := clk.Now()
				runOnce(t, w, 1)
				lo, hi := nominal*8/10, nominal*12/10
				if got := claimAt(t, s, failedAt.Add(lo-time.Millisecond)); got != nil {
					t.Fatalf("failure %d: due again before %v (-20%% of %v)", attempt, lo, nominal)
				}
				got := claimAt(t, s, failedAt.Add(hi))
				if got == nil {
					t.Fatalf("failure %d: not due after %v (+20%% of %v)", attempt, hi, nominal)
				}
				if got.ID != m.ID || got.Attempts != attempt {
					t.Fatalf("failure %d: claimed %s with %d attempts", attempt, got.ID, got.Attempts)
				}
				d := got.NextAttempt.Sub(failedAt)
				if d < lo || d > hi {
					t.Fatalf("failure %d: next attempt after %v, want %v ±20%%", attempt, d, nominal)
				}
				if d != nominal {
					jittered = true
				}
				clk.Advance(hi)
				nominal *= 2
			}
			if !jittered {
				t.Error("nine backoffs, none jittered")
			}
			wantCounts(t, s, 1, 0)
			runOnce(t, w, 1) // the tenth failure
			wantCounts(t, s, 0, 1)
			clk.Advance(24 * time.Hour)
			runOnce(t, w, 0)
			if obs.failed.Load() != 10 || obs.parked.Load() != 1 {
				t.Errorf("observer failed/parked = %d/%d, want 10/1", obs.failed.Load(), obs.parked.Load())
			}
		})
	}
}

// TestOutboxDefaultBackoffCap: the doubling stops at one hour. From the
// eleventh failure on the doubled wait (5s·2^10 = 5120s) exceeds an hour
// even after jitter, so the wait is exactly the hour.
func TestOutboxDefaultBackoffCap(t *testing.T) {
	for name, open := range backends() {
		t.Run(name, func(t *testing.T) {
			s, k, clk := open(t), startSink(t, sinkOptions{}), newClock()
			sender := smtpSender(t, k)
			k.Close()
			m := enqueue(t, s, 1, clk.Now())[0]
			// Only MaxAttempts is set, to get past the default of 10.
			w := mail.NewWorker(mail.WorkerConfig{Outbox: s, Sender: sender, Now: clk.Now, MaxAttempts: 14})
			for attempt := 1; attempt <= 13; attempt++ {
				failedAt := clk.Now()
				runOnce(t, w, 1)
				got := claimAt(t, s, failedAt.Add(2*time.Hour))
				if got == nil || got.ID != m.ID || got.Attempts != attempt {
					t.Fatalf("failure %d: claimed %+v", attempt, got)
				}
				d := got.NextAttempt.Sub(failedAt)
				if d > time.Hour {
					t.Fatalf("failure %d: next attempt after %v, more than an hour", attempt, d)
				}
				if attempt >= 11 && d != time.Hour {
					t.Fatalf("failure %d: next attempt after %v, want exactly 1h", attempt, d)
				}
				clk.Advance(2 * time.Hour)
			}
		})
	}
}

// gatedSender holds every Send until released, so a test can look at the
// outbox while a message is being sent.
type gatedSender struct {
	mail.Sender
	entered chan struct{}
	release chan struct{}
}

func (g *gatedSender) Send(ctx context.Context, m *mail.Message) error {
	g.entered <- struct{}{}
	<-g.release
	return g.Sender.Send(ctx, m)
}

// TestOutboxDefaultLease: a message being sent is hidden from other
// workers for two minutes, and due again for them after.
func TestOutboxDefaultLease(t *testing.T) {
	for name, open := range backends() {
		t.Run(name, func(t *testing.T) {
			s, k, clk := open(t), startSink(t, sinkOptions{}), newClock()
			enqueue(t, s, 1, clk.Now())
			g := &gatedSender{Sender: smtpSender(t, k), entered: make(chan struct{}), release: make(chan struct{})}
			w := mail.NewWorker(mail.WorkerConfig{Outbox: s, Sender: g, Now: clk.Now})
			claimedAt := clk.Now()
			done := make(chan error, 1)
			go func() {
				_, err := w.RunOnce(context.Background())
				done <- err
			}()
			<-g.entered
			if got := claimAt(t, s, claimedAt.Add(2*time.Minute-time.Millisecond)); got != nil {
				t.Error("a message in its lease was claimed again before two minutes")
			}
			if got := claimAt(t, s, claimedAt.Add(2*time.Minute)); got == nil {
				t.Error("the message's lease did not lapse after two minutes")
			}
			close(g.release)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if n := len(k.Messages()); n != 1 {
				t.Fatalf("sink got %d messages, want 1", n)
			}
		})
	}
}
