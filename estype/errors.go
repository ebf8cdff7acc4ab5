package estype

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Sentinel errors. Test for them with errors.Is; the typed errors below match
// their sentinel through their Is method, so callers can use either
// errors.Is(err, ErrConflict) or errors.As(err, &conflict).
var (
	// ErrConflict: an event with the same aggregate id and version is already
	// stored, or an aggregate is not as Append expected (optimistic
	// concurrency). Returned as *ConflictError.
	ErrConflict = errors.New("eventstore: concurrency conflict")
	// ErrFrozen: the store is frozen and refuses appends and secret writes.
	ErrFrozen = errors.New("eventstore: store is frozen")
	// ErrAlreadyFrozen is returned by Freeze on a frozen store.
	ErrAlreadyFrozen = errors.New("eventstore: store is already frozen")
	// ErrAlreadyUnfrozen is returned by Unfreeze on a store that is not frozen.
	ErrAlreadyUnfrozen = errors.New("eventstore: store is already unfrozen")
	// ErrInvalidEvent: an event failed validation. Returned as *InvalidEventError.
	ErrInvalidEvent = errors.New("eventstore: invalid event")
	// ErrInvalidFilter: a read filter failed validation. Returned as *InvalidFilterError.
	ErrInvalidFilter = errors.New("eventstore: invalid filter")
	// ErrInvalidCursor: a cursor string is malformed.
	ErrInvalidCursor = errors.New("eventstore: invalid cursor")
	// ErrCursorBeyondEnd: a cursor points past the last event of the store (for
	// example a cursor from another store, or from before a restore of an older
	// backup). Returned as *CursorBeyondEndError.
	ErrCursorBeyondEnd = errors.New("eventstore: cursor is beyond the end of the store")
	// ErrSecretExists: the secret id is in use or was used before (ids are
	// never reusable, deleted ones included). Returned as *SecretExistsError.
	ErrSecretExists = errors.New("eventstore: secret id already used")
	// ErrInvalidSecret: a secret id or value failed validation.
	ErrInvalidSecret = errors.New("eventstore: invalid secret")
	// ErrInvalidSnapshot: a snapshot key or content failed validation.
	ErrInvalidSnapshot = errors.New("eventstore: invalid snapshot")
	// ErrClosed: the Store was closed.
	ErrClosed = errors.New("eventstore: store is closed")
	// ErrNotInitialized: the database holds no store; call Init (esctl init).
	ErrNotInitialized = errors.New("eventstore: store is not initialized")
	// ErrSchemaVersion: the store's schema is older than this code (pending
	// migrations: run Init or esctl migrate up) or newer (upgrade the code),
	// or a migration was interrupted (dirty). Returned as *SchemaVersionError.
	ErrSchemaVersion = errors.New("eventstore: schema version mismatch")
	// ErrUnavailable: the database could not be reached or the connection
	// broke before the operation could have taken effect.
	ErrUnavailable = errors.New("eventstore: database unavailable")
	// ErrTimeout: a lock or statement timeout expired; nothing was written.
	ErrTimeout = errors.New("eventstore: database timeout")
	// ErrOutcomeUnknown: the connection broke while a commit was in flight and
	// the store could not learn whether it committed. The events may or may
	// not be stored; read the aggregate before retrying.
	ErrOutcomeUnknown = errors.New("eventstore: commit outcome unknown")
	// ErrUnknownScheme: Open was given a URL no registered adapter accepts.
	ErrUnknownScheme = errors.New("eventstore: unsupported database URL")
	// ErrResources: the database ran out of a resource: disk space, memory,
	// connection slots or a configured limit (PostgreSQL's SQLSTATE class
	// 53; SQLite's SQLITE_FULL and SQLITE_NOMEM). Nothing of the failed
	// write was stored; an interrupted import, backup or copy resumes from
	// its last checkpoint once the resource is freed. Returned as
	// *ResourceError, which says which resource and what to do.
	ErrResources = errors.New("eventstore: database out of resources")
	// ErrInvariant: the database refused a write that would have broken one
	// of the store's invariants (for example an event at a position <= 0).
	// Nothing of that write was stored. It means a bug in esctl: please
	// report it. Returned as *InvariantError.
	ErrInvariant = errors.New("eventstore: internal error: store invariant violated")
)

// Resource names what a *ResourceError ran out of.
type Resource string

