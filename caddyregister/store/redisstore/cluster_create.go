package redisstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// A registration on the cluster layout runs in rounds, each atomic per
// key but not across slots:
//
//  1. reserve: SET key "r:<uid>:<deadline>" NX GET PXAT deadline for every
//     unique key (idempotency, user id, e-mail, login, token, and a
//     founder's tenant id, code and VAT id), plus the intent (ZADD
//     {ns:pend:<k>} and its key list), pipelined: go-redis sends one batch
//     per master, in parallel. A claim that finds a holder is a conflict
//     (but an e-mail or login entry whose record is gone, a crashed
//     delete, or whose user expired pending: that user is erased and the
//     entry claimed again); the reservations made are released by
//     compare-and-delete.
//  2. sequence (only with NewUser.Sequence): INCR, once every claim holds.
//  3. finalize: per claim a compare-and-set reservation → final value
//     (PERSIST, or PXAT for a token or idempotency record), the user's
//     slot (refs, token record, session) in one script, the user index
//     shard and the tenant SET. A claim found lapsed (the deadline passed
//     and another took the key) rolls the user back.
//  4. clear the intent.
//
// With min_replicas_ack, rounds 1 and 3 are each followed by a WAIT per
// master written (waitReplicas), in parallel: one more round each.
//
// A crash between 1 and 4 leaves an intent: reservations lapse by
// themselves at the deadline, and the janitor (Janitor) finishes or
// removes whatever was finalized, so a half-made registration completes
// or disappears within reserveTTL plus one janitor period.

// claim is one unique key of a registration.
type claim struct {
	field string // the ConflictError field when taken
	key   string
	final string // value once finalized
	pxat  int64  // expiry once finalized (unix ms), 0 = none
	user  bool   // an e-mail or login entry: validated against its record
	// mail, for a message's record: final is its JSON, and finalizing
	// queues it (finalizeMailScript).
	mail  []any
	shard int
}

// finalizeScript turns KEYS[1]'s reservation ARGV[1] into the final value
// ARGV[2] (PXAT ARGV[3] unless 0, else persistent). 1 when the key holds
// the final value afterwards (also when it did before: the janitor rolls
// forward with it), 0 when someone else holds it.
var finalizeScript = redis.NewScript(`#!lua
local v = redis.call('GET', KEYS[1])
if v == ARGV[2] then
  return 1
end
if v ~= ARGV[1] then
  return 0
end
if ARGV[3] == '0' then
  redis.call('SET', KEYS[1], ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[3])
end
return 1
`)

// releaseScript deletes KEYS[1] if it holds one of ARGV (compare and
// delete): a reservation or entry of ours, never another's.
var releaseScript = redis.NewScript(`#!lua
local v = redis.call('GET', KEYS[1])
for i = 1, #ARGV do
  if v == ARGV[i] then
    return redis.call('DEL', KEYS[1])
  end
end
return 0
`)

// userSlotScript writes the rest of a new user's slot once its record is
// final: refs, the token record and the session.
// KEYS = user record, refs, token record (or the record again), session,
// session index (or the record again); ARGV = final user JSON, token JSON
// ("" for none), token PXAT, session fields JSON ("" for none), session
// idle expiry, session last used, sid, refs...
var userSlotScript = redis.NewScript(`#!lua
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
for i = 8, #ARGV do
  redis.call('SADD', KEYS[2], ARGV[i])
end
if ARGV[2] ~= '' then
  redis.call('SET', KEYS[3], ARGV[2], 'PXAT', ARGV[3])
end
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[4], unpack(cjson.decode(ARGV[4])))
  redis.call('PEXPIREAT', KEYS[4], ARGV[5])
  redis.call('ZADD', KEYS[5], ARGV[6], ARGV[7])
  redis.call('PEXPIREAT', KEYS[5], ARGV[5])
end
return 1
`)

