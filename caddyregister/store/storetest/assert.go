package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// Helpers the contract cases share: contexts, creates, and assertions.

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// create registers n and fails the test on error.
func create(t *testing.T, s store.Store, n store.NewUser) {
	t.Helper()
	if err := s.CreateUser(ctx(t), n); err != nil {
		t.Fatalf("CreateUser(%s): %v", n.User.Email, err)
	}
}

// wantConflict asserts err is a *store.ConflictError on field (or, when
// field ends in '*', on a field with that prefix) and returns the field.
func wantConflict(t *testing.T, err error, field string) string {
	t.Helper()
	var ce *store.ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("got error %v (%T), want *store.ConflictError{Field: %q}", err, err, field)
	}
	if prefix, ok := strings.CutSuffix(field, "*"); ok {
		if !strings.HasPrefix(ce.Field, prefix) {
			t.Fatalf("conflict on %q, want a %q* field", ce.Field, prefix)
		}
	} else if ce.Field != field {
		t.Fatalf("conflict on %q, want %q", ce.Field, field)
	}
	if errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("conflict %v also matches ErrUnavailable", err)
	}
	return ce.Field
}

func wantNotFound(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("%s: got error %v, want store.ErrNotFound", what, err)
	}
}

func wantUserAbsent(t *testing.T, s store.Store, u *store.User) {
	t.Helper()
	wantAbsent(t, s.GetUser, u.ID, "GetUser of rejected user "+u.ID)
}

// wantAbsent asserts that lookup (a Store lookup such as s.UserIDByEmail)
// finds nothing under key; what names the case.
func wantAbsent[T any](t *testing.T, lookup func(context.Context, string) (T, error), key, what string) {
	t.Helper()
	_, err := lookup(ctx(t), key)
	wantNotFound(t, what, err)
}

// RunConcurrent runs fn(i) for every i in [0, n) at once (each in its own
// goroutine, all released together) and returns the errors, by i.
func RunConcurrent(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = fn(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// runConcurrentResults is RunConcurrent for calls with a result: it
// returns the results and the errors, by i.
func runConcurrentResults[T any](n int, fn func(i int) (T, error)) ([]T, []error) {
	got := make([]T, n)
	errs := RunConcurrent(n, func(i int) (err error) {
		got[i], err = fn(i)
		return err
	})
	return got, errs
}

// OneWinner asserts that of errs, the errors of racing calls, exactly one
// is nil and every other a *store.ConflictError on field (not also
// ErrUnavailable), and returns the winner's index.
func OneWinner(t testing.TB, errs []error, field string) int {
	t.Helper()
	winner := -1
	for i, err := range errs {
		var ce *store.ConflictError
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("calls %d and %d both succeeded, want one winner", winner, i)
			}
			winner = i
		case errors.As(err, &ce) && ce.Field == field && !errors.Is(err, store.ErrUnavailable):
		default:
			t.Fatalf("call %d: unexpected error %v, want success or a conflict on %q", i, err, field)
		}
	}
	if winner < 0 {
		t.Fatalf("none of %d racing calls succeeded", len(errs))
	}
	return winner
}

// wantIndex asserts that lookup, the Store method called name (such as
// s.UserIDByEmail), resolves key to id.
func wantIndex(t *testing.T, name string, lookup func(context.Context, string) (string, error), key, id string) {
	t.Helper()
	got, err := lookup(ctx(t), key)
	if err != nil {
		t.Fatalf("%s(%q): %v", name, key, err)
	}
	if got != id {
		t.Fatalf("%s(%q) = %q, want %q", name, key, got, id)
	}
}

func wantEmailIndex(t *testing.T, s store.Store, emailKey, id string) {
	t.Helper()
	wantIndex(t, "UserIDByEmail", s.UserIDByEmail, emailKey, id)
}

func wantLoginIndex(t *testing.T, s store.Store, loginKey, id string) {
	t.Helper()
	wantIndex(t, "UserIDByLogin", s.UserIDByLogin, loginKey, id)
}

// normUser returns a copy of u that compares equal across a storage round
// trip: times in UTC without monotonic reading, attribute JSON compacted.
func normUser(u *store.User) store.User {
	c := *u
	c.CreatedAt = c.CreatedAt.UTC().Round(0)
	c.UpdatedAt = c.UpdatedAt.UTC().Round(0)
	if u.Attributes != nil {
		c.Attributes = make(store.Attrs, len(u.Attributes))
		for k, v := range u.Attributes {
			var b bytes.Buffer
			if err := json.Compact(&b, v); err != nil {
				c.Attributes[k] = v
				continue
			}
			c.Attributes[k] = json.RawMessage(b.Bytes())
		}
	}
	return c
}

func normTenant(t *store.Tenant) store.Tenant {
	c := *t
	c.CreatedAt = c.CreatedAt.UTC().Round(0)
	if t.Billing != nil {
		b := *t.Billing
		c.Billing = &b
	}
	return c
}

func wantUser(t *testing.T, s store.Store, want *store.User) {
	t.Helper()
	got, err := s.GetUser(ctx(t), want.ID)
	if err != nil {
		t.Fatalf("GetUser(%s): %v", want.ID, err)
	}
	if g, w := normUser(got), normUser(want); !reflect.DeepEqual(g, w) {
		t.Fatalf("GetUser(%s) round trip differs:\n got  %+v\n want %+v", want.ID, g, w)
	}
}

func wantTenant(t *testing.T, s store.Store, want *store.Tenant) {
	t.Helper()
	got, err := s.GetTenant(ctx(t), want.ID)
	if err != nil {
		t.Fatalf("GetTenant(%s): %v", want.ID, err)
	}
	g, w := normTenant(got), normTenant(want)
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("GetTenant(%s) round trip differs:\n got  %+v (billing %+v)\n want %+v (billing %+v)",
			want.ID, g, g.Billing, w, w.Billing)
	}
}
