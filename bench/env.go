package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"sync"
	"time"

	_ "github.com/esctl/esctl/adapters/postgres" // registers postgres:// with eventstore.Open
	_ "github.com/esctl/esctl/adapters/sqlite"   // registers sqlite:// with eventstore.Open
	"github.com/esctl/esctl/eventstore"
)

// backend is what differs between the engines: making databases, loading
// them in bulk, and the raw append ceiling.
type backend interface {
	// createDatabase makes an empty database and returns its store URL and
	// a function that removes it.
	createDatabase(ctx context.Context, label string) (url string, drop func() error, err error)
	// bulkLoad writes n events straight into the tables of the initialised,
	// empty store at url and advances its store_state row to match.
	bulkLoad(ctx context.Context, url string, events iter.Seq[eventstore.StoredEvent], n int) error
	// appendCeiling measures single-row INSERT transactions per second into
	// the events table of the initialised store at url, with clients
	// concurrent clients, for d.
	appendCeiling(ctx context.Context, url string, clients int, d time.Duration) (float64, error)
	// groupCeiling measures the same rows grouped by hand into one
	// transaction per round (see group.go): the limit of group commit.
	groupCeiling(ctx context.Context, url string, clients int, d time.Duration) (float64, error)
	// ceilingMethod says how appendCeiling measures, for the report.
	ceilingMethod() string
	// importCeiling writes the events into the empty, initialised store
	// at url the raw way (one transaction of COPY or prepared INSERTs, and
	// the state row) and returns how long the transaction took.
	importCeiling(ctx context.Context, url string, events []eventstore.StoredEvent) (time.Duration, error)
	// incrementalCeiling stages the events, which carry the positions and
	// versions they get, in a plain table of the store at url, and returns
	// how long one transaction appending them to events took.
	incrementalCeiling(ctx context.Context, url string, events []eventstore.StoredEvent) (time.Duration, error)
	// truncateStore deletes the events after position n and sets the
	// state row back to n events.
	truncateStore(ctx context.Context, url string, n int) error
	// settle flushes what the last run left to write (PostgreSQL:
	// CHECKPOINT), so that the next run does not pay for it.
	settle(ctx context.Context) error
	// settleStore brings the store at url to rest after a bulk write
	// (bench-scale's imports), as a server left alone would be: PostgreSQL
	// VACUUM (ANALYZE) events and CHECKPOINT; SQLite a WAL checkpoint.
	settleStore(ctx context.Context, url string) error
	// diskBytes is the size of the database at url on disk (bench-scale).
	diskBytes(ctx context.Context, url string) (int64, error)
	// version is the engine's version, for the report.
	version(ctx context.Context) (string, error)
}

// engineEnv is one engine's state during a run: its backend, the figures
// of the rows already measured (targets may refer to them), and the read
// store shared by the read benchmarks, filled on first use.
type engineEnv struct {
	name    string
	cfg     *config
	log     *progress
	b       backend
	results map[string]*figures
	shared  *shared

	readURL    string
	readErr    error // why the read store could not be set up, if it could not
	dropRead   func() error
	store      *eventstore.Store      // open on the read store
	raw        rawReader              // open on the read store
	typeCounts map[string]int         // events per type in the read store
	latency    *latencyFigures        // memo of the single-aggregate reads
	follow     map[int]*followFigures // memo of the follow-latency runs, by rate
	fan        *fanOut                // memo of the fan-out runs
	procs      *processFigures        // memo of the several-processes runs
}

// shared is what the engines of one run share: the temporary directory and
// the corpus as NDJSON.
type shared struct {
	dir    string
	ndjson *ndjsonFile // nil until an engine needs it
}

// openStore opens the store at url and initialises it.
func openStore(ctx context.Context, url string) (*eventstore.Store, error) {
	s, err := eventstore.Open(ctx, url, nil)
	if err != nil {
		return nil, err
	}
	if err := s.Init(ctx); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("init store: %w", err)
	}
	return s, nil
}

// initDatabase creates a database holding an empty, initialised store and
// returns its URL; the store's own migration gives the limits a table of
// exactly the store's shape.
func initDatabase(ctx context.Context, b backend, label string) (string, func() error, error) {
	url, drop, err := b.createDatabase(ctx, label)
	if err != nil {
		return "", nil, err
	}
	s, err := openStore(ctx, url)
	if err == nil {
		err = s.Close()
	}
	if err != nil {
		return "", nil, errors.Join(err, drop())
	}
	return url, drop, nil
}

