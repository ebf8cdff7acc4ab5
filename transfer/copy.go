package transfer

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/esctl/esctl/estype"
	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/internal/access"
)

// CopyOptions configure Copy. A nil *CopyOptions means all defaults.
type CopyOptions struct {
	// SourceName names the source in the target's import checkpoints
	// while a copy runs (they are removed when it completes). It must not
	// hold a password: esctl passes the redacted source URL. "" means
	// "store".
	SourceName string
	// DryRun checks the target and every event and secret that would be
	// copied, against the target as it is, and writes nothing.
	DryRun bool
	// ProgressFunc, when set, is called after each committed batch of
	// events.
	ProgressFunc func(CopyProgress)
}

// CopyProgress reports a running Copy.
type CopyProgress struct {
	Events int64 // events copied so far by this call
	Bytes  int64 // NDJSON bytes of those events
	Total  int64 // events to copy: up to the source's last position when the copy began
}

// CopyResult reports what Copy did (or, with DryRun, would do).
type CopyResult struct {
	// StartPosition is the target's last position before the copy: where
	// an earlier copy stopped (0 for a new target).
	StartPosition int64
	// Events copied, and the target's last position after them.
	Events       int64
	LastPosition int64
	// Secrets (tombstones included) copied.
	Secrets int64
}

// Copy copies every event (positions, versions, timestamps and payload
// bytes kept) and every secret (idx and tombstones kept) of from into to,
// streaming, in batches that each commit whole. to must be empty or hold
// an earlier copy of from: its last event and its highest secret must be
// from's, or Copy fails with ErrCopyMismatch and writes nothing. Copy
// continues after what to holds, so running it again after an interruption
// resumes without duplicating anything, and running it later copies what
// from gained since. Snapshots are not copied (they are a cache). For a
// final, consistent move, freeze from first.
//
// On an error the result says how far the target got (LastPosition);
// calling Copy again continues from there.
func Copy(ctx context.Context, from, to *eventstore.Store, opts *CopyOptions) (*CopyResult, error) {
	var o CopyOptions
	if opts != nil {
		o = *opts
	}
	o.SourceName = cmp.Or(o.SourceName, "store")
	sd, err := from.Describe(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("copy: source: %w", err)
	}
	dd, err := to.Describe(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("copy: target: %w", err)
	}
	res := &CopyResult{StartPosition: dd.LastPosition, LastPosition: dd.LastPosition}
	if err := sameHistory(ctx, from, to, dd.LastPosition, sd.LastPosition); err != nil {
		return res, err
	}
	top, err := sameSecrets(ctx, from, to)
	if err != nil {
		return res, err
	}
	if err := copyEvents(ctx, from, to, &o, res, sd.LastPosition); err != nil {
		return res, err
	}
	next := int64(0)
	if top != nil {
		next = top.Idx + 1
	}
	if err := copySecrets(ctx, from, to, &o, res, next); err != nil {
		return res, err
	}
	if o.DryRun {
		return res, nil
	}
	// Checkpoints of interrupted runs: their batches are in the target,
	// which is the copy's record.
	list, err := Imports(ctx, to)
	if err != nil {
		return res, fmt.Errorf("copy: %w", err)
	}
	for _, c := range list {
		if strings.HasPrefix(c.SourceID, "copy:"+o.SourceName+"@") || strings.HasPrefix(c.SourceID, "copy-secrets:"+o.SourceName+"@") {
			if err := AbortImport(ctx, to, c.SourceID); err != nil {
				return res, fmt.Errorf("copy: %w", err)
			}
		}
	}
	return res, nil
}

// sameHistory checks that the target, ending at position start, is empty
// or an earlier copy of a source ending at end.
func sameHistory(ctx context.Context, from, to *eventstore.Store, start, end int64) error {
	if start > end {
		return fmt.Errorf("%w: the target ends at position %d, after the source's last position %d: the target is not an earlier copy of this source", estype.ErrCopyMismatch, start, end)
	}
	if start == 0 {
		return nil
	}
	at := func(s *eventstore.Store) ([]byte, error) {
		page, err := s.LoadEvents(ctx, eventstore.Filter{Cursor: estype.CursorAt(start - 1), Limit: 1})
		if err != nil || len(page.Events) == 0 || page.Events[0].Position != start {
			return nil, err
		}
		return AppendEventLine(nil, page.Events[0]), nil
	}
	a, err := at(from)
	if err != nil {
		return fmt.Errorf("copy: source: %w", err)
	}
	b, err := at(to)
	if err != nil {
		return fmt.Errorf("copy: target: %w", err)
	}
	if a == nil || b == nil || !bytes.Equal(a, b) {
		return fmt.Errorf("%w: the target's last event, at position %d, is not the source's event there: the target is not an earlier copy of this source", estype.ErrCopyMismatch, start)
	}
	return nil
}

