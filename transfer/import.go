package transfer

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/esctl/esctl/estype"
	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/internal/access"
	"github.com/esctl/esctl/internal/core"
	"github.com/esctl/esctl/internal/driver"
	"github.com/esctl/esctl/internal/ndjson"
)

// MaintenanceMode selects how an import or export treats the store, as
// reSolve's MAINTENANCE_MODE_MANUAL and MAINTENANCE_MODE_AUTO do.
type MaintenanceMode int

const (
	// MaintenanceManual imports append to the store as it is (positions
	// must continue it) and exports read it as it is. The default.
	MaintenanceManual MaintenanceMode = iota
	// MaintenanceAuto imports replace the store's events and snapshots with
	// the file's, and exports freeze the store while they run. Either
	// freezes only a store that is not frozen, and unfreezes only what it
	// froze.
	MaintenanceAuto
)

func (m MaintenanceMode) String() string {
	if m == MaintenanceAuto {
		return "auto"
	}
	return "manual"
}

// Import defaults.
const (
	DefaultSourceID = "default"
	// DefaultImportBatchEvents and DefaultImportBatchBytes bound an import's
	// batches when ImportOptions leaves them 0. Each batch is a transaction,
	// and on SQLite a commit rewrites every index page the batch touched
	// (with random aggregate ids, nearly all of them), so large batches
	// import several times faster than small ones; the byte bound keeps a
	// batch's memory in check. With the default, the first batch is 5,000
	// events and each next one twice the previous, so that the first lines
	// commit early (a slow pipe, a progress display).
	DefaultImportBatchEvents = 50_000
	DefaultImportBatchBytes  = 16 << 20
)

// firstImportBatchEvents is the first batch of an import with the default
// batch size.
const firstImportBatchEvents = 5_000

// ImportOptions are the arguments of ImportEvents. nil means the defaults:
// a MaintenanceManual import of source "default" from the start.
type ImportOptions struct {
	// Mode: MaintenanceManual appends; MaintenanceAuto replaces the store's
	// events and snapshots (see ImportEvents).
	Mode MaintenanceMode
	// SourceID names the source in the store's import checkpoints, so that
	// an interrupted import can be resumed. "" means DefaultSourceID. A
	// MANUAL import of a source the store has a checkpoint of must resume
	// it (Resume or ByteOffset): starting it again fails with
	// *ImportRecordedError, whether it is done or not, unless it committed
	// no line yet. To import the same data again on purpose, forget the
	// record first (AbortImport).
	SourceID string
	// ByteOffset resumes reSolve-style: the reader starts at this offset of
	// the source, which must be the offset the store recorded for SourceID
	// (the ByteOffset an earlier call returned).
	ByteOffset int64
	// Resume: the reader is the whole source from its first byte; the store
	// skips to the offset it recorded for SourceID after checking that the
	// skipped bytes are the ones it imported (SHA-256 of the prefix).
	Resume bool
	// Renumber gives the events new positions in file order, continuing the
	// store, instead of keeping the file's positions.
	Renumber bool
	// BatchEvents and BatchBytes bound one transaction. 0: defaults
	// (batches growing from 5,000 to DefaultImportBatchEvents events, of
	// at most DefaultImportBatchBytes).
	BatchEvents int
	BatchBytes  int
	// MaxLineBytes bounds one line. 0: DefaultMaxLineBytes.
	MaxLineBytes int
	// ProgressFunc, when set, is called after each committed batch.
	ProgressFunc func(ImportProgress)
	// DryRun reads and checks the whole source as the import would, against
	// the store as it is (positions, pairs already stored, pairs repeated in
	// the source, a resume's recorded prefix), and writes nothing: no
	// event, checkpoint, freeze or staging. The result and the error are
	// those the import would give, had nobody else written meanwhile.
	DryRun bool
}

// ImportProgress reports a committed batch.
type ImportProgress struct {
	ByteOffset int64 // source offset after the last committed line
	Lines      int64 // committed lines of the source
	Events     int64 // events committed by this call
}

