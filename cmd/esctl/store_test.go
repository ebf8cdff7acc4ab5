package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/internal/testdb"
	"github.com/esctl/esctl/transfer"
)

func TestInit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	url := "sqlite://" + filepath.Join(dir, "new.db")

	// --dry-run on a missing file says what it would do and creates nothing.
	r := mustEsctl(t, "", "--db", url, "init", "--dry-run")
	wantCode(t, r, 0, "would create the store", "(dry run)")
	if _, err := os.Stat(filepath.Join(dir, "new.db")); !os.IsNotExist(err) {
		t.Fatalf("init --dry-run created the file: %v", err)
	}

	r = mustEsctl(t, "", "--db", url, "init")
	wantCode(t, r, 0, "schema migrated from version 0 to")
	if r.stdout != "" {
		t.Fatalf("init wrote to stdout: %s", r)
	}
	d := describe(t, url)
	if num(t, d, "schemaVersion") != num(t, d, "latestSchemaVersion") || num(t, d, "schemaVersion") == 0 {
		t.Fatalf("schema after init: %v", d)
	}

	// Again: nothing to do, exit 0 (and the same with --dry-run).
	wantCode(t, esctl(t, "", "--db", url, "init"), 0, "nothing to do")
	wantCode(t, esctl(t, "", "--db", url, "init", "--dry-run"), 0, "nothing to do (dry run)")
	s := summaryJSON(t, mustEsctl(t, "", "--db", url, "-o", "json", "init").stdout)
	if s["command"] != "init" || s["dryRun"] != false || num(t, s, "schemaVersion") != num(t, d, "schemaVersion") {
		t.Fatalf("init -o json: %v", s)
	}
}

func TestInitFailures(t *testing.T) {
	t.Parallel()
	// An unknown scheme is a usage error that lists the accepted ones.
	r := esctl(t, "", "--db", "mysql://root@localhost/app", "init")
	wantCode(t, r, exitUsage, "mysql://root@localhost/app", "postgres://", "postgresql://", "sqlite://", "file:", ".db")
	if r.stdout != "" {
		t.Fatalf("usage error on stdout: %s", r)
	}
	// A directory where the SQLite file should be.
	r = esctl(t, "", "--db", "sqlite://"+t.TempDir(), "init")
	if r.code != exitFailure {
		t.Fatalf("init on a directory: %s", r)
	}
}

