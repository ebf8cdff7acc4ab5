package eventstore

import (
	"context"
	"errors"
	"iter"
	"sync"
	"time"

	"github.com/esctl/esctl/estype"
	"github.com/esctl/esctl/internal/driver"
)

// Subscription defaults.
const (
	// DefaultPollInterval is the longest a subscription at the end of the
	// store waits between two reads when no wake-up arrives.
	DefaultPollInterval = time.Second
	// minPollInterval is where an idle tail's waits start, doubling up to
	// the poll interval while nothing is appended.
	minPollInterval = 10 * time.Millisecond
	// tailBatchEvents is the most events the shared tail reader reads at once.
	tailBatchEvents = 1_000
	// retryMin and retryMax bound the backoff of a subscription's reads
	// while the database is unreachable.
	retryMin = 100 * time.Millisecond
	retryMax = 5 * time.Second
	// subscriberBuffer is how many tail batches a subscriber may have
	// waiting before it is dropped from the tail (it then reads on its own
	// until it catches up): a slow subscriber never holds up the others.
	subscriberBuffer = 64
)

// Delivery is one step of a subscription: an event, or progress.
type Delivery struct {
	// Event is the next event that matches the subscription's filter, in
	// position order, exactly as LoadEvents returns it; nil for a
	// progress step: the store's end moved to Cursor and no event up to it
	// matched since the previous step.
	Event *StoredEvent
	// Cursor resumes the subscription (or LoadEvents) right after this
	// step. Keep it as the checkpoint.
	Cursor Cursor
}

// Subscribe returns the events matching f from f.Cursor on, then follows
// the store: each event appended afterwards (by this process or any other)
// is delivered once, in position order, as it commits. f uses Cursor,
// AggregateIDs, EventTypes, Payload and Metadata (time ranges are refused;
// the content filters are decided by the database, also at the end of
// the store, where each new batch is read again with them) and Limit as the
// page size of catch-up reads (0: DefaultPageSize). A filter that matches
// nothing for a while still moves the cursor: progress steps (Event nil)
// carry the store's end, so a checkpoint kept from Delivery.Cursor moves
// too.
//
// The iteration runs until ctx ends or the loop body breaks. A database
// that cannot be reached (ErrUnavailable, ErrTimeout: a restart, a
// failover) is waited for, reads retried with backoff up to 5 s apart, and
// the subscription resumes from its cursor; any other error (ctx's
// included) is yielded once and ends it. A cursor beyond the store's end
// is *CursorBeyondEndError, as for LoadEvents.
//
// Subscribe keeps no state: the caller keeps the cursor. For durable
// consumers (a checkpoint the store keeps, one running instance across a
// fleet, groups, retries and parked events) use package
// github.com/esctl/esctl/consumer, which is built on Subscribe.
//
// How it follows: the store's own appends wake its subscriptions at once;
// other processes' commits wake them through the engine (PostgreSQL: a
// LISTEN connection of the Store; SQLite: PRAGMA data_version read every
// few milliseconds on a connection of the Store); polling, backing off to Options.PollInterval, is the truth
// behind both (a lost wake-up costs at most one interval). Subscriptions
// at the end of the store share one reader; one that falls behind reads on
// its own until it catches up, never holding up the others or the writers.
func (s *Store) Subscribe(ctx context.Context, f Filter) iter.Seq2[Delivery, error] {
	return func(yield func(Delivery, error) bool) {
		if f.byTime() {
			yield(Delivery{}, &InvalidFilterError{Field: "startTime", Reason: "a subscription reads by cursor: startTime and finishTime are not allowed"})
			return
		}
		pos, err := f.validate(false)
		if err != nil {
			yield(Delivery{}, err)
			return
		}
		sub := &subscriber{pos: pos, f: f}
		if f.Limit == 0 {
			sub.f.Limit = DefaultPageSize
		}
		for first := true; ; first = false {
			if err := s.catchUp(ctx, sub, first, yield); err != nil {
				if !errors.Is(err, errStopped) {
					yield(Delivery{}, err)
				}
				return
			}
			ch, ok, err := s.joinTail(sub)
			if err != nil {
				yield(Delivery{}, err)
				return
			}
			if !ok {
				continue // the tail is ahead: read on
			}
			err = s.follow(ctx, sub, ch, yield)
			s.leaveTail(sub)
			switch {
			case errors.Is(err, errStopped):
				return
			case err != nil:
				yield(Delivery{}, err)
				return
			}
			// Dropped by the tail (too slow, or the tail failed): read on
			// from the cursor.
		}
	}
}

