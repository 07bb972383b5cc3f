package store

import (
	"errors"
	"fmt"
)

// The outbox carries two kinds of message (Mail.Kind): mails, and webhook
// events for the app behind the plugin. Both are written in the atomic
// step of the change they report, claimed, acked, retried and parked the
// same way; only the worker's delivery differs.
//
// Webhook events of one user must reach a receiver in order. The outbox
// orders them by chain (Mail.Chain, one per user and endpoint): the
// backends queue only a chain's head; a chained message written behind
// others waits outside the queue, and acking or parking the head queues
// the next one, due at once. So no claimer, on any instance, can hold a
// user's later event while an earlier one is pending or leased. A chain
// key names the user, so a sharded outbox can keep it in the user's slot.

// Message kinds (Mail.Kind).
const (
	// KindMail is an e-mail (the zero value, so records written before
	// kinds existed read as mails).
	KindMail = ""
	// KindWebhook is a webhook event: To[0] is the endpoint's URL, Text
	// (or Sealed) the JSON body, Event the event type.
	KindWebhook = "webhook"
)

// OutboxFunc builds the outbox messages a change to a user enqueues, from
// the user as the change found it (before) and as it leaves it (after,
// which it must not modify); the store calls it inside the change's
// atomic step (possibly more than once, when an optimistic transaction is
// retried) and writes what it returns in the same step. An error aborts
// the change.
type OutboxFunc func(before, after *User) ([]*Mail, error)

// ErrOutbox wraps a refusal of messages handed to a store operation.
var ErrOutbox = errors.New("bad outbox message")

// CheckOutbox validates messages handed to a store operation that
// enqueues them: none nil, every one with an id, no id twice. op prefixes
// the error.
func CheckOutbox(op string, mails []*Mail) error {
	seen := make(map[string]bool, len(mails))
	for _, m := range mails {
		if m == nil || m.ID == "" {
			return fmt.Errorf("%s: %w: message without id", op, ErrOutbox)
		}
		if seen[m.ID] {
			return fmt.Errorf("%s: %w: message id %q given twice", op, ErrOutbox, m.ID)
		}
		seen[m.ID] = true
	}
	return nil
}

// RunOutbox calls f (nil: no messages) and checks what it returns.
func RunOutbox(op string, f OutboxFunc, before, after *User) ([]*Mail, error) {
	if f == nil {
		return nil, nil
	}
	mails, err := f(before, after)
	if err != nil {
		return nil, fmt.Errorf("%s: outbox: %w", op, err)
	}
	if err := CheckOutbox(op, mails); err != nil {
		return nil, err
	}
	return mails, nil
}

// RunOutboxes runs each of fs as RunOutbox does and checks the messages
// they return together, so two functions cannot enqueue the same id.
func RunOutboxes(op string, fs []OutboxFunc, before, after *User) ([]*Mail, error) {
	var mails []*Mail
	for _, f := range fs {
		got, err := RunOutbox(op, f, before, after)
		if err != nil {
			return nil, err
		}
		mails = append(mails, got...)
	}
	if err := CheckOutbox(op, mails); err != nil {
		return nil, err
	}
	return mails, nil
}

// Owned reports whether m belongs to its user's records (UserRefs), so
// erasing the user erases it. Mails do; webhook events do not: they are
// the app's account of what happened, delivered in order up to and
// including user.deleted, which the erasure itself enqueues.
func Owned(m *Mail) bool { return m.Kind != KindWebhook }
