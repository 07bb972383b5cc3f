package engine_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/password"
	"github.com/caddyregister/caddyregister/caddyregister/secretbox"
	"github.com/caddyregister/caddyregister/caddyregister/store"
	"github.com/caddyregister/caddyregister/caddyregister/store/redisstore"
	"github.com/caddyregister/caddyregister/caddyregister/token"
	"github.com/caddyregister/caddyregister/internal/testredis"
)

var (
	testKEK  = []byte("kek-0123456789abcdef0123456789abcdef")
	otherKEK = []byte("kek-fedcba9876543210fedcba9876543210")
)

func mustBox(t *testing.T, kek []byte, domain string) *secretbox.Box {
	t.Helper()
	b, err := secretbox.New(kek, domain)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// keyEngine is an engine on st with its own clock and observed log.
type keyEngine struct {
	*engine.Engine
	clock *fakeClock
	logs  *observer.ObservedLogs
}

func newKeyEngine(t *testing.T, st store.Store, sealer *secretbox.Box, clock *fakeClock) *keyEngine {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	if clock == nil {
		clock = newFakeClock()
	}
	e, err := engine.New(engine.Config{Store: st, Hasher: cheap, Pool: password.NewPool(password.PoolConfig{}),
		Sealer: sealer, Logger: zap.New(core), Now: clock.Now,
		Admins: []engine.Admin{{Login: "ops", Hash: mustHash(t, cheap, "ops-secret"), Permissions: []string{"*"}}}})
	if err != nil {
		t.Fatal(err)
	}
	return &keyEngine{Engine: e, clock: clock, logs: logs}
}

func (k *keyEngine) accessToken(t *testing.T) string {
	t.Helper()
	tok, err := k.IssueToken(context.Background(), &engine.Principal{Kind: engine.KindUser, ID: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (k *keyEngine) wantAccepts(t *testing.T, tok, what string) {
	t.Helper()
	// These tokens name no session (the tests are about signing keys):
	// ErrNoSession comes only after the signature verified.
	if _, err := k.AuthenticateToken(context.Background(), tok); err != nil && !errors.Is(err, engine.ErrNoSession) {
		t.Fatalf("%s rejected: %v", what, err)
	}
}

// logged reports whether a message at level or above contains substr.
func (k *keyEngine) logged(level zapcore.Level, substr string) bool {
	for _, e := range k.logs.All() {
		if e.Level >= level && strings.Contains(e.Message, substr) {
			return true
		}
	}
	return false
}

func secretValue(t *testing.T, st *redisstore.Store) []byte {
	t.Helper()
	v, err := st.Client().Get(context.Background(), st.Key("secret", engine.SigningKeySecret)).Bytes()
	if err != nil {
		t.Fatalf("GET signing key: %v", err)
	}
	return v
}

func kidOf(t *testing.T, tok string) string {
	t.Helper()
	var h struct {
		Kid string `json:"kid"`
	}
	hdr, _, _ := strings.Cut(tok, ".")
	if err := json.Unmarshal(mustB64(t, hdr), &h); err != nil {
		t.Fatal(err)
	}
	return h.Kid
}

// TestSigningKeyEncryptedAtRest: with a key-encryption key the Redis value
// is a sealed blob (no PEM, no key set in clear), and a second instance with
// the same key-encryption key shares the key.
func TestSigningKeyEncryptedAtRest(t *testing.T) {
	ctx := context.Background()
	ns := uniqueNS()
	st1, st2 := openRedisOn(t, redisServer(t), ns), openRedisOn(t, redisServer(t), ns)
	e1 := newKeyEngine(t, st1, mustBox(t, testKEK, ns), nil)
	e2 := newKeyEngine(t, st2, mustBox(t, testKEK, ns), nil)
	if err := e1.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	v := secretValue(t, st1)
	if !bytes.HasPrefix(v, []byte("sealed:v1:")) || bytes.Contains(v, []byte("PRIVATE KEY")) || bytes.Contains(v, []byte("current")) || json.Valid(v) {
		t.Fatalf("stored signing key is not sealed: %q", v)
	}
	t1, t2 := e1.accessToken(t), e2.accessToken(t)
	if kidOf(t, t1) != kidOf(t, t2) {
		t.Fatal("instances with one key-encryption key sign with different keys")
	}
	e2.wantAccepts(t, t1, "e1's token on e2")
	e1.wantAccepts(t, t2, "e2's token on e1")
}

// TestWrongKeyEncryptionKey: an instance whose key-encryption key does not
// open the stored key (or that has none) fails with a message naming
// key_encryption_key and leaves the stored key alone.
func TestWrongKeyEncryptionKey(t *testing.T) {
	ctx := context.Background()
	ns := uniqueNS()
	st := openRedisOn(t, redisServer(t), ns)
	if err := newKeyEngine(t, st, mustBox(t, testKEK, ns), nil).Start(ctx); err != nil {
		t.Fatal(err)
	}
	before := secretValue(t, st)
	for name, sealer := range map[string]*secretbox.Box{
		"other kek":       mustBox(t, otherKEK, ns),
		"no kek":          nil,
		"other namespace": mustBox(t, testKEK, ns+"x"),
	} {
		e := newKeyEngine(t, st, sealer, nil)
		err := e.Start(ctx)
		if !errors.Is(err, engine.ErrKeyUnusable) || !strings.Contains(err.Error(), "key_encryption_key") {
			t.Errorf("%s: Start = %v, want ErrKeyUnusable naming key_encryption_key", name, err)
		}
		if _, err := e.JWKS(ctx); err == nil {
			t.Errorf("%s: JWKS served without the key", name)
		}
		if after := secretValue(t, st); !bytes.Equal(after, before) {
			t.Fatalf("%s: stored key changed", name)
		}
	}
}

// TestClearSigningKeyMigrated: a key stored in clear, as PEM by earlier
// versions or as a clear key set by an instance without a key-encryption
// key, is kept (its tokens still verify) and stored sealed.
func TestClearSigningKeyMigrated(t *testing.T) {
	ctx := context.Background()
	t.Run("pem", func(t *testing.T) {
		ns := uniqueNS()
		st := openRedisOn(t, redisServer(t), ns)
		key := mustKey(t)
		pemBytes, err := key.MarshalPrivateKeyPEM()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.LoadOrCreateSecret(ctx, engine.SigningKeySecret, pemBytes); err != nil {
			t.Fatal(err)
		}
		old, _, err := token.NewIssuer(token.Config{}, key).Issue(token.Claims{Kind: engine.KindUser, RegisteredClaims: subject("u1")})
		if err != nil {
			t.Fatal(err)
		}
		e := newKeyEngine(t, st, mustBox(t, testKEK, ns), nil)
		if err := e.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if v := secretValue(t, st); !secretbox.IsSealed(v) {
			t.Fatalf("clear PEM not migrated: %q", v)
		}
		if !e.logged(zapcore.InfoLevel, "stored it encrypted") {
			t.Error("migration not logged")
		}
		e.wantAccepts(t, old, "token of the migrated key")
		if kidOf(t, e.accessToken(t)) != key.ID {
			t.Error("migration changed the signing key")
		}
	})
	t.Run("clear key set", func(t *testing.T) {
		ns := uniqueNS()
		st := openRedisOn(t, redisServer(t), ns)
		plain := newKeyEngine(t, st, nil, nil)
		if err := plain.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if v := secretValue(t, st); !json.Valid(v) {
			t.Fatalf("no-kek value is not a clear key set: %q", v)
		}
		tok := plain.accessToken(t)
		e := newKeyEngine(t, st, mustBox(t, testKEK, ns), nil)
		if err := e.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if v := secretValue(t, st); !secretbox.IsSealed(v) {
			t.Fatalf("clear key set not migrated: %q", v)
		}
		e.wantAccepts(t, tok, "token of the migrated key")
	})
}

// TestSigningKeyLossReread: Redis loses its data; one instance makes a new
// key at its next periodic re-read; the other, seeing a token signed by the
// new key, re-reads at once; both verify each other's tokens again and log
// the change loudly.
func TestSigningKeyLossReread(t *testing.T) {
	ctx := context.Background()
	ns := uniqueNS()
	srv := testredis.Start(t) // its own: the test flushes it
	st1, st2 := openRedisOn(t, srv, ns), openRedisOn(t, srv, ns)
	e1 := newKeyEngine(t, st1, mustBox(t, testKEK, ns), nil)
	e2 := newKeyEngine(t, st2, mustBox(t, testKEK, ns), nil)
	for _, e := range []*keyEngine{e1, e2} {
		if err := e.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	before := e1.accessToken(t)

	// The data loss, as a restart without persistence leaves it.
	if err := srv.Client(t).FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}

	e2.clock.Advance(31 * time.Second) // e2's periodic re-read makes a new key
	after := e2.accessToken(t)
	if kidOf(t, after) == kidOf(t, before) {
		t.Fatal("e2 did not re-read the key after the store lost it")
	}
	if !e2.logged(zapcore.ErrorLevel, "lost its data") {
		t.Error("e2 did not log the key change at error level")
	}
	// e1's periodic re-read is not due yet (its clock is within the
	// token leeway of e2's): only the unknown kid makes it re-read.
	e1.clock.Advance(20 * time.Second)
	e1.wantAccepts(t, after, "e2's new token on e1")
	if !e1.logged(zapcore.ErrorLevel, "lost its data") {
		t.Error("e1 did not log the key change at error level")
	}
	e2.wantAccepts(t, e1.accessToken(t), "e1's new token on e2")
	// e1 still accepts its own tokens from before the loss.
	e1.wantAccepts(t, before, "e1's token from before the loss")
}

// TestUnknownKidRereadLimited: tokens naming kids nobody holds make at most
// one store read per second, however many arrive.
func TestUnknownKidRereadLimited(t *testing.T) {
	ctx := context.Background()
	cs := &countingStore{Store: openRedisOn(t, redisServer(t), uniqueNS())}
	e := newKeyEngine(t, cs, nil, nil)
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	forge := func() string {
		tok, _, err := token.NewIssuer(token.Config{Now: e.clock.Now}, mustKey(t)).Issue(token.Claims{Kind: engine.KindUser, RegisteredClaims: subject("u1")})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	base := cs.reads.Load()
	for range 50 {
		if _, err := e.AuthenticateToken(ctx, forge()); noSessionOK(err) == nil {
			t.Fatal("forged token accepted")
		}
	}
	if n := cs.reads.Load() - base; n != 1 {
		t.Fatalf("50 unknown kids within a second made %d key reads, want 1", n)
	}
	e.clock.Advance(time.Second)
	for range 50 {
		_, _ = e.AuthenticateToken(ctx, forge())
	}
	if n := cs.reads.Load() - base; n != 2 {
		t.Fatalf("after a second: %d key reads, want 2", n)
	}
}

// TestRotateSigningKey: after a rotation new tokens carry the new kid, the
// old key keeps verifying and stays in the JWKS for one token lifetime (plus
// leeway), then leaves it.
func TestRotateSigningKey(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			ev := be.open(t)
			clock := newFakeClock()
			var sealer *secretbox.Box
			if be.name == "redis" {
				sealer = mustBox(t, testKEK, "rot")
			}
			e1 := newKeyEngine(t, ev.store, sealer, clock)
			if err := e1.Start(ctx); err != nil {
				t.Fatal(err)
			}
			old := e1.accessToken(t)
			oldKID := kidOf(t, old)

			rot, err := engine.RotateSigningKey(ctx, ev.store, sealer, token.Config{}, clock.Now())
			if err != nil {
				t.Fatal(err)
			}
			gotOld, gotNew := rot.OldKID, rot.NewKID
			if want := clock.Now().Add(token.DefaultTTL + token.DefaultLeeway); !rot.RetiredUntil.Equal(want) {
				t.Errorf("RetiredUntil %v, want %v", rot.RetiredUntil, want)
			}
			if gotOld != oldKID || gotNew == oldKID {
				t.Fatalf("RotateSigningKey = %q, %q; old kid is %q", gotOld, gotNew, oldKID)
			}
			// A second instance started after the rotation.
			e2 := newKeyEngine(t, ev.reopen(t), sealer, clock)
			e2.wantAccepts(t, old, "token of the retired key")
			if tok := e2.accessToken(t); kidOf(t, tok) != gotNew {
				t.Fatalf("new token kid %q, want %q", kidOf(t, tok), gotNew)
			}
			// e1 learns of it at its next periodic read and says so.
			clock.Advance(31 * time.Second)
			if tok := e1.accessToken(t); kidOf(t, tok) != gotNew {
				t.Fatal("e1 still signs with the retired key after its re-read")
			}
			if !e1.logged(zapcore.WarnLevel, "rotated") {
				t.Error("rotation not logged")
			}
			e1.wantAccepts(t, e2.accessToken(t), "new key's token on e1")

			jwksHas := func(e *keyEngine, kid string) bool {
				j, err := e.JWKS(ctx)
				if err != nil {
					t.Fatal(err)
				}
				return strings.Contains(string(j), `"kid":"`+kid+`"`)
			}
			clock.Advance(token.DefaultTTL - time.Minute)
			for _, e := range []*keyEngine{e1, e2} {
				if !jwksHas(e, oldKID) || !jwksHas(e, gotNew) {
					t.Fatal("JWKS lost the retired key before one token lifetime")
				}
			}
			clock.Advance(time.Minute + token.DefaultLeeway + time.Second)
			for _, e := range []*keyEngine{e1, e2} {
				if jwksHas(e, oldKID) || !jwksHas(e, gotNew) {
					t.Fatal("retired key still in the JWKS after one token lifetime")
				}
			}
		})
	}
}

func subject(sub string) jwt.RegisteredClaims { return jwt.RegisteredClaims{Subject: sub} }

func mustB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newConfiguredEngine(t *testing.T, st store.Store, key *token.Key, sealer *secretbox.Box, clock *fakeClock) *keyEngine {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	e, err := engine.New(engine.Config{Store: st, Hasher: cheap, Pool: password.NewPool(password.PoolConfig{}),
		SigningKey: key, Sealer: sealer, Logger: zap.New(core), Now: clock.Now,
		Admins: []engine.Admin{{Login: "ops", Hash: mustHash(t, cheap, "ops-secret"), Permissions: []string{"*"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &keyEngine{Engine: e, clock: clock, logs: logs}
}

// TestConfiguredSigningKeyChange: with a key-encryption key, an instance
// started with a new signing_key keeps verifying the previous key's tokens
// (and publishing it) for one token lifetime, and an instance still on the
// previous config verifies the new key's tokens (a rolling change).
func TestConfiguredSigningKeyChange(t *testing.T) {
	ctx := context.Background()
	ns := uniqueNS()
	st1, st2 := openRedisOn(t, redisServer(t), ns), openRedisOn(t, redisServer(t), ns)
	clock := newFakeClock()
	keyA, keyB := mustKey(t), mustKey(t)
	oldCfg := newConfiguredEngine(t, st1, keyA, mustBox(t, testKEK, ns), clock)
	tokA := oldCfg.accessToken(t)

	newCfg := newConfiguredEngine(t, st2, keyB, mustBox(t, testKEK, ns), clock)
	if !newCfg.logged(zapcore.WarnLevel, "signing_key changed") {
		t.Error("change of signing_key not logged")
	}
	newCfg.wantAccepts(t, tokA, "previous signing_key's token on the new config")
	tokB := newCfg.accessToken(t)
	if kidOf(t, tokB) != keyB.ID {
		t.Fatal("new config does not sign with its signing_key")
	}
	oldCfg.wantAccepts(t, tokB, "new signing_key's token on an instance still on the previous config")

	jwks := func(e *keyEngine) string {
		j, err := e.JWKS(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return string(j)
	}
	if j := jwks(newCfg); !strings.Contains(j, keyA.ID) || !strings.Contains(j, keyB.ID) {
		t.Fatalf("JWKS after the change lacks a key: %s", j)
	}
	// A restart on the new config (not a new change) keeps the record.
	again := newConfiguredEngine(t, st2, keyB, mustBox(t, testKEK, ns), clock)
	if again.logged(zapcore.WarnLevel, "signing_key changed") {
		t.Error("restart on the same signing_key logged a change")
	}
	again.wantAccepts(t, tokA, "previous signing_key's token after a restart")

	clock.Advance(token.DefaultTTL + token.DefaultLeeway + time.Second)
	if j := jwks(newCfg); strings.Contains(j, keyA.ID) || !strings.Contains(j, keyB.ID) {
		t.Fatalf("previous signing_key still in the JWKS after one token lifetime: %s", j)
	}

	// Another key-encryption key cannot read the record: Start says so.
	core, _ := observer.New(zapcore.DebugLevel)
	wrong, err := engine.New(engine.Config{Store: st2, Hasher: cheap, Pool: password.NewPool(password.PoolConfig{}),
		SigningKey: keyB, Sealer: mustBox(t, otherKEK, ns), Logger: zap.New(core), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := wrong.Start(ctx); !errors.Is(err, engine.ErrKeyUnusable) || !strings.Contains(err.Error(), "key_encryption_key") {
		t.Errorf("configured key, other key_encryption_key: Start = %v", err)
	}

	// Without a key-encryption key nothing is recorded, as before.
	plain := newConfiguredEngine(t, openRedisOn(t, redisServer(t), uniqueNS()), keyA, nil, clock)
	if _, err := plain.AuthenticateToken(ctx, newCfg.accessToken(t)); noSessionOK(err) == nil {
		t.Error("an instance without key_encryption_key accepted another signing_key's token")
	}
}

// TestConcurrentMigration: instances with one key-encryption key starting
// at once on a clear key all keep that key, and it ends up sealed once
// (compare-and-set: none overwrites another's sealed value with its own).
func TestConcurrentMigration(t *testing.T) {
	ctx := context.Background()
	ns := uniqueNS()
	key := mustKey(t)
	pemBytes, err := key.MarshalPrivateKeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	seed := openRedisOn(t, redisServer(t), ns)
	if _, err := seed.LoadOrCreateSecret(ctx, engine.SigningKeySecret, pemBytes); err != nil {
		t.Fatal(err)
	}
	const n = 8
	es := make([]*keyEngine, n)
	for i := range es {
		es[i] = newKeyEngine(t, openRedisOn(t, redisServer(t), ns), mustBox(t, testKEK, ns), nil)
	}
	errs := make(chan error, n)
	for _, e := range es {
		go func() { errs <- e.Start(ctx) }()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("Start: %v", err)
		}
	}
	migrated := 0
	for i, e := range es {
		if kid := kidOf(t, e.accessToken(t)); kid != key.ID {
			t.Fatalf("instance %d signs with %s, want the migrated key %s", i, kid, key.ID)
		}
		if e.logged(zapcore.InfoLevel, "stored it encrypted") {
			migrated++
		}
	}
	if migrated != 1 {
		t.Fatalf("%d instances stored the key encrypted, want exactly 1", migrated)
	}
	if v := secretValue(t, seed); !secretbox.IsSealed(v) {
		t.Fatalf("key not sealed after the race: %q", v)
	}
}

// TestConcurrentRefresh: while one request re-reads the key set (periodic
// and after an unknown kid), the others go on verifying and signing.
func TestConcurrentRefresh(t *testing.T) {
	ctx := context.Background()
	ns := uniqueNS()
	st := openRedisOn(t, redisServer(t), ns)
	e := newKeyEngine(t, st, mustBox(t, testKEK, ns), nil)
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	tok := e.accessToken(t)
	if _, err := engine.RotateSigningKey(ctx, st, mustBox(t, testKEK, ns), token.Config{}, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	other := newKeyEngine(t, openRedisOn(t, redisServer(t), ns), mustBox(t, testKEK, ns), e.clock)
	newTok := other.accessToken(t)
	e.clock.Advance(keyRefreshDue)
	const n = 32
	errs := make(chan error, 3*n)
	for range n {
		go func() { _, err := e.AuthenticateToken(ctx, tok); errs <- noSessionOK(err) }()
		go func() { _, err := e.AuthenticateToken(ctx, newTok); errs <- noSessionOK(err) }()
		go func() {
			_, err := e.IssueToken(ctx, &engine.Principal{Kind: engine.KindUser, ID: "u1"})
			errs <- err
		}()
	}
	for range 3 * n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// keyRefreshDue is past the engine's 30s re-read interval.
const keyRefreshDue = 31 * time.Second

// TestRereadWrongKeyKeepsCurrent: when the stored key was replaced by one
// this instance's key-encryption key cannot open (after a data loss, an
// instance with another key-encryption key made it), a running instance
// keeps its key and says so at Error.
func TestRereadWrongKeyKeepsCurrent(t *testing.T) {
	ctx := context.Background()
	ns := uniqueNS()
	st := openRedisOn(t, redisServer(t), ns)
	e1 := newKeyEngine(t, st, mustBox(t, testKEK, ns), nil)
	if err := e1.Start(ctx); err != nil {
		t.Fatal(err)
	}
	kid := kidOf(t, e1.accessToken(t))
	if err := st.Client().Del(ctx, st.Key("secret", engine.SigningKeySecret), st.Key("secret", engine.OutboxKeySecret)).Err(); err != nil {
		t.Fatal(err)
	}
	if err := newKeyEngine(t, st, mustBox(t, otherKEK, ns), nil).Start(ctx); err != nil {
		t.Fatal(err)
	}
	e1.clock.Advance(keyRefreshDue)
	if got := kidOf(t, e1.accessToken(t)); got != kid {
		t.Fatalf("e1 signs with %s after a failed re-read, want its key %s", got, kid)
	}
	if !e1.logged(zapcore.ErrorLevel, "re-reading the signing key failed") {
		t.Error("failed re-read not logged at error level")
	}
}

// noSessionOK is nil for ErrNoSession (see wantAccepts).
func noSessionOK(err error) error {
	if errors.Is(err, engine.ErrNoSession) {
		return nil
	}
	return err
}
