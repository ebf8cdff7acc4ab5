package eventstore

import (
	"unsafe"

	"github.com/esctl/esctl/eventstore/driver"
)

// MigrateOp selects what Store.Migrate does.
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

// SchemaStatus reports a store's schema version.
type SchemaStatus struct {
	Version uint // applied version; 0 when nothing is applied
	Dirty   bool // a migration was interrupted
	Latest  uint // newest version embedded in this build
}

// Pending reports whether migrations are pending.
func (s *SchemaStatus) Pending() bool { return s.Version < s.Latest }

// Secret is a stored secret. Secret is nil for a deleted one (a tombstone).
type Secret struct {
	Idx    int64
	ID     string
	Secret *string
}

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

// driver returns cp as the driver writes it.
func (cp *ImportCheckpoint) driver() *driver.ImportCheckpoint {
	return &driver.ImportCheckpoint{
		SourceID: cp.SourceID, Kind: string(cp.Kind), Mode: string(cp.Mode), Froze: cp.Froze,
		BasePosition: cp.BasePosition, ByteOffset: cp.ByteOffset, Line: cp.Line, Events: cp.Events,
		LastPosition: cp.LastPosition, HashState: cp.HashState, Done: cp.Done, UpdatedAt: cp.UpdatedAt,
	}
}

// checkpointFrom converts a checkpoint the driver read; nil stays nil.
func checkpointFrom(cp *driver.ImportCheckpoint) *ImportCheckpoint {
	if cp == nil {
		return nil
	}
	return &ImportCheckpoint{
		SourceID: cp.SourceID, Kind: CheckpointKind(cp.Kind), Mode: CheckpointMode(cp.Mode), Froze: cp.Froze,
		BasePosition: cp.BasePosition, ByteOffset: cp.ByteOffset, Line: cp.Line, Events: cp.Events,
		LastPosition: cp.LastPosition, HashState: cp.HashState, Done: cp.Done, UpdatedAt: cp.UpdatedAt,
	}
}

// storedFrom converts an event the driver read.
func storedFrom(e *driver.StoredEvent) StoredEvent {
	return StoredEvent{Event: Event(e.Event), Position: e.Position}
}

// storedEventsFrom returns a page of events the driver read as this
// package's StoredEvents. The two types have the same fields in the same
// order with identical underlying types, so the page is reinterpreted in
// place rather than copied (a read of a million events would otherwise
// allocate and copy every page twice); TestStoredEventLayout holds the two
// layouts together.
func storedEventsFrom(src []driver.StoredEvent) []StoredEvent {
	if src == nil {
		return nil
	}
	return unsafe.Slice((*StoredEvent)(unsafe.Pointer(unsafe.SliceData(src))), len(src))
}

// secretsFrom converts secrets the driver read.
func secretsFrom(src []driver.Secret) []Secret {
	if src == nil {
		return nil
	}
	out := make([]Secret, len(src))
	for i, s := range src {
		out[i] = Secret(s)
	}
	return out
}