// reader returns the store and the raw reader on the read store, which it
// creates and fills with the corpus on first use.
func (e *engineEnv) reader(ctx context.Context) (*eventstore.Store, rawReader, error) {
	if e.store != nil || e.readErr != nil {
		return e.store, e.raw, e.readErr
	}
	s, raw, err := e.openReadStore(ctx)
	if err != nil {
		e.readErr = fmt.Errorf("read store: %w", err)
		return nil, nil, e.readErr
	}
	e.store, e.raw = s, raw
	return s, raw, nil
}

// openReadStore creates and fills the read store and opens the store and a
// raw reader on it.
func (e *engineEnv) openReadStore(ctx context.Context) (*eventstore.Store, rawReader, error) {
	if err := e.fillReadStore(ctx); err != nil {
		return nil, nil, err
	}
	s, err := openStore(ctx, e.readURL)
	if err != nil {
		return nil, nil, err
	}
	if err := checkCount(ctx, s, e.cfg.Events); err != nil {
		return nil, nil, errors.Join(err, s.Close())
	}
	raw, err := openRawReader(ctx, e.name, e.readURL)
	if err != nil {
		return nil, nil, errors.Join(err, s.Close())
	}
	return s, raw, nil
}

func (e *engineEnv) fillReadStore(ctx context.Context) error {
	url, drop, err := initDatabase(ctx, e.b, "read")
	if err != nil {
		return err
	}
	e.readURL, e.dropRead = url, drop
	c := e.cfg.corpus()
	e.typeCounts = map[string]int{}
	quarter := max(c.Events/4, 1)
	counted := func(yield func(eventstore.StoredEvent) bool) {
		for ev := range c.All() {
			e.typeCounts[ev.Type]++
			if !yield(ev) {
				return
			}
			if ev.Position%int64(quarter) == 0 {
				e.log.printf("[%s] loading: %d/%d events", e.name, ev.Position, c.Events)
			}
		}
	}
	e.log.printf("[%s] loading %d events over %d aggregates into the read store", e.name, c.Events, c.Aggregates)
	start := time.Now()
	if err := e.b.bulkLoad(ctx, url, counted, c.Events); err != nil {
		return err
	}
	e.log.printf("[%s] loaded in %s", e.name, round(time.Since(start)))
	return nil
}

// withFreshStore creates a database holding an empty, initialised store,
// runs fn on its URL, then drops it and lets the engine settle (outside
// whatever fn times).
func (e *engineEnv) withFreshStore(ctx context.Context, label string, fn func(url string) error) (err error) {
	url, drop, err := initDatabase(ctx, e.b, label)
	if err != nil {
		return err
	}
	err = fn(url)
	err = errors.Join(err, drop())
	if err == nil {
		err = e.b.settle(ctx)
	}
	return err
}

// checkCount verifies through the store that it holds exactly n events at
// positions 1..n (after a bulk load, an import, or an undone one).
func checkCount(ctx context.Context, s *eventstore.Store, n int) error {
	d, err := s.Describe(ctx, nil)
	if err != nil {
		return err
	}
	if d.EventCount != int64(n) || d.LastPosition != int64(n) {
		return fmt.Errorf("the read store has %d events up to position %d, want %d", d.EventCount, d.LastPosition, n)
	}
	return nil
}

// close releases the read store. It may be called more than once.
func (e *engineEnv) close() error {
	var errs []error
	if e.raw != nil {
		errs = append(errs, e.raw.Close())
		e.raw = nil
	}
	if e.store != nil {
		errs = append(errs, e.store.Close())
		e.store = nil
	}
	if e.dropRead != nil {
		errs = append(errs, e.dropRead())
		e.dropRead = nil
	}
	return errors.Join(errs...)
}

// progress writes timestamped progress lines to stderr.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
}

func newProgress(w io.Writer) *progress { return &progress{w: w, start: time.Now()} }

func (p *progress) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "bench %7.1fs  %s\n", time.Since(p.start).Seconds(), fmt.Sprintf(format, args...))
}
