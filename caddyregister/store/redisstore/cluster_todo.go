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

var _ store.Store = (*ClusterStore)(nil)
