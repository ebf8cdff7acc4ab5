package consumer

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/eventstore/driver"
)

func typeOf(v any) reflect.Type {
	if v == nil {
		return reflect.TypeFor[any]()
	}
	return reflect.TypeOf(v)
}

// lease is the local view of a held lease: handling stops at deadline
// (monotonic), which is never later than the lease's end on the engine's
// clock, because it counts from before the renewal was sent.
type lease struct {
	base     time.Time
	deadline atomic.Int64 // ns since base
	ttl      time.Duration
}

func newLease(ttl time.Duration, takenAt time.Time) *lease {
	l := &lease{base: takenAt, ttl: ttl}
	l.renewed(takenAt)
	return l
}

// renewed records a renewal sent at sent; a margin of a tenth of the TTL
// covers clock rate differences.
func (l *lease) renewed(sent time.Time) {
	l.deadline.Store(int64(sent.Sub(l.base) + l.ttl - l.ttl/10))
}

func (l *lease) valid() bool { return int64(time.Since(l.base)) < l.deadline.Load() }

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

// run is one leased run of a member.
type run struct {
	c      *Consumer
	member int
	lease  *lease
	ctx    context.Context // ends when the lease is lost or Run's ctx ends
	feed   *feed
	// handover closed: stop after the event in flight (errHandover).
	handover <-chan struct{}

	pos     int64 // last position handled or skipped
	saved   int64 // last checkpoint saved
	pending int   // deliveries since the last save
	since   time.Time

	end   int64     // the store's end as last read (Stats.End)
	endAt time.Time // when

	saver *saver // Func handlers: saves checkpoints in the background
	every int    // deliveries between two checkpoint saves

	// TxFunc: the open transaction and the events handled in it.
	tx   driver.ConsumerTx
	inTx []*eventstore.StoredEvent
}

// runLeased follows the store from position pos for member while the
// lease holds.
//
// After errLeaseExpired, resume is where a run that still holds the lease
// may go on: the last event handled (Func) or committed (TxFunc).
func (c *Consumer) runLeased(parent context.Context, member int, pos int64, handover <-chan struct{}) (resume int64, err error) {
	defer func() {
		if !errors.Is(err, errLeaseExpired) {
			resume = -1
		}
	}()
	takenAt := time.Now()
	lctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	l := newLease(c.o.LeaseTTL, takenAt)
	renewDone := make(chan struct{})
	go func() {
		defer close(renewDone)
		c.renew(lctx, member, l, cancel)
	}()
	defer func() { cancel(nil); <-renewDone }()

	fd := newFeed()
	r := &run{c: c, member: member, lease: l, ctx: lctx, feed: fd, handover: handover, pos: pos, saved: pos}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		defer fd.close()
		f := eventstore.Filter{Cursor: eventstore.CursorAt(pos), EventTypes: c.o.EventTypes, Limit: pageSize}
		for d, err := range c.s.Subscribe(lctx, f) {
			if !fd.put(lctx, item{d, err}) || err != nil {
				return
			}
		}
	}()
	defer func() { cancel(nil); <-readDone }()

	r.every = c.o.CheckpointEvery
	if c.h.txType() == nil {
		// Checkpoints of a Func handler are saved in the background, so
		// that the handler does not wait for each commit: a save is asked
		// for every half batch, and the handler waits only when the save
		// before the last one has not finished, so that at most
		// CheckpointEvery handled events are ever unsaved.
		r.saver = newSaver(r, cancel)
		r.every = max(c.o.CheckpointEvery/2, 1)
	}
	err = r.loop()
	r.saver.stop()
	r.saver = nil
	resumeAt := r.pos
	if r.tx != nil {
		resumeAt = r.saved // what the open transaction holds is rolled back
	}
	if cause := context.Cause(lctx); parent.Err() == nil && cause != nil && !errors.Is(cause, context.Canceled) {
		r.abortTx()
		return resumeAt, cause // errLeaseLost, or what stopped the saver
	}
	if parent.Err() != nil || errors.Is(err, errHandover) {
		// Stopping or handing over: save what was handled, under a
		// context of its own, while the lease holds (the fence); the
		// caller then releases the lease.
		sctx, scancel := context.WithTimeout(context.WithoutCancel(parent), stopTimeout)
		defer scancel()
		r.ctx = sctx
		var ferr error
		if r.tx != nil {
			ferr = r.commitTx(r.pos)
		} else {
			ferr = r.saveAt(r.pos)
		}
		if ferr != nil && !errors.Is(ferr, errLeaseLost) {
			c.o.Logger.Warn("consumer: final checkpoint failed", "consumer", c.name, "member", member, "err", ferr)
		}
		if parent.Err() != nil {
			return -1, nil
		}
		return -1, errHandover
	}
	r.abortTx()
	return resumeAt, err
}

