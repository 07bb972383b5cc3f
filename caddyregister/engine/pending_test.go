package engine_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/mail"
	"github.com/caddyregister/caddyregister/caddyregister/password"
	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// linkCatcher is a MailSpec whose links it records.
type linkCatcher struct {
	mu    sync.Mutex
	links []string
}

func (c *linkCatcher) spec(ttl time.Duration) *engine.MailSpec {
	return &engine.MailSpec{
		Template: mail.MustParseTemplate("Confirm", "{{.Link}}", ""),
		TTL:      ttl,
		Link: func(tok string) string {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.links = append(c.links, tok)
			return "https://app.example/confirm?t=" + tok
		},
	}
}

func (c *linkCatcher) last() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.links[len(c.links)-1]
}

// TestPendingExpires: an account registered with an e-mail confirmation
// and never confirmed holds its address for the link's lifetime only;
// then the address registers again, the squatter's password and link are
// gone, and the newcomer's own link activates the newcomer.
func TestPendingExpires(t *testing.T) {
	const ttl = 24 * time.Hour
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			clock := newFakeClock()
			h := newHarness(t, be.open(t), func(c *engine.Config) { c.Now = clock.Now })
			var links linkCatcher
			squat := reg("victim@example.com")
			squat.Password = "the squatter's own passphrase"
			squat.Mail = links.spec(ttl)
			first := mustRegister(t, h.e, squat)
			if want := clock.Now().Add(ttl).UnixMilli(); first.User.PendingUntil != want {
				t.Errorf("PendingUntil = %d, want the link's expiry %d", first.User.PendingUntil, want)
			}
			oldLink := links.last()

			victim := reg("Victim@example.com")
			victim.Mail = links.spec(ttl)
			clock.Advance(ttl - time.Second)
			var ce *store.ConflictError
			if _, err := h.e.Register(ctx, victim); !errors.As(err, &ce) || ce.Field != "email" {
				t.Fatalf("Register before the expiry = %v, want the e-mail taken", err)
			}
			clock.Advance(time.Second)
			second := mustRegister(t, h.e, victim)
			if second.User.ID == first.User.ID {
				t.Fatal("same user")
			}
			if _, err := h.env.store.GetUser(ctx, first.User.ID); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("squatter's record after the replacement: %v", err)
			}
			if _, err := h.e.Activate(ctx, oldLink); !errors.Is(err, engine.ErrTokenInvalid) {
				t.Errorf("Activate(old link) = %v, want ErrTokenInvalid", err)
			}
			if _, _, err := h.e.Login(ctx, "192.0.2.7", "test-agent", "victim@example.com", "the squatter's own passphrase"); err == nil {
				t.Error("the squatter's password still logs in")
			}
			u, err := h.e.Activate(ctx, links.last())
			if err != nil || u.ID != second.User.ID || u.Status != store.StatusActive || u.PendingUntil != 0 {
				t.Fatalf("Activate(new link) = %+v, %v", u, err)
			}
			if _, _, err := h.e.Login(ctx, "192.0.2.7", "test-agent", "victim@example.com", goodPassword); err != nil {
				t.Errorf("victim's Login = %v", err)
			}
			// Confirmed accounts never expire.
			clock.Advance(10 * ttl)
			if _, err := h.e.Register(ctx, victim); !errors.As(err, &ce) || ce.Field != "email" {
				t.Errorf("Register over a confirmed account = %v, want the e-mail taken", err)
			}
		})
	}
}

// TestAdminPendingDoesNotExpire: users created pending without a mailed
// confirmation (an admin's, with a token it hands over, or waiting for an
// admin) keep their address.
func TestAdminPendingDoesNotExpire(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	h := newHarness(t, openRedis(t), func(c *engine.Config) { c.Now = clock.Now })
	for i, mod := range []func(*engine.Registration){
		func(r *engine.Registration) {
			r.UserToken = &engine.TokenSpec{Purpose: engine.PurposeActivate, TTL: time.Hour}
		},
		func(r *engine.Registration) {
			r.Password, r.NoPassword = "", true
			r.UserToken = &engine.TokenSpec{Purpose: engine.PurposeSetPassword, TTL: time.Hour}
		},
		func(r *engine.Registration) {}, // pending until an admin activates
	} {
		r := reg(fmt.Sprintf("kept%d@example.com", i))
		mod(&r)
		if res := mustRegister(t, h.e, r); res.User.PendingUntil != 0 {
			t.Errorf("case %d: PendingUntil = %d, want none", i, res.User.PendingUntil)
		}
		clock.Advance(48 * time.Hour)
		var ce *store.ConflictError
		if _, err := h.e.Register(ctx, reg(r.Email)); !errors.As(err, &ce) || ce.Field != "email" {
			t.Errorf("case %d: Register over it = %v, want the e-mail taken", i, err)
		}
	}
}

// TestConcurrentRegisterOverExpired: of concurrent registrations of an
// expired pending account's address, exactly one succeeds.
func TestConcurrentRegisterOverExpired(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			clock := newFakeClock()
			h := newHarness(t, be.open(t), func(c *engine.Config) { c.Now = clock.Now })
			var links linkCatcher
			r := reg("contested@example.com")
			r.Mail = links.spec(time.Hour)
			mustRegister(t, h.e, r)
			clock.Advance(time.Hour)
			const n = 8
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() { _, errs[i] = h.e.Register(ctx, r) })
			}
			wg.Wait()
			won := 0
			for i, err := range errs {
				var ce *store.ConflictError
				switch {
				case err == nil:
					won++
				case errors.As(err, &ce) && ce.Field == "email":
				default:
					t.Errorf("registration %d: %v", i, err)
				}
			}
			if won != 1 {
				t.Errorf("%d registrations won, want 1", won)
			}
		})
	}
}

// TestActivateNeedsPassword: an account whose owner never set a password
// is not activated by an activation link, only by setting one.
func TestActivateNeedsPassword(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			h := newHarness(t, be.open(t))
			r := reg("nopass@example.com")
			r.Password, r.NoPassword = "", true
			r.UserToken = &engine.TokenSpec{Purpose: engine.PurposeActivate}
			res := mustRegister(t, h.e, r)
			before := h.env.snapshot(t)
			if _, err := h.e.Activate(ctx, res.UserToken); !errors.Is(err, engine.ErrPasswordNotSet) || !errors.Is(err, engine.ErrTokenInvalid) {
				t.Fatalf("Activate(no password) = %v, want ErrPasswordNotSet (an ErrTokenInvalid)", err)
			}
			if h.env.snapshot(t) != before {
				t.Error("the refused activation changed the store")
			}
			u, err := h.env.store.GetUser(ctx, res.User.ID)
			if err != nil || u.Status != store.StatusPending {
				t.Fatalf("user = %+v, %v; want still pending", u, err)
			}
			// Setting a password is the way in.
			r2 := reg("invited@example.com")
			r2.Password, r2.NoPassword = "", true
			r2.UserToken = &engine.TokenSpec{Purpose: engine.PurposeSetPassword}
			inv := mustRegister(t, h.e, r2)
			u, err = h.e.SetPassword(ctx, inv.UserToken, engine.PurposeSetPassword, goodPassword, password.NIST())
			if err != nil || u.Status != store.StatusActive {
				t.Fatalf("SetPassword = %+v, %v", u, err)
			}
		})
	}
}
