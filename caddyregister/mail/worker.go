package mail

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// Outbox is the part of store.Store the Worker needs.
type Outbox interface {
	ClaimMail(ctx context.Context, now time.Time, lease time.Duration) (*store.Mail, error)
	AckMail(ctx context.Context, id string) error
	RetryMail(ctx context.Context, m *store.Mail) error
	ParkMail(ctx context.Context, m *store.Mail) error
	DropParkedBodies(ctx context.Context, now time.Time, limit int) (int, error)
}

// Observer is told about every delivery outcome, for metrics. Its methods
// are called from the worker goroutine and must not block.
type Observer interface {
	// Sent is called after a message was handed to the SMTP server.
	Sent()
	// Failed is called after every failed delivery attempt, including
	// the last one before a message is parked.
	Failed()
	// Parked is called when a message is given up on and parked.
	Parked()
}

// Worker defaults.
const (
	DefaultLease        = 2 * time.Minute
	DefaultPollInterval = time.Second
	DefaultMaxAttempts  = 10
	DefaultBaseBackoff  = 5 * time.Second
	DefaultMaxBackoff   = time.Hour
	// DefaultSweepInterval is how often parked bodies past their link's
	// expiry are dropped: links live hours, so minutes late is soon enough.
	DefaultSweepInterval = 10 * time.Minute
)

// sweepLimit bounds the bodies one sweep drops; the next sweep goes on.
const sweepLimit = 1000

// storeOpTimeout bounds the store writes after a send. They run detached
// from the worker's context: once a message has gone out, Stop must not
// cancel its Ack, or the message would be sent again after the lease.
const storeOpTimeout = 10 * time.Second

// maxLastError bounds the error text kept with a message.
const maxLastError = 500

// WorkerConfig configures a Worker. Outbox and Sender are required; zero
// values elsewhere take the defaults.
type WorkerConfig struct {
	Outbox Outbox
	Sender Sender
	// From is the From address of every message; empty leaves it to the
	// Sender's default.
	From   string
	Logger *zap.Logger
	// Lease is how long a claimed message stays hidden from other
	// workers. It must exceed the longest a Send can take (about twice
	// the SMTP timeout), or a slow send is duplicated by another
	// instance. Default DefaultLease.
	Lease time.Duration
	// PollInterval is how often the outbox is checked when idle; Kick
	// wakes the worker sooner. Default DefaultPollInterval.
	PollInterval time.Duration
	// MaxAttempts is how many failed attempts park a message. Default
	// DefaultMaxAttempts.
	MaxAttempts int
	// BaseBackoff is the wait after the first failure; it doubles with
	// each further failure up to MaxBackoff, with ±20% jitter so that
	// messages failed together do not retry in lockstep. Defaults
	// DefaultBaseBackoff and DefaultMaxBackoff.
	BaseBackoff time.Duration
	MaxBackoff  time.Duration
	// Observer, if set, is told about every outcome.
	Observer Observer
	// Sealer returns the sealer that opens bodies sealed with the key
	// keyID (store.Mail.Sealed names it; see SealedKeyID), or, when it
	// knows no such key, any sealer (its Open then fails and the message
	// is parked). It may load a key from the store, so an error leaves
	// the message claimed, to come due when the lease lapses. Nil: sealed
	// messages cannot be opened and are parked.
	Sealer func(ctx context.Context, keyID string) (*Sealer, error)
	// SweepInterval is how often parked messages past their link's
	// expiry lose their bodies (store.DropParkedBodies). Default
	// DefaultSweepInterval.
	SweepInterval time.Duration
	// Now is the clock, for tests. Default time.Now.
	Now func() time.Time

	// Webhooks delivers the outbox's webhook events (store.KindWebhook);
	// nil parks them (no endpoint is configured any more).
	Webhooks WebhookSender
	// WebhookSchedule is the wait before each retry of a webhook event,
	// jittered ±20%: an event fails len(WebhookSchedule)+1 times before
	// it is parked. Default webhook.DefaultSchedule's durations
	// (DefaultWebhookSchedule).
	WebhookSchedule []time.Duration
	// WebhookObserver, if set, is told about every webhook outcome
	// (Observer is told about mails only).
	WebhookObserver Observer
}

