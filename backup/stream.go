package backup

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/esctl/esctl/estype"
	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/internal/access"
	"github.com/esctl/esctl/internal/core"
	"github.com/esctl/esctl/internal/jsonx"
	"github.com/esctl/esctl/transfer"

	"github.com/esctl/esctl/internal/driver"
	"github.com/esctl/esctl/internal/ndjson"
)

// A backup is one NDJSON stream (docs/backup-format.md):
//
//	{"esctlBackup":1,"engine":"sqlite","endPosition":1234}
//	{"section":"events"}
//	... event lines, the format of ExportEvents ...
//	{"section":"secrets"}
//	... secret lines, the format of ExportSecrets, tombstones included ...
//	{"section":"snapshots"}
//	{"key":"account-1","content":"BASE64"}
//	{"manifest":{"format":"esctl-backup","version":1,...,"sha256":"HEX"}}
//
// The manifest's sha256 covers every byte before the manifest line. The
// stream holds no wall-clock time and no random bytes: two backups of the
// same unchanged store are the same bytes, and so is a backup resumed from a
// Mark, which is what makes an interrupted backup verifiable against
// an uninterrupted one.

// FormatVersion is the version of the backup format Backup writes and
// the newest VerifyStream reads.
const FormatVersion = 1

// Format is the manifest's format name.
const Format = "esctl-backup"

// DefaultMarkBytes is how many bytes Backup writes between two marks.
const DefaultMarkBytes = 4 << 20

// maxBackupLine bounds one line of a backup: an event line with a payload at
// the payload limit, or a base64 snapshot, fits.
const maxBackupLine = 64 << 20

// Backup sections, in stream order.
const (
	sectionHeader    = "header"
	sectionEvents    = "events"
	sectionSecrets   = "secrets"
	sectionSnapshots = "snapshots"
	sectionDone      = "done"
)

var (
	markerEvents    = []byte(`{"section":"events"}` + "\n")
	markerSecrets   = []byte(`{"section":"secrets"}` + "\n")
	markerSnapshots = []byte(`{"section":"snapshots"}` + "\n")
	manifestPrefix  = []byte(`{"manifest":`)
)

// Mark is where a backup stands after a whole line: enough to resume
// it in another process, with the same bytes as an uninterrupted run. It
// marshals to JSON.
type Mark struct {
	// Section being written: "events", "secrets", "snapshots", or "done"
	// once the manifest is written.
	Section string `json:"section"`
	// EndPosition is the store's last position when the backup began: the
	// backup holds the events up to it, however many are appended later.
	EndPosition int64 `json:"endPosition"`
	// After is the last position (events) or idx (secrets) written in the
	// section; AfterKey the last snapshot key.
	After    int64  `json:"after"`
	AfterKey string `json:"afterKey,omitempty"`
	// LastEventSHA256 is the hash of the last event line, checked against
	// the store on resume (another store, or a store whose history changed,
	// is refused).
	LastEventSHA256 []byte `json:"lastEventSha256,omitempty"`
	// Lines written per section so far.
	Events     int64 `json:"events"`
	Secrets    int64 `json:"secrets"`
	Tombstones int64 `json:"tombstones"`
	Snapshots  int64 `json:"snapshots"`
	// Bytes written so far, and the SHA-256 state over them (before the
	// manifest line).
	Bytes     int64  `json:"bytes"`
	HashState []byte `json:"hashState"`
	// Engine of the store backed up.
	Engine string `json:"engine"`
}

// Manifest is the backup's last line: what it holds and the SHA-256
// of everything before it.
type Manifest struct {
	Format       string        `json:"format"`
	Version      int           `json:"version"`
	Engine       string        `json:"engine"`
	Events       int64         `json:"events"`
	Secrets      int64         `json:"secrets"`
	Tombstones   int64         `json:"tombstones"`
	Snapshots    int64         `json:"snapshots"`
	LastPosition int64         `json:"lastPosition"`
	EndCursor    estype.Cursor `json:"endCursor"`
	Bytes        int64         `json:"bytes"`
	SHA256       string        `json:"sha256"`
}

