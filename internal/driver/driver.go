// Package driver is the seam between package eventstore and the SQL engines
// under adapters/. An engine implements Driver (and, optionally, Appender);
// package eventstore composes the operations and owns every rule: what a
// frozen store refuses, which positions an append takes, the audit event of
// a secret and its counters, the next secret idx, an import batch's
// outcomes, the incremental commit's policy on older events. A driver
// translates each operation to SQL and driver errors to the store's errors
// (package estype), and decides nothing else.
//
// The package is internal: applications cannot reach it; they open a store
// with eventstore.Open, or eventstore.New over an adapter's New.
//
// # How to add an engine
//
//  1. Implement Driver: the pool reads (Reader and the lookups), Write (one
//     transaction that locks the store-state row at its start) and the Tx
//     operations, BeginRead (one snapshot). Send every driver error through
//     one interpretError that maps it to estype's errors.
//  2. Add migrations/<name>/ with the same version numbers as the others.
//  3. Register the engine from its package's init (Register) with its URL
//     schemes and path suffixes.
//  4. Call drivertest.Exercise (each operation's contract),
//     conformance.Run and consumertest.Run (the store and the consumers on
//     top) from the engine's tests; all must pass unchanged.
//
// Appender is optional: without it, appends run as Write with State,
// InsertEvents and AdvanceState, which is correct on any engine.
//
// # Locking protocol
//
// Positions are dense and commit-ordered because every transaction that
// assigns positions or reads the frozen flag runs in Write, which locks the
// single store-state row first (PostgreSQL: SELECT ... FOR UPDATE; SQLite:
// BEGIN IMMEDIATE) and holds it until commit. An Appender keeps the same
// protocol inside its own statements.
package driver

import (
	"context"

	"github.com/esctl/esctl/estype"
)

// Driver is one SQL engine's side of the seam.
type Driver interface {
	// Name returns the engine name: "sqlite" or "postgres".
	Name() string

	// CreateIndex makes the index for content filters that spec
	// describes, if it is not there (PostgreSQL: online, CONCURRENTLY; a
	// build left invalid is rebuilt), and returns it.
	CreateIndex(ctx context.Context, spec *estype.IndexSpec) (*estype.Index, error)
	// ListIndexes returns the indexes CreateIndex made, by name.
	ListIndexes(ctx context.Context) ([]estype.Index, error)
	// DropIndex drops the index CreateIndex made under name, and reports
	// whether there was one.
	DropIndex(ctx context.Context, name string) (bool, error)

	// UseSchema tells the driver the schema version of the store, read by
	// the core before its first operation and again when it may have
	// changed: from estype.MetadataSchemaVersion on, events have metadata;
	// before it, the driver reads none (every Metadata nil) and is never
	// asked to write any.
	UseSchema(version uint)

	// Migrate applies, reverts, forces or reports the schema version using
	// the engine's embedded migrations.
	Migrate(ctx context.Context, p *MigrateParams) (*estype.SchemaStatus, error)
	// DropStore removes every object the store created. It succeeds on a
	// store that does not exist.
	DropStore(ctx context.Context) error

	// Write runs fn in one transaction that holds the store-state row
	// lock from its start (Tx.State is read under it). It commits when fn
	// returns nil; otherwise it rolls back and returns fn's error
	// unchanged. A COMMIT whose outcome the driver cannot learn is
	// estype.ErrOutcomeUnknown.
	Write(ctx context.Context, p *WriteParams, fn func(tx Tx) error) error

	// BeginRead starts a read-only transaction with one consistent
	// snapshot (PostgreSQL: REPEATABLE READ READ ONLY; SQLite: one read
	// transaction) for exports and backups.
	BeginRead(ctx context.Context) (ReadTx, error)

	// Reader methods run on the pool, each in its own snapshot.
	Reader

	// GetSnapshot returns a snapshot's content; found is false when absent
	// (an empty content may come back nil).
	GetSnapshot(ctx context.Context, key string) (content []byte, found bool, err error)
	// PutSnapshot inserts or replaces a snapshot (no store lock).
	PutSnapshot(ctx context.Context, p *Snapshot) error
	// DeleteSnapshot deletes the snapshot with exactly this key, if any.
	DeleteSnapshot(ctx context.Context, key string) error
	// GetSecret returns a live secret; found is false when the id is
	// missing or deleted.
	GetSecret(ctx context.Context, id string) (secret string, found bool, err error)
	// LatestEvent returns the matching event with the highest position, or
	// nil when none matches.
	LatestEvent(ctx context.Context, p *LatestEventParams) (*estype.StoredEvent, error)
	// Checkpoint returns the checkpoint of the import of a source, or nil.
	Checkpoint(ctx context.Context, sourceID string) (*estype.ImportCheckpoint, error)
	// ListCheckpoints returns every import checkpoint, ordered by source id.
	ListCheckpoints(ctx context.Context) ([]estype.ImportCheckpoint, error)

	// BeginIncremental records a new open incremental import.
	BeginIncremental(ctx context.Context, p *BeginIncrementalParams) error
	// PushIncremental stages events for an open import, holding the
	// import's row in share mode so that no commit runs meanwhile; found is
	// false when the import is not open (nothing staged).
	PushIncremental(ctx context.Context, p *PushIncrementalParams) (found bool, err error)
	// RollbackIncremental deletes an open import and its staged events;
	// found is false when it is not open.
	RollbackIncremental(ctx context.Context, id string) (found bool, err error)
	// ListIncremental lists open imports by creation time.
	ListIncremental(ctx context.Context) ([]estype.IncrementalImportInfo, error)

	// LastSecret returns the secret (or tombstone) with the highest idx,
	// or nil when there is none.
	LastSecret(ctx context.Context) (*estype.Secret, error)
	// FirstStoredPair returns the index of the first event whose
	// (aggregate id, version) pair is stored in events, or -1.
	FirstStoredPair(ctx context.Context, events []estype.StoredEvent) (int, error)
	// CountRows counts the rows of the store's tables (full scans).
	CountRows(ctx context.Context) (*RowCounts, error)
	// ReadStats counts what Describe reports with its Stats option.
	ReadStats(ctx context.Context, p *ReadStatsParams) (*StoreStats, error)

	// Consumers keeps durable consumers' checkpoints, leases and parked
	// events.
	Consumers
}

