package consumer

import (
	"context"
	"sync"

	"github.com/esctl/esctl/eventstore"
)

// item is one delivery from the reader goroutine.
type item struct {
	d   eventstore.Delivery
	err error
}

// feed hands the reader goroutine's deliveries to the run's loop. The
// reader puts each one as it comes (no delivery waits for others to fill
// a batch); the loop takes every delivery waiting at once. A loop that
// keeps up with the reader is so woken once per batch rather than once
// per event: through a channel of single deliveries, channel locking and
// wake-ups took 8% of the reader goroutine's time, and the reader is what
// bounds a consumer with a fast handler.
type feed struct {
	mu     sync.Mutex
	items  []item        // waiting for the loop, in order
	spare  []item        // the loop's previous batch, emptied, for reuse
	closed bool          // the reader is done: no put follows
	ready  chan struct{} // items turned non-empty, or the feed closed
	room   chan struct{} // the loop took a batch: a full feed has room
}

func newFeed() *feed {
	return &feed{items: make([]item, 0, deliveryBuffer), ready: make(chan struct{}, 1), room: make(chan struct{}, 1)}
}

// signal leaves a wake-up in ch (capacity 1) unless one waits there.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// put queues it after the deliveries waiting; while deliveryBuffer of
// them wait, it waits for the loop to take them. False: ctx ended first.
func (f *feed) put(ctx context.Context, it item) bool {
	f.mu.Lock()
	for len(f.items) >= deliveryBuffer {
		f.mu.Unlock()
		select {
		case <-f.room:
		case <-ctx.Done():
			return false
		}
		f.mu.Lock()
	}
	f.items = append(f.items, it)
	first := len(f.items) == 1
	f.mu.Unlock()
	if first {
		signal(f.ready)
	}
	return true
}

// close tells the loop that no delivery follows those waiting.
func (f *feed) close() {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	signal(f.ready)
}

// take returns every delivery waiting, in order (after a ready signal),
// and false when the reader is done (none follows them). The loop hands
// the batch back with done once it handled it.
func (f *feed) take() (batch []item, open bool) {
	f.mu.Lock()
	batch, f.items, f.spare = f.items, f.spare[:0], nil
	open = !f.closed
	f.mu.Unlock()
	signal(f.room)
	return batch, open
}

// done takes back a batch that take returned, for reuse.
func (f *feed) done(batch []item) {
	clear(batch) // no event stays reachable from the spare
	f.mu.Lock()
	f.spare = batch[:0]
	f.mu.Unlock()
}
