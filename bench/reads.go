package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	neturl "net/url"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/esctl/esctl/internal/testdb"

	"github.com/esctl/esctl/eventstore"
)

// pageSize is the page size of the paging benchmarks.
const pageSize = 1_000

// scanType is the event type the "type" row pages through: about 1/20 of
// the corpus.
var scanType = corpusTypes[2]

// runScan pages through the whole read store by cursor, next to the raw
// keyset scan.
func runScan(ctx context.Context, e *engineEnv) (*figures, error) {
	s, raw, err := e.reader(ctx)
	if err != nil {
		return nil, err
	}
	return e.measurePair(ctx, "scan", perSecond,
		rate(e.cfg.Events, func(ctx context.Context) (int, error) { return scanStore(ctx, s, nil, pageSize) }),
		rate(e.cfg.Events, func(ctx context.Context) (int, error) { return scanRaw(ctx, raw, "", pageSize) }))
}

// runTypeScan pages through every event of one type.
func runTypeScan(ctx context.Context, e *engineEnv) (*figures, error) {
	s, raw, err := e.reader(ctx)
	if err != nil {
		return nil, err
	}
	want := e.typeCounts[scanType]
	return e.measurePair(ctx, "type", perSecond,
		rate(want, func(ctx context.Context) (int, error) { return scanStore(ctx, s, []string{scanType}, pageSize) }),
		rate(want, func(ctx context.Context) (int, error) { return scanRaw(ctx, raw, scanType, pageSize) }))
}

// rate turns a read of want events into a run measuring events per second,
// and checks that it read exactly want events.
func rate(want int, read func(ctx context.Context) (int, error)) pairFunc {
	return func(ctx context.Context, _ int) (float64, error) {
		start := time.Now()
		n, err := read(ctx)
		elapsed := time.Since(start)
		if err != nil {
			return 0, err
		}
		if n != want {
			return 0, fmt.Errorf("read %d events, want %d", n, want)
		}
		return float64(n) / elapsed.Seconds(), nil
	}
}

// scanStore pages with LoadEvents from the start until a short page.
func scanStore(ctx context.Context, s *eventstore.Store, types []string, limit int) (int, error) {
	f := eventstore.Filter{EventTypes: types, Limit: limit}
	n := 0
	for {
		page, err := s.LoadEvents(ctx, f)
		if err != nil {
			return n, err
		}
		n += len(page.Events)
		if len(page.Events) < limit {
			return n, nil
		}
		f.Cursor = page.Cursor
	}
}

// scanRaw pages with the raw keyset query from the start until a short page.
func scanRaw(ctx context.Context, r rawReader, typ string, limit int) (int, error) {
	var after int64
	n := 0
	for {
		k, last, err := r.page(ctx, typ, after, limit)
		if err != nil {
			return n, err
		}
		n += k
		if k < limit {
			return n, nil
		}
		after = last
	}
}

// latencyFigures are the single-aggregate read latencies, measured once
// for the p50 and p99 rows.
type latencyFigures struct{ p50, p99 figures }

func runAggregateP50(ctx context.Context, e *engineEnv) (*figures, error) {
	l, err := e.aggregateLatency(ctx)
	if err != nil {
		return nil, err
	}
	return &l.p50, nil
}

func runAggregateP99(ctx context.Context, e *engineEnv) (*figures, error) {
	l, err := e.aggregateLatency(ctx)
	if err != nil {
		return nil, err
	}
	return &l.p99, nil
}

// aggregateReadLimit is the Limit of a single-aggregate read: above any
// aggregate's event count, so one call returns the whole aggregate.
const aggregateReadLimit = 1_000

// aggregateLatency reads cfg.Lookups random aggregates, one LoadEvents call
// each, and the same aggregates with the raw query, per run; it returns the
// p50 and p99 of each run in milliseconds.
func (e *engineEnv) aggregateLatency(ctx context.Context) (*latencyFigures, error) {
	if e.latency != nil {
		return e.latency, nil
	}
	s, raw, err := e.reader(ctx)
	if err != nil {
		return nil, err
	}
	c := e.cfg.corpus()
	if c.Events/c.Aggregates >= aggregateReadLimit {
		return nil, fmt.Errorf("aggregates hold about %d events each, more than one read of %d returns: raise -aggregates", c.Events/c.Aggregates, aggregateReadLimit)
	}
	storeRead := func(ctx context.Context, id string) (int, error) {
		page, err := s.LoadEvents(ctx, eventstore.Filter{AggregateIDs: []string{id}, Limit: aggregateReadLimit})
		if err != nil {
			return 0, err
		}
		return len(page.Events), nil
	}
	rawRead := func(ctx context.Context, id string) (int, error) { return raw.aggregate(ctx, id, aggregateReadLimit) }
	l := &latencyFigures{}
	for run := range e.cfg.Runs {
		sample := sampleAggregates(c, e.cfg.Lookups, run)
		first, second := storeRead, rawRead
		if run%2 == 1 { // alternate, as measurePair does
			first, second = rawRead, storeRead
		}
		sd, err := readLatencies(ctx, c, sample, first)
		if err != nil {
			return nil, err
		}
		rd, err := readLatencies(ctx, c, sample, second)
		if err != nil {
			return nil, err
		}
		if run%2 == 1 {
			sd, rd = rd, sd
		}
		l.p50.Store, l.p50.Limit = append(l.p50.Store, percentile(sd, 50)), append(l.p50.Limit, percentile(rd, 50))
		l.p99.Store, l.p99.Limit = append(l.p99.Store, percentile(sd, 99)), append(l.p99.Limit, percentile(rd, 99))
		e.log.printf("[%s] aggregate run %d/%d: store p50 %s p99 %s, limit p50 %s p99 %s", e.name, run+1, e.cfg.Runs,
			format(millis, l.p50.Store[run]), format(millis, l.p99.Store[run]), format(millis, l.p50.Limit[run]), format(millis, l.p99.Limit[run]))
	}
	e.latency = l
	return l, nil
}

