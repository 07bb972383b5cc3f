package boltstore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// refKey is the user_refs key of ref owned by user id.
func refKey(id, ref string) []byte {
	k := make([]byte, 0, len(id)+1+len(ref))
	k = append(k, id...)
	k = append(k, 0)
	return append(k, ref...)
}

// expiredHolder returns the user holding key in the index bucket idx when
// that user expired pending at now (store.User.PendingExpired), else nil.
func expiredHolder(tx *bolt.Tx, idx, key []byte, now time.Time) (*store.User, error) {
	bs, err := buckets(tx, idx, bucketUsers)
	if err != nil {
		return nil, err
	}
	id := bs[0].Get(key)
	if id == nil {
		return nil, nil
	}
	raw := bs[1].Get(id)
	if raw == nil {
		return nil, nil
	}
	var u store.User
	if json.Unmarshal(raw, &u) != nil || !u.PendingExpired(now) {
		return nil, nil // a record that does not decode is not expired
	}
	return &u, nil
}

// dropExpiredHolders deletes (dropUser) every user expired pending at now
// that holds the key of an e-mail or login claim.
func dropExpiredHolders(tx *bolt.Tx, claims []claim, now time.Time) error {
	for _, c := range claims {
		if c.field != "email" && c.field != "login" {
			continue
		}
		u, err := expiredHolder(tx, c.bucket, c.key, now)
		if err != nil {
			return err
		}
		if u != nil {
			if err := dropUser(tx, u); err != nil {
				return fmt.Errorf("drop expired user %s: %w", u.ID, err)
			}
		}
	}
	return nil
}

// dropUser deletes u: its record, the e-mail and login index entries that
// still point at it, and everything its refs name (tokens with their
// expiry entries, mails with their queue and parked entries), then the
// refs and its users_by_created entry. Tenants it founded stay; sessions
// are DeleteUser's (users.go).
func dropUser(tx *bolt.Tx, u *store.User) error {
	bs, err := buckets(tx, bucketUsers, bucketEmail, bucketLogin, bucketUserRefs, bucketTokens)
	if err != nil {
		return err
	}
	users, emails, logins, refs, tokens := bs[0], bs[1], bs[2], bs[3], bs[4]
	id := []byte(u.ID)
	for _, ix := range []struct {
		b   *bolt.Bucket
		key string
	}{{emails, u.EmailKey}, {logins, u.LoginKey}} {
		if ix.key != "" && bytes.Equal(ix.b.Get([]byte(ix.key)), id) {
			if err := ix.b.Delete([]byte(ix.key)); err != nil {
				return err
			}
		}
	}
	prefix := refKey(u.ID, "")
	var owned [][]byte
	c := refs.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		owned = append(owned, bytes.Clone(k))
	}
	for _, k := range owned {
		ref := string(k[len(prefix):])
		switch {
		case strings.HasPrefix(ref, "token:"):
			hash := []byte(strings.TrimPrefix(ref, "token:"))
			var tok store.Token
			if raw := tokens.Get(hash); raw != nil && json.Unmarshal(raw, &tok) == nil {
				if err := deleteToken(tx, hash, tok.ExpiresAt); err != nil {
					return err
				}
			} else if err := tokens.Delete(hash); err != nil {
				return err
			}
		case strings.HasPrefix(ref, "mail:"):
			if err := deleteMail(tx, []byte(strings.TrimPrefix(ref, "mail:"))); err != nil {
				return err
			}
		}
		if err := refs.Delete(k); err != nil {
			return err
		}
	}
	if err := tx.Bucket(bucketUsersByCreated).Delete(userIndexKey(u)); err != nil {
		return err
	}
	return users.Delete(id)
}
