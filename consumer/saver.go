package consumer

import (
	"context"
	"fmt"
)

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
