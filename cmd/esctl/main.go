// Command esctl moves, backs up and inspects esctl event stores: see
// docs/cli.md, or run esctl --help.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go interrupts(sigs, cancel, os.Stderr, os.Exit)
	code := run(ctx, os.Args, os.Stdin, os.Stdout, os.Stderr)
	signal.Stop(sigs)
	cancel()
	os.Exit(code)
}

// interrupts handles Ctrl-C (SIGINT) and SIGTERM: the first cancels the
// command, which stops at a batch boundary (an import commits the lines it
// has read; a write the cancel reaches in flight rolls back whole), prints
// where to resume and exits 130; the second exits 130 at once.
func interrupts(sigs <-chan os.Signal, cancel context.CancelFunc, stderr io.Writer, exit func(int)) {
	<-sigs
	// Cancel first: whoever reads the message may rely on the work being
	// told to stop (a test closes the input once it sees it).
	cancel()
	fmt.Fprintln(stderr, "esctl: interrupted: stopping; a batch is committed whole or not at all, and the resume point follows (interrupt again to stop at once)")
	<-sigs
	fmt.Fprintln(stderr, "esctl: interrupted again: stopping at once (committed batches stay; resume as usual)")
	exit(exitInterrupted)
}
