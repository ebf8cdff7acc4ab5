package estype

import "encoding/json"

// Limits on event fields. They are part of the store's contract: an event that
// exceeds one is rejected, never truncated.
const (
	// MaxAggregateIDBytes is the longest aggregate id accepted, in bytes.
	MaxAggregateIDBytes = 700
	// MaxTypeBytes is the longest event type accepted, in bytes.
	MaxTypeBytes = 700
	// MaxSafeInteger is the largest version or timestamp accepted: 2^53-1,
	// the largest integer JavaScript (and so reSolve and most JSON readers)
	// represents exactly.
	MaxSafeInteger = 1<<53 - 1
	// DefaultMaxPayloadBytes is the default limit on a payload's compact size.
	DefaultMaxPayloadBytes = 16 << 20
	// DefaultMaxMetadataBytes is the default limit on metadata's compact
	// size.
	DefaultMaxMetadataBytes = 64 << 10
)

// MetadataSchemaVersion is the first schema version whose events carry
// metadata. A store at the version before it (7) is served without
// metadata: its events come back with none, and an append with metadata
// fails with *SchemaVersionError until the store is migrated.
const MetadataSchemaVersion = 8

// OldestServedSchemaVersion is the oldest schema version this code serves
// (without metadata, see MetadataSchemaVersion); older ones must be
// migrated first.
const OldestServedSchemaVersion = MetadataSchemaVersion - 1

// Event types the store writes itself when a secret is set or deleted. They
// are reserved: SaveEvent, SaveEvents and incremental imports refuse them;
// ImportEvents and Restore, which carry a store's history, accept them only
// in the exact form the store (and reSolve) writes: aggregate id
// TYPE_ID_RANDOM (RANDOM: 10 characters of A-Z a-z 0-9 _ -), version 1,
// payload {"id":ID}.
const (
	SetSecretEventType    = "RESOLVE_SET_SECRET"
	DeleteSecretEventType = "RESOLVE_DELETE_SECRET"
)

// Event is what an application appends.
type Event struct {
	// AggregateID identifies the aggregate (stream). Non-empty, at most
	// MaxAggregateIDBytes of valid UTF-8 without NUL.
	AggregateID string
	// AggregateVersion is the event's version within its aggregate, from 1.
	// The pair (AggregateID, AggregateVersion) is unique in a store: saving
	// an existing pair fails with *ConflictError (optimistic concurrency).
	AggregateVersion int64
	// Type is the event type. Non-empty, at most MaxTypeBytes of UTF-8
	// without control characters.
	Type string
	// Timestamp in milliseconds since the Unix epoch. SaveEvent stores
	// max(now, Timestamp); imports keep it as given. Timestamps are
	// informational: the order of a store is its positions.
	Timestamp int64
	// Payload is any JSON value. It is stored as its compact form, byte for
	// byte (key order, number spelling and escapes are kept). nil means null.
	Payload json.RawMessage
	// Metadata is a JSON object about the event rather than of it: the
	// request's correlation id, the causation id, the trace context, the
	// user, the tenant (see docs/metadata.md for the keys the store's
	// helpers write). nil (or null) means none. Like the payload it is
	// stored as its compact form, byte for byte; at most
	// Options.MaxMetadataBytes.
	Metadata json.RawMessage
}

// StoredEvent is an event as stored, with its global position.
type StoredEvent struct {
	Event
	// Position is the event's place in the store: 1, 2, 3... dense and in
	// commit order. When a reader sees position p, every position below p
	// is committed and visible.
	Position int64
}

// Cursor returns the cursor that resumes reading right after this event.
func (e StoredEvent) Cursor() Cursor { return CursorAt(e.Position) }

// Limits on secrets.
const (
	// MaxSecretIDBytes is the longest secret id accepted, in bytes.
	MaxSecretIDBytes = 512
	// MaxSecretBytes is the largest secret value accepted, in bytes.
	MaxSecretBytes = 1 << 20
)