// Appender is an engine's own append, for engines that can do better than
// the generic Write + State + InsertEvents + AdvanceState (PostgreSQL: one
// round trip, and an in-doubt COMMIT resolved by its transaction id).
type Appender interface {
	// Append writes groups of events in one transaction under the store
	// lock. See AppendParams for the contract.
	Append(ctx context.Context, p *AppendParams) (*AppendResult, error)
}

// Listener is an engine's wake-up across processes (PostgreSQL: LISTEN
// and NOTIFY): subscriptions read at once instead of at their next poll.
// Wake-ups are hints; a lost one costs a poll interval.
type Listener interface {
	// Listen calls wake after each notification that events may have
	// been committed, by any process, and after each (re)connection, until
	// ctx ends. It returns an error, without waiting for ctx, when
	// notifications cannot arrive (a pooler or a standby that does not
	// pass them on): the store then polls.
	Listen(ctx context.Context, wake func()) error
}

// WriteParams configure a Write transaction.
type WriteParams struct {
	// Bulk: the transaction processes whole tables (imports, incremental
	// commits), so the engine may plan for it (PostgreSQL allows hash
	// joins); otherwise statements touch a few rows by index.
	Bulk bool
}

// Tx is the operations of a Write transaction. Each does one thing; none
// checks the frozen flag or decides what to write: the caller (package
// eventstore) does. Errors are estype's errors. After an operation
// returns an error the caller must return from Write's fn, except where an
// operation says the transaction stays usable.
type Tx interface {
	// State is the store-state row as read under the lock when the
	// transaction began. It does not change with the operations.
	State() State

	// InsertEvents inserts events into a table at the positions given.
	// If one's (aggregate id, version) pair is already in the table or
	// earlier in events, nothing of this call is written, the transaction
	// stays usable, and conflict is its index; otherwise conflict is -1.
	// The events' payloads are only read during the call.
	InsertEvents(ctx context.Context, p *InsertEventsParams) (conflict int, err error)
	// LastVersions returns, for each aggregate id, the highest version
	// stored in events (0 when the aggregate has no event), in the order
	// given, reading the aggregate-version unique index (no scan of an
	// aggregate's events). Read under the store lock, it stays true until
	// commit but for this transaction's own inserts.
	LastVersions(ctx context.Context, aggregateIDs []string) ([]int64, error)
	// AdvanceState sets last_position to LastPosition and adds Events to
	// the event count.
	AdvanceState(ctx context.Context, p *AdvanceStateParams) error
	// SetFrozen sets the frozen flag and its reason.
	SetFrozen(ctx context.Context, p *SetFrozenParams) error

	// MaxSecretIdx returns the highest secret idx, tombstones included, or 0.
	MaxSecretIdx(ctx context.Context) (int64, error)
	// InsertSecrets inserts secrets with their idx (a nil Secret is a
	// tombstone). If one's id or idx is already used, or used earlier in
	// secrets, nothing of this call is written, the transaction stays
	// usable, and conflict is its index; otherwise -1.
	InsertSecrets(ctx context.Context, secrets []estype.Secret) (conflict int, err error)
	// TombstoneSecret sets a live secret's value to NULL; deleted is false
	// (nothing written) when the id is missing or a tombstone already.
	TombstoneSecret(ctx context.Context, id string) (deleted bool, err error)
	// AddSecretCounts adds to the state row's secret and deleted-secret
	// counts.
	AddSecretCounts(ctx context.Context, p *AddSecretCountsParams) error

	// UpsertCheckpoint writes an import's checkpoint.
	UpsertCheckpoint(ctx context.Context, cp *estype.ImportCheckpoint) error
	// DeleteCheckpoint deletes a source's checkpoint, if any.
	DeleteCheckpoint(ctx context.Context, sourceID string) error
	// DeleteSnapshots deletes every snapshot.
	DeleteSnapshots(ctx context.Context) error
	// ClearStaging empties the staging table of replacing imports.
	ClearStaging(ctx context.Context) error
	// DeleteEvents deletes every event and sets last_position and the
	// event count to 0.
	DeleteEvents(ctx context.Context) error
	// SwapStaging replaces every event by the staged ones (same
	// positions), sets last_position to the highest staged position (0
	// when none) and the event count to their number, and empties the
	// staging table. Concurrent readers' snapshots stay intact.
	SwapStaging(ctx context.Context) error

	// StageIncremental records a new incremental import and stages its
	// events in this transaction (a dry run's import, rolled back with it).
	StageIncremental(ctx context.Context, p *PushIncrementalParams) error
	// LockIncremental locks an open incremental import's row; found is
	// false when it is not open.
	LockIncremental(ctx context.Context, id string) (found bool, err error)
	// ClassifyIncremental sorts a locked import's staged events into
	// classes (see IncrementalClass) in a work area of the transaction and
	// returns the counts. The order of the staged events is (timestamp,
	// push order).
	ClassifyIncremental(ctx context.Context, id string) (*IncrementalWork, error)
	// AppendIncremental inserts the work area's IncrementalFresh events
	// in order at positions After+1, After+2, ..., each with version (its
	// aggregate's highest stored version, or 0) + its rank among the
	// aggregate's fresh events. It does not touch the state row.
	AppendIncremental(ctx context.Context, p *AppendIncrementalParams) error
	// DeleteIncremental deletes an import's row, its staged events and
	// the work area.
	DeleteIncremental(ctx context.Context, id string) error
}

