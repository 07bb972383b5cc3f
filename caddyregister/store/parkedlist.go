package store

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ParkedMails is what operators need of the parked set (`caddy register
// mail list|retry`): a store that has it lists parked messages and reads
// one by id. A parked message is retried with RetryMail, which queues it
// again.
type ParkedMails interface {
	// ParkedMails returns up to limit parked messages, oldest parked
	// first, after cursor ("" from the start), and the cursor of the
	// next page ("" when none follows).
	ParkedMails(ctx context.Context, cursor string, limit int) ([]*Mail, string, error)
	// GetMail returns the message with id, queued or parked, or
	// ErrNotFound.
	GetMail(ctx context.Context, id string) (*Mail, error)
}

// MaxParkedPage bounds a page of ParkedMails.
const MaxParkedPage = 1000

// ParkedEntry is one member of a parked set: a message id and when it was
// parked (unix ms).
type ParkedEntry struct {
	ID string
	At int64
}

// PageParked sorts entries (oldest parked first, then by id) and returns
// the ids after cursor, up to limit, with the next page's cursor: the
// walk both backends share over the set they read whole (parked sets
// are an operator's backlog, not a hot path).
func PageParked(entries []ParkedEntry, cursor string, limit int) (ids []string, next string, err error) {
	if limit <= 0 || limit > MaxParkedPage {
		return nil, "", fmt.Errorf("parked mails: limit %d is not 1..%d", limit, MaxParkedPage)
	}
	var after ParkedEntry
	if cursor != "" {
		at, id, ok := strings.Cut(cursor, ".")
		n, perr := strconv.ParseInt(at, 10, 64)
		if !ok || perr != nil || id == "" {
			return nil, "", fmt.Errorf("parked mails: cursor %q is not one this store returned", cursor)
		}
		after = ParkedEntry{ID: id, At: n}
	}
	less := func(a, b ParkedEntry) int {
		if a.At != b.At {
			return int(min(max(a.At-b.At, -1), 1))
		}
		return strings.Compare(a.ID, b.ID)
	}
	slices.SortFunc(entries, less)
	start := 0
	if cursor != "" {
		start, _ = slices.BinarySearchFunc(entries, after, less)
		if start < len(entries) && less(entries[start], after) == 0 {
			start++
		}
	}
	end := min(start+limit, len(entries))
	for _, e := range entries[start:end] {
		ids = append(ids, e.ID)
	}
	if end < len(entries) && end > start {
		last := entries[end-1]
		next = strconv.FormatInt(last.At, 10) + "." + last.ID
	}
	return ids, next, nil
}
