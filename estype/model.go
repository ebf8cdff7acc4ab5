package estype

// Secret is a stored secret. Secret is nil for a deleted one (a tombstone).
type Secret struct {
	Idx    int64
	ID     string
	Secret *string
}

// MigrateOp selects what a migration call does.
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

// IncrementalImportInfo describes an open (staged, not committed)
// incremental import.
type IncrementalImportInfo struct {
	ID        string
	Events    int64 // staged events
	CreatedAt int64 // ms since the Unix epoch
	UpdatedAt int64 // last push
}