// ImportResult reports what an import committed. It is returned with the
// error too: ByteOffset is then where a resume starts.
type ImportResult struct {
	// ByteOffset is the source offset after the last committed line: only
	// lines whose batch committed count. Resume here.
	ByteOffset int64
	// Lines committed, counted from the start of the source.
	Lines int64
	// Events committed by this call, and by the whole import so far.
	Events      int64
	TotalEvents int64
	// LastPosition is the position of the last event the import wrote.
	LastPosition int64
	// Done: the source was read to its end and the import completed (for
	// MaintenanceAuto: the store now holds exactly the file's events).
	Done bool
	// PrefixSHA256 is the SHA-256 of the source's first ByteOffset bytes.
	PrefixSHA256 []byte
}

func (o *ImportOptions) resolved() ImportOptions {
	var r ImportOptions
	if o != nil {
		r = *o
	}
	r.SourceID = cmp.Or(r.SourceID, DefaultSourceID)
	r.BatchBytes = cmp.Or(r.BatchBytes, DefaultImportBatchBytes)
	r.MaxLineBytes = cmp.Or(r.MaxLineBytes, DefaultMaxLineBytes)
	return r
}

// ImportEvents reads NDJSON events (docs/ndjson-format.md) from r and
// stores them in batches, each in one transaction together with a
// checkpoint of the source's byte offset, so that a crash or cancel at any
// instant loses nothing and doubles nothing: resume with Resume (r from the
// start of the same source) or with ByteOffset (r positioned there).
//
// Lines are read strictly: the first bad line stops the import with a
// *LineError naming its line, byte offset and reason; every line before it
// is committed and nothing after it is written. Payloads pass through byte
// for byte. Lines with a position keep it when it continues the store (and
// the file); lines without one (reSolve's files) get positions in file
// order, as do all lines with Renumber.
//
// MaintenanceManual appends. MaintenanceAuto replaces the store's events
// and snapshots with the file's (secrets are untouched), freezing the store
// meanwhile unless it already was frozen: into an empty store the events go
// straight in; into a non-empty store they are staged and swapped in by one
// transaction at the end, so the store is never half-replaced. What a
// failed AUTO import leaves, and how to finish or undo it, is in
// docs/ndjson-format.md ("Interrupted imports"); AbortImport undoes one.
//
// Cancelling ctx stops after committing the lines read so far.
func ImportEvents(ctx context.Context, s *eventstore.Store, r io.Reader, opts *ImportOptions) (*ImportResult, error) {
	sc := access.Core(s)
	if err := sc.Begin(ctx); err != nil {
		return nil, err
	}
	defer sc.Exit()
	im := &eventImport{s: s, w: sc.W, o: opts.resolved()}
	if im.o.DryRun {
		dry, err := core.NewDryWriter(ctx, sc.D)
		if err != nil {
			return nil, fmt.Errorf("import: %w", err)
		}
		im.w = dry
	}
	return im.run(ctx, r)
}

// lineMark locates an accepted line and the prefix hash before it, so that a
// batch can be cut before any of its lines.
type lineMark struct {
	line, offset int64
	hashAt       int // start of the hash state in the arena
}

// lineMarks records, for each line of a batch, where it starts and the
// prefix hash state there.
type lineMarks struct {
	marks []lineMark
	arena []byte
}

// add records the reader's position before it accepts a line.
func (m *lineMarks) add(lr *ndjson.Reader) {
	m.marks = append(m.marks, lineMark{line: lr.Line, offset: lr.Offset, hashAt: len(m.arena)})
	m.arena = appendHashState(m.arena, lr.Hash)
}

// before returns the offset, the number of lines and the hash state just
// before the batch's line n (n == len: after the batch, from the reader).
func (m *lineMarks) before(n int, lr *ndjson.Reader) (offset, lines int64, state []byte) {
	if n == len(m.marks) {
		return lr.Offset, lr.Line - 1, lr.HashState()
	}
	mk := m.marks[n]
	end := len(m.arena)
	if n+1 < len(m.marks) {
		end = m.marks[n+1].hashAt
	}
	return mk.offset, mk.line - 1, append([]byte(nil), m.arena[mk.hashAt:end]...)
}

func (m *lineMarks) reset() { m.marks, m.arena = m.marks[:0], m.arena[:0] }