// CreateUser implements store.Store on the cluster layout (see the rounds
// above). Mails are refused until the sharded outbox exists.
func (s *ClusterStore) CreateUser(ctx context.Context, n store.NewUser) error {
	const op = "create user"
	idem, err := store.PrepareIdempotency(n)
	if err != nil {
		return err
	}
	if _, err := store.PrepareMails(n.Mails); err != nil {
		return err
	}
	u := n.User
	var ph string
	if n.Sequence != "" {
		if ph, err = placeholder(); err != nil {
			return err
		}
	}
	userJSON, err := encodeUser(u, ph)
	if err != nil {
		return err
	}
	tok, tokJSON, err := store.PrepareToken(n)
	if err != nil {
		return err
	}
	sess, err := store.PrepareSession(n)
	if err != nil {
		return err
	}
	var idemJSON []byte
	var claims []claim
	if idem != nil {
		if idemJSON, err = encodeIdempotency(idem, ph); err != nil {
			return err
		}
		claims = append(claims, claim{field: "idempotency", key: s.idemKey(idem.Key), pxat: idem.ExpiresAt.UnixMilli()})
	}
	claims = append(claims,
		claim{field: "id", key: s.UserKey(u.ID, "user")},
		claim{field: "email", key: s.EmailKey(u.EmailKey), final: u.ID, user: true})
	if u.LoginKey != "" {
		claims = append(claims, claim{field: "login", key: s.LoginKey(u.LoginKey), final: u.ID, user: true})
	}
	if t := n.Tenant; t != nil {
		tenantJSON, err := json.Marshal(t)
		if err != nil {
			return fmt.Errorf("encode tenant: %w", err)
		}
		claims = append(claims, claim{field: "tenant_id", key: s.base.Key("tenant", t.ID), final: string(tenantJSON)})
		keys := n.Of()
		if keys.TenantVATKey != "" {
			claims = append(claims, claim{field: "tenant_vat", key: s.base.Key("idx", "tenant_vat", keys.TenantVATKey), final: t.ID})
		}
		if keys.TenantCodeKey != "" {
			claims = append(claims, claim{field: "tenant_code", key: s.base.Key("idx", "tenant_code", keys.TenantCodeKey), final: t.ID})
		}
	}
	if tok != nil {
		claims = append(claims, claim{field: "token", key: s.TokenIndexKey(tok.Hash), final: u.ID, pxat: tok.ExpiresAt.UnixMilli()})
	}

	for _, m := range n.Mails {
		args, err := outboxArgs([]*store.Mail{m})
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		claims = append(claims, claim{field: "mail_id", key: s.MailKey(m), final: string(args[2].([]byte)), mail: args, shard: mailShard(m)})
	}

	s.startJanitor()
	deadline := time.Now().Add(s.reserveTTL).UnixMilli()
	res := reservation(u.ID, deadline)
	if field, err := s.reserve(ctx, op, u.ID, res, deadline, u.CreatedAt, claims); err != nil || field != "" {
		if err == nil {
			err = &store.ConflictError{Field: field}
		}
		err = errors.Join(err, s.release(ctx, u.ID, res, claims))
		if field == "idempotency" {
			// The caller replays the winner's record (GetIdempotency):
			// let a winner still in flight finish first.
			s.awaitFinal(ctx, s.idemKey(idem.Key))
		}
		return err
	}
	if err := s.waitReplicas(ctx, op, s.roundKeys(u.ID, claims)); err != nil {
		return errors.Join(err, s.release(ctx, u.ID, res, claims))
	}
	if n.Tenant == nil && u.TenantID != "" {
		// Joining: the tenant must exist (tenants are never deleted, so
		// a read after the claims is as good as a check at commit).
		if _, err := s.GetTenant(ctx, u.TenantID); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				err = fmt.Errorf("%s: tenant %s: %w", op, u.TenantID, store.ErrNotFound)
			}
			return errors.Join(err, s.release(ctx, u.ID, res, claims))
		}
	}
	var seq int64
	if n.Sequence != "" {
		if seq, err = s.c.Incr(ctx, s.base.Key("seq", n.Sequence)).Result(); err != nil {
			return errors.Join(store.Unavailable(op, err), s.release(ctx, u.ID, res, claims))
		}
		num := []byte(strconv.FormatInt(seq, 10))
		userJSON = bytes.Replace(userJSON, []byte(ph), num, 1)
		idemJSON = bytes.Replace(idemJSON, []byte(ph), num, 1)
	}
	for i := range claims {
		switch claims[i].field {
		case "idempotency":
			claims[i].final = string(idemJSON)
		case "id":
			claims[i].final = string(userJSON)
		}
	}
	if err := s.finalize(ctx, op, n, res, claims, tokJSON, tok, sess); err != nil {
		return errors.Join(err, s.rollback(ctx, n, res, claims, tok, sess))
	}
	// With min_replicas_ack the answer waits for the replicas: a
	// registration acknowledged then survives its master's failure. One
	// that times out here is written but not acknowledged (the client may
	// retry and meet a conflict, or its idempotency record).
	written := append(s.roundKeys(u.ID, claims), s.UsersShardKey(Shard(u.ID)))
	if n.Tenant != nil {
		written = append(written, s.base.Key("tenants"))
	}
	if err := s.waitReplicas(ctx, op, written); err != nil {
		return err
	}
	// Round 4: the intent is no longer needed. A failure here only leaves
	// work for the janitor, which finds everything final.
	s.clearIntent(ctx, u.ID)
	store.FinishCreate(n, idem, seq)
	return nil
}

