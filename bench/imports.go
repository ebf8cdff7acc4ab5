package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/transfer"
)

// ndjsonFile is the corpus as NDJSON in the store's export format.
type ndjsonFile struct {
	path   string
	size   int64
	events int
}

// corpusNDJSON returns the corpus as an NDJSON file. It is written once per
// run, by exporting the read store of the first engine that needs it (the
// read store holds exactly the corpus), and shared by the engines: both
// engines export the same bytes (docs/ndjson-format.md).
func (e *engineEnv) corpusNDJSON(ctx context.Context) (*ndjsonFile, error) {
	if e.shared.ndjson != nil {
		return e.shared.ndjson, nil
	}
	s, _, err := e.reader(ctx)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(e.shared.dir, "corpus.ndjson")
	e.log.printf("[%s] writing the corpus as NDJSON (exporting the read store) to %s", e.name, path)
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	res, err := transfer.ExportEvents(ctx, s, f, nil)
	err = errors.Join(err, f.Close())
	if err == nil && (!res.End || res.Events != int64(e.cfg.Events)) {
		err = fmt.Errorf("the export wrote %d events (end: %t), want %d", res.Events, res.End, e.cfg.Events)
	}
	if err != nil {
		return nil, fmt.Errorf("write the corpus as NDJSON: %w", err)
	}
	e.shared.ndjson = &ndjsonFile{path: path, size: res.Bytes, events: e.cfg.Events}
	e.log.printf("[%s] corpus NDJSON: %s bytes", e.name, groupThousands(res.Bytes))
	return e.shared.ndjson, nil
}

// countingWriter discards what it is given and counts the bytes.
type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}

// runImport imports the corpus's NDJSON into an empty store with
// ImportEvents (default options), next to the engine's raw bulk load of the
// same rows into an empty store (same table, same indexes). Each run of
// either side gets a fresh database.
func runImport(ctx context.Context, e *engineEnv) (*figures, error) {
	src, err := e.corpusNDJSON(ctx)
	if err != nil {
		return nil, err
	}
	n := e.cfg.Events
	// The limit's rows are in memory before its clock starts, so that it
	// does not pay for the corpus generator.
	rows := e.cfg.corpus().materialize()
	store := func(ctx context.Context, _ int) (float64, error) {
		var d time.Duration
		err := e.withFreshStore(ctx, "import", func(url string) error {
			var err error
			d, err = importFile(ctx, url, src.path, n)
			return err
		})
		return float64(n) / d.Seconds(), err
	}
	limit := func(ctx context.Context, _ int) (float64, error) {
		var d time.Duration
		err := e.withFreshStore(ctx, "import_limit", func(url string) error {
			var err error
			d, err = e.b.importCeiling(ctx, url, rows)
			return err
		})
		return float64(n) / d.Seconds(), err
	}
	return e.measurePair(ctx, "import", perSecond, store, limit)
}

// importFile imports the NDJSON file at path into the empty store at url,
// checks that it holds the n events afterwards, and returns how long
// ImportEvents took.
func importFile(ctx context.Context, url, path string, n int) (d time.Duration, err error) {
	s, err := openStore(ctx, url)
	if err != nil {
		return 0, err
	}
	defer func() { err = errors.Join(err, s.Close()) }()
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	start := time.Now()
	res, err := transfer.ImportEvents(ctx, s, f, nil)
	d = time.Since(start)
	if err != nil {
		return 0, err
	}
	if !res.Done || res.Events != int64(n) {
		return 0, fmt.Errorf("the import committed %d events (done: %t), want %d", res.Events, res.Done, n)
	}
	return d, checkCount(ctx, s, n)
}

// runExport exports the whole read store to NDJSON (into a counting
// writer), next to the engine's fastest dump of the table in position
// order.
func runExport(ctx context.Context, e *engineEnv) (*figures, error) {
	s, raw, err := e.reader(ctx)
	if err != nil {
		return nil, err
	}
	src, err := e.corpusNDJSON(ctx)
	if err != nil {
		return nil, err
	}
	n := e.cfg.Events
	store := rate(n, func(ctx context.Context) (int, error) {
		var w countingWriter
		res, err := transfer.ExportEvents(ctx, s, &w, nil)
		if err != nil {
			return 0, err
		}
		if !res.End || w.n != src.size {
			return 0, fmt.Errorf("the export wrote %d bytes (end: %t), want %d", w.n, res.End, src.size)
		}
		return int(res.Events), nil
	})
	limit := rate(n, func(ctx context.Context) (int, error) {
		var w countingWriter
		return raw.dump(ctx, &w)
	})
	return e.measurePair(ctx, "export", perSecond, store, limit)
}