// sameSecrets checks that the target's highest secret, if any, is the
// source's, and returns it.
func sameSecrets(ctx context.Context, from, to *eventstore.Store) (*estype.Secret, error) {
	top, err := lastSecret(ctx, to)
	if err != nil || top == nil {
		return nil, wrapIf("copy: target", err)
	}
	page, err := from.Secrets().LoadSecrets(ctx, eventstore.SecretFilter{Idx: top.Idx, Limit: 1, IncludeDeleted: true})
	if err != nil {
		return nil, fmt.Errorf("copy: source: %w", err)
	}
	if len(page.Secrets) == 0 || page.Secrets[0].Idx != top.Idx || page.Secrets[0].ID != top.ID {
		return nil, fmt.Errorf("%w: the target's secret idx %d (%q) is not the source's", estype.ErrCopyMismatch, top.Idx, top.ID)
	}
	return top, nil
}

// lastSecret returns the secret (or tombstone) with the highest idx, or nil.
func lastSecret(ctx context.Context, s *eventstore.Store) (*estype.Secret, error) {
	sc := access.Core(s)
	if err := sc.Begin(ctx); err != nil {
		return nil, err
	}
	defer sc.Exit()
	sec, err := sc.D.LastSecret(ctx)
	if err != nil || sec == nil {
		return nil, err
	}
	out := estype.Secret(*sec)
	return &out, nil
}

func wrapIf(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

// pipeTo runs export (writing to w) and importFn (reading r) together, and
// returns the import's error, else the export's.
func pipeTo(export func(w io.Writer) error, importFn func(r io.Reader) error) error {
	pr, pw := io.Pipe()
	exported := make(chan error, 1)
	go func() {
		err := export(pw)
		pw.CloseWithError(err)
		exported <- err
	}()
	err := importFn(pr)
	pr.CloseWithError(errors.New("import stopped"))
	if exportErr := <-exported; err == nil && exportErr != nil {
		err = fmt.Errorf("export from the source: %w", exportErr)
	}
	return err
}

// copyEvents streams the source's events after the target's last position
// into the target, as an import whose checkpoint is forgotten once it is
// complete (the target's events are the copy's record).
func copyEvents(ctx context.Context, from, to *eventstore.Store, o *CopyOptions, res *CopyResult, end int64) error {
	start := res.StartPosition
	if start >= end {
		return nil
	}
	sourceID := fmt.Sprintf("copy:%s@%d", o.SourceName, start)
	var ir *ImportResult
	err := pipeTo(func(w io.Writer) error {
		_, err := ExportEvents(ctx, from, w, &ExportOptions{Cursor: estype.CursorAt(start)})
		return err
	}, func(r io.Reader) error {
		var err error
		ir, err = ImportEvents(ctx, to, r, &ImportOptions{SourceID: sourceID, DryRun: o.DryRun, ProgressFunc: func(p ImportProgress) {
			if o.ProgressFunc != nil {
				o.ProgressFunc(CopyProgress{Events: p.Events, Bytes: p.ByteOffset, Total: end - start})
			}
		}})
		return err
	})
	if ir != nil {
		res.Events, res.LastPosition = ir.Events, max(start, ir.LastPosition)
	}
	if err != nil {
		return fmt.Errorf("copy events: %w", err)
	}
	if o.DryRun {
		return nil
	}
	return AbortImport(ctx, to, sourceID)
}

// copySecrets copies the source's secrets from idx next on.
func copySecrets(ctx context.Context, from, to *eventstore.Store, o *CopyOptions, res *CopyResult, next int64) error {
	sourceID := fmt.Sprintf("copy-secrets:%s@%d", o.SourceName, next)
	var ir *ImportResult
	err := pipeTo(func(w io.Writer) error {
		_, err := ExportSecrets(ctx, from, w, &SecretsExportOptions{Idx: next})
		return err
	}, func(r io.Reader) error {
		var err error
		ir, err = ImportSecrets(ctx, to, r, &SecretsImportOptions{SourceID: sourceID, DryRun: o.DryRun})
		return err
	})
	if ir != nil {
		res.Secrets = ir.Events
	}
	if err != nil {
		return fmt.Errorf("copy secrets: %w", err)
	}
	if o.DryRun {
		return nil
	}
	return AbortImport(ctx, to, sourceID)
}