func TestMigrate(t *testing.T) {
	t.Parallel()
	url := sqliteURL(t, "m.db")
	// migrate up creates the store, and is fine twice (exit 0 both times).
	wantCode(t, mustEsctl(t, "", "--db", url, "migrate", "up"), 0, "schema migrated from version 0")
	wantCode(t, mustEsctl(t, "", "--db", url, "migrate", "up"), 0, "nothing to do")
	wantCode(t, mustEsctl(t, "", "--db", url, "migrate", "up", "--dry-run"), 0, "nothing to do (dry run)")
	latest := num(t, describe(t, url), "latestSchemaVersion")

	r := mustEsctl(t, "", "--db", url, "migrate", "status")
	if !strings.Contains(r.stdout, "pending  false") || !strings.Contains(r.stdout, "dirty    false") {
		t.Fatalf("migrate status: %s", r)
	}
	st := decodeJSON(t, mustEsctl(t, "", "--db", url, "-o", "json", "migrate", "status").stdout)
	if st["pending"] != false || num(t, st, "version") != latest || num(t, st, "latest") != latest {
		t.Fatalf("migrate status -o json: %v", st)
	}

	// down asks: without a terminal and without --yes it refuses.
	wantCode(t, esctl(t, "", "--db", url, "migrate", "down", "1"), exitUsage, "refusing to revert the schema", "pass --yes")
	wantCode(t, mustEsctl(t, "", "--db", url, "migrate", "down", "1", "--dry-run"), 0, "(dry run)")
	if v := num(t, describe(t, url), "schemaVersion"); v != latest {
		t.Fatalf("a refused or dry down changed the schema: %d", v)
	}
	wantCode(t, mustEsctl(t, "", "--db", url, "migrate", "down", "1", "--yes"), 0, "schema migrated from version")
	// Pending migrations: status exits 4, and so does a command that needs the store.
	r = esctl(t, "", "--db", url, "migrate", "status")
	wantCode(t, r, exitStoreState, "pending", "esctl migrate up")
	if !strings.Contains(r.stdout, "pending  true") {
		t.Fatalf("migrate status when behind: %s", r)
	}
	// One version behind (the one before event metadata) is served
	// without metadata.
	wantCode(t, mustEsctl(t, "", "--db", url, "events"), 0, "0 events")
	// describe still works, and says so.
	if r := mustEsctl(t, "", "--db", url, "describe"); !strings.Contains(r.stdout, "1 migration(s) pending (esctl migrate up)") {
		t.Fatalf("describe of a store with a pending migration: %s", r)
	}
	if d := describe(t, url); d["pending"] != true || num(t, d, "schemaVersion") != latest-1 {
		t.Fatalf("describe -o json of a store with a pending migration: %v", d)
	}
	// Two behind is not served: a command that needs the store exits 4.
	wantCode(t, mustEsctl(t, "", "--db", url, "migrate", "down", "1", "--yes"), 0, "schema migrated from version")
	wantCode(t, esctl(t, "", "--db", url, "events"), exitStoreState, "migrations are pending")
	if r := mustEsctl(t, "", "--db", url, "describe"); !strings.Contains(r.stdout, "2 migration(s) pending (esctl migrate up)") {
		t.Fatalf("describe of a store with two pending migrations: %s", r)
	}
	wantCode(t, mustEsctl(t, "", "--db", url, "migrate", "up", "--dry-run"), 0, "would migrate the schema")
	wantCode(t, mustEsctl(t, "", "--db", url, "migrate", "up"), 0, "schema migrated from version")
	mustEsctl(t, "", "--db", url, "migrate", "status")

	// Usage errors.
	for _, args := range [][]string{
		{"migrate", "down", "x", "--yes"},
		{"migrate", "down", "0", "--yes"},
		{"migrate", "down", "1", "2", "--yes"},
		{"migrate", "force", "--yes"},
		{"migrate", "force", "-1", "--yes"},
		{"migrate", "force", "999", "--yes"},
		{"migrate", "sideways"},
	} {
		r := esctl(t, "", append([]string{"--db", url}, args...)...)
		wantCode(t, r, exitUsage)
		if r.stdout != "" {
			t.Fatalf("%v: usage error on stdout: %s", args, r)
		}
	}
	// Status of a store that does not exist.
	wantCode(t, esctl(t, "", "--db", sqliteURL(t, "none.db"), "migrate", "status"), exitStoreState, "does not exist")

	// migrate down without N reverts everything: the store is gone.
	wantCode(t, mustEsctl(t, "", "--db", url, "migrate", "down", "--yes"), 0, "to 0")
	wantCode(t, esctl(t, "", "--db", url, "describe"), exitStoreState)
}

