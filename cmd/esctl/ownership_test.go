package main

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/esctl/esctl/internal/testdb"
	"github.com/esctl/esctl/migrations"
)

// rawDB runs SQL on a store's database outside esctl: the application's
// view of it.
type rawDB struct {
	t      testing.TB
	sqlite *sql.DB
	pg     *pgx.Conn
}

func openRaw(t testing.TB, url string) *rawDB {
	t.Helper()
	r := &rawDB{t: t}
	if path, ok := strings.CutPrefix(url, "sqlite://"); ok {
		db, err := sql.Open("sqlite", path)
		require.NoError(t, err)
		t.Cleanup(func() { _ = db.Close() })
		r.sqlite = db
		return r
	}
	conn, err := pgx.Connect(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	r.pg = conn
	return r
}

func (r *rawDB) exec(q string) {
	r.t.Helper()
	var err error
	if r.sqlite != nil {
		_, err = r.sqlite.Exec(q)
	} else {
		_, err = r.pg.Exec(context.Background(), q)
	}
	require.NoError(r.t, err, q)
}

// rows returns every row of q, each as its columns' text joined by | (for
// comparing a table with itself over time: NULL and ” look the same).
func (r *rawDB) rows(q string) []string {
	r.t.Helper()
	var out []string
	if r.sqlite != nil {
		rows, err := r.sqlite.Query(q)
		require.NoError(r.t, err, q)
		defer rows.Close()
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]sql.NullString, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			require.NoError(r.t, rows.Scan(ptrs...))
			var parts []string
			for _, v := range vals {
				parts = append(parts, v.String)
			}
			out = append(out, strings.Join(parts, "|"))
		}
		require.NoError(r.t, rows.Err())
		return out
	}
	rows, err := r.pg.Query(context.Background(), q)
	require.NoError(r.t, err, q)
	defer rows.Close()
	for rows.Next() {
		vals, err := rows.Values()
		require.NoError(r.t, err)
		var parts []string
		for _, v := range vals {
			parts = append(parts, fmt.Sprint(v))
		}
		out = append(out, strings.Join(parts, "|"))
	}
	require.NoError(r.t, rows.Err())
	return out
}

// eachEngine runs fn, as a parallel subtest per engine, on the URL of a
// fresh database of that engine (no store in it yet).
func eachEngine(t *testing.T, fn func(t *testing.T, engine, url string)) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			url := sqliteURL(t, "store.db")
			if engine == "postgres" {
				url = testdb.PostgresURL(t)
			}
			fn(t, engine, url)
		})
	}
}

// appTables creates an application's own tables next to the store: a
// table of its data and golang-migrate's default version table, at a
// version esctl never had.
func appTables(r *rawDB) {
	if r.sqlite != nil {
		r.exec(`CREATE TABLE schema_migrations (version uint64, dirty bool)`)
		r.exec(`CREATE UNIQUE INDEX version_unique ON schema_migrations (version)`)
		r.exec(`CREATE TABLE accounts (id INTEGER PRIMARY KEY, owner TEXT NOT NULL, balance INTEGER NOT NULL)`)
	} else {
		r.exec(`CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL)`)
		r.exec(`CREATE TABLE accounts (id bigint PRIMARY KEY, owner text NOT NULL, balance bigint NOT NULL)`)
	}
	r.exec(`INSERT INTO schema_migrations (version, dirty) VALUES (42, false)`)
	r.exec(`INSERT INTO accounts (id, owner, balance) VALUES (1, 'Zoë', 100), (2, 'Ada "A" Lovelace', -5), (3, '', 0)`)
}

func appDump(r *rawDB) []string {
	out := append([]string{"schema_migrations:"}, r.rows(`SELECT version, dirty FROM schema_migrations ORDER BY version`)...)
	out = append(out, "accounts:")
	return append(out, r.rows(`SELECT id, owner, balance FROM accounts ORDER BY id`)...)
}

