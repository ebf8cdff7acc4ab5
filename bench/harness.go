package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// unit is what a row measures; it decides how figures are printed.
type unit int

const (
	perSecond unit = iota // events per second: higher is better
	millis                // latency in milliseconds: lower is better
	mebibytes             // peak resident memory in MiB: lower is better
	seconds               // duration in seconds: lower is better
	percent               // a share in percent: higher is better
	times                 // a ratio of two rows, for information
)

// figures are one row's measurements, one value per run. Store[i] and
// Limit[i] are run i's pair, measured one after the other.
type figures struct {
	Store []float64
	Limit []float64 // nil when the row has no limit
}

// ratios returns store over limit of each run's pair, or nil when the
// figures do not come in pairs.
func (f *figures) ratios() []float64 {
	if len(f.Limit) == 0 || len(f.Limit) != len(f.Store) {
		return nil
	}
	out := make([]float64, 0, len(f.Store))
	for i, lim := range f.Limit {
		if lim > 0 {
			out = append(out, f.Store[i]/lim)
		}
	}
	return out
}

// ratio is what a row's target compares: the median of the paired ratios;
// ok is false when the row has none.
func (f *figures) ratio() (r float64, ok bool) {
	rs := f.ratios()
	if len(rs) == 0 {
		return 0, false
	}
	return median(rs), true
}

// target is a row's pass/fail goal.
type target struct {
	Desc string
	// Check returns whether the goal holds; known is false when it cannot
	// be judged (a row it refers to was not run).
	Check func(f *figures, e *engineEnv) (ok, known bool)
}

// benchmark is one row of the table, measured once per engine.
type benchmark struct {
	ID     string // stable name for -rows and the docs
	Name   string // the table's label
	Unit   unit
	Target *target
	// Targets, when set, are the row's targets by engine (an engine
	// missing from it has none); Target is then unused.
	Targets map[string]*target
	Run     func(ctx context.Context, e *engineEnv) (*figures, error)
	// Only, when set, is the one engine the row applies to (the others
	// show why not).
	Only, OnlyWhy string
}

// row is a benchmark's outcome on one engine.
type row struct {
	Engine  string
	Bench   *benchmark
	Figures *figures // nil when not measured
	Note    string   // why there are no figures
	Verdict string   // the target's outcome: "yes", "NO", or why it is unknown
	Err     error
	Elapsed time.Duration
}

// harness owns what a run sets up: the engines and their databases.
type harness struct {
	cfg       *config
	log       *progress
	envs      []*engineEnv
	pg        *pgCluster // nil unless postgres is among the engines
	tmp       string     // temporary directory of SQLite files, scripts and the NDJSON corpus
	shared    *shared
	loadStart string // load average when the run started
}

// run sets up the engines, runs every selected benchmark on each, and
// prints the report on stdout. Cleanup (cluster, files) happens on every
// return path, including cancellation.
func run(ctx context.Context, cfg *config, stdout, stderr io.Writer) (err error) {
	h := &harness{cfg: cfg, log: newProgress(stderr), loadStart: loadAverage()}
	defer func() { err = errors.Join(err, h.close()) }()
	if err := h.setup(ctx); err != nil {
		return err
	}
	var rows []row
	var errs []error
	for _, e := range h.envs {
		rows = append(rows, h.runEngine(ctx, e)...)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		errs = append(errs, e.close()) // frees the engine's read store now
	}
	info := collectMachineInfo(ctx, h)
	printReport(stdout, cfg, info, rows)
	for _, r := range rows {
		if r.Err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", r.Engine, r.Bench.ID, r.Err))
		}
	}
	return errors.Join(errs...)
}

func (h *harness) setup(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "esctl-bench-")
	if err != nil {
		return err
	}
	h.tmp = dir
	h.shared = &shared{dir: dir}
	payloads := payloadPool(h.cfg.corpus(), 1024)
	for _, name := range h.cfg.Engines {
		var b backend
		switch name {
		case "sqlite":
			b = &sqliteBackend{dir: dir, payloads: payloads}
		case "postgres":
			h.log.printf("starting a throwaway PostgreSQL cluster (fsync on, synchronous_commit on)")
			pg, err := startPostgres(ctx, h.cfg.PGBench, dir, payloads[0])
			if err != nil {
				return err
			}
			pg.payloads = payloads
			h.pg = pg
			h.log.printf("PostgreSQL cluster up: %s", pg.adminURL)
			b = pg
		}
		h.envs = append(h.envs, &engineEnv{name: name, cfg: h.cfg, log: h.log, b: b, results: map[string]*figures{}, shared: h.shared})
	}
	return nil
}

