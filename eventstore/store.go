package eventstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/esctl/esctl/estype"
	"github.com/esctl/esctl/internal/access"
	"github.com/esctl/esctl/internal/core"
	"github.com/esctl/esctl/internal/driver"
)

// Defaults for Options.
const (
	// DefaultMaxGroupEvents caps the events one group-commit transaction
	// carries. A single larger SaveEvents call still goes through, alone.
	DefaultMaxGroupEvents = 4096
	// DefaultMaxSnapshotBytes is the default limit on a snapshot's content.
	DefaultMaxSnapshotBytes = 64 << 20
)

// Options configure a Store. A nil *Options means all defaults.
type Options struct {
	// Logger receives debug and warning records. nil: silent. Payloads,
	// secrets and passwords are never logged.
	Logger *slog.Logger
	// NowFunc is the store's clock (SaveEvent stores max(now, timestamp)).
	// nil: time.Now.
	NowFunc func() time.Time
	// MaxPayloadBytes limits a payload's compact size.
	// 0: DefaultMaxPayloadBytes.
	MaxPayloadBytes int
	// MaxMetadataBytes limits an event's metadata's compact size.
	// 0: DefaultMaxMetadataBytes.
	MaxMetadataBytes int
	// MaxSnapshotBytes limits a snapshot's content. 0: DefaultMaxSnapshotBytes.
	MaxSnapshotBytes int
	// MaxGroupEvents caps the events of one group-commit transaction.
	// 0: DefaultMaxGroupEvents.
	MaxGroupEvents int
	// PollInterval is the longest a subscription at the end of the store
	// waits between two reads when no wake-up arrives (idle waits double
	// up to it). 0: DefaultPollInterval.
	PollInterval time.Duration
	// PollOnly turns cross-process wake-ups off (PostgreSQL: no LISTEN
	// connection): subscriptions see other processes' appends by polling.
	PollOnly bool
	// ReadURL (Open only) is a database the store reads events from: a
	// streaming replica of the one given to Open, or several in one
	// multi-host URL (postgres://a,b/db?target_session_attrs=prefer-standby).
	// LoadEvents, Events, exports, backups and subscriptions read there;
	// writes, and every read a write or a decision depends on (Describe,
	// LatestEvent, secrets, snapshots, imports, consumers' checkpoints),
	// go to the URL given to Open. A replica that lags shows a prefix of
	// the store (positions commit in order); a cursor it has not reached
	// yet is not beyond the end: LoadEvents returns an empty page at that
	// cursor (try again), Events ends, and Subscribe waits. "": one
	// database serves all.
	ReadURL string
}

func (o *Options) resolved() Options {
	var r Options
	if o != nil {
		r = *o
	}
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	if r.NowFunc == nil {
		r.NowFunc = time.Now
	}
	r.MaxPayloadBytes = cmp.Or(r.MaxPayloadBytes, DefaultMaxPayloadBytes)
	r.MaxMetadataBytes = cmp.Or(r.MaxMetadataBytes, DefaultMaxMetadataBytes)
	r.MaxSnapshotBytes = cmp.Or(r.MaxSnapshotBytes, DefaultMaxSnapshotBytes)
	r.MaxGroupEvents = cmp.Or(r.MaxGroupEvents, DefaultMaxGroupEvents)
	r.PollInterval = cmp.Or(r.PollInterval, DefaultPollInterval)
	return r
}

// Store is an event store over one driver. It is safe for concurrent use by
// many goroutines; concurrent appends are coalesced into shared transactions
// (group commit). Create it with Open or New, call Init once per database,
// and Close it when done.
type Store struct {
	c         *core.Store // drivers, writer, life cycle, schema check
	opts      Options
	closeFunc func() error // closes what Open opened; nil for New
	appender  *appender

	wake       *notifier // woken by every write of this Store, and by the Listener
	tail       tail      // the subscriptions' shared reader
	listenOnce sync.Once
	stopListen context.CancelFunc // stops the Listener, once started
}

