package transfer

import (
	"bufio"
	"cmp"
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

// DefaultExportPageSize is the number of events an export reads per query
// (its rows are written as they arrive, so a page is never held in memory).
const DefaultExportPageSize = 10_000

// errExportFull stops an export's read at the line that would exceed
// ExportOptions.MaxBytes.
var errExportFull = errors.New("export: byte budget reached")

// exportBufferSize is the size of the buffer an export writes lines into;
// it is flushed to the writer when full and after each page.
const exportBufferSize = 1 << 20

// ExportOptions are the arguments of ExportEvents. nil means the defaults:
// from the start, no byte budget, MaintenanceManual.
type ExportOptions struct {
	// Cursor to export from; "" is the start.
	Cursor estype.Cursor
	// Mode: MaintenanceAuto freezes the store for the export's duration if
	// it was not frozen (and unfreezes only what it froze); the export
	// reads one consistent snapshot either way.
	Mode MaintenanceMode
	// MaxBytes, when > 0, stops the export before the line that would take
	// it past this many bytes; at least one event is always written, so a
	// loop of budgeted exports always makes progress.
	MaxBytes int64
	// PageSize is the number of events read per query. 0: default.
	PageSize int
	// ProgressFunc, when set, is called after each page is written.
	ProgressFunc func(ExportProgress)
}

// ExportProgress reports a written page.
type ExportProgress struct {
	Events int64
	Bytes  int64
	Cursor estype.Cursor
}

// ExportResult reports what an export wrote. It is returned with the error
// too; Cursor is then where to resume.
type ExportResult struct {
	// Cursor resumes the export right after the last event written.
	Cursor estype.Cursor
	// End: every event of the snapshot after the start cursor was written.
	// Events committed after the export began are not in it: export again
	// from Cursor to get them.
	End bool
	// BufferOverflow: the export stopped because of MaxBytes.
	BufferOverflow bool
	Events         int64
	Bytes          int64
	// LastPosition is the store's last position in the export's snapshot.
	LastPosition int64
}

// ExportEvents writes the store's events after opts.Cursor to w as NDJSON
// (docs/ndjson-format.md), in position order, from one consistent snapshot
// (PostgreSQL: REPEATABLE READ; SQLite: one read transaction), so that
// concurrent appends never tear it. Each page is one query whose rows are
// written as they arrive. It writes whole lines only and flushes w after
// each page (and when it stops); the returned Cursor resumes right after
// the last line written. Cancelling ctx stops the export, at the latest
// after the current page, with a valid resume cursor (reSolve's 'timeout').
func ExportEvents(ctx context.Context, s *eventstore.Store, w io.Writer, opts *ExportOptions) (*ExportResult, error) {
	sc := access.Core(s)
	var o ExportOptions
	if opts != nil {
		o = *opts
	}
	o.PageSize = cmp.Or(o.PageSize, DefaultExportPageSize)
	if o.PageSize < 1 || o.PageSize > eventstore.MaxLimit*10 {
		return nil, &estype.InvalidFilterError{Field: "pageSize", Reason: fmt.Sprintf("must be 1 to %d, got %d", eventstore.MaxLimit*10, o.PageSize)}
	}
	pos, err := o.Cursor.Position()
	if err != nil {
		return nil, &estype.InvalidFilterError{Field: "cursor", Reason: fmt.Sprintf("is malformed: %v", err), Err: err}
	}
	if err := sc.Begin(ctx); err != nil {
		return nil, err
	}
	defer sc.Exit()
	res := &ExportResult{Cursor: estype.CursorAt(pos)}
	if o.Mode == MaintenanceAuto {
		unfreeze, err := freezeForMaintenance(ctx, s, "AUTO export in progress")
		if err != nil {
			return nil, err
		}
		defer unfreeze()
	}
	tx, err := sc.R.BeginRead(ctx)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	defer tx.Close(ctx)

	bw := bufio.NewWriterSize(w, exportBufferSize)
	var line []byte
	written := pos // position of the last line in bw or w
	// flush writes out bw and moves the cursor past every line written.
	flush := func() error {
		if err := bw.Flush(); err != nil {
			return fmt.Errorf("export: write: %w", err)
		}
		res.Cursor = estype.CursorAt(written)
		return nil
	}
	p := &driver.ListEventsParams{After: pos, AfterTimestamp: -1, Limit: o.PageSize}
	for first := true; ; first = false {
		n := 0
		last, err := tx.ScanEvents(ctx, p, func(e *estype.StoredEvent) error {
			n++
			line = ndjson.AppendEvent(line[:0], e)
			if o.MaxBytes > 0 && res.Events > 0 && res.Bytes+int64(len(line)) > o.MaxBytes {
				return errExportFull
			}
			if _, err := bw.Write(line); err != nil {
				return fmt.Errorf("export: write: %w", err)
			}
			res.Events++
			res.Bytes += int64(len(line))
			written = e.Position
			return nil
		})
		res.LastPosition = last
		switch {
		case errors.Is(err, errExportFull):
			res.BufferOverflow = true
		case err != nil:
			// The lines written are whole: keep them, and resume after them.
			if written > p.After {
				if ferr := flush(); ferr != nil {
					err = errors.Join(err, ferr)
				}
			}
			return res, fmt.Errorf("export after position %d: %w", p.After, err)
		case first && pos > last:
			return nil, &estype.CursorBeyondEndError{Position: pos, End: last}
		}
		p.After = written
		// Everything up to p.After is now in w: the cursor may move.
		if err := flush(); err != nil {
			return res, err
		}
		if o.ProgressFunc != nil {
			o.ProgressFunc(ExportProgress{Events: res.Events, Bytes: res.Bytes, Cursor: res.Cursor})
		}
		if res.BufferOverflow {
			return res, nil
		}
		if n < p.Limit {
			res.End = true
			return res, nil
		}
		if err := ctx.Err(); err != nil {
			return res, err
		}
	}
}

// freezeForMaintenance freezes the store unless it is frozen, and returns
// the function that unfreezes it if (and only if) this call froze it.
func freezeForMaintenance(ctx context.Context, s *eventstore.Store, reason string) (func(), error) {
	sc := access.Core(s)
	was, err := core.SetFrozenTx(ctx, sc.W, true, reason)
	if err != nil {
		return nil, fmt.Errorf("freeze: %w", err)
	}
	if was.Frozen {
		return func() {}, nil
	}
	return func() {
		_, _ = core.SetFrozenTx(context.WithoutCancel(ctx), sc.W, false, "")
	}, nil
}
