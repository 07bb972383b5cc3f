package engine_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/password"
	"github.com/caddyregister/caddyregister/caddyregister/ratelimit"
	"github.com/caddyregister/caddyregister/caddyregister/store"
)

const resetBase = "https://app.example/account/password/reset"

const newPassword = "a brand new passphrase"

// forgot asks a reset link for email and waits for the detached work.
func forgot(t *testing.T, h *harness, email string) {
	t.Helper()
	if err := h.e.ForgotPassword(context.Background(), email, "192.0.2.9", resetBase); err != nil {
		t.Fatalf("ForgotPassword(%s) = %v", email, err)
	}
	h.e.WaitResends()
}

// resetToken is the token of the one reset mail among mails.
func resetToken(t *testing.T, mails []*store.Mail) string {
	t.Helper()
	if len(mails) != 1 {
		t.Fatalf("%d mails queued, want one reset mail", len(mails))
	}
	m := mails[0]
	if m.Subject != "Reset your password" || m.Purpose != engine.PurposeResetPassword {
		t.Fatalf("reset mail: %+v", m)
	}
	_, rest, ok := strings.Cut(m.Text, resetBase+"?token=")
	if !ok {
		t.Fatalf("reset mail text has no link: %q", m.Text)
	}
	tok, _, _ := strings.Cut(rest, "\n")
	if len(tok) < 40 {
		t.Fatalf("reset token %q", tok)
	}
	return tok
}

// TestForgotPassword: an unknown address, a pending account, a disabled
// one and an active one get the same nil answer; only the active account
// gets a mail, to its address, with a link under the caller's base.
func TestForgotPassword(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			h := newHarness(t, be.open(t))
			var links linkCatcher
			pending := reg("pending@example.com")
			pending.Mail = links.spec(time.Hour)
			mustRegister(t, h.e, pending)
			off := activeUser(t, h.e, "off@example.com")
			inactive := string(store.StatusInactive)
			if _, err := h.e.UpdateUser(ctx, off, engine.UserUpdate{Status: &inactive}); err != nil {
				t.Fatal(err)
			}
			uid := activeUser(t, h.e, "active@example.com")
			drainMails(t, h)
			for _, email := range []string{"nobody@example.com", "pending@example.com", "off@example.com"} {
				forgot(t, h, email)
				if n := len(drainMails(t, h)); n != 0 {
					t.Fatalf("%s: %d mails", email, n)
				}
			}
			forgot(t, h, " ACTIVE@example.com ")
			mails := drainMails(t, h)
			resetToken(t, mails)
			if m := mails[0]; m.UserID != uid || len(m.To) != 1 || m.To[0] != "active@example.com" || m.Sealed == "" {
				t.Fatalf("reset mail: %+v", m)
			}
			var ve *engine.ValidationError
			if err := h.e.ForgotPassword(ctx, "not an address", "192.0.2.9", resetBase); !errors.As(err, &ve) {
				t.Fatalf("malformed address: %v", err)
			}
			for _, base := range []string{"", "/relative", "https://app.example/x#frag"} {
				if err := h.e.ForgotPassword(ctx, "active@example.com", "192.0.2.9", base); err == nil {
					t.Fatalf("link base %q accepted", base)
				}
			}
			h.e.WaitResends()
		})
	}
}

