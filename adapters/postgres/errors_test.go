package postgres

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/esctl/esctl/estype"
	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/internal/driver/drivertest"
	"github.com/esctl/esctl/internal/testdb"
)

// TestInterpretError feeds interpretError errors produced by a real
// PostgreSQL server and client, and checks what each becomes.
func TestInterpretError(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, url := testdb.PostgresPool(t)
	exec := func(q string, args ...any) error {
		_, err := pool.Exec(ctx, q, args...)
		return err
	}
	for _, q := range []string{
		`CREATE TABLE events (position bigint CONSTRAINT events_pkey PRIMARY KEY, aggregate_id text, aggregate_version bigint, CONSTRAINT events_aggregate_version_key UNIQUE (aggregate_id, aggregate_version), CONSTRAINT events_position_positive CHECK (position > 0))`,
		`CREATE TABLE checked (k int CONSTRAINT checked_k_check CHECK (k > 0))`,
		`CREATE TABLE secrets (idx bigint PRIMARY KEY, id text, CONSTRAINT secrets_id_key UNIQUE (id))`,
		`CREATE TABLE other (k int CONSTRAINT other_k_key UNIQUE)`,
		`INSERT INTO events VALUES (1, 'a', 1)`,
		`INSERT INTO secrets VALUES (1, 's')`,
		`INSERT INTO other VALUES (1)`,
	} {
		if err := exec(q); err != nil {
			t.Fatal(err)
		}
	}
	lockTimeout := func() error {
		holder, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer holder.Rollback(ctx)
		if _, err := holder.Exec(ctx, `SELECT 1 FROM other FOR UPDATE`); err != nil {
			t.Fatal(err)
		}
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		_, _ = tx.Exec(ctx, `SET LOCAL lock_timeout = '20ms'`)
		_, err = tx.Exec(ctx, `SELECT 1 FROM other FOR UPDATE`)
		return err
	}()
	statementTimeout := func() error {
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		_, _ = tx.Exec(ctx, `SET LOCAL statement_timeout = '20ms'`)
		_, err = tx.Exec(ctx, `SELECT pg_sleep(2)`)
		return err
	}()
	cancelled := func() error {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		defer cancel()
		_, err := pool.Exec(cctx, `SELECT pg_sleep(2)`)
		return err
	}()
	closedPool := func() error {
		p, err := pgxpool.New(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		p.Close()
		_, err = p.Exec(ctx, `SELECT 1`)
		return err
	}()
	refused := func() error {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err := pgx.Connect(cctx, "postgres://u@127.0.0.1:1/db?connect_timeout=2")
		return err
	}()
	terminated := func() error {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if err := exec(`SELECT pg_terminate_backend($1)`, conn.PgConn().PID()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		_, err = conn.Exec(ctx, `SELECT 1`)
		return err
	}()

	// SQLSTATE class 53, from the server: a temporary file over
	// temp_file_limit (53400), a role over its connection limit (53300).
	tempFileLimit := func() error {
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		for _, q := range []string{`SET LOCAL work_mem = '64kB'`, `SET LOCAL temp_file_limit = '64kB'`} {
			if _, err := tx.Exec(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		_, err = tx.Exec(ctx, `SELECT count(DISTINCT g::text) FROM generate_series(1, 200000) g`)
		return err
	}()
	tooManyConnections := func() error {
		role := fmt.Sprintf("esctl_limited_%d", time.Now().UnixNano())
		if err := exec(`CREATE ROLE ` + role + ` LOGIN CONNECTION LIMIT 0`); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = exec(`DROP ROLE ` + role) }()
		cfg, err := pgx.ParseConfig(url)
		if err != nil {
			t.Fatal(err)
		}
		cfg.User = role
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err == nil {
			conn.Close(ctx)
		}
		return err
	}()

	drivertest.CheckErrorMapping(t, interpretError, []drivertest.ErrorCase{
		{Name: "Nil", Passes: true},
		{Name: "EventVersionUnique", Err: exec(`INSERT INTO events VALUES (2, 'a', 1)`), Is: eventstore.ErrConflict,
			As: drivertest.IsConflict},
		{Name: "EventPositionPrimaryKey", Err: exec(`INSERT INTO events VALUES (1, 'b', 1)`), Is: eventstore.ErrInvariant,
			As: drivertest.IsInvariant(estype.InvariantPositionUnique)},
		{Name: "EventPositionPositive", Err: exec(`INSERT INTO events VALUES (0, 'b', 1)`), Is: eventstore.ErrInvariant,
			As: drivertest.IsInvariant(estype.InvariantPositionPositive)},
		{Name: "OtherCheckPassesThrough", Err: exec(`INSERT INTO checked VALUES (0)`), Passes: true},
		{Name: "SecretIDUnique", Err: exec(`INSERT INTO secrets VALUES (2, 's')`), Is: eventstore.ErrSecretExists,
			As: drivertest.IsSecretExists},
		{Name: "OtherUniquePassesThrough", Err: exec(`INSERT INTO other VALUES (1)`), Passes: true},
		{Name: "LockTimeout", Err: lockTimeout, Is: eventstore.ErrTimeout},
		{Name: "StatementTimeout", Err: statementTimeout, Is: eventstore.ErrTimeout},
		{Name: "ContextCancelled", Err: cancelled, Is: context.DeadlineExceeded},
		{Name: "UndefinedTable", Err: exec(`SELECT * FROM no_such_table`), Is: eventstore.ErrNotInitialized},
		{Name: "UndefinedSchema", Err: exec(`SELECT * FROM no_such_schema.events`), Is: eventstore.ErrNotInitialized},
		{Name: "ClosedPool", Err: closedPool, Is: eventstore.ErrClosed},
		{Name: "ConnectionRefused", Err: refused, Is: eventstore.ErrUnavailable},
		{Name: "BackendTerminated", Err: terminated, Is: eventstore.ErrUnavailable},
		{Name: "TempFileLimit", Err: tempFileLimit, Is: eventstore.ErrResources, As: drivertest.IsResource(eventstore.ResourceLimit)},
		{Name: "TooManyConnections", Err: tooManyConnections, Is: eventstore.ErrUnavailable, As: drivertest.IsResource(eventstore.ResourceConnections)},
		{Name: "DiskFull", Err: &pgconn.PgError{Severity: "ERROR", Code: "53100", Message: `could not extend file "base/1/2": No space left on device`},
			Is: eventstore.ErrResources, As: drivertest.IsResource(eventstore.ResourceDisk)},
		{Name: "OutOfMemory", Err: &pgconn.PgError{Severity: "ERROR", Code: "53200", Message: "out of memory"},
			Is: eventstore.ErrResources, As: drivertest.IsResource(eventstore.ResourceMemory)},
		{Name: "SyntaxPassesThrough", Err: exec(`SELEC 1`), Passes: true},
		{Name: "InvalidJSONPassesThrough", Err: exec(`SELECT '{'::json`), Passes: true},
	})

}

// TestIsStatementError: a server error that ends the session (FATAL, as a
// shutdown's 57P01 after a COMMIT the server carried out) is not a refused
// statement: the append path resolves it as in doubt instead of reporting
// "nothing written". TestSubscribeServerRestart met that case: a writer got
// ErrUnavailable for an append the restart had let commit.
func TestIsStatementError(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{&pgconn.PgError{Severity: "ERROR", Code: "23505"}, true},
		{fmt.Errorf("append: %w", &pgconn.PgError{Severity: "ERROR", Code: "55P03"}), true},
		{&pgconn.PgError{Severity: "FATAL", Code: "57P01"}, false},
		{&pgconn.PgError{Severity: "PANIC", Code: "XX000"}, false},
		{errors.New("unexpected EOF"), false},
	} {
		if got := isStatementError(tt.err); got != tt.want {
			t.Errorf("isStatementError(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
