package migrations

import (
	"context"
	"errors"
	"fmt"

	"github.com/esctl/esctl/estype"
)

// The store's schema version lives in a table of its own name, so that a
// store can share a schema (PostgreSQL) or a file (SQLite) with an
// application that runs golang-migrate itself under golang-migrate's
// default name.
const (
	// VersionTable is where golang-migrate records the store's schema
	// version.
	VersionTable = "esctl_schema_migrations"
	// LegacyVersionTable is the table esctl before 0.1.0 recorded the
	// version in: golang-migrate's default name, which is also the
	// application's when it runs golang-migrate in the same schema.
	LegacyVersionTable = "schema_migrations"
	// LegacyMaxVersion is the newest version esctl recorded in
	// LegacyVersionTable (4: a build between migration 4 and the rename).
	LegacyMaxVersion = 4
	// StateTable is a table every esctl store has from version 1 on.
	StateTable = "store_state"
)

// versionMarkers[k] is a table that migration k+1 creates.
// (events_quarantine outlives migration 4's down: its presence at a lower
// version is not a mismatch.)
var versionMarkers = []string{StateTable, "import_checkpoints", "incremental_imports", "events_quarantine"}

// Catalog is what the version-table rules need of an engine, in the
// store's schema (PostgreSQL) or file (SQLite).
type Catalog interface {
	// TableExists reports whether a table of this name exists.
	TableExists(ctx context.Context, name string) (bool, error)
	// ReadVersion reads golang-migrate's row of table; ok is false when
	// the table has no row.
	ReadVersion(ctx context.Context, table string) (version int64, dirty bool, ok bool, err error)
	// AdoptLegacyVersionTable renames LegacyVersionTable to VersionTable.
	AdoptLegacyVersionTable(ctx context.Context) error
}

// ScanVersion reads the row of a version table's "SELECT version, dirty"
// for Catalog.ReadVersion: ok is false, with no error, when the query
// returned no row (noRows: sql.ErrNoRows, pgx.ErrNoRows). The caller maps
// the error.
func ScanVersion(row interface{ Scan(dest ...any) error }, noRows error) (version int64, dirty, ok bool, _ error) {
	switch err := row.Scan(&version, &dirty); {
	case errors.Is(err, noRows):
		return 0, false, false, nil
	case err != nil:
		return 0, false, false, err
	}
	return version, dirty, true, nil
}

// VersionState is what Status found.
type VersionState struct {
	Status estype.SchemaStatus
	// Legacy: the version is recorded in LegacyVersionTable, which holds
	// a version esctl wrote, next to a store; Adopt renames it.
	Legacy bool
}

// Status reads the store's schema version:
//
//   - from VersionTable when it exists (a LegacyVersionTable next to it is
//     the application's and is never read);
//   - else, when the store's tables exist (a store made by esctl before
//     0.1.0), from LegacyVersionTable, if that holds a version from 1 to
//     LegacyMaxVersion; any other version there is another application's,
//     and the store's own version is unknown: an error that says to record
//     it with esctl migrate force;
//   - else the database holds no store: version 0.
func Status(ctx context.Context, c Catalog, engine string) (*VersionState, error) {
	vs := &VersionState{Status: estype.SchemaStatus{Latest: Latest(engine)}}
	read := func(table string) (bool, error) {
		v, dirty, ok, err := c.ReadVersion(ctx, table)
		if err != nil || !ok {
			return ok, err
		}
		if v > 0 {
			vs.Status.Version = uint(v)
		}
		vs.Status.Dirty = dirty
		return true, nil
	}
	own, err := c.TableExists(ctx, VersionTable)
	if err != nil {
		return nil, err
	}
	if own {
		_, err := read(VersionTable)
		return vs, err
	}
	store, err := c.TableExists(ctx, StateTable)
	if err != nil || !store {
		return vs, err
	}
	legacy, err := c.TableExists(ctx, LegacyVersionTable)
	if err != nil {
		return nil, err
	}
	if legacy {
		v, dirty, ok, err := c.ReadVersion(ctx, LegacyVersionTable)
		if err != nil {
			return nil, err
		}
		if ok && v >= 1 && v <= LegacyMaxVersion {
			// Ours only if the store's tables are those of that version.
			for k, marker := range versionMarkers {
				has, err := c.TableExists(ctx, marker)
				if err != nil {
					return nil, err
				}
				want := int64(k+1) <= v // created by a migration up to v
				if want && !has || !want && has && marker != "events_quarantine" {
					return vs, fmt.Errorf("%w: the store has no %s table, and %s holds version %d, which does not match the store's tables (%s %s): it may belong to another application; record the store's schema version with esctl migrate force VERSION",
						estype.ErrSchemaVersion, VersionTable, LegacyVersionTable, v, marker, map[bool]string{true: "exists", false: "is missing"}[has])
				}
			}
			vs.Status.Version, vs.Status.Dirty, vs.Legacy = uint(v), dirty, true
			return vs, nil
		}
		return vs, fmt.Errorf("%w: the store has no %s table, and %s (version %d) was not written by esctl: it belongs to another application, which esctl leaves alone; record the store's schema version with esctl migrate force VERSION",
			estype.ErrSchemaVersion, VersionTable, LegacyVersionTable, v)
	}
	return vs, fmt.Errorf("%w: the store's tables exist but no schema version is recorded (no %s table): record it with esctl migrate force VERSION",
		estype.ErrSchemaVersion, VersionTable)
}

// AdoptLegacy renames a legacy version table that esctl wrote (see Status),
// and does nothing otherwise: Drop calls it so that it drops the store's own
// version table, whichever name it has.
func AdoptLegacy(ctx context.Context, c Catalog, engine string) error {
	if vs, err := Status(ctx, c, engine); err == nil && vs.Legacy {
		return c.AdoptLegacyVersionTable(ctx)
	}
	return nil
}

// Prepare readies the version table before golang-migrate runs operation
// op: a legacy table esctl wrote is renamed to VersionTable; an unknown
// version is an error except for MigrateForce, which records one.
func Prepare(ctx context.Context, c Catalog, engine string, op estype.MigrateOp) error {
	vs, err := Status(ctx, c, engine)
	switch {
	case err != nil && op == estype.MigrateForce:
		return nil
	case err != nil:
		return err
	case vs.Legacy:
		return c.AdoptLegacyVersionTable(ctx)
	}
	return nil
}
