// Package testdb provides real databases to tests: a SQLite file per test,
// and PostgreSQL databases from, in order of preference,
//
//  1. the server named by TEST_DATABASE_URL (a postgres:// URL whose user may
//     create databases), or
//  2. a throwaway cluster this package starts once per test binary with the
//     PostgreSQL server binaries (initdb, pg_ctl; found on PATH, through
//     pg_config --bindir, or under /usr/lib/postgresql), run through
//     `runuser -u postgres --` when the tests run as root, listening only on
//     a private Unix socket directory, with fsync off.
//
// Every test gets a fresh database and drops it when it ends. When neither
// source works, Postgres tests skip with a loud message, or fail when
// ESCTL_REQUIRE_POSTGRES=1 (CI sets it). Packages that use Postgres call Main
// from TestMain so that a cluster the package started is stopped.
package testdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/esctl/esctl/adapters/postgres/pgadmin"
)

// Environment variables.
const (
	EnvURL     = "TEST_DATABASE_URL"
	EnvRequire = "ESCTL_REQUIRE_POSTGRES"
)

// SQLiteURL returns the URL of a fresh SQLite file in the test's temporary
// directory.
func SQLiteURL(t testing.TB) string {
	return "sqlite://" + filepath.Join(t.TempDir(), "es.db")
}

var (
	once     sync.Once
	adminURL string // maintenance connection URL (database "postgres")
	setupErr error
	cluster  *localCluster
)

// Main runs the tests and then stops a cluster this binary started.
func Main(m *testing.M) {
	code := m.Run()
	Stop()
	os.Exit(code)
}

// Stop drops the template databases this process made and stops a cluster
// it started, if any.
func Stop() {
	if len(templates) > 0 && adminURL != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if conn, err := pgx.Connect(ctx, adminURL); err == nil {
			for _, name := range templates {
				_ = pgadmin.DropDatabase(ctx, conn, name)
			}
			_ = conn.Close(ctx)
		}
		cancel()
		templates = nil
	}
	if cluster != nil {
		cluster.stop()
		cluster = nil
	}
}

// PostgresURL returns the URL of a fresh, empty PostgreSQL database, dropped
// when the test ends. It skips (or fails under ESCTL_REQUIRE_POSTGRES=1) when
// no PostgreSQL is available.
func PostgresURL(t testing.TB) string {
	t.Helper()
	admin := requireAdmin(t)
	name := "esctl_test_" + randomHex(6)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("testdb: connect to %s: %v", redact(admin), err)
	}
	defer conn.Close(ctx)
	if err := pgadmin.CreateDatabase(ctx, conn, name, ""); err != nil {
		t.Fatalf("testdb: create database: %v", err)
	}
	t.Cleanup(func() { dropDatabase(t, admin, name) })
	return withDatabase(admin, name)
}

// PostgresPool returns a pool on a fresh database, closed when the test ends.
func PostgresPool(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	u := PostgresURL(t)
	pool, err := pgxpool.New(context.Background(), u)
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool, u
}

// Available reports whether PostgreSQL can be had, starting the cluster if
// needed; the error says why not.
func Available() error {
	once.Do(setup)
	return setupErr
}

func requireAdmin(t testing.TB) string {
	t.Helper()
	if err := Available(); err != nil {
		msg := fmt.Sprintf("\n*** PostgreSQL UNAVAILABLE, test skipped: %v\n*** Set %s=postgres://... or install the PostgreSQL server binaries.\n", err, EnvURL)
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("%s*** %s=1: failing instead of skipping.", msg, EnvRequire)
		}
		t.Skip(msg)
	}
	return adminURL
}

func setup() {
	if u := os.Getenv(EnvURL); u != "" {
		adminURL = u
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, u)
		if err != nil {
			setupErr = fmt.Errorf("%s=%s: %w", EnvURL, redact(u), err)
			return
		}
		_ = conn.Close(ctx)
		return
	}
	c, err := startCluster()
	if err != nil {
		setupErr = fmt.Errorf("no %s and no throwaway cluster: %w", EnvURL, err)
		return
	}
	cluster = c
	adminURL = c.url
}

// withDatabase replaces the database of a postgres URL.
func withDatabase(rawURL, name string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	u.Path = "/" + name
	return u.String()
}

func redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparsable URL)"
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// localCluster is a PostgreSQL cluster started by this process.
type localCluster struct {
	bin   string
	dir   string
	asPG  []string // command prefix to run as the postgres user
	url   string
	owner string
}