// StreamOptions are the arguments of Backup. nil means a whole backup from
// the start with no marks.
type StreamOptions struct {
	// Resume continues a backup from a mark an earlier call passed to Mark:
	// w must receive the bytes that follow the mark (the caller has cut its
	// output back to the mark).
	Resume *Mark
	// Mark, when set, is called at whole-line points at least MarkBytes
	// apart, and after the last line, with everything before the point
	// already written to w. The points depend only on the stream's bytes,
	// so an interrupted and resumed backup marks where an uninterrupted one
	// does. An error from Mark stops the backup.
	Mark func(Mark) error
	// MarkBytes: 0 means DefaultMarkBytes.
	MarkBytes int64
	// PageSize is the number of rows read per query. 0: the export default.
	PageSize int
}

// WriteStream writes a backup of the store's events, secrets and snapshots to w
// (docs/backup-format.md). One call reads one consistent snapshot of the
// store (as transfer.ExportEvents does). A backup resumed from a mark holds exactly
// the events up to the first call's end position, and the secrets and
// snapshots as each call read them: to get a single point in time across
// interruptions, freeze the store (Freeze) for the backup's duration.
// Cancelling ctx stops at the next page; the last mark stands.
func WriteStream(ctx context.Context, s *eventstore.Store, w io.Writer, opts *StreamOptions) (*Manifest, error) {
	sc := access.Core(s)
	var o StreamOptions
	if opts != nil {
		o = *opts
	}
	o.MarkBytes = cmp.Or(o.MarkBytes, DefaultMarkBytes)
	o.PageSize = cmp.Or(o.PageSize, transfer.DefaultExportPageSize)
	if err := sc.Begin(ctx); err != nil {
		return nil, err
	}
	defer sc.Exit()
	tx, err := sc.R.BeginRead(ctx)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	defer tx.Close(ctx)
	st, err := tx.ReadState(ctx)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	b := &backupWriter{w: bufio.NewWriterSize(w, 256<<10), o: &o, h: sha256.New()}
	if o.Resume != nil {
		if err := b.resume(ctx, tx, st, o.Resume); err != nil {
			return nil, err
		}
	} else {
		b.m = Mark{Section: sectionHeader, EndPosition: st.LastPosition, Engine: sc.D.Name()}
	}
	for b.m.Section != sectionDone {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		switch b.m.Section {
		case sectionHeader:
			line := fmt.Appendf(nil, `{"esctlBackup":%d,"engine":`, FormatVersion)
			line = jsonx.AppendString(line, b.m.Engine)
			line = fmt.Appendf(line, `,"endPosition":%d}`+"\n", b.m.EndPosition)
			err = b.section(line, markerEvents, sectionEvents)
		case sectionEvents:
			err = b.events(ctx, tx)
		case sectionSecrets:
			err = b.secrets(ctx, tx)
		case sectionSnapshots:
			err = b.snapshots(ctx, tx)
		default:
			return nil, fmt.Errorf("%w: unknown backup section %q in the mark", estype.ErrResumeMismatch, b.m.Section)
		}
		if err != nil {
			return nil, err
		}
	}
	return b.manifest, nil
}

type backupWriter struct {
	w        *bufio.Writer
	o        *StreamOptions
	h        hash.Hash
	m        Mark
	since    int64 // bytes since the last mark
	line     []byte
	manifest *Manifest
}

// resume checks a mark against the store and continues from it.
func (b *backupWriter) resume(ctx context.Context, tx driver.ReadTx, st *driver.StoreState, m *Mark) error {
	h, err := ndjson.RestoreHash(m.HashState)
	if err != nil {
		return fmt.Errorf("%w: backup mark: %v", estype.ErrResumeMismatch, err)
	}
	b.h, b.m = h, *m
	if m.Section == sectionDone {
		return fmt.Errorf("%w: the backup is already complete", estype.ErrResumeMismatch)
	}
	if st.LastPosition < m.EndPosition {
		return fmt.Errorf("%w: the backup ends at position %d, but the store's last position is %d: another store, or one restored since",
			estype.ErrResumeMismatch, m.EndPosition, st.LastPosition)
	}
	if m.Section != sectionEvents || m.After == 0 {
		return nil // past the events (their end was checked above), or none written yet
	}
	// The last event written must be the store's event at that position.
	pos := m.After
	page, err := tx.ListEvents(ctx, &driver.ListEventsParams{After: pos - 1, AfterTimestamp: -1, Limit: 1})
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if len(page.Events) == 0 || page.Events[0].Position != pos {
		return fmt.Errorf("%w: the store has no event at position %d, the last one the backup wrote", estype.ErrResumeMismatch, pos)
	}
	sum := sha256.Sum256(ndjson.AppendEvent(nil, &page.Events[0]))
	if !bytes.Equal(sum[:], m.LastEventSHA256) {
		return fmt.Errorf("%w: the store's event at position %d is not the one the backup wrote: another store", estype.ErrResumeMismatch, pos)
	}
	return nil
}