type eventImport struct {
	s      *eventstore.Store
	w      core.Writer // the store's, or a core.DryWriter
	o      ImportOptions
	cp     *estype.ImportCheckpoint
	target driver.Table
	lr     *ndjson.Reader
	res    ImportResult

	prevPos    int64 // position of the last accepted line
	filePos    int   // 1: the file has positions; -1: it has none; 0: not seen yet
	batchLimit int   // events in the current batch at most
	growBatch  bool  // double batchLimit after each batch, up to the default
	dec        ndjson.Decoder
	arena      ndjson.Arena // the batch's payloads
	ev         ndjson.Event // the line being parsed
	batch      []estype.StoredEvent
	marks      lineMarks
	batchKeys  map[core.VersionKey]int
	batchBytes int
}

func (im *eventImport) run(ctx context.Context, r io.Reader) (*ImportResult, error) {
	if err := im.open(ctx, r); err != nil {
		return im.result(), err
	}
	if im.cp.Done {
		return im.result(), nil // already complete: nothing to do
	}
	err := im.readAll(ctx)
	if err == nil {
		err = im.finish(ctx)
	}
	if err != nil {
		return im.result(), im.failed(ctx, err)
	}
	return im.result(), nil
}

func (im *eventImport) result() *ImportResult {
	res := im.res
	if im.lr != nil {
		res.PrefixSHA256 = im.lr.Hash.Sum(nil)
	}
	return &res
}

// open finds where the import starts: fresh, or resumed from the store's
// checkpoint of the source.
func (im *eventImport) open(ctx context.Context, r io.Reader) error {
	if err := core.AwaitWriters(ctx, im.w); err != nil {
		return fmt.Errorf("import: %w", err)
	}
	cp, err := access.Core(im.s).D.Checkpoint(ctx, im.o.SourceID)
	if err != nil {
		return fmt.Errorf("import: read checkpoint: %w", err)
	}
	if cp != nil && cp.Kind != estype.CheckpointEvents {
		return fmt.Errorf("%w: source %q is a %s import", estype.ErrResumeMismatch, im.o.SourceID, cp.Kind)
	}
	resuming := im.o.Resume || im.o.ByteOffset > 0
	if !resuming {
		return im.openFresh(ctx, r, cp)
	}
	if cp == nil {
		return fmt.Errorf("%w: the store has no import of source %q to resume", estype.ErrResumeMismatch, im.o.SourceID)
	}
	h, err := ndjson.RestoreHash(cp.HashState)
	if err != nil {
		return err
	}
	if im.o.Resume {
		if err := verifyPrefix(r, cp, h); err != nil {
			return err
		}
	} else if im.o.ByteOffset != cp.ByteOffset {
		return fmt.Errorf("%w: source %q: byte offset %d is not the committed offset %d recorded by the store (line %d)",
			estype.ErrResumeMismatch, im.o.SourceID, im.o.ByteOffset, cp.ByteOffset, cp.Line)
	}
	if (cp.Mode == estype.CheckpointManual) != (im.o.Mode == MaintenanceManual) {
		return fmt.Errorf("%w: source %q was imported in %s mode, not %s", estype.ErrResumeMismatch, im.o.SourceID, cp.Mode, im.o.Mode)
	}
	im.cp = cp
	im.lr = ndjson.NewReader(r, im.o.MaxLineBytes, cp.ByteOffset, cp.Line+1, h)
	im.res = ImportResult{ByteOffset: cp.ByteOffset, Lines: cp.Line, TotalEvents: cp.Events, LastPosition: cp.LastPosition, Done: cp.Done}
	im.prevPos = cp.LastPosition
	im.target = driver.Events
	if cp.Mode == estype.CheckpointAutoStaged {
		im.target = driver.Staging
	}
	if cp.Done && cp.Mode != estype.CheckpointManual {
		return nil // a finished replacement stays finished
	}
	// A finished MANUAL import continues with whatever the source gained
	// since (nothing, if it did not grow).
	cp.Done, im.res.Done = false, false
	st, err := im.w.ReadState(ctx)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	if cp.Mode == estype.CheckpointAutoStaged && st.LastPosition != cp.BasePosition {
		return fmt.Errorf("%w: the store changed since the AUTO import of %q began (last position %d, was %d): abort it and import again",
			estype.ErrResumeMismatch, im.o.SourceID, st.LastPosition, cp.BasePosition)
	}
	if cp.Mode != estype.CheckpointManual && !st.Frozen {
		froze, err := im.freeze(ctx)
		if err != nil {
			return err
		}
		cp.Froze = cp.Froze || froze
	}
	if im.target == driver.Events && im.prevPos < st.LastPosition {
		im.prevPos = st.LastPosition
	}
	return nil
}

