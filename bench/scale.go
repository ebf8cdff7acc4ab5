package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/transfer"
)

// The cost curve (make bench-scale): one store per engine grows to each
// of -scale-sizes events by ImportEvents of a corpus of its own (in a child
// process), and at each size the same figures are taken; the target is
// every figure at the last size within scaleGrowth of the first, and the
// peak RSS of import, export and a consumer at the last size at most
// scaleRSSTargetMiB. One run per size: the table reads the shape of the
// curve, not a second decimal.

const (
	// scaleAggregateEvents: every aggregate of a step's corpus has this
	// many events, so that a one-aggregate read costs the same at any size.
	scaleAggregateEvents = 100
	scaleScanEvents      = 500_000 // events paged through from the middle of the store
	scaleTypeEvents      = 50_000  // events of one type paged through from the middle
	scaleLookups         = 1_000   // one-aggregate reads and LatestEvent calls per size
	scaleGrowth          = 1.25    // the last size's figure within this factor of the first's
	scaleRSSTargetMiB    = 64
	scaleBudget          = 45 * time.Minute
	scaleType            = "MoneyDeposited"
)

// Rates of this machine (2 cores, 2026-12-07) for the estimate printed up
// front: events/s of the slowest of the engines.
const (
	estWriteNDJSON = 400_000 // generating the step's NDJSON file
	estImport      = 10_000  // SQLite, 3M to 10M: 8,576
	estExport      = 300_000
	estConsume     = 250_000
	estPerSize     = 40 * time.Second // settling, scan, type read, lookups, disk size, store opening
)

// scaleMetric is one line of the scale table.
type scaleMetric struct {
	ID, Name string
	Unit     unit
	Higher   bool // higher is better
	Growth   bool // target: within scaleGrowth of the first size
	RSS      bool // target: at most scaleRSSTargetMiB at the last size
}

var scaleMetrics = []scaleMetric{
	{ID: "save-1", Name: "SaveEvent, 1 goroutine (µs per event)", Unit: millis, Growth: true},
	{ID: "save-64", Name: "SaveEvent, 64 goroutines (µs per event)", Unit: millis, Growth: true},
	{ID: "scan", Name: "LoadEvents, pages of 1,000, 500,000 events from the middle (events/s)", Unit: perSecond, Higher: true, Growth: true},
	{ID: "aggregate-p99", Name: "LoadEvents one aggregate of 100 events, p99 (ms)", Unit: millis, Growth: true},
	{ID: "latest-p99", Name: "LatestEvent of one aggregate, p99 (ms)", Unit: millis, Growth: true},
	{ID: "type", Name: "LoadEvents of one type, 50,000 events from the middle (events/s)", Unit: perSecond, Higher: true, Growth: true},
	{ID: "export", Name: "ExportEvents of the whole store (events/s)", Unit: perSecond, Higher: true, Growth: true},
	{ID: "disk", Name: "bytes on disk per event", Unit: perSecond, Growth: true},
	{ID: "import", Name: "ImportEvents of the step's events (events/s; information)", Unit: perSecond, Higher: true},
	{ID: "import-rss", Name: "peak RSS, ImportEvents (MiB)", Unit: mebibytes, RSS: true},
	{ID: "export-rss", Name: "peak RSS, ExportEvents (MiB)", Unit: mebibytes, RSS: true},
	{ID: "consumer-rss", Name: "peak RSS, a consumer from the start to the end (MiB; last size)", Unit: mebibytes, RSS: true},
	{ID: "consumer", Name: "a consumer from the start to the end (events/s; last size)", Unit: perSecond, Higher: true},
}

// scaleResult is one engine's figures: by metric id, one per size (NaN
// where not measured).
type scaleResult struct {
	engine  string
	figures map[string][]float64
	err     error
}

