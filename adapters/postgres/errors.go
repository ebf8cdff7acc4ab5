package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/esctl/esctl/estype"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"
)

// Constraint names from migrations/postgres.
const (
	eventsVersionKey  = "events_aggregate_version_key"
	eventsPositionKey = "events_pkey"
	eventsPositionChk = "events_position_positive"
	secretsIDKey      = "secrets_id_key"
	stagingVersionKey = "import_staging_aggregate_version_key"
)

// resources are the SQLSTATEs of class 53 (insufficient resources); any
// other code of the class is a configured limit.
var resources = map[string]estype.Resource{
	"53000": estype.ResourceLimit,       // insufficient_resources
	"53100": estype.ResourceDisk,        // disk_full
	"53200": estype.ResourceMemory,      // out_of_memory
	"53300": estype.ResourceConnections, // too_many_connections
	"53400": estype.ResourceLimit,       // configuration_limit_exceeded
}

// This file is the only one that inspects driver errors: interpretError
// maps them to eventstore errors, and the predicates below answer what the
// append and import paths must know of an error before mapping it.

// isServerError reports whether err came from the server rather than from
// the connection (whether the transaction committed: isStatementError).
func isServerError(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe)
}

// isStatementError reports a server error that refused a statement and
// left the session alive: the transaction did not commit. A FATAL or PANIC
// error ends the session instead (a shutdown, an administrator's
// pg_terminate_backend), and can come after a COMMIT the server has
// already carried out (the backend dies at its next interrupt check, before
// or after sending COMMIT's answer): its outcome is unknown, like that of a
// broken connection.
func isStatementError(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Severity != "FATAL" && pe.Severity != "PANIC"
}

// isVersionConflict reports a unique violation of events' (aggregate id,
// version) key: the append's fast statement then retries with appendSQL.
func isVersionConflict(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == eventsVersionKey
}

// isUniqueViolation reports a unique violation of the (aggregate id,
// version) key of events or of the staging table (an import batch then
// looks for the first conflicting row).
// isUndefinedColumn reports a reference to a column the table lacks.
func isUndefinedColumn(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "42703"
}

func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505" &&
		(pe.ConstraintName == eventsVersionKey || pe.ConstraintName == stagingVersionKey)
}

// interpretError maps pgx errors to eventstore errors by SQLSTATE and
// constraint name, never by message text. The original error stays in the
// chain.
func interpretError(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505": // unique_violation
			switch pe.ConstraintName {
			case eventsVersionKey:
				return fmt.Errorf("%w: %w", &estype.ConflictError{}, err)
			case secretsIDKey:
				return fmt.Errorf("%w: %w", &estype.SecretExistsError{}, err)
			case eventsPositionKey:
				return &estype.InvariantError{Invariant: estype.InvariantPositionUnique, Err: err}
			}
		case "23514": // check_violation
			if pe.ConstraintName == eventsPositionChk {
				return &estype.InvariantError{Invariant: estype.InvariantPositionPositive, Err: err}
			}
		case "55000": // object_not_in_prerequisite_state: the freeze trigger
			if strings.HasPrefix(pe.Message, "esctl: the store is frozen") {
				return fmt.Errorf("%w: %w", estype.ErrFrozen, err)
			}
		case "55P03", // lock_not_available: lock_timeout
			"57014", // query_canceled: statement_timeout
			"40P01": // deadlock_detected
			return fmt.Errorf("%w: %w", estype.ErrTimeout, err)
		case "42P01", // undefined_table
			"3F000": // invalid_schema_name
			return fmt.Errorf("%w: %w", estype.ErrNotInitialized, err)
		case "57P01", "57P02", "57P03", // admin_shutdown, crash_shutdown, cannot_connect_now
			"08000", "08003", "08006", "08001", // connection exceptions
			"08004":
			return fmt.Errorf("%w: %w", estype.ErrUnavailable, err)
		}
		if strings.HasPrefix(pe.Code, "53") { // insufficient_resources
			r, ok := resources[pe.Code]
			if !ok {
				r = estype.ResourceLimit
			}
			return &estype.ResourceError{Resource: r, Err: err}
		}
		return err
	}
	if errors.Is(err, puddle.ErrClosedPool) {
		return fmt.Errorf("%w: %w", estype.ErrClosed, err)
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return fmt.Errorf("%w: %w", estype.ErrUnavailable, err)
	}
	// A connection that failed before sending anything: nothing happened.
	var ne net.Error
	if pgconn.SafeToRetry(err) || errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %w", estype.ErrUnavailable, err)
	}
	return err
}