// verifyPrefix reads the first cp.ByteOffset bytes of r into h and checks
// them against the recorded hash.
func verifyPrefix(r io.Reader, cp *estype.ImportCheckpoint, h hash.Hash) error {
	want := h.Sum(nil)
	fresh := sha256.New()
	n, err := io.CopyN(fresh, r, cp.ByteOffset)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("import: read the source's first %d bytes: %w", cp.ByteOffset, err)
	}
	if n < cp.ByteOffset {
		return fmt.Errorf("%w: source %q is %d bytes long, shorter than the %d bytes already imported", estype.ErrResumeMismatch, cp.SourceID, n, cp.ByteOffset)
	}
	if !bytes.Equal(fresh.Sum(nil), want) {
		return fmt.Errorf("%w: the first %d bytes of this source differ from those of source %q already imported (another file?)", estype.ErrResumeMismatch, cp.ByteOffset, cp.SourceID)
	}
	return nil
}

func (im *eventImport) openFresh(ctx context.Context, r io.Reader, prev *estype.ImportCheckpoint) error {
	st, err := im.w.ReadState(ctx)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	im.cp = &estype.ImportCheckpoint{SourceID: im.o.SourceID, Kind: estype.CheckpointEvents, Mode: estype.CheckpointManual}
	im.target = driver.Events
	im.prevPos = st.LastPosition
	im.lr = ndjson.NewReader(r, im.o.MaxLineBytes, 0, 1, nil)
	if im.o.Mode != MaintenanceAuto {
		if prev != nil && prev.Line > 0 {
			// Read again from its start, a recorded source would append
			// its events twice (renumbered) or fail on their positions.
			// (One that committed no line can start again.)
			return &estype.ImportRecordedError{SourceID: prev.SourceID, Done: prev.Done, Lines: prev.Line, Events: prev.Events,
				ByteOffset: prev.ByteOffset, UpdatedAt: prev.UpdatedAt}
		}
		return nil
	}
	im.cp.Mode = estype.CheckpointAuto
	if st.EventCount > 0 || st.LastPosition > 0 {
		// Replace a non-empty store: stage, swap at the end.
		im.cp.Mode, im.target = estype.CheckpointAutoStaged, driver.Staging
		im.cp.BasePosition = st.LastPosition
		im.prevPos = 0
		if err := core.AbortImportTx(ctx, im.w, &core.AbortImport{SourceID: im.o.SourceID, ClearStaging: true}); err != nil {
			return fmt.Errorf("import: clear staging: %w", err)
		}
	}
	// Record the import before freezing, claiming the freeze, so that a
	// failure at any point leaves a checkpoint that owns it (a resume or an
	// abort then unfreezes). An unfinished AUTO import of the same source
	// hands its freeze over.
	inherited := prev != nil && !prev.Done && prev.Mode != estype.CheckpointManual && prev.Froze && st.Frozen
	im.cp.Froze = !st.Frozen || inherited
	if err := im.saveCheckpoint(ctx); err != nil {
		return err
	}
	if !st.Frozen {
		froze, err := im.freeze(ctx)
		if err != nil {
			return err
		}
		if !froze { // someone else froze it meanwhile: not ours to lift
			im.cp.Froze = false
			return im.saveCheckpoint(ctx)
		}
	}
	return nil
}

// saveCheckpoint writes the checkpoint as it stands, with no events.
func (im *eventImport) saveCheckpoint(ctx context.Context) error {
	cp := im.checkpointAt(0)
	if _, err := core.ImportBatchTx(ctx, im.w, &core.ImportBatch{Table: im.target, Checkpoint: cp}); err != nil {
		return fmt.Errorf("import: record checkpoint: %w", err)
	}
	im.cp = cp
	return nil
}

