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
// user's link tokens and mails named in its refs (of r.Purpose, when set)
// are deleted (as dropUser deletes them), the new token and mail written
// and referenced, and a pending user's PendingUntil moved.
func (s *Store) ReissueLink(ctx context.Context, r store.LinkReissue) (*store.User, error) {
	const op = "reissue link"
	tok, m, err := store.CheckReissue(r)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, store.Unavailable(op, err)
	}
	var tokJSON []byte
	if tok != nil {
		if tokJSON, err = json.Marshal(tok); err != nil {
			return nil, fmt.Errorf("%s: encode token: %w", op, err)
		}
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
		if !r.Eligible(&u) {
			result = fmt.Errorf("%s: user %s awaits no such link: %w", op, r.UserID, store.ErrNotFound)
			return errAbort
		}
		switch {
		case tok != nil && has(tokens, []byte(tok.Hash)):
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
			if ref := string(k[len(prefix):]); store.IsLinkRef(ref) && ofPurpose(tokens, mails, ref, r.Purpose) {
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
		mid := []byte(m.ID)
		type put struct {
			b    *bolt.Bucket
			k, v []byte
		}
		puts := []put{
			{mails, mid, mailJSON},
			{refs, refKey(u.ID, "mail:"+m.ID), []byte{}},
		}
		if r.Purpose == "" {
			u.PendingUntil = r.PendingUntil
			u.UpdatedAt = r.Now
			userJSON, err := json.Marshal(&u)
			if err != nil {
				return fmt.Errorf("encode user: %w", err)
			}
			puts = append(puts, put{users, []byte(u.ID), userJSON})
		}
		if tok != nil {
			puts = append(puts,
				put{tokens, []byte(tok.Hash), tokJSON},
				put{tokExp, timeKey(tok.ExpiresAt, tok.Hash), []byte{}},
				put{refs, refKey(u.ID, "token:"+tok.Hash), []byte{}})
		}
		for _, p := range puts {
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

// ofPurpose reports whether the link ref (a UserRefs entry) is one a
// reissue of purpose replaces: any link when purpose is empty; else a
// token or mail of that purpose, or a ref whose record is gone (a lapsed
// token, a delivered mail), which is tidied away with them.
func ofPurpose(tokens, mails *bolt.Bucket, ref, purpose string) bool {
	if purpose == "" {
		return true
	}
	var raw []byte
	if hash, ok := strings.CutPrefix(ref, "token:"); ok {
		raw = tokens.Get([]byte(hash))
	} else {
		raw = mails.Get([]byte(strings.TrimPrefix(ref, "mail:")))
	}
	if raw == nil {
		return true
	}
	var rec struct {
		Purpose string `json:"purpose"`
	}
	return json.Unmarshal(raw, &rec) == nil && rec.Purpose == purpose
}
