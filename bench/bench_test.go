package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/esctl/esctl/internal/testdb"
)

// TestMain lets the test binary serve as the child process of the peak-RSS
// rows: runChild re-executes os.Executable(), which here is this binary.
func TestMain(m *testing.M) {
	childTasks["idle"] = func(context.Context, childArgs) (childResult, error) { return childResult{}, nil }
	if len(os.Args) > 1 && os.Args[1] == childCommand {
		os.Exit(childMain(context.Background(), os.Args[2:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// tinyArgs is a configuration small enough for CI: it keeps the harness
// working without measuring anything meaningful.
var tinyArgs = []string{"-events", "3000", "-aggregates", "100", "-runs", "1", "-duration", "2s", "-lookups", "50"}

// TestHarness runs the whole harness in a tiny configuration on each engine
// and checks that it completes and prints every row. It asserts no timing:
// performance is read from `make bench`, never asserted in tests.
func TestHarness(t *testing.T) {
	for _, engine := range allEngines {
		t.Run(engine, func(t *testing.T) {
			if engine == "postgres" {
				requirePostgresBinaries(t)
			}
			var stdout, stderr bytes.Buffer
			code := cli(t.Context(), append([]string{"-engines", engine}, tinyArgs...), &stdout, &stderr)
			require.Equal(t, exitOK, code, "stderr:\n%s", stderr.String())
			requireEveryRow(t, stdout.String(), engine)
		})
	}
}

// requirePostgresBinaries skips the test when the PostgreSQL server
// binaries cannot be run, or fails it under ESCTL_REQUIRE_POSTGRES=1.
func requirePostgresBinaries(t *testing.T) {
	t.Helper()
	_, err := testdb.BinDir()
	if err == nil {
		_, _, err = testdb.AsPostgresUser()
	}
	if err == nil {
		return
	}
	msg := "\n*** PostgreSQL binaries UNAVAILABLE, benchmark harness test skipped: " + err.Error()
	if os.Getenv(testdb.EnvRequire) == "1" {
		t.Fatalf("%s\n*** %s=1: failing instead of skipping.", msg, testdb.EnvRequire)
	}
	t.Skip(msg)
}

// requireEveryRow checks that the table has one line per benchmark for the
// engine, each with a figure for the store and one for its limit, and a
// verdict where the row has a target.
func requireEveryRow(t *testing.T, out, engine string) {
	t.Helper()
	rows := map[string][]string{}
	for _, line := range strings.Split(out, "\n") {
		cells := strings.Split(line, "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if len(cells) == len(tableHeader) && cells[0] == engine {
			rows[cells[1]] = cells
		}
	}
	for _, b := range benchmarks {
		cells, ok := rows[b.Name]
		require.True(t, ok, "no row %q for %s in:\n%s", b.Name, engine, out)
		if b.Only != "" && b.Only != engine {
			require.Equal(t, b.OnlyWhy, cells[2], "row %q", b.Name)
			continue
		}
		require.NotContains(t, cells[2], "error", "row %q", b.Name)
		require.Regexp(t, `^[0-9]`, cells[2], "row %q has no figure", b.Name)
		if b.Unit != times { // an information row: a ratio of two rows
			require.Regexp(t, `^[0-9]`, cells[3], "row %q has no limit", b.Name)
			require.Regexp(t, `^[0-9.]+x`, cells[4], "row %q has no paired ratio", b.Name)
		}
		if b.targetFor(engine) != nil {
			require.Contains(t, []string{"yes", "NO"}, cells[6], "row %q has no verdict", b.Name)
		}
	}
}

// TestChildPeakRSS checks that a child's peak RSS is its own. It fails with
// ru_maxrss from the child's rusage, which on Linux includes the parent's
// RSS at spawn time (see rss.go): checked once against that variant.
func TestChildPeakRSS(t *testing.T) {
	if selfPeakRSS() == 0 {
		t.Skip("no VmHWM in /proc/self/status on this system")
	}
	const ballastMiB = 256
	ballast := make([]byte, ballastMiB<<20)
	for i := 0; i < len(ballast); i += 4096 {
		ballast[i] = 1 // make it resident
	}
	r, err := runChild(t.Context(), "idle", childArgs{})
	require.NoError(t, err)
	require.Less(t, r.PeakBytes, int64(ballastMiB/2)<<20, "the child's peak includes the parent's %d MiB", ballastMiB)
	require.Positive(t, r.PeakBytes)
	runtime.KeepAlive(ballast)
}

// TestCorpus checks the corpus's promises: positions 1..n, contiguous
// versions from 1 per aggregate, the announced aggregate sizes, compact
// JSON payloads, and the same events for the same seed.
func TestCorpus(t *testing.T) {
	c := corpus{Events: 1_003, Aggregates: 10, Seed: 7}
	versions := map[string]int64{}
	var first []byte
	pos := int64(0)
	for e := range c.All() {
		pos++
		require.Equal(t, pos, e.Position)
		versions[e.AggregateID]++
		require.Equal(t, versions[e.AggregateID], e.AggregateVersion, "event %d", pos)
		require.Contains(t, corpusTypes, e.Type)
		var compact bytes.Buffer
		require.NoError(t, json.Compact(&compact, e.Payload), "event %d: %s", pos, e.Payload)
		require.Equal(t, string(e.Payload), compact.String())
		if pos == 1 {
			first = e.Payload
		}
	}
	require.Equal(t, int64(c.Events), pos)
	for k := range c.Aggregates {
		require.Equal(t, int64(c.aggregateSize(k)), versions[aggregateID(k)], "aggregate %d", k)
	}
	for e := range c.All() {
		require.Equal(t, first, []byte(e.Payload), "the same seed gives the same corpus")
		break
	}
}

func TestStatistics(t *testing.T) {
	require.Equal(t, 2.0, median([]float64{3, 1, 2}))
	require.Equal(t, 2.5, median([]float64{4, 1, 2, 3}))
	v := make([]float64, 100)
	for i := range v {
		v[i] = float64(100 - i)
	}
	require.Equal(t, 50.0, percentile(v, 50))
	require.Equal(t, 99.0, percentile(v, 99))
	require.Equal(t, 1.0, percentile([]float64{1}, 99))
	require.Equal(t, "1,234,567", groupThousands(1_234_567))
	require.Equal(t, "999", groupThousands(999))
}

func TestParseConfig(t *testing.T) {
	var stderr bytes.Buffer
	c, err := parseConfig([]string{"-quick", "-runs", "2"}, &stderr)
	require.NoError(t, err)
	require.Equal(t, quickEvents, c.Events, "-quick lowers what was not given")
	require.Equal(t, 2, c.Runs, "an explicit flag wins over -quick")
	for _, args := range [][]string{
		{"-duration", "1500ms"},
		{"-engines", "mysql"},
		{"-aggregates", "0"},
		{"-rows", "("},
		{"extra"},
	} {
		_, err := parseConfig(args, &stderr)
		require.Error(t, err, "%v", args)
	}
}

// TestPairedRatio: a target is decided on the median of the runs' paired
// ratios, not on the ratio of the medians (here 1.0 against 0.67).
func TestPairedRatio(t *testing.T) {
	f := &figures{Store: []float64{10, 20, 30}, Limit: []float64{10, 40, 30}}
	require.Equal(t, []float64{1, 0.5, 1}, f.ratios())
	r, ok := f.ratio()
	require.True(t, ok)
	require.Equal(t, 1.0, r)
	ok, known := storeOverLimitAtLeast(0.8)(f, nil)
	require.True(t, known)
	require.True(t, ok, "the ratio of the medians, 20/30, would fail")
	require.Equal(t, "1.00x [0.50x..1.00x]", spread(times, f.ratios()))
	_, known = storeOverLimitAtLeast(0.8)(&figures{Store: []float64{1}}, nil)
	require.False(t, known, "no limit, no paired ratio")
}

// TestScaleHarness runs bench-scale at two tiny sizes on each engine and
// checks that every figure of the table is there (no timing asserted).
func TestScaleHarness(t *testing.T) {
	for _, engine := range allEngines {
		t.Run(engine, func(t *testing.T) {
			if engine == "postgres" {
				requirePostgresBinaries(t)
			}
			var stdout, stderr bytes.Buffer
			code := cli(t.Context(), []string{"-scale", "-scale-sizes", "2000,4000", "-duration", "1s", "-engines", engine}, &stdout, &stderr)
			require.Equal(t, exitOK, code, "stderr:\n%s", stderr.String())
			out := stdout.String()
			require.NotContains(t, out, "error:")
			for _, m := range scaleMetrics {
				var line string
				for _, l := range strings.Split(out, "\n") {
					if strings.HasPrefix(l, engine) && strings.Contains(l, "| "+m.Name+" ") {
						line = l
					}
				}
				require.NotEmpty(t, line, "no line %q in:\n%s", m.Name, out)
				cells := strings.Split(line, "|")
				require.Regexp(t, `[0-9]`, cells[3], "no figure at the last size: %q", line)
			}
		})
	}
}
