package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/esctl/esctl/transfer"
)

// Peak resident memory is measured by running the work in a child process
// (this binary re-executed with the hidden childCommand), so that the peak
// is the work's own and not hidden by the harness's heap.
//
// The child reports its own peak (VmHWM of /proc/self/status: the high-water
// mark of the address space it got at exec). The kernel's ru_maxrss, read by
// the parent from the exited child's rusage, is only the fallback where
// /proc is missing: on Linux, exec folds the RSS high-water mark of the
// address space it replaces into ru_maxrss, and Go starts children with
// CLONE_VM|CLONE_VFORK, so the child's ru_maxrss is at least the parent's
// RSS at spawn time (here, the harness's).
//
// To measure a new piece of work: add a childTask to childTasks, then call
// runChild from a benchmark's Run function (see runScanRSS).

// childCommand is the hidden first argument that makes this binary (or the
// test binary, through TestMain) run one child task instead of the harness.
const childCommand = "__bench-child"

// childArgs are the inputs of a child task, passed as JSON.
type childArgs struct {
	Engine string `json:"engine"`
	URL    string `json:"url"`
	File   string `json:"file,omitempty"`  // the corpus as NDJSON, for import-store
	Corpus corpus `json:"corpus,omitzero"` // the corpus, for import-raw
	// For append-writer and freeze-toggler: how long, how many
	// goroutines, and the writer's number (its aggregates' prefix).
	Seconds    int `json:"seconds,omitempty"`
	Goroutines int `json:"goroutines,omitempty"`
	Seq        int `json:"seq,omitempty"`
	// For follow-writer: events per second, and how many.
	Rate   int `json:"rate,omitempty"`
	Events int `json:"events,omitempty"`
}

// childResult is what a child task reports on stdout, as JSON.
type childResult struct {
	Events int   `json:"events"`
	Bytes  int64 `json:"bytes,omitempty"` // written by export-store
	// P99Ms and MaxMs: an append-writer's append latency.
	P99Ms float64 `json:"p99Ms,omitempty"`
	MaxMs float64 `json:"maxMs,omitempty"`
	// Seconds is how long the task took (set by childMain).
	Seconds float64 `json:"seconds,omitempty"`
	// AppendMs: a follow-writer's append latencies, one per event.
	AppendMs []float64 `json:"appendMs,omitempty"`
	// PeakRSSBytes is the child's own peak RSS (VmHWM), set by childMain;
	// 0 when the system does not report it.
	PeakRSSBytes int64 `json:"peakRSSBytes,omitempty"`
}

// childTask is work to run in a child process.
type childTask func(ctx context.Context, a childArgs) (childResult, error)

// childTasks are the tasks a child can run, by name.
var childTasks = map[string]childTask{
	"scan-store":   childScanStore,
	"scan-raw":     childScanRaw,
	"import-store": childImportStore,
	"import-raw":   childImportRaw,
	"export-store": childExportStore,
	"export-raw":   childExportRaw,
	// processes.go
	"append-writer":  childAppendWriter,
	"freeze-toggler": childFreezeToggler,
	// follow.go
	"follow-writer": childFollowWriter,
	// scale.go
	"scale-import": childScaleImport,
	"consume-all":  childConsumeAll,
}

// childRun is the outcome of a child: its result and its peak RSS.
type childRun struct {
	Result    childResult
	PeakBytes int64
}

// runChild runs task in a child process and returns its result and peak
// resident set size.
func runChild(ctx context.Context, task string, a childArgs) (*childRun, error) {
	if _, ok := childTasks[task]; !ok {
		return nil, fmt.Errorf("unknown child task %q", task)
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	in, err := json.Marshal(a)
	if err != nil {
		return nil, err
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, exe, childCommand, task, string(in))
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("child %s: %w: %s", task, err, strings.TrimSpace(stderr.String()))
	}
	out := &childRun{}
	if err := json.Unmarshal(stdout.Bytes(), &out.Result); err != nil {
		return nil, fmt.Errorf("child %s: bad result %q: %w", task, stdout.String(), err)
	}
	out.PeakBytes = out.Result.PeakRSSBytes
	if out.PeakBytes == 0 {
		peak, ok := maxRSS(cmd.ProcessState)
		if !ok {
			return nil, errors.New("peak RSS of a child process is not available on this system")
		}
		out.PeakBytes = peak
	}
	return out, nil
}

// childMain is the entry point of a child process: args are the task name
// and its JSON arguments. It returns the exit code.
func childMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) != 2 {
		fmt.Fprintf(stderr, "usage: %s TASK JSON\n", childCommand)
		return 2
	}
	task, ok := childTasks[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "unknown child task %q\n", args[0])
		return 2
	}
	var a childArgs
	if err := json.Unmarshal([]byte(args[1]), &a); err != nil {
		fmt.Fprintf(stderr, "child arguments: %v\n", err)
		return 2
	}
	start := time.Now()
	res, err := task(ctx, a)
	res.Seconds = time.Since(start).Seconds()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	res.PeakRSSBytes = selfPeakRSS()
	if err := json.NewEncoder(stdout).Encode(res); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

// selfPeakRSS returns this process's peak RSS since exec (VmHWM), or 0
// where /proc/self/status does not say.
func selfPeakRSS() int64 {
	f := strings.Fields(readProc("/proc/self/status", "VmHWM:"))
	if len(f) < 3 || f[2] != "kB" {
		return 0
	}
	kib, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0
	}
	return kib * 1024
}

