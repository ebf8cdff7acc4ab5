package eventstore

import (
	"context"
)

// Dialect adapts the store to one SQL engine. It is implemented by the
// packages under adapters/ and exercised by the conformance suite in
// eventstore/eventstoretest; applications use Store, not Dialect.
//
// THIS INTERFACE IS NOT A STABLE API. Do not implement it outside this module.
//
// The seam is deliberately thin: a Dialect translates these calls to SQL and
// driver errors to this package's errors, and nothing else. Every rule
// (validation, cursors, freeze semantics, group commit, NDJSON, import state
// machines) lives in package eventstore. Each method takes a context and a
// *XxxParams struct and returns eventstore types, never driver types.
//
// How to add a dialect:
//  1. Implement Dialect; send every driver error through one interpretError.
//  2. Add migrations/<name>/ with the same version numbers as the others.
//  3. Call eventstoretest.Run from the adapter's tests; it must pass unchanged.
//
// Writes follow one locking protocol, which is what makes positions dense and
// commit-ordered: every write that assigns positions or reads the frozen flag
// (Append, SetFrozen, SetSecret, DeleteSecret, ImportEvents...) first locks the
// single store-state row (PostgreSQL: SELECT ... FOR UPDATE inside the
// transaction; SQLite: BEGIN IMMEDIATE), reads frozen and last_position under
// that lock, and holds it until commit.
type Dialect interface {
	// Name returns the engine name: "sqlite" or "postgres".
	Name() string

	// Migrate applies, reverts, forces or reports the schema version using
	// the embedded migrations of the engine.
	Migrate(ctx context.Context, p *MigrateParams) (*SchemaStatus, error)
	// DropStore removes every object the store created (tables, indexes,
	// the migrations table; on PostgreSQL the schema too when it is empty
	// and not "public"). It succeeds on a store that does not exist.
	DropStore(ctx context.Context) error

	// Append writes groups of events in one transaction under the store
	// lock. See AppendParams for the contract.
	Append(ctx context.Context, p *AppendParams) (*AppendResult, error)
	// SetFrozen sets the frozen flag under the store lock, waiting for
	// in-flight writers, and reports the previous value. It writes nothing
	// when the flag already has the requested value.
	SetFrozen(ctx context.Context, p *SetFrozenParams) (*SetFrozenResult, error)
	// SetSecret inserts a secret and its audit event atomically under the
	// store lock, unless the store is frozen or the id was ever used.
	SetSecret(ctx context.Context, p *SetSecretParams) (*SetSecretResult, error)
	// DeleteSecret replaces a live secret by a tombstone (NULL) and writes
	// its audit event atomically under the store lock, unless the store is
	// frozen; it writes nothing when the id is missing or already deleted.
	DeleteSecret(ctx context.Context, p *DeleteSecretParams) (*DeleteSecretResult, error)
	// PutSnapshot inserts or replaces a snapshot.
	PutSnapshot(ctx context.Context, p *PutSnapshotParams) error
	// DeleteSnapshot deletes the snapshot with exactly this key, if any.
	DeleteSnapshot(ctx context.Context, p *DeleteSnapshotParams) error
	// GetSnapshot returns a snapshot's content; found is false when absent.
	GetSnapshot(ctx context.Context, p *GetSnapshotParams) (content []byte, found bool, err error)
	// GetSecret returns a live secret; found is false when the id is
	// missing or deleted.
	GetSecret(ctx context.Context, p *GetSecretParams) (secret string, found bool, err error)
	// LatestEvent returns the matching event with the highest position, or
	// nil when none matches.
	LatestEvent(ctx context.Context, p *LatestEventParams) (*StoredEvent, error)

	// ImportEvents writes one batch of an import in one transaction under
	// the store lock, together with the import's checkpoint (see
	// ImportEventsParams). It never writes part of a batch.
	ImportEvents(ctx context.Context, p *ImportEventsParams) (*ImportEventsResult, error)
	// SwapStaging replaces the store's events (and snapshots) by the staged
	// ones in one transaction under the store lock (see SwapStagingParams).
	SwapStaging(ctx context.Context, p *SwapStagingParams) error
	// AbortImport undoes an unfinished import in one transaction under the
	// store lock (see AbortImportParams).
	AbortImport(ctx context.Context, p *AbortImportParams) error
	// ImportSecrets writes one batch of secrets, keeping their idx, with the
	// import's checkpoint, in one transaction under the store lock.
	ImportSecrets(ctx context.Context, p *ImportSecretsParams) (*ImportSecretsResult, error)
	// Checkpoint returns the checkpoint of the import of a source, or nil.
	Checkpoint(ctx context.Context, sourceID string) (*ImportCheckpoint, error)
	// ListCheckpoints returns every import checkpoint, ordered by source id.
	ListCheckpoints(ctx context.Context) ([]ImportCheckpoint, error)

	// BeginIncremental records a new open incremental import.
	BeginIncremental(ctx context.Context, p *BeginIncrementalParams) error
	// PushIncremental stages events for an open import, holding the
	// import's row in share mode so that no commit runs meanwhile; found is
	// false when the import is not open.
	PushIncremental(ctx context.Context, p *PushIncrementalParams) (found bool, err error)
	// CommitIncremental commits an open import (see CommitIncrementalParams).
	CommitIncremental(ctx context.Context, p *CommitIncrementalParams) (*CommitIncrementalResult, error)
	// RollbackIncremental deletes an open import and its staged events;
	// found is false when it is not open.
	RollbackIncremental(ctx context.Context, id string) (found bool, err error)
	// ListIncremental lists open imports by creation time.
	ListIncremental(ctx context.Context) ([]IncrementalImport, error)

	// FirstStoredPair returns the index of the first event whose
	// (aggregate id, version) pair is stored in events, or -1 (dry-run
	// imports check what a write would find).
	FirstStoredPair(ctx context.Context, events []StoredEvent) (int, error)

	// CountRows counts the rows of the store's tables, for Verify (full
	// scans: as slow as the store is large).
	CountRows(ctx context.Context) (*RowCounts, error)

	// ReadStats counts what Describe reports with DescribeOptions.Stats.
	// It may scan an index of events (the distinct aggregates).
	ReadStats(ctx context.Context) (*StoreStats, error)

	// Reader methods run on the pool, each in its own snapshot.
	Reader
	// BeginRead starts a read-only transaction with one consistent
	// snapshot (PostgreSQL: REPEATABLE READ READ ONLY; SQLite: one read
	// transaction) for exports and backups.
	BeginRead(ctx context.Context) (ReadTx, error)
}