// renew renews the lease every LeaseTTL/3 until ctx ends; it ends the run
// (errLeaseLost) when another instance holds the lease or when the local
// deadline passes without a renewal.
func (c *Consumer) renew(ctx context.Context, member int, l *lease, cancel context.CancelCauseFunc) {
	every := c.o.LeaseTTL / 3
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !l.valid() {
			cancel(errLeaseExpired)
			return
		}
		sent := time.Now()
		rctx, rcancel := context.WithTimeout(ctx, time.Until(l.base.Add(time.Duration(l.deadline.Load()))))
		lp := c.leaseParams(member)
		lp.Renew = true
		_, taken, err := c.d.TakeLease(rctx, lp)
		rcancel()
		switch {
		case err != nil:
			if ctx.Err() == nil {
				c.o.Logger.Warn("consumer: lease renewal failed", "consumer", c.name, "member", member, "err", err)
			}
		case !taken:
			cancel(fmt.Errorf("%w: the renewal was refused (another holder, or a reset)", errLeaseLost))
			return
		default:
			l.renewed(sent)
		}
	}
}

// loop handles deliveries until the run's context ends or an error.
func (r *run) loop() error {
	c := r.c
	tick := time.NewTicker(max(c.o.CheckpointInterval/4, time.Millisecond))
	defer tick.Stop()
	if err := r.replay(); err != nil {
		return err
	}
	lastReplay := time.Now()
	for {
		select {
		case <-r.ctx.Done():
			return r.ctx.Err()
		case <-r.handover:
			return errHandover
		case <-tick.C:
			if r.pending > 0 && time.Since(r.since) >= c.o.CheckpointInterval {
				if err := r.flush(); err != nil {
					return err
				}
			}
			if time.Since(lastReplay) >= c.o.CheckpointInterval {
				if err := r.replay(); err != nil {
					return err
				}
				lastReplay = time.Now()
			}
		case <-r.feed.ready:
			batch, open := r.feed.take()
			if err := r.deliverBatch(batch); err != nil {
				return err
			}
			r.feed.done(batch)
			if !open {
				return r.ctx.Err()
			}
		}
	}
}