// reserve is round 1: it returns the field of the first claim (in claim
// order) that someone else holds, or "".
func (s *ClusterStore) reserve(ctx context.Context, op, uid, res string, deadline int64, now time.Time, claims []claim) (string, error) {
	intent, err := encodeIntent(claims)
	if err != nil {
		return "", fmt.Errorf("%s: encode intent: %w", op, err)
	}
	at := time.UnixMilli(deadline)
	cmds := make([]*redis.StatusCmd, len(claims))
	_, err = s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		pk := s.pendKey(Shard(uid))
		p.ZAdd(ctx, pk, redis.Z{Score: float64(deadline), Member: uid})
		p.HSet(ctx, pk+":i", uid, intent)
		for i, c := range claims {
			cmds[i] = p.SetArgs(ctx, c.key, res, redis.SetArgs{Mode: "NX", Get: true, ExpireAt: at})
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return "", store.Unavailable(op, err)
	}
	type held struct {
		c       claim
		holder  string
		expired bool // the holder expired pending: erase it first
	}
	var replace []held
	for i, c := range claims {
		holder, err := cmds[i].Result()
		if errors.Is(err, redis.Nil) {
			continue // ours
		}
		if err != nil {
			return "", store.Unavailable(op, err)
		}
		if c.user && !isReservation(holder) {
			ok, expired, err := s.replaceable(ctx, c, holder, now)
			if err != nil {
				return "", err
			}
			if ok {
				replace = append(replace, held{c, holder, expired})
				continue
			}
		}
		return c.field, nil
	}
	// Every other claim holds: now free the entries held by a user that
	// expired pending (erased whole, as the single-node layout does) or by
	// one that is gone (a crashed delete), and claim them again. Of racing
	// registrations, the SET NX picks one.
	for _, h := range replace {
		if h.expired {
			if _, _, err := s.erase(ctx, op, h.holder, now); errors.Is(err, errLive) {
				return h.c.field, nil // activated meanwhile
			} else if err != nil && !errors.Is(err, store.ErrNotFound) {
				return "", err
			}
		}
		if err := releaseScript.Run(ctx, s.c, []string{h.c.key}, h.holder).Err(); err != nil {
			return "", store.Unavailable(op, err)
		}
		err := s.c.SetArgs(ctx, h.c.key, res, redis.SetArgs{Mode: "NX", ExpireAt: at}).Err()
		if errors.Is(err, redis.Nil) {
			return h.c.field, nil
		}
		if err != nil {
			return "", store.Unavailable(op, err)
		}
	}
	return "", nil
}