// Reader holds the reads that exports run inside one snapshot.
type Reader interface {
	// ListEvents returns one page of events (see ListEventsParams) and the
	// store's last position, read before the events (in the same snapshot
	// inside a ReadTx): any cursor the caller obtained before the call is
	// at or below it.
	ListEvents(ctx context.Context, p *ListEventsParams) (*ListEventsResult, error)
	// ReadState returns the store-state row and the statistics Describe needs.
	ReadState(ctx context.Context) (*StoreState, error)
	// ListSecrets returns secrets ordered by idx.
	ListSecrets(ctx context.Context, p *ListSecretsParams) ([]Secret, error)
	// ListSnapshots returns snapshots ordered by key, after AfterKey.
	ListSnapshots(ctx context.Context, p *ListSnapshotsParams) ([]Snapshot, error)
}

// ReadTx is a Reader bound to one snapshot. Close ends it.
type ReadTx interface {
	Reader
	// ScanEvents reads the events ListEvents would return for p, but hands
	// them to fn one at a time as the engine returns them instead of
	// collecting a page, so that an export writes each event while the next
	// ones are on their way. The event passed to fn, its Payload included,
	// is valid only during the call. An error from fn stops the read, and
	// ScanEvents returns it unchanged. lastPosition is the store's last
	// position in the snapshot.
	ScanEvents(ctx context.Context, p *ListEventsParams, fn func(*StoredEvent) error) (lastPosition int64, err error)
	Close(ctx context.Context) error
}

