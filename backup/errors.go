package backup

import "github.com/esctl/esctl/estype"

// The errors of backups and restores, declared in package estype (estype/errors.go) with
// the store's others: the same values and types. Test for the sentinels
// with errors.Is, for the typed errors with errors.As.

// Sentinel errors.
var (
	ErrNotEmpty  = estype.ErrNotEmpty
	ErrBadBackup = estype.ErrBadBackup
)

// Typed errors.
type (
	NotEmptyError = estype.NotEmptyError
)
