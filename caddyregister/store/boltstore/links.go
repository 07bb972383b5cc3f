package boltstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// ReissueLink implements store.Store in one read-write transaction: the
// user's link tokens and mails named in its refs are deleted (as dropUser
// deletes them), the new token and mail written and referenced, and the
// user's PendingUntil moved.
func (s *Store) ReissueLink(ctx context.Context, r store.LinkReissue) (*store.User, error) {
	const op = "reissue link"
	tok, m, err := store.CheckReissue(r)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, store.Unavailable(op, err)
	}
	tokJSON, err := json.Marshal(tok)
	if err != nil {
		return nil, fmt.Errorf("%s: encode token: %w", op, err)
	}
	mailJSON, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("%s: encode mail: %w", op, err)
	}
	var out *store.User
	var result error
	err = s.db.Update(func(tx *bolt.Tx) error {
		out, result = nil, nil
		bs, err := buckets(tx, bucketUsers, bucketUserRefs, bucketTokens, bucketMail, bucketOutbox, bucketOutboxByID, bucketTokenExp)
		if err != nil {
			return err
		}
		users, refs, tokens, mails, outbox, byID, tokExp := bs[0], bs[1], bs[2], bs[3], bs[4], bs[5], bs[6]
		raw := users.Get([]byte(r.UserID))
		if raw == nil {
			result = fmt.Errorf("%s: user %s: %w", op, r.UserID, store.ErrNotFound)
			return errAbort
		}
		var u store.User
		if err := json.Unmarshal(raw, &u); err != nil {
			result = fmt.Errorf("%s: decode user %s: %w", op, r.UserID, err)
			return errAbort
		}
		if !u.Reissuable(r.Now) {
			result = fmt.Errorf("%s: user %s awaits no confirmation: %w", op, r.UserID, store.ErrNotFound)
			return errAbort
		}
		switch {
		case has(tokens, []byte(tok.Hash)):
			result = &store.ConflictError{Field: "token"}
			return errAbort
		case has(mails, []byte(m.ID)):
			result = &store.ConflictError{Field: "mail_id"}
			return errAbort
		}
		prefix := refKey(u.ID, "")
		var owned [][]byte
		c := refs.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			if store.IsLinkRef(string(k[len(prefix):])) {
				owned = append(owned, bytes.Clone(k))
			}
		}
		for _, k := range owned {
			ref := string(k[len(prefix):])
			if hash, ok := strings.CutPrefix(ref, "token:"); ok {
				var old store.Token
				if raw := tokens.Get([]byte(hash)); raw != nil && json.Unmarshal(raw, &old) == nil {
					if err := deleteToken(tx, []byte(hash), old.ExpiresAt); err != nil {
						return err
					}
				} else if err := tokens.Delete([]byte(hash)); err != nil {
					return err
				}
			} else if err := deleteMail(tx, []byte(strings.TrimPrefix(ref, "mail:"))); err != nil {
				return err
			}
			if err := refs.Delete(k); err != nil {
				return err
			}
		}
		u.PendingUntil = r.PendingUntil
		u.UpdatedAt = r.Now
		userJSON, err := json.Marshal(&u)
		if err != nil {
			return fmt.Errorf("encode user: %w", err)
		}
		mid := []byte(m.ID)
		for _, p := range []struct {
			b    *bolt.Bucket
			k, v []byte
		}{
			{users, []byte(u.ID), userJSON},
			{tokens, []byte(tok.Hash), tokJSON},
			{tokExp, timeKey(tok.ExpiresAt, tok.Hash), []byte{}},
			{mails, mid, mailJSON},
			{refs, refKey(u.ID, "token:"+tok.Hash), []byte{}},
			{refs, refKey(u.ID, "mail:"+m.ID), []byte{}},
		} {
			if err := p.b.Put(p.k, p.v); err != nil {
				return err
			}
		}
		if err := enqueue(outbox, byID, mid, m.NextAttempt); err != nil {
			return err
		}
		out = &u
		return nil
	})
	if err != nil && !errors.Is(err, errAbort) {
		return nil, store.Unavailable(op, err)
	}
	return out, result
}