// TestOtherTablesSurvive: an application's own tables and its own
// golang-migrate version table (schema_migrations, at version 42) next to
// the store, in the same PostgreSQL schema or SQLite file, survive init,
// migrate down and up, backup, restore --force and drop unchanged; the
// store keeps its version in esctl_schema_migrations; drop refuses a
// database that holds no store.
//
// Checked against the code before the fix (2026-12-03): init failed with
// golang-migrate's "no migration found for version 42", and with the
// version table shared, drop deleted schema_migrations.
func TestOtherTablesSurvive(t *testing.T) {
	t.Parallel()
	eachEngine(t, func(t *testing.T, _, url string) {
		raw := openRaw(t, url)
		appTables(raw)
		want := appDump(raw)

		wantCode(t, esctl(t, "", "--db", url, "drop", "--yes"), exitStoreState, "no esctl store", "nothing to drop")
		require.Equal(t, want, appDump(raw), "a refused drop")

		wantCode(t, mustEsctl(t, "", "--db", url, "init"), 0, "schema migrated from version 0")
		require.Equal(t, want, appDump(raw), "after init")
		require.Len(t, raw.rows(`SELECT version FROM esctl_schema_migrations`), 1)
		seed(t, url, 50, 5, 2)
		before := exportOf(t, url)

		mustEsctl(t, "", "--db", url, "migrate", "down", "1", "--yes")
		mustEsctl(t, "", "--db", url, "migrate", "up")
		require.Equal(t, want, appDump(raw), "after migrate down and up")

		bk := filepath.Join(t.TempDir(), "s.bk")
		mustEsctl(t, "", "--db", url, "backup", "--out", bk)
		mustEsctl(t, "", "--db", url, "restore", "--in", bk, "--force", "--yes")
		require.Equal(t, want, appDump(raw), "after restore --force")
		require.Equal(t, string(before), string(exportOf(t, url)))

		wantCode(t, mustEsctl(t, "", "--db", url, "drop", "--yes"), 0, "store dropped (")
		require.Equal(t, want, appDump(raw), "after drop")
		wantCode(t, esctl(t, "", "--db", url, "drop", "--yes"), exitStoreState, "no esctl store")
		wantCode(t, mustEsctl(t, "", "--db", url, "init"), 0, "schema migrated from version 0")
		require.Equal(t, want, appDump(raw), "after init again")
	})
}

