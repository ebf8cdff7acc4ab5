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
}

// childResult is what a child task reports on stdout, as JSON.
type childResult struct {
	Events int `json:"events"`
	// PeakRSSBytes is the child's own peak RSS (VmHWM), set by childMain;
	// 0 when the system does not report it.
	PeakRSSBytes int64 `json:"peakRSSBytes,omitempty"`
}

// childTask is work to run in a child process.
type childTask func(ctx context.Context, a childArgs) (childResult, error)

// childTasks are the tasks a child can run, by name.
var childTasks = map[string]childTask{
	"scan-store": childScanStore,
	"scan-raw":   childScanRaw,
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
	res, err := task(ctx, a)
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
			return float64(r.PeakBytes) / (1 << 20), nil
		}
	}
	return e.measurePair(ctx, "scan-rss", mebibytes, child("scan-store"), child("scan-raw"))
}
