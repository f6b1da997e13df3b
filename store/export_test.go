package store

import (
	"context"
	"log/slog"
	"time"
)

// Hooks for package store_test.

// ViewSize reports how many revocations f's view holds.
func ViewSize(f *Follower) int {
	v := f.view.Load()
	return len(v.sids) + len(v.idpSIDs) + len(v.subjects)
}

// FollowPruning is Follow with a chosen interval between sweeps of expired
// entries, so a test need not wait the production minute.
func FollowPruning(ctx context.Context, s Store, logger *slog.Logger, now func() time.Time, every time.Duration) *Follower {
	return follow(ctx, s, logger, now, every)
}

// WatchBuffer is how many revocations a memory watcher may fall behind.
const WatchBuffer = watchBuffer
