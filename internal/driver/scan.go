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

// Row is what database/sql's *Row and pgx's Row share.
type Row interface{ Scan(dest ...any) error }

// ScanRow reads a one-row query into a new T, whose fields, in the query's
// column order, fields returns. The caller maps the error.
func ScanRow[T any](row Row, fields func(*T) []any) (*T, error) {
	v := new(T)
	if err := row.Scan(fields(v)...); err != nil {
		return nil, err
	}
	return v, nil
}

// ScanLookup is ScanRow for a query that may return no row: then it returns
// nil and no error (noRows is sql.ErrNoRows or pgx.ErrNoRows).
func ScanLookup[T any](row Row, noRows error, fields func(*T) []any) (*T, error) {
	v, err := ScanRow(row, fields)
	if errors.Is(err, noRows) {
		return nil, nil
	}
	return v, err
}

// ScanValue reads a one-column lookup; found is false, with no error, when
// the query returned no row (noRows: sql.ErrNoRows, pgx.ErrNoRows). The
// caller maps the error.
func ScanValue[T any](row Row, noRows error) (v T, found bool, _ error) {
	found, err := Found(row.Scan(&v), noRows)
	return v, found, err
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

// RowCountsFields: events, min_position, max_position, secrets, tombstones,
// quarantined, staged_imports, aggregates.
func RowCountsFields(c *RowCounts) []any {
	return []any{&c.Events, &c.MinPosition, &c.MaxPosition, &c.Secrets, &c.Tombstones, &c.Quarantined,
		&c.StagedImports, &c.Aggregates}
}

// StoreStatsFields: first_position, aggregate_count, snapshot_count.
func StoreStatsFields(st *StoreStats) []any {
	return []any{&st.FirstPosition, &st.AggregateCount, &st.SnapshotCount}
}

// ConsumerFields: name, member, members, position, holder, lease_until,
// updated_at.
func ConsumerFields(r *ConsumerRow) []any {
	return []any{&r.Name, &r.Member, &r.Members, &r.Position, &r.Holder, &r.LeaseUntil, &r.UpdatedAt}
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
