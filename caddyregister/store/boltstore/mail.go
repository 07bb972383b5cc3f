package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// claimScan bounds how many dangling queue entries (a queued id whose
// record is gone) one ClaimMail drops before giving up for this call.
const claimScan = 10

// timeKey is an outbox or token_expiry key: t as 8 bytes big-endian unix
// ms (times before 1970 count as 1970), then id. Keys sort by time.
func timeKey(t time.Time, id string) []byte {
	k := make([]byte, 8, 8+len(id))
	binary.BigEndian.PutUint64(k, uint64(max(t.UnixMilli(), 0)))
	return append(k, id...)
}

// keyMillis is the time part of a timeKey.
func keyMillis(k []byte) int64 {
	if len(k) < 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(k[:8]))
}

// dueAt reports whether the first key of b, a bucket of timeKeys, is due
// at ms.
func dueAt(b *bolt.Bucket, ms int64) bool {
	k, _ := b.Cursor().First()
	return k != nil && keyMillis(k) <= ms
}

// enqueue queues message id in the outbox q at at, and records its outbox
// key in byID.
func enqueue(q, byID *bolt.Bucket, id []byte, at time.Time) error {
	k := timeKey(at, string(id))
	if err := q.Put(k, id); err != nil {
		return err
	}
	return byID.Put(id, k)
}

// ClaimMail implements store.Store in one read-write transaction: the first
// outbox key (the earliest due) is re-keyed to now+lease. An idle poll
// looks in a read-only transaction first, so it costs no write and no
// fsync. It also sweeps a bounded number of expired tokens, idempotency
// records and sessions.
func (s *Store) ClaimMail(ctx context.Context, now time.Time, lease time.Duration) (*store.Mail, error) {
	const op = "claim mail"
	if err := ctx.Err(); err != nil {
		return nil, store.Unavailable(op, err)
	}
	nowMs := max(now.UnixMilli(), 0)
	wallMs := s.clock().UnixMilli()
	var due, sweep, sweepIdem, sweepSess bool
	err := s.db.View(func(tx *bolt.Tx) error {
		bs, err := buckets(tx, bucketOutbox, bucketTokenExp, bucketIdemExp, bucketSessionExp)
		if err != nil {
			return err
		}
		due, sweep, sweepIdem = dueAt(bs[0], nowMs), dueAt(bs[1], wallMs), dueAt(bs[2], wallMs)
		sweepSess = dueAt(bs[3], wallMs)
		return nil
	})
	if err != nil {
		return nil, store.Unavailable(op, err)
	}
	if !due && !sweep && !sweepIdem && !sweepSess {
		return nil, store.ErrNotFound
	}

	var m *store.Mail
	var decodeErr error
	err = s.db.Update(func(tx *bolt.Tx) error {
		if sweep {
			if err := sweepTokens(tx, wallMs); err != nil {
				return err
			}
		}
		if sweepIdem {
			if err := sweepIdempotency(tx, wallMs); err != nil {
				return err
			}
		}
		if sweepSess {
			if err := sweepSessions(tx, wallMs); err != nil {
				return err
			}
		}
		if !due {
			return nil
		}
		bs, err := buckets(tx, bucketOutbox, bucketOutboxByID, bucketMail)
		if err != nil {
			return err
		}
		q, byID, mails := bs[0], bs[1], bs[2]
		for range claimScan {
			k, v := q.Cursor().First()
			if k == nil || keyMillis(k) > nowMs {
				return nil
			}
			k, id := bytes.Clone(k), bytes.Clone(v)
			if err := q.Delete(k); err != nil {
				return err
			}
			body := mails.Get(id)
			if body == nil { // dangling: drop it and look further
				if err := byID.Delete(id); err != nil {
					return err
				}
				continue
			}
			// Re-key first: even a record that fails to decode moves
			// out of the way instead of blocking the queue.
			if err := enqueue(q, byID, id, time.UnixMilli(nowMs).Add(lease)); err != nil {
				return err
			}
			var got store.Mail
			if err := json.Unmarshal(body, &got); err != nil {
				decodeErr = fmt.Errorf("%s: decode mail %s: %w", op, id, err)
				return nil
			}
			m = &got
			return nil
		}
		return nil
	})
	if err != nil {
		return nil, store.Unavailable(op, err)
	}
	if decodeErr != nil {
		return nil, decodeErr
	}
	if m == nil {
		return nil, store.ErrNotFound
	}
	return m, nil
}