func childScanStore(ctx context.Context, a childArgs) (res childResult, err error) {
	s, err := openStore(ctx, a.URL)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, s.Close()) }()
	res.Events, err = scanStore(ctx, s, nil, pageSize)
	return res, err
}

func childScanRaw(ctx context.Context, a childArgs) (res childResult, err error) {
	r, err := openRawReader(ctx, a.Engine, a.URL)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, r.Close()) }()
	res.Events, err = scanRaw(ctx, r, "", pageSize)
	return res, err
}

// runScanRSS measures the peak RSS of a process paging through the whole
// read store with LoadEvents, next to one doing the raw keyset scan.
func runScanRSS(ctx context.Context, e *engineEnv) (*figures, error) {
	if _, _, err := e.reader(ctx); err != nil {
		return nil, err
	}
	a := childArgs{Engine: e.name, URL: e.readURL}
	child := func(task string) pairFunc {
		return func(ctx context.Context, _ int) (float64, error) {
			r, err := runChild(ctx, task, a)
			if err != nil {
				return 0, err
			}
			if r.Result.Events != e.cfg.Events {
				return 0, fmt.Errorf("child %s read %d events, want %d", task, r.Result.Events, e.cfg.Events)
			}
			return mebibytesOf(r.PeakBytes), nil
		}
	}
	return e.measurePair(ctx, "scan-rss", mebibytes, child("scan-store"), child("scan-raw"))
}

// childImportStore imports the NDJSON file into the empty store at a.URL
// with ImportEvents, reading it as a stream.
func childImportStore(ctx context.Context, a childArgs) (childResult, error) {
	_, err := importFile(ctx, a.URL, a.File, a.Corpus.Events)
	return childResult{Events: a.Corpus.Events}, err
}

// childImportRaw writes the corpus into the empty store at a.URL the raw
// way, streaming it from the generator (nothing held in memory).
func childImportRaw(ctx context.Context, a childArgs) (childResult, error) {
	err := loadRaw(ctx, a.Engine, a.URL, a.Corpus.All(), a.Corpus.Events)
	return childResult{Events: a.Corpus.Events}, err
}

// childExportStore exports the whole store at a.URL with ExportEvents into
// a counting writer.
func childExportStore(ctx context.Context, a childArgs) (res childResult, err error) {
	s, err := openStore(ctx, a.URL)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, s.Close()) }()
	var w countingWriter
	out, err := transfer.ExportEvents(ctx, s, &w, nil)
	if err != nil {
		return res, err
	}
	if !out.End {
		return res, errors.New("the export did not reach the end of the store")
	}
	return childResult{Events: int(out.Events), Bytes: w.n}, nil
}

// childExportRaw dumps the whole table at a.URL the engine's fastest way
// (rawReader.dump).
func childExportRaw(ctx context.Context, a childArgs) (res childResult, err error) {
	r, err := openRawReader(ctx, a.Engine, a.URL)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, r.Close()) }()
	var w countingWriter
	res.Events, err = r.dump(ctx, &w)
	return res, err
}

// mebibytesOf converts a peak in bytes for the table.
func mebibytesOf(b int64) float64 { return float64(b) / (1 << 20) }

// runImportRSS measures the peak RSS of a process importing the corpus's
// NDJSON file into an empty store with ImportEvents, next to one writing
// the corpus the raw way (as the import limit does, streaming the rows from
// the generator). Each run of either side gets a fresh database.
func runImportRSS(ctx context.Context, e *engineEnv) (*figures, error) {
	src, err := e.corpusNDJSON(ctx)
	if err != nil {
		return nil, err
	}
	c := e.cfg.corpus()
	child := func(task, label string) pairFunc {
		return func(ctx context.Context, _ int) (float64, error) {
			var peak int64
			err := e.withFreshStore(ctx, label, func(url string) error {
				r, err := runChild(ctx, task, childArgs{Engine: e.name, URL: url, File: src.path, Corpus: c})
				if err != nil {
					return err
				}
				peak = r.PeakBytes
				return nil
			})
			return mebibytesOf(peak), err
		}
	}
	return e.measurePair(ctx, "import-rss", mebibytes, child("import-store", "import_rss"), child("import-raw", "import_rss_limit"))
}

// runExportRSS measures the peak RSS of a process exporting the whole read
// store with ExportEvents, next to one running the export's limit (COPY TO
// on PostgreSQL, the full scan on SQLite).
func runExportRSS(ctx context.Context, e *engineEnv) (*figures, error) {
	if _, _, err := e.reader(ctx); err != nil {
		return nil, err
	}
	a := childArgs{Engine: e.name, URL: e.readURL}
	child := func(task string) pairFunc {
		return func(ctx context.Context, _ int) (float64, error) {
			r, err := runChild(ctx, task, a)
			if err != nil {
				return 0, err
			}
			if r.Result.Events != e.cfg.Events {
				return 0, fmt.Errorf("child %s read %d events, want %d", task, r.Result.Events, e.cfg.Events)
			}
			if src := e.shared.ndjson; src != nil && task == "export-store" && r.Result.Bytes != src.size {
				return 0, fmt.Errorf("child %s wrote %d bytes, want %d", task, r.Result.Bytes, src.size)
			}
			return mebibytesOf(r.PeakBytes), nil
		}
	}
	return e.measurePair(ctx, "export-rss", mebibytes, child("export-store"), child("export-raw"))
}
