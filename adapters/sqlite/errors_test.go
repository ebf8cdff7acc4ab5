package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/esctl/esctl/estype"
	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/internal/driver/drivertest"
)

// TestInterpretError feeds interpretError errors produced by a real SQLite
// database and checks what each becomes.
func TestInterpretError(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "errors.db")
	db, err := sql.Open("sqlite", DSN(path, false))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	exec := func(q string, args ...any) error {
		_, err := db.ExecContext(ctx, q, args...)
		return err
	}
	for _, q := range []string{
		`CREATE TABLE events (position INTEGER PRIMARY KEY, aggregate_id TEXT, aggregate_version INTEGER, CONSTRAINT events_aggregate_version_key UNIQUE (aggregate_id, aggregate_version), CONSTRAINT events_position_positive CHECK (position > 0))`,
		`CREATE TABLE checked (k INTEGER CONSTRAINT checked_k_check CHECK (k > 0))`,
		`CREATE TABLE secrets (idx INTEGER PRIMARY KEY, id TEXT, CONSTRAINT secrets_id_key UNIQUE (id))`,
		`INSERT INTO events VALUES (1, 'a', 1)`,
		`CREATE TABLE import_staging (position INTEGER PRIMARY KEY, aggregate_id TEXT, aggregate_version INTEGER, CONSTRAINT import_staging_aggregate_version_key UNIQUE (aggregate_id, aggregate_version))`,
		`INSERT INTO import_staging VALUES (1, 'a', 1)`,
		`INSERT INTO secrets VALUES (1, 's')`,
	} {
		if err := exec(q); err != nil {
			t.Fatal(err)
		}
	}

	// A second connection holding the write lock, for SQLITE_BUSY.
	locker, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Close()
	lc, err := locker.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	busyErr := func() error {
		if _, err := lc.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
			t.Fatal(err)
		}
		defer lc.ExecContext(ctx, `ROLLBACK`)
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.ExecContext(ctx, `PRAGMA busy_timeout = 10`); err != nil {
			t.Fatal(err)
		}
		_, err = c.ExecContext(ctx, `BEGIN IMMEDIATE`)
		return err
	}()

	// A file that cannot grow (max_page_count): SQLITE_FULL, as on a full
	// disk.
	full := func() error {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.ExecContext(ctx, `CREATE TABLE filler (b BLOB)`); err != nil {
			t.Fatal(err)
		}
		var pages int
		if err := c.QueryRowContext(ctx, `PRAGMA page_count`).Scan(&pages); err != nil {
			t.Fatal(err)
		}
		if _, err := c.ExecContext(ctx, fmt.Sprintf(`PRAGMA max_page_count = %d`, pages+2)); err != nil {
			t.Fatal(err)
		}
		_, err = c.ExecContext(ctx, `INSERT INTO filler VALUES (zeroblob(1000000))`)
		return err
	}()

	closed, _ := sql.Open("sqlite", DSN(path, false))
	_ = closed.Close()

	drivertest.CheckErrorMapping(t, interpretError, []drivertest.ErrorCase{
		{Name: "Nil", Err: nil, Passes: true},
		{Name: "EventVersionUnique", Err: exec(`INSERT INTO events VALUES (2, 'a', 1)`), Is: eventstore.ErrConflict,
			As: drivertest.IsConflict},
		{Name: "StagingVersionUnique", Err: exec(`INSERT INTO import_staging VALUES (2, 'a', 1)`), Is: eventstore.ErrConflict,
			As: drivertest.IsConflict},
		{Name: "EventPositionPrimaryKey", Err: exec(`INSERT INTO events VALUES (1, 'b', 1)`), Is: eventstore.ErrInvariant,
			As: drivertest.IsInvariant(estype.InvariantPositionUnique)},
		{Name: "EventPositionPositive", Err: exec(`INSERT INTO events VALUES (0, 'b', 1)`), Is: eventstore.ErrInvariant,
			As: drivertest.IsInvariant(estype.InvariantPositionPositive)},
		{Name: "OtherCheckPassesThrough", Err: exec(`INSERT INTO checked VALUES (0)`), Passes: true},
		{Name: "SecretIDUnique", Err: exec(`INSERT INTO secrets VALUES (2, 's')`), Is: eventstore.ErrSecretExists,
			As: drivertest.IsSecretExists},
		{Name: "Busy", Err: busyErr, Is: eventstore.ErrTimeout},
		{Name: "CantOpen", Err: func() error {
			d, _ := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "missing", "dir", "x.db"))
			defer d.Close()
			return d.PingContext(ctx)
		}(), Is: eventstore.ErrUnavailable},
		{Name: "ClosedDB", Err: closed.PingContext(ctx), Is: eventstore.ErrClosed},
		{Name: "ConnDone", Err: fmt.Errorf("wrapped: %w", sql.ErrConnDone), Is: eventstore.ErrClosed},
		{Name: "Full", Err: full, Is: eventstore.ErrResources, As: drivertest.IsResource(eventstore.ResourceDisk)},
		{Name: "SyntaxPassesThrough", Err: exec(`SELEC 1`), Passes: true},
		{Name: "DeadlinePassesThrough", Err: context.DeadlineExceeded, Is: context.DeadlineExceeded},
	})

}
