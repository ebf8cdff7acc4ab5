package migrations

import (
	"context"

	"github.com/golang-migrate/migrate/v4/database"

	"github.com/esctl/esctl/estype"
	"github.com/esctl/esctl/internal/driver"
)

// Target is what an engine gives Migrate: its name and catalog, and how it
// opens golang-migrate's database driver. Every step of a migration is
// Migrate's; an engine only opens things.
type Target struct {
	Engine  string
	Catalog Catalog
	// Before, when set, runs before the version table is prepared: what
	// the engine needs in place first (PostgreSQL creates the store's
	// schema for MigrateUp; SQLite checks that the database is a file).
	Before func(ctx context.Context, op estype.MigrateOp) error
	// Open returns golang-migrate's driver on the store's database and a
	// function that releases what Open took (a lock), called after the
	// migration ran. Its errors are returned as they are (map them in
	// Open).
	Open func(ctx context.Context) (drv database.Driver, release func(), err error)
	// MapError maps the engine's errors to estype's (the adapter's
	// interpretError).
	MapError func(error) error
}

// Migrate applies, reverts, forces or reports the schema version of a
// store (driver.Driver.Migrate): MigrateStatus reads it (Status); the
// others run Before, Prepare, Open and Run, in that order.
func Migrate(ctx context.Context, t *Target, p *driver.MigrateParams) (*estype.SchemaStatus, error) {
	if p.Op == estype.MigrateStatus {
		vs, err := Status(ctx, t.Catalog, t.Engine)
		if err != nil {
			return nil, t.MapError(err)
		}
		return &vs.Status, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if t.Before != nil {
		if err := t.Before(ctx, p.Op); err != nil {
			return nil, t.MapError(err)
		}
	}
	if err := Prepare(ctx, t.Catalog, t.Engine, p.Op); err != nil {
		return nil, t.MapError(err)
	}
	drv, release, err := t.Open(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	st, err := Run(t.Engine, drv, p)
	return st, t.MapError(err)
}
