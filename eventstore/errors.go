package eventstore

import "github.com/esctl/esctl/estype"

// The store's errors are declared in package estype (estype/errors.go), so
// that engines and tools return them without depending on this package;
// these are the same values and types. Test for the sentinels with
// errors.Is; the typed errors match their sentinel through their Is method,
// so callers can use either errors.Is(err, ErrConflict) or
// errors.As(err, &conflict).

// Sentinel errors.
var (
	ErrAlreadyFrozen   = estype.ErrAlreadyFrozen
	ErrAlreadyUnfrozen = estype.ErrAlreadyUnfrozen
	ErrClosed          = estype.ErrClosed
	ErrConflict        = estype.ErrConflict
	ErrCursorBeyondEnd = estype.ErrCursorBeyondEnd
	ErrFrozen          = estype.ErrFrozen
	ErrInvalidCursor   = estype.ErrInvalidCursor
	ErrInvalidEvent    = estype.ErrInvalidEvent
	ErrInvalidFilter   = estype.ErrInvalidFilter
	ErrInvalidIndex    = estype.ErrInvalidIndex
	ErrInvalidSecret   = estype.ErrInvalidSecret
	ErrInvalidSnapshot = estype.ErrInvalidSnapshot
	ErrInvariant       = estype.ErrInvariant
	ErrNotInitialized  = estype.ErrNotInitialized
	ErrOutcomeUnknown  = estype.ErrOutcomeUnknown
	ErrResources       = estype.ErrResources
	ErrSchemaVersion   = estype.ErrSchemaVersion
	ErrSecretExists    = estype.ErrSecretExists
	ErrTimeout         = estype.ErrTimeout
	ErrUnavailable     = estype.ErrUnavailable
	ErrUnknownScheme   = estype.ErrUnknownScheme
)

// Typed errors.
type (
	ConflictError        = estype.ConflictError
	CursorBeyondEndError = estype.CursorBeyondEndError
	InvalidCursorError   = estype.InvalidCursorError
	InvalidEventError    = estype.InvalidEventError
	InvalidFilterError   = estype.InvalidFilterError
	InvalidIndexError    = estype.InvalidIndexError
	InvariantError       = estype.InvariantError
	ResourceError        = estype.ResourceError
	SchemaVersionError   = estype.SchemaVersionError
	SecretExistsError    = estype.SecretExistsError
	Resource             = estype.Resource
)

// The resources a ResourceError names.
const (
	ResourceConnections = estype.ResourceConnections
	ResourceDisk        = estype.ResourceDisk
	ResourceLimit       = estype.ResourceLimit
	ResourceMemory      = estype.ResourceMemory
)