// State is the store-state row as locked by a Write transaction.
type State struct {
	Frozen       bool
	FrozenReason string
	LastPosition int64
}

// Table is where InsertEvents writes.
type Table int

const (
	// Events is the store's events.
	Events Table = iota
	// Staging is the staging table of a replacing import, which
	// SwapStaging later moves into place.
	Staging
)

// InsertEventsParams are the arguments of Tx.InsertEvents.
type InsertEventsParams struct {
	Table  Table
	Events []estype.StoredEvent
}

// AdvanceStateParams are the arguments of Tx.AdvanceState.
type AdvanceStateParams struct {
	LastPosition int64
	Events       int64
}

// AddSecretCountsParams are the arguments of Tx.AddSecretCounts.
type AddSecretCountsParams struct {
	Secrets int64 // rows added, tombstones included
	Deleted int64 // tombstones added
}

// IncrementalClass is what ClassifyIncremental makes of a staged event.
type IncrementalClass int

// The classes, in the order they are decided: a staged event identical
// (aggregate id, type, timestamp, payload bytes) to an earlier staged one is
// IncrementalDuplicateStaged; else identical to a stored event,
// IncrementalDuplicateStored; else with a timestamp below the newest stored
// event's, IncrementalOlder; else IncrementalFresh.
const (
	IncrementalFresh IncrementalClass = iota
	IncrementalDuplicateStaged
	IncrementalDuplicateStored
	IncrementalOlder
)

