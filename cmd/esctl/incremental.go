package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/urfave/cli/v3"

	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/transfer"
)

func incrementalImportCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "incremental-import",
		Usage: "merge NDJSON events into a live store: new versions and positions, duplicates dropped, all or nothing",
		Description: "Reads event lines (the export format; aggregateVersion may be absent, and versions and\n" +
			"positions in the file are ignored) and merges them into the store in one transaction:\n" +
			"each event gets its aggregate's next version and the next position, ordered by\n" +
			"timestamp; events identical to a stored one (aggregate, type, timestamp, payload) or to\n" +
			"an earlier line are dropped. Events older than the store's newest fail the import\n" +
			"(--older fail, the default, writes nothing) or are dropped (--older skip). A bad line\n" +
			"fails it with its line number and byte offset (exit 3). Freeze blocks the commit.\n\n" +
			"Examples:\n  esctl incremental-import --in late-events.ndjson\n  esctl incremental-import --in late.ndjson --older skip",
		Flags: []cli.Flag{
			inFlag(),
			&cli.StringFlag{
				Name:  "older",
				Value: "fail",
				Usage: "events older than the store's newest: fail (write nothing) or skip (drop them)",
				Validator: func(s string) error {
					if s != "fail" && s != "skip" {
						return fmt.Errorf("--older must be fail or skip, not %q", s)
					}
					return nil
				},
			},
			dryRunFlag(),
		},
		Action: e.storeAction(func(ctx context.Context, cmd *cli.Command, s *eventstore.Store) error {
			in, size, err := e.openInput(cmd, cmd.String("in"))
			if err != nil {
				return err
			}
			defer in.Close()
			older := transfer.OlderFail
			if cmd.String("older") == "skip" {
				older = transfer.OlderSkip
			}
			p := e.newProgress(cmd, "staged", "bytes", size)
			dry := cmd.Bool("dry-run")
			res, err := transfer.IncrementalImportFrom(ctx, s, in, &transfer.IncrementalImportOptions{
				Older:  older,
				DryRun: dry,
				ProgressFunc: func(ip transfer.IncrementalProgress) {
					p.update(ip.ByteOffset, ip.ByteOffset, (plural(ip.Lines, "line")))
				},
			})
			p.stop()
			switch {
			case dry && err != nil:
				return withHint(err, "dry run: nothing was written")
			case dry:
				return e.printDryRun(cmd, (&summary{Command: "incremental-import"}).
					add("appended", res.Appended, "").add("duplicates", res.Duplicates, "").add("skipped", res.Skipped, "").
					add("firstPosition", res.FirstPosition, "").add("lastPosition", res.LastPosition, ""),
					fmt.Sprintf("every line checked: would append %s (positions %s to %s), drop %s and skip %s; nothing written",
						plural(res.Appended, "event"), commas(res.FirstPosition), commas(res.LastPosition), plural(res.Duplicates, "duplicate"), plural(res.Skipped, "older event")))
			case errors.Is(err, transfer.ErrOlderEvents):
				return withHint(err, "nothing was written: run again with --older skip to drop the older events")
			case err != nil:
				return withHint(err, "nothing was written: fix the input and run the import again")
			}
			return e.printSummary(cmd, (&summary{Command: "incremental-import"}).
				add("appended", res.Appended, fmt.Sprintf("%s appended", plural(res.Appended, "event"))).
				add("duplicates", res.Duplicates, fmt.Sprintf("%s dropped", plural(res.Duplicates, "duplicate"))).
				add("skipped", res.Skipped, fmt.Sprintf("%s skipped", plural(res.Skipped, "older event"))).
				add("firstPosition", res.FirstPosition, "").
				add("lastPosition", res.LastPosition, ""), false)
		}),
	}
}
