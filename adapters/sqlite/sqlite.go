// Package sqlite is the SQLite dialect of the event store, on the pure-Go
// driver modernc.org/sqlite (no cgo).
//
// One store is one SQLite file. The file runs in WAL mode with
// synchronous=FULL (a committed append survives power loss), busy_timeout (a
// locked database is waited for, not failed) and secure_delete (a deleted
// secret is zeroed in the file once the WAL is checkpointed). Every write
// runs in BEGIN IMMEDIATE on one writer connection, so writes are serialized
// across goroutines and processes and positions commit in order; readers use
// their own connections and never block the writer.
//
// Importing this package registers the engine with eventstore.Open for
// sqlite://PATH, file:PATH and bare paths ending in .db, .sqlite or .sqlite3.
package sqlite

import (
	"context"
	"database/sql"
	sqldriver "database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/golang-migrate/migrate/v4/database"
	sqlitemigrate "github.com/golang-migrate/migrate/v4/database/sqlite"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/esctl/esctl/estype"
	"github.com/esctl/esctl/migrations"

	"github.com/esctl/esctl/internal/driver"
)

// EngineName is the name this dialect reports and registers.
const EngineName = "sqlite"

// DefaultBusyTimeoutMillis is how long a connection waits for a lock held by
// another connection or process before failing with estype.ErrTimeout.
const DefaultBusyTimeoutMillis = 10_000

// DefaultReadConns is the size of the reader pool Open creates.
const DefaultReadConns = 4

func init() {
	driver.Register(driver.Engine{
		Name:         EngineName,
		Schemes:      []string{"sqlite", "sqlite3", "file"},
		PathSuffixes: []string{".db", ".sqlite", ".sqlite3"},
		Forms:        "sqlite://PATH, file:PATH, or a path ending in .db, .sqlite or .sqlite3",
		Open:         openURL,
	})
}

// Dialect is the SQLite driver.Driver.
type Dialect struct {
	db  *sql.DB // writes (and reads when rdb is the same)
	rdb *sql.DB // reads
	wmu sync.Mutex
	w   *wconn // the held writer connection, when rdb is a separate pool
	// queue shares the write lock with other processes' writers (see
	// writers.go); path is the database file's, learned at the first
	// write. Both guarded by wmu.
	queue     writerQueue
	path      string
	pathKnown bool
	pragmas   string // run on the writer connection: writeTxPragmas, or without syncing
	// version is the store's schema version as UseSchema last said: which
	// of eventSQLs the dialect uses.
	version driver.SchemaChoice
}

// UseSchema implements driver.Driver.
func (d *Dialect) UseSchema(version uint) { d.version.UseSchema(version) }

// sql returns the event statements of the store's schema version.
func (d *Dialect) sql() *eventSQL { return driver.BySchema(&d.version, &eventSQLs) }

var _ driver.Driver = (*Dialect)(nil)

// Options configure NewWithOptions.
type Options struct {
	// ReadDB, when set, serves reads and exports so that they run beside
	// the writer. Open both handles on the same file; see DSN.
	ReadDB *sql.DB
	// NoSync commits without syncing the file (synchronous=OFF), for
	// tests and scratch stores only: a crash of the process loses nothing,
	// a crash of the machine or a power loss may lose the last commits.
	// The URL form is sqlite://PATH?sync=off.
	NoSync bool
}

// New returns a dialect that reads and writes through db. db should be opened
// with DSN(path, false); the dialect does not close it. With a pool limited to
// one connection, an export (which holds a read transaction) and a write
// cannot run at the same time: use NewWithOptions with a separate ReadDB, as
// eventstore.Open does.
func New(db *sql.DB) *Dialect {
	return &Dialect{db: db, rdb: db, pragmas: writeTxPragmas}
}

// NewWithOptions is New with a separate reader pool.
func NewWithOptions(db *sql.DB, opts *Options) *Dialect {
	d := New(db)
	if opts != nil && opts.ReadDB != nil {
		d.rdb = opts.ReadDB
	}
	if opts != nil && opts.NoSync {
		d.pragmas = writeTxPragmasNoSync
	}
	return d
}

// Name returns "sqlite".
func (d *Dialect) Name() string { return EngineName }