// scaleEstimate is the run's expected duration, printed up front.
func scaleEstimate(cfg *config) time.Duration {
	last := cfg.ScaleSizes[len(cfg.ScaleSizes)-1]
	per := time.Duration(float64(last)/estWriteNDJSON*float64(time.Second)) +
		time.Duration(float64(last)/estImport*float64(time.Second)) +
		time.Duration(float64(last)/estConsume*float64(time.Second))
	for _, n := range cfg.ScaleSizes {
		per += 2*cfg.Duration + estPerSize + time.Duration(float64(n)/estExport*float64(time.Second))
	}
	return time.Duration(len(cfg.Engines)) * per
}

// runScale is make bench-scale: the harness's set-up, then the scale runs
// of each engine, then one table.
func runScale(ctx context.Context, cfg *config, stdout, stderr io.Writer) (err error) {
	h := &harness{cfg: cfg, log: newProgress(stderr), loadStart: loadAverage()}
	defer func() { err = errors.Join(err, h.close()) }()
	est := scaleEstimate(cfg)
	h.log.printf("bench-scale: sizes %s on %s; expected duration about %s (budget %s)",
		sizeList(cfg.ScaleSizes), strings.Join(cfg.Engines, ", "), est.Round(time.Minute), scaleBudget)
	if est > scaleBudget {
		h.log.printf("bench-scale: the expected duration is over the budget")
	}
	start := time.Now()
	if err := h.setup(ctx); err != nil {
		return err
	}
	var results []*scaleResult
	for _, e := range h.envs {
		r := h.scaleEngine(ctx, e)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		results = append(results, r)
	}
	took := time.Since(start)
	info := collectMachineInfo(ctx, h)
	printScaleReport(stdout, cfg, info, results, est, took)
	var errs []error
	for _, r := range results {
		if r.err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r.engine, r.err))
		}
	}
	if took > scaleBudget {
		errs = append(errs, fmt.Errorf("the run took %s, over its budget of %s", took.Round(time.Second), scaleBudget))
	}
	return errors.Join(errs...)
}

// scaleEngine grows one store through the sizes and measures at each.
func (h *harness) scaleEngine(ctx context.Context, e *engineEnv) *scaleResult {
	res := &scaleResult{engine: e.name, figures: map[string][]float64{}}
	for _, m := range scaleMetrics {
		res.figures[m.ID] = make([]float64, len(e.cfg.ScaleSizes))
		for i := range res.figures[m.ID] {
			res.figures[m.ID][i] = math.NaN()
		}
	}
	res.err = h.scaleSteps(ctx, e, res)
	if res.err != nil {
		h.log.printf("[%s] bench-scale FAILED: %v", e.name, res.err)
	}
	return res
}

