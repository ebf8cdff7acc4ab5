package transfer

import "github.com/esctl/esctl/estype"

// The errors of imports, exports, incremental imports and copies, declared in package estype (estype/errors.go) with
// the store's others: the same values and types. Test for the sentinels
// with errors.Is, for the typed errors with errors.As.

// Sentinel errors.
var (
	ErrBadInput       = estype.ErrBadInput
	ErrCopyMismatch   = estype.ErrCopyMismatch
	ErrImportNotFound = estype.ErrImportNotFound
	ErrImportRecorded = estype.ErrImportRecorded
	ErrOlderEvents    = estype.ErrOlderEvents
	ErrResumeMismatch = estype.ErrResumeMismatch
)

// Typed errors.
type (
	ImportRecordedError = estype.ImportRecordedError
	LineError           = estype.LineError
	OlderEventsError    = estype.OlderEventsError
)