// BinDir finds the PostgreSQL server binaries.
func BinDir() (string, error) {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		// A link in PATH (/usr/local/bin/pg_ctl) to the server binaries'
		// directory, which also holds pg_basebackup.
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(p), "initdb")); err == nil {
			return filepath.Dir(p), nil
		}
		if _, err := exec.LookPath("initdb"); err == nil {
			return filepath.Dir(p), nil
		}
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dir := strings.TrimSpace(string(out))
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Strings(dirs)
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i], nil
		}
	}
	return "", errors.New("initdb and pg_ctl not found (install Debian's postgresql package)")
}

// AsPostgresUser returns the prefix that runs a command as the postgres
// user when this process is root (initdb refuses root), or nothing.
func AsPostgresUser() ([]string, string, error) {
	if os.Geteuid() != 0 {
		return nil, "", nil
	}
	if _, err := user.Lookup("postgres"); err != nil {
		return nil, "", errors.New("running as root and there is no postgres user to run initdb as")
	}
	runuser, err := exec.LookPath("runuser")
	if err != nil {
		return nil, "", errors.New("running as root and runuser is missing")
	}
	return []string{runuser, "-u", "postgres", "--"}, "postgres", nil
}

// StartCluster starts a throwaway cluster in a new temporary directory with
// the given extra postgresql.conf lines, and returns its maintenance URL and
// a function that stops it and removes the directory.
func StartCluster(conf []string) (adminURL string, stop func(), err error) {
	c, err := startClusterWith(conf)
	if err != nil {
		return "", nil, err
	}
	return c.url, c.stop, nil
}

// Cluster is a throwaway cluster that one test owns, to restart it.
type Cluster struct {
	c   *localCluster
	URL string // the maintenance database's URL
}

// NewCluster starts a cluster of the test's own (fsync off), stopped and
// removed at the end of the test. Without the server binaries it skips (or
// fails under ESCTL_REQUIRE_POSTGRES=1).
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	c, err := startCluster()
	if err != nil {
		msg := fmt.Sprintf("\n*** no PostgreSQL cluster of the test's own, test skipped: %v\n", err)
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("%s*** %s=1: failing instead of skipping.", msg, EnvRequire)
		}
		t.Skip(msg)
	}
	t.Cleanup(c.stop)
	return &Cluster{c: c, URL: c.url}
}

// Restart stops the server (pg_ctl -m mode: "fast" ends the sessions,
// "immediate" crashes it) and starts it again, waiting for both.
func (c *Cluster) Restart(mode string) error {
	data := filepath.Join(c.c.dir, "data")
	if out, err := c.c.run("pg_ctl", "restart", "-w", "-t", "60", "-m", mode, "-D", data, "-l", filepath.Join(c.c.dir, "log.txt")); err != nil {
		return fmt.Errorf("pg_ctl restart: %w: %s", err, out)
	}
	return nil
}

func startCluster() (*localCluster, error) {
	return startClusterWith([]string{"fsync = off", "synchronous_commit = off", "full_page_writes = off"})
}

func startClusterWith(conf []string) (*localCluster, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	asPG, owner, err := AsPostgresUser()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "esctl-pg-")
	if err != nil {
		return nil, err
	}
	c := &localCluster{bin: bin, dir: dir, asPG: asPG, owner: owner}
	if owner != "" {
		if out, err := exec.Command("chown", owner+":"+owner, dir).CombinedOutput(); err != nil {
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("chown %s: %w: %s", dir, err, out)
		}
	}
	data := filepath.Join(dir, "data")
	if out, err := c.run("initdb", "--no-sync", "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale", "C", "-D", data); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %w: %s", err, out)
	}
	lines := append([]string{"listen_addresses = ''", "unix_socket_directories = '" + dir + "'", "max_connections = 300"}, conf...)
	f, err := os.OpenFile(filepath.Join(data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	_, err = f.WriteString("\n" + strings.Join(lines, "\n") + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	if out, err := c.run("pg_ctl", "start", "-w", "-t", "60", "-D", data, "-l", filepath.Join(dir, "log.txt")); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "log.txt"))
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("pg_ctl start: %w: %s\n%s", err, out, log)
	}
	c.url = "postgres://postgres@/postgres?host=" + url.QueryEscape(dir) + "&sslmode=disable"
	return c, nil
}