// deliverBatch handles the deliveries of a batch the feed handed over, in
// order, saving checkpoints as they fall due; it stops at the first error
// (a delivery's, or the run's context ending).
func (r *run) deliverBatch(batch []item) error {
	for i := range batch {
		it := &batch[i]
		if it.err != nil {
			return it.err
		}
		if err := r.ctx.Err(); err != nil {
			return err
		}
		select {
		case <-r.handover:
			return errHandover
		default:
		}
		if err := r.deliver(&it.d); err != nil {
			return err
		}
		if r.pending >= r.every {
			if err := r.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// deliver handles one delivery (or skips it: another member's event, a
// progress step) and moves the position.
func (r *run) deliver(d *eventstore.Delivery) error {
	var pos int64
	if e := d.Event; e != nil {
		pos = e.Position
		if Owner(e.AggregateID, r.c.o.Members) == r.member {
			if !r.lease.valid() {
				return errLeaseExpired
			}
			if err := r.handle(e); err != nil {
				return err
			}
		}
	} else {
		p, err := d.Cursor.Position()
		if err != nil {
			return err
		}
		pos = p
	}
	if r.pending == 0 {
		r.since = time.Now()
	}
	r.pos = pos
	r.pending++
	return nil
}

// handle hands e to the handler with the retry policy; after the last
// attempt fails the event is parked. It returns an error only when the run
// must end (ctx, the store).
func (r *run) handle(e *eventstore.StoredEvent) error {
	c := r.c
	if c.h.txType() != nil {
		return r.handleTx(e)
	}
	backoff := c.o.RetryMin
	for attempt := 1; ; attempt++ {
		err := safeCall(r.ctx, c.h, nil, e)
		if err == nil {
			c.handled.Add(1)
			return nil
		}
		if r.ctx.Err() != nil {
			return r.ctx.Err() // stopping: the event stays unhandled
		}
		if attempt >= c.o.MaxAttempts {
			return r.park(nil, e, err, attempt)
		}
		c.o.Logger.Warn("consumer: handler failed; retrying", "consumer", c.name, "position", e.Position, "attempt", attempt, "err", err, "in", backoff)
		if !sleep(r.ctx, backoff) {
			return r.ctx.Err()
		}
		backoff = min(2*backoff, c.o.RetryMax)
	}
}

// park records e as parked (in tx when one is given) before the position
// can move past it.
func (r *run) park(tx driver.ConsumerTx, e *eventstore.StoredEvent, herr error, attempts int) error {
	c := r.c
	p := &driver.ParkedEvent{Name: c.name, Position: e.Position, AggregateID: e.AggregateID, Error: errorText(herr), Attempts: attempts, ParkedAt: nowMillis()}
	c.o.Logger.Warn("consumer: event parked", "consumer", c.name, "position", e.Position, "attempts", attempts, "err", herr)
	var err error
	if tx != nil {
		err = tx.ParkEvent(r.ctx, p)
	} else {
		err = c.retry(r.ctx, "park an event", func() error { return c.d.ParkEvent(r.ctx, p) })
	}
	if err == nil {
		c.update(func(st *Stats) { st.Parked++ })
	}
	return err
}

// errorText is a handler error as stored with a parked event.
func errorText(err error) string {
	const max = 4_000
	s := err.Error()
	if len(s) > max {
		s = s[:max] + "..."
	}
	return s
}

// handleTx hands e to a TxFunc handler in the open transaction (opened
// if none). When the handler fails, the transaction is rolled back, its
// earlier events are handled again in a new one and committed, and e is
// retried alone.
func (r *run) handleTx(e *eventstore.StoredEvent) error {
	if err := r.openTx(); err != nil {
		return err
	}
	herr := safeCall(r.ctx, r.c.h, r.tx.Raw(), e)
	if herr == nil {
		r.inTx = append(r.inTx, e)
		return nil
	}
	if r.ctx.Err() != nil {
		return r.ctx.Err()
	}
	// r.pos is the position before e (deliver moves it past e only once
	// e is handled): what the batch's earlier events may commit.
	redo, upTo := r.inTx, r.pos
	r.abortTx()
	if len(redo) > 0 {
		if err := r.redo(redo, upTo); err != nil {
			return err
		}
	}
	return r.handleAlone(e, herr)
}

func (r *run) openTx() error {
	if r.tx != nil {
		return nil
	}
	tx, err := r.c.d.BeginConsumerTx(r.ctx)
	if err != nil {
		return err
	}
	r.tx, r.inTx = tx, r.inTx[:0]
	return nil
}

// abortTx rolls the open transaction back, if any.
func (r *run) abortTx() {
	if r.tx == nil {
		return
	}
	_ = r.tx.Rollback(context.WithoutCancel(r.ctx))
	r.tx, r.inTx = nil, nil
}

// commitTx saves the checkpoint pos in the open transaction and commits.
func (r *run) commitTx(pos int64) error {
	c := r.c
	saved, err := r.tx.SaveCheckpoint(r.ctx, r.checkpoint(pos))
	if err == nil && !saved {
		err = fmt.Errorf("%w: the checkpoint save was fenced off", errLeaseLost)
	}
	if err != nil {
		r.abortTx()
		return err
	}
	err = r.tx.Commit(r.ctx)
	n := int64(len(r.inTx))
	r.tx, r.inTx = nil, nil
	if err != nil {
		return fmt.Errorf("consumer %q: commit the handler's transaction at position %d: %w", c.name, pos, err)
	}
	c.handled.Add(n)
	r.saved = pos
	return nil
}

// redo handles events that succeeded in a rolled-back transaction again,
// in one new transaction committed at upTo; if one fails now, each is
// handled alone.
func (r *run) redo(events []*eventstore.StoredEvent, upTo int64) error {
	if err := r.openTx(); err != nil {
		return err
	}
	for i, e := range events {
		if herr := safeCall(r.ctx, r.c.h, r.tx.Raw(), e); herr != nil {
			if r.ctx.Err() != nil {
				return r.ctx.Err()
			}
			r.abortTx()
			for _, e := range events[i:] {
				if err := r.handleAlone(e, herr); err != nil {
					return err
				}
				herr = nil
			}
			return r.saveAt(upTo)
		}
		r.inTx = append(r.inTx, e)
	}
	return r.commitTx(upTo)
}

// saveAt moves the checkpoint to pos outside a transaction.
func (r *run) saveAt(pos int64) error {
	if pos <= r.saved {
		return nil
	}
	saved, err := r.c.d.SaveCheckpoint(r.ctx, r.checkpoint(pos))
	if err == nil && !saved {
		err = fmt.Errorf("%w: the checkpoint save was fenced off", errLeaseLost)
	}
	if err == nil {
		r.saved = pos
	}
	return err
}

// handleAlone handles e in transactions of its own, committed with the
// checkpoint at e's position, retried with backoff; after the last attempt
// e is parked in the transaction that moves the checkpoint past it. herr,
// when not nil, is the failure of a first attempt already made.
func (r *run) handleAlone(e *eventstore.StoredEvent, herr error) error {
	c := r.c
	backoff := c.o.RetryMin
	attempt := 0
	if herr != nil {
		attempt = 1
	}
	for {
		if attempt >= c.o.MaxAttempts {
			if err := r.openTx(); err != nil {
				return err
			}
			if err := r.park(r.tx, e, herr, attempt); err != nil {
				r.abortTx()
				return err
			}
			return r.commitTx(e.Position)
		}
		if attempt > 0 {
			c.o.Logger.Warn("consumer: handler failed; retrying", "consumer", c.name, "position", e.Position, "attempt", attempt, "err", herr, "in", backoff)
			if !sleep(r.ctx, backoff) {
				return r.ctx.Err()
			}
			backoff = min(2*backoff, c.o.RetryMax)
		}
		attempt++
		if err := r.openTx(); err != nil {
			return err
		}
		herr = safeCall(r.ctx, c.h, r.tx.Raw(), e)
		if herr == nil {
			r.inTx = append(r.inTx, e)
			return r.commitTx(e.Position)
		}
		if r.ctx.Err() != nil {
			return r.ctx.Err()
		}
		r.abortTx()
	}
}

func (r *run) checkpoint(pos int64) *driver.CheckpointParams {
	return &driver.CheckpointParams{Name: r.c.name, Member: r.member, Holder: r.c.o.Instance, Position: pos, Now: nowMillis()}
}

// flush saves the checkpoint at the position reached: in the background
// for a Func handler (the latest position wins), at once for a TxFunc
// handler, whose open transaction commits with it.
func (r *run) flush() error {
	if r.pending == 0 && r.tx == nil {
		return nil
	}
	if r.saver != nil {
		if r.saver.want(r.ctx, r.pos, r.pending >= r.every) {
			r.pending = 0
		}
		return r.ctx.Err()
	}
	r.pending = 0
	var err error
	if r.tx != nil {
		err = r.commitTx(r.pos)
	} else {
		err = r.saveAt(r.pos)
	}
	if err != nil {
		return err
	}
	r.saved = r.pos
	r.afterSave()
	return nil
}

// endEvery is how often the statistics read the store's end.
const endEvery = time.Second

// afterSave updates the statistics after a checkpoint was saved.
func (r *run) afterSave() {
	c := r.c
	now := time.Now()
	handled := c.handled.Load()
	// The store's end, for the lag, at most once per endEvery: a read per
	// save would double the saver's round trips (measured: the consumer
	// row fell to 0.65x of LoadEvents on PostgreSQL).
	if now.Sub(r.endAt) >= endEvery {
		if st, err := c.d.ReadState(r.ctx); err == nil {
			r.end, r.endAt = st.LastPosition, now
		}
	}
	saved, end, member := r.saved, max(r.end, r.saved), r.member
	c.update(func(st *Stats) {
		if p := c.running[member]; p != nil {
			p.pos, p.saved = max(p.pos, saved), saved
		}
		if d := now.Sub(c.lastSave); d >= 100*time.Millisecond {
			// Handled events per second, for the whole instance.
			st.Rate = float64(handled-c.lastRate) / d.Seconds()
			c.lastSave, c.lastRate = now, handled
		}
		st.End = max(st.End, end)
		st.Position, st.Checkpoint = max(st.Position, saved), saved // kept once no member runs
		st.Lag = max(st.End-saved, 0)
	})
	if c.o.CheckpointFunc != nil {
		c.o.CheckpointFunc(c.Stats())
	}
}

// saver saves a Func handler's checkpoints in the background: the handler
// loop hands it positions it handled (the latest wins); an error it cannot
// wait out (a lost lease: the save was fenced) ends the run.
type saver struct {
	r    *run
	ch   chan int64
	done chan struct{}
}

func newSaver(r *run, cancel context.CancelCauseFunc) *saver {
	s := &saver{r: r, ch: make(chan int64), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		c := r.c
		for pos := range s.ch {
			err := c.retry(r.ctx, "save the checkpoint", func() error { return r.saveAt(pos) })
			if err != nil {
				if r.ctx.Err() == nil {
					cancel(err)
				}
				return
			}
			r.afterSave()
		}
	}()
	return s
}

// want hands pos to the saver (an unbuffered channel: it takes pos when
// its previous save is done). While that save runs, wait (a full half
// batch: the handler must not run further ahead) or, for a time-based
// save, skip it (false).
func (s *saver) want(ctx context.Context, pos int64, wait bool) bool {
	if !wait {
		select {
		case s.ch <- pos:
			return true
		default:
			return false
		}
	}
	select {
	case s.ch <- pos:
		return true
	case <-ctx.Done():
		return false
	}
}

// stop waits for the saver to end; a save in progress finishes (or fails
// with the run's context).
func (s *saver) stop() {
	if s == nil {
		return
	}
	close(s.ch)
	<-s.done
}

// replay handles the parked events of the member that a replay request
// flagged. A replay never moves the checkpoint: an event handled again
// leaves the parked table; one that fails again stays, unflagged, with
// its new error.
func (r *run) replay() error {
	c := r.c
	list, err := c.d.ListParked(r.ctx, &driver.ListParkedParams{Name: c.name, ReplayOnly: true})
	if err != nil || len(list) == 0 {
		if transient(err) {
			return nil // the next tick tries again
		}
		return err
	}
	if err := r.flush(); err != nil { // no transaction of the run stays open
		return err
	}
	for _, p := range list {
		if Owner(p.AggregateID, c.o.Members) != r.member {
			continue
		}
		if err := r.replayOne(&p); err != nil {
			return err
		}
	}
	return nil
}

func (r *run) replayOne(p *driver.ParkedEvent) error {
	c := r.c
	page, err := c.s.LoadEvents(r.ctx, eventstore.Filter{Cursor: eventstore.CursorAt(p.Position - 1), Limit: 1})
	if err != nil {
		return err
	}
	if len(page.Events) == 0 || page.Events[0].Position != p.Position {
		// The event is gone (the store was replaced): nothing to replay.
		_, err := c.d.UnparkEvent(r.ctx, c.name, p.Position)
		return err
	}
	e := &page.Events[0]
	backoff := c.o.RetryMin
	var herr error
	for attempt := 1; attempt <= c.o.MaxAttempts; attempt++ {
		if attempt > 1 && !sleep(r.ctx, backoff) {
			return r.ctx.Err()
		}
		backoff = min(2*backoff, c.o.RetryMax)
		if c.h.txType() == nil {
			if herr = safeCall(r.ctx, c.h, nil, e); herr == nil {
				_, err := c.d.UnparkEvent(r.ctx, c.name, p.Position)
				return r.replayed(err)
			}
		} else {
			tx, err := c.d.BeginConsumerTx(r.ctx)
			if err != nil {
				return err
			}
			if herr = safeCall(r.ctx, c.h, tx.Raw(), e); herr == nil {
				if _, err := tx.UnparkEvent(r.ctx, c.name, p.Position); err != nil {
					_ = tx.Rollback(r.ctx)
					return err
				}
				return r.replayed(tx.Commit(r.ctx))
			}
			_ = tx.Rollback(r.ctx)
		}
		if r.ctx.Err() != nil {
			return r.ctx.Err()
		}
	}
	c.o.Logger.Warn("consumer: replayed event failed again; it stays parked", "consumer", c.name, "position", p.Position, "err", herr)
	return c.d.ParkEvent(r.ctx, &driver.ParkedEvent{Name: c.name, Position: p.Position, AggregateID: p.AggregateID, Error: errorText(herr), Attempts: c.o.MaxAttempts, ParkedAt: nowMillis()})
}

func (r *run) replayed(err error) error {
	if err == nil {
		r.c.update(func(st *Stats) { st.Replayed++ })
	}
	return err
}
