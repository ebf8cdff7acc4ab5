// Package migrations embeds the schema migrations of both engines and runs
// them with golang-migrate. migrations/postgres and migrations/sqlite carry the
// same version numbers; each version does the same thing in both engines.
//
// golang-migrate's SQLite lock is in-process only: do not migrate one SQLite
// file from two processes at once. PostgreSQL uses an advisory lock.
package migrations

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/database"
	"github.com/golang-migrate/migrate/v4/source/iofs"

	"github.com/esctl/esctl/estype"

	"github.com/esctl/esctl/internal/driver"
)

//go:embed postgres/*.sql sqlite/*.sql
var FS embed.FS

// Latest returns the newest migration version embedded for engine.
func Latest(engine string) uint {
	entries, err := fs.ReadDir(FS, engine)
	if err != nil {
		panic(fmt.Sprintf("migrations: no migrations for engine %q", engine))
	}
	var versions []uint
	for _, e := range entries {
		v, _, ok := strings.Cut(e.Name(), "_")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err == nil {
			versions = append(versions, uint(n))
		}
	}
	sort.Slice(versions, func(i, j int) bool { return versions[i] < versions[j] })
	if len(versions) == 0 {
		return 0
	}
	return versions[len(versions)-1]
}

// Run performs p.Op (not MigrateStatus, which adapters answer with a plain
// query so that asking does not create the version table) with the database
// driver drv. It closes drv, and with it the *sql.DB drv was made from:
// callers pass a dedicated handle.
func Run(engine string, drv database.Driver, p *driver.MigrateParams) (st *estype.SchemaStatus, err error) {
	src, err := iofs.New(FS, engine)
	if err != nil {
		_ = drv.Close()
		return nil, fmt.Errorf("open embedded migrations: %w", err)
	}
	m, err := migrate.NewWithInstance("iofs", src, engine, drv)
	if err != nil {
		_ = src.Close()
		_ = drv.Close()
		return nil, fmt.Errorf("init migrate: %w", err)
	}
	defer func() {
		srcErr, dbErr := m.Close()
		if err == nil {
			err = errors.Join(srcErr, dbErr)
		}
	}()
	switch p.Op {
	case estype.MigrateUp:
		err = m.Up()
	case estype.MigrateDown:
		if p.Steps > 0 {
			err = m.Steps(-p.Steps)
		} else {
			err = m.Down()
		}
	case estype.MigrateForce:
		if p.Version > Latest(engine) {
			return nil, fmt.Errorf("force version %d: the newest migration is %d", p.Version, Latest(engine))
		}
		if p.Version == 0 {
			err = m.Force(-1) // golang-migrate's "no version"
		} else {
			err = m.Force(int(p.Version))
		}
	default:
		return nil, fmt.Errorf("migrate: unsupported operation %d", p.Op)
	}
	if errors.Is(err, migrate.ErrNoChange) || errors.Is(err, os.ErrNotExist) && p.Op == estype.MigrateDown {
		err = nil
	}
	if dirty := (migrate.ErrDirty{}); errors.As(err, &dirty) {
		// Found under golang-migrate's lock, so not a concurrent
		// migration in progress: an interrupted one.
		err = &estype.SchemaVersionError{Current: uint(max(dirty.Version, 0)), Dirty: true, Expected: Latest(engine)}
	}
	if err != nil {
		return nil, err
	}
	v, dirty, verr := m.Version()
	if errors.Is(verr, migrate.ErrNilVersion) {
		v, verr = 0, nil
	}
	if verr != nil {
		return nil, fmt.Errorf("read schema version: %w", verr)
	}
	return &estype.SchemaStatus{Version: v, Dirty: dirty, Latest: Latest(engine)}, nil
}