func (h *harness) scaleSteps(ctx context.Context, e *engineEnv, res *scaleResult) (err error) {
	url, drop, err := initDatabase(ctx, e.b, "scale")
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, drop()) }()
	s, err := openStore(ctx, url)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, s.Close()) }()
	set := func(id string, k int, v float64) {
		res.figures[id][k] = v
		h.log.printf("[%s] %s at %s: %s", e.name, id, sizeList(e.cfg.ScaleSizes[k:k+1]), format(unitOf(id), v))
	}
	corpusEvents := 0 // events of the steps' corpora so far (the save rows add more)
	for k, size := range e.cfg.ScaleSizes {
		c := corpus{Events: size - corpusEvents, Aggregates: (size - corpusEvents) / scaleAggregateEvents,
			Seed: e.cfg.Seed + uint64(k), AggregateBase: corpusEvents / scaleAggregateEvents}
		path := filepath.Join(h.tmp, fmt.Sprintf("scale-%s-%d.ndjson", e.name, k))
		h.log.printf("[%s] writing %s events to %s", e.name, groupThousands(int64(c.Events)), path)
		if err := writeCorpusNDJSON(c, path); err != nil {
			return err
		}
		h.log.printf("[%s] importing them (a child process)", e.name)
		imp, err := runChild(ctx, "scale-import", childArgs{Engine: e.name, URL: url, File: path, Seq: k, Events: c.Events})
		if rerr := os.Remove(path); err == nil {
			err = rerr
		}
		if err != nil {
			return err
		}
		set("import", k, float64(c.Events)/imp.Result.Seconds)
		set("import-rss", k, mebibytesOf(imp.PeakBytes))
		if err := e.b.settleStore(ctx, url); err != nil {
			return err
		}
		corpusEvents = size
		aggregates := size / scaleAggregateEvents

		for _, clients := range []int{1, 64} {
			rate, err := closedLoop(ctx, clients, e.cfg.Duration, func(ctx context.Context, client, i int) error {
				_, err := s.SaveEvent(ctx, eventstore.Event{AggregateID: fmt.Sprintf("scale-save-%d-%d-%d-%d", k, clients, client, i),
					AggregateVersion: 1, Type: corpusTypes[i%len(corpusTypes)], Payload: []byte(`{"account":"scale","amount":1}`)})
				return err
			})
			if err != nil {
				return err
			}
			set(fmt.Sprintf("save-%d", clients), k, 1e6/rate)
		}
		d, err := s.Describe(ctx, nil)
		if err != nil {
			return err
		}
		mid := max(d.LastPosition/2-scaleScanEvents/2, 0)
		rate, err := pageRate(ctx, s, eventstore.Filter{Cursor: eventstore.CursorAt(mid), Limit: pageSize}, scaleScanEvents)
		if err != nil {
			return err
		}
		set("scan", k, rate)
		rate, err = pageRate(ctx, s, eventstore.Filter{Cursor: eventstore.CursorAt(d.LastPosition / 2), EventTypes: []string{scaleType}, Limit: pageSize}, scaleTypeEvents)
		if err != nil {
			return err
		}
		set("type", k, rate)
		agg, latest, err := lookups(ctx, s, aggregates, e.cfg.Seed)
		if err != nil {
			return err
		}
		set("aggregate-p99", k, agg)
		set("latest-p99", k, latest)
		exp, err := runChild(ctx, "export-store", childArgs{Engine: e.name, URL: url})
		if err != nil {
			return err
		}
		if int64(exp.Result.Events) != d.EventCount {
			return fmt.Errorf("the export wrote %d events, want %d", exp.Result.Events, d.EventCount)
		}
		set("export", k, float64(exp.Result.Events)/exp.Result.Seconds)
		set("export-rss", k, mebibytesOf(exp.PeakBytes))
		bytes, err := e.b.diskBytes(ctx, url)
		if err != nil {
			return err
		}
		set("disk", k, float64(bytes)/float64(d.EventCount))
		if k == len(e.cfg.ScaleSizes)-1 {
			h.log.printf("[%s] a consumer from the start to the end (a child process)", e.name)
			cons, err := runChild(ctx, "consume-all", childArgs{Engine: e.name, URL: url})
			if err != nil {
				return err
			}
			set("consumer", k, float64(cons.Result.Events)/cons.Result.Seconds)
			set("consumer-rss", k, mebibytesOf(cons.PeakBytes))
		}
	}
	return nil
}

// pageRate pages with f from its cursor until n events (or the end) and
// returns events/s.
func pageRate(ctx context.Context, s *eventstore.Store, f eventstore.Filter, n int) (float64, error) {
	start := time.Now()
	got := 0
	for got < n {
		p, err := s.LoadEvents(ctx, f)
		if err != nil {
			return 0, err
		}
		if len(p.Events) == 0 {
			break
		}
		got += len(p.Events)
		f.Cursor = p.Cursor
	}
	if got == 0 {
		return 0, errors.New("the read returned no event")
	}
	return float64(got) / time.Since(start).Seconds(), nil
}