// freeze freezes the store for an AUTO import and reports whether this
// import froze it (false: someone else did meanwhile).
func (im *eventImport) freeze(ctx context.Context) (bool, error) {
	was, err := core.SetFrozenTx(ctx, im.w, true, fmt.Sprintf("AUTO import of source %q in progress", im.o.SourceID))
	if err != nil {
		return false, fmt.Errorf("import: freeze: %w", err)
	}
	return !was.Frozen, nil
}

// readAll reads and stores every line.
func (im *eventImport) readAll(ctx context.Context) error {
	im.batchLimit, im.growBatch = im.o.BatchEvents, im.o.BatchEvents == 0
	if im.growBatch {
		im.batchLimit = firstImportBatchEvents
	}
	// Sized for a first batch, not for any BatchEvents a caller may give.
	im.batchKeys = make(map[core.VersionKey]int, min(im.batchLimit, firstImportBatchEvents))
	im.dec = ndjson.Decoder{Limits: ndjson.Limits(access.Core(im.s).Limits()), Arena: &im.arena, Check: core.CheckEnvelope}
	for n := 0; ; n++ {
		if n%256 == 0 {
			if err := ctx.Err(); err != nil {
				// Commit what was read (quickly: one batch at most), then stop.
				if ferr := im.flush(context.WithoutCancel(ctx)); ferr != nil {
					return ferr
				}
				return err
			}
		}
		line, err := im.lr.Next()
		if errors.Is(err, io.EOF) {
			return im.flush(ctx)
		}
		if err == nil {
			err = im.accept(line)
		}
		if err != nil {
			// Commit the lines before the bad one, then report it.
			if ferr := im.flush(ctx); ferr != nil {
				return ferr
			}
			return err
		}
		if len(im.batch) >= im.batchLimit || im.batchBytes >= im.o.BatchBytes {
			if err := ctx.Err(); err != nil {
				if ferr := im.flush(context.WithoutCancel(ctx)); ferr != nil {
					return ferr
				}
				return err
			}
			if err := im.flush(ctx); err != nil {
				return err
			}
		}
	}
}

// accept parses a line, assigns its position and adds it to the batch.
func (im *eventImport) accept(line []byte) error {
	lr := im.lr
	if col, reason := ndjson.CheckFrame(line, lr.Offset == 0); reason != "" {
		return lr.ErrAt(col, "", reason)
	}
	ev := &im.ev
	if lerr := im.dec.Parse(ev, line); lerr != nil {
		return lr.ErrAt(lerr.Column, lerr.Field, lerr.Reason)
	}
	has := -1
	if ev.HasPosition {
		has = 1
	}
	if im.filePos == 0 {
		im.filePos = has
	} else if has != im.filePos {
		return lr.ErrAt(-1, "position", "some lines of this file have a position and others not")
	}
	pos := im.prevPos + 1
	if ev.HasPosition && !im.o.Renumber {
		if ev.Position <= im.prevPos {
			where := "the previous line's"
			if len(im.batch) == 0 && im.res.Events == 0 && im.target == driver.Events {
				where = "the store's last"
			}
			return lr.ErrAt(-1, "position", fmt.Sprintf("position %d is not above %s position %d (positions must increase and continue the store; import with renumbering to assign new ones)",
				ev.Position, where, im.prevPos))
		}
		pos = ev.Position
	}
	k := core.VersionKey{ID: ev.AggregateID, Version: ev.AggregateVersion}
	if i, dup := im.batchKeys[k]; dup {
		return lr.ErrAt(-1, "aggregateVersion", fmt.Sprintf("aggregate %q version %d is also on line %d", ev.AggregateID, ev.AggregateVersion, im.marks.marks[i].line))
	}
	im.batchKeys[k] = len(im.batch)
	im.marks.add(lr)
	im.batch = append(im.batch, estype.StoredEvent{Event: ev.Event, Position: pos})
	im.batchBytes += len(line)
	im.prevPos = pos
	lr.Accept(line)
	return nil
}