// replaceable reports whether an e-mail or login entry naming holder may
// be taken over: its record is gone or no longer carries the key (a
// delete that crashed half-way), or the user expired pending at now.
//
// A record that is itself a reservation belongs to a registration whose
// index entries finalize in the same round as its record: in flight, not
// gone, so not replaceable (taking it over would let two registrations of
// one address succeed).
func (s *ClusterStore) replaceable(ctx context.Context, c claim, holder string, now time.Time) (ok, expired bool, err error) {
	raw, err := s.c.Get(ctx, s.UserKey(holder, "user")).Bytes()
	if errors.Is(err, redis.Nil) {
		return true, false, nil // gone
	}
	if err != nil {
		return false, false, store.Unavailable("create user", err)
	}
	if isReservation(string(raw)) {
		return false, false, nil
	}
	u, err := decodeUserJSON(raw, s.UserKey(holder, "user"))
	switch {
	case errors.Is(err, errDecode):
		return false, false, nil
	case err != nil:
		return false, false, err
	case s.stale(c, u):
		return true, false, nil
	}
	expired = !now.IsZero() && u.PendingExpired(now)
	return expired, expired, nil
}

// stale reports whether u no longer carries claim c's key.
func (s *ClusterStore) stale(c claim, u *store.User) bool {
	switch c.field {
	case "email":
		return s.EmailKey(u.EmailKey) != c.key
	case "login":
		return u.LoginKey == "" || s.LoginKey(u.LoginKey) != c.key
	}
	return false
}

// release drops every reservation of a registration that will not
// finalize, and its intent: one pipelined round.
func (s *ClusterStore) release(ctx context.Context, uid, res string, claims []claim) error {
	pk := s.pendKey(Shard(uid))
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, c := range claims {
			releaseScript.Eval(ctx, p, []string{c.key}, res)
		}
		p.ZRem(ctx, pk, uid)
		p.HDel(ctx, pk+":i", uid)
		return nil
	})
	if err != nil {
		return store.Unavailable("release reservations", err)
	}
	return nil
}

func (s *ClusterStore) clearIntent(ctx context.Context, uid string) {
	pk := s.pendKey(Shard(uid))
	s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.ZRem(ctx, pk, uid)
		p.HDel(ctx, pk+":i", uid)
		return nil
	})
}

// finalize is round 3.
func (s *ClusterStore) finalize(ctx context.Context, op string, n store.NewUser, res string, claims []claim, tokJSON []byte, tok *store.Token, sess *store.Session) error {
	u := n.User
	fin := make([]*redis.Cmd, len(claims))
	var slot *redis.Cmd
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, c := range claims {
			if c.mail != nil {
				args := append([]any{res, s.outboxShard(c.shard).Key() + ":", c.final}, c.mail...)
				fin[i] = finalizeMailScript.Eval(ctx, p, []string{c.key}, args...)
				continue
			}
			fin[i] = finalizeScript.Eval(ctx, p, []string{c.key}, res, c.final, c.pxat)
		}
		keys, args, err := s.userSlotArgs(n, claims, tokJSON, tok, sess)
		if err != nil {
			return err
		}
		slot = userSlotScript.Eval(ctx, p, keys, args...)
		p.ZAdd(ctx, s.UsersShardKey(Shard(u.ID)), redis.Z{Score: float64(store.UserIndexScore(u)), Member: u.ID})
		if n.Tenant != nil {
			p.SAdd(ctx, s.base.Key("tenants"), n.Tenant.ID)
		}
		return nil
	})
	if err != nil {
		return store.Unavailable(op, err)
	}
	for i, c := range claims {
		if v, err := fin[i].Int(); err != nil || v != 1 {
			return store.Unavailable(op, fmt.Errorf("reservation of %s lapsed before the user was written", c.field))
		}
	}
	if v, err := slot.Int(); err != nil || v != 1 {
		return store.Unavailable(op, fmt.Errorf("user %s: record changed before its slot was written", u.ID))
	}
	return nil
}

