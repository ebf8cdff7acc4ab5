package consumer

import (
	"context"
	"errors"
	"reflect"
	"time"

	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/internal/driver"
)

func typeOf(v any) reflect.Type {
	if v == nil {
		return reflect.TypeFor[any]()
	}
	return reflect.TypeOf(v)
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
		f := eventstore.Filter{Cursor: eventstore.CursorAt(pos), EventTypes: c.o.EventTypes, Payload: c.o.Payload, Metadata: c.o.Metadata, Limit: pageSize}
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
