// Package postgres is the PostgreSQL dialect of the event store, on pgx/v5.
//
// One store is one schema: several stores can share a database. Every write
// that assigns positions or reads the frozen flag locks the single
// store_state row inside its transaction (SELECT ... FOR UPDATE, or the
// append's UPDATE ... RETURNING) and holds it to commit, so positions are
// dense and commit in order, and Freeze is a barrier. An append reaches the
// server in one round trip: BEGIN, the transaction's settings and id, a
// Flush (the id comes back before COMMIT can run), the one statement that
// locks the row and inserts the whole group, and COMMIT, pipelined, so the
// lock is held for server time and the commit only. A connection lost while
// COMMIT is in flight is resolved with pg_xact_status on a fresh
// connection, never by re-sending.
//
// Importing this package registers the engine with eventstore.Open for
// postgres:// and postgresql:// URLs; ?schema=NAME selects the schema
// (default public).
package postgres

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/golang-migrate/migrate/v4/database"
	pgxmigrate "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/esctl/esctl/estype"
	"github.com/esctl/esctl/migrations"

	"github.com/esctl/esctl/internal/driver"
)

// EngineName is the name this dialect reports and registers.
const EngineName = "postgres"

// Defaults for Options.
const (
	// DefaultSchema is the schema of a store when none is given.
	DefaultSchema = "public"
	// DefaultLockTimeout bounds how long a write waits for the store lock,
	// so that a session stuck while holding it cannot block every writer
	// forever; the write then fails with estype.ErrTimeout.
	DefaultLockTimeout = 10 * time.Second
	// DefaultStatementTimeout bounds each statement of a write transaction.
	DefaultStatementTimeout = 60 * time.Second
	// DefaultResolveTimeout bounds how long an append whose COMMIT outcome
	// was lost with its connection polls pg_xact_status before giving up
	// with estype.ErrOutcomeUnknown.
	DefaultResolveTimeout = 30 * time.Second
)

func init() {
	driver.Register(driver.Engine{
		Name:    EngineName,
		Schemes: []string{"postgres", "postgresql"},
		Forms:   "postgres://..., postgresql://... (optional ?schema=NAME)",
		Open:    openURL,
	})
}

// validSchema is the form of schema names accepted: lowercase, so that the
// name means the same quoted or not, and short enough for PostgreSQL's
// 63-byte identifier limit.
var validSchema = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Options configure NewWithOptions. The zero value means the defaults.
type Options struct {
	Schema           string        // "" means DefaultSchema
	LockTimeout      time.Duration // 0 means DefaultLockTimeout
	StatementTimeout time.Duration // 0 means DefaultStatementTimeout
	ResolveTimeout   time.Duration // 0 means DefaultResolveTimeout
}

// Dialect is the PostgreSQL driver.Driver.
type Dialect struct {
	pool     *pgxpool.Pool
	schema   string
	qschema  string // quoted schema identifier
	lockTO   string // lock_timeout setting, e.g. "10000ms"
	stmtTO   string
	resolveT time.Duration
	// version is the store's schema version as UseSchema last said: which
	// of eventSQLs the dialect uses.
	version driver.SchemaChoice
}

// UseSchema implements driver.Driver.
func (d *Dialect) UseSchema(version uint) { d.version.UseSchema(version) }

// sql returns the event statements of the store's schema version.
func (d *Dialect) sql() *eventSQL { return driver.BySchema(&d.version, &eventSQLs) }

var _ driver.Driver = (*Dialect)(nil)

// New returns a dialect for the store in schema "public" of pool's database.
// The dialect does not own the pool: close it yourself after the Store.
func New(pool *pgxpool.Pool) *Dialect {
	d, err := NewWithOptions(pool, nil)
	if err != nil {
		panic(err) // unreachable: the default schema is valid
	}
	return d
}