func appendHashState(dst []byte, h hash.Hash) []byte {
	if a, ok := h.(encoding.BinaryAppender); ok {
		out, err := a.AppendBinary(dst)
		if err == nil {
			return out
		}
	}
	b, _ := h.(encoding.BinaryMarshaler).MarshalBinary()
	return append(dst, b...)
}

// checkpointAt returns the checkpoint after the first n lines of the batch.
func (im *eventImport) checkpointAt(n int) *estype.ImportCheckpoint {
	cp := *im.cp
	cp.ByteOffset, cp.Line, cp.HashState = im.marks.before(n, im.lr)
	cp.Events += int64(n)
	if n > 0 {
		cp.LastPosition = im.batch[n-1].Position
	}
	cp.UpdatedAt = access.Core(im.s).NowMillis()
	return &cp
}

// flush commits the batch (or, when a line of it conflicts with the store,
// the lines before that one, and reports the conflict).
func (im *eventImport) flush(ctx context.Context) error {
	if len(im.batch) == 0 {
		return nil
	}
	err := im.commit(ctx, len(im.batch), false, false)
	if im.growBatch {
		im.batchLimit = min(2*im.batchLimit, DefaultImportBatchEvents)
	}
	clear(im.batch) // drop the references into the arena and the ids
	im.batch, im.batchBytes = im.batch[:0], 0
	im.arena.Reset()
	im.marks.reset()
	clear(im.batchKeys)
	return err
}

// commit stores the first n lines of the batch with their checkpoint.
func (im *eventImport) commit(ctx context.Context, n int, unfreeze, deleteSnapshots bool) error {
	for attempt := 0; ; attempt++ {
		cp := im.checkpointAt(n)
		res, err := core.ImportBatchTx(ctx, im.w, &core.ImportBatch{
			Table: im.target, Events: im.batch[:n], Checkpoint: cp,
			Unfreeze: unfreeze, DeleteSnapshots: deleteSnapshots,
		})
		if err != nil {
			return fmt.Errorf("import: store lines %d to %d: %w", im.res.Lines+1, cp.Line, err)
		}
		switch {
		case res.Advanced && im.filePos < 0 || res.Advanced && im.o.Renumber:
			if attempt > 10 {
				return fmt.Errorf("import: the store keeps advancing under the import (freeze it): %w", estype.ErrTimeout)
			}
			// Another writer appended meanwhile: give the batch new
			// positions after the store's last one and try again.
			for i := range im.batch {
				im.batch[i].Position = res.LastPosition + 1 + int64(i)
			}
			im.prevPos = im.batch[len(im.batch)-1].Position
			continue
		case res.Advanced:
			m := im.marks.marks[0]
			return &estype.LineError{Line: m.line, Offset: m.offset, Column: -1, Field: "position",
				Reason: fmt.Sprintf("position %d is not above the store's last position %d (another core.Writer appended meanwhile? freeze the store, or import with renumbering)", im.batch[0].Position, res.LastPosition)}
		case res.Conflict >= 0:
			k := res.Conflict
			if k > 0 {
				if err := im.commit(ctx, k, false, false); err != nil {
					return err
				}
			}
			e, m := im.batch[k], im.marks.marks[k]
			return &estype.LineError{Line: m.line, Offset: m.offset, Column: -1, Field: "aggregateVersion",
				Reason: fmt.Sprintf("aggregate %q version %d is already in the store (or on an earlier line of this file)", e.AggregateID, e.AggregateVersion),
				Err:    &estype.ConflictError{AggregateID: e.AggregateID, AggregateVersion: e.AggregateVersion}}
		}
		im.cp = cp
		im.res.ByteOffset, im.res.Lines = cp.ByteOffset, cp.Line
		im.res.Events += int64(n)
		im.res.TotalEvents = cp.Events
		im.res.LastPosition = cp.LastPosition
		if im.o.ProgressFunc != nil {
			im.o.ProgressFunc(ImportProgress{ByteOffset: im.res.ByteOffset, Lines: im.res.Lines, Events: im.res.Events})
		}
		return nil
	}
}

