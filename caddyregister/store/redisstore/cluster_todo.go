package redisstore

import (
	"context"
	"fmt"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// The operations below wait for the sharded outbox and the sharded user
// index (docs/cluster-layout.md): until then they fail with
// errClusterTodo, and Open keeps refusing a cluster URL.

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