// WebhookSender delivers one webhook event: body (the event's JSON) to the
// endpoint url, as message id. An error wrapping ErrPermanent parks the
// event at once; any other is retried on the WebhookSchedule.
type WebhookSender interface {
	Deliver(ctx context.Context, id, url string, body []byte) error
}

// DefaultWebhookSchedule is the Standard Webhooks retry schedule: 5 s,
// 5 min, 30 min, 2 h, 5 h, 10 h, 10 h after each failure (eight attempts
// over about 28 hours).
var DefaultWebhookSchedule = []time.Duration{
	5 * time.Second, 5 * time.Minute, 30 * time.Minute,
	2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour,
}

// Worker delivers the outbox: it claims due messages, sends them and acks,
// retries or parks each. Delivery is at-least-once: a message is acked only
// after its Send succeeded, so a crash between the two sends it again.
// Several workers (one per instance) may share one outbox; the store's claim
// lease keeps them from sending a message twice in the ordinary case.
type Worker struct {
	cfg  WorkerConfig
	log  *zap.Logger
	kick chan struct{}

	mu      sync.Mutex
	started bool
	cancel  context.CancelFunc
	done    chan struct{}

	logMu         sync.Mutex
	lastStoreLog  time.Time
	suppressedLog int

	lastSweep time.Time // loop goroutine only
}

// NewWorker returns a Worker for cfg with defaults filled in. It panics
// when Outbox or Sender is nil, which is a wiring bug, not a runtime
// condition.
func NewWorker(cfg WorkerConfig) *Worker {
	if cfg.Outbox == nil || cfg.Sender == nil {
		panic("mail: NewWorker needs an Outbox and a Sender")
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.BaseBackoff <= 0 {
		cfg.BaseBackoff = DefaultBaseBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.MaxBackoff < cfg.BaseBackoff {
		cfg.MaxBackoff = cfg.BaseBackoff
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SweepInterval <= 0 {
		cfg.SweepInterval = DefaultSweepInterval
	}
	if len(cfg.WebhookSchedule) == 0 {
		cfg.WebhookSchedule = DefaultWebhookSchedule
	}
	return &Worker{
		cfg:  cfg,
		log:  cfg.Logger,
		kick: make(chan struct{}, 1),
	}
}

// Start runs the delivery loop in one goroutine. A Worker runs at most once:
// Start after Start or after Stop does nothing.
func (w *Worker) Start() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started {
		return
	}
	w.started = true
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	w.done = make(chan struct{})
	go w.loop(ctx, w.done)
}

// Stop ends the loop and waits for it, at most until ctx is done, in which
// case it returns ctx's error and the loop finishes on its own (a send in
// progress runs to its SMTP timeout). Stop is idempotent and safe to call
// without Start.
func (w *Worker) Stop(ctx context.Context) error {
	w.mu.Lock()
	if !w.started {
		// Mark it started so a later Start cannot revive a stopped
		// worker.
		w.started = true
		w.mu.Unlock()
		return nil
	}
	cancel, done := w.cancel, w.done
	w.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("mail: stop worker: %w", ctx.Err())
	}
}

// Kick wakes the worker to look at the outbox now rather than at the next
// poll. Call it after enqueueing mail, so it goes out at once. It never
// blocks; kicks while one is pending merge into one.
func (w *Worker) Kick() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// loop polls the outbox until ctx is cancelled. A store failure backs off
// exponentially (up to a minute) and ignores kicks meanwhile, so an outage
// costs neither a busy loop nor a flood of logs.
func (w *Worker) loop(ctx context.Context, done chan struct{}) {
	defer close(done)
	storeWait := time.Duration(0)
	// Since Go 1.23 a stopped or reset timer never delivers a stale
	// tick, so the timer is reused without draining.
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		err := w.runSafely(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			// Its failures are its own (logged, tried again at the next
			// interval): they must not hold up delivery.
			w.sweepIfDue(ctx)
		}
		wait := w.cfg.PollInterval
		kick := w.kick
		if err != nil {
			w.logStoreError(err)
			if storeWait == 0 {
				storeWait = w.cfg.PollInterval
			} else {
				storeWait = min(2*storeWait, time.Minute)
			}
			wait, kick = max(wait, storeWait), nil
		} else {
			storeWait = 0
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-kick:
			timer.Stop()
		case <-timer.C:
		}
	}
}