// NewWithOptions returns a dialect with options (schema, timeouts).
func NewWithOptions(pool *pgxpool.Pool, opts *Options) (*Dialect, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Schema == "" {
		o.Schema = DefaultSchema
	}
	if !validSchema.MatchString(o.Schema) {
		return nil, fmt.Errorf("postgres: invalid schema name %q: use 1 to 63 lowercase letters, digits and underscores, not starting with a digit", o.Schema)
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	if o.StatementTimeout <= 0 {
		o.StatementTimeout = DefaultStatementTimeout
	}
	if o.ResolveTimeout <= 0 {
		o.ResolveTimeout = DefaultResolveTimeout
	}
	d := &Dialect{
		pool:     pool,
		schema:   o.Schema,
		qschema:  pgx.Identifier{o.Schema}.Sanitize(),
		lockTO:   fmt.Sprintf("%dms", o.LockTimeout.Milliseconds()),
		stmtTO:   fmt.Sprintf("%dms", o.StatementTimeout.Milliseconds()),
		resolveT: o.ResolveTimeout,
	}
	return d, nil
}

// Name returns "postgres".
func (d *Dialect) Name() string { return EngineName }

// Schema returns the store's schema.
func (d *Dialect) Schema() string { return d.schema }

// q returns a query with the schema filled in.
func (d *Dialect) q(query string) string {
	return strings.ReplaceAll(query, "{s}", d.qschema)
}

// SplitURL removes the esctl-specific schema parameter from a postgres URL,
// returning the URL pgx can parse and the schema ("" when absent).
func SplitURL(rawURL string) (pgURL, schema string, err error) {
	base, query, hasQuery := strings.Cut(rawURL, "?")
	if !hasQuery {
		return rawURL, "", nil
	}
	var kept []string
	for _, kv := range strings.Split(query, "&") {
		k, v, _ := strings.Cut(kv, "=")
		if k == "schema" {
			schema = v
			continue
		}
		if kv != "" {
			kept = append(kept, kv)
		}
	}
	if len(kept) == 0 {
		return base, schema, nil
	}
	return base + "?" + strings.Join(kept, "&"), schema, nil
}

// openURL opens a pool for a postgres:// URL. Unless the URL sets them, the
// pool's sessions get application_name=esctl and
// idle_in_transaction_session_timeout, so a client that dies inside a
// transaction cannot hold the store lock forever.
func openURL(ctx context.Context, rawURL string) (driver.Driver, func() error, error) {
	pgURL, schema, err := SplitURL(rawURL)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := pgxpool.ParseConfig(pgURL) // pgx redacts passwords in its errors
	if err != nil {
		return nil, nil, err
	}
	rp := cfg.ConnConfig.RuntimeParams
	if _, ok := rp["application_name"]; !ok {
		rp["application_name"] = "esctl"
	}
	if _, ok := rp["idle_in_transaction_session_timeout"]; !ok {
		rp["idle_in_transaction_session_timeout"] = "60000"
	}
	if cfg.MaxConns < 8 {
		cfg.MaxConns = 8
	}
	d0, err := NewWithOptions(nil, &Options{Schema: schema})
	if err != nil {
		return nil, nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, nil, interpretError(err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, nil, interpretError(err)
	}
	d0.pool = pool
	return d0, func() error { pool.Close(); return nil }, nil
}

// Migrate runs the embedded migrations through golang-migrate on a dedicated
// database/sql handle whose search_path is the store's schema.
func (d *Dialect) Migrate(ctx context.Context, p *driver.MigrateParams) (*estype.SchemaStatus, error) {
	return migrations.Migrate(ctx, &migrations.Target{
		Engine: EngineName, Catalog: catalog{d}, MapError: interpretError,
		Before: func(ctx context.Context, op estype.MigrateOp) error {
			if op != estype.MigrateUp {
				return nil
			}
			_, err := d.pool.Exec(ctx, d.q(createSchemaSQL))
			return err
		},
		Open: func(context.Context) (database.Driver, func(), error) {
			cc := d.pool.Config().ConnConfig.Copy()
			cc.RuntimeParams["search_path"] = d.qschema
			db := stdlib.OpenDB(*cc)
			drv, err := pgxmigrate.WithInstance(db, &pgxmigrate.Config{SchemaName: d.schema, MigrationsTable: migrations.VersionTable})
			if err != nil {
				_ = db.Close()
				return nil, nil, interpretError(err)
			}
			return drv, func() {}, nil
		},
	}, p)
}

// catalog implements migrations.Catalog in the store's schema.
type catalog struct{ d *Dialect }

func (c catalog) TableExists(ctx context.Context, name string) (bool, error) {
	var exists bool
	err := c.d.pool.QueryRow(ctx, schemaTableSQL, c.d.qschema+"."+pgx.Identifier{name}.Sanitize()).Scan(&exists)
	return exists, interpretError(err)
}

func (c catalog) ReadVersion(ctx context.Context, table string) (int64, bool, bool, error) {
	v, dirty, ok, err := migrations.ScanVersion(c.d.pool.QueryRow(ctx, c.d.q(versionSQL[table])), pgx.ErrNoRows)
	return v, dirty, ok, interpretError(err)
}

// AdoptLegacyVersionTable renames the table and its primary key in one
// transaction; a concurrent adopter makes the second rename fail, after
// which the table is there under its new name.
func (c catalog) AdoptLegacyVersionTable(ctx context.Context) error {
	tx, err := c.d.pool.Begin(ctx)
	if err != nil {
		return interpretError(err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	_, err = tx.Exec(ctx, c.d.q(adoptVersionSQL))
	if err == nil {
		_, err = tx.Exec(ctx, c.d.q(adoptVersionPKSQL))
	}
	if err == nil {
		err = tx.Commit(ctx)
	}
	if err != nil {
		if done, derr := c.TableExists(ctx, migrations.VersionTable); derr == nil && done {
			return nil
		}
		return interpretError(err)
	}
	return nil
}

// DropStore drops the store's tables, and its schema when that is not
// "public" and holds nothing else.
func (d *Dialect) DropStore(ctx context.Context) error {
	if err := migrations.AdoptLegacy(ctx, catalog{d}, EngineName); err != nil {
		return interpretError(err)
	}
	if _, err := d.pool.Exec(ctx, d.q(dropStoreSQL)); err != nil {
		return interpretError(err)
	}
	if _, err := d.pool.Exec(ctx, d.q(dropFunctionsSQL)); err != nil {
		return interpretError(err)
	}
	if d.schema == DefaultSchema {
		return nil
	}
	var empty bool
	if err := d.pool.QueryRow(ctx, schemaIsEmptySQL, d.schema).Scan(&empty); err != nil {
		return interpretError(err)
	}
	if empty {
		if _, err := d.pool.Exec(ctx, d.q(dropSchemaSQL)); err != nil {
			return interpretError(err)
		}
	}
	return nil
}
