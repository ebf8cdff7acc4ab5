package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"
)

// median returns the median of v (the mean of the middle two for an even
// count), or 0 for none.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

// format prints a value in a unit's style.
func format(u unit, v float64) string {
	switch u {
	case perSecond:
		return groupThousands(int64(v + 0.5))
	case percent:
		return strconv.FormatFloat(v, 'f', 1, 64) + "%"
	case times:
		return strconv.FormatFloat(v, 'f', 2, 64) + "x"
	case millis, seconds:
		switch {
		case v < 1:
			return strconv.FormatFloat(v, 'f', 3, 64)
		case v < 10:
			return strconv.FormatFloat(v, 'f', 2, 64)
		}
		return strconv.FormatFloat(v, 'f', 1, 64)
	default: // mebibytes
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
}

func groupThousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// machineInfo is the report's header.
type machineInfo struct {
	Date      time.Time
	CPU       string
	Cores     int
	RAM       string
	LoadStart string
	LoadEnd   string
	Versions  map[string]string // engine: version line
	Ceilings  map[string]string // engine: how the append ceiling is measured
	Payloads  string
	Imports   string // what the import rows import
}

func collectMachineInfo(ctx context.Context, h *harness) machineInfo {
	m := machineInfo{
		Date:      time.Now().UTC(),
		CPU:       cpuModel(),
		Cores:     runtime.NumCPU(),
		RAM:       totalRAM(),
		LoadStart: h.loadStart,
		LoadEnd:   loadAverage(),
		Versions:  map[string]string{},
		Ceilings:  map[string]string{},
		Payloads:  payloadStats(h.cfg.corpus()),
		Imports:   importStats(h),
	}
	for _, e := range h.envs {
		v, err := e.b.version(ctx)
		if err != nil {
			v = "unknown (" + err.Error() + ")"
		}
		switch e.name {
		case "sqlite":
			v += " (" + moduleVersion("modernc.org/sqlite") + "), the store's settings: WAL, synchronous=FULL"
		case "postgres":
			v += ", throwaway cluster: " + strings.Join(clusterConf, ", ")
		}
		m.Versions[e.name] = v
		m.Ceilings[e.name] = e.b.ceilingMethod()
	}
	return m
}

// readProc returns the first line of a /proc file starting with prefix.
func readProc(path, prefix string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), prefix) {
			return sc.Text()
		}
	}
	return ""
}

func cpuModel() string {
	if _, v, ok := strings.Cut(readProc("/proc/cpuinfo", "model name"), ":"); ok {
		return strings.TrimSpace(v)
	}
	return runtime.GOARCH + " (model unknown)"
}

func totalRAM() string {
	f := strings.Fields(readProc("/proc/meminfo", "MemTotal:"))
	if len(f) < 2 {
		return "unknown"
	}
	kib, err := strconv.ParseFloat(f[1], 64)
	if err != nil {
		return "unknown"
	}
	return strconv.FormatFloat(kib/(1<<20), 'f', 1, 64) + " GiB"
}

// loadAverage returns the 1-minute load average, which tells how busy the
// machine was while the figures were taken.
func loadAverage() string {
	if f := strings.Fields(readProc("/proc/loadavg", "")); len(f) > 0 {
		return f[0]
	}
	return "unknown"
}

func moduleVersion(path string) string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == path {
				return path + " " + d.Version
			}
		}
	}
	return path
}

// payloadStats describes the corpus's payload sizes from its first events.
func payloadStats(c corpus) string {
	n, sum, lo, hi := 0, 0, 0, 0
	for e := range c.All() {
		l := len(e.Payload)
		if n == 0 || l < lo {
			lo = l
		}
		hi = max(hi, l)
		sum += l
		if n++; n == 10_000 {
			break
		}
	}
	return fmt.Sprintf("%d to %d bytes, mean %d", lo, hi, sum/n)
}

// importStats describes the import rows' inputs.
func importStats(h *harness) string {
	c := h.cfg.corpus()
	ndjson := "the corpus as NDJSON (the store's export of its read store)"
	if f := h.shared.ndjson; f != nil {
		ndjson += ", " + groupThousands(f.size) + " bytes"
	}
	return fmt.Sprintf("%s; the incremental import commits %s events", ndjson, groupThousands(int64(incrementalSize(c))))
}