// userSlotArgs builds userSlotScript's keys and arguments. The record's
// final value is the "id" claim's.
func (s *ClusterStore) userSlotArgs(n store.NewUser, claims []claim, tokJSON []byte, tok *store.Token, sess *store.Session) ([]string, []any, error) {
	u := n.User
	rec := s.UserKey(u.ID, "user")
	var final string
	for _, c := range claims {
		if c.field == "id" {
			final = c.final
		}
	}
	keys := []string{rec, s.UserKey(u.ID, "refs"), rec, rec, rec}
	args := []any{final, "", 0, "", 0, 0, ""}
	if tok != nil {
		keys[2] = s.UserKey(u.ID, "token", tok.Hash)
		args[1], args[2] = string(tokJSON), tok.ExpiresAt.UnixMilli()
	}
	if sess != nil {
		fields, err := json.Marshal(sessionFields(sess))
		if err != nil {
			return nil, nil, fmt.Errorf("encode session: %w", err)
		}
		sk := s.base.sessionKeys(u.ID, sess.ID)
		keys[3], keys[4] = sk[0], sk[1]
		args[3], args[4], args[5], args[6] = string(fields), ms(sess.IdleExpiresAt), ms(sess.LastUsedAt), sess.ID
	}
	for _, ref := range store.UserRefs(n) {
		args = append(args, ref)
	}
	return keys, args, nil
}

// rollback undoes a registration whose finalize failed: the user's slot,
// its index shard entry, and every claim holding our reservation or our
// final value.
func (s *ClusterStore) rollback(ctx context.Context, n store.NewUser, res string, claims []claim, tok *store.Token, sess *store.Session) error {
	u := n.User
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		now := nowMs()
		for _, c := range claims {
			if c.mail != nil {
				// The id was ours (reserved): the ack removes its record,
				// queue entry and chain place.
				sh := s.outboxShard(c.shard)
				id := c.mail[1]
				ackScript.Eval(ctx, p, []string{c.key, sh.Key("outbox"), sh.Key("outbox", "parked")}, sh.Key()+":", id, now)
				continue
			}
			releaseScript.Eval(ctx, p, []string{c.key}, res, c.final)
		}
		del := []string{s.UserKey(u.ID, "refs")}
		if tok != nil {
			del = append(del, s.UserKey(u.ID, "token", tok.Hash))
		}
		if sess != nil {
			del = append(del, s.base.sessionKeys(u.ID, sess.ID)...)
		}
		p.Del(ctx, del...)
		p.ZRem(ctx, s.UsersShardKey(Shard(u.ID)), u.ID)
		if n.Tenant != nil {
			p.SRem(ctx, s.base.Key("tenants"), n.Tenant.ID)
		}
		return nil
	})
	if err != nil {
		return store.Unavailable("roll back user", err)
	}
	s.clearIntent(ctx, u.ID)
	return nil
}

// roundKeys are the keys a registration's rounds write: its claims and
// its intent.
func (s *ClusterStore) roundKeys(uid string, claims []claim) []string {
	keys := []string{s.pendKey(Shard(uid))}
	for _, c := range claims {
		keys = append(keys, c.key)
	}
	return keys
}

// awaitFinal waits while key holds a reservation, at most until that
// reservation's deadline (when it lapses by itself): so the loser of an
// idempotent race finds the winner's record, as on one node, where both
// appear in one step.
func (s *ClusterStore) awaitFinal(ctx context.Context, key string) {
	for {
		v, err := s.c.Get(ctx, key).Result()
		if err != nil || !isReservation(v) {
			return
		}
		_, dl, _ := strings.Cut(v[len("r:"):], ":")
		deadline, err := strconv.ParseInt(dl, 10, 64)
		if err != nil || time.Now().UnixMilli() >= deadline {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}