// incrementalSize is the number of events an incremental import commits
// into the read store: a tenth of the corpus (100,000 at the default size).
func incrementalSize(c corpus) int { return max(c.Events/10, 1) }

// runIncremental commits an incremental import of incrementalSize events
// into the full read store, next to one transaction appending the same rows
// from a plain staging table. Only the commit is timed (the store's push,
// the limit's staging are not). After each run the read store is truncated
// back to the corpus.
func runIncremental(ctx context.Context, e *engineEnv) (*figures, error) {
	s, _, err := e.reader(ctx)
	if err != nil {
		return nil, err
	}
	c := e.cfg.corpus()
	n, m := c.Events, incrementalSize(c)
	events, rows := c.incremental(m)
	undo := func(ctx context.Context) error {
		ctx = context.WithoutCancel(ctx) // the read store must be left whole
		if err := e.b.truncateStore(ctx, e.readURL, n); err != nil {
			return fmt.Errorf("truncate the read store back to %d events: %w", n, err)
		}
		return checkCount(ctx, s, n)
	}
	store := func(ctx context.Context, _ int) (secs float64, err error) {
		id, err := transfer.BeginIncrementalImport(ctx, s)
		if err != nil {
			return 0, err
		}
		defer func() { err = errors.Join(err, undo(ctx)) }()
		if err := transfer.PushIncrementalImport(ctx, s, id, events); err != nil {
			return 0, errors.Join(err, transfer.RollbackIncrementalImport(context.WithoutCancel(ctx), s, id))
		}
		start := time.Now()
		res, err := transfer.CommitIncrementalImport(ctx, s, id, nil)
		d := time.Since(start)
		if err != nil {
			return 0, errors.Join(err, transfer.RollbackIncrementalImport(context.WithoutCancel(ctx), s, id))
		}
		if res.Appended != int64(m) || res.FirstPosition != int64(n)+1 {
			return 0, fmt.Errorf("the commit appended %d events from position %d (%d duplicates, %d skipped), want %d from %d",
				res.Appended, res.FirstPosition, res.Duplicates, res.Skipped, m, n+1)
		}
		return d.Seconds(), nil
	}
	limit := func(ctx context.Context, _ int) (secs float64, err error) {
		defer func() { err = errors.Join(err, undo(ctx)) }()
		d, err := e.b.incrementalCeiling(ctx, e.readURL, rows)
		return d.Seconds(), err
	}
	return e.measurePair(ctx, "import-incremental", seconds, store, limit)
}

// materialize returns the corpus's events in memory: aggregate ids shared
// between an aggregate's events, payloads in one arena.
func (c corpus) materialize() []eventstore.StoredEvent {
	out := make([]eventstore.StoredEvent, 0, c.Events)
	ids := make(map[string]string, c.Aggregates)
	ends := make([]int, 0, c.Events)
	var arena []byte
	for ev := range c.All() {
		id, ok := ids[ev.AggregateID]
		if !ok {
			id = ev.AggregateID
			ids[id] = id
		}
		ev.AggregateID = id
		arena = append(arena, ev.Payload...)
		ends = append(ends, len(arena))
		ev.Payload = nil
		out = append(out, ev)
	}
	start := 0
	for i, end := range ends {
		out[i].Payload = arena[start:end:end]
		start = end
	}
	return out
}

// incremental returns m events to import into a store holding the corpus:
// each of a random existing aggregate and timestamped after the corpus's
// last event (10 ms apart), with payloads like the corpus's. They are
// returned as the store takes them, and as the rows they become once
// committed (positions after the corpus, versions continuing their
// aggregates), which the limit writes.
func (c corpus) incremental(m int) ([]transfer.VersionlessEvent, []eventstore.StoredEvent) {
	versions := make([]int64, c.Aggregates)
	for k := range versions {
		versions[k] = int64(c.aggregateSize(k))
	}
	events := make([]transfer.VersionlessEvent, m)
	rows := make([]eventstore.StoredEvent, m)
	for i := range m {
		pos := int64(c.Events + i + 1)
		r := eventRand(c.Seed^0x1ac4e3e7, pos)
		k := r.IntN(c.Aggregates)
		versions[k]++
		ev := eventstore.Event{
			AggregateID:      aggregateID(k),
			AggregateVersion: versions[k],
			Type:             corpusTypes[r.IntN(len(corpusTypes))],
			Timestamp:        baseTimestamp + 10*pos,
			Payload:          appendPayload(nil, r, k, pos),
		}
		events[i] = transfer.VersionlessEvent{AggregateID: ev.AggregateID, Type: ev.Type, Timestamp: ev.Timestamp, Payload: ev.Payload}
		rows[i] = eventstore.StoredEvent{Event: ev, Position: pos}
	}
	return events, rows
}