// printReport writes the header, the table and its legend.
func printReport(w io.Writer, cfg *config, m machineInfo, rows []row) {
	fmt.Fprintf(w, "esctl benchmarks, %s\n\n", m.Date.Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "machine     %s, %d cores, %s RAM, %s/%s\n", m.CPU, m.Cores, m.RAM, runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(w, "load        %s at start, %s at end (1-minute load average)\n", m.LoadStart, m.LoadEnd)
	fmt.Fprintf(w, "go          %s\n", runtime.Version())
	for _, name := range cfg.Engines {
		fmt.Fprintf(w, "%-11s %s\n", name, m.Versions[name])
	}
	fmt.Fprintf(w, "corpus      %s events over %s aggregates, %d types, payloads %s, seed %d\n",
		groupThousands(int64(cfg.Events)), groupThousands(int64(cfg.Aggregates)), len(corpusTypes), m.Payloads, cfg.Seed)
	fmt.Fprintf(w, "imports     %s\n", m.Imports)
	fmt.Fprintf(w, "runs        %d per figure, shown as median [min..max]; append runs last %s; store and limit run alternately, in pairs,\n", cfg.Runs, cfg.Duration)
	fmt.Fprintf(w, "            and a target is decided on the median of the pairs' ratios\n\n")
	printTable(w, rows)
	fmt.Fprintf(w, "\nlimits (measured in the same run, same machine, same client count or page size):\n")
	for _, name := range cfg.Engines {
		fmt.Fprintf(w, "  SaveEvent, %s: %s\n", name, m.Ceilings[name])
	}
	fmt.Fprintf(w, "  %s\n", groupCeilingMethod)
	fmt.Fprintf(w, "  LoadEvents: the same keyset query written by hand (pgx / database/sql, prepared), rows decoded into Go values\n")
	fmt.Fprintf(w, "  ImportEvents: the same rows, already in memory, into an empty store (same table, same indexes) in one transaction: COPY FROM (pgx CopyFrom) on postgres, prepared INSERTs on sqlite\n")
	fmt.Fprintf(w, "  ExportEvents: COPY (SELECT ... ORDER BY position) TO STDOUT on postgres; on sqlite one SELECT ... ORDER BY position, rows decoded into Go values\n")
	fmt.Fprintf(w, "  incremental import: the commit only (the push is not timed); limit: one transaction of INSERT ... SELECT of the same rows, with the positions and versions they get, from a plain staging table\n")
	fmt.Fprintf(w, "  peak RSS: each side runs in its own child process, which reports its VmHWM; the limits' children run the hand-written scan, the raw load (rows streamed from the generator) and the raw dump\n")
	fmt.Fprintf(w, "ratio = store / limit of each run's pair: for events/s higher is better, for ms and MiB lower is better.\n")
}

var tableHeader = []string{"engine", "benchmark", "store (median [min..max])", "limit (median [min..max])", "ratio (paired: median [min..max])", "target", "ok?"}

func printTable(w io.Writer, rows []row) {
	cells := [][]string{tableHeader}
	for _, r := range rows {
		cells = append(cells, r.cells())
	}
	widths := make([]int, len(tableHeader))
	for _, line := range cells {
		for i, c := range line {
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	for i, line := range cells {
		fmt.Fprintln(w, joinPadded(line, widths))
		if i == 0 {
			rule := make([]string, len(widths))
			for j, n := range widths {
				rule[j] = strings.Repeat("-", n)
			}
			fmt.Fprintln(w, strings.ReplaceAll(joinPadded(rule, widths), " | ", "-|-"))
		}
	}
}

func joinPadded(cells []string, widths []int) string {
	padded := make([]string, len(cells))
	for i, c := range cells {
		padded[i] = c + strings.Repeat(" ", widths[i]-len([]rune(c)))
	}
	return strings.TrimRight(strings.Join(padded, " | "), " ")
}

// cells renders a row for the table.
func (r row) cells() []string {
	out := []string{r.Engine, r.Bench.Name, r.Note, "", "", "", ""}
	if t := r.Bench.targetFor(r.Engine); t != nil {
		out[5] = t.Desc
	}
	f := r.Figures
	if f == nil {
		return out
	}
	u := r.Bench.Unit
	out[2] = spread(u, f.Store)
	if len(f.Limit) > 0 {
		out[3] = spread(u, f.Limit)
	}
	if rs := f.ratios(); len(rs) > 0 {
		out[4] = spread(times, rs)
	}
	out[6] = r.Verdict
	return out
}

// spread prints figures as median [min..max] (the median alone for one).
func spread(u unit, v []float64) string {
	s := format(u, median(v))
	if len(v) > 1 {
		s += fmt.Sprintf(" [%s..%s]", format(u, slices.Min(v)), format(u, slices.Max(v)))
	}
	return s
}
