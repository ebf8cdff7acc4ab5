package eventstore

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// IncrementalImportOptions are the arguments of IncrementalImportFrom.
type IncrementalImportOptions struct {
	// Older is the policy for events older than the store's newest.
	Older OlderPolicy
	// PushEvents bounds one push (one transaction of staging). 0: 5,000.
	PushEvents int
	// MaxLineBytes bounds one line. 0: DefaultMaxLineBytes.
	MaxLineBytes int
	// ProgressFunc, when set, is called after each push.
	ProgressFunc func(IncrementalProgress)
}

// IncrementalProgress reports the lines staged so far.
type IncrementalProgress struct {
	Lines      int64
	ByteOffset int64
}

// IncrementalImportFrom reads NDJSON event lines from r and merges them into
// the store as one incremental import: staged in pushes, then committed in
// one transaction (see CommitIncrementalImport), or not at all. Lines have
// the export format (docs/ndjson-format.md) and are read as strictly as by
// ImportEvents; aggregateVersion may be absent, and aggregateVersion,
// position, threadId and threadCounter are ignored when present: the store
// assigns versions and positions. The first bad line fails the whole import
// with a *LineError (line and byte offset) and writes nothing; so does a
// cancelled ctx. The staged events are discarded on any failure.
func (s *Store) IncrementalImportFrom(ctx context.Context, r io.Reader, opts *IncrementalImportOptions) (*IncrementalImportResult, error) {
	var o IncrementalImportOptions
	if opts != nil {
		o = *opts
	}
	if o.PushEvents <= 0 {
		o.PushEvents = 5_000
	}
	if o.MaxLineBytes <= 0 {
		o.MaxLineBytes = DefaultMaxLineBytes
	}
	id, err := s.BeginIncrementalImport(ctx)
	if err != nil {
		return nil, err
	}
	res, err := func() (*IncrementalImportResult, error) {
		lr := newLineReader(r, o.MaxLineBytes, 0, 1, nil)
		batch := make([]VersionlessEvent, 0, o.PushEvents)
		push := func() error {
			if len(batch) == 0 {
				return nil
			}
			if err := s.PushIncrementalImport(ctx, id, batch); err != nil {
				return err
			}
			batch = batch[:0]
			if o.ProgressFunc != nil {
				o.ProgressFunc(IncrementalProgress{Lines: lr.line - 1, ByteOffset: lr.offset})
			}
			return nil
		}
		for {
			line, err := lr.next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, err
			}
			if col, reason := checkLineFrame(line, lr.offset == 0); reason != "" {
				return nil, lr.errAt(col, "", reason)
			}
			ev, lerr := parseLine(line, s.opts.MaxPayloadBytes, true)
			if lerr != nil {
				return nil, lr.errAt(lerr.column, lerr.field, lerr.reason)
			}
			batch = append(batch, VersionlessEvent{AggregateID: ev.AggregateID, Type: ev.Type, Timestamp: ev.Timestamp, Payload: ev.Payload})
			lr.accept(line)
			if len(batch) == o.PushEvents {
				if err := push(); err != nil {
					return nil, fmt.Errorf("incremental import, line %d: %w", lr.line-1, err)
				}
			}
		}
		if err := push(); err != nil {
			return nil, err
		}
		return s.CommitIncrementalImport(ctx, id, &CommitOptions{Older: o.Older})
	}()
	if err != nil {
		if rerr := s.RollbackIncrementalImport(context.WithoutCancel(ctx), id); rerr != nil && !errors.Is(rerr, ErrImportNotFound) {
			err = errors.Join(err, rerr)
		}
		return nil, err
	}
	return res, nil
}
