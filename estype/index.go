package estype

import (
	"errors"
	"fmt"
)

// IndexSpec says what an index for content filters (Filter.Payload,
// Filter.Metadata) covers: On is "payload" or "metadata"; Path, on
// SQLite, is the member the index is on (["customer","id"] for
// {"customer":{"id":...}}), and must be empty on PostgreSQL, whose GIN
// index covers the whole document.
type IndexSpec struct {
	On   string
	Path []string
}

// Index is an index the store made for content filters.
type Index struct {
	Name string
	IndexSpec
	// Definition is the engine's own statement of the index.
	Definition string
	// Valid is false for a PostgreSQL index whose concurrent build did not
	// finish (it is not used; creating it again rebuilds it).
	Valid bool
}

// The columns an index can be on.
const (
	IndexOnPayload  = "payload"
	IndexOnMetadata = "metadata"
)

// InvalidIndexError reports an index that cannot be made or dropped as
// asked: an unknown column, a path the engine cannot use, a name that is
// not one of the store's indexes.
type InvalidIndexError struct {
	Field  string // "on", "path" or "name"
	Reason string
}

func (e *InvalidIndexError) Error() string {
	return fmt.Sprintf("eventstore: invalid index: %s: %s", e.Field, e.Reason)
}

// Is reports whether target is ErrInvalidIndex.
func (e *InvalidIndexError) Is(target error) bool { return target == ErrInvalidIndex }

// ErrInvalidIndex is matched by *InvalidIndexError.
var ErrInvalidIndex = errors.New("eventstore: invalid index")
