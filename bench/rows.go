package main

import "fmt"

// apiPending marks the rows whose store API is still being written. They are
// printed as "not measured (API pending)"; see docs/benchmarks.md.
const apiPending = "API pending"

// benchmarks is the table, in order: one entry per row, each measured on
// every engine. To add a row, write its Run function and register it here
// (and describe it in docs/benchmarks.md).
var benchmarks = []benchmark{
	saveEventRow(1, &target{Desc: ">= 0.8x limit", Check: storeOverLimitAtLeast(0.8)}),
	saveEventRow(8, nil),
	saveEventRow(64, &target{Desc: ">= 5x save-1", Check: storeOverOtherAtLeast("save-1", 5)}),
	{ID: "scan", Name: "LoadEvents all, pages of 1,000 (events/s)", Unit: perSecond, Run: runScan},
	{ID: "aggregate-p50", Name: "LoadEvents one aggregate, p50 (ms)", Unit: millis, Run: runAggregateP50},
	{ID: "aggregate-p99", Name: "LoadEvents one aggregate, p99 (ms)", Unit: millis, Run: runAggregateP99,
		Target: &target{Desc: "<= 5 ms", Check: storeAtMost(5)}},
	{ID: "type", Name: "LoadEvents one event type, pages of 1,000 (events/s)", Unit: perSecond, Run: runTypeScan},
	{ID: "scan-rss", Name: "peak RSS, LoadEvents all (MiB)", Unit: mebibytes, Run: runScanRSS},

	// Extension points: the import and export APIs are being written.
	// Each becomes a Run function like the ones above; the peak-RSS rows
	// use runChild (rss.go), as scan-rss does.
	{ID: "import", Name: "import into an empty store (events/s)", Unit: perSecond, Pending: apiPending},
	{ID: "export", Name: "export to NDJSON (events/s)", Unit: perSecond, Pending: apiPending},
	{ID: "import-incremental", Name: "incremental import of 100,000 into the full store (s)", Unit: seconds, Pending: apiPending},
	{ID: "import-rss", Name: "peak RSS, import (MiB)", Unit: mebibytes, Pending: apiPending},
	{ID: "export-rss", Name: "peak RSS, export (MiB)", Unit: mebibytes, Pending: apiPending},
}

func saveEventRow(clients int, t *target) benchmark {
	plural := "s"
	if clients == 1 {
		plural = ""
	}
	return benchmark{
		ID:     fmt.Sprintf("save-%d", clients),
		Name:   fmt.Sprintf("SaveEvent, %d goroutine%s (events/s)", clients, plural),
		Unit:   perSecond,
		Target: t,
		Run:    runSaveEvent(clients),
	}
}

// storeOverLimitAtLeast holds when the store's median is at least x times
// the limit's.
func storeOverLimitAtLeast(x float64) func(*figures, *engineEnv) (bool, bool) {
	return func(f *figures, _ *engineEnv) (bool, bool) {
		return median(f.Store) >= x*median(f.Limit), true
	}
}

// storeOverOtherAtLeast holds when the store's median is at least x times
// the store's median of row id on the same engine.
func storeOverOtherAtLeast(id string, x float64) func(*figures, *engineEnv) (bool, bool) {
	return func(f *figures, e *engineEnv) (bool, bool) {
		other, ok := e.results[id]
		if !ok {
			return false, false
		}
		return median(f.Store) >= x*median(other.Store), true
	}
}

// storeAtMost holds when the store's median is at most v.
func storeAtMost(v float64) func(*figures, *engineEnv) (bool, bool) {
	return func(f *figures, _ *engineEnv) (bool, bool) { return median(f.Store) <= v, true }
}