// sampleAggregates picks n aggregates at random (seeded by the corpus seed
// and the run).
func sampleAggregates(c corpus, n, run int) []int {
	r := rand.New(rand.NewPCG(c.Seed, uint64(1_000+run)))
	out := make([]int, n)
	for i := range out {
		out[i] = r.IntN(c.Aggregates)
	}
	return out
}

// readLatencies times read for each sampled aggregate, in milliseconds, and
// checks that each read returned the whole aggregate.
func readLatencies(ctx context.Context, c corpus, sample []int, read func(ctx context.Context, id string) (int, error)) ([]float64, error) {
	out := make([]float64, len(sample))
	for i, k := range sample {
		id := aggregateID(k)
		start := time.Now()
		n, err := read(ctx, id)
		out[i] = float64(time.Since(start)) / float64(time.Millisecond)
		if err != nil {
			return nil, fmt.Errorf("read aggregate %s: %w", id, err)
		}
		if want := c.aggregateSize(k); n != want {
			return nil, fmt.Errorf("read %d events of aggregate %s, want %d", n, id, want)
		}
	}
	return out, nil
}

// percentile returns the p-th percentile of v (nearest rank).
func percentile(v []float64, p float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	i := int(math.Ceil(float64(len(s))*p/100)) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// runStandbyScan pages through a store of the corpus's size from a
// streaming standby (Options.ReadURL) next to the same from its primary,
// on a primary and hot standby of the row's own (asynchronous streaming
// replication, fsync off on both: reads do not depend on it).
func runStandbyScan(ctx context.Context, e *engineEnv) (*figures, error) {
	r, stop, err := testdb.StartReplicated(false)
	if err != nil {
		return nil, fmt.Errorf("start a primary and a standby: %w", err)
	}
	defer stop()
	pc := &pgCluster{adminURL: r.PrimaryURL}
	url, _, err := pc.createDatabase(ctx, "standby")
	if err != nil {
		return nil, err
	}
	primary, err := openStore(ctx, url)
	if err != nil {
		return nil, err
	}
	defer primary.Close()
	c := e.cfg.corpus()
	e.log.printf("[%s] loading %d events into the replicated primary", e.name, c.Events)
	if err := pc.bulkLoad(ctx, url, c.All(), c.Events); err != nil {
		return nil, err
	}
	standbyURL, err := withDatabase(r.StandbyURL, strings.TrimPrefix(mustPath(url), "/"))
	if err != nil {
		return nil, err
	}
	if err := waitReplayed(ctx, r.PrimaryURL, r.StandbyURL); err != nil {
		return nil, err
	}
	reader, err := eventstore.Open(ctx, url, &eventstore.Options{ReadURL: standbyURL})
	if err != nil {
		return nil, err
	}
	defer reader.Close()
	return e.measurePair(ctx, "standby-scan", perSecond,
		rate(c.Events, func(ctx context.Context) (int, error) { return scanStore(ctx, reader, nil, pageSize) }),
		rate(c.Events, func(ctx context.Context) (int, error) { return scanStore(ctx, primary, nil, pageSize) }))
}

func mustPath(rawURL string) string {
	u, err := neturl.Parse(rawURL)
	if err != nil {
		return ""
	}
	return u.Path
}

// waitReplayed waits until the standby has replayed the primary's WAL up
// to its current position.
func waitReplayed(ctx context.Context, primaryURL, standbyURL string) error {
	pconn, err := pgx.Connect(ctx, primaryURL)
	if err != nil {
		return err
	}
	defer pconn.Close(context.WithoutCancel(ctx))
	var lsn string
	if err := pconn.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&lsn); err != nil {
		return err
	}
	sconn, err := pgx.Connect(ctx, standbyURL)
	if err != nil {
		return err
	}
	defer sconn.Close(context.WithoutCancel(ctx))
	deadline := time.Now().Add(10 * time.Minute)
	for {
		var done bool
		if err := sconn.QueryRow(ctx, `SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn`, lsn).Scan(&done); err != nil {
			return err
		}
		if done {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the standby has not replayed up to %s within 10 minutes", lsn)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
