// Command bench is esctl's benchmark harness (make bench). It sets up its own
// databases, measures the store next to the limit of the same work written
// directly in SQL on the same machine in the same run, and prints one table.
// See docs/benchmarks.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	var code int
	if len(os.Args) > 1 && os.Args[1] == childCommand {
		code = childMain(ctx, os.Args[2:], os.Stdout, os.Stderr)
	} else {
		code = cli(ctx, os.Args[1:], os.Stdout, os.Stderr)
	}
	stop()
	os.Exit(code)
}

// Exit codes.
const (
	exitOK          = 0
	exitFailure     = 1
	exitUsage       = 2
	exitInterrupted = 130
)

// cli runs the harness with command-line arguments and returns the exit
// code. The table goes to stdout; progress and errors go to stderr.
func cli(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseConfig(args, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case err != nil:
		fmt.Fprintln(stderr, "bench:", err)
		return exitUsage
	}
	err = profiled(cfg.CPUProfile, func() error {
		if cfg.Scale {
			return runScale(ctx, cfg, stdout, stderr)
		}
		return run(ctx, cfg, stdout, stderr)
	})
	switch {
	case ctx.Err() != nil:
		fmt.Fprintln(stderr, "bench: interrupted; databases removed and cluster stopped")
		return exitInterrupted
	case err != nil:
		fmt.Fprintln(stderr, "bench:", err)
		return exitFailure
	}
	return exitOK
}

// profiled runs fn, writing a CPU profile to path unless path is empty.
func profiled(path string, fn func() error) (err error) {
	if path == "" {
		return fn()
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, f.Close()) }()
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	defer pprof.StopCPUProfile()
	return fn()
}
