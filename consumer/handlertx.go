package consumer

import (
	"context"
	"fmt"

	"github.com/esctl/esctl/eventstore"
)

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