// TestForgotRateLimited: per address, known or not alike, and per client
// network, charged in one step.
func TestForgotRateLimited(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			h := newHarness(t, be.open(t))
			activeUser(t, h.e, "known@example.com")
			var rl *engine.RateLimitedError
			for _, email := range []string{"known@example.com", "unknown@example.com"} {
				for i := range engine.ForgotAccountLimit.Burst {
					if err := h.e.ForgotPassword(ctx, email, fmt.Sprintf("198.51.100.%d", i), resetBase); err != nil {
						t.Fatalf("%s forgot %d: %v", email, i, err)
					}
				}
				if err := h.e.ForgotPassword(ctx, email, "198.51.100.200", resetBase); !errors.As(err, &rl) || rl.RetryAfter <= 0 {
					t.Fatalf("%s over the account limit: %v", email, err)
				}
			}
			for i := range engine.ForgotClientLimit.Burst {
				if err := h.e.ForgotPassword(ctx, fmt.Sprintf("c%d@example.com", i), "2001:db8::1", resetBase); err != nil {
					t.Fatalf("client forgot %d: %v", i, err)
				}
			}
			if err := h.e.ForgotPassword(ctx, "fresh@example.com", "2001:db8::2", resetBase); !errors.As(err, &rl) {
				t.Fatalf("over the client limit: %v", err)
			}
			// The resend limits are others: a forgot flood leaves resends be.
			if err := h.e.ResendActivation(ctx, "known@example.com", "203.0.113.1"); err != nil {
				t.Fatalf("resend after forgot flood: %v", err)
			}
			h.e.WaitResends()
			if got := h.metrics.limited("password_forgot"); got != 3 {
				t.Fatalf("password_forgot refusals counted %d, want 3", got)
			}
		})
	}
}

// TestResetPassword: the link sets the password; every session of the
// user is revoked (none kept, no new one started); the old password is
// refused and the new one works; a notice without a link is queued; the
// link works once.
func TestResetPassword(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			h := newHarness(t, be.open(t))
			uid := activeUser(t, h.e, "reset@example.com")
			s1, s2 := mustStart(t, h.e, uid), mustStart(t, h.e, uid)
			wantAuth(t, h.e, s1.Access, s1.Session.ID)
			forgot(t, h, "reset@example.com")
			tok := resetToken(t, drainMails(t, h))
			if err := h.e.ResetPassword(ctx, tok, newPassword, password.Policy{}); err != nil {
				t.Fatalf("ResetPassword: %v", err)
			}
			wantRevokedToken(t, h.e, s1.Access)
			wantRevokedToken(t, h.e, s2.Access)
			if _, err := h.e.Refresh(ctx, s2.Refresh, "", "", engine.SessionLimits{}); !errors.Is(err, engine.ErrUnauthenticated) {
				t.Fatalf("Refresh after reset: %v", err)
			}
			sessions, err := h.e.ListSessions(ctx, uid)
			if err != nil || len(sessions) != 0 {
				t.Fatalf("sessions after reset: %d, %v; want none (no automatic login)", len(sessions), err)
			}
			if _, _, err := h.e.Login(ctx, "192.0.2.50", "test-agent", "reset@example.com", goodPassword); !errors.Is(err, engine.ErrUnauthenticated) {
				t.Fatalf("Login with the old password: %v", err)
			}
			if _, _, err := h.e.Login(ctx, "192.0.2.50", "test-agent", "reset@example.com", newPassword); err != nil {
				t.Fatalf("Login with the new password: %v", err)
			}
			mails := drainMails(t, h)
			if len(mails) != 1 || mails[0].Subject != "Your password was changed" || mails[0].To[0] != "reset@example.com" ||
				mails[0].Purpose != engine.MailPasswordChanged || strings.Contains(mails[0].Text, "http") {
				t.Fatalf("notice: %+v", mails)
			}
			hashes := h.hashes.total()
			if err := h.e.ResetPassword(ctx, tok, "yet another passphrase", password.Policy{}); !errors.Is(err, engine.ErrTokenInvalid) {
				t.Fatalf("second use of the link: %v, want ErrTokenInvalid", err)
			}
			if got := h.hashes.total(); got != hashes {
				t.Fatalf("a replayed link spent %d hashes", got-hashes)
			}
		})
	}
}

