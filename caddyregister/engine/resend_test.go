package engine_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/mail"
	"github.com/caddyregister/caddyregister/caddyregister/ratelimit"
	"github.com/caddyregister/caddyregister/caddyregister/store"
)

const resendKey = "test /x"

// resendHarness is a started engine with a resender registered under
// resendKey and a fake clock.
func resendHarness(t *testing.T, be backend, ttl time.Duration, opts ...func(*engine.Config)) (*harness, *fakeClock) {
	t.Helper()
	clock := newFakeClock()
	h := newHarness(t, be.open(t), append([]func(*engine.Config){func(c *engine.Config) { c.Now = clock.Now }}, opts...)...)
	h.e.RegisterResender(resendKey, engine.Resender{
		Template: mail.MustParseTemplate("Again {{.User.Email}}", "{{.Link}} {{.App}}", ""),
		TTL:      ttl,
		Data:     func(u *store.User) map[string]any { return map[string]any{"App": "app-of-" + u.ID} },
	})
	return h, clock
}

// pendingReg registers email awaiting a mailed confirmation, with links
// recorded by links and the resender resendKey.
func pendingReg(t *testing.T, h *harness, links *linkCatcher, email string, ttl time.Duration) *engine.Registered {
	t.Helper()
	r := reg(email)
	r.Mail = links.spec(ttl)
	r.Mail.Resender = resendKey
	return mustRegister(t, h.e, r)
}

// drainMails claims every queued mail (far in the future) and returns
// them opened: subject and text by mail.
func drainMails(t *testing.T, h *harness) []*store.Mail {
	t.Helper()
	var out []*store.Mail
	for {
		m, err := h.env.store.ClaimMail(context.Background(), time.Now().Add(1000*time.Hour), time.Minute)
		if errors.Is(err, store.ErrNotFound) {
			return out
		}
		if err != nil {
			t.Fatalf("ClaimMail: %v", err)
		}
		sealer, err := h.e.MailSealer(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject, m.Text, m.HTML, err = sealer.Open(m); err != nil {
			t.Fatalf("open mail: %v", err)
		}
		if err := h.env.store.AckMail(context.Background(), m.ID); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
}

func resend(t *testing.T, h *harness, email string) {
	t.Helper()
	if err := h.e.ResendActivation(context.Background(), email, "192.0.2.9"); err != nil {
		t.Fatalf("ResendActivation(%s) = %v", email, err)
	}
	h.e.WaitResends()
}

// TestResendActivation: a resend mails a fresh link built as the
// registration's was, through the registered resender's template; the
// old link stops working, the undelivered first mail is dropped, the
// account's expiry moves to the new link's; the new link activates, and
// an active account gets no more links.
func TestResendActivation(t *testing.T) {
	const ttl = 24 * time.Hour
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			h, clock := resendHarness(t, be, ttl)
			var links linkCatcher
			first := pendingReg(t, h, &links, "lost@example.com", ttl)
			if r := first.User.Resend; r == nil || r.Mailer != resendKey || r.LinkPrefix != "https://app.example/confirm?t=" || r.LinkSuffix != "" {
				t.Fatalf("Resend = %+v", first.User.Resend)
			}
			oldLink := links.last()
			clock.Advance(time.Hour)
			resend(t, h, " LOST@example.com ") // found by its normalized address

			mails := drainMails(t, h)
			if len(mails) != 1 {
				t.Fatalf("%d mails queued, want the resent one only (the first, undelivered, is dropped)", len(mails))
			}
			m := mails[0]
			if m.Subject != "Again lost@example.com" || m.UserID != first.User.ID || m.To[0] != "lost@example.com" {
				t.Fatalf("resent mail: %+v", m)
			}
			link, app, _ := strings.Cut(m.Text, " ")
			tok, ok := strings.CutPrefix(link, "https://app.example/confirm?t=")
			if !ok || tok == oldLink || len(tok) < 40 || app != "app-of-"+first.User.ID {
				t.Fatalf("resent mail text %q", m.Text)
			}
			u, err := h.env.store.GetUser(ctx, first.User.ID)
			if err != nil || u.PendingUntil != clock.Now().Add(ttl).UnixMilli() || u.Status != store.StatusPending {
				t.Fatalf("user after resend: %+v, %v", u, err)
			}
			if _, err := h.e.Activate(ctx, oldLink); !errors.Is(err, engine.ErrTokenInvalid) {
				t.Fatalf("Activate(old link) = %v, want ErrTokenInvalid", err)
			}
			u, err = h.e.Activate(ctx, tok)
			if err != nil || u.Status != store.StatusActive || u.Resend != nil || u.PendingUntil != 0 {
				t.Fatalf("Activate(new link) = %+v, %v", u, err)
			}
			resend(t, h, "lost@example.com")
			if n := len(drainMails(t, h)); n != 0 {
				t.Fatalf("%d mails for an active account", n)
			}
		})
	}
}