// MigrateOp selects what Dialect.Migrate does.
type MigrateOp int

const (
	// MigrateStatus only reports the schema version.
	MigrateStatus MigrateOp = iota
	// MigrateUp applies every pending migration (a no-op when current).
	MigrateUp
	// MigrateDown reverts Steps migrations (all of them when Steps is 0).
	MigrateDown
	// MigrateForce sets the recorded version to Version and clears the
	// dirty flag without running any migration.
	MigrateForce
)

// MigrateParams are the arguments of Dialect.Migrate.
type MigrateParams struct {
	Op      MigrateOp
	Steps   int  // MigrateDown: how many (0: all)
	Version uint // MigrateForce: the version to record
}

// SchemaStatus reports a store's schema version.
type SchemaStatus struct {
	Version uint // applied version; 0 when nothing is applied
	Dirty   bool // a migration was interrupted
	Latest  uint // newest version embedded in this build
}

// Pending reports whether migrations are pending.
func (s *SchemaStatus) Pending() bool { return s.Version < s.Latest }

// AppendParams are the arguments of Dialect.Append.
//
// Contract: in one transaction, lock the store-state row and read frozen and
// last_position. If frozen, write nothing and report Frozen. Otherwise a
// request conflicts when any of its (aggregate id, version) pairs is already
// stored; conflicting requests write nothing. The events of the remaining
// requests are inserted in request order, then event order, at positions
// last_position+1, +2, ... and last_position and the event count advance.
// The caller guarantees that no pair occurs twice in one call, so conflicts
// depend only on what is already stored. The unique (aggregate id, version)
// key is the final arbiter: a violation maps to *ConflictError.
type AppendParams struct {
	Requests []AppendRequest
}

// AppendRequest is one caller's events: written all together or not at all.
// Payloads are already validated and compact.
type AppendRequest struct {
	Events []Event
}

// AppendResult reports the outcome of Dialect.Append.
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

// SetFrozenParams are the arguments of Dialect.SetFrozen.
type SetFrozenParams struct {
	Frozen bool
	Reason string // recorded with the flag; shown by Describe
}

// SetFrozenResult reports the flag before the call.
type SetFrozenResult struct {
	WasFrozen bool
	Reason    string // the reason recorded before the call
}

// SetSecretParams are the arguments of Dialect.SetSecret.
type SetSecretParams struct {
	ID     string
	Secret string
	Event  Event // the RESOLVE_SET_SECRET audit event, validated
}

// SetSecretResult reports the outcome of Dialect.SetSecret.
type SetSecretResult struct {
	Frozen   bool  // nothing written: the store is frozen
	Exists   bool  // nothing written: the id is or was in use
	Idx      int64 // the new secret's idx
	Position int64 // the audit event's position
}

// DeleteSecretParams are the arguments of Dialect.DeleteSecret.
type DeleteSecretParams struct {
	ID    string
	Event Event // the RESOLVE_DELETE_SECRET audit event, validated
}

// DeleteSecretResult reports the outcome of Dialect.DeleteSecret.
type DeleteSecretResult struct {
	Frozen   bool  // nothing written: the store is frozen
	Deleted  bool  // a live secret became a tombstone
	Position int64 // the audit event's position when Deleted
}

// GetSecretParams are the arguments of Dialect.GetSecret.
type GetSecretParams struct{ ID string }

// PutSnapshotParams are the arguments of Dialect.PutSnapshot.
type PutSnapshotParams struct {
	Key     string
	Content []byte
}

// GetSnapshotParams are the arguments of Dialect.GetSnapshot.
type GetSnapshotParams struct{ Key string }

// DeleteSnapshotParams are the arguments of Dialect.DeleteSnapshot.
type DeleteSnapshotParams struct{ Key string }

