package driver

import (
	"errors"

	"github.com/esctl/esctl/estype"
)

// Rows is what database/sql's *Rows and pgx's Rows share, for ScanAll.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// ScanAll reads every row into a T, whose fields, in the query's column
// order, fields returns. The caller closes rows and maps the error.
func ScanAll[T any](rows Rows, fields func(*T) []any) ([]T, error) {
	var out []T
	for rows.Next() {
		var v T
		if err := rows.Scan(fields(&v)...); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// ScanCounts reads rows of (name, count) into a map.
func ScanCounts(rows Rows) (map[string]int64, error) {
	out := map[string]int64{}
	for rows.Next() {
		var name string
		var n int64
		if err := rows.Scan(&name, &n); err != nil {
			return nil, err
		}
		out[name] = n
	}
	return out, rows.Err()
}

// The column orders of the queries that read these rows, in both engines.

// CheckpointFields: source_id, kind, mode, froze, base_position,
// byte_offset, line, events, last_position, hash_state, done, updated_at.
func CheckpointFields(cp *estype.ImportCheckpoint) []any {
	return []any{&cp.SourceID, &cp.Kind, &cp.Mode, &cp.Froze, &cp.BasePosition, &cp.ByteOffset, &cp.Line,
		&cp.Events, &cp.LastPosition, &cp.HashState, &cp.Done, &cp.UpdatedAt}
}

// ParkedFields: name, position, aggregate_id, error, attempts, parked_at,
// replay.
func ParkedFields(e *ParkedEvent) []any {
	return []any{&e.Name, &e.Position, &e.AggregateID, &e.Error, &e.Attempts, &e.ParkedAt, &e.Replay}
}

// SnapshotFields: snapshot_key, content.
func SnapshotFields(s *Snapshot) []any { return []any{&s.Key, &s.Content} }

// Found reads a one-row lookup's error: found is false, with no error, when
// the query returned no row (err is noRows: sql.ErrNoRows, pgx.ErrNoRows).
// The caller maps a returned error.
func Found(err, noRows error) (found bool, _ error) {
	switch {
	case errors.Is(err, noRows):
		return false, nil
	case err != nil:
		return false, err
	}
	return true, nil
}

// IncrementalFields: id, events, created_at, updated_at.
func IncrementalFields(ii *estype.IncrementalImportInfo) []any {
	return []any{&ii.ID, &ii.Events, &ii.CreatedAt, &ii.UpdatedAt}
}
