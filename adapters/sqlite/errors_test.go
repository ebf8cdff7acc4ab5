package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/esctl/esctl/estype"
	"github.com/esctl/esctl/eventstore"
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

	tests := []struct {
		name   string
		err    error
		is     error
		as     func(error) bool
		passes bool // returned unchanged
	}{
		{name: "Nil", err: nil, passes: true},
		{name: "EventVersionUnique", err: exec(`INSERT INTO events VALUES (2, 'a', 1)`), is: eventstore.ErrConflict,
			as: func(err error) bool { var ce *eventstore.ConflictError; return errors.As(err, &ce) }},
		{name: "StagingVersionUnique", err: exec(`INSERT INTO import_staging VALUES (2, 'a', 1)`), is: eventstore.ErrConflict,
			as: func(err error) bool { var ce *eventstore.ConflictError; return errors.As(err, &ce) }},
		{name: "EventPositionPrimaryKey", err: exec(`INSERT INTO events VALUES (1, 'b', 1)`), is: eventstore.ErrInvariant,
			as: func(err error) bool {
				var ie *eventstore.InvariantError
				return errors.As(err, &ie) && ie.Invariant == estype.InvariantPositionUnique
			}},
		{name: "EventPositionPositive", err: exec(`INSERT INTO events VALUES (0, 'b', 1)`), is: eventstore.ErrInvariant,
			as: func(err error) bool {
				var ie *eventstore.InvariantError
				return errors.As(err, &ie) && ie.Invariant == estype.InvariantPositionPositive
			}},
		{name: "OtherCheckPassesThrough", err: exec(`INSERT INTO checked VALUES (0)`), passes: true},
		{name: "SecretIDUnique", err: exec(`INSERT INTO secrets VALUES (2, 's')`), is: eventstore.ErrSecretExists,
			as: func(err error) bool { var se *eventstore.SecretExistsError; return errors.As(err, &se) }},
		{name: "Busy", err: busyErr, is: eventstore.ErrTimeout},
		{name: "CantOpen", err: func() error {
			d, _ := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "missing", "dir", "x.db"))
			defer d.Close()
			return d.PingContext(ctx)
		}(), is: eventstore.ErrUnavailable},
		{name: "ClosedDB", err: closed.PingContext(ctx), is: eventstore.ErrClosed},
		{name: "ConnDone", err: fmt.Errorf("wrapped: %w", sql.ErrConnDone), is: eventstore.ErrClosed},
		{name: "Full", err: full, is: eventstore.ErrResources, as: func(err error) bool {
			var re *eventstore.ResourceError
			return errors.As(err, &re) && re.Resource == eventstore.ResourceDisk
		}},
		{name: "SyntaxPassesThrough", err: exec(`SELEC 1`), passes: true},
		{name: "DeadlinePassesThrough", err: context.DeadlineExceeded, is: context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name != "Nil" && tt.err == nil {
				t.Fatal("the database did not produce the error this case needs")
			}
			got := interpretError(tt.err)
			if tt.passes {
				if got != tt.err { //nolint:errorlint // identity: the error must come back unchanged, not wrapped
					t.Fatalf("interpretError(%v) = %v, want it unchanged", tt.err, got)
				}
				return
			}
			if !errors.Is(got, tt.is) {
				t.Fatalf("interpretError(%v) = %v, want errors.Is %v", tt.err, got, tt.is)
			}
			if tt.as != nil && !tt.as(got) {
				t.Fatalf("interpretError(%v) = %v, wrong type", tt.err, got)
			}
			if !errors.Is(got, tt.err) {
				t.Fatalf("interpretError dropped the driver error from the chain: %v", got)
			}
		})
	}
}
