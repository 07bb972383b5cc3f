package engine_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap/zapcore"

	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/mail"
	"github.com/caddyregister/caddyregister/caddyregister/secretbox"
	"github.com/caddyregister/caddyregister/caddyregister/store"
	"github.com/caddyregister/caddyregister/caddyregister/store/redisstore"
	"github.com/caddyregister/caddyregister/caddyregister/token"
)

// recordSender is a mail.Sender keeping what it was given.
type recordSender struct {
	mu   sync.Mutex
	msgs []*mail.Message
}

func (s *recordSender) Send(_ context.Context, m *mail.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, m)
	return nil
}

func (s *recordSender) texts() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, m := range s.msgs {
		out = append(out, m.Text)
	}
	return out
}

// mailParked counts parked mails for the outbox tests.
type mailParked struct{ n int }

func (*mailParked) Sent()     {}
func (*mailParked) Failed()   {}
func (p *mailParked) Parked() { p.n++ }

var outboxTmpl = mail.MustParseTemplate("Welcome", "Activate: {{.Link}}\n", "")

// queueMail registers email on e with a confirmation mail and returns the
// link's token.
func queueMail(t *testing.T, e *engine.Engine, email string) string {
	t.Helper()
	var secret string
	r := reg(email)
	r.IssueToken = false
	r.Mail = &engine.MailSpec{Template: outboxTmpl, Link: func(tok string) string {
		secret = tok
		return "https://app.example/activate?token=" + tok
	}}
	mustRegister(t, e, r)
	return secret
}

// deliverWith runs a worker that opens bodies through e once and returns
// what it sent and how many it parked.
func deliverWith(t *testing.T, st store.Store, e *keyEngine) ([]string, int) {
	t.Helper()
	snd, parked := &recordSender{}, &mailParked{}
	w := mail.NewWorker(mail.WorkerConfig{Outbox: st, Sender: snd, Now: e.clock.Now, Observer: parked,
		Sealer: e.MailOpener})
	if _, err := w.RunOnce(context.Background()); err != nil {
		t.Fatalf("RunOnce: %v", err)
	}
	return snd.texts(), parked.n
}

func wantDelivered(t *testing.T, texts []string, parked int, secret, what string) {
	t.Helper()
	if parked != 0 || len(texts) != 1 || !strings.Contains(texts[0], "token="+secret) {
		t.Fatalf("%s: delivered %d (%q), parked %d; want the one mail with its link", what, len(texts), texts, parked)
	}
}

// TestOutboxSurvivesSigningKeyRotation: a confirmation mail queued before
// the signing key is rotated (caddy register rotate-key), or while another
// instance runs with another configured signing_key, is still delivered
// with its link: the outbox key is its own secret.
func TestOutboxSurvivesSigningKeyRotation(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			ev := be.open(t)
			clock := newFakeClock()
			var sealer *secretbox.Box
			if be.name == "redis" {
				sealer = mustBox(t, testKEK, "outbox")
			}
			e1 := newKeyEngine(t, ev.store, sealer, clock)
			if err := e1.Start(ctx); err != nil {
				t.Fatal(err)
			}
			oldKID := kidOf(t, e1.accessToken(t))
			secret := queueMail(t, e1.Engine, "rotated@example.com")

			if _, err := engine.RotateSigningKey(ctx, ev.store, sealer, token.Config{}, clock.Now()); err != nil {
				t.Fatal(err)
			}
			clock.Advance(keyRefreshDue) // e1 re-reads both keys
			if kidOf(t, e1.accessToken(t)) == oldKID {
				t.Fatal("e1 did not pick up the rotated signing key")
			}
			texts, parked := deliverWith(t, ev.store, e1)
			wantDelivered(t, texts, parked, secret, "after rotate-key")

			// Another instance with a configured signing_key of its own
			// (a signing_key change rolling out) opens e1's mail, and e1
			// opens its.
			e2 := newConfiguredEngine(t, ev.reopen(t), mustKey(t), sealer, clock)
			secret = queueMail(t, e1.Engine, "rolling1@example.com")
			texts, parked = deliverWith(t, ev.store, e2)
			wantDelivered(t, texts, parked, secret, "e1's mail on an instance with another signing_key")
			secret = queueMail(t, e2.Engine, "rolling2@example.com")
			texts, parked = deliverWith(t, ev.store, e1)
			wantDelivered(t, texts, parked, secret, "e2's mail on e1")
		})
	}
}

func outboxKeyValue(t *testing.T, st *redisstore.Store) []byte {
	t.Helper()
	v, err := st.Client().Get(context.Background(), st.Key("secret", engine.OutboxKeySecret)).Bytes()
	if err != nil {
		t.Fatalf("GET outbox key: %v", err)
	}
	return v
}