// runSafely is RunOnce with a panic (a bug in a Sender, say) turned into
// an error, so one bad message cannot take the whole server down; the
// message it was on comes due again when its lease lapses.
func (w *Worker) runSafely(ctx context.Context) (err error) {
	defer func() {
		if r := recover(); r != nil {
			w.log.Error("mail worker panic; recovered", zap.Any("panic", r), zap.Stack("stack"))
			err = fmt.Errorf("mail: worker panic: %v", r)
		}
	}()
	_, err = w.RunOnce(ctx)
	return err
}

// logStoreError logs store failures at most once a minute, with how many
// were held back, since the loop meets the same outage every poll.
func (w *Worker) logStoreError(err error) {
	w.logMu.Lock()
	defer w.logMu.Unlock()
	now := time.Now()
	if !w.lastStoreLog.IsZero() && now.Sub(w.lastStoreLog) < time.Minute {
		w.suppressedLog++
		return
	}
	w.log.Error("mail outbox unavailable; will retry",
		zap.Error(err),
		zap.Int("suppressed_since_last_log", w.suppressedLog))
	w.lastStoreLog, w.suppressedLog = now, 0
}

// RunOnce claims and processes due messages until none is due and returns
// how many it processed (sent, retried or parked). It stops at the first
// store error and returns it with the count so far. The loop calls it;
// tests call it directly.
func (w *Worker) RunOnce(ctx context.Context) (int, error) {
	n := 0
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		m, err := w.cfg.Outbox.ClaimMail(ctx, w.cfg.Now(), w.cfg.Lease)
		if errors.Is(err, store.ErrNotFound) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("mail: claim from outbox: %w", err)
		}
		n++
		if err := w.process(ctx, m); err != nil {
			return n, err
		}
	}
}

// sweepIfDue drops the bodies of parked messages past their link's
// expiry, once per SweepInterval (and at the first poll). A failed sweep
// is logged and waits for the next interval like a successful one: the
// loop polls every second, and a store that is down is already logged
// and backed off by delivery.
func (w *Worker) sweepIfDue(ctx context.Context) {
	now := w.cfg.Now()
	if !w.lastSweep.IsZero() && now.Sub(w.lastSweep) < w.cfg.SweepInterval {
		return
	}
	w.lastSweep = now
	if _, err := w.Sweep(ctx); err != nil && ctx.Err() == nil {
		w.logStoreError(err)
	}
}

// Sweep drops the bodies of parked messages whose link has expired and
// returns how many lost theirs. Records the store cannot decode are
// skipped and logged (store.ErrCorrupt), not returned: they need an
// operator, and must not stop the sweep. The loop calls it every
// SweepInterval; tests call it directly.
func (w *Worker) Sweep(ctx context.Context) (int, error) {
	n, err := w.cfg.Outbox.DropParkedBodies(ctx, w.cfg.Now(), sweepLimit)
	if errors.Is(err, store.ErrCorrupt) {
		w.log.Error("parked mail records that cannot be decoded were skipped by the sweep; they need an operator (delete or fix them)",
			zap.Error(err))
		err = nil
	}
	if err != nil {
		return n, fmt.Errorf("mail: drop expired parked bodies: %w", err)
	}
	if n > 0 {
		w.log.Info("parked mails past their link's expiry lost their bodies", zap.Int("count", n))
	}
	return n, nil
}

// errLinkExpired parks a message whose link expired before it could be
// delivered: sending it would only mail a dead link.
var errLinkExpired = fmt.Errorf("the link expired before the mail could be delivered: %w", ErrPermanent)