// New returns a Store over an engine's driver (postgres.New(pool),
// sqlite.New(db)). The Store does not own d's connection pool: closing the
// Store leaves it open.
func New(d driver.Driver, opts *Options) (*Store, error) {
	if d == nil {
		return nil, errors.New("eventstore: New: nil driver")
	}
	s := &Store{opts: opts.resolved(), wake: newNotifier()}
	s.c = core.New(d, core.Config{
		Logger: s.opts.Logger, Now: s.opts.NowFunc,
		MaxPayloadBytes: s.opts.MaxPayloadBytes, MaxMetadataBytes: s.opts.MaxMetadataBytes,
		MaxSnapshotBytes: s.opts.MaxSnapshotBytes,
	}, s.wake.notify)
	s.appender = newAppender(d, core.DriverWriter{D: d, Wake: s.wake.notify}, s.opts.MaxGroupEvents, s.opts.Logger)
	return s, nil
}

// Engine returns the engine name of the store's driver ("sqlite", "postgres").
func (s *Store) Engine() string { return s.c.D.Name() }

func init() {
	access.Install(
		func(store any) *core.Store { return store.(*Store).c },
		func(ctx context.Context, store any) error {
			s := store.(*Store)
			if err := s.c.Begin(ctx); err != nil {
				return err
			}
			s.c.Exit()
			return nil
		})
}

// Close stops the store: new calls fail with ErrClosed, queued appends that
// have not been sent fail with ErrClosed, and Close waits for the calls in
// progress to finish. It releases what the driver holds (a driver that
// implements io.Closer is closed); a Store made by Open also closes its
// connection pools, while pools given to an adapter's New stay open.
// Closing twice returns ErrClosed.
func (s *Store) Close() error {
	if !s.c.Close(s.appender.close) {
		return ErrClosed
	}
	s.listenOnce.Do(func() {}) // no Listener starts after this
	if s.stopListen != nil {
		s.stopListen()
	}
	s.dropTail(nil)
	var err error
	drivers := []driver.Driver{s.c.D}
	if s.c.R != s.c.D {
		drivers = append(drivers, s.c.R)
	}
	for _, d := range drivers {
		if c, ok := d.(io.Closer); ok {
			// A driver may hold resources of its own (the SQLite driver
			// keeps a writer connection); pools it was given stay open.
			err = errors.Join(err, c.Close())
		}
	}
	if s.closeFunc != nil {
		err = errors.Join(err, s.closeFunc())
	}
	return err
}

// Init creates the store, or brings its schema up to date, by applying the
// embedded migrations. It is idempotent: on a current store it changes
// nothing. On a schema newer than this code, or one that an interrupted
// migration left dirty, it changes nothing and returns *SchemaVersionError.
func (s *Store) Init(ctx context.Context) error {
	_, err := s.Migrate(ctx, &MigrateOptions{Op: MigrateUp})
	return err
}

// MigrateOptions are the arguments of Migrate.
type MigrateOptions struct {
	Op      MigrateOp
	Steps   int  // MigrateDown: how many migrations to revert (0: all)
	Version uint // MigrateForce: the version to record
}

