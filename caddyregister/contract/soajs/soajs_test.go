package soajs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/caddyregister/caddyregister/caddyregister/contract"
	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/password"
	"github.com/caddyregister/caddyregister/caddyregister/store"
	"github.com/caddyregister/caddyregister/caddyregister/store/boltstore"
)

// failingStore makes CreateUser fail as a backend can at write time.
type failingStore struct {
	store.Store
	err error
}

func (f failingStore) CreateUser(context.Context, store.NewUser) error { return f.err }

// engineWith builds a contract on an embedded store wrapped by wrap, with
// the document's tenant and an admin root:rootpw holding manage-users.
func engineWith(t *testing.T, wrap func(store.Store) store.Store) *Contract {
	t.Helper()
	bs, err := boltstore.Open(filepath.Join(t.TempDir(), "register.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bs.Close() })
	if err := bs.EnsureTenant(t.Context(), &store.Tenant{ID: "5551aca9e179c39b760f7a1a", Code: "DBTN", Name: "Demo", Groups: []string{"user"}, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	h := password.Bcrypt{Cost: 4}
	adminHash, _ := bcrypt.GenerateFromPassword([]byte("rootpw"), 4)
	eng, err := engine.New(engine.Config{
		Store: wrap(bs), Hasher: h, Pool: password.NewPool(password.PoolConfig{}),
		Admins: []engine.Admin{{Login: "root", Hash: string(adminHash), Permissions: []string{PermManageUsers}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(contract.Env{Engine: eng, Prefix: "/urac"})
	if err != nil {
		t.Fatal(err)
	}
	return c.(*Contract)
}

func serveAddUser(t *testing.T, c *Contract, body string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/urac/admin/addUser?"+docQuery, strings.NewReader(body))
	r.Header.Set("Content-Type", formType)
	r.SetBasicAuth("root", "rootpw")
	w := httptest.NewRecorder()
	c.Routes()[0].Serve(w, r, &contract.Request{ClientIP: "192.0.2.1", Body: []byte(body)})
	return w
}

func envelopeCodes(t *testing.T, w *httptest.ResponseRecorder) []int {
	t.Helper()
	var env errEnvelope
	if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil {
		t.Fatalf("%s", w.Body)
	}
	return env.Errors.Codes
}

func TestWriteFailures(t *testing.T) {
	for _, c := range []struct {
		name   string
		err    error
		status int
		code   int
	}{
		{"tenant vanished", store.ErrNotFound, http.StatusOK, CodeAddUser},
		{"store down", store.Unavailable("create user", errors.New("connection refused")), http.StatusServiceUnavailable, CodeDatabase},
		{"id collision", &store.ConflictError{Field: "id"}, http.StatusOK, CodeRegister},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := engineWith(t, func(s store.Store) store.Store { return failingStore{s, fmt.Errorf("create: %w", c.err)} })
			w := serveAddUser(t, s, docForm)
			if got := envelopeCodes(t, w); w.Code != c.status || !slices.Equal(got, []int{c.code}) {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
			if c.status == http.StatusServiceUnavailable && w.Header().Get("Retry-After") == "" {
				t.Fatal("no Retry-After")
			}
		})
	}
	// And it works with the real store.
	s := engineWith(t, func(s store.Store) store.Store { return s })
	if w := serveAddUser(t, s, docForm); w.Code != 200 || !strings.Contains(w.Body.String(), `"token":"`) {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
}

func TestErrorMapping(t *testing.T) {
	for _, c := range []struct {
		name   string
		err    error
		status int
		code   int
	}{
		{"overloaded", &password.OverloadedError{RetryAfter: time.Second}, http.StatusServiceUnavailable, CodeRegister},
		{"unexpected", errors.New("boom"), http.StatusInternalServerError, CodeRegister},
		{"rate limited", &engine.RateLimitedError{RetryAfter: time.Second}, http.StatusTooManyRequests, CodeRateLimited},
		{"not ready", engine.ErrNotReady, http.StatusServiceUnavailable, CodeDatabase},
		{"unauthenticated", engine.ErrUnauthenticated, http.StatusUnauthorized, CodeUnauthenticated},
		{"forbidden", engine.ErrForbidden, http.StatusForbidden, CodeForbidden},
		{"token used", engine.ErrTokenUsed, http.StatusOK, CodeToken},
		{"token invalid", engine.ErrTokenInvalid, http.StatusOK, CodeToken},
		{"tenant code", &store.ConflictError{Field: "tenant_code"}, http.StatusOK, CodeTenantCode},
		{"password policy", &engine.ValidationError{Fields: []*engine.FieldError{{Field: "password", Rule: "length", Message: "too short"}}}, http.StatusOK, CodeInvalid},
		{"too large", &contract.HTTPError{Status: http.StatusRequestEntityTooLarge, Message: "request body is larger than 10 bytes"}, http.StatusRequestEntityTooLarge, CodeTooLarge},
	} {
		status, env := replyOf(t, c.err)
		if status != c.status || !slices.Equal(env.Errors.Codes, []int{c.code}) {
			t.Fatalf("%s: %d %+v", c.name, status, env)
		}
	}
}
