// Package core is what package eventstore and the tooling packages built on
// a Store share: the Store's drivers, its writer and configuration, its life
// cycle (open or closed, the operations in flight, the schema check), every
// write transaction composed from the seam's operations (write.go, each rule
// once), the dry runs' writer, and the validation of events.
//
// Applications never see it: they hold an *eventstore.Store, whose core the
// module's own packages reach through internal/access.
package core

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/esctl/esctl/estype"
	"github.com/esctl/esctl/internal/driver"
)

// Config is what the core needs of a Store's options, resolved (no zero
// values).
type Config struct {
	Logger           *slog.Logger
	Now              func() time.Time
	MaxPayloadBytes  int
	MaxMetadataBytes int
	MaxSnapshotBytes int
}

// Limits returns the event limits of the configuration.
func (c *Config) Limits() Limits {
	return Limits{Payload: c.MaxPayloadBytes, Metadata: c.MaxMetadataBytes}
}

// Store is one store's shared state.
type Store struct {
	D driver.Driver // writes, and the reads a decision depends on
	R driver.Driver // events are read here: D, or a replica
	W Writer        // D's write transactions, waking subscriptions
	Config

	mu       sync.RWMutex // guards closed against Enter
	closed   bool
	inflight sync.WaitGroup
	schemaOK atomic.Bool
	// version is the schema version Ready found (0 before it ran).
	version atomic.Uint64
	// checkedAt is when Ready last read the version (Unix ms), for a store
	// served without metadata, which Ready reads again every second.
	checkedAt atomic.Int64
}

// New returns the core of a store over d; wake (nil: none) is called after
// each committed write.
func New(d driver.Driver, cfg Config, wake func()) *Store {
	return &Store{D: d, R: d, W: DriverWriter{D: d, Wake: wake}, Config: cfg}
}

// Enter registers an operation; it fails with ErrClosed once the store is
// closed. Every Enter that succeeds must be paired with Exit.
func (s *Store) Enter() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return estype.ErrClosed
	}
	s.inflight.Add(1)
	return nil
}

// Exit ends an operation that Enter or Begin registered.
func (s *Store) Exit() { s.inflight.Done() }

// Begin enters and checks that the schema is current.
func (s *Store) Begin(ctx context.Context) error {
	if err := s.Enter(); err != nil {
		return err
	}
	if err := s.Ready(ctx); err != nil {
		s.Exit()
		return err
	}
	return nil
}

// Ready checks once per Store that the database holds a store at a schema
// version this code serves, so that a missing Init is a clear error rather
// than "no such table", and tells the driver the version. A store served
// without metadata (the version before MetadataSchemaVersion) is checked
// again at most once a second, so that a migration by another process is
// seen without a restart.
func (s *Store) Ready(ctx context.Context) error {
	if s.schemaOK.Load() && (s.version.Load() >= estype.MetadataSchemaVersion || time.Now().UnixMilli()-s.checkedAt.Load() < 1000) {
		return nil
	}
	st, err := s.SchemaStatus(ctx)
	if err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if err := CheckSchema(st); err != nil {
		return err
	}
	s.D.UseSchema(st.Version)
	if s.R != s.D {
		s.R.UseSchema(st.Version)
	}
	s.version.Store(uint64(st.Version))
	s.checkedAt.Store(time.Now().UnixMilli())
	s.schemaOK.Store(true)
	return nil
}

// MetadataReady returns nil when the store keeps metadata, and else (a
// store at the schema version before MetadataSchemaVersion, read again
// now) a *SchemaVersionError that says to migrate.
func (s *Store) MetadataReady(ctx context.Context) error {
	if s.version.Load() >= estype.MetadataSchemaVersion {
		return nil
	}
	s.ForgetSchema()
	if err := s.Ready(ctx); err != nil {
		return err
	}
	if v := s.version.Load(); v < estype.MetadataSchemaVersion {
		return &estype.SchemaVersionError{Current: uint(v), Expected: estype.MetadataSchemaVersion, Need: "event metadata"}
	}
	return nil
}

// ForgetSchema makes the next Ready read the schema version again (after a
// migration or a drop).
func (s *Store) ForgetSchema() { s.schemaOK.Store(false) }

// SchemaStatus reads the schema version.
func (s *Store) SchemaStatus(ctx context.Context) (*estype.SchemaStatus, error) {
	return s.D.Migrate(ctx, &driver.MigrateParams{Op: estype.MigrateStatus})
}

// CheckSchema returns ErrNotInitialized for a store without a schema and
// *SchemaVersionError for one at a version this build does not serve (from
// OldestServedSchemaVersion to the latest).
func CheckSchema(st *estype.SchemaStatus) error {
	switch {
	case st.Version == 0 && !st.Dirty:
		return estype.ErrNotInitialized
	case st.Dirty || st.Version > st.Latest || st.Version < estype.OldestServedSchemaVersion:
		return &estype.SchemaVersionError{Current: st.Version, Dirty: st.Dirty, Expected: st.Latest}
	}
	return nil
}

// Close marks the store closed (Enter fails from now on) and waits for the
// operations in flight. It reports false, doing nothing, when the store was
// closed already.
func (s *Store) Close(beforeWait func()) bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	s.closed = true
	s.mu.Unlock()
	if beforeWait != nil {
		beforeWait()
	}
	s.inflight.Wait()
	return true
}

// NowMillis is the store's clock in milliseconds since the Unix epoch.
func (s *Store) NowMillis() int64 { return s.Now().UnixMilli() }