// message builds what to send for m, opening a sealed body. A store error
// (the key could not be loaded) is returned as is; anything else about
// the message is permanent.
func (w *Worker) message(ctx context.Context, m *store.Mail) (*Message, error) {
	if m.HasBody() && !m.ExpiresAt.IsZero() && !w.cfg.Now().Before(m.ExpiresAt) {
		m.DropBody()
		return nil, errLinkExpired
	}
	subject, text, html := m.Subject, m.Text, m.HTML
	if m.Sealed != "" {
		if w.cfg.Sealer == nil {
			return nil, fmt.Errorf("mail: sealed body and no key to open it: %w: %w", ErrSealKey, ErrPermanent)
		}
		s, err := w.cfg.Sealer(ctx, SealedKeyID(m))
		if err != nil {
			return nil, fmt.Errorf("mail: loading the key for sealed bodies: %w", err)
		}
		if subject, text, html, err = s.Open(m); err != nil {
			return nil, fmt.Errorf("%w: %w", err, ErrPermanent)
		}
	}
	return &Message{From: w.cfg.From, To: m.To, Subject: subject, Text: text, HTML: html, ID: m.ID}, nil
}

// process sends one claimed message and records the outcome. It returns
// only store errors; a failed send is an outcome, not an error.
func (w *Worker) process(ctx context.Context, m *store.Mail) error {
	obs, maxAttempts, backoff := w.cfg.Observer, w.cfg.MaxAttempts, w.backoff
	var sendErr error
	switch m.Kind {
	case store.KindMail:
		var msg *Message
		msg, sendErr = w.message(ctx, m)
		if sendErr != nil && !errors.Is(sendErr, ErrPermanent) {
			// Left claimed: it comes due again when the lease lapses.
			return sendErr
		}
		if sendErr == nil {
			sendErr = w.cfg.Sender.Send(ctx, msg)
		}
	case store.KindWebhook:
		obs, maxAttempts, backoff = w.cfg.WebhookObserver, len(w.cfg.WebhookSchedule)+1, w.webhookBackoff
		var body []byte
		body, sendErr = w.webhookBody(ctx, m)
		if sendErr != nil && !errors.Is(sendErr, ErrPermanent) {
			return sendErr // left claimed, as above
		}
		if sendErr == nil {
			sendErr = w.cfg.Webhooks.Deliver(ctx, m.ID, m.To[0], body)
		}
	default:
		sendErr = fmt.Errorf("mail: unknown message kind %q (written by a newer release?): %w", m.Kind, ErrPermanent)
	}
	// Detached so that a Stop during the send cannot cancel the ack of a
	// message that already went out.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeOpTimeout)
	defer cancel()

	if sendErr == nil {
		observe(obs, Observer.Sent)
		if err := w.cfg.Outbox.AckMail(sctx, m.ID); err != nil {
			// It will come due again when the lease lapses and be
			// sent twice; at-least-once allows that, losing it not.
			w.log.Warn("mail sent but not acked; it will be sent again",
				zap.String("mail_id", m.ID), zap.Error(err))
			return fmt.Errorf("mail: ack %s: %w", m.ID, err)
		}
		w.log.Debug("mail sent", zap.String("mail_id", m.ID), zap.Int("attempts", m.Attempts+1))
		return nil
	}

	// A send cut short because the worker is stopping says nothing about
	// the message; leave it claimed, and it comes due when the lease
	// lapses, without a failed attempt charged to it.
	if ctx.Err() != nil && errors.Is(sendErr, ctx.Err()) {
		return ctx.Err()
	}

	observe(obs, Observer.Failed)
	m.Attempts++
	m.LastError = truncate(SanitizeHeader(sendErr.Error()), maxLastError)
	now := w.cfg.Now()
	if m.Attempts >= maxAttempts || errors.Is(sendErr, ErrPermanent) {
		m.NextAttempt = now
		err := w.cfg.Outbox.ParkMail(sctx, m)
		if errors.Is(err, store.ErrNotFound) {
			w.goneMeanwhile(m)
			return nil
		}
		if err != nil {
			w.log.Error("mail delivery failed and parking it failed; it will be retried after the lease",
				zap.String("mail_id", m.ID), zap.NamedError("send_error", sendErr), zap.Error(err))
			return fmt.Errorf("mail: park %s: %w", m.ID, err)
		}
		observe(obs, Observer.Parked)
		// Error level: a parked message needs an operator, and this is
		// the only time anyone is told.
		w.log.Error("mail parked after repeated delivery failures; needs an operator",
			zap.String("mail_id", m.ID),
			zap.Strings("to", m.To),
			zap.String("user_id", m.UserID),
			zap.String("kind", m.Kind),
			zap.String("event", m.Event),
			zap.Int("attempts", m.Attempts),
			zap.String("last_error", m.LastError))
		return nil
	}
	m.NextAttempt = now.Add(backoff(m.Attempts))
	err := w.cfg.Outbox.RetryMail(sctx, m)
	if errors.Is(err, store.ErrNotFound) {
		w.goneMeanwhile(m)
		return nil
	}
	if err != nil {
		w.log.Error("mail delivery failed and rescheduling it failed; it will be retried after the lease",
			zap.String("mail_id", m.ID), zap.NamedError("send_error", sendErr), zap.Error(err))
		return fmt.Errorf("mail: retry %s: %w", m.ID, err)
	}
	w.log.Warn("mail delivery failed; will retry",
		zap.String("mail_id", m.ID),
		zap.Int("attempts", m.Attempts),
		zap.Time("next_attempt", m.NextAttempt),
		zap.String("error", m.LastError))
	return nil
}

