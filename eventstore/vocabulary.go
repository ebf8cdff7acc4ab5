package eventstore

// The vocabulary of the store (events, cursors, expectations, errors) is
// package estype, which engines and tools share without depending on this
// package; these are the same types and values under the names an
// application uses.

import "github.com/esctl/esctl/estype"

type (
	Cursor       = estype.Cursor
	Event        = estype.Event
	Expect       = estype.Expect
	Index        = estype.Index
	IndexSpec    = estype.IndexSpec
	MigrateOp    = estype.MigrateOp
	SchemaStatus = estype.SchemaStatus
	Secret       = estype.Secret
	StoredEvent  = estype.StoredEvent
)

const (
	DefaultMaxPayloadBytes = estype.DefaultMaxPayloadBytes
	// DefaultMaxMetadataBytes is the default limit on metadata's compact
	// size.
	DefaultMaxMetadataBytes = estype.DefaultMaxMetadataBytes
	// MetadataSchemaVersion is the first schema version whose events
	// carry metadata; a store at the version before it is served without.
	MetadataSchemaVersion = estype.MetadataSchemaVersion
	DeleteSecretEventType = estype.DeleteSecretEventType
	MaxAggregateIDBytes   = estype.MaxAggregateIDBytes
	MaxSecretBytes        = estype.MaxSecretBytes
	MaxSecretIDBytes      = estype.MaxSecretIDBytes
	MaxSafeInteger        = estype.MaxSafeInteger
	MaxTypeBytes          = estype.MaxTypeBytes
	MigrateDown           = estype.MigrateDown
	MigrateForce          = estype.MigrateForce
	MigrateStatus         = estype.MigrateStatus
	MigrateUp             = estype.MigrateUp
	SetSecretEventType    = estype.SetSecretEventType
	IndexOnPayload        = estype.IndexOnPayload
	IndexOnMetadata       = estype.IndexOnMetadata
)

var (
	Any          = estype.Any
	NoStream     = estype.NoStream
	StreamExists = estype.StreamExists
)

// CursorAt returns the cursor that resumes reading after position p
// (CursorAt(0) is the start of the store).
func CursorAt(p int64) Cursor { return estype.CursorAt(p) }

// Exactly expects the aggregate to be at version v (0: no event); see
// Expect.
func Exactly(v int64) Expect { return estype.Exactly(v) }

// NextCursor returns the cursor after prev and the given events: the cursor
// resumes after the highest position among prev and the events. It is pure,
// order-independent and never moves backwards; NextCursor("", nil) is the
// start cursor.
func NextCursor(prev Cursor, events []StoredEvent) (Cursor, error) {
	return estype.NextCursor(prev, events)
}