// TestResetPasswordRefused: an unknown, expired or replaced link and a
// password the policy refuses (too short, the e-mail itself, or too short
// under the caller's policy) write nothing and spend no hash; the link
// still works after a policy refusal.
func TestResetPasswordRefused(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			clock := newFakeClock()
			h := newHarness(t, be.open(t), withClock(clock))
			uid := activeUser(t, h.e, "refused@example.com")
			s := mustStart(t, h.e, uid)
			forgot(t, h, "refused@example.com")
			first := resetToken(t, drainMails(t, h))
			forgot(t, h, "refused@example.com")
			tok := resetToken(t, drainMails(t, h))

			before, hashes := h.env.snapshot(t), h.hashes.total()
			// want nil: a *ValidationError.
			for i, c := range []struct {
				tok, pass string
				policy    password.Policy
				want      error
			}{
				{"no-such-token-" + strings.Repeat("x", 40), newPassword, password.Policy{}, engine.ErrTokenInvalid},
				{"", newPassword, password.Policy{}, engine.ErrTokenInvalid},
				{first, newPassword, password.Policy{}, engine.ErrTokenInvalid}, // replaced by the second link
				{tok, "short", password.Policy{}, nil},
				{tok, "Refused@Example.com", password.Policy{}, nil},
				{tok, "refused@example.com", password.Policy{MinLength: 4}, nil}, // identifiers refused whatever the policy
				{tok, newPassword, password.Policy{MinLength: 40}, nil},
			} {
				var ve *engine.ValidationError
				err := h.e.ResetPassword(ctx, c.tok, c.pass, c.policy)
				if c.want == nil && !errors.As(err, &ve) || c.want != nil && !errors.Is(err, c.want) {
					t.Fatalf("case %d: ResetPassword = %v, want %v", i, err, c.want)
				}
			}
			if after := h.env.snapshot(t); after != before {
				t.Fatal("a refused reset wrote to the store")
			}
			if got := h.hashes.total(); got != hashes {
				t.Fatalf("refused resets spent %d hashes", got-hashes)
			}
			wantAuth(t, h.e, s.Access, s.Session.ID)

			clock.Advance(engine.ResetTokenTTL)
			if err := h.e.ResetPassword(ctx, tok, newPassword, password.Policy{}); !errors.Is(err, engine.ErrTokenInvalid) {
				t.Fatalf("expired link: %v, want ErrTokenInvalid", err)
			}
			if got := h.hashes.total(); got != hashes {
				t.Fatalf("an expired link spent %d hashes", got-hashes)
			}
			if sessions, err := h.e.ListSessions(ctx, uid); err != nil || len(sessions) != 1 {
				t.Fatalf("sessions after refused resets: %d, %v; want the one kept", len(sessions), err)
			}
		})
	}
}

// TestResetPasswordInTime: a link used just before its hour is up works,
// and a disabled account's link does not.
func TestResetPasswordInTime(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			clock := newFakeClock()
			h := newHarness(t, be.open(t), withClock(clock))
			activeUser(t, h.e, "intime@example.com")
			off := activeUser(t, h.e, "off@example.com")
			forgot(t, h, "intime@example.com")
			tok := resetToken(t, drainMails(t, h))
			forgot(t, h, "off@example.com")
			offTok := resetToken(t, drainMails(t, h))
			inactive := string(store.StatusInactive)
			if _, err := h.e.UpdateUser(ctx, off, engine.UserUpdate{Status: &inactive}); err != nil {
				t.Fatal(err)
			}
			clock.Advance(engine.ResetTokenTTL - time.Minute)
			if err := h.e.ResetPassword(ctx, tok, newPassword, password.Policy{}); err != nil {
				t.Fatalf("link within its hour: %v", err)
			}
			if err := h.e.ResetPassword(ctx, offTok, newPassword, password.Policy{}); !errors.Is(err, engine.ErrTokenInvalid) {
				t.Fatalf("disabled account's link: %v, want ErrTokenInvalid", err)
			}
		})
	}
}

// TestResetClearsLockout: an account locked account-wide by guesses from
// many networks opens again once its owner reset the password.
func TestResetClearsLockout(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			h := newHarness(t, be.open(t), func(c *engine.Config) {
				c.Lockout = engine.Lockout{NetworkFailures: 10, Failures: 3}
			})
			activeUser(t, h.e, "locked@example.com")
			for i := range 3 {
				if _, _, err := h.e.Login(ctx, fmt.Sprintf("203.0.113.%d", i+1), "test-agent", "locked@example.com", "wrong guess"); !errors.Is(err, engine.ErrUnauthenticated) {
					t.Fatalf("guess %d: %v", i, err)
				}
			}
			var rl *engine.RateLimitedError
			if _, _, err := h.e.Login(ctx, "198.51.100.7", "test-agent", "locked@example.com", goodPassword); !errors.As(err, &rl) {
				t.Fatalf("Login on a locked account: %v, want *RateLimitedError", err)
			}
			forgot(t, h, "locked@example.com")
			if err := h.e.ResetPassword(ctx, resetToken(t, drainMails(t, h)), newPassword, password.Policy{}); err != nil {
				t.Fatal(err)
			}
			if _, _, err := h.e.Login(ctx, "198.51.100.7", "test-agent", "locked@example.com", newPassword); err != nil {
				t.Fatalf("Login after the reset: %v", err)
			}
		})
	}
}