func TestMigrateDirtyAndForce(t *testing.T) {
	t.Parallel()
	url := sqliteURL(t, "dirty.db")
	mustEsctl(t, "", "--db", url, "init")
	latest := num(t, describe(t, url), "latestSchemaVersion")
	// An interrupted migration leaves the schema dirty.
	db, err := sql.Open("sqlite", strings.TrimPrefix(url, "sqlite://"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE esctl_schema_migrations SET dirty = 1`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	r := esctl(t, "", "--db", url, "migrate", "status")
	wantCode(t, r, exitStoreState, "interrupted (dirty)", "esctl migrate force VERSION")
	if !strings.Contains(r.stdout, "dirty    true") {
		t.Fatalf("status of a dirty schema: %s", r)
	}
	wantCode(t, esctl(t, "", "--db", url, "events"), exitStoreState, "dirty")
	if r := mustEsctl(t, "", "--db", url, "describe"); !strings.Contains(r.stdout, "dirty: a migration was interrupted") {
		t.Fatalf("describe of a dirty store: %s", r)
	}

	v := strings.TrimSpace(strings.Fields(r.stdout)[1])
	wantCode(t, esctl(t, "", "--db", url, "migrate", "force", v), exitUsage, "refusing to record schema version", "pass --yes")
	wantCode(t, mustEsctl(t, "", "--db", url, "migrate", "force", v, "--dry-run"), 0, "would record schema version", "(dry run)")
	wantCode(t, esctl(t, "", "--db", url, "migrate", "status"), exitStoreState, "dirty")
	wantCode(t, mustEsctl(t, "", "--db", url, "migrate", "force", v, "--yes"), 0, "dirty flag cleared")
	mustEsctl(t, "", "--db", url, "migrate", "status")
	if d := describe(t, url); d["dirty"] != false || num(t, d, "schemaVersion") != latest {
		t.Fatalf("after force: %v", d)
	}
}

func TestDrop(t *testing.T) {
	t.Parallel()
	url := sqliteURL(t, "d.db")
	seed(t, url, 10, 2, 0)
	// No terminal, no --yes: refused, the store is intact.
	r := esctl(t, "", "--db", url, "drop")
	wantCode(t, r, exitUsage, "refusing to drop the store", "10 events", "pass --yes")
	wantCode(t, mustEsctl(t, "", "--db", url, "drop", "--dry-run"), 0, "would drop the store", "(dry run)")
	if n := num(t, describe(t, url), "eventCount"); n != 10 {
		t.Fatalf("store changed by a refused drop: %d events", n)
	}
	wantCode(t, mustEsctl(t, "", "--db", url, "drop", "--yes"), 0, "store dropped (10 events)")
	wantCode(t, esctl(t, "", "--db", url, "describe"), exitStoreState, "not initialized", "esctl --db URL init")
	// A store that does not exist.
	wantCode(t, esctl(t, "", "--db", sqliteURL(t, "none.db"), "drop", "--yes"), exitStoreState, "does not exist")
}

func TestDescribe(t *testing.T) {
	t.Parallel()
	url := sqliteURL(t, "desc.db")
	mustEsctl(t, "", "--db", url, "init")
	// An empty store: every key is there, lastEventTimestamp null.
	d := describe(t, url)
	for _, k := range []string{"eventCount", "secretCount", "setSecretCount", "deletedSecretCount", "isFrozen", "lastEventTimestamp", "cursor", "schemaVersion"} {
		if _, ok := d[k]; !ok {
			t.Fatalf("describe -o json of an empty store lacks %q: %v", k, d)
		}
	}
	if d["lastEventTimestamp"] != nil || num(t, d, "eventCount") != 0 || d["isFrozen"] != false {
		t.Fatalf("empty store: %v", d)
	}

	seed(t, url, 25, 4, 3) // 25 events, 3 secrets set (one deleted): 4 audit events
	for _, args := range [][]string{{"-o", "json", "describe"}, {"describe", "-o", "json", "--estimate-counts"}} {
		r := mustEsctl(t, "", append([]string{"--db", url}, args...)...)
		d := decodeJSON(t, r.stdout)
		want := map[string]int64{"eventCount": 29, "secretCount": 3, "setSecretCount": 2, "deletedSecretCount": 1, "lastPosition": 29}
		for k, v := range want {
			if num(t, d, k) != v {
				t.Fatalf("%v: %s = %d, want %d: %v", args, k, num(t, d, k), v, d)
			}
		}
		if d["isFrozen"] != false || d["cursor"] != string(eventstore.CursorAt(29)) || d["lastEventTimestamp"] == nil {
			t.Fatalf("%v: %v", args, d)
		}
		if num(t, d, "firstPosition") != 1 || num(t, d, "aggregateCount") < 4 || num(t, d, "snapshotCount") != 0 || d["pending"] != false {
			t.Fatalf("%v: first position, aggregates, snapshots, pending: %v", args, d)
		}
	}

	r := mustEsctl(t, "", "--db", url, "describe")
	for _, want := range []string{"events          29", "end cursor      " + string(eventstore.CursorAt(29)), "secrets         3 (2 set, 1 deleted)", "frozen          no", "schema version"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("describe lacks %q: %s", want, r)
		}
	}
	if r.stderr != "" {
		t.Fatalf("describe wrote to stderr: %s", r)
	}

	// Failures: no store, and an empty file that holds no store.
	wantCode(t, esctl(t, "", "--db", sqliteURL(t, "none.db"), "describe"), exitStoreState, "does not exist", "init")
	empty := filepath.Join(t.TempDir(), "empty.db")
	writeFile(t, filepath.Dir(empty), "empty.db", nil)
	wantCode(t, esctl(t, "", "--db", empty, "describe"), exitStoreState, "not initialized")
}

func TestFreezeUnfreeze(t *testing.T) {
	t.Parallel()
	url := sqliteURL(t, "f.db")
	seed(t, url, 5, 1, 0)

	wantCode(t, mustEsctl(t, "", "--db", url, "freeze", "--dry-run"), 0, "would freeze the store (dry run)")
	if describe(t, url)["isFrozen"] != false {
		t.Fatal("freeze --dry-run froze the store")
	}
	// Without --reason the reason says who froze it, from where and when.
	wantCode(t, mustEsctl(t, "", "--db", url, "freeze"), 0, "store frozen", "reason: by ")
	d := describe(t, url)
	if d["isFrozen"] != true {
		t.Fatalf("after freeze: %v", d)
	}
	if r, _ := d["frozenReason"].(string); !regexp.MustCompile(`^by .+@.+ at \d{4}-\d\d-\d\dT`).MatchString(r) {
		t.Fatalf("default reason: %q", r)
	}
	mustEsctl(t, "", "--db", url, "unfreeze")
	wantCode(t, mustEsctl(t, "", "--db", url, "freeze", "--reason", "moving to PostgreSQL"), 0, "store frozen", "reason: moving to PostgreSQL")
	if d := describe(t, url); d["frozenReason"] != "moving to PostgreSQL" {
		t.Fatalf("describe -o json after freeze --reason: %v", d)
	}
	if r := mustEsctl(t, "", "--db", url, "describe"); !strings.Contains(r.stdout, "frozen          yes (moving to PostgreSQL)") {
		t.Fatalf("describe of a frozen store: %s", r)
	}
	// Frozen: freezing again and writes are refused with exit 4.
	wantCode(t, esctl(t, "", "--db", url, "freeze"), exitStoreState, "already frozen")
	wantCode(t, mustEsctl(t, "", "--db", url, "freeze", "--dry-run"), 0, "already frozen", "would fail")
	wantCode(t, esctl(t, "k", "--db", url, "secrets", "set", "s1"), exitStoreState, "frozen", "esctl unfreeze")

	wantCode(t, mustEsctl(t, "", "--db", url, "unfreeze", "--dry-run"), 0, "would unfreeze the store (dry run)")
	wantCode(t, mustEsctl(t, "", "--db", url, "unfreeze"), 0, "store unfrozen")
	wantCode(t, esctl(t, "", "--db", url, "unfreeze"), exitStoreState, "already unfrozen")
	mustEsctl(t, "k", "--db", url, "secrets", "set", "s1")

	// A store that does not exist.
	wantCode(t, esctl(t, "", "--db", sqliteURL(t, "none.db"), "freeze"), exitStoreState, "does not exist")
	wantCode(t, esctl(t, "", "--db", sqliteURL(t, "none.db"), "unfreeze"), exitStoreState, "does not exist")
}

// TestDatabaseSources: --db, then ESCTL_DB, then DATABASE_URL, then
// sqlite://./esctl.db; describe names the store it opened.
func TestDatabaseSources(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	t.Setenv("ESCTL_DB", "")
	t.Setenv("DATABASE_URL", "")
	os.Unsetenv("ESCTL_DB")
	os.Unsetenv("DATABASE_URL")

	store := func(args ...string) string {
		t.Helper()
		r := mustEsctl(t, "", append(args, "describe")...)
		line, _, _ := strings.Cut(r.stdout, "\n")
		return strings.TrimSpace(strings.TrimPrefix(line, "store"))
	}
	mustEsctl(t, "", "init")
	if _, err := os.Stat(filepath.Join(dir, "esctl.db")); err != nil {
		t.Fatalf("init without --db did not create ./esctl.db: %v", err)
	}
	if got := store(); got != "sqlite://./esctl.db (sqlite)" {
		t.Fatalf("default store: %q", got)
	}
	for _, name := range []string{"a.db", "b.db", "c.db"} {
		mustEsctl(t, "", "--db", "sqlite://"+name, "init")
	}
	t.Setenv("DATABASE_URL", "sqlite://b.db")
	if got := store(); got != "sqlite://b.db (sqlite)" {
		t.Fatalf("with DATABASE_URL: %q", got)
	}
	t.Setenv("ESCTL_DB", "sqlite://a.db")
	if got := store(); got != "sqlite://a.db (sqlite)" {
		t.Fatalf("ESCTL_DB must win over DATABASE_URL: %q", got)
	}
	if got := store("--db", "sqlite://c.db"); got != "sqlite://c.db (sqlite)" {
		t.Fatalf("--db must win over the environment: %q", got)
	}
	// The flag also works after the command, and the accepted spellings.
	if got := store("--db", "c.db"); got != "c.db (sqlite)" {
		t.Fatalf("a bare .db path: %q", got)
	}
	if got := store("--db", "file:c.db"); got != "file:c.db (sqlite)" {
		t.Fatalf("file: URL: %q", got)
	}
	r := mustEsctl(t, "", "describe", "--db", "sqlite://c.db")
	if !strings.HasPrefix(r.stdout, "store           sqlite://c.db") {
		t.Fatalf("--db after the command: %s", r)
	}
	// An unknown scheme from the environment is a usage error too.
	t.Setenv("ESCTL_DB", "mongodb://x")
	wantCode(t, esctl(t, "", "describe"), exitUsage, "postgres://", "sqlite://")
}

// TestPasswordsRedacted: a password in a database URL never reaches stdout
// or stderr, whatever fails and whatever the log level.
func TestPasswordsRedacted(t *testing.T) {
	t.Parallel()
	const pw = "s3cretPassw0rd"
	src := sqliteURL(t, "src.db")
	seed(t, src, 3, 1, 0)
	urls := []string{
		"postgres://app:" + pw + "@127.0.0.1:1/app?sslmode=disable&connect_timeout=5",
		"postgresql://app:" + pw + "@127.0.0.1:1/app?schema=events&sslmode=disable",
		"postgres://app@127.0.0.1:1/app?password=" + pw + "&sslmode=disable",
		"postgres://app:p%zz" + pw + "@127.0.0.1:1/app",    // does not parse
		"postgres://app:" + pw + "@[::1/app",               // does not parse
		"postgres://app:" + pw + "@127.0.0.1:99999999/app", // bad port
		"postgres://app:x@" + pw + "@127.0.0.1:1/app",      // an unescaped @ in the password
		"postgres://app:sec " + pw + "@127.0.0.1:1/app",    // a space: does not parse (issue 12)
		"postgres://app:" + pw + " x@127.0.0.1:1/app",
		"host=127.0.0.1 port=1 user=app password='sec " + pw + "' dbname=app", // libpq key=value, quoted
	}
	for _, u := range urls {
		for _, args := range [][]string{
			{"--db", u, "describe"},
			{"--db", u, "--log-level", "debug", "-o", "json", "init"},
			{"--db", u, "migrate", "status"},
			{"--db", u, "drop", "--yes"},
			{"--db", u, "events"},
			{"copy", "--from", src, "--to", u},
			{"copy", "--from", u, "--to", sqliteURL(t, "dst.db")},
		} {
			r := esctl(t, "", args...)
			if r.code == 0 {
				t.Fatalf("%v succeeded: %s", args, r)
			}
			if strings.Contains(r.stdout+r.stderr, pw) {
				t.Fatalf("%v printed the password: %s", args, r)
			}
			if !strings.Contains(r.stderr, "esctl: ") {
				t.Fatalf("%v: no error message: %s", args, r)
			}
		}
	}
	// Connection failures are failures (1), and say which store.
	r := esctl(t, "", "--db", urls[0], "describe")
	wantCode(t, r, exitFailure, "postgres://app:xxxxx@127.0.0.1:1/app")
}

func TestRedactText(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"open postgres://u:pw@h/db: refused":                     "open postgres://u:xxxxx@h/db: refused",
		`parse "postgres://u:p%zz@h/db": invalid`:                `parse "postgres://u:xxxxx@h/db": invalid`,
		"postgres://u@h/db?sslmode=disable&password=pw&x=1":      "postgres://u@h/db?sslmode=disable&password=xxxxx&x=1",
		"host=h user=u password=pw dbname=d":                     "host=h user=u password=xxxxx dbname=d",
		"from postgres://a:1@h/x to postgresql://b:2@h/y failed": "from postgres://a:xxxxx@h/x to postgresql://b:xxxxx@h/y failed",
		"no password here: sqlite://./a.db, user@example.com":    "no password here: sqlite://./a.db, user@example.com",
		`open "postgres://u:p@ss:w@h/db": bad`:                   `open "postgres://u:xxxxx@h/db": bad`,
	} {
		if got := eventstore.RedactFunc()(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
	// The passwords of the URLs esctl was given are masked wherever a
	// driver quotes them, even out of URL form.
	e := &env{redactor: eventstore.RedactFunc("esctl", "--db", "postgres://u:ab@cdefgh@h/db", "--to=postgres://v:p%40ss@h/x?password=qwerty")}
	for in, want := range map[string]string{
		"lookup cdefgh@h: no such host": "lookup xxxxx@h: no such host",
		"auth failed for p@ss":          "auth failed for xxxxx",
		"bad option qwerty":             "bad option xxxxx",
		"short ab stays":                "short ab stays",
	} {
		if got := e.redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestUsageErrors: exit 2, nothing on stdout, a pointer to the help.
func TestUsageErrors(t *testing.T) {
	t.Parallel()
	url := sqliteURL(t, "u.db")
	mustEsctl(t, "", "--db", url, "init")
	for _, args := range [][]string{
		{"export", "--bogus"},
		{"--bogus", "describe"},
		{"bogus"},
		{"help", "bogus"},
		{"-v", "describe"},
		{"--output", "yaml", "describe"},
		{"--progress", "sometimes", "export"},
		{"--log-level", "loud", "describe"},
		{"describe", "extra"},
		{"import", "events.ndjson"},
		{"export", "--maintenance", "sometimes"},
		{"copy", "--from", url},
		{"copy", "--to", url},
		{"secrets"},
		{"secrets", "get"},
		{"snapshots", "get", "a", "b"},
		{"events", "--limit", "ten"},
	} {
		r := esctl(t, "", append([]string{"--db", url}, args...)...)
		if args[0] == "secrets" && len(args) == 1 {
			// A group without a subcommand shows its help, on stdout, exit 0.
			if r.code != 0 || !strings.Contains(r.stdout, "COMMANDS:") {
				t.Fatalf("%v: %s", args, r)
			}
			continue
		}
		wantCode(t, r, exitUsage, "esctl: ", "--help")
		if r.stdout != "" {
			t.Fatalf("%v: a usage error wrote to stdout: %s", args, r)
		}
	}
	// The hint names the command.
	wantCode(t, esctl(t, "", "--db", url, "export", "--bogus"), exitUsage, "Try: esctl export --help")
	wantCode(t, esctl(t, "", "--db", url, "import", "x.ndjson"), exitUsage, "takes no arguments", "--in FILE")
}

func TestVersion(t *testing.T) {
	t.Parallel()
	r := mustEsctl(t, "", "--version")
	if strings.TrimSpace(r.stdout) == "" || r.stderr != "" {
		t.Fatalf("--version: %s", r)
	}
	r = mustEsctl(t, "", "version")
	if !strings.HasPrefix(r.stdout, "esctl ") || !strings.Contains(r.stdout, "go1.") {
		t.Fatalf("version: %s", r)
	}
	v := decodeJSON(t, mustEsctl(t, "", "-o", "json", "version").stdout)
	if v["version"] == "" || v["version"] == nil || v["go"] == nil {
		t.Fatalf("version -o json: %v", v)
	}
	// The built binary reports a version too (the module's, or (devel)).
	if r := binary(t, t.TempDir(), nil, nil, "--version"); r.code != 0 || strings.TrimSpace(r.stdout) == "" {
		t.Fatalf("binary --version: %s", r)
	}
	wantCode(t, esctl(t, "", "version", "extra"), exitUsage, "takes no arguments")
}

func TestCompletion(t *testing.T) {
	t.Parallel()
	for _, shell := range []string{"bash", "zsh", "fish"} {
		r := mustEsctl(t, "", "completion", shell)
		if !strings.Contains(r.stdout, "esctl") || r.stderr != "" {
			t.Fatalf("completion %s: %s", shell, r)
		}
		if shell == "bash" {
			if _, err := execLookPath("bash"); err == nil {
				checkShellSyntax(t, "bash", r.stdout)
			}
		}
	}
	// The command is listed in the help.
	if r := mustEsctl(t, "", "--help"); !strings.Contains(r.stdout, "completion") {
		t.Fatalf("completion is not listed: %s", r)
	}
	r := esctl(t, "", "completion", "tcsh")
	wantCode(t, r, exitUsage, `unknown command "tcsh"`)
	if r.stdout != "" {
		t.Fatalf("completion tcsh wrote to stdout: %s", r)
	}
}

func TestDemo(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// The built binary, in its own directory (the demo writes ./esctl-demo.db).
	r := binary(t, dir, nil, nil, "--db", "sqlite://./untouched.db", "demo", "--commands", "60", "--workers", "4")
	if r.code != 0 {
		t.Fatalf("demo: %s", r)
	}
	for _, want := range []string{"created fresh", "concurrency conflict", "projection", "matches the aggregate", "froze the store", "description:"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("demo output lacks %q: %s", want, r)
		}
	}
	if strings.Contains(r.stdout, "DOES NOT MATCH") {
		t.Fatalf("demo projection disagrees: %s", r)
	}
	if _, err := os.Stat(filepath.Join(dir, "esctl-demo.db")); err != nil {
		t.Fatalf("demo store: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "untouched.db")); !os.IsNotExist(err) {
		t.Fatalf("demo touched --db: %v", err)
	}
	// Again: it re-creates its store.
	if r := binary(t, dir, nil, nil, "demo", "--commands", "10", "--workers", "2"); r.code != 0 {
		t.Fatalf("demo again: %s", r)
	}
	// The README's next command after the demo works on the demo's store.
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var next []string
	for _, l := range strings.Split(string(readme), "\n") {
		if f := strings.Fields(l); len(f) > 3 && strings.Join(f[:3], " ") == "go run ./cmd/esctl" && f[3] != "demo" {
			next = f[3:]
			break
		}
	}
	if len(next) == 0 || !strings.Contains(strings.Join(next, " "), "esctl-demo.db") {
		t.Fatalf("README has no command for the demo's store after the demo: %q", next)
	}
	if r := binary(t, dir, nil, nil, next...); r.code != 0 || !strings.Contains(r.stdout, "events") {
		t.Fatalf("README's %v after the demo: %s", next, r)
	}
	d := describe(t, "sqlite://"+filepath.Join(dir, "esctl-demo.db"))
	if n := num(t, d, "eventCount"); n < 10 || n > 20 {
		t.Fatalf("the second demo did not start from a fresh store: %v", d)
	}
	wantCode(t, esctl(t, "", "demo", "--commands", "0"), exitUsage, "at least 1")
	wantCode(t, esctl(t, "", "demo", "--workers", "0"), exitUsage, "at least 1")
}

func TestExitCodeMapping(t *testing.T) {
	t.Parallel()
	live := context.Background()
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, c := range []struct {
		ctx  context.Context
		err  error
		want int
	}{
		{live, nil, exitOK},
		{live, usagef("x"), exitUsage},
		{live, eventstore.ErrUnknownScheme, exitUsage},
		{live, &transfer.LineError{Line: 3}, exitBadInput},
		{live, transfer.ErrResumeMismatch, exitBadInput},
		{live, transfer.ErrOlderEvents, exitBadInput},
		{live, eventstore.ErrInvalidCursor, exitBadInput},
		{live, eventstore.ErrFrozen, exitStoreState},
		{live, eventstore.ErrNotInitialized, exitStoreState},
		{live, &eventstore.SchemaVersionError{Current: 1, Expected: 3}, exitStoreState},
		{live, stateErrorf("not empty"), exitStoreState},
		{live, eventstore.ErrUnavailable, exitFailure},
		{live, &eventstore.ResourceError{Resource: eventstore.ResourceDisk, Err: errors.New("ENOSPC")}, exitResources},
		{live, fmt.Errorf("import: %w", &eventstore.ResourceError{Resource: eventstore.ResourceConnections}), exitResources},
		{live, &transfer.ImportRecordedError{SourceID: "s", Done: true}, exitStoreState},
		{live, context.Canceled, exitFailure},
		{cancelled, context.Canceled, exitInterrupted},
		{cancelled, withHint(eventstore.ErrUnavailable, "h"), exitInterrupted},
	} {
		if got := exitCode(c.ctx, c.err); got != c.want {
			t.Errorf("exitCode(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}

// TestLibpqEnvironment: libpq's variables fill in what a postgres:// URL
// leaves out, as docs/cli.md says: host, port, user and password from
// PGHOST, PGPORT, PGUSER and PGPASSWORD.
func TestLibpqEnvironment(t *testing.T) {
	t.Parallel()
	full := testdb.PostgresURL(t)
	cfg, err := pgx.ParseConfig(full)
	if err != nil {
		t.Fatal(err)
	}
	env := []string{
		"PGHOST=" + cfg.Host, "PGPORT=" + strconv.Itoa(int(cfg.Port)), "PGUSER=" + cfg.User,
		"PGPASSWORD=" + cfg.Password, "PGSSLMODE=disable", "ESCTL_DB=", "DATABASE_URL=",
	}
	short := "postgres:///" + cfg.Database
	for _, args := range [][]string{{"init"}, {"-o", "json", "describe"}} {
		r := binary(t, t.TempDir(), nil, env, append([]string{"--db", short}, args...)...)
		if r.code != 0 {
			t.Fatalf("esctl --db %s %v with PG* variables: %s", short, args, r)
		}
	}
	// The same store, through the full URL.
	if d := describe(t, full); d["engine"] != "postgres" || num(t, d, "schemaVersion") == 0 {
		t.Fatalf("describe %s: %v", full, d)
	}
}
