package consumer

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

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