// TestResendNothingToSend: an unknown address, an account waiting for an
// admin (no mailed link), an expired one and one whose handler is gone get
// the same nil answer and no mail; a malformed address is a validation
// error.
func TestResendNothingToSend(t *testing.T) {
	const ttl = time.Hour
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			h, clock := resendHarness(t, be, ttl)
			var links linkCatcher
			mustRegister(t, h.e, reg("admin-pending@example.com")) // no mail: waits for an admin
			r := reg("orphan@example.com")
			r.Mail = links.spec(ttl)
			r.Mail.Resender = "gone /y"
			mustRegister(t, h.e, r)
			pendingReg(t, h, &links, "expired@example.com", ttl)
			drainMails(t, h)
			clock.Advance(ttl)
			for _, email := range []string{"nobody@example.com", "admin-pending@example.com", "orphan@example.com", "expired@example.com"} {
				resend(t, h, email)
			}
			if n := len(drainMails(t, h)); n != 0 {
				t.Fatalf("%d mails sent", n)
			}
			var ve *engine.ValidationError
			if err := h.e.ResendActivation(context.Background(), "not an address", "192.0.2.9"); !errors.As(err, &ve) {
				t.Fatalf("malformed address: %v", err)
			}
		})
	}
}

// TestResendRateLimited: per address, known or not alike, and per client
// network.
func TestResendRateLimited(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			h, _ := resendHarness(t, be, time.Hour)
			var links linkCatcher
			pendingReg(t, h, &links, "known@example.com", time.Hour)
			var rl *engine.RateLimitedError
			for _, email := range []string{"known@example.com", "unknown@example.com"} {
				for i := range engine.ResendAccountLimit.Burst {
					if err := h.e.ResendActivation(context.Background(), email, fmt.Sprintf("198.51.100.%d", i)); err != nil {
						t.Fatalf("%s resend %d: %v", email, i, err)
					}
				}
				if err := h.e.ResendActivation(context.Background(), email, "198.51.100.200"); !errors.As(err, &rl) || rl.RetryAfter <= 0 {
					t.Fatalf("%s over the account limit: %v", email, err)
				}
			}
			for i := range engine.ResendClientLimit.Burst {
				if err := h.e.ResendActivation(context.Background(), fmt.Sprintf("c%d@example.com", i), "2001:db8::1"); err != nil {
					t.Fatalf("client resend %d: %v", i, err)
				}
			}
			// Another address in the same /64 is the same client network.
			if err := h.e.ResendActivation(context.Background(), "fresh@example.com", "2001:db8::2"); !errors.As(err, &rl) {
				t.Fatalf("over the client limit: %v", err)
			}
			h.e.WaitResends()
		})
	}
}

// TestResendBounded: resends keep an account pending at most MaxPending
// after its registration; then it expires as any unconfirmed one.
func TestResendBounded(t *testing.T) {
	const ttl = 24 * time.Hour
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			h, clock := resendHarness(t, be, ttl, func(c *engine.Config) {
				c.ResendAccountLimit = ratelimit.Limit{Rate: 100, Period: time.Minute, Burst: 100}
			})
			var links linkCatcher
			first := pendingReg(t, h, &links, "forever@example.com", ttl)
			created := first.User.CreatedAt
			for i := 1; ; i++ {
				clock.Advance(20 * time.Hour)
				resend(t, h, "forever@example.com")
				sent := len(drainMails(t, h))
				u, err := h.env.store.GetUser(context.Background(), first.User.ID)
				if err != nil {
					t.Fatal(err)
				}
				if !clock.Now().Before(created.Add(engine.MaxPending)) {
					if sent != 0 || !u.PendingExpired(clock.Now()) {
						t.Fatalf("resend %d past MaxPending: %d mails, user %+v", i, sent, u)
					}
					return
				}
				want := min(clock.Now().Add(ttl).UnixMilli(), created.Add(engine.MaxPending).UnixMilli())
				if sent != 1 || u.PendingUntil != want {
					t.Fatalf("resend %d: %d mails, PendingUntil %d, want %d", i, sent, u.PendingUntil, want)
				}
			}
		})
	}
}
