package engine

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/caddyregister/caddyregister/caddyregister/mail"
)

// OutboxKeySecret is the store secret holding the key that seals queued
// mail bodies (mail.Sealer): 32 random bytes, base64url, sealed by the
// key-encryption key when one is configured. It is its own secret, not
// derived from the signing key, so rotating or changing the signing key
// leaves every queued mail readable.
const OutboxKeySecret = "outbox-key"

// outboxKeyLen is the length of the random outbox key.
const outboxKeyLen = 32

// maxOutboxSealers bounds the outbox keys an engine remembers: the key
// changes only when the store lost it, so a handful is plenty.
const maxOutboxSealers = 8

// outboxKeys caches the outbox sealer: the key is read from the store once,
// then again every keyRefreshInterval (another instance made a new one
// after the store lost its data) and when a queued body names a key this
// engine has not seen (at most once per keyMissInterval).
type outboxKeys struct {
	mu       sync.Mutex // serializes reading the store
	cur      atomic.Pointer[outboxState]
	lastMiss time.Time               // under mu
	known    map[string]*mail.Sealer // keys seen, by key id; under mu
}

type outboxState struct {
	sealer    *mail.Sealer
	refreshAt time.Time
}

func (e *Engine) outboxSecret() sealedSecret {
	return sealedSecret{st: e.cfg.Store, box: e.cfg.Sealer, name: OutboxKeySecret, what: "outbox key"}
}

// loadOutboxKey reads the outbox key from the store (creating it when there
// is none) and installs its sealer. Callers hold e.outbox.mu.
func (e *Engine) loadOutboxKey(ctx context.Context) (*mail.Sealer, error) {
	_, plain, err := e.outboxSecret().load(ctx, func() ([]byte, error) {
		k := make([]byte, outboxKeyLen)
		if _, err := rand.Read(k); err != nil {
			return nil, err
		}
		return []byte(base64.RawURLEncoding.EncodeToString(k)), nil
	}, e.log)
	if err != nil {
		return nil, err
	}
	key, err := base64.RawURLEncoding.DecodeString(string(plain))
	if err != nil || len(key) < outboxKeyLen {
		return nil, fmt.Errorf("%w: the stored outbox key is not %d base64url bytes", ErrKeyUnusable, outboxKeyLen)
	}
	s, err := mail.NewSealer(key)
	if err != nil {
		return nil, err
	}
	o := &e.outbox
	cur := o.cur.Load()
	if known, ok := o.known[s.KeyID()]; ok {
		s = known
	} else {
		if cur != nil {
			e.log.Error("the outbox key in the store changed (the store lost its data?); mails queued by instances still holding the old one cannot be opened by the others",
				zap.String("old_key_id", cur.sealer.KeyID()), zap.String("new_key_id", s.KeyID()))
		}
		if o.known == nil || len(o.known) >= maxOutboxSealers {
			o.known = map[string]*mail.Sealer{}
			if cur != nil {
				o.known[cur.sealer.KeyID()] = cur.sealer
			}
		}
		o.known[s.KeyID()] = s
	}
	o.cur.Store(&outboxState{sealer: s, refreshAt: e.now().Add(keyRefreshInterval)})
	return s, nil
}

// MailSealer returns the sealer for outbox bodies. Its key is a store
// secret of its own (OutboxKeySecret): every instance on one store holds
// it, so any of them can open what another queued, and the store alone
// cannot when a key-encryption key is configured. It is read once and
// again every keyRefreshInterval; a failed re-read keeps the current one.
func (e *Engine) MailSealer(ctx context.Context) (*mail.Sealer, error) {
	o := &e.outbox
	if st := o.cur.Load(); st != nil {
		if e.now().Before(st.refreshAt) || !o.mu.TryLock() {
			return st.sealer, nil
		}
		defer o.mu.Unlock()
		if cur := o.cur.Load(); cur != st {
			return cur.sealer, nil
		}
		s, err := e.loadOutboxKey(ctx)
		if err != nil {
			lvl := zap.WarnLevel // the store may be briefly down
			if errors.Is(err, ErrKeyUnusable) {
				lvl = zap.ErrorLevel
			}
			e.log.Log(lvl, "re-reading the outbox key failed; keeping the current one", zap.Error(err))
			o.cur.Store(&outboxState{sealer: st.sealer, refreshAt: e.now().Add(keyRefreshInterval)})
			return st.sealer, nil
		}
		return s, nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if st := o.cur.Load(); st != nil {
		return st.sealer, nil
	}
	return e.loadOutboxKey(ctx)
}

// MailOpener returns the sealer whose key id is keyID (the one a sealed
// body names), for the delivery worker. A key this engine has not seen
// makes it read the store again, at most once per keyMissInterval; when
// the key is still unknown it returns the current sealer, whose Open then
// fails with mail.ErrSealKey. Errors are the store's (retry later).
func (e *Engine) MailOpener(ctx context.Context, keyID string) (*mail.Sealer, error) {
	cur, err := e.MailSealer(ctx)
	if err != nil {
		return nil, err
	}
	if cur.KeyID() == keyID {
		return cur, nil
	}
	o := &e.outbox
	o.mu.Lock()
	defer o.mu.Unlock()
	if s, ok := o.known[keyID]; ok {
		return s, nil
	}
	now := e.now()
	if !o.lastMiss.IsZero() && now.Sub(o.lastMiss) < keyMissInterval {
		return o.cur.Load().sealer, nil
	}
	o.lastMiss = now
	s, err := e.loadOutboxKey(ctx)
	if err != nil {
		return nil, err
	}
	if known, ok := o.known[keyID]; ok {
		return known, nil
	}
	return s, nil
}

// mailSealer names mail.Sealer where net/mail holds the name mail.
type mailSealer = mail.Sealer