// The resources of ResourceError.
const (
	ResourceDisk        Resource = "disk space"
	ResourceMemory      Resource = "memory"
	ResourceConnections Resource = "connection slots"
	ResourceLimit       Resource = "a configured limit"
)

// ResourceError reports that the database ran out of Resource. Err is the
// engine's error (its SQLSTATE or SQLite code is in the chain).
type ResourceError struct {
	Resource Resource
	Err      error
}

func (e *ResourceError) Error() string {
	return fmt.Sprintf("eventstore: the database is out of %s (%s): %v", e.Resource, e.Advice(), e.Err)
}

// Advice says what an operator does about it.
func (e *ResourceError) Advice() string {
	switch e.Resource {
	case ResourceDisk:
		return "free space on the disk of the database (the PostgreSQL server's data directory, or the SQLite file's disk), then run the command again; nothing of the failed write was stored"
	case ResourceMemory:
		return "the database ran out of memory: lower the concurrent work or give the server more memory, then run the command again"
	case ResourceConnections:
		return "the server has no free connection slot: lower the clients' pool sizes (pool_max_conns) or raise the server's max_connections, then run the command again"
	}
	return "a limit of the server's configuration was reached (for example temp_file_limit or max_locks_per_transaction; its log says which): raise it, then run the command again"
}

// Is reports whether target is ErrResources; running out of connection
// slots is also ErrUnavailable (the operation did not reach the store).
func (e *ResourceError) Is(target error) bool {
	return target == ErrResources || (target == ErrUnavailable && e.Resource == ResourceConnections)
}

// Unwrap returns the engine's error.
func (e *ResourceError) Unwrap() error { return e.Err }

// ConflictError reports an optimistic-concurrency conflict. For an append
// with explicit versions (SaveEvent, SaveEvents, Append with Exactly) the
// event at AggregateVersion of AggregateID already exists. For Append with
// NoStream or StreamExists the aggregate was not as expected: it was at
// AggregateVersion (0: it had no event).
type ConflictError struct {
	AggregateID      string
	AggregateVersion int64
	// Expected is the expectation of the Append that failed; the zero
	// Expect for SaveEvent and SaveEvents.
	Expected Expect
}

func (e *ConflictError) Error() string {
	switch {
	case e.AggregateID == "":
		return "eventstore: concurrency conflict: aggregate id and version already stored"
	case e.Expected.Resolved() && e.AggregateVersion == 0:
		return fmt.Sprintf("eventstore: concurrency conflict: expected %s, aggregate %q has no events", e.Expected, e.AggregateID)
	case e.Expected.Resolved():
		return fmt.Sprintf("eventstore: concurrency conflict: expected %s, aggregate %q is at version %d", e.Expected, e.AggregateID, e.AggregateVersion)
	case e.Expected.kind == expectExactly:
		return fmt.Sprintf("eventstore: concurrency conflict: expected %s, aggregate %q already has version %d", e.Expected, e.AggregateID, e.AggregateVersion)
	}
	return fmt.Sprintf("eventstore: concurrency conflict: aggregate %q already has version %d", e.AggregateID, e.AggregateVersion)
}

// Is reports whether target is ErrConflict.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// InvalidEventError reports an event that failed validation. Index is the
// event's index in the SaveEvents call (0 for SaveEvent).
type InvalidEventError struct {
	Index  int
	Field  string
	Reason string
}

func (e *InvalidEventError) Error() string {
	return fmt.Sprintf("eventstore: invalid event %d: field %q: %s", e.Index, e.Field, e.Reason)
}

// Is reports whether target is ErrInvalidEvent.
func (e *InvalidEventError) Is(target error) bool { return target == ErrInvalidEvent }

// InvalidFilterError reports a read filter that failed validation. Err, when
// set, is the underlying error (for a malformed cursor an *InvalidCursorError,
// so errors.Is(err, ErrInvalidCursor) holds too).
type InvalidFilterError struct {
	Field  string
	Reason string
	Err    error
}

func (e *InvalidFilterError) Error() string {
	if e.Field == "" {
		return "eventstore: invalid filter: " + e.Reason
	}
	return fmt.Sprintf("eventstore: invalid filter: field %q: %s", e.Field, e.Reason)
}

// Is reports whether target is ErrInvalidFilter.
func (e *InvalidFilterError) Is(target error) bool { return target == ErrInvalidFilter }

// Unwrap returns the underlying error, if any.
func (e *InvalidFilterError) Unwrap() error { return e.Err }

// InvalidCursorError reports a malformed cursor string.
type InvalidCursorError struct {
	Cursor string
	Reason string
}

