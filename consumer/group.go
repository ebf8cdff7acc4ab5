package consumer

import (
	"context"
	"errors"
	"slices"
	"sort"
	"time"

	"github.com/esctl/esctl/internal/driver"
)

// errHandover ends a member's run that this instance hands over: the run
// finishes the event in flight, saves its checkpoint and releases the
// lease.
var errHandover = errors.New("consumer: member handed over")

// memberRun is a member this instance runs.
type memberRun struct {
	handover chan struct{} // closed: hand the member over
	leaving  bool          // handover asked
}

// memberExit is how a member's run ended.
type memberExit struct {
	member int
	err    error // nil: stopped, handed over, lost or transient (taken again later)
}

// Run handles the consumer's events until ctx ends; it then saves the
// checkpoints, releases its leases and returns nil. It first records the
// consumer if the store has no record of it. With Options.Pin it runs the
// members pinned, each as soon as its lease is free; otherwise it takes its
// share of the group's members (see Options.Pin) every LeaseTTL/4: the
// members no live instance holds, and those that instances holding more
// than their share hand over (after the event in flight and its
// checkpoint). Each member follows the store from its checkpoint. A lost
// lease is taken again when free; a database that cannot be reached is
// waited for. Other errors end it: a *GroupSizeError, a *TxTypeError, a
// checkpoint beyond the store's end (*eventstore.CursorBeyondEndError: the
// store was replaced; reset the consumer), or the store's errors.
func (c *Consumer) Run(ctx context.Context) error {
	if err := c.prepare(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	gctx, cancel := context.WithCancel(ctx)
	defer cancel()
	runs := map[int]*memberRun{}
	exits := make(chan memberExit)
	var fatal error
	stop := func() error {
		cancel()
		for len(runs) > 0 {
			ex := <-exits
			delete(runs, ex.member)
			if fatal == nil && ex.err != nil {
				fatal = ex.err
			}
		}
		if c.o.Pin == nil {
			lctx, lcancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
			_ = c.d.LeaveGroup(lctx, &driver.InstanceParams{Name: c.name, Holder: c.o.Instance, Now: nowMillis()})
			lcancel()
		}
		if ctx.Err() != nil {
			return nil
		}
		return fatal
	}
	start := func(m int, row *driver.ConsumerRow) {
		mr := &memberRun{handover: make(chan struct{})}
		runs[m] = mr
		c.update(func(*Stats) { c.running[m] = &memberPos{pos: row.Position, saved: row.Position} })
		c.o.Logger.Info("consumer: lease taken", "consumer", c.name, "member", m, "checkpoint", row.Position)
		go func() {
			err := c.runMember(gctx, m, row.Position, mr.handover)
			c.update(func(*Stats) { delete(c.running, m) })
			exits <- memberExit{m, err}
		}()
	}
	t := time.NewTicker(c.o.LeaseTTL / 4)
	defer t.Stop()
	for {
		if err := c.step(gctx, runs, start); err != nil {
			fatal = err
			return stop()
		}
		select {
		case <-ctx.Done():
			return stop()
		case ex := <-exits:
			delete(runs, ex.member)
			if ex.err != nil {
				fatal = ex.err
				return stop()
			}
		case <-t.C:
		}
	}
}

// step takes and hands over members once: the pinned ones, or this
// instance's share.
func (c *Consumer) step(ctx context.Context, runs map[int]*memberRun, start func(int, *driver.ConsumerRow)) error {
	var want []int // members to try to take, in order
	if c.o.Pin != nil {
		for _, m := range c.o.Pin {
			if runs[m] == nil {
				want = append(want, m)
			}
		}
	} else {
		var err error
		if want, err = c.balance(ctx, runs); err != nil {
			return err
		}
	}
	for _, m := range want {
		var row *driver.ConsumerRow
		var taken bool
		err := c.retry(ctx, "take the lease", func() (err error) {
			row, taken, err = c.d.TakeLease(ctx, c.leaseParams(m))
			return err
		})
		switch {
		case err != nil:
			return err
		case row == nil:
			// Deleted or resized meanwhile: record it again.
			return c.prepare(ctx)
		case row.Members != c.o.Members:
			return &GroupSizeError{Name: c.name, Recorded: row.Members, Given: c.o.Members}
		case taken:
			start(m, row)
		}
	}
	return nil
}

// balance renews this instance's heartbeat, hands over the members it
// holds beyond its share, and returns the free members it should take.
//
// With A members not held by instances outside the balance (pinned ones,
// or instances whose heartbeat ran out while their lease lives) and I live
// instances, the shares are q = A/I or q+1, and at most r = A%I instances
// hold q+1: an instance holding more than q+1 hands over down to q+1; of
// the instances holding q+1 or more, the first r by name keep q+1 and the
// others hand over down to q. An instance below q takes free members up to
// q, and one at q takes one more while fewer than r others hold q+1. When
// every instance sees the same table, the shares add up to A: a member is
// free only while some instance is below its share, and an instance is
// below only while another is above (and hands over) or a member is free.
func (c *Consumer) balance(ctx context.Context, runs map[int]*memberRun) ([]int, error) {
	var live *driver.InstanceList
	var l *driver.ConsumerList
	err := c.retry(ctx, "renew the heartbeat", func() (err error) {
		live, err = c.d.Heartbeat(ctx, &driver.InstanceParams{Name: c.name, Holder: c.o.Instance, TTL: c.o.LeaseTTL.Milliseconds(), Now: nowMillis()})
		if err != nil {
			return err
		}
		l, err = c.d.ListConsumers(ctx, c.name)
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(l.Rows) == 0 {
		return nil, c.prepare(ctx)
	}
	now := engineNow(l)
	registered := map[string]bool{c.o.Instance: true}
	for _, in := range live.Instances {
		registered[in] = true
	}
	held := map[string]int{} // live leases of the balancing instances but this one
	var free []int
	avail := 0
	for _, r := range l.Rows {
		if r.Members != c.o.Members {
			return nil, &GroupSizeError{Name: c.name, Recorded: r.Members, Given: c.o.Members}
		}
		liveLease := r.Holder != "" && r.LeaseUntil > now
		switch {
		case runs[r.Member] != nil:
			avail++
		case !liveLease || r.Holder == c.o.Instance:
			avail++
			free = append(free, r.Member)
		case registered[r.Holder]:
			avail++
			held[r.Holder]++
		}
	}
	mine := 0
	var keep []int // members run and not handed over, in order
	for m, mr := range runs {
		if !mr.leaving {
			mine++
			keep = append(keep, m)
		}
	}
	sort.Ints(keep)
	n := len(registered)
	q, r := avail/n, avail%n
	share := q
	if mine >= q+1 && r > 0 {
		// Among the instances holding q+1 or more, the first r by name
		// keep q+1.
		var big []string
		for in, k := range held {
			if k >= q+1 {
				big = append(big, in)
			}
		}
		big = append(big, c.o.Instance)
		slices.Sort(big)
		if slices.Index(big, c.o.Instance) < r {
			share = q + 1
		}
	}
	if mine > share {
		for _, m := range keep[share:] {
			mr := runs[m]
			mr.leaving = true
			close(mr.handover)
			c.o.Logger.Info("consumer: handing a member over", "consumer", c.name, "member", m, "instances", n, "share", share)
		}
		return nil, nil
	}
	bigOthers := 0
	for _, k := range held {
		if k >= q+1 {
			bigOthers++
		}
	}
	target := q
	if bigOthers < r {
		target = q + 1
	}
	if mine >= target {
		return nil, nil
	}
	return free[:min(len(free), target-mine)], nil
}

// runMember runs member from position pos until ctx ends, handover is
// closed, the lease is lost or an error. It returns nil unless the error
// must end Run.
func (c *Consumer) runMember(ctx context.Context, member int, pos int64, handover <-chan struct{}) error {
	for {
		resume, err := c.runLeased(ctx, member, pos, handover)
		if resume >= 0 {
			// The lease ran out locally: if this instance still holds
			// it, nobody handled anything meanwhile, and it goes on from
			// where it was.
			p, rerr := c.renewExpired(ctx, member, resume)
			switch {
			case ctx.Err() != nil:
				return nil
			case rerr != nil && !transient(rerr):
				return rerr
			case p >= 0:
				pos = p
				continue
			}
			return nil
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
		_ = c.d.ReleaseLease(rctx, &driver.LeaseParams{Name: c.name, Member: member, Holder: c.o.Instance, Now: nowMillis()})
		cancel()
		switch {
		case ctx.Err() != nil, err == nil, errors.Is(err, errHandover):
			if err != nil || ctx.Err() == nil {
				c.o.Logger.Info("consumer: member handed over", "consumer", c.name, "member", member)
			}
			return nil
		case errors.Is(err, errLeaseLost):
			c.o.Logger.Warn("consumer: lease lost", "consumer", c.name, "member", member, "err", err)
			return nil
		case transient(err):
			c.o.Logger.Warn("consumer: store unreachable; retrying", "consumer", c.name, "member", member, "err", err)
			return nil
		default:
			return err
		}
	}
}