func (c *localCluster) run(name string, args ...string) ([]byte, error) {
	argv := append(append([]string{}, c.asPG...), filepath.Join(c.bin, name))
	argv = append(argv, args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = c.dir
	return cmd.CombinedOutput()
}

func (c *localCluster) stop() {
	_, _ = c.run("pg_ctl", "stop", "-D", filepath.Join(c.dir, "data"), "-m", "immediate", "-w")
	_ = os.RemoveAll(c.dir)
}

var (
	templateOnce sync.Once
	templateName string
	templateErr  error
)

// PostgresStoreURL returns the URL of a fresh database that already holds an
// initialized store in schema public: a copy of a template database migrated
// once per test binary (CREATE DATABASE ... TEMPLATE), which is faster than
// migrating every test's database.
func PostgresStoreURL(t testing.TB) string {
	t.Helper()
	admin := requireAdmin(t)
	templateOnce.Do(func() { templateName, templateErr = makeTemplate(admin) })
	if templateErr != nil {
		t.Fatalf("testdb: migrated template: %v", templateErr)
	}
	return cloneDatabase(t, admin, templateName)
}

// InitStoreFunc initializes a store at a URL; set by the adapters/postgres
// test helpers (testdb cannot import the adapter without a cycle in its
// own tests). It must be set before PostgresStoreURL is used.
var InitStoreFunc func(ctx context.Context, url string) error

func makeTemplate(admin string) (string, error) {
	if InitStoreFunc == nil {
		return "", errors.New("testdb.InitStoreFunc is not set")
	}
	name := "esctl_template_" + randomHex(6)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if err := pgadmin.CreateDatabase(ctx, conn, name, ""); err != nil {
		return "", err
	}
	if err := InitStoreFunc(ctx, withDatabase(admin, name)); err != nil {
		return "", err
	}
	templates = append(templates, name)
	return name, nil
}

var templates []string

func cloneDatabase(t testing.TB, admin, template string) string {
	t.Helper()
	name := "esctl_test_" + randomHex(6)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("testdb: connect: %v", err)
	}
	defer conn.Close(ctx)
	if err := pgadmin.CreateDatabase(ctx, conn, name, template); err != nil {
		t.Fatalf("testdb: clone template: %v", err)
	}
	t.Cleanup(func() { dropDatabase(t, admin, name) })
	return withDatabase(admin, name)
}

func dropDatabase(t testing.TB, admin, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Errorf("testdb: drop database %s: %v", name, err)
		return
	}
	defer conn.Close(ctx)
	if err := pgadmin.DropDatabase(ctx, conn, name); err != nil {
		t.Errorf("testdb: drop database %s: %v", name, err)
	}
}

// Replicated is a primary with a hot standby streaming from it, both
// throwaway clusters of one test.
type Replicated struct {
	primary, standby *localCluster
	// PrimaryURL, StandbyURL: the maintenance databases' URLs.
	PrimaryURL, StandbyURL string
	// BothURL names both servers (host=primary,standby) with
	// target_session_attrs=read-write: it reaches whichever is primary.
	BothURL string
}

// StandbyName is the standby's application_name, which a synchronous
// primary waits for.
const StandbyName = "esctl_standby"

// NewReplicated starts a primary and a hot standby made from it with
// pg_basebackup (streaming replication). With sync, the primary commits
// only once the standby has the commit's WAL (synchronous_commit = on,
// synchronous_standby_names = the standby); otherwise replication is
// asynchronous. fsync is off on both (the tests kill servers, not
// machines). Both are stopped and removed at the end of the test; without
// the server binaries the test skips (fails under ESCTL_REQUIRE_POSTGRES=1).
func NewReplicated(t testing.TB, sync bool) *Replicated {
	t.Helper()
	r, err := startReplicated(sync)
	if err != nil {
		msg := fmt.Sprintf("\n*** no PostgreSQL primary and standby of the test's own, test skipped: %v\n", err)
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("%s*** %s=1: failing instead of skipping.", msg, EnvRequire)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() { r.standby.stop(); r.primary.stop() })
	return r
}

func startReplicated(sync bool) (*Replicated, error) {
	// synchronous_commit = on in both: a commit is acknowledged once its
	// WAL is written on the primary (and, with sync, on the standby).
	conf := []string{"fsync = off", "full_page_writes = off", "wal_level = replica", "max_wal_senders = 4", "wal_keep_size = 256MB", "synchronous_commit = on"}
	if sync {
		conf = append(conf, "synchronous_standby_names = '"+StandbyName+"'")
	}
	p, err := startClusterWith(conf)
	if err != nil {
		return nil, err
	}
	s, err := startStandby(p)
	if err != nil {
		p.stop()
		return nil, err
	}
	r := &Replicated{primary: p, standby: s, PrimaryURL: p.url, StandbyURL: s.url}
	r.BothURL = "postgres://postgres@/postgres?host=" + url.QueryEscape(p.dir+","+s.dir) + "&sslmode=disable&target_session_attrs=read-write"
	return r, nil
}