// Migrate applies, reverts, forces or reports the schema version. Init is
// Migrate with MigrateUp. MigrateDown with Steps 0 reverts every migration,
// which deletes all data: callers should confirm with the user first.
// MigrateUp and MigrateDown refuse a schema newer than this code or a dirty
// one with *SchemaVersionError (errors.Is ErrSchemaVersion); MigrateForce
// repairs a dirty one.
func (s *Store) Migrate(ctx context.Context, opts *MigrateOptions) (*SchemaStatus, error) {
	if err := s.c.Enter(); err != nil {
		return nil, err
	}
	defer s.c.Exit()
	var o MigrateOptions
	if opts != nil {
		o = *opts
	}
	if o.Steps < 0 {
		return nil, fmt.Errorf("eventstore: migrate: negative steps %d", o.Steps)
	}
	if o.Op == MigrateUp || o.Op == MigrateDown {
		// A schema newer than this code cannot be migrated by it (it has
		// not the files of those versions): say so, rather than
		// golang-migrate's words. (A dirty one is refused by the adapter
		// under golang-migrate's lock: a concurrent Init's migration in
		// progress looks dirty from outside it.)
		st, err := s.c.SchemaStatus(ctx)
		if err != nil {
			return nil, fmt.Errorf("migrate: read schema version: %w", err)
		}
		if st.Version > st.Latest {
			return nil, fmt.Errorf("migrate: %w", &SchemaVersionError{Current: st.Version, Expected: st.Latest})
		}
	}
	ds, err := s.c.D.Migrate(ctx, &driver.MigrateParams{Op: estype.MigrateOp(o.Op), Steps: o.Steps, Version: o.Version})
	s.c.ForgetSchema()
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	st := SchemaStatus(*ds)
	return &st, nil
}

// Drop removes everything the store created in its database: the events,
// snapshots, secrets, import checkpoints and the schema-version table (on
// PostgreSQL also its schema, when it is empty and not "public"). The
// database itself is left in place. Drop on a database without a store
// succeeds. The Store stays open: Init creates a new, empty store.
func (s *Store) Drop(ctx context.Context) error {
	if err := s.c.Enter(); err != nil {
		return err
	}
	defer s.c.Exit()
	s.c.ForgetSchema()
	if err := s.c.D.DropStore(ctx); err != nil {
		return fmt.Errorf("drop store: %w", err)
	}
	return nil
}

// Description summarizes a store. The JSON keys are reSolve's describe()
// keys plus schemaVersion and frozenReason.
type Description struct {
	EventCount         int64  `json:"eventCount"`
	SecretCount        int64  `json:"secretCount"`
	SetSecretCount     int64  `json:"setSecretCount"`
	DeletedSecretCount int64  `json:"deletedSecretCount"`
	IsFrozen           bool   `json:"isFrozen"`
	FrozenReason       string `json:"frozenReason,omitempty"`
	// LastEventTimestamp is the newest event timestamp; nil on an empty store.
	LastEventTimestamp *int64 `json:"lastEventTimestamp,omitempty"`
	// Cursor is the end cursor: reading from it returns only events
	// appended after Describe.
	Cursor Cursor `json:"cursor"`
	// LastPosition is the position of the newest event (0 when empty).
	LastPosition  int64 `json:"lastPosition"`
	SchemaVersion uint  `json:"schemaVersion"`
	// SchemaLatest is the newest schema version this code knows (above
	// SchemaVersion: migrations are pending); SchemaDirty, an interrupted
	// migration. esctl's describe -o json writes them as
	// latestSchemaVersion and dirty.
	SchemaLatest uint `json:"-"`
	SchemaDirty  bool `json:"-"`
	// With DescribeOptions.Stats: the first position (0 when empty), the
	// number of distinct aggregates and of snapshots.
	FirstPosition  int64 `json:"firstPosition,omitempty"`
	AggregateCount int64 `json:"aggregateCount,omitempty"`
	SnapshotCount  int64 `json:"snapshotCount,omitempty"`
}

// DescribeOptions are the arguments of Describe.
type DescribeOptions struct {
	// EstimateCounts is accepted for reSolve compatibility. The counts are
	// kept in the store-state row in the same transaction as every write,
	// so they are always exact and cheap; this option changes nothing.
	EstimateCounts bool
	// Stats also reports the first position, the distinct aggregates and
	// the snapshots (Description.FirstPosition, AggregateCount,
	// SnapshotCount). The aggregate count is kept by the writes (schema
	// version 6), so it costs the same at any size; on a store whose
	// migrations are pending it is counted, reading an index of every
	// event (seconds on a store of tens of millions).
	Stats bool
}