// TestLegacyVersionTable: a store made before 0.1.0 kept its version in
// schema_migrations. Its first init renames that table and migrates; a
// schema_migrations that holds a version esctl never wrote, next to a
// store without esctl_schema_migrations, is refused (exit 4) until migrate
// force records the store's version.
func TestLegacyVersionTable(t *testing.T) {
	t.Parallel()
	eachEngine(t, func(t *testing.T, engine, url string) {
		seed(t, url, 10, 2, 0)
		// Back to version 3 (the legacy table's last version is 4).
		mustEsctl(t, "", "--db", url, "migrate", "down", strconv.Itoa(int(migrations.Latest(engine))-3), "--yes")
		raw := openRaw(t, url)
		// What esctl before 0.1.0 left: version 3 in schema_migrations.
		raw.exec(`ALTER TABLE esctl_schema_migrations RENAME TO schema_migrations`)
		d := decodeJSON(t, esctl(t, "", "--db", url, "-o", "json", "migrate", "status").stdout)
		require.EqualValues(t, 3, d["version"], "status reads the legacy table")
		wantCode(t, mustEsctl(t, "", "--db", url, "init"), 0, "schema migrated from version 3 to")
		require.Len(t, raw.rows(`SELECT version FROM esctl_schema_migrations WHERE NOT dirty`), 1)
		if engine == "sqlite" {
			require.Empty(t, raw.rows(`SELECT name FROM sqlite_master WHERE name = 'schema_migrations'`))
		} else {
			require.Equal(t, []string{"false"}, raw.rows(`SELECT to_regclass('schema_migrations') IS NOT NULL`))
		}
		require.EqualValues(t, 10, num(t, describe(t, url), "eventCount"))

		// A version esctl wrote, but not the one the store's tables
		// are at: another application's table.
		raw.exec(`ALTER TABLE esctl_schema_migrations RENAME TO schema_migrations`)
		raw.exec(`UPDATE schema_migrations SET version = 2`)
		wantCode(t, esctl(t, "", "--db", url, "init"), exitStoreState, "does not match the store's tables", "esctl migrate force")
		// A version esctl never wrote, and no table of its own.
		raw.exec(`UPDATE schema_migrations SET version = 42`)
		for _, args := range [][]string{{"init"}, {"describe"}, {"migrate", "status"}, {"drop", "--yes"}} {
			wantCode(t, esctl(t, "", append([]string{"--db", url}, args...)...), exitStoreState, "was not written by esctl", "esctl migrate force")
		}
		require.Equal(t, []string{"42"}, raw.rows(`SELECT version FROM schema_migrations`), "the other application's table is untouched")
		latest := fmt.Sprint(num(t, decodeJSON(t, mustEsctl(t, "", "--db", sqliteURL(t, "fresh.db"), "-o", "json", "init").stdout), "latestVersion"))
		mustEsctl(t, "", "--db", url, "migrate", "force", latest, "--yes")
		mustEsctl(t, "", "--db", url, "migrate", "status")
		require.EqualValues(t, 10, num(t, describe(t, url), "eventCount"))
		require.Equal(t, []string{"42"}, raw.rows(`SELECT version FROM schema_migrations`))

		// Drop of a store that still has its legacy table drops it (a
		// legacy table holds at most version 4).
		if n := int(migrations.Latest(engine)) - migrations.LegacyMaxVersion; n > 0 {
			mustEsctl(t, "", "--db", url, "migrate", "down", strconv.Itoa(n), "--yes")
		}
		raw.exec(`DROP TABLE schema_migrations`)
		raw.exec(`ALTER TABLE esctl_schema_migrations RENAME TO schema_migrations`)
		wantCode(t, mustEsctl(t, "", "--db", url, "drop", "--yes"), 0, "store dropped")
		require.Empty(t, raw.rows(tablesQuery(engine)), "nothing of the store is left")
	})
}

func tablesQuery(engine string) string {
	if engine == "sqlite" {
		return `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`
	}
	return `SELECT tablename FROM pg_tables WHERE schemaname = 'public'`
}

// TestNewerSchema: a store migrated by a newer esctl is refused with exit 4
// and describe's message by every command that would migrate it or work on
// it, and nothing changes.
//
// Checked against the code before the fix (2026-12-03): init, migrate up
// and import exited 1 with golang-migrate's text, migrate status exited 0
// ("pending false"), migrate down 1 --yes exited 0 ("nothing to do").
func TestNewerSchema(t *testing.T) {
	t.Parallel()
	eachEngine(t, func(t *testing.T, _, url string) {
		seed(t, url, 5, 1, 0)
		raw := openRaw(t, url)
		raw.exec(`UPDATE esctl_schema_migrations SET version = 99`)
		in := writeFile(t, t.TempDir(), "in.ndjson", eventLines(6, 3, 1))
		for _, args := range [][]string{
			{"init"}, {"migrate", "up"}, {"migrate", "status"}, {"migrate", "down", "1", "--yes"},
			{"import", "--in", in}, {"describe"}, {"events"},
		} {
			r := esctl(t, "", append([]string{"--db", url}, args...)...)
			wantCode(t, r, exitStoreState, "schema version 99 is newer than", "upgrade esctl")
		}
		require.Equal(t, []string{"99"}, raw.rows(`SELECT version FROM esctl_schema_migrations`))
	})
}