// runEngine runs the selected benchmarks on one engine, in registry order.
// A failing benchmark is reported in its row and the others still run,
// unless the run was interrupted.
func (h *harness) runEngine(ctx context.Context, e *engineEnv) []row {
	var rows []row
	for i := range benchmarks {
		b := &benchmarks[i]
		if !h.cfg.wants(b.ID) {
			continue
		}
		r := row{Engine: e.name, Bench: b}
		if ctx.Err() != nil {
			return rows
		}
		if b.Only != "" && b.Only != e.name {
			rows = append(rows, row{Engine: e.name, Bench: b, Note: b.OnlyWhy})
			continue
		}
		h.log.printf("[%s] %s: %s", e.name, b.ID, b.Name)
		start := time.Now()
		r.Figures, r.Err = b.Run(ctx, e)
		r.Elapsed = time.Since(start)
		switch {
		case r.Err != nil:
			r.Figures, r.Note = nil, "error: "+shorten(r.Err.Error(), 60)
			h.log.printf("[%s] %s FAILED after %s: %v", e.name, b.ID, round(r.Elapsed), r.Err)
		default:
			e.results[b.ID] = r.Figures
			r.Verdict = verdict(b.targetFor(e.name), r.Figures, e)
			h.log.printf("[%s] %s done in %s", e.name, b.ID, round(r.Elapsed))
		}
		rows = append(rows, r)
	}
	return rows
}

func (h *harness) close() error {
	var errs []error
	for _, e := range h.envs {
		errs = append(errs, e.close())
	}
	if h.pg != nil {
		h.log.printf("stopping the PostgreSQL cluster")
		h.pg.stop()
	}
	if h.tmp != "" {
		errs = append(errs, os.RemoveAll(h.tmp))
	}
	return errors.Join(errs...)
}

// pairFunc measures one run of the store or of its limit.
type pairFunc func(ctx context.Context, run int) (float64, error)

// measurePair runs store and limit cfg.Runs times each, alternating which
// goes first so that a slow drift of the machine does not favour either.
func (e *engineEnv) measurePair(ctx context.Context, id string, u unit, store, limit pairFunc) (*figures, error) {
	f := &figures{}
	for run := range e.cfg.Runs {
		first, second := store, limit
		if run%2 == 1 {
			first, second = limit, store
		}
		a, err := first(ctx, run)
		if err != nil {
			return nil, err
		}
		b, err := second(ctx, run)
		if err != nil {
			return nil, err
		}
		if run%2 == 1 {
			a, b = b, a
		}
		f.Store, f.Limit = append(f.Store, a), append(f.Limit, b)
		e.log.printf("[%s] %s run %d/%d: store %s, limit %s", e.name, id, run+1, e.cfg.Runs, format(u, a), format(u, b))
	}
	return f, nil
}

// targetFor returns the row's target on an engine, or nil.
func (b *benchmark) targetFor(engine string) *target {
	if b.Targets != nil {
		return b.Targets[engine]
	}
	return b.Target
}

// verdict judges a row's target.
func verdict(t *target, f *figures, e *engineEnv) string {
	if t == nil {
		return ""
	}
	ok, known := t.Check(f, e)
	switch {
	case !known:
		return "n/a"
	case ok:
		return "yes"
	}
	return "NO"
}

// shorten returns the first line of s, cut to n runes: the table shows the
// start of an error, stderr all of it.
func shorten(s string, n int) string {
	s, _, _ = strings.Cut(s, "\n")
	if r := []rune(s); len(r) > n {
		return string(r[:n-3]) + "..."
	}
	return s
}

func round(d time.Duration) time.Duration { return d.Round(100 * time.Millisecond) }
