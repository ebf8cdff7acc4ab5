package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/esctl/esctl/eventstore"
)

// benchMetadata is 100 bytes of metadata of the shape applications write:
// correlation and causation ids and a W3C traceparent.
const benchMetadata = `{"correlationId":"c-0042","causationId":"17","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e-00f-01"}`

// runSaveMetadata measures SaveEvent from 8 goroutines with 100 bytes of
// metadata on every event against the same appends without metadata.
func runSaveMetadata(ctx context.Context, e *engineEnv) (f *figures, err error) {
	const clients = 8
	if len(benchMetadata) != 100 {
		return nil, fmt.Errorf("benchMetadata is %d bytes, not 100", len(benchMetadata))
	}
	urls := make([]string, 2)
	stores := make([]*eventstore.Store, 2)
	for i, label := range []string{"savemeta", "savemeta_without"} {
		url, drop, err := initDatabase(ctx, e.b, label)
		if err != nil {
			return nil, err
		}
		defer func() { err = errors.Join(err, drop()) }()
		s, err := openStore(ctx, url)
		if err != nil {
			return nil, err
		}
		defer func() { err = errors.Join(err, s.Close()) }()
		urls[i], stores[i] = url, s
	}
	payloads := payloadPool(e.cfg.corpus(), 1024)
	save := func(s *eventstore.Store, metadata []byte) pairFunc {
		return func(ctx context.Context, run int) (float64, error) {
			return closedLoop(ctx, clients, e.cfg.Duration, func(ctx context.Context, client, i int) error {
				_, err := s.SaveEvent(ctx, eventstore.Event{
					AggregateID:      fmt.Sprintf("writer-%d-%d-%d", run, client, i),
					AggregateVersion: 1,
					Type:             corpusTypes[i%len(corpusTypes)],
					Payload:          []byte(payloads[i%len(payloads)]),
					Metadata:         metadata,
				})
				return err
			})
		}
	}
	return e.measurePair(ctx, "save-metadata", perSecond, save(stores[0], []byte(benchMetadata)), save(stores[1], nil))
}

// runMigrateMetadata measures the metadata migration (schema version 7 to
// 8, eventstore.Migrate) on the read store (-events, 1M by default)
// against the migration's own statements run by hand, and fails when
// either rewrote the events table (PostgreSQL: its file node changed;
// SQLite: the database grew by more than a few pages). Each run first
// migrates the store back to 7, untimed.
func runMigrateMetadata(ctx context.Context, e *engineEnv) (*figures, error) {
	s, _, err := e.reader(ctx)
	if err != nil {
		return nil, err
	}
	down := func(ctx context.Context) error {
		st, err := s.Migrate(ctx, &eventstore.MigrateOptions{Op: eventstore.MigrateDown, Steps: 1})
		if err != nil {
			return fmt.Errorf("migrate down: %w", err)
		}
		if st.Version != eventstore.MetadataSchemaVersion-1 {
			return fmt.Errorf("migrated down to %d", st.Version)
		}
		return e.b.settle(ctx)
	}
	timed := func(ctx context.Context, migrate func(ctx context.Context) error) (float64, error) {
		if err := down(ctx); err != nil {
			return 0, err
		}
		before, err := tableStorage(ctx, e.readURL)
		if err != nil {
			return 0, err
		}
		start := time.Now()
		err = migrate(ctx)
		d := time.Since(start)
		if err != nil {
			return 0, err
		}
		after, err := tableStorage(ctx, e.readURL)
		if err != nil {
			return 0, err
		}
		if err := sameStorage(before, after); err != nil {
			return 0, err
		}
		if err := checkCount(ctx, s, e.cfg.Events); err != nil {
			return 0, err
		}
		return d.Seconds(), nil
	}
	store := func(ctx context.Context, _ int) (float64, error) {
		return timed(ctx, func(ctx context.Context) error {
			_, err := s.Migrate(ctx, &eventstore.MigrateOptions{Op: eventstore.MigrateUp})
			return err
		})
	}
	limit := func(ctx context.Context, _ int) (float64, error) {
		return timed(ctx, func(ctx context.Context) error {
			if err := execStatements(ctx, e.readURL, migrationStatements); err != nil {
				return err
			}
			_, err := s.Migrate(ctx, &eventstore.MigrateOptions{Op: eventstore.MigrateForce, Version: eventstore.MetadataSchemaVersion})
			return err
		})
	}
	return e.measurePair(ctx, "migrate-metadata", seconds, store, limit)
}

// migrationStatements are migration 8's statements (the same on both
// engines but for the column types, which do not change the cost).
var migrationStatements = []string{
	`ALTER TABLE events ADD COLUMN metadata TEXT`,
	`ALTER TABLE import_staging ADD COLUMN metadata TEXT`,
	`ALTER TABLE incremental_import_events ADD COLUMN metadata TEXT`,
}