func (e *InvalidCursorError) Error() string {
	c := e.Cursor
	if len(c) > 40 {
		c = c[:40] + "..."
	}
	return fmt.Sprintf("eventstore: invalid cursor %q: %s", c, e.Reason)
}

// Is reports whether target is ErrInvalidCursor.
func (e *InvalidCursorError) Is(target error) bool { return target == ErrInvalidCursor }

// CursorBeyondEndError reports a cursor past the store's last position.
type CursorBeyondEndError struct {
	Position int64 // the cursor's position
	End      int64 // the store's last position
}

func (e *CursorBeyondEndError) Error() string {
	return fmt.Sprintf("eventstore: cursor at position %d is beyond the end of the store (last position %d)", e.Position, e.End)
}

// Is reports whether target is ErrCursorBeyondEnd.
func (e *CursorBeyondEndError) Is(target error) bool { return target == ErrCursorBeyondEnd }

// SecretExistsError reports a secret id that is in use or was used before.
type SecretExistsError struct {
	ID string
}

func (e *SecretExistsError) Error() string {
	if e.ID == "" {
		return "eventstore: secret id already used (ids are never reusable, deleted ones included)"
	}
	return fmt.Sprintf("eventstore: secret id %q already used (ids are never reusable, deleted ones included)", e.ID)
}

// Is reports whether target is ErrSecretExists.
func (e *SecretExistsError) Is(target error) bool { return target == ErrSecretExists }

// SchemaVersionError reports a schema that does not match this code.
type SchemaVersionError struct {
	Current  uint // version found in the database (0: none)
	Dirty    bool // an interrupted migration left the schema dirty
	Expected uint // version this code needs
	// Need, when set, is what needs Expected on a store this code serves
	// at Current otherwise ("event metadata").
	Need string
}

func (e *SchemaVersionError) Error() string {
	switch {
	case e.Need != "":
		return fmt.Sprintf("eventstore: %s needs schema version %d, the store is at %d: migrate it (esctl migrate up, or Init)", e.Need, e.Expected, e.Current)
	case e.Dirty:
		return fmt.Sprintf("eventstore: schema version %d is dirty (an interrupted migration); fix it and force the version (esctl migrate force)", e.Current)
	case e.Current < e.Expected:
		return fmt.Sprintf("eventstore: schema version %d is older than %d: migrations are pending (run Init, or esctl migrate up)", e.Current, e.Expected)
	default:
		return fmt.Sprintf("eventstore: schema version %d is newer than %d, the newest this code knows: upgrade esctl", e.Current, e.Expected)
	}
}

// Is reports whether target is ErrSchemaVersion.
func (e *SchemaVersionError) Is(target error) bool { return target == ErrSchemaVersion }

// InvariantError reports a write that the database refused because it would
// have broken an invariant of the store, named by Invariant. Err is the
// driver's error.
type InvariantError struct {
	Invariant string
	Err       error
}

func (e *InvariantError) Error() string {
	return fmt.Sprintf("eventstore: internal error: the database refused a write that breaks the invariant %q; nothing of it was stored (please report this bug): %v", e.Invariant, e.Err)
}

// Is reports whether target is ErrInvariant.
func (e *InvariantError) Is(target error) bool { return target == ErrInvariant }

// Unwrap returns the driver's error.
func (e *InvariantError) Unwrap() error { return e.Err }

// Invariants that the databases enforce (InvariantError.Invariant).
const (
	InvariantPositionPositive = "every event's position is > 0"
	InvariantPositionUnique   = "every position holds one event"
)

// Imports, backups and restores.

var (
	// ErrBadBackup: a backup stream that fails its checks (truncated,
	// corrupted, not a backup, a newer format). Errors wrapping it are
	// *LineError values naming the line and byte offset.
	ErrBadBackup = errors.New("eventstore: bad backup")
	// ErrNotEmpty: Restore was asked to write into a store that holds
	// events, secrets or snapshots.
	ErrNotEmpty = errors.New("eventstore: store is not empty")
)

// NotEmptyError is the ErrNotEmpty a restore returns, with what the store
// holds.
type NotEmptyError struct {
	Events, Secrets, Snapshots int64
}

func (e *NotEmptyError) Error() string {
	snaps := "no snapshots"
	if e.Snapshots > 0 {
		snaps = "snapshots"
	}
	return fmt.Sprintf("%v: it holds %d events, %d secrets and %s", ErrNotEmpty, e.Events, e.Secrets, snaps)
}