// goneMeanwhile notes a failed message that vanished before it could be
// rescheduled: our lease lapsed during a slow send and another instance
// delivered and acked it. Nothing is lost, so it is not an error.
func (w *Worker) goneMeanwhile(m *store.Mail) {
	w.log.Info("failed mail was delivered by another worker meanwhile",
		zap.String("mail_id", m.ID))
}

// backoff is the wait after the given number of failed attempts:
// BaseBackoff doubled per further attempt, jittered ±20%, capped at
// MaxBackoff.
func (w *Worker) backoff(attempts int) time.Duration {
	d := w.cfg.BaseBackoff
	for i := 1; i < attempts && d < w.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
	return min(d, w.cfg.MaxBackoff)
}

func observe(o Observer, f func(Observer)) {
	if o != nil {
		f(o)
	}
}

// webhookBackoff is the wait after the given number of failed attempts
// of a webhook event: the schedule's entry, jittered ±20%.
func (w *Worker) webhookBackoff(attempts int) time.Duration {
	s := w.cfg.WebhookSchedule
	d := s[min(max(attempts-1, 0), len(s)-1)]
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// webhookBody opens a webhook event's sealed JSON body. As for mails, a
// store error (the key could not be loaded) is returned as is, anything
// else about the event is permanent.
func (w *Worker) webhookBody(ctx context.Context, m *store.Mail) ([]byte, error) {
	if w.cfg.Webhooks == nil || len(m.To) == 0 {
		return nil, fmt.Errorf("mail: webhook event and no webhook endpoint configured: %w", ErrPermanent)
	}
	text := m.Text
	if m.Sealed != "" {
		if w.cfg.Sealer == nil {
			return nil, fmt.Errorf("mail: sealed webhook event and no key to open it: %w: %w", ErrSealKey, ErrPermanent)
		}
		s, err := w.cfg.Sealer(ctx, SealedKeyID(m))
		if err != nil {
			return nil, fmt.Errorf("mail: loading the key for sealed bodies: %w", err)
		}
		if _, text, _, err = s.Open(m); err != nil {
			return nil, fmt.Errorf("%w: %w", err, ErrPermanent)
		}
	}
	if text == "" {
		return nil, fmt.Errorf("mail: webhook event without a body: %w", ErrPermanent)
	}
	return []byte(text), nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cut on a rune boundary so the stored text stays valid UTF-8.
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}
