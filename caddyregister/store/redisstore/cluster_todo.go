package redisstore

import (
	"context"
	"fmt"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// The operations below wait for the sharded outbox and the sharded user
// index (docs/cluster-layout.md): until then they fail with
// errClusterTodo, and Open keeps refusing a cluster URL.

// ClaimMail implements store.Store (not yet on the cluster layout).
func (s *ClusterStore) ClaimMail(ctx context.Context, now time.Time, lease time.Duration) (*store.Mail, error) {
	return nil, fmt.Errorf("claim mail: %w", errClusterTodo)
}

// AckMail implements store.Store (not yet on the cluster layout).
func (s *ClusterStore) AckMail(ctx context.Context, id string) error {
	return fmt.Errorf("ack mail: %w", errClusterTodo)
}

// RetryMail implements store.Store (not yet on the cluster layout).
func (s *ClusterStore) RetryMail(ctx context.Context, m *store.Mail) error {
	return fmt.Errorf("retry mail: %w", errClusterTodo)
}

// ParkMail implements store.Store (not yet on the cluster layout).
func (s *ClusterStore) ParkMail(ctx context.Context, m *store.Mail) error {
	return fmt.Errorf("park mail: %w", errClusterTodo)
}

// MailCounts implements store.Store (not yet on the cluster layout).
func (s *ClusterStore) MailCounts(ctx context.Context) (queued, parked int, err error) {
	return 0, 0, fmt.Errorf("mail counts: %w", errClusterTodo)
}

// DropParkedBodies implements store.Store (not yet on the cluster layout).
func (s *ClusterStore) DropParkedBodies(ctx context.Context, now time.Time, limit int) (int, error) {
	return 0, fmt.Errorf("drop parked bodies: %w", errClusterTodo)
}

// ReissueLink implements store.Store (not yet on the cluster layout).
func (s *ClusterStore) ReissueLink(ctx context.Context, r store.LinkReissue) (*store.User, error) {
	return nil, fmt.Errorf("reissue link: %w", errClusterTodo)
}

// DeleteUser implements store.Store (not yet on the cluster layout).
func (s *ClusterStore) DeleteUser(ctx context.Context, id string, outbox ...*store.Mail) (*store.User, []string, error) {
	return nil, nil, fmt.Errorf("delete user: %w", errClusterTodo)
}

// ListUsers implements store.Store (not yet on the cluster layout).
func (s *ClusterStore) ListUsers(ctx context.Context, f store.UserFilter) (*store.UserPage, error) {
	return nil, fmt.Errorf("list users: %w", errClusterTodo)
}

// BackfillUserIndex implements store.Store (not yet on the cluster layout).
func (s *ClusterStore) BackfillUserIndex(ctx context.Context) (int, error) {
	return 0, fmt.Errorf("backfill user index: %w", errClusterTodo)
}

var _ store.Store = (*ClusterStore)(nil)