// errStopped: the loop body broke out of the iteration.
var errStopped = errors.New("eventstore: subscription stopped")

// subscriber is one Subscribe iteration.
type subscriber struct {
	f   Filter
	pos int64 // the last position delivered (event or progress)
}

// matches reports whether e passes the subscriber's filter.
func (sub *subscriber) matches(e *estype.StoredEvent) bool {
	if sub.f.AggregateIDs != nil && !contains(sub.f.AggregateIDs, e.AggregateID) {
		return false
	}
	return sub.f.EventTypes == nil || contains(sub.f.EventTypes, e.Type)
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// deliver yields the events of a batch after sub.pos, then progress up to
// upTo; errStopped when the loop body broke out.
func (sub *subscriber) deliver(events []estype.StoredEvent, upTo int64, filtered bool, yield func(Delivery, error) bool) error {
	for i := range events {
		e := &events[i]
		if e.Position <= sub.pos || (!filtered && !sub.matches(e)) {
			continue
		}
		se := *e
		sub.pos = e.Position
		if !yield(Delivery{Event: &se, Cursor: CursorAt(e.Position)}, nil) {
			return errStopped
		}
	}
	if upTo > sub.pos {
		sub.pos = upTo
		if !yield(Delivery{Cursor: CursorAt(upTo)}, nil) {
			return errStopped
		}
	}
	return nil
}

// catchUp reads pages with the subscriber's filter until one is short: the
// subscriber is then at the store's end as of that read. A read that fails
// because the database is unreachable or a lock timed out (ErrUnavailable,
// ErrTimeout: a restart, a failover, a broken connection) is retried with
// backoff, from the same cursor: the subscription outlives it.
func (s *Store) catchUp(ctx context.Context, sub *subscriber, first bool, yield func(Delivery, error) bool) error {
	backoff := retryMin
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := sub.f.listParams(sub.pos)
		filtered := !sub.f.matchesNothing()
		if !filtered {
			// Nothing can match: one probe for the store's last position
			// moves the cursor (no page of events read to be dropped).
			p.AggregateIDs, p.EventTypes, p.Limit = nil, nil, 1
		}
		res, err := s.listPage(ctx, p)
		if errors.Is(err, ErrUnavailable) || errors.Is(err, ErrTimeout) {
			s.opts.Logger.Warn("eventstore: subscription read failed; retrying", "err", err, "in", backoff)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, retryMax)
			continue
		}
		if err != nil {
			return err
		}
		backoff = retryMin
		if first && sub.pos > res.LastPosition {
			if err := s.beyondEnd(ctx, sub.pos, res.LastPosition); err != nil {
				return err
			}
			return nil // a replica behind the cursor: the tail waits for it
		}
		first = false
		if !filtered {
			res.Events = nil
		}
		short := len(res.Events) < p.Limit
		upTo := int64(0)
		if short {
			upTo = res.LastPosition // every position up to it is visible
		}
		if err := sub.deliver(res.Events, upTo, true, yield); err != nil {
			return err
		}
		if short {
			return nil
		}
	}
}

// follow delivers the tail's batches until ctx ends, the loop body breaks,
// or the tail drops the subscriber (nil).
func (s *Store) follow(ctx context.Context, sub *subscriber, ch <-chan tailBatch, yield func(Delivery, error) bool) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case b, ok := <-ch:
			if !ok {
				return nil
			}
			if sub.f.selectsContent() {
				// The database decides containment: read the new
				// events with the filter (an index range of them).
				if err := s.catchUp(ctx, sub, false, yield); err != nil {
					return err
				}
				continue
			}
			if err := sub.deliver(b.events, b.upTo, false, yield); err != nil {
				return err
			}
		}
	}
}

// tailBatch is what the tail reader read: events after the previous batch,
// every position up to upTo visible.
type tailBatch struct {
	events []estype.StoredEvent
	upTo   int64
}

// tail is the Store's shared reader of the end of the store: it reads what
// is appended, unfiltered, once, and hands it to every subscriber at the
// end, which filters it. A run lasts while it has subscribers; the next
// subscriber starts a new one.
type tail struct {
	mu  sync.Mutex
	run *tailRun // nil: no reader runs
}

// tailRun is one run of the tail reader.
type tailRun struct {
	pos    int64 // read and handed out up to here
	subs   map[*subscriber]chan tailBatch
	cancel context.CancelFunc
}

