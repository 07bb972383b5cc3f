package boltstore

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// Chained outbox messages (store.Mail.Chain, see store/outbox.go):
//
//	outbox_chain     <chain>0<n>       -> mail id; <n> is 8 bytes big-endian from the bucket's sequence, so a prefix scan walks a chain in order
//
// Only a chain's first entry is in the outbox; acking or parking it
// (releaseChain) removes its entry and queues the next, due at once.
var bucketChain = []byte("outbox_chain")

func init() {
	allBuckets = append(allBuckets, bucketChain)
}

// chainPrefix is the key prefix of chain's entries.
func chainPrefix(chain string) []byte {
	return append([]byte(chain), 0)
}

// putOutbox writes messages in tx: each record, and its outbox entry (a
// chained one only when its chain is empty, else behind the chain). An id
// already stored is a conflict ("mail_id"), reported through conflict with
// errAbort.
func putOutbox(tx *bolt.Tx, mails []*store.Mail, conflict **store.ConflictError) error {
	if len(mails) == 0 {
		return nil
	}
	bs, err := buckets(tx, bucketMail, bucketOutbox, bucketOutboxByID, bucketChain)
	if err != nil {
		return err
	}
	recs, q, byID, chains := bs[0], bs[1], bs[2], bs[3]
	for _, m := range mails {
		if has(recs, []byte(m.ID)) {
			*conflict = &store.ConflictError{Field: "mail_id"}
			return errAbort
		}
	}
	for _, m := range mails {
		body, err := json.Marshal(m)
		if err != nil {
			return fmt.Errorf("%w: mail: %w", errEncode, err)
		}
		id := []byte(m.ID)
		if err := recs.Put(id, body); err != nil {
			return err
		}
		if err := chainOrQueue(q, byID, chains, m, id, m.NextAttempt); err != nil {
			return err
		}
	}
	return nil
}

// chainOrQueue queues message id at at (its NextAttempt but for an
// import), or, when it is chained behind others, only appends it to its
// chain.
func chainOrQueue(q, byID, chains *bolt.Bucket, m *store.Mail, id []byte, at time.Time) error {
	if m.Chain == "" {
		return enqueue(q, byID, id, at)
	}
	p := chainPrefix(m.Chain)
	k, _ := chains.Cursor().Seek(p)
	first := k == nil || !bytes.HasPrefix(k, p)
	n, err := chains.NextSequence()
	if err != nil {
		return err
	}
	if err := chains.Put(binary.BigEndian.AppendUint64(p, n), id); err != nil {
		return err
	}
	if first {
		return enqueue(q, byID, id, at)
	}
	return nil
}

// releaseChain takes message id out of its chain; when it was the chain's
// head, the next message is queued, due at now.
func releaseChain(tx *bolt.Tx, chain string, id []byte, now time.Time) error {
	if chain == "" {
		return nil
	}
	bs, err := buckets(tx, bucketChain, bucketOutbox, bucketOutboxByID)
	if err != nil {
		return err
	}
	chains, q, byID := bs[0], bs[1], bs[2]
	p := chainPrefix(chain)
	c := chains.Cursor()
	head := true
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		if !bytes.Equal(v, id) {
			head = false
			continue
		}
		if err := c.Delete(); err != nil {
			return err
		}
		if !head {
			return nil
		}
		if k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p) && !has(byID, v) {
			return enqueue(q, byID, bytes.Clone(v), now)
		}
		return nil
	}
	return nil
}

// mailChain is the Chain of the stored message id ("" when there is none
// or it does not decode: a record that cannot be read cannot be ordered).
func mailChain(tx *bolt.Tx, id []byte) string {
	b := tx.Bucket(bucketMail)
	if b == nil {
		return ""
	}
	raw := b.Get(id)
	if raw == nil {
		return ""
	}
	var m struct {
		Chain string `json:"chain"`
	}
	if json.Unmarshal(raw, &m) != nil {
		return ""
	}
	return m.Chain
}

// queueChained queues CreateUser's chained messages, whose records the
// claims wrote.
func queueChained(tx *bolt.Tx, mails []*store.Mail) error {
	if len(mails) == 0 {
		return nil
	}
	bs, err := buckets(tx, bucketOutbox, bucketOutboxByID, bucketChain)
	if err != nil {
		return err
	}
	for _, m := range mails {
		if err := chainOrQueue(bs[0], bs[1], bs[2], m, []byte(m.ID), m.NextAttempt); err != nil {
			return err
		}
	}
	return nil
}
