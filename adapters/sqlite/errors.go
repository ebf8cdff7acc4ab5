package sqlite

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/esctl/esctl/estype"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// interpretError maps SQLite and database/sql errors to eventstore errors by
// SQLite's extended result codes. It is the only place that inspects driver
// errors. The original error stays in the chain for errors.As.
func interpretError(err error) error {
	if err == nil {
		return nil
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		code := se.Code()
		switch {
		case code == sqlite3.SQLITE_CONSTRAINT_UNIQUE || code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			// SQLite has no constraint names in errors; the message names the
			// columns: "UNIQUE constraint failed: secrets.id".
			switch {
			case strings.Contains(se.Error(), "secrets.id"):
				return fmt.Errorf("%w: %w", &estype.SecretExistsError{}, err)
			case strings.Contains(se.Error(), "events.aggregate_id"), strings.Contains(se.Error(), "import_staging.aggregate_id"):
				return fmt.Errorf("%w: %w", &estype.ConflictError{}, err)
			case strings.Contains(se.Error(), "events.position"):
				return &estype.InvariantError{Invariant: estype.InvariantPositionUnique, Err: err}
			}
		case code == sqlite3.SQLITE_CONSTRAINT_TRIGGER:
			// RAISE(ABORT) of migration 6's freeze trigger.
			if strings.Contains(se.Error(), "esctl: the store is frozen") {
				return fmt.Errorf("%w: %w", estype.ErrFrozen, err)
			}
		case code == sqlite3.SQLITE_CONSTRAINT_CHECK:
			// "CHECK constraint failed: events_position_positive"
			if strings.Contains(se.Error(), "events_position_positive") {
				return &estype.InvariantError{Invariant: estype.InvariantPositionPositive, Err: err}
			}
		case code&0xff == sqlite3.SQLITE_BUSY || code&0xff == sqlite3.SQLITE_LOCKED:
			return fmt.Errorf("%w: database is locked by another writer: %w", estype.ErrTimeout, err)
		case code&0xff == sqlite3.SQLITE_CANTOPEN:
			return fmt.Errorf("%w: %w", estype.ErrUnavailable, err)
		case code&0xff == sqlite3.SQLITE_FULL:
			// The disk is full, or the file reached max_page_count.
			return &estype.ResourceError{Resource: estype.ResourceDisk, Err: err}
		case code&0xff == sqlite3.SQLITE_NOMEM:
			return &estype.ResourceError{Resource: estype.ResourceMemory, Err: err}
		}
		return err
	}
	// database/sql reports a closed *sql.DB with an unexported error value.
	if errors.Is(err, sql.ErrConnDone) || err.Error() == "sql: database is closed" {
		return fmt.Errorf("%w: %w", estype.ErrClosed, err)
	}
	return err
}