// TestOutboxKeyAtRest: with a key-encryption key the outbox key is stored
// sealed, and two instances on one Redis share it; without one it is
// stored in clear (as the signing key is).
func TestOutboxKeyAtRest(t *testing.T) {
	ctx := context.Background()
	t.Run("kek", func(t *testing.T) {
		ns := uniqueNS()
		st1, st2 := openRedisOn(t, redisServer(t), ns), openRedisOn(t, redisServer(t), ns)
		e1 := newKeyEngine(t, st1, mustBox(t, testKEK, ns), nil)
		e2 := newKeyEngine(t, st2, mustBox(t, testKEK, ns), nil)
		for _, e := range []*keyEngine{e1, e2} {
			if err := e.Start(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if v := outboxKeyValue(t, st1); !bytes.HasPrefix(v, []byte("sealed:v1:")) {
			t.Fatalf("stored outbox key is not sealed: %q", v)
		}
		s1, err1 := e1.MailSealer(ctx)
		s2, err2 := e2.MailSealer(ctx)
		if err1 != nil || err2 != nil || s1.KeyID() != s2.KeyID() {
			t.Fatalf("instances hold different outbox keys: %v, %v", err1, err2)
		}
		secret := queueMail(t, e1.Engine, "shared@example.com")
		texts, parked := deliverWith(t, st2, e2)
		wantDelivered(t, texts, parked, secret, "e1's mail on e2")
	})
	t.Run("no kek", func(t *testing.T) {
		st := openRedisOn(t, redisServer(t), uniqueNS())
		if err := newKeyEngine(t, st, nil, nil).Start(ctx); err != nil {
			t.Fatal(err)
		}
		if v := outboxKeyValue(t, st); secretbox.IsSealed(v) || len(v) != 43 {
			t.Fatalf("outbox key without kek = %q, want 43 base64url characters", v)
		}
		// An operator adding key_encryption_key gets it sealed in place.
		e := newKeyEngine(t, st, mustBox(t, testKEK, "x"), nil)
		if err := e.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if v := outboxKeyValue(t, st); !secretbox.IsSealed(v) {
			t.Fatalf("clear outbox key not sealed once a kek is set: %q", v)
		}
	})
}

// TestOutboxKeyWrongKEK: an instance whose key-encryption key does not
// open the stored outbox key (or that has none) fails Start with
// ErrKeyUnusable naming key_encryption_key, and leaves the key alone.
func TestOutboxKeyWrongKEK(t *testing.T) {
	ctx := context.Background()
	ns := uniqueNS()
	st := openRedisOn(t, redisServer(t), ns)
	if err := newKeyEngine(t, st, mustBox(t, testKEK, ns), nil).Start(ctx); err != nil {
		t.Fatal(err)
	}
	before := outboxKeyValue(t, st)
	for name, sealer := range map[string]*secretbox.Box{
		"other kek": mustBox(t, otherKEK, ns),
		"no kek":    nil,
	} {
		// Only the outbox key stands in the way: the signing key is gone.
		if err := st.Client().Del(ctx, st.Key("secret", engine.SigningKeySecret)).Err(); err != nil {
			t.Fatal(err)
		}
		e := newKeyEngine(t, st, sealer, nil)
		err := e.Start(ctx)
		if !errors.Is(err, engine.ErrKeyUnusable) || !strings.Contains(err.Error(), "key_encryption_key") || !strings.Contains(err.Error(), "outbox key") {
			t.Errorf("%s: Start = %v, want ErrKeyUnusable naming key_encryption_key and the outbox key", name, err)
		}
		if _, err := e.MailSealer(ctx); err == nil {
			t.Errorf("%s: MailSealer without the key", name)
		}
		if after := outboxKeyValue(t, st); !bytes.Equal(after, before) {
			t.Fatalf("%s: stored outbox key changed", name)
		}
	}
}

// TestOutboxKeyLossReread: the store loses the outbox key and another
// instance makes a new one; a mail it queued names a key this instance has
// not seen, so this instance reads the store again and delivers it.
func TestOutboxKeyLossReread(t *testing.T) {
	ctx := context.Background()
	ns := uniqueNS()
	st := openRedisOn(t, redisServer(t), ns)
	clock := newFakeClock()
	e1 := newKeyEngine(t, st, mustBox(t, testKEK, ns), clock)
	if err := e1.Start(ctx); err != nil {
		t.Fatal(err)
	}
	old, err := e1.MailSealer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Client().Del(ctx, st.Key("secret", engine.OutboxKeySecret)).Err(); err != nil {
		t.Fatal(err)
	}
	e2 := newKeyEngine(t, openRedisOn(t, redisServer(t), ns), mustBox(t, testKEK, ns), clock)
	if err := e2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	secret := queueMail(t, e2.Engine, "after-loss@example.com")
	texts, parked := deliverWith(t, st, e1)
	wantDelivered(t, texts, parked, secret, "a mail sealed with a key e1 had not seen")
	if !e1.logged(zapcore.ErrorLevel, "outbox key in the store changed") {
		t.Error("the changed outbox key was not logged")
	}
	// e1 now seals with the store's key, and still opens with its old one.
	if cur, _ := e1.MailSealer(ctx); cur.KeyID() == old.KeyID() {
		t.Error("e1 still seals with the lost key")
	}
	if s, err := e1.MailOpener(ctx, old.KeyID()); err != nil || s.KeyID() != old.KeyID() {
		t.Errorf("MailOpener(old key) = %v, %v", s, err)
	}
}
