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
	"time"
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
// one line, what is done and the command that continues, and exits 130;
// the second exits 130 at once. A command that takes longer than
// stoppingAfter to stop says that it is stopping, so that the operator
// knows the interrupt was heard.
func interrupts(sigs <-chan os.Signal, cancel context.CancelFunc, stderr io.Writer, exit func(int)) {
	<-sigs
	cancel()
	select {
	case <-sigs:
	case <-time.After(stoppingAfter):
		fmt.Fprintln(stderr, "esctl: stopping after the batch in flight (interrupt again to stop at once)")
		<-sigs
	}
	fmt.Fprintln(stderr, "esctl: interrupted again: stopping at once (committed batches stay; resume as usual)")
	exit(exitInterrupted)
}

// stoppingAfter is how long an interrupted command may take to stop before
// esctl says it is stopping.
const stoppingAfter = time.Second
