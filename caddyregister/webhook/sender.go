package webhook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/caddyregister/caddyregister/caddyregister/mail"
)

// DefaultTimeout bounds one delivery: the receiver should answer at once
// and do its work later.
const DefaultTimeout = 15 * time.Second

// maxAnswer bounds what is read of a receiver's answer.
const maxAnswer = 4 << 10

// Endpoint is one receiver.
type Endpoint struct {
	URL string
	// Keys sign every delivery (one signature each); the first is the
	// current one, the others are kept while receivers rotate.
	Keys [][]byte
}

// Sender delivers events to the configured endpoints. It is safe for
// concurrent use.
type Sender struct {
	client *http.Client
	log    *zap.Logger
	now    func() time.Time
	eps    map[string]*endpoint
}

type endpoint struct {
	Endpoint
	// gone is set when the receiver answered 410 Gone: the endpoint takes
	// no more deliveries until the config is loaded again (see README).
	gone atomic.Bool
}

// NewSender returns a sender to eps. client nil: a client with
// DefaultTimeout that does not follow redirects (a receiver that moved
// says so in the config, not in a 3xx a stranger could plant).
func NewSender(eps []Endpoint, client *http.Client, log *zap.Logger) *Sender {
	if client == nil {
		client = NewClient(DefaultTimeout)
	}
	if log == nil {
		log = zap.NewNop()
	}
	s := &Sender{client: client, log: log, now: time.Now, eps: make(map[string]*endpoint, len(eps))}
	for _, e := range eps {
		s.eps[e.URL] = &endpoint{Endpoint: e}
	}
	return s
}

// NewClient returns an HTTP client for webhooks: timeout bounds each
// request, redirects are not followed.
func NewClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// ErrGone is wrapped (with mail.ErrPermanent) by deliveries to an
// endpoint that answered 410 Gone.
var ErrGone = errors.New("the endpoint answered 410 Gone and is disabled")

// Deliver POSTs body, an event, to the endpoint url as message id, signed
// with the endpoint's keys at the current time. Only a 2xx answer is a
// delivery. An error wrapping mail.ErrPermanent will fail the same way
// again (the endpoint is gone or no longer configured): the worker parks
// the event at once; any other error is retried on the schedule.
func (s *Sender) Deliver(ctx context.Context, id, url string, body []byte) error {
	ep := s.eps[url]
	if ep == nil {
		return fmt.Errorf("webhook: endpoint %s is no longer configured: %w", url, mail.ErrPermanent)
	}
	if ep.gone.Load() {
		return fmt.Errorf("webhook: %s: %w: %w", url, ErrGone, mail.ErrPermanent)
	}
	req, err := newRequest(ctx, url, id, s.now(), body, ep.Keys)
	if err != nil {
		return fmt.Errorf("%w: %w", err, mail.ErrPermanent)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("webhook: post to %s: %w", url, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer))
	_ = resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusGone:
		if !ep.gone.Swap(true) {
			s.log.Error("webhook endpoint answered 410 Gone: disabled until the config is loaded again; its events are parked",
				zap.String("url", url))
		}
		return fmt.Errorf("webhook: %s: %w: %w", url, ErrGone, mail.ErrPermanent)
	}
	return fmt.Errorf("webhook: %s answered HTTP %d", url, resp.StatusCode)
}

// Disabled reports whether the endpoint url answered 410 Gone.
func (s *Sender) Disabled(url string) bool {
	ep := s.eps[url]
	return ep != nil && ep.gone.Load()
}
