package consumer

import (
	"context"
	"testing"
	"time"

	"github.com/esctl/esctl/eventstore"
	"github.com/stretchr/testify/require"
)

func feedItem(pos int64) item {
	return item{d: eventstore.Delivery{Cursor: eventstore.CursorAt(pos)}}
}

func positions(t *testing.T, batch []item) []int64 {
	t.Helper()
	out := make([]int64, len(batch))
	for i, it := range batch {
		p, err := it.d.Cursor.Position()
		require.NoError(t, err)
		out[i] = p
	}
	return out
}

// waitReady fails the test unless the feed signals within a second.
func waitReady(t *testing.T, f *feed) {
	t.Helper()
	select {
	case <-f.ready:
	case <-time.After(time.Second):
		t.Fatal("the feed did not signal ready")
	}
}

// TestFeed: deliveries reach the loop in order, in one batch when several
// wait; a full feed holds the reader until the loop takes a batch (or the
// context ends); close lets the loop take what waits, then says done.
func TestFeed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFeed()
	for p := int64(1); p <= 3; p++ {
		require.True(t, f.put(ctx, feedItem(p)))
	}
	waitReady(t, f)
	batch, open := f.take()
	require.True(t, open)
	require.Equal(t, []int64{1, 2, 3}, positions(t, batch))
	f.done(batch)
	select {
	case <-f.ready:
		t.Fatal("ready signalled with nothing waiting")
	default:
	}

	// Full: the next put waits for a take.
	for p := range int64(deliveryBuffer) {
		require.True(t, f.put(ctx, feedItem(10+p)))
	}
	put := make(chan bool)
	go func() { put <- f.put(ctx, feedItem(10+deliveryBuffer)) }()
	select {
	case <-put:
		t.Fatal("put returned on a full feed")
	case <-time.After(50 * time.Millisecond):
	}
	waitReady(t, f)
	batch, _ = f.take()
	require.Len(t, batch, deliveryBuffer)
	require.Equal(t, int64(10), positions(t, batch)[0])
	f.done(batch)
	require.True(t, <-put)
	waitReady(t, f)
	batch, open = f.take()
	require.True(t, open)
	require.Equal(t, []int64{10 + deliveryBuffer}, positions(t, batch))
	f.done(batch)

	// Full, and the context ends: put gives up.
	for p := range int64(deliveryBuffer) {
		require.True(t, f.put(ctx, feedItem(p+1)))
	}
	cctx, cancel := context.WithCancel(ctx)
	go func() { put <- f.put(cctx, feedItem(0)) }()
	cancel()
	require.False(t, <-put)

	// Closed: what waits is still taken, with open false.
	f.close()
	waitReady(t, f)
	batch, open = f.take()
	require.False(t, open)
	require.Len(t, batch, deliveryBuffer)
}