// IncrementalWork counts the classes of a classified import.
type IncrementalWork struct {
	Fresh      int64
	Duplicates int64 // both duplicate classes
	Older      int64
	// NewestTimestamp is the newest stored event's timestamp, -1 when
	// the store is empty.
	NewestTimestamp int64
	// The first older event in (timestamp, push order), when Older > 0.
	OldestAggregateID string
	OldestTimestamp   int64
}

// AppendIncrementalParams are the arguments of Tx.AppendIncremental.
type AppendIncrementalParams struct {
	After int64 // the store's last position
}

// Reader holds the reads that exports run inside one snapshot.
type Reader interface {
	// ListEvents returns one page of events (see ListEventsParams) and the
	// store's last position, read before the events (in the same snapshot
	// inside a ReadTx).
	ListEvents(ctx context.Context, p *ListEventsParams) (*ListEventsResult, error)
	// ReadState returns the store-state row and the statistics Describe
	// needs.
	ReadState(ctx context.Context) (*StoreState, error)
	// ListSecrets returns secrets ordered by idx.
	ListSecrets(ctx context.Context, p *ListSecretsParams) ([]estype.Secret, error)
	// ListSnapshots returns snapshots ordered by key, after AfterKey.
	ListSnapshots(ctx context.Context, p *ListSnapshotsParams) ([]Snapshot, error)
}

// ReadTx is a Reader bound to one snapshot. Close ends it.
type ReadTx interface {
	Reader
	// ScanEvents reads the events ListEvents would return for p, but hands
	// them to fn one at a time as the engine returns them. The event
	// passed to fn, its Payload included, is valid only during the call.
	// An error from fn stops the read and is returned unchanged.
	// lastPosition is the store's last position in the snapshot.
	ScanEvents(ctx context.Context, p *ListEventsParams, fn func(*estype.StoredEvent) error) (lastPosition int64, err error)
	Close(ctx context.Context) error
}

// MigrateParams are the arguments of Migrate.
type MigrateParams struct {
	Op      estype.MigrateOp
	Steps   int  // MigrateDown: how many (0: all)
	Version uint // MigrateForce: the version to record
}

// AppendParams are the arguments of Appender.Append.
//
// Contract: in one transaction, lock the store-state row and read frozen and
// last_position. If frozen, write nothing and report Frozen. Otherwise a
// request conflicts when any of its (aggregate id, version) pairs is already
// stored; conflicting requests write nothing. The events of the remaining
// requests are inserted in request order, then event order, at positions
// last_position+1, +2, ... and last_position and the event count advance.
// The caller guarantees that no pair occurs twice in one call.
type AppendParams struct {
	Requests []AppendRequest
}

// AppendRequest is one caller's events: written all together or not at all.
type AppendRequest struct {
	Events []estype.Event
}

// AppendResult reports the outcome of an append.
type AppendResult struct {
	// Frozen: the store was frozen and nothing was written.
	Frozen bool
	// FirstPosition is the position given to the first written event.
	FirstPosition int64
	// Conflicts lists the requests that wrote nothing, each with one of
	// its pairs that is already stored.
	Conflicts []AppendConflict
}

// AppendConflict names a request of AppendParams that conflicted.
type AppendConflict struct {
	Request          int
	AggregateID      string
	AggregateVersion int64
}

// SetFrozenParams are the arguments of Tx.SetFrozen.
type SetFrozenParams struct {
	Frozen bool
	Reason string
}

// Snapshot is a stored snapshot.
type Snapshot struct {
	Key     string
	Content []byte
}

// ListSnapshotsParams are the arguments of Reader.ListSnapshots.
type ListSnapshotsParams struct {
	AfterKey string // keys strictly greater than this ("" from the start)
	Limit    int
}