// joinTail puts sub on the tail when sub is not behind it; ok is false
// when the tail has handed out events sub has not read yet.
func (s *Store) joinTail(sub *subscriber) (<-chan tailBatch, bool, error) {
	if err := s.c.Enter(); err != nil {
		return nil, false, err
	}
	defer s.c.Exit()
	t := &s.tail
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.run == nil {
		ctx, cancel := context.WithCancel(context.Background())
		t.run = &tailRun{pos: sub.pos, subs: map[*subscriber]chan tailBatch{}, cancel: cancel}
		s.startWakeups()
		go s.readTail(ctx, t.run)
	}
	if sub.pos < t.run.pos {
		return nil, false, nil
	}
	ch := make(chan tailBatch, subscriberBuffer)
	t.run.subs[sub] = ch
	return ch, true, nil
}

// leaveTail takes sub off the tail; the last one out stops the reader.
func (s *Store) leaveTail(sub *subscriber) {
	t := &s.tail
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.run
	if r == nil {
		return
	}
	delete(r.subs, sub)
	if len(r.subs) == 0 {
		r.cancel()
		t.run = nil
	}
}

// readTail reads the end of the store whenever woken, and at the latest
// after a poll interval that doubles while nothing is appended.
func (s *Store) readTail(ctx context.Context, r *tailRun) {
	t := &s.tail
	wait := minPollInterval
	for {
		woken := s.wake.wait() // taken before the read: a wake-up during it is not lost
		t.mu.Lock()
		after := r.pos
		t.mu.Unlock()
		res, err := s.c.R.ListEvents(ctx, &driver.ListEventsParams{After: after, AfterTimestamp: -1, Limit: tailBatchEvents})
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			// The subscribers read on their own, and meet the error
			// themselves (or not, if it passes).
			s.opts.Logger.Warn("eventstore: subscription reader failed; subscribers read on their own", "err", err)
			s.dropTail(r)
			return
		}
		full := len(res.Events) == tailBatchEvents
		upTo := res.LastPosition // every position up to it is visible...
		if n := len(res.Events); full {
			upTo = res.Events[n-1].Position // ...but not all of them read
		} else if n > 0 {
			upTo = max(upTo, res.Events[n-1].Position)
		}
		if upTo > after {
			s.handOut(r, tailBatch{events: res.Events, upTo: upTo})
			wait = minPollInterval
			if full {
				continue // more to read now
			}
		} else {
			wait = min(2*wait, s.opts.PollInterval)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-woken:
			wait = minPollInterval
		case <-timer.C:
		}
		timer.Stop()
	}
}

// handOut gives a batch to every subscriber of the run; one whose buffer
// is full is dropped (it reads on its own from its cursor).
func (s *Store) handOut(r *tailRun, b tailBatch) {
	t := &s.tail
	t.mu.Lock()
	defer t.mu.Unlock()
	for sub, ch := range r.subs {
		select {
		case ch <- b:
		default:
			delete(r.subs, sub)
			close(ch)
		}
	}
	r.pos = b.upTo
}

// dropTail drops every subscriber of the run (nil: the current one) and
// stops its reader.
func (s *Store) dropTail(r *tailRun) {
	t := &s.tail
	t.mu.Lock()
	defer t.mu.Unlock()
	if r == nil {
		r = t.run
	}
	if r == nil {
		return
	}
	for sub, ch := range r.subs {
		delete(r.subs, sub)
		close(ch)
	}
	r.cancel()
	if t.run == r {
		t.run = nil
	}
}

// notifier wakes whoever waits on it: wait returns a channel that the next
// notify closes.
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

func newNotifier() *notifier { return &notifier{ch: make(chan struct{})} }

func (n *notifier) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ch
}

func (n *notifier) notify() {
	n.mu.Lock()
	close(n.ch)
	n.ch = make(chan struct{})
	n.mu.Unlock()
}

// startWakeups starts, once per Store, the engine's cross-process
// wake-ups (driver.Listener) unless Options.PollOnly. Called with the
// tail's lock held.
func (s *Store) startWakeups() {
	s.listenOnce.Do(func() {
		l, ok := s.c.R.(driver.Listener)
		if !ok || s.opts.PollOnly {
			return
		}
		ctx, cancel := context.WithCancel(context.Background())
		s.stopListen = cancel
		go func() {
			err := l.Listen(ctx, s.wake.notify)
			if err != nil && ctx.Err() == nil {
				s.opts.Logger.Warn("eventstore: no wake-ups from other processes; subscriptions poll", "err", err)
			}
		}()
	})
}