// finish completes the import once the whole source is stored.
func (im *eventImport) finish(ctx context.Context) error {
	cp := im.checkpointAt(0)
	cp.Done = true
	var err error
	switch im.cp.Mode {
	case estype.CheckpointAutoStaged:
		err = core.SwapStagingTx(ctx, im.w, cp, cp.Froze)
	default:
		_, err = core.ImportBatchTx(ctx, im.w, &core.ImportBatch{
			Table: driver.Events, Checkpoint: cp, Unfreeze: cp.Froze,
			DeleteSnapshots: im.cp.Mode == estype.CheckpointAuto,
		})
	}
	if err != nil {
		return fmt.Errorf("import: complete: %w", err)
	}
	im.cp = cp
	im.res.Done = true
	return nil
}

// failed handles an import that stopped before the end: what it leaves
// depends on the mode, and the error says so.
func (im *eventImport) failed(ctx context.Context, cause error) error {
	if im.cp == nil {
		return cause
	}
	switch im.cp.Mode {
	case estype.CheckpointAutoStaged:
		// The store is untouched: unfreeze it (if this import froze it) so
		// that it is usable; a resume freezes it again and refuses to
		// continue if it changed meanwhile.
		note := "the store is unchanged and not frozen by the import; resume the import to finish replacing it, or abort it"
		if im.cp.Froze {
			cp := im.checkpointAt(0)
			cp.Froze = false
			_, err := core.ImportBatchTx(context.WithoutCancel(ctx), im.w, &core.ImportBatch{Table: driver.Staging, Checkpoint: cp, Unfreeze: true})
			if err != nil {
				note = fmt.Sprintf("the store is unchanged but still frozen (unfreezing failed: %v); resume the import or abort it", err)
			}
		}
		return fmt.Errorf("%w (AUTO import of %q: %d lines staged, %s)", cause, im.o.SourceID, im.res.Lines, note)
	case estype.CheckpointAuto:
		return fmt.Errorf("%w (AUTO import of %q into an empty store: the first %d lines (%d events) are in; the store stays frozen until the import is resumed to its end, or aborted to empty the store again)",
			cause, im.o.SourceID, im.res.Lines, im.res.TotalEvents)
	}
	return cause
}

// AbortImport undoes an unfinished import of a source and forgets it: an
// AUTO import into a non-empty store drops its staged events (the store was
// never changed); an AUTO import into an empty store deletes the events it
// imported, leaving the store empty again; either unfreezes the store if
// the import froze it. A MANUAL import's committed events stay (they were
// appended and may have been read): only its checkpoint is forgotten.
func AbortImport(ctx context.Context, s *eventstore.Store, sourceID string) error {
	sc := access.Core(s)
	if err := sc.Begin(ctx); err != nil {
		return err
	}
	defer sc.Exit()
	sourceID = cmp.Or(sourceID, DefaultSourceID)
	cp, err := sc.D.Checkpoint(ctx, sourceID)
	if err != nil {
		return fmt.Errorf("abort import: %w", err)
	}
	if cp == nil {
		return fmt.Errorf("%w: the store has no import of source %q", estype.ErrResumeMismatch, sourceID)
	}
	a := &core.AbortImport{SourceID: sourceID}
	if !cp.Done {
		switch estype.CheckpointMode(cp.Mode) {
		case estype.CheckpointAutoStaged:
			a.ClearStaging, a.Unfreeze = true, cp.Froze
		case estype.CheckpointAuto:
			a.DeleteEvents, a.Unfreeze = true, cp.Froze
		}
	}
	if err := core.AbortImportTx(ctx, sc.W, a); err != nil {
		return fmt.Errorf("abort import: %w", err)
	}
	return nil
}

// Imports lists the store's import checkpoints (finished and unfinished),
// so that abandoned imports can be found and resumed or aborted.
func Imports(ctx context.Context, s *eventstore.Store) ([]estype.ImportCheckpoint, error) {
	sc := access.Core(s)
	if err := sc.Begin(ctx); err != nil {
		return nil, err
	}
	defer sc.Exit()
	rows, err := sc.D.ListCheckpoints(ctx)
	if err != nil {
		return nil, fmt.Errorf("list imports: %w", err)
	}
	return rows, nil
}