// LatestEventParams are the arguments of LatestEvent. nil lists match
// anything; the caller never passes empty non-nil lists.
type LatestEventParams struct {
	AggregateIDs []string
	EventTypes   []string
	Payload      *Contains // nil: no payload filter
	Metadata     *Contains // nil: no metadata filter (an event without metadata matches none)
}

// ListEventsParams are the arguments of Reader.ListEvents.
//
// Position order (ByTime false): events with position > After that match the
// filters, ordered by position, at most Limit. Time order (ByTime true):
// events with timestamp <= FinishTime (nil: unbounded) that match the
// filters and come after (AfterTimestamp, After) in (timestamp, position)
// order, ordered by (timestamp, position), at most Limit; the caller folds
// StartTime into that keyset (a driver may also filter on StartTime, which
// is then redundant). nil lists match anything; the caller never passes
// empty non-nil lists.
type ListEventsParams struct {
	After          int64
	AfterTimestamp int64 // ByTime only; -1 from the start
	ByTime         bool
	StartTime      *int64
	FinishTime     *int64
	AggregateIDs   []string
	EventTypes     []string
	// Payload and Metadata, when set, keep the events whose payload (or
	// metadata; none matches no filter) contains the filter (Contains).
	Payload  *Contains
	Metadata *Contains
	Limit    int
}

// ListEventsResult is one page of events.
type ListEventsResult struct {
	Events       []estype.StoredEvent
	LastPosition int64 // the store's last position in the same snapshot
}

// StoreState is the store-state row plus the statistics Describe reports.
type StoreState struct {
	LastPosition       int64
	EventCount         int64
	SecretCount        int64 // live and deleted
	DeletedSecretCount int64
	Frozen             bool
	FrozenReason       string
	LastEventTimestamp *int64 // nil on an empty store
}

// RowCounts are what CountRows counts.
type RowCounts struct {
	Events        int64
	MinPosition   int64 // 0 when there are no events
	MaxPosition   int64
	Secrets       int64 // rows, tombstones included
	Tombstones    int64
	Quarantined   int64 // rows of events_quarantine
	StagedImports int64 // rows of import_staging
	Aggregates    int64 // distinct aggregate ids of events
}

// ReadStatsParams are the arguments of ReadStats.
type ReadStatsParams struct {
	// Counted reads the aggregate count the writes keep (schema version 6
	// and later) instead of counting distinct aggregates.
	Counted bool
}

// StoreStats are the counts ReadStats returns.
type StoreStats struct {
	FirstPosition  int64 // 0 on an empty store
	AggregateCount int64
	SnapshotCount  int64
}

// ListSecretsParams are the arguments of Reader.ListSecrets: secrets with
// idx >= MinIdx, optionally only the listed ids (nil: any; never empty
// non-nil), tombstones only when IncludeDeleted, ordered by idx, skipping
// Skip, at most Limit.
type ListSecretsParams struct {
	MinIdx         int64
	IDs            []string
	IncludeDeleted bool
	Skip           int
	Limit          int
}

// BeginIncrementalParams are the arguments of BeginIncremental.
type BeginIncrementalParams struct {
	ID  string
	Now int64 // ms since the Unix epoch
}

// PushIncrementalParams are the arguments of PushIncremental. The events
// are validated; AggregateVersion is unused.
type PushIncrementalParams struct {
	ID     string
	Events []estype.Event
	Now    int64
}

// ErrNoMetadata is what a driver returns, writing nothing, when it is asked
// to write an event with metadata into a store at a schema version before
// estype.MetadataSchemaVersion (the core checks first; this keeps any
// path that does not from dropping metadata silently).
func ErrNoMetadata() error {
	return &estype.SchemaVersionError{Current: estype.OldestServedSchemaVersion, Expected: estype.MetadataSchemaVersion, Need: "event metadata"}
}

// AnyMetadata reports whether one of events has metadata.
func AnyMetadata(events []estype.StoredEvent) bool {
	for i := range events {
		if events[i].Metadata != nil {
			return true
		}
	}
	return false
}

// AnyEventMetadata reports whether one of events has metadata.
func AnyEventMetadata(events []estype.Event) bool {
	for i := range events {
		if events[i].Metadata != nil {
			return true
		}
	}
	return false
}