// lookups reads scaleLookups random aggregates of the steps' corpora whole,
// then their latest events, and returns both p99s in ms.
func lookups(ctx context.Context, s *eventstore.Store, aggregates int, seed uint64) (aggP99, latestP99 float64, err error) {
	r := rand.New(rand.NewPCG(seed, 0x5ca1e))
	ids := make([]string, scaleLookups)
	for i := range ids {
		ids[i] = aggregateID(r.IntN(aggregates))
	}
	var agg, latest []float64
	for _, id := range ids {
		start := time.Now()
		p, err := s.LoadEvents(ctx, eventstore.Filter{AggregateIDs: []string{id}, Limit: 1000})
		if err != nil {
			return 0, 0, err
		}
		agg = append(agg, float64(time.Since(start))/float64(time.Millisecond))
		if len(p.Events) != scaleAggregateEvents {
			return 0, 0, fmt.Errorf("aggregate %s: %d events, want %d", id, len(p.Events), scaleAggregateEvents)
		}
	}
	for _, id := range ids {
		start := time.Now()
		ev, err := s.LatestEvent(ctx, eventstore.Filter{AggregateIDs: []string{id}})
		if err != nil {
			return 0, 0, err
		}
		latest = append(latest, float64(time.Since(start))/float64(time.Millisecond))
		if ev == nil || ev.AggregateVersion != scaleAggregateEvents {
			return 0, 0, fmt.Errorf("aggregate %s: the latest event is not version %d", id, scaleAggregateEvents)
		}
	}
	return percentile(agg, 99), percentile(latest, 99), nil
}

// writeCorpusNDJSON writes c as NDJSON lines without positions (the import
// gives them the store's next ones).
func writeCorpusNDJSON(c corpus, path string) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, f.Close()) }()
	w := bufio.NewWriterSize(f, 1<<20)
	line := make([]byte, 0, 1024)
	for e := range c.All() {
		line = append(line[:0], `{"type":"`...)
		line = append(line, e.Type...)
		line = append(line, `","timestamp":`...)
		line = strconv.AppendInt(line, e.Timestamp, 10)
		line = append(line, `,"aggregateId":"`...)
		line = append(line, e.AggregateID...)
		line = append(line, `","aggregateVersion":`...)
		line = strconv.AppendInt(line, e.AggregateVersion, 10)
		line = append(line, `,"payload":`...)
		line = append(line, e.Payload...)
		line = append(line, "}\n"...)
		if _, err := w.Write(line); err != nil {
			return err
		}
	}
	return w.Flush()
}

// childScaleImport imports a step's NDJSON file (source scale-SEQ).
func childScaleImport(ctx context.Context, a childArgs) (res childResult, err error) {
	s, err := openStore(ctx, a.URL)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, s.Close()) }()
	f, err := os.Open(a.File)
	if err != nil {
		return res, err
	}
	defer f.Close()
	out, err := transfer.ImportEvents(ctx, s, f, &transfer.ImportOptions{SourceID: fmt.Sprintf("scale-%d", a.Seq)})
	if err != nil {
		return res, err
	}
	if !out.Done || out.Events != int64(a.Events) {
		return res, fmt.Errorf("the import committed %d events (done: %t), want %d", out.Events, out.Done, a.Events)
	}
	return childResult{Events: a.Events}, nil
}

// childConsumeAll runs a durable consumer with a no-op handler from the
// start of the store to its end.
func childConsumeAll(ctx context.Context, a childArgs) (res childResult, err error) {
	s, err := openStore(ctx, a.URL)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, s.Close()) }()
	d, err := s.Describe(ctx, nil)
	if err != nil {
		return res, err
	}
	if _, err := consumeAll(ctx, s, "scale", d.LastPosition); err != nil {
		return res, err
	}
	return childResult{Events: int(d.LastPosition)}, nil
}

// unitOf returns a scale metric's unit.
func unitOf(id string) unit {
	for _, m := range scaleMetrics {
		if m.ID == id {
			return m.Unit
		}
	}
	return perSecond
}

func sizeList(sizes []int) string {
	s := make([]string, len(sizes))
	for i, n := range sizes {
		s[i] = shortSize(n)
	}
	return strings.Join(s, ", ")
}

// shortSize prints 1000000 as 1M and 300000 as 300k.
func shortSize(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return strconv.Itoa(n/1_000_000) + "M"
	case n >= 1_000 && n%1_000 == 0:
		return strconv.Itoa(n/1_000) + "k"
	}
	return strconv.Itoa(n)
}