// ListSnapshotsParams are the arguments of Reader.ListSnapshots.
type ListSnapshotsParams struct {
	AfterKey string // keys strictly greater than this ("" from the start)
	Limit    int
}

// Snapshot is a stored snapshot.
type Snapshot struct {
	Key     string
	Content []byte
}

// LatestEventParams are the arguments of Dialect.LatestEvent. nil lists
// match anything; the caller never passes empty non-nil lists.
type LatestEventParams struct {
	AggregateIDs []string
	EventTypes   []string
}

// ListEventsParams are the arguments of Reader.ListEvents.
//
// Position order (ByTime false): events with position > After that match the
// filters, ordered by position, at most Limit. Time order (ByTime true):
// events with timestamp <= FinishTime (nil: unbounded) that match the
// filters and come after (AfterTimestamp, After) in (timestamp, position)
// order, ordered by (timestamp, position), at most Limit; the caller folds
// StartTime into that keyset (a dialect may also filter on StartTime, which
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
	Limit          int
}

// ListEventsResult is one page of events.
type ListEventsResult struct {
	Events       []StoredEvent
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

// RowCounts are what Dialect.CountRows counts.
type RowCounts struct {
	Events        int64
	MinPosition   int64 // 0 when there are no events
	MaxPosition   int64
	Secrets       int64 // rows, tombstones included
	Tombstones    int64
	Quarantined   int64 // rows of events_quarantine
	StagedImports int64 // rows of import_staging
}

// StoreStats are the counts Dialect.ReadStats returns.
type StoreStats struct {
	FirstPosition  int64 // 0 on an empty store
	AggregateCount int64
	SnapshotCount  int64
}

// Secret is a stored secret. Secret is nil for a deleted one (a tombstone).
type Secret struct {
	Idx    int64
	ID     string
	Secret *string
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

// ImportTarget is where ImportEvents writes.
type ImportTarget int

const (
	// ImportIntoEvents appends to the store's events.
	ImportIntoEvents ImportTarget = iota
	// ImportIntoStaging writes to the staging table of a replacing (AUTO)
	// import, which SwapStaging later moves into place.
	ImportIntoStaging
)

// CheckpointKind is what an import checkpoint's source holds.
type CheckpointKind string

// Checkpoint kinds.
const (
	CheckpointEvents  CheckpointKind = "events"
	CheckpointSecrets CheckpointKind = "secrets"
)

// CheckpointMode is how the import of a checkpoint writes.
type CheckpointMode string

// Checkpoint modes.
const (
	// CheckpointManual appends (MaintenanceManual).
	CheckpointManual CheckpointMode = "manual"
	// CheckpointAuto replaces an empty store's events: straight into them.
	CheckpointAuto CheckpointMode = "auto"
	// CheckpointAutoStaged replaces a non-empty store's events: staged,
	// then swapped in at the end.
	CheckpointAutoStaged CheckpointMode = "auto-staged"
)

// ImportCheckpoint is the progress of one import, written in the same
// transaction as each batch so that a crash at any instant resumes with
// nothing lost and nothing doubled.
type ImportCheckpoint struct {
	SourceID     string
	Kind         CheckpointKind
	Mode         CheckpointMode
	Froze        bool   // the import froze the store and must unfreeze it
	BasePosition int64  // auto-staged: the store's last position at the start
	ByteOffset   int64  // source offset after the last committed line
	Line         int64  // committed lines
	Events       int64  // events (or secrets) committed by this import
	LastPosition int64  // position of the last event committed by this import
	HashState    []byte // SHA-256 state over the source's first ByteOffset bytes
	Done         bool
	UpdatedAt    int64 // ms since the Unix epoch
}

// ImportEventsParams are the arguments of Dialect.ImportEvents.
//
// Contract: lock the store-state row. For ImportIntoEvents, when the first
// event's position is not above last_position, write nothing and report
// Advanced. Otherwise insert the events (positions as given, strictly
// increasing) into the target; if one's (aggregate id, version) is already
// in the target, write nothing and report its index in Conflict. For
// ImportIntoEvents advance last_position to the last event's position and
// the event count. Upsert Checkpoint; apply Unfreeze and DeleteSnapshots.
// All in one transaction. The events' payloads are valid only during the
// call: the caller reuses their memory for its next batch.
type ImportEventsParams struct {
	Target          ImportTarget
	Events          []StoredEvent
	Checkpoint      *ImportCheckpoint
	Unfreeze        bool // clear the frozen flag in the same transaction
	DeleteSnapshots bool // delete every snapshot in the same transaction
}

// ImportEventsResult reports the outcome of Dialect.ImportEvents. When
// Advanced or Conflict >= 0 nothing was written.
type ImportEventsResult struct {
	LastPosition int64 // the store's last position before the batch
	Advanced     bool
	Conflict     int // index of the first event whose pair is already in the target, or -1
}

// SwapStagingParams are the arguments of Dialect.SwapStaging: delete every
// event and snapshot, move the staged events into events, set last_position
// to the highest staged position and the event count to the number staged,
// empty the staging table, upsert Checkpoint, and clear the frozen flag when
// Unfreeze; in one transaction under the store lock.
type SwapStagingParams struct {
	Checkpoint *ImportCheckpoint
	Unfreeze   bool
}

// AbortImportParams are the arguments of Dialect.AbortImport: in one
// transaction under the store lock, empty the staging table when
// ClearStaging, delete every event and reset last_position and the event
// count to 0 when DeleteEvents, clear the frozen flag when Unfreeze, and
// delete the checkpoint of SourceID.
type AbortImportParams struct {
	SourceID     string
	ClearStaging bool
	DeleteEvents bool
	Unfreeze     bool
}

// ImportSecretsParams are the arguments of Dialect.ImportSecrets: lock the
// store-state row; if a secret's id or idx is already used, write nothing
// and report the first such index in Conflict; otherwise insert the secrets
// as given (a nil Secret is a tombstone), advance the secret counts, and
// upsert Checkpoint; in one transaction.
type ImportSecretsParams struct {
	Secrets    []Secret
	Checkpoint *ImportCheckpoint
}

// ImportSecretsResult reports the outcome of Dialect.ImportSecrets.
type ImportSecretsResult struct {
	Conflict int // index of the first secret whose id or idx is used, or -1
}

// BeginIncrementalParams are the arguments of Dialect.BeginIncremental.
type BeginIncrementalParams struct {
	ID  string
	Now int64 // ms since the Unix epoch
}

// PushIncrementalParams are the arguments of Dialect.PushIncremental. The
// events are validated; AggregateVersion is unused.
type PushIncrementalParams struct {
	ID     string
	Events []Event
	Now    int64
}

// CommitIncrementalParams are the arguments of Dialect.CommitIncremental.
//
// Contract, in one transaction holding the store lock and the import's row
// lock: if the import is not open, report NotFound; if the store is frozen,
// report Frozen and write nothing. Order the staged events by (timestamp,
// push order). Drop as duplicates those identical (aggregate id, type,
// timestamp, payload bytes) to a stored event or to an earlier staged one.
// Of the rest, those with a timestamp below the store's newest are older:
// with SkipOlder drop them (Skipped); otherwise, if any, write nothing and
// report their count and the first of them. Append the remaining events in
// order at last_position+1, ..., each with version (its aggregate's highest
// stored version, or 0) + its rank within its aggregate; advance the state
// row; delete the import and its staged events.
type CommitIncrementalParams struct {
	ID        string
	SkipOlder bool
}

// CommitIncrementalResult reports the outcome of Dialect.CommitIncremental.
type CommitIncrementalResult struct {
	NotFound          bool
	Frozen            bool
	Appended          int64
	FirstPosition     int64
	Duplicates        int64
	Skipped           int64
	OlderRefused      int64 // > 0: nothing written
	OldestAggregateID string
	OldestTimestamp   int64
	NewestTimestamp   int64
}