// storage identifies where the events table's rows are: PostgreSQL's file
// node, or SQLite's page count.
type storage struct {
	engine string
	value  int64
}

func tableStorage(ctx context.Context, url string) (storage, error) {
	if strings.HasPrefix(url, "sqlite:") {
		db, err := openSQLite(url, true)
		if err != nil {
			return storage{}, err
		}
		defer db.Close()
		var pages int64
		err = db.QueryRowContext(ctx, `PRAGMA page_count`).Scan(&pages)
		return storage{"sqlite", pages}, err
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return storage{}, err
	}
	defer conn.Close(ctx)
	var node int64
	err = conn.QueryRow(ctx, `SELECT pg_relation_filenode('events')::bigint`).Scan(&node)
	return storage{"postgres", node}, err
}

// sameStorage fails when after is a rewritten events table.
func sameStorage(before, after storage) error {
	switch {
	case before.engine == "postgres" && before.value != after.value:
		return fmt.Errorf("the migration rewrote the events table (file node %d, then %d)", before.value, after.value)
	case before.engine == "sqlite" && after.value > before.value+16:
		return fmt.Errorf("the migration grew the database from %d to %d pages: a rewrite", before.value, after.value)
	}
	return nil
}

// execStatements runs statements on the store at url in one transaction.
func execStatements(ctx context.Context, url string, statements []string) error {
	if strings.HasPrefix(url, "sqlite:") {
		db, err := openWriter(url)
		if err != nil {
			return err
		}
		defer db.Close()
		return inTx(ctx, db, statements)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, q := range statements {
			if _, err := tx.Exec(ctx, q); err != nil {
				return err
			}
		}
		return nil
	})
}

func inTx(ctx context.Context, db *sql.DB, statements []string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	for _, q := range statements {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return errors.Join(err, tx.Rollback())
		}
	}
	return tx.Commit()
}

// runContainsP99 reads, per run, cfg.Lookups random accounts by content
// (Filter.Payload {"account": id}: the corpus's payloads name their
// aggregate, 100 events of 1M each by default) with the store's index for
// it (Store.CreateIndex: PostgreSQL GIN on the payload, SQLite on the
// member "account"), against the same events read by aggregate id; it
// returns the runs' p99 in milliseconds. The index is dropped afterwards.
func runContainsP99(ctx context.Context, e *engineEnv) (f *figures, err error) {
	s, _, err := e.reader(ctx)
	if err != nil {
		return nil, err
	}
	spec := eventstore.IndexSpec{On: eventstore.IndexOnPayload}
	if e.name == "sqlite" {
		spec.Path = []string{"account"}
	}
	start := time.Now()
	ix, err := s.CreateIndex(ctx, spec)
	if err != nil {
		return nil, err
	}
	e.log.printf("[%s] contains: index %s built in %s", e.name, ix.Name, time.Since(start).Round(time.Millisecond))
	defer func() {
		_, derr := s.DropIndex(context.WithoutCancel(ctx), ix.Name)
		err = errors.Join(err, derr)
	}()
	if err := e.b.settle(ctx); err != nil {
		return nil, err
	}
	c := e.cfg.corpus()
	byContent := func(ctx context.Context, id string) (int, error) {
		page, err := s.LoadEvents(ctx, eventstore.Filter{Payload: []byte(`{"account":"` + id + `"}`), Limit: aggregateReadLimit})
		if err != nil {
			return 0, err
		}
		return len(page.Events), nil
	}
	byAggregate := func(ctx context.Context, id string) (int, error) {
		page, err := s.LoadEvents(ctx, eventstore.Filter{AggregateIDs: []string{id}, Limit: aggregateReadLimit})
		if err != nil {
			return 0, err
		}
		return len(page.Events), nil
	}
	f = &figures{}
	for run := range e.cfg.Runs {
		sample := sampleAggregates(c, e.cfg.Lookups, 100+run)
		first, second := byContent, byAggregate
		if run%2 == 1 {
			first, second = byAggregate, byContent
		}
		a, err := readLatencies(ctx, c, sample, first)
		if err != nil {
			return nil, err
		}
		b, err := readLatencies(ctx, c, sample, second)
		if err != nil {
			return nil, err
		}
		if run%2 == 1 {
			a, b = b, a
		}
		f.Store, f.Limit = append(f.Store, percentile(a, 99)), append(f.Limit, percentile(b, 99))
		e.log.printf("[%s] contains run %d/%d: p99 %s, by aggregate %s", e.name, run+1, e.cfg.Runs, format(millis, f.Store[run]), format(millis, f.Limit[run]))
	}
	return f, nil
}
