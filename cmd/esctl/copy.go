package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/urfave/cli/v3"

	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/transfer"
)

func copyCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "copy",
		Usage: "copy events and secrets from one store to another, streaming and resumable",
		Description: "Streams every event (positions kept) and every secret (idx and tombstones kept) of the\n" +
			"--from store into the --to store, which is created if needed and must be empty or hold\n" +
			"an earlier copy of the same source. The target's own state says where a copy stopped:\n" +
			"re-running the same command after an interruption continues after the last committed\n" +
			"batch and never duplicates anything; re-running it later copies what was added since.\n" +
			"Before continuing, esctl checks that the target's last event and secret are the\n" +
			"source's. Snapshots are not copied (they are a cache). For a final, consistent move,\n" +
			"freeze the source first (esctl --db FROM freeze).\n\n" +
			"Examples:\n  esctl copy --from sqlite://./app.db --to 'postgres://app@db/app?schema=events'\n" +
			"  esctl copy --from \"$OLD_PG\" --to \"$NEW_PG\"   # again after a crash: it resumes",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "from", Required: true, Usage: "source database URL"},
			&cli.StringFlag{Name: "to", Required: true, Usage: "target database URL (created if needed)"},
			dryRunFlag(),
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			from, to := cmd.String("from"), cmd.String("to")
			if from == to {
				return usagef("--from and --to name the same store")
			}
			src, err := e.openURL(ctx, from, false)
			if err != nil {
				return err
			}
			defer src.Close()
			dry := cmd.Bool("dry-run")
			if dry {
				if done, err := e.copyDryRunToNothing(ctx, cmd, src, to); done || err != nil {
					return err
				}
			}
			dst, err := e.openURL(ctx, to, !dry)
			if err != nil {
				return err
			}
			defer dst.Close()
			if !dry {
				if err := dst.Init(ctx); err != nil {
					return err
				}
			}
			var p *progress
			res, err := transfer.Copy(ctx, src, dst, &transfer.CopyOptions{
				SourceName: eventstore.RedactURL(from),
				DryRun:     dry,
				ProgressFunc: func(cp transfer.CopyProgress) {
					if p == nil {
						p = e.newProgress(cmd, "copied", "events", cp.Total)
					}
					p.update(cp.Events, cp.Bytes, "")
				},
			})
			if p != nil {
				p.stop()
			}
			if errors.Is(err, transfer.ErrCopyMismatch) {
				return &storeStateError{err}
			}
			if err != nil {
				at := int64(0)
				if res != nil {
					at = res.LastPosition
				}
				return withHint(err, fmt.Sprintf("the target holds the source's events up to position %s; continue with: %s", commas(at), e.rerun(cmd, nil)))
			}
			if dry {
				return e.printDryRun(cmd, (&summary{Command: "copy"}).add("events", res.Events, "").add("secrets", res.Secrets, ""),
					fmt.Sprintf("the target is empty or an earlier copy; every event and secret checked: would copy %s (to position %s) and %s; nothing written",
						plural(res.Events, "event"), commas(res.LastPosition), plural(res.Secrets, "secret")))
			}
			return e.printSummary(cmd, (&summary{Command: "copy"}).
				add("events", res.Events, fmt.Sprintf("%s copied", plural(res.Events, "event"))).
				add("lastPosition", res.LastPosition, fmt.Sprintf("target at position %s", commas(res.LastPosition))).
				add("secrets", res.Secrets, fmt.Sprintf("%s copied", plural(res.Secrets, "secret"))), false)
		},
	}
}

// copyDryRunToNothing answers copy --dry-run when the target does not exist
// yet or holds no store: the whole source would be copied. It reports
// whether it answered.
func (e *env) copyDryRunToNothing(ctx context.Context, cmd *cli.Command, src *eventstore.Store, to string) (bool, error) {
	path, missing, err := missingFile(to)
	if err != nil {
		return true, err
	}
	where := path
	if !missing {
		dst, err := e.openURL(ctx, to, false)
		if err != nil {
			return true, err
		}
		defer dst.Close()
		st, err := dst.Migrate(ctx, &eventstore.MigrateOptions{Op: eventstore.MigrateStatus})
		if err != nil {
			return true, err
		}
		if st.Version != 0 || st.Dirty {
			return false, nil
		}
		where = eventstore.RedactURL(to)
	}
	sd, err := src.Describe(ctx, nil)
	if err != nil {
		return true, fmt.Errorf("source: %w", err)
	}
	return true, e.printDryRun(cmd, (&summary{Command: "copy"}).add("events", sd.EventCount, "").add("secrets", sd.SecretCount, ""),
		fmt.Sprintf("would create the store in %s and copy all %s (to position %s) and %s; nothing written",
			where, plural(sd.EventCount, "event"), commas(sd.LastPosition), plural(sd.SecretCount, "secret")))
}