// dequeue removes id's outbox entry, if any.
func dequeue(tx *bolt.Tx, id []byte) error {
	bs, err := buckets(tx, bucketOutbox, bucketOutboxByID)
	if err != nil {
		return err
	}
	q, byID := bs[0], bs[1]
	if k := byID.Get(id); k != nil {
		if err := q.Delete(bytes.Clone(k)); err != nil {
			return err
		}
		if err := byID.Delete(id); err != nil {
			return err
		}
	}
	return nil
}

// AckMail implements store.Store: the record and its queue entries go in
// one transaction. Acknowledging an unknown message is not an error.
func (s *Store) AckMail(ctx context.Context, id string) error {
	const op = "ack mail"
	if id == "" {
		return errors.New("ack mail: empty id")
	}
	if err := ctx.Err(); err != nil {
		return store.Unavailable(op, err)
	}
	now := time.Now()
	err := s.db.Update(func(tx *bolt.Tx) error {
		mid := []byte(id)
		if err := releaseChain(tx, mailChain(tx, mid), mid, now); err != nil {
			return err
		}
		return deleteMail(tx, mid)
	})
	if err != nil {
		return store.Unavailable(op, err)
	}
	return nil
}

// deleteMail removes message id: its record and its queue entries.
func deleteMail(tx *bolt.Tx, id []byte) error {
	if err := dequeue(tx, id); err != nil {
		return err
	}
	bs, err := buckets(tx, bucketMail, bucketParked)
	if err != nil {
		return err
	}
	for _, b := range bs {
		if err := b.Delete(id); err != nil {
			return err
		}
	}
	return nil
}

// RetryMail implements store.Store: the message is saved and queued at
// m.NextAttempt (and taken out of the parked set, so retrying a parked
// message requeues it). It returns ErrNotFound when the message no longer
// exists (acknowledged meanwhile), rather than resurrecting it.
func (s *Store) RetryMail(ctx context.Context, m *store.Mail) error {
	return s.saveMail(ctx, "retry mail", m, func(tx *bolt.Tx, id []byte) error {
		bs, err := buckets(tx, bucketOutbox, bucketOutboxByID, bucketParked)
		if err != nil {
			return err
		}
		if err := enqueue(bs[0], bs[1], id, m.NextAttempt); err != nil {
			return err
		}
		return bs[2].Delete(id)
	})
}

// ParkMail implements store.Store: the message is saved, leaves the outbox
// and enters the parked set. It returns ErrNotFound when the message no
// longer exists.
func (s *Store) ParkMail(ctx context.Context, m *store.Mail) error {
	now := time.Now()
	at := binary.BigEndian.AppendUint64(nil, uint64(max(now.UnixMilli(), 0)))
	return s.saveMail(ctx, "park mail", m, func(tx *bolt.Tx, id []byte) error {
		// A parked message no longer holds up its chain.
		if err := releaseChain(tx, m.Chain, id, now); err != nil {
			return err
		}
		parked, err := bucket(tx, bucketParked)
		if err != nil {
			return err
		}
		return parked.Put(id, at)
	})
}

// saveMail rewrites an existing message's record, takes it out of the
// outbox and runs then.
func (s *Store) saveMail(ctx context.Context, op string, m *store.Mail, then func(*bolt.Tx, []byte) error) error {
	if m == nil || m.ID == "" {
		return fmt.Errorf("%s: mail without id", op)
	}
	if err := ctx.Err(); err != nil {
		return store.Unavailable(op, err)
	}
	body, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("%s: encode mail: %w", op, err)
	}
	id := []byte(m.ID)
	found := false
	err = s.db.Update(func(tx *bolt.Tx) error {
		mails, err := bucket(tx, bucketMail)
		if err != nil {
			return err
		}
		if !has(mails, id) {
			return nil
		}
		found = true
		if err := mails.Put(id, body); err != nil {
			return err
		}
		if err := dequeue(tx, id); err != nil {
			return err
		}
		return then(tx, id)
	})
	if err != nil {
		return store.Unavailable(op, err)
	}
	if !found {
		return store.ErrNotFound
	}
	return nil
}

// MailCounts implements store.Store in one read-only transaction.
func (s *Store) MailCounts(ctx context.Context) (queued, parked int, err error) {
	const op = "mail counts"
	if err := ctx.Err(); err != nil {
		return 0, 0, store.Unavailable(op, err)
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		bs, err := buckets(tx, bucketOutboxByID, bucketParked)
		if err != nil {
			return err
		}
		queued, parked = bs[0].Stats().KeyN, bs[1].Stats().KeyN
		return nil
	})
	if err != nil {
		return 0, 0, store.Unavailable(op, err)
	}
	return queued, parked, nil
}
