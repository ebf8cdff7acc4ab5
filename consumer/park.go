package consumer

import (
	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/internal/driver"
)

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
