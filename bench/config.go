package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// config holds the harness's knobs (see usage and docs/benchmarks.md).
type config struct {
	Events     int           // corpus size of the read store
	Aggregates int           // aggregates the corpus spreads over
	Seed       uint64        // corpus and sampling seed
	Runs       int           // runs per figure (median, min and max shown)
	Duration   time.Duration // length of one append run
	Lookups    int           // single-aggregate reads per latency run
	Engines    []string      // "sqlite", "postgres"
	Rows       *regexp.Regexp
	PGBench    string // "auto", "off", or a path to pgbench
	CPUProfile string // file to write a CPU profile of the harness to
	// Scale runs bench-scale (the cost curve) instead of the table, at
	// ScaleSizes events.
	Scale      bool
	ScaleSizes []int
}

// Defaults, and what -quick changes.
const (
	defaultEvents     = 1_000_000
	defaultAggregates = 10_000
	defaultRuns       = 3
	defaultDuration   = 5 * time.Second
	defaultLookups    = 2_000

	quickEvents   = 100_000
	quickRuns     = 1
	quickDuration = 2 * time.Second
	quickLookups  = 500
)

var allEngines = []string{"sqlite", "postgres"}

const usageHeader = `Usage: go run ./bench [flags]   (or: make bench BENCHARGS="flags")

Sets up its own databases (a SQLite file in a temporary directory and a
throwaway PostgreSQL cluster with default durability), runs each benchmark
next to the limit measured in the same run, and prints one table on stdout.
Progress goes to stderr. See docs/benchmarks.md.

Flags:
`

// parseConfig parses the command line. -quick sets smaller defaults that
// explicit flags still override.
func parseConfig(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageHeader)
		fs.PrintDefaults()
	}
	c := &config{}
	fs.IntVar(&c.Events, "events", defaultEvents, "events in the read store (the corpus size)")
	fs.IntVar(&c.Aggregates, "aggregates", defaultAggregates, "aggregates the corpus spreads its events over")
	fs.Uint64Var(&c.Seed, "seed", 1, "seed of the corpus and of the sampled aggregates")
	fs.IntVar(&c.Runs, "runs", defaultRuns, "runs per figure; the table shows their median, min and max")
	fs.DurationVar(&c.Duration, "duration", defaultDuration, "length of one append run (whole seconds, for pgbench)")
	fs.IntVar(&c.Lookups, "lookups", defaultLookups, "single-aggregate reads per latency run")
	engines := fs.String("engines", strings.Join(allEngines, ","), "engines to run, comma-separated: sqlite, postgres")
	rows := fs.String("rows", "", "run only the benchmarks whose id matches this regexp (ids are listed in docs/benchmarks.md)")
	fs.StringVar(&c.PGBench, "pgbench", "auto", `PostgreSQL append ceiling: "auto" (pgbench if found, else a Go loop), "off" (the Go loop), or the path of pgbench`)
	fs.StringVar(&c.CPUProfile, "cpuprofile", "", "write a CPU profile of the harness process (the store runs in it; PostgreSQL does not) to this file")
	fs.BoolVar(&c.Scale, "scale", false, "run the cost curve (make bench-scale) instead of the table: the store grown to each of -scale-sizes")
	sizes := fs.String("scale-sizes", "1000000,3000000,10000000", "store sizes of -scale, ascending, comma-separated, multiples of 100")
	quick := fs.Bool("quick", false, fmt.Sprintf("a quick run: -events %d -runs %d -duration %s -lookups %d unless given", quickEvents, quickRuns, quickDuration, quickLookups))
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *quick {
		c.applyQuick(fs)
	}
	var err error
	if c.Engines, err = parseEngines(*engines); err != nil {
		return nil, err
	}
	if c.ScaleSizes, err = parseSizes(*sizes); err != nil {
		return nil, err
	}
	if *rows != "" {
		if c.Rows, err = regexp.Compile(*rows); err != nil {
			return nil, fmt.Errorf("-rows: %w", err)
		}
	}
	return c, c.validate()
}

// applyQuick lowers the defaults of the flags the user did not set.
func (c *config) applyQuick(fs *flag.FlagSet) {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["events"] {
		c.Events = quickEvents
	}
	if !set["runs"] {
		c.Runs = quickRuns
	}
	if !set["duration"] {
		c.Duration = quickDuration
	}
	if !set["lookups"] {
		c.Lookups = quickLookups
	}
}

func parseEngines(s string) ([]string, error) {
	var out []string
	for _, e := range strings.Split(s, ",") {
		e = strings.TrimSpace(e)
		if !slices.Contains(allEngines, e) {
			return nil, fmt.Errorf("-engines: unknown engine %q (use %s)", e, strings.Join(allEngines, ", "))
		}
		if !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	return out, nil
}

func parseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < scaleAggregateEvents || n%scaleAggregateEvents != 0 || len(out) > 0 && n <= out[len(out)-1] {
			return nil, fmt.Errorf("-scale-sizes: %q: want ascending multiples of %d", f, scaleAggregateEvents)
		}
		out = append(out, n)
	}
	return out, nil
}

func (c *config) validate() error {
	switch {
	case c.Events < 1:
		return errors.New("-events must be at least 1")
	case c.Aggregates < 1 || c.Aggregates > c.Events:
		return fmt.Errorf("-aggregates must be between 1 and -events (%d)", c.Events)
	case c.Runs < 1:
		return errors.New("-runs must be at least 1")
	case c.Duration < time.Second || c.Duration%time.Second != 0:
		return errors.New("-duration must be a whole number of seconds, at least 1s (pgbench -T takes seconds)")
	case c.Lookups < 1:
		return errors.New("-lookups must be at least 1")
	}
	return nil
}

// wants reports whether the benchmark with this id is selected by -rows.
func (c *config) wants(id string) bool { return c.Rows == nil || c.Rows.MatchString(id) }

func (c *config) corpus() corpus {
	return corpus{Events: c.Events, Aggregates: c.Aggregates, Seed: c.Seed}
}