// DSN returns the modernc.org/sqlite data source name the store recommends
// for the SQLite file at path, for opening your own *sql.DB to pass to New:
//
//	db, err := sql.Open("sqlite", sqlite.DSN("events.db", false))
//
// Every connection gets WAL journaling, synchronous=FULL (a committed
// append survives a power loss), a busy timeout of
// DefaultBusyTimeoutMillis, secure_delete (a deleted secret's bytes are
// overwritten) and foreign keys. With readOnly true the connections refuse
// writes (query_only), for a reader pool (Options.ReadDB of NewWithOptions). With readOnly
// false they are for the writer: an 8 MiB page cache, a WAL checkpoint
// every 4,000 pages, and transactions begun through database/sql
// (db.BeginTx) take the write lock at BEGIN (BEGIN IMMEDIATE), as the
// store's own do, so that they wait for the lock instead of failing with
// SQLITE_BUSY halfway.
func DSN(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", DefaultBusyTimeoutMillis))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "secure_delete(ON)")
	q.Add("_pragma", "foreign_keys(ON)")
	if readOnly {
		q.Add("_pragma", "query_only(ON)")
	} else {
		q.Add("_pragma", fmt.Sprintf("cache_size(-%d)", writerCacheKiB))
		q.Add("_pragma", fmt.Sprintf("wal_autocheckpoint(%d)", walAutocheckpointPages))
		// A transaction begun through database/sql (a consumer's handler
		// transaction) takes the write lock at BEGIN, as the store's own.
		q.Add("_txlock", "immediate")
	}
	return "file:" + escapePath(path) + "?" + q.Encode()
}

// writerCacheKiB is the page cache of a writer connection opened with DSN
// (SQLite's default is 2,000 KiB). The writer revisits index pages all over
// the file, most of all in an import, whose batches each update pages of
// the (aggregate id, ...) indexes everywhere: with 8 MiB, imports of
// 1,000,000 events run about 20% faster (docs/benchmarks.md).
const writerCacheKiB = 8 << 10

// walAutocheckpointPages is how many pages the WAL holds before the writer's
// commit that passes it copies them into the database file (SQLite's
// default is 1,000). Concurrent appends touch leaf pages of the two
// (aggregate id, ...) indexes all over the file, and a group commit writes
// each of them to the WAL again; a checkpoint copies a page once however
// often it was written since the last one. With 4,000 pages (a WAL of up
// to 16 MiB), SaveEvent from 64 goroutines ran 20,005-21,058 -> 25,016-
// 25,028 events/s and one goroutine did not change (docs/benchmarks.md).
const walAutocheckpointPages = 4000

// escapePath escapes the characters that end a path in an SQLite URI.
func escapePath(p string) string {
	r := strings.NewReplacer("%", "%25", "?", "%3F", "#", "%23")
	return r.Replace(p)
}

// PathFromURL returns the file path of a sqlite://PATH, file:PATH or bare
// *.db URL.
func PathFromURL(rawURL string) (string, error) {
	p := rawURL
	lower := strings.ToLower(p)
	switch {
	case strings.HasPrefix(lower, "sqlite://"):
		p = p[len("sqlite://"):]
	case strings.HasPrefix(lower, "sqlite3://"):
		p = p[len("sqlite3://"):]
	case strings.HasPrefix(lower, "file://"):
		p = p[len("file://"):]
	case strings.HasPrefix(lower, "file:"):
		p = p[len("file:"):]
	}
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	if unescaped, err := url.PathUnescape(p); err == nil {
		p = unescaped
	}
	if p == "" || p == ":memory:" {
		return "", fmt.Errorf("sqlite URL %q names no file (in-memory databases are not supported: each connection would see its own)", rawURL)
	}
	return p, nil
}

// noSync reports a URL's sync=off (Options.NoSync).
func noSync(rawURL string) bool {
	_, query, _ := strings.Cut(rawURL, "?")
	q, err := url.ParseQuery(query)
	return err == nil && strings.EqualFold(q.Get("sync"), "off")
}

// openURL opens a writer pool (one connection) and a reader pool on the file
// named by rawURL.
func openURL(ctx context.Context, rawURL string) (driver.Driver, func() error, error) {
	path, err := PathFromURL(rawURL)
	if err != nil {
		return nil, nil, err
	}
	w, err := sql.Open("sqlite", DSN(path, false))
	if err != nil {
		return nil, nil, err
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	if err := w.PingContext(ctx); err != nil {
		_ = w.Close()
		return nil, nil, interpretError(err)
	}
	r, err := sql.Open("sqlite", DSN(path, true))
	if err != nil {
		_ = w.Close()
		return nil, nil, err
	}
	r.SetMaxOpenConns(DefaultReadConns)
	r.SetMaxIdleConns(DefaultReadConns)
	d := NewWithOptions(w, &Options{ReadDB: r, NoSync: noSync(rawURL)})
	return d, func() error { return errors.Join(r.Close(), w.Close()) }, nil
}

// wconn is the writer connection with its prepared statements. Statements
// are prepared once per connection: modernc.org/sqlite prepares (parses) a
// statement on every ExecContext with arguments otherwise, which cost more
// than the statement itself in an append.
type wconn struct {
	c     *sql.Conn
	stmts map[string]*sql.Stmt
}

func (w *wconn) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := w.stmts[query]; ok {
		return st, nil
	}
	st, err := w.c.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	w.stmts[query] = st
	return st, nil
}