// TestResetErased: erasing a user removes its reset links and mails (the
// refs index lists them): nothing of the user is left in the store.
func TestResetErased(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			h := newHarness(t, be.open(t))
			uid := activeUser(t, h.e, "gone@example.com")
			mustStart(t, h.e, uid)
			forgot(t, h, "gone@example.com")
			tok := resetToken(t, drainMails(t, h)) // delivered
			if err := h.e.ResetPassword(ctx, tok, newPassword, password.Policy{}); err != nil {
				t.Fatal(err)
			}
			forgot(t, h, "gone@example.com") // a live link, queued with the notice
			m, err := h.env.store.ClaimMail(ctx, time.Now().Add(time.Hour), time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if err := h.env.store.ParkMail(ctx, m); err != nil {
				t.Fatal(err)
			}
			if q, p, err := h.env.store.MailCounts(ctx); err != nil || q != 1 || p != 1 {
				t.Fatalf("MailCounts = %d, %d, %v; want the notice and the new link, one parked", q, p, err)
			}
			if err := h.e.DeleteUser(ctx, uid); err != nil {
				t.Fatal(err)
			}
			if q, p, err := h.env.store.MailCounts(ctx); err != nil || q != 0 || p != 0 {
				t.Fatalf("MailCounts after erasure = %d, %d, %v", q, p, err)
			}
			if be.name == "redis" {
				if snap := h.env.snapshot(t); strings.Contains(snap, uid) {
					t.Fatalf("the erased user's id is still in the store:\n%s", snap)
				}
			}
		})
	}
}

// TestResetRaces: of two resets with one link at once, one sets the
// password and the other is refused; of many forgots at once, one link is
// left live and one mail queued.
func TestResetRaces(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			h := newHarness(t, be.open(t), func(c *engine.Config) {
				c.ForgotAccountLimit = ratelimit.Limit{Rate: 100, Period: time.Minute, Burst: 100}
			})
			activeUser(t, h.e, "race@example.com")
			forgot(t, h, "race@example.com")
			tok := resetToken(t, drainMails(t, h))
			errs := race(2, func(i int) error {
				return h.e.ResetPassword(ctx, tok, fmt.Sprintf("%s %d", newPassword, i), password.Policy{})
			})
			if ok, bad := errs[0] == nil, errs[1] == nil; ok == bad ||
				!errors.Is(errs[0], engine.ErrTokenInvalid) && !errors.Is(errs[1], engine.ErrTokenInvalid) {
				t.Fatalf("two resets with one link: %v", errs)
			}
			drainMails(t, h) // the notice

			for _, err := range race(6, func(int) error {
				return h.e.ForgotPassword(ctx, "race@example.com", "192.0.2.9", resetBase)
			}) {
				if err != nil {
					t.Fatal(err)
				}
			}
			h.e.WaitResends()
			live := resetToken(t, drainMails(t, h)) // exactly one mail left
			if err := h.e.ResetPassword(ctx, live, "the last one standing", password.Policy{}); err != nil {
				t.Fatalf("the live link: %v", err)
			}
		})
	}
}

// race runs fn(0..n-1) at once and returns their errors.
func race(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	var start, done sync.WaitGroup
	start.Add(1)
	for i := range n {
		done.Add(1)
		go func() {
			defer done.Done()
			start.Wait()
			errs[i] = fn(i)
		}()
	}
	start.Done()
	done.Wait()
	return errs
}
