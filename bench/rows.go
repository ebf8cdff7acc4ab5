package main

import (
	"context"
	"fmt"
)

// benchmarks is the table, in order: one entry per row, each measured on
// every engine. To add a row, write its Run function and register it here
// (and describe it in docs/benchmarks.md).
var benchmarks = []benchmark{
	saveEventRow(1, false, &target{Desc: ">= 0.8x limit", Check: storeOverLimitAtLeast(0.8)}),
	saveEventRow(8, false, nil),
	saveEventRow(64, true, &target{Desc: ">= 0.8x limit", Check: storeOverLimitAtLeast(0.8)}),
	{ID: "save-64-gain", Name: "save-64 over save-1, run by run (x; information: what group commit gains on this disk)", Unit: times, Run: runRatioOf("save-64", "save-1")},
	{ID: "save-metadata", Name: "SaveEvent, 8 goroutines, 100 bytes of metadata on every event (events/s; limit: the same without metadata)", Unit: perSecond,
		Run: runSaveMetadata, Target: &target{Desc: ">= 0.9x limit", Check: storeOverLimitAtLeast(0.9)}},
	{ID: "processes", Name: "SaveEvent from 4 processes x 8 goroutines, freeze 50 ms/s (events/s; limit: 1 process x 32)", Unit: perSecond, Run: runProcesses,
		Target: &target{Desc: ">= 0.7x limit", Check: storeOverLimitAtLeast(0.7)}, Only: "sqlite", OnlyWhy: "SQLite only (PostgreSQL's row lock queues writers)"},
	{ID: "processes-share", Name: "4 processes: the slowest one's share of a fair share (%; limit: 1 process, 100)", Unit: percent, Run: runProcessesShare,
		Only: "sqlite", OnlyWhy: "SQLite only"},
	{ID: "processes-p99", Name: "4 processes: append latency p99 (ms; limit: 1 process x 32)", Unit: millis, Run: runProcessesP99,
		Only: "sqlite", OnlyWhy: "SQLite only"},
	{ID: "processes-max", Name: "4 processes: append latency max (ms; limit: 1 process x 32)", Unit: millis, Run: runProcessesMax,
		Target: &target{Desc: "<= 1000 ms", Check: storeAtMost(1000)}, Only: "sqlite", OnlyWhy: "SQLite only"},
	{ID: "scan", Name: "LoadEvents all, pages of 1,000 (events/s)", Unit: perSecond, Run: runScan},
	{ID: "aggregate-p50", Name: "LoadEvents one aggregate, p50 (ms)", Unit: millis, Run: runAggregateP50},
	{ID: "aggregate-p99", Name: "LoadEvents one aggregate, p99 (ms)", Unit: millis, Run: runAggregateP99,
		Target: &target{Desc: "<= 5 ms", Check: storeAtMost(5)}},
	{ID: "type", Name: "LoadEvents one event type, pages of 1,000 (events/s)", Unit: perSecond, Run: runTypeScan},
	{ID: "scan-rss", Name: "peak RSS, LoadEvents all (MiB)", Unit: mebibytes, Run: runScanRSS},

	{ID: "import", Name: "ImportEvents into an empty store (events/s)", Unit: perSecond, Run: runImport,
		Target: &target{Desc: ">= 0.7x limit", Check: storeOverLimitAtLeast(0.7)}},
	{ID: "export", Name: "ExportEvents of the whole store (events/s)", Unit: perSecond, Run: runExport,
		Target: &target{Desc: ">= 0.7x limit", Check: storeOverLimitAtLeast(0.7)}},
	{ID: "import-incremental", Name: "incremental import commit, corpus/10 events into the full store (s)", Unit: seconds, Run: runIncremental},
	{ID: "import-rss", Name: "peak RSS, ImportEvents (MiB)", Unit: mebibytes, Run: runImportRSS,
		Target: &target{Desc: "<= 100 MB", Check: storeAtMost(rssTargetMiB)}},
	{ID: "export-rss", Name: "peak RSS, ExportEvents (MiB)", Unit: mebibytes, Run: runExportRSS,
		Target: &target{Desc: "<= 100 MB", Check: storeAtMost(rssTargetMiB)}},

	{ID: "subscribe-catchup", Name: "Subscribe catch-up of the whole store (events/s)", Unit: perSecond, Run: runSubscribeCatchUp,
		Target: &target{Desc: ">= 0.8x limit", Check: storeOverLimitAtLeast(0.8)}},
	followRow(1_000, "p50", nil),
	followRow(1_000, "p99", map[string]*target{"postgres": {Desc: "<= 10 ms", Check: storeAtMost(10)}}),
	followRow(1_000, "max", nil),
	followRow(10, "p50", nil),
	followRow(10, "p99", map[string]*target{"postgres": {Desc: "<= 10 ms", Check: storeAtMost(10)}, "sqlite": {Desc: "<= 50 ms", Check: storeAtMost(50)}}),
	followRow(10, "max", nil),
	{ID: "fanout-reads", Name: "100 subscribers at the end, reads/s (limit: 1 subscriber)", Unit: perSecond, Run: runFanOutReads,
		Target: &target{Desc: "<= 2x limit", Check: storeOverLimitAtMost(2)}},
	{ID: "standby-scan", Name: "LoadEvents all from a streaming standby (events/s; limit: the same from its primary)", Unit: perSecond, Run: runStandbyScan,
		Only: "postgres", OnlyWhy: "PostgreSQL only (streaming replication)"},
	{ID: "consumer", Name: "durable consumer, no-op handler, checkpoint every 1,000 (events/s; limit: LoadEvents all)", Unit: perSecond, Run: runConsumer,
		Target: &target{Desc: ">= 0.7x limit", Check: storeOverLimitAtLeast(0.7)}},
	{ID: "fanout-cpu", Name: "100 subscribers at the end, CPU ms/s (limit: 1 subscriber)", Unit: millis, Run: runFanOutCPU,
		Target: &target{Desc: "<= 2x limit", Check: storeOverLimitAtMost(2)}},
	{ID: "contains-p99", Name: "LoadEvents by payload containment, 100 of 1M events, with the index, p99 (ms; limit: the same events by aggregate id)", Unit: millis,
		Run: runContainsP99, Target: &target{Desc: "<= 10 ms", Check: storeAtMost(10)}},
	// Last: it migrates the read store down and up again.
	{ID: "migrate-metadata", Name: "migration 7 to 8 (metadata) of the read store, no table rewrite (s; limit: its ALTER TABLEs by hand)", Unit: seconds,
		Run: runMigrateMetadata, Target: &target{Desc: "<= 1 s", Check: storeAtMost(1)}},
}