// ExecContext runs query with its cached prepared statement.
func (w *wconn) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := w.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

// QueryRowContext runs query with its cached prepared statement.
func (w *wconn) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := w.stmt(ctx, query)
	if err != nil {
		return w.c.QueryRowContext(ctx, query, args...) // reports the same error on Scan
	}
	return st.QueryRowContext(ctx, args...)
}

func (w *wconn) close() {
	for _, st := range w.stmts {
		_ = st.Close()
	}
	_ = w.c.Close()
}

// writer returns the connection to write with. With a separate reader pool
// the dialect keeps one connection and its statements for good; with one
// shared pool it takes a connection per write (keeping one could starve the
// readers of a one-connection pool). Called with wmu held.
func (d *Dialect) writer(ctx context.Context) (w *wconn, release func(), err error) {
	if d.w != nil {
		return d.w, func() {}, nil
	}
	c, err := d.db.Conn(ctx)
	if err != nil {
		return nil, nil, interpretError(err)
	}
	// Durable, patient and zeroing, whatever DSN the pool was opened with.
	if _, err := c.ExecContext(ctx, d.pragmas); err != nil {
		_ = c.Close()
		return nil, nil, interpretError(err)
	}
	w = &wconn{c: c, stmts: map[string]*sql.Stmt{}}
	if d.db != d.rdb {
		d.w = w
		return w, func() {}, nil
	}
	return w, w.close, nil
}

// discardWriter drops the held writer connection after a failure that may
// have broken it; the next write takes a fresh one.
func (d *Dialect) discardWriter(w *wconn) {
	if d.w == w {
		d.w = nil
	}
	// Statements first: they must be finalized while the connection is
	// open. Then ErrBadConn makes database/sql close the connection
	// instead of pooling it.
	for _, st := range w.stmts {
		_ = st.Close()
	}
	w.stmts = nil
	_ = w.c.Raw(func(any) error { return sqldriver.ErrBadConn })
	_ = w.c.Close()
}

// Close releases the writer connection the dialect holds, if any. The
// pools stay open: close them after the dialect. Store.Close calls it.
func (d *Dialect) Close() error {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	if d.w != nil {
		d.w.close()
		d.w = nil
	}
	d.queue.close()
	return nil
}

// write is writeRaw for fn returning driver errors: they are interpreted.
func (d *Dialect) write(ctx context.Context, fn func(c *wconn) error) error {
	return d.writeRaw(ctx, func(c *wconn) error { return interpretError(fn(c)) })
}

// writeRaw runs fn in a BEGIN IMMEDIATE transaction on the writer
// connection: one writer at a time in this process (wmu) and across
// processes (SQLite's write lock, waited for with busy_timeout). It returns
// fn's error unchanged.
func (d *Dialect) writeRaw(ctx context.Context, fn func(c *wconn) error) error {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	w, release, err := d.writer(ctx)
	if err != nil {
		return err
	}
	defer release()
	if err := d.enqueue(ctx); err != nil {
		return err
	}
	defer d.queue.release()
	// The transaction must end whatever happens to ctx: a connection left
	// inside a transaction would poison the pool.
	endCtx := context.WithoutCancel(ctx)
	if _, err := w.ExecContext(ctx, beginImmediateSQL); err != nil {
		// modernc reports a cancelled context even when the statement ran,
		// so BEGIN may have succeeded: end the transaction (or discard the
		// connection) before using the connection again.
		d.rollback(endCtx, w)
		return d.lockedBy(interpretError(err))
	}
	if err := fn(w); err != nil {
		d.rollback(endCtx, w)
		return err
	}
	if _, err := w.ExecContext(endCtx, commitSQL); err != nil {
		d.rollback(endCtx, w)
		return interpretError(err)
	}
	return nil
}

