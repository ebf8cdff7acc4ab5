package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/esctl/esctl/estype"
	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/internal/access"
	"github.com/esctl/esctl/internal/core"
	"github.com/esctl/esctl/internal/driver"
	"github.com/esctl/esctl/internal/ndjson"
)

// DefaultIncrementalPushEvents is how many events one push of
// IncrementalImportFrom stages at most, by default.
const DefaultIncrementalPushEvents = 5_000

// IncrementalImportOptions are the arguments of IncrementalImportFrom.
type IncrementalImportOptions struct {
	// Older is the policy for events older than the store's newest.
	Older OlderPolicy
	// PushEvents bounds one push (one transaction of staging). 0:
	// DefaultIncrementalPushEvents.
	PushEvents int
	// MaxLineBytes bounds one line. 0: DefaultMaxLineBytes.
	MaxLineBytes int
	// ProgressFunc, when set, is called after each push.
	ProgressFunc func(IncrementalProgress)
	// DryRun reads and checks every line, then runs the commit's own
	// transaction with the lines staged inside it (duplicates, older
	// events, versions and positions, as a commit would find them) and
	// rolls it back: nothing is written. Writers wait for it as for a
	// commit.
	DryRun bool
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
func IncrementalImportFrom(ctx context.Context, s *eventstore.Store, r io.Reader, opts *IncrementalImportOptions) (*IncrementalImportResult, error) {
	var o IncrementalImportOptions
	if opts != nil {
		o = *opts
	}
	if o.PushEvents <= 0 {
		o.PushEvents = DefaultIncrementalPushEvents
	}
	if o.MaxLineBytes <= 0 {
		o.MaxLineBytes = DefaultMaxLineBytes
	}
	if o.DryRun {
		return incrementalDryRun(ctx, s, r, o)
	}
	id, err := BeginIncrementalImport(ctx, s)
	if err != nil {
		return nil, err
	}
	res, err := func() (*IncrementalImportResult, error) {
		lr := ndjson.NewReader(r, o.MaxLineBytes, 0, 1, nil)
		batch := make([]VersionlessEvent, 0, o.PushEvents)
		push := func() error {
			if len(batch) == 0 {
				return nil
			}
			if err := PushIncrementalImport(ctx, s, id, batch); err != nil {
				return err
			}
			batch = batch[:0]
			if o.ProgressFunc != nil {
				o.ProgressFunc(IncrementalProgress{Lines: lr.Line - 1, ByteOffset: lr.Offset})
			}
			return nil
		}
		for {
			ev, err := nextIncrementalLine(s, lr)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, err
			}
			batch = append(batch, ev)
			if len(batch) == o.PushEvents {
				if err := push(); err != nil {
					return nil, fmt.Errorf("incremental import, line %d: %w", lr.Line-1, err)
				}
			}
		}
		if err := push(); err != nil {
			return nil, err
		}
		return CommitIncrementalImport(ctx, s, id, &CommitOptions{Older: o.Older})
	}()
	if err != nil {
		if rerr := RollbackIncrementalImport(context.WithoutCancel(ctx), s, id); rerr != nil && !errors.Is(rerr, estype.ErrImportNotFound) {
			err = errors.Join(err, rerr)
		}
		return nil, err
	}
	return res, nil
}

// nextIncrementalLine reads, checks and parses the next line of an
// incremental import's source, and accepts it; io.EOF at the end.
func nextIncrementalLine(s *eventstore.Store, lr *ndjson.Reader) (VersionlessEvent, error) {
	line, err := lr.Next()
	if err != nil {
		return VersionlessEvent{}, err
	}
	if col, reason := ndjson.CheckFrame(line, lr.Offset == 0); reason != "" {
		return VersionlessEvent{}, lr.ErrAt(col, "", reason)
	}
	ev, lerr := core.ParseLine(line, access.Core(s).Limits(), true)
	if lerr != nil {
		return VersionlessEvent{}, lr.ErrAt(lerr.Column, lerr.Field, lerr.Reason)
	}
	lr.Accept(line)
	return VersionlessEvent{AggregateID: ev.AggregateID, Type: ev.Type, Timestamp: ev.Timestamp, Payload: ev.Payload, Metadata: ev.Metadata}, nil
}

// incrementalDryRun is IncrementalImportFrom with DryRun: the lines are
// read and checked as a push would; then one transaction stages them under
// an import of its own, runs the commit (the same operations as a real
// commit) and rolls all of it back. Nothing is written.
func incrementalDryRun(ctx context.Context, s *eventstore.Store, r io.Reader, o IncrementalImportOptions) (*IncrementalImportResult, error) {
	sc := access.Core(s)
	var staged []estype.Event
	lr := ndjson.NewReader(r, o.MaxLineBytes, 0, 1, nil)
	for {
		ev, err := nextIncrementalLine(s, lr)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		e, err := stageable(ctx, s, []VersionlessEvent{ev})
		if err != nil {
			return nil, fmt.Errorf("incremental import, line %d: %w", lr.Line-1, err)
		}
		staged = append(staged, e[0])
		if o.ProgressFunc != nil && len(staged)%o.PushEvents == 0 {
			o.ProgressFunc(IncrementalProgress{Lines: lr.Line - 1, ByteOffset: lr.Offset})
		}
	}
	if err := sc.Begin(ctx); err != nil {
		return nil, err
	}
	defer sc.Exit()
	dry := &driver.PushIncrementalParams{ID: "ii_dry_" + core.RandomID(18), Events: staged, Now: sc.NowMillis()}
	res, err := commitIncremental(ctx, s, "", o.Older, dry)
	if err != nil {
		return nil, fmt.Errorf("incremental import: %w", err)
	}
	return res, nil
}