// Is reports whether target is ErrNotEmpty.
func (e *NotEmptyError) Is(target error) bool { return target == ErrNotEmpty }

// ErrResumeMismatch: an import was asked to resume at a point that does not
// match what the store recorded for that source (another file, an offset
// that is not the recorded one, a store changed since a replacing import
// began). Nothing was written.
var ErrResumeMismatch = errors.New("eventstore: resume does not match the recorded import")

// ErrImportRecorded: a new MANUAL import (neither Resume nor ByteOffset)
// of a source the store already has a checkpoint of: re-reading it from
// its start would append its events a second time or fail on their
// positions. Matched by *ImportRecordedError. Nothing was written.
var ErrImportRecorded = errors.New("eventstore: the store has an import of this source")

// ImportRecordedError is ErrImportRecorded with what the store recorded of
// the source.
type ImportRecordedError struct {
	SourceID string
	// Done: the source was imported to its end. Otherwise the import is
	// unfinished: resume it (ImportOptions.Resume) or abort it
	// (transfer.AbortImport).
	Done       bool
	Lines      int64
	Events     int64
	ByteOffset int64
	UpdatedAt  int64 // ms since the Unix epoch
}

func (e *ImportRecordedError) Error() string {
	at := time.UnixMilli(e.UpdatedAt).UTC().Format(time.RFC3339)
	if e.Done {
		return fmt.Sprintf("%v: source %q was imported completely (%d lines, %d events, finished %s)", ErrImportRecorded, e.SourceID, e.Lines, e.Events, at)
	}
	return fmt.Sprintf("%v: source %q has an unfinished import (%d lines, %d events committed, through byte offset %d, last at %s)",
		ErrImportRecorded, e.SourceID, e.Lines, e.Events, e.ByteOffset, at)
}

// Is reports whether target is ErrImportRecorded.
func (e *ImportRecordedError) Is(target error) bool { return target == ErrImportRecorded }

// ErrCopyMismatch: Copy's target is neither empty nor an earlier copy of
// the source (its last event or its highest secret is not the source's).
// Nothing was written.
var ErrCopyMismatch = errors.New("eventstore: the target's history is not the source's")

// ErrBadInput is matched by every *LineError: the input of an import is
// malformed or does not fit the store.
var ErrBadInput = errors.New("eventstore: bad input")

// LineError reports a rejected NDJSON line. Line and Offset locate it in the
// source (Offset is the byte offset of the line's first byte, counted from
// the start of the source even when the import resumed); Column is the byte
// offset of the problem within the line, or -1.
type LineError struct {
	Line   int64
	Offset int64
	Column int
	Field  string // the envelope field at fault, if any
	Reason string
	Err    error // underlying error, if any (*ConflictError, ...)
}

func (e *LineError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "line %d (byte offset %d", e.Line, e.Offset)
	if e.Column >= 0 {
		fmt.Fprintf(&b, ", column %d", e.Column+1)
	}
	b.WriteString("): ")
	if e.Field != "" {
		fmt.Fprintf(&b, "field %q: ", e.Field)
	}
	b.WriteString(e.Reason)
	return b.String()
}

// Is reports whether target is ErrBadInput.
func (e *LineError) Is(target error) bool { return target == ErrBadInput }

// Unwrap returns the underlying error, if any.
func (e *LineError) Unwrap() error { return e.Err }

// ErrImportNotFound: no open incremental import has this id (never begun,
// committed, or rolled back).
var ErrImportNotFound = errors.New("eventstore: incremental import not found")

// ErrOlderEvents: a commit with OlderFail met events older than the store's
// newest event. Returned as *OlderEventsError.
var ErrOlderEvents = errors.New("eventstore: incremental import has events older than the store's newest")

// OlderEventsError reports the events a commit refused as older.
type OlderEventsError struct {
	Count       int64 // staged events older than the newest stored event
	AggregateID string
	Timestamp   int64 // the oldest of them
	Newest      int64 // the store's newest timestamp
}

func (e *OlderEventsError) Error() string {
	return fmt.Sprintf("eventstore: incremental import has %d events older than the store's newest event (timestamp %d), the oldest of aggregate %q at %d: commit with OlderSkip to drop them, or roll back",
		e.Count, e.Newest, e.AggregateID, e.Timestamp)
}

// Is reports whether target is ErrOlderEvents.
func (e *OlderEventsError) Is(target error) bool { return target == ErrOlderEvents }