// verdict of a metric: "yes", "NO" or "" (no target), with the ratio of the
// last size to the first.
func (m scaleMetric) verdict(v []float64) (ratio float64, ok string) {
	first, last := v[0], v[len(v)-1]
	ratio = last / first
	switch {
	case m.RSS:
		if math.IsNaN(last) {
			return ratio, "n/a"
		}
		if last <= scaleRSSTargetMiB {
			return ratio, "yes"
		}
		return ratio, "NO"
	case !m.Growth:
		return ratio, ""
	case math.IsNaN(ratio):
		return ratio, "n/a"
	case m.Higher && ratio >= 1/scaleGrowth, !m.Higher && ratio <= scaleGrowth:
		return ratio, "yes"
	}
	return ratio, "NO"
}

func printScaleReport(w io.Writer, cfg *config, m machineInfo, results []*scaleResult, est, took time.Duration) {
	fmt.Fprintf(w, "esctl bench-scale, %s\n\n", m.Date.Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "machine     %s, %d cores, %s RAM, %s/%s\n", m.CPU, m.Cores, m.RAM, runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(w, "load        %s at start, %s at end (1-minute load average)\n", m.LoadStart, m.LoadEnd)
	fmt.Fprintf(w, "go          %s\n", runtime.Version())
	for _, name := range cfg.Engines {
		fmt.Fprintf(w, "%-11s %s\n", name, m.Versions[name])
	}
	fmt.Fprintf(w, "store       grown by ImportEvents to %s events, %d events per aggregate, 20 types, payloads as make bench's; one run per size; appends last %s\n",
		sizeList(cfg.ScaleSizes), scaleAggregateEvents, cfg.Duration)
	fmt.Fprintf(w, "duration    %s (expected %s, budget %s)\n\n", took.Round(time.Second), est.Round(time.Minute), scaleBudget)
	sizes := cfg.ScaleSizes
	header := []string{"engine", "figure"}
	for _, n := range sizes {
		header = append(header, shortSize(n))
	}
	header = append(header, fmt.Sprintf("%s / %s", shortSize(sizes[len(sizes)-1]), shortSize(sizes[0])), "target", "ok?")
	cells := [][]string{header}
	for _, r := range results {
		for _, mt := range scaleMetrics {
			v := r.figures[mt.ID]
			line := []string{r.engine, mt.Name}
			for _, x := range v {
				if math.IsNaN(x) {
					line = append(line, "")
				} else {
					line = append(line, format(mt.Unit, x))
				}
			}
			ratio, ok := mt.verdict(v)
			rs := ""
			if !math.IsNaN(ratio) && !math.IsInf(ratio, 0) {
				rs = strconv.FormatFloat(ratio, 'f', 2, 64) + "x"
			}
			tgt := ""
			switch {
			case mt.RSS:
				tgt = fmt.Sprintf("<= %d MiB at %s", scaleRSSTargetMiB, shortSize(sizes[len(sizes)-1]))
			case mt.Growth && mt.Higher:
				tgt = fmt.Sprintf(">= 1/%.2fx", scaleGrowth)
			case mt.Growth:
				tgt = fmt.Sprintf("<= %.2fx", scaleGrowth)
			}
			cells = append(cells, append(line, rs, tgt, ok))
		}
		if r.err != nil {
			cells = append(cells, []string{r.engine, "error: " + shorten(r.err.Error(), 80)})
		}
	}
	widths := make([]int, len(header))
	for _, line := range cells {
		for i, c := range line {
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	for i, line := range cells {
		fmt.Fprintln(w, joinPadded(line, widths[:len(line)]))
		if i == 0 {
			rule := make([]string, len(widths))
			for j, n := range widths {
				rule[j] = strings.Repeat("-", n)
			}
			fmt.Fprintln(w, strings.ReplaceAll(joinPadded(rule, widths), " | ", "-|-"))
		}
	}
	fmt.Fprintf(w, "\nper-event costs and p99s: lower is better; events/s: higher is better. The save rows append to the grown store (new aggregates);\n")
	fmt.Fprintf(w, "scan and type read from the middle of the store; lookups pick aggregates of the whole store at random; bytes on disk: the SQLite file\n")
	fmt.Fprintf(w, "and its WAL / pg_database_size, over the events stored. Import, export and the consumer run in child processes (peak RSS: their VmHWM).\n")
}
