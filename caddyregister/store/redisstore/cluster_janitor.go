package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// JanitorInterval is how often a cluster store's janitor looks for
// registrations that did not finish (a crash or a shard failure between
// their rounds). A half-made registration therefore completes or
// disappears within reserveTTL + janitorGrace + JanitorInterval (+ the
// time one pass takes): about 16 s by default.
const JanitorInterval = 5 * time.Second

// janitorGrace is how long past its deadline an intent is left to the
// request that made it (which may be finishing its last round) before the
// janitor settles it.
const janitorGrace = time.Second

// intent is what a registration records before it reserves anything, so
// the janitor can finish it or undo it without the request.
type intent struct {
	// Keys are the claims: key, and the final value when it is an id
	// (the entries the janitor releases by compare-and-delete).
	Keys []intentKey `json:"keys"`
	// Mails are the message ids and their outbox shard.
	Mails []intentMail `json:"mails,omitempty"`
	// Tenant is a founded tenant's id.
	Tenant string `json:"tenant,omitempty"`
}

type intentKey struct {
	Field string `json:"f"`
	Key   string `json:"k"`
	ID    string `json:"v,omitempty"`
}

type intentMail struct {
	ID    string `json:"id"`
	Shard int    `json:"shard"`
}

func encodeIntent(claims []claim) ([]byte, error) {
	var in intent
	for _, c := range claims {
		switch {
		case c.mail != nil:
			in.Mails = append(in.Mails, intentMail{ID: fmt.Sprint(c.mail[1]), Shard: c.shard})
		case c.field == "id" || c.field == "idempotency" || c.field == "tenant_id":
			in.Keys = append(in.Keys, intentKey{Field: c.field, Key: c.key})
		default:
			in.Keys = append(in.Keys, intentKey{Field: c.field, Key: c.key, ID: c.final})
			if c.field == "tenant_code" {
				in.Tenant = c.final
			}
		}
	}
	return json.Marshal(in)
}

// Janitor finishes or undoes the registrations whose reservation deadline
// passed before now (less janitorGrace) without their intent being cleared, and returns how
// many it handled. Every reservation has lapsed by then (PXAT), so what
// is left is what the registration made final:
//
//   - a user record whose e-mail (and login) entries name it is a
//     complete user: the janitor makes sure it is in its user index
//     shard (roll forward; a token index entry or mail that lapsed is a
//     link the user asks for again);
//   - anything else is undone: the user erased (record, refs, sessions,
//     tokens and their index entries), every entry still naming it
//     released by compare-and-delete, its messages acked.
//
// Every instance runs it (startJanitor); two running it on one intent do
// the same idempotent steps.
func (s *ClusterStore) Janitor(ctx context.Context, now time.Time) (int, error) {
	const op = "janitor"
	handled := 0
	for k := range ClusterShards {
		pk := s.pendKey(k)
		uids, err := s.c.ZRangeByScore(ctx, pk, &redis.ZRangeBy{Min: "-inf", Max: strconv.FormatInt(now.Add(-janitorGrace).UnixMilli(), 10), Count: 100}).Result()
		if err != nil {
			return handled, store.Unavailable(op, err)
		}
		for _, uid := range uids {
			if err := s.settle(ctx, op, uid); err != nil {
				return handled, err
			}
			handled++
		}
	}
	return handled, nil
}

// settle finishes or undoes one registration and clears its intent.
func (s *ClusterStore) settle(ctx context.Context, op, uid string) error {
	pk := s.pendKey(Shard(uid))
	raw, err := s.c.HGet(ctx, pk+":i", uid).Bytes()
	if err != nil && !errors.Is(err, redis.Nil) {
		return store.Unavailable(op, err)
	}
	var in intent
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &in); err != nil {
			return fmt.Errorf("%s: decode intent of %s: %w: %w", op, uid, errDecode, err)
		}
	}
	u, err := s.GetUser(ctx, uid)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	complete := u != nil
	if complete {
		for _, key := range []string{s.EmailKey(u.EmailKey), s.LoginKey(u.LoginKey)} {
			if key == s.LoginKey("") {
				continue
			}
			v, err := s.c.Get(ctx, key).Result()
			if err != nil && !errors.Is(err, redis.Nil) {
				return store.Unavailable(op, err)
			}
			if v != uid {
				complete = false
			}
		}
	}
	if complete {
		_, err = s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.ZAdd(ctx, s.UsersShardKey(Shard(uid)), redis.Z{Score: float64(store.UserIndexScore(u)), Member: uid})
			if in.Tenant != "" {
				p.SAdd(ctx, s.base.Key("tenants"), in.Tenant)
			}
			return nil
		})
		if err != nil {
			return store.Unavailable(op, err)
		}
	} else {
		if u != nil {
			if _, _, err := s.erase(ctx, op, uid, time.Time{}); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		var mails []string
		for _, m := range in.Mails {
			mails = append(mails, m.ID)
		}
		if _, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, k := range in.Keys {
				if k.ID != "" {
					releaseScript.Eval(ctx, p, []string{k.Key}, k.ID)
				}
			}
			p.ZRem(ctx, s.UsersShardKey(Shard(uid)), uid)
			return nil
		}); err != nil {
			return store.Unavailable(op, err)
		}
		if err := s.ackEverywhere(ctx, op, mails...); err != nil {
			return err
		}
	}
	s.clearIntent(ctx, uid)
	return nil
}

// startJanitor runs Janitor every JanitorInterval until Close, from the
// store's first start-up step (BackfillUserIndex, which the engine's
// Start runs), mail claim or registration on: so `caddy validate`, which
// opens the store without starting it, starts nothing.
func (s *ClusterStore) startJanitor() {
	s.janitorOnce.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		s.stopJanitor = cancel
		go func() {
			// The masters as the store starts: a failover from here on
			// changes them (maybeReconcile).
			s.maybeReconcile(ctx, time.Now())
			t := time.NewTicker(JanitorInterval)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					s.Janitor(ctx, time.Now())
					s.maybeReconcile(ctx, time.Now())
				}
			}
		}()
	})
}