// storeOverLimitAtMost holds when the median of the paired ratios (store
// over limit, run by run) is at most x.
func storeOverLimitAtMost(x float64) func(*figures, *engineEnv) (bool, bool) {
	return func(f *figures, _ *engineEnv) (bool, bool) {
		r, ok := f.ratio()
		return r <= x, ok
	}
}

// rssTargetMiB is the peak-RSS target of import and export, 100 MB
// (10^8 bytes), in the table's MiB.
const rssTargetMiB = 100e6 / (1 << 20)

func saveEventRow(clients int, group bool, t *target) benchmark {
	plural := "s"
	if clients == 1 {
		plural = ""
	}
	name := fmt.Sprintf("SaveEvent, %d goroutine%s (events/s)", clients, plural)
	if group {
		name = fmt.Sprintf("SaveEvent, %d goroutines (events/s; limit: the same rows grouped by hand, a transaction per round)", clients)
	}
	return benchmark{
		ID:     fmt.Sprintf("save-%d", clients),
		Name:   name,
		Unit:   perSecond,
		Target: t,
		Run:    runSaveEvent(clients, group),
	}
}

// runRatioOf is an information row: the store's figure of row id over
// that of row other, run by run (both measured earlier on the engine).
func runRatioOf(id, other string) func(context.Context, *engineEnv) (*figures, error) {
	return func(_ context.Context, e *engineEnv) (*figures, error) {
		a, b := e.results[id], e.results[other]
		if a == nil || b == nil {
			return nil, fmt.Errorf("rows %s and %s must run first (-rows)", id, other)
		}
		f := &figures{}
		for i := range min(len(a.Store), len(b.Store)) {
			if b.Store[i] > 0 {
				f.Store = append(f.Store, a.Store[i]/b.Store[i])
			}
		}
		return f, nil
	}
}

// storeOverLimitAtLeast holds when the median of the paired ratios (store
// over limit, run by run) is at least x.
func storeOverLimitAtLeast(x float64) func(*figures, *engineEnv) (bool, bool) {
	return func(f *figures, _ *engineEnv) (bool, bool) {
		r, ok := f.ratio()
		return r >= x, ok
	}
}

// storeAtMost holds when the store's median is at most v.
func storeAtMost(v float64) func(*figures, *engineEnv) (bool, bool) {
	return func(f *figures, _ *engineEnv) (bool, bool) { return median(f.Store) <= v, true }
}