// write writes one whole line.
func (b *backupWriter) write(line []byte) error {
	if _, err := b.w.Write(line); err != nil {
		return fmt.Errorf("backup: write: %w", err)
	}
	b.h.Write(line)
	b.m.Bytes += int64(len(line))
	b.since += int64(len(line))
	return nil
}

// mark calls Mark if MarkBytes were written since the last mark, or when
// forced.
func (b *backupWriter) mark(force bool) error {
	if b.o.Mark == nil || !force && b.since < b.o.MarkBytes {
		return nil
	}
	if err := b.w.Flush(); err != nil {
		return fmt.Errorf("backup: write: %w", err)
	}
	st, err := b.h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return err
	}
	b.m.HashState = st
	b.since = 0
	m := b.m
	m.LastEventSHA256 = bytes.Clone(m.LastEventSHA256)
	return b.o.Mark(m)
}

// section writes the lines that end a section (line, then the next
// section's marker) and moves to the next section.
func (b *backupWriter) section(line, marker []byte, next string) error {
	if line != nil {
		if err := b.write(line); err != nil {
			return err
		}
	}
	if err := b.write(marker); err != nil {
		return err
	}
	b.m.Section, b.m.After, b.m.AfterKey = next, 0, ""
	return b.mark(false)
}

func (b *backupWriter) events(ctx context.Context, tx driver.ReadTx) error {
	p := &driver.ListEventsParams{After: b.m.After, AfterTimestamp: -1, Limit: b.o.PageSize}
	for p.After < b.m.EndPosition {
		page, err := tx.ListEvents(ctx, p)
		if err != nil {
			return fmt.Errorf("backup: events after position %d: %w", p.After, err)
		}
		for i := range page.Events {
			e := &page.Events[i]
			if e.Position > b.m.EndPosition {
				break
			}
			b.line = ndjson.AppendEvent(b.line[:0], e)
			if err := b.write(b.line); err != nil {
				return err
			}
			sum := sha256.Sum256(b.line)
			b.m.LastEventSHA256 = append(b.m.LastEventSHA256[:0], sum[:]...)
			b.m.After, p.After = e.Position, e.Position
			b.m.Events++
			if err := b.mark(false); err != nil {
				return err
			}
		}
		if len(page.Events) < p.Limit {
			break
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return b.section(nil, markerSecrets, sectionSecrets)
}

func (b *backupWriter) secrets(ctx context.Context, tx driver.ReadTx) error {
	for {
		page, err := tx.ListSecrets(ctx, &driver.ListSecretsParams{MinIdx: b.m.After + 1, IncludeDeleted: true, Limit: core.SecretsPageSize})
		if err != nil {
			return fmt.Errorf("backup: secrets: %w", err)
		}
		for i := range page {
			b.line = ndjson.AppendSecret(b.line[:0], (*estype.Secret)(&page[i]))
			if err := b.write(b.line); err != nil {
				return err
			}
			b.m.After = page[i].Idx
			b.m.Secrets++
			if page[i].Secret == nil {
				b.m.Tombstones++
			}
			if err := b.mark(false); err != nil {
				return err
			}
		}
		if len(page) < core.SecretsPageSize {
			break
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return b.section(nil, markerSnapshots, sectionSnapshots)
}

func (b *backupWriter) snapshots(ctx context.Context, tx driver.ReadTx) error {
	for {
		page, err := tx.ListSnapshots(ctx, &driver.ListSnapshotsParams{AfterKey: b.m.AfterKey, Limit: core.SnapshotsPageSize})
		if err != nil {
			return fmt.Errorf("backup: snapshots: %w", err)
		}
		for i := range page {
			b.line = appendSnapshotLine(b.line[:0], &page[i])
			if err := b.write(b.line); err != nil {
				return err
			}
			b.m.AfterKey = page[i].Key
			b.m.Snapshots++
			if err := b.mark(false); err != nil {
				return err
			}
		}
		if len(page) < core.SnapshotsPageSize {
			break
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	man := &Manifest{
		Format: Format, Version: FormatVersion, Engine: b.m.Engine,
		Events: b.m.Events, Secrets: b.m.Secrets, Tombstones: b.m.Tombstones, Snapshots: b.m.Snapshots,
		LastPosition: b.m.EndPosition, EndCursor: estype.CursorAt(b.m.EndPosition),
		Bytes: b.m.Bytes, SHA256: hex.EncodeToString(b.h.Sum(nil)),
	}
	if b.m.Events == 0 {
		man.LastPosition, man.EndCursor = 0, estype.CursorAt(0)
	}
	body, err := json.Marshal(man)
	if err != nil {
		return err
	}
	line := append(append(append([]byte(nil), manifestPrefix...), body...), "}\n"...)
	if _, err := b.w.Write(line); err != nil {
		return fmt.Errorf("backup: write: %w", err)
	}
	b.m.Bytes += int64(len(line))
	b.m.Section = sectionDone
	b.manifest = man
	if err := b.w.Flush(); err != nil {
		return fmt.Errorf("backup: write: %w", err)
	}
	return b.mark(true)
}

func appendSnapshotLine(dst []byte, sn *driver.Snapshot) []byte {
	dst = append(dst, `{"key":`...)
	dst = jsonx.AppendString(dst, sn.Key)
	dst = append(dst, `,"content":"`...)
	dst = base64.StdEncoding.AppendEncode(dst, sn.Content)
	return append(dst, "\"}\n"...)
}

type snapshotLine struct {
	Key     string `json:"key"`
	Content []byte `json:"content"` // base64
}

// decodeStrict unmarshals one JSON object into v, refusing unknown keys and
// trailing data.
func decodeStrict(line []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("unexpected data after the JSON object")
	}
	return nil
}

// VerifyStream reads a whole backup stream and checks it: its structure,
// every line (as strictly as an import reads it), the counts and the
// SHA-256 of its manifest, and that nothing follows the manifest. It writes
// nothing anywhere. A failure is a *LineError wrapping ErrBadBackup.
func VerifyStream(r io.Reader) (*Manifest, error) {
	lr := ndjson.NewReader(r, maxBackupLine, 0, 1, nil)
	bad := func(field, format string, args ...any) error {
		le := lr.ErrAt(-1, field, fmt.Sprintf(format, args...))
		le.Err = estype.ErrBadBackup
		return le
	}
	next := func(what string) ([]byte, error) {
		line, err := lr.Next()
		if errors.Is(err, io.EOF) {
			return nil, bad("", "the backup ends before %s: it is incomplete (truncated copy, or an unfinished .part file)", what)
		}
		var le *estype.LineError
		if errors.As(err, &le) {
			le.Err = estype.ErrBadBackup
		}
		return line, err
	}
	line, err := next("its header")
	if err != nil {
		return nil, err
	}
	var head struct {
		Version     int    `json:"esctlBackup"`
		Engine      string `json:"engine"`
		EndPosition int64  `json:"endPosition"`
	}
	if err := decodeStrict(line, &head); err != nil || head.Version == 0 {
		return nil, bad("", "not an esctl backup: the first line is not a backup header")
	}
	if head.Version > FormatVersion {
		return nil, bad("esctlBackup", "format version %d is newer than this esctl reads (%d): upgrade esctl", head.Version, FormatVersion)
	}
	lr.Accept(line)
	var m Manifest
	expect := func(marker []byte) error {
		line, err := next(string(bytes.TrimSpace(marker)))
		if err != nil {
			return err
		}
		if !bytes.Equal(line, marker[:len(marker)-1]) {
			return bad("", "expected %s", bytes.TrimSpace(marker))
		}
		lr.Accept(line)
		return nil
	}
	if err := expect(markerEvents); err != nil {
		return nil, err
	}
	var last int64
	for {
		line, err := next(`{"section":"secrets"}`)
		if err != nil {
			return nil, err
		}
		if bytes.Equal(line, markerSecrets[:len(markerSecrets)-1]) {
			lr.Accept(line)
			break
		}
		ev, lerr := core.ParseLine(line, core.Limits{Payload: estype.DefaultMaxPayloadBytes, Metadata: estype.DefaultMaxMetadataBytes}, false)
		if lerr != nil {
			le := lr.ErrAt(lerr.Column, lerr.Field, lerr.Reason)
			le.Err = estype.ErrBadBackup
			return nil, le
		}
		if !ev.HasPosition || ev.Position <= last || ev.Position > head.EndPosition {
			return nil, bad("position", "positions must increase from line to line up to the header's end position %d (previous %d)", head.EndPosition, last)
		}
		last = ev.Position
		m.Events++
		lr.Accept(line)
	}
	for {
		line, err := next(`{"section":"snapshots"}`)
		if err != nil {
			return nil, err
		}
		if bytes.Equal(line, markerSnapshots[:len(markerSnapshots)-1]) {
			lr.Accept(line)
			break
		}
		sec, lerr := core.ParseSecretLine(line)
		if lerr != nil {
			le := lr.ErrAt(lerr.Column, lerr.Field, lerr.Reason)
			le.Err = estype.ErrBadBackup
			return nil, le
		}
		m.Secrets++
		if sec.Secret == nil {
			m.Tombstones++
		}
		lr.Accept(line)
	}
	for {
		line, err := next("its manifest")
		if err != nil {
			return nil, err
		}
		if bytes.HasPrefix(line, manifestPrefix) {
			return verifyManifest(lr, line, head.EndPosition, last, &m, bad)
		}
		var sn snapshotLine
		if err := decodeStrict(line, &sn); err != nil || sn.Key == "" {
			return nil, bad("", "not a snapshot line (want {\"key\":...,\"content\":BASE64}): %v", err)
		}
		m.Snapshots++
		lr.Accept(line)
	}
}

func verifyManifest(lr *ndjson.Reader, line []byte, end, last int64, got *Manifest, bad func(string, string, ...any) error) (*Manifest, error) {
	sum := hex.EncodeToString(lr.Hash.Sum(nil))
	bytesBefore := lr.Offset
	var wrap struct {
		Manifest *Manifest `json:"manifest"`
	}
	if err := decodeStrict(line, &wrap); err != nil || wrap.Manifest == nil {
		return nil, bad("manifest", "is not a backup manifest: %v", err)
	}
	m := wrap.Manifest
	switch {
	case m.Format != Format || m.Version < 1 || m.Version > FormatVersion:
		return nil, bad("manifest", "format %q version %d is not %s version 1 to %d", m.Format, m.Version, Format, FormatVersion)
	case m.SHA256 != sum:
		return nil, bad("sha256", "the backup's SHA-256 is %s, its manifest says %s: the file is corrupted", sum, m.SHA256)
	case m.Bytes != bytesBefore:
		return nil, bad("bytes", "the backup holds %d bytes before its manifest, the manifest says %d", bytesBefore, m.Bytes)
	case m.Events != got.Events || m.Secrets != got.Secrets || m.Tombstones != got.Tombstones || m.Snapshots != got.Snapshots:
		return nil, bad("manifest", "counts differ: the backup holds %d events, %d secrets (%d deleted), %d snapshots; the manifest says %d, %d (%d), %d",
			got.Events, got.Secrets, got.Tombstones, got.Snapshots, m.Events, m.Secrets, m.Tombstones, m.Snapshots)
	case m.LastPosition != last || (m.Events > 0 && last != end):
		return nil, bad("lastPosition", "the last event's position is %d, the manifest says %d (header: %d)", last, m.LastPosition, end)
	case m.EndCursor != estype.CursorAt(last):
		return nil, bad("endCursor", "is %q, want %q for position %d", m.EndCursor, estype.CursorAt(last), last)
	}
	lr.Accept(line)
	if _, err := lr.Next(); !errors.Is(err, io.EOF) {
		return nil, bad("", "data after the manifest: the manifest must be the last line")
	}
	return m, nil
}

// RestoreOptions are the arguments of Restore.
type RestoreOptions struct {
	// BatchEvents bounds one transaction of events. 0: the import default.
	BatchEvents int
	// ProgressFunc, when set, is called after each committed batch.
	ProgressFunc func(RestoreProgress)
}

// RestoreProgress reports a restore's progress.
type RestoreProgress struct {
	Section string // "events", "secrets" or "snapshots"
	Events  int64  // events committed so far, across runs
	Secrets int64  // secrets committed so far, across runs
	// Snapshots written by this run.
	Snapshots int64
}

// RestoreResult reports a restore.
type RestoreResult struct {
	// Events and Secrets the store holds from the backup, across runs;
	// Snapshots written by this run (all of the backup's).
	Events, Secrets, Snapshots int64
	// Resumed: an earlier, interrupted restore of the same backup had
	// committed part of it.
	Resumed bool
}

// SourceIDs returns the import source ids a restore of the backup
// with manifest m records its checkpoints under (see Imports).
func SourceIDs(m *Manifest) (events, secrets string) {
	id := "restore:" + m.SHA256[:min(len(m.SHA256), 16)]
	return id + ":events", id + ":secrets"
}

// RestoreStream writes the backup r, whose manifest VerifyStream returned, into
// the store, which must be empty (no events, secrets or snapshots) unless
// it holds an interrupted restore of the same backup: then Restore resumes
// it. Events and secrets are imported as ImportEvents and ImportSecrets do,
// in batches that each commit with a checkpoint, so a crash at any instant
// loses and doubles nothing; snapshots are written last (each one replaces
// any earlier copy). r must be the whole stream from its first byte; the
// restore checks its SHA-256 against m again as it reads, and fails if the
// stream is not the one verified. Restoring a backup twice is a no-op.
//
// Call VerifyStream first: RestoreStream writes as it reads, so a stream it has
// not verified could stop it half-way (resumable, but not what an operator
// wants to find out mid-restore).
func RestoreStream(ctx context.Context, s *eventstore.Store, r io.Reader, m *Manifest, opts *RestoreOptions) (*RestoreResult, error) {
	sc := access.Core(s)
	var o RestoreOptions
	if opts != nil {
		o = *opts
	}
	if m == nil || len(m.SHA256) != 64 {
		return nil, errors.New("restore: no verified manifest (call VerifyStream first)")
	}
	if err := sc.Begin(ctx); err != nil {
		return nil, err
	}
	srcEvents, srcSecrets := SourceIDs(m)
	err := core.AwaitWriters(ctx, sc.W)
	var cpE *estype.ImportCheckpoint
	if err == nil {
		cpE, err = sc.D.Checkpoint(ctx, srcEvents)
	}
	var cpS *estype.ImportCheckpoint
	if err == nil {
		cpS, err = sc.D.Checkpoint(ctx, srcSecrets)
	}
	res := &RestoreResult{Resumed: cpE != nil || cpS != nil}
	if err == nil && !res.Resumed {
		err = checkEmpty(ctx, s)
	}
	sc.Exit()
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	progress := func(section string) {
		if o.ProgressFunc != nil {
			o.ProgressFunc(RestoreProgress{Section: section, Events: res.Events, Secrets: res.Secrets, Snapshots: res.Snapshots})
		}
	}

	sr := &sectionReader{br: bufio.NewReaderSize(r, 1<<20), h: sha256.New()}
	if err := sr.skipTo(markerEvents); err != nil {
		return res, err
	}
	sr.end = markerSecrets
	ie, err := transfer.ImportEvents(ctx, s, sr, &transfer.ImportOptions{
		SourceID: srcEvents, Resume: cpE != nil,
		MaxLineBytes: maxBackupLine, BatchEvents: o.BatchEvents,
		ProgressFunc: func(p transfer.ImportProgress) {
			res.Events = p.Lines
			progress(sectionEvents)
		},
	})
	if ie != nil {
		res.Events = ie.Lines
	}
	if err != nil {
		return res, fmt.Errorf("restore: events: %w", err)
	}
	if !sr.done {
		return res, fmt.Errorf("%w: the events section did not end where the backup says", estype.ErrBadBackup)
	}
	sr.done, sr.end = false, markerSnapshots
	is, err := transfer.ImportSecrets(ctx, s, sr, &transfer.SecretsImportOptions{SourceID: srcSecrets, Resume: cpS != nil, MaxLineBytes: maxBackupLine})
	if is != nil {
		res.Secrets = is.Lines
	}
	if err != nil {
		return res, fmt.Errorf("restore: secrets: %w", err)
	}
	if !sr.done && is.Done {
		// A finished secrets import returns without reading on: the rest
		// of the section is what it imported (checked by the hash below).
		if _, err := io.Copy(io.Discard, sr); err != nil {
			return res, err
		}
	}
	if !sr.done {
		return res, fmt.Errorf("%w: the secrets section did not end where the backup says", estype.ErrBadBackup)
	}
	progress(sectionSecrets)
	if err := restoreSnapshots(ctx, s, sr, m, res, progress); err != nil {
		return res, err
	}
	return res, nil
}

// checkEmpty returns a *NotEmptyError unless the store holds no events,
// secrets or snapshots.
func checkEmpty(ctx context.Context, s *eventstore.Store) error {
	sc := access.Core(s)
	st, err := sc.D.ReadState(ctx)
	if err != nil {
		return err
	}
	snaps, err := sc.D.ListSnapshots(ctx, &driver.ListSnapshotsParams{Limit: 1})
	if err != nil {
		return err
	}
	if st.EventCount > 0 || st.SecretCount > 0 || len(snaps) > 0 {
		return &estype.NotEmptyError{Events: st.EventCount, Secrets: st.SecretCount, Snapshots: int64(len(snaps))}
	}
	return nil
}

func restoreSnapshots(ctx context.Context, s *eventstore.Store, sr *sectionReader, m *Manifest, res *RestoreResult, progress func(string)) error {
	for {
		line, err := sr.line()
		if err != nil {
			return fmt.Errorf("%w: snapshots: %v", estype.ErrBadBackup, err)
		}
		if bytes.HasPrefix(line, manifestPrefix) {
			if got := hex.EncodeToString(sr.h.Sum(nil)); got != m.SHA256 {
				return fmt.Errorf("%w: the stream restored has SHA-256 %s, not the verified %s: it changed since it was verified", estype.ErrBadBackup, got, m.SHA256)
			}
			progress(sectionSnapshots)
			return nil
		}
		sr.h.Write(line)
		var sn snapshotLine
		if err := decodeStrict(line, &sn); err != nil {
			return fmt.Errorf("%w: snapshot line: %v", estype.ErrBadBackup, err)
		}
		if err := s.SaveSnapshot(ctx, sn.Key, sn.Content); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		res.Snapshots++
		if res.Snapshots%100 == 0 {
			progress(sectionSnapshots)
		}
	}
}

// sectionReader reads a backup stream line by line, hashing every line it
// passes, and serves one section's lines as an io.Reader that ends (EOF)
// at the line equal to end.
type sectionReader struct {
	br      *bufio.Reader
	h       hash.Hash
	end     []byte
	done    bool
	pending []byte
	buf     []byte
}

// line returns the next whole line, "\n" included, not yet hashed.
func (sr *sectionReader) line() ([]byte, error) {
	sr.buf = sr.buf[:0]
	for {
		chunk, err := sr.br.ReadSlice('\n')
		if len(sr.buf)+len(chunk) > maxBackupLine+1 {
			return nil, fmt.Errorf("a line longer than %d bytes", maxBackupLine)
		}
		switch {
		case err == nil:
			if len(sr.buf) == 0 {
				return chunk, nil
			}
			sr.buf = append(sr.buf, chunk...)
			return sr.buf, nil
		case errors.Is(err, bufio.ErrBufferFull):
			sr.buf = append(sr.buf, chunk...)
		case errors.Is(err, io.EOF):
			return nil, errors.New("the stream ends before its manifest")
		default:
			return nil, err
		}
	}
}

// skipTo hashes and skips lines up to and including marker.
func (sr *sectionReader) skipTo(marker []byte) error {
	for {
		line, err := sr.line()
		if err != nil {
			return fmt.Errorf("%w: %v", estype.ErrBadBackup, err)
		}
		sr.h.Write(line)
		if bytes.Equal(line, marker) {
			return nil
		}
	}
}

func (sr *sectionReader) Read(p []byte) (int, error) {
	for len(sr.pending) == 0 {
		if sr.done {
			return 0, io.EOF
		}
		line, err := sr.line()
		if err != nil {
			return 0, fmt.Errorf("%w: %v", estype.ErrBadBackup, err)
		}
		sr.h.Write(line)
		if bytes.Equal(line, sr.end) {
			sr.done = true
			return 0, io.EOF
		}
		sr.pending = line
	}
	n := copy(p, sr.pending)
	sr.pending = sr.pending[n:]
	return n, nil
}