// startStandby makes a hot standby of p in a directory of its own.
func startStandby(p *localCluster) (*localCluster, error) {
	dir, err := os.MkdirTemp("", "esctl-pg-standby-")
	if err != nil {
		return nil, err
	}
	s := &localCluster{bin: p.bin, dir: dir, asPG: p.asPG, owner: p.owner}
	fail := func(err error) (*localCluster, error) { _ = os.RemoveAll(dir); return nil, err }
	if s.owner != "" {
		if out, err := exec.Command("chown", s.owner+":"+s.owner, dir).CombinedOutput(); err != nil {
			return fail(fmt.Errorf("chown %s: %w: %s", dir, err, out))
		}
	}
	data := filepath.Join(dir, "data")
	if out, err := s.run("pg_basebackup", "-D", data, "-R", "-X", "stream", "-c", "fast", "-h", p.dir, "-U", "postgres"); err != nil {
		return fail(fmt.Errorf("pg_basebackup: %w: %s", err, out))
	}
	// The standby listens on its own socket directory, names itself for
	// synchronous replication, and, once promoted, waits for no standby.
	lines := []string{
		"unix_socket_directories = '" + dir + "'",
		"primary_conninfo = 'host=" + p.dir + " user=postgres application_name=" + StandbyName + "'",
		"synchronous_standby_names = ''",
		"hot_standby = on",
		"hot_standby_feedback = on",
	}
	f, err := os.OpenFile(filepath.Join(data, "postgresql.auto.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fail(err)
	}
	_, err = f.WriteString("\n" + strings.Join(lines, "\n") + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fail(err)
	}
	if out, err := s.run("pg_ctl", "start", "-w", "-t", "60", "-D", data, "-l", filepath.Join(dir, "log.txt")); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "log.txt"))
		return fail(fmt.Errorf("pg_ctl start (standby): %w: %s\n%s", err, out, log))
	}
	s.url = "postgres://postgres@/postgres?host=" + url.QueryEscape(dir) + "&sslmode=disable"
	return s, nil
}

// StopPrimary stops the primary (pg_ctl -m mode: "immediate" crashes it).
func (r *Replicated) StopPrimary(mode string) error {
	if out, err := r.primary.run("pg_ctl", "stop", "-w", "-t", "60", "-m", mode, "-D", filepath.Join(r.primary.dir, "data")); err != nil {
		return fmt.Errorf("pg_ctl stop: %w: %s", err, out)
	}
	return nil
}

// Promote makes the standby the primary and waits until it accepts writes.
func (r *Replicated) Promote() error {
	if out, err := r.standby.run("pg_ctl", "promote", "-w", "-t", "60", "-D", filepath.Join(r.standby.dir, "data")); err != nil {
		return fmt.Errorf("pg_ctl promote: %w: %s", err, out)
	}
	return nil
}

// WithDatabase returns u with its database name replaced.
func WithDatabase(u, name string) string { return withDatabase(u, name) }

// StartReplicated is NewReplicated outside a test (the bench harness): it
// returns the pair and a function that stops both and removes them.
func StartReplicated(sync bool) (*Replicated, func(), error) {
	r, err := startReplicated(sync)
	if err != nil {
		return nil, nil, err
	}
	return r, func() { r.standby.stop(); r.primary.stop() }, nil
}

// CreateDatabase creates database name on the server whose maintenance
// URL is admin and returns the new database's URL.
func CreateDatabase(t testing.TB, admin, name string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("connect to %s: %v", redact(admin), err)
	}
	defer conn.Close(ctx)
	if err := pgadmin.CreateDatabase(ctx, conn, name, ""); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	return withDatabase(admin, name)
}

// WaitForDatabase waits until the database at u accepts connections: a
// standby has replayed its creation (synchronous replication waits for
// the standby's flush, not for its replay).
func WaitForDatabase(t testing.TB, u string) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(time.Minute)
	for {
		conn, err := pgx.Connect(ctx, u)
		if err == nil {
			_ = conn.Close(ctx)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("database at %s: %v", redact(u), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