// enqueue waits for this process's turn at the write lock among the
// writers of other processes (writers.go). Called with wmu held; the caller
// calls d.queue.release() once its transaction has ended.
func (d *Dialect) enqueue(ctx context.Context) error {
	if !d.pathKnown {
		if err := d.rdb.QueryRowContext(ctx, databaseListSQL).Scan(&d.path); err != nil {
			return interpretError(err)
		}
		d.pathKnown = true
		d.queue.open(d.path)
	}
	return d.queue.acquire(ctx, d.path, DefaultBusyTimeoutMillis*time.Millisecond)
}

// lockedBy adds to a lock timeout who held SQLite's write lock and what to
// do: busy_timeout expired while a writer that does not share esctl's
// queue (another tool, an older esctl, a long transaction of the
// application's own) kept it.
func (d *Dialect) lockedBy(err error) error {
	if !errors.Is(err, estype.ErrTimeout) {
		return err
	}
	return fmt.Errorf("%w (the write lock was held for %d ms by %s, a writer outside esctl's queue: end its transaction or stop it, then retry)",
		err, DefaultBusyTimeoutMillis, holderOf(d.path))
}

// rollback ends the transaction on w; if that fails (including "no
// transaction is active") the connection is discarded rather than risk
// using it again mid-transaction.
func (d *Dialect) rollback(ctx context.Context, w *wconn) {
	if _, err := w.ExecContext(ctx, rollbackSQL); err != nil {
		d.discardWriter(w)
	}
}

// Migrate runs the embedded migrations on a dedicated handle to the same file
// (golang-migrate closes the handle it is given).
func (d *Dialect) Migrate(ctx context.Context, p *driver.MigrateParams) (*estype.SchemaStatus, error) {
	var path string
	return migrations.Migrate(ctx, &migrations.Target{
		Engine: EngineName, Catalog: catalog{d}, MapError: interpretError,
		Before: func(ctx context.Context, _ estype.MigrateOp) error {
			if err := d.rdb.QueryRowContext(ctx, databaseListSQL).Scan(&path); err != nil {
				return err
			}
			if path == "" {
				return errors.New("sqlite: cannot migrate an in-memory or temporary database")
			}
			return nil
		},
		// The migration runs holding the writer lock of this process and
		// the writers' queue of all of them.
		Open: func(ctx context.Context) (database.Driver, func(), error) {
			d.wmu.Lock()
			if err := d.enqueue(ctx); err != nil {
				d.wmu.Unlock()
				return nil, nil, err
			}
			release := func() { d.queue.release(); d.wmu.Unlock() }
			mdb, err := sql.Open("sqlite", DSN(path, false)+"&_txlock=immediate")
			if err != nil {
				release()
				return nil, nil, err
			}
			mdb.SetMaxOpenConns(1)
			drv, err := sqlitemigrate.WithInstance(mdb, &sqlitemigrate.Config{MigrationsTable: migrations.VersionTable})
			if err != nil {
				_ = mdb.Close()
				release()
				return nil, nil, interpretError(err)
			}
			return drv, release, nil
		},
	}, p)
}

// catalog implements migrations.Catalog.
type catalog struct{ d *Dialect }

func (c catalog) TableExists(ctx context.Context, name string) (bool, error) {
	var n int
	err := c.d.rdb.QueryRowContext(ctx, tableExistsSQL, name).Scan(&n)
	return n > 0, interpretError(err)
}

func (c catalog) ReadVersion(ctx context.Context, table string) (int64, bool, bool, error) {
	v, dirty, ok, err := migrations.ScanVersion(c.d.rdb.QueryRowContext(ctx, versionSQL[table]), sql.ErrNoRows)
	return v, dirty, ok, interpretError(err)
}

func (c catalog) AdoptLegacyVersionTable(ctx context.Context) error {
	return c.d.write(ctx, func(w *wconn) error {
		var n int
		if err := w.QueryRowContext(ctx, tableExistsSQL, migrations.VersionTable).Scan(&n); err != nil || n > 0 {
			return err // adopted meanwhile by another process
		}
		_, err := w.ExecContext(ctx, adoptVersionTableSQL)
		return err
	})
}

// DropStore drops every table the store created.
func (d *Dialect) DropStore(ctx context.Context) error {
	if err := migrations.AdoptLegacy(ctx, catalog{d}, EngineName); err != nil {
		return interpretError(err)
	}
	return d.write(ctx, func(c *wconn) error {
		for _, q := range dropStoreSQL {
			if _, err := c.ExecContext(ctx, q); err != nil {
				return err
			}
		}
		return nil
	})
}