// aggregateCountVersion is the schema version from which the state row
// keeps the aggregate count.
const aggregateCountVersion = 6

// Describe returns the store's counts, frozen state, newest timestamp, end
// cursor and schema version. It works on a store whose migrations are
// pending or whose schema is dirty (SchemaLatest and SchemaDirty say so),
// and fails with ErrNotInitialized where there is no store and with
// *SchemaVersionError on a schema newer than this code.
func (s *Store) Describe(ctx context.Context, opts *DescribeOptions) (*Description, error) {
	if err := s.c.Enter(); err != nil {
		return nil, err
	}
	defer s.c.Exit()
	schema, err := s.c.SchemaStatus(ctx)
	if err != nil {
		return nil, fmt.Errorf("describe: read schema version: %w", err)
	}
	switch {
	case schema.Version == 0 && !schema.Dirty:
		return nil, fmt.Errorf("describe: %w", ErrNotInitialized)
	case schema.Version > schema.Latest:
		return nil, fmt.Errorf("describe: %w", &SchemaVersionError{Current: schema.Version, Expected: schema.Latest})
	}
	st, err := s.c.D.ReadState(ctx)
	if err != nil {
		return nil, fmt.Errorf("describe: %w", err)
	}
	var stats driver.StoreStats
	if opts != nil && opts.Stats {
		p, err := s.c.D.ReadStats(ctx, &driver.ReadStatsParams{Counted: schema.Version >= aggregateCountVersion})
		if err != nil {
			return nil, fmt.Errorf("describe: %w", err)
		}
		stats = *p
	}
	return &Description{
		FirstPosition:      stats.FirstPosition,
		AggregateCount:     stats.AggregateCount,
		SnapshotCount:      stats.SnapshotCount,
		SchemaLatest:       schema.Latest,
		SchemaDirty:        schema.Dirty,
		EventCount:         st.EventCount,
		SecretCount:        st.SecretCount,
		SetSecretCount:     st.SecretCount - st.DeletedSecretCount,
		DeletedSecretCount: st.DeletedSecretCount,
		IsFrozen:           st.Frozen,
		FrozenReason:       st.FrozenReason,
		LastEventTimestamp: st.LastEventTimestamp,
		Cursor:             CursorAt(st.LastPosition),
		LastPosition:       st.LastPosition,
		SchemaVersion:      schema.Version,
	}, nil
}

// Freeze makes the store refuse appends and secret writes (ErrFrozen) until
// Unfreeze. It is a barrier: it waits for appends already holding the store
// lock, and when it returns no append can commit any more. Reads, snapshots
// and maintenance imports are not blocked. The flag is stored in the
// database, so it survives restarts and is seen by every process, and the
// database itself refuses an INSERT into a frozen store's events, from any
// tool (a trigger, schema version 6). reason, kept with the flag, says why
// (Describe reports it as Description.FrozenReason; "" gives none). Freeze on
// a frozen store returns ErrAlreadyFrozen.
func (s *Store) Freeze(ctx context.Context, reason string) error {
	return s.setFrozen(ctx, true, reason)
}

// Unfreeze lifts a freeze. On a store that is not frozen it returns
// ErrAlreadyUnfrozen.
func (s *Store) Unfreeze(ctx context.Context) error {
	return s.setFrozen(ctx, false, "")
}

func (s *Store) setFrozen(ctx context.Context, frozen bool, reason string) error {
	if err := s.c.Begin(ctx); err != nil {
		return err
	}
	defer s.c.Exit()
	was, err := core.SetFrozenTx(ctx, s.c.W, frozen, reason)
	if err != nil {
		if frozen {
			return fmt.Errorf("freeze: %w", err)
		}
		return fmt.Errorf("unfreeze: %w", err)
	}
	switch {
	case frozen && was.Frozen:
		return ErrAlreadyFrozen
	case !frozen && !was.Frozen:
		return ErrAlreadyUnfrozen
	}
	return nil
}
