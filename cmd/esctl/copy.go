package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v3"

	"github.com/esctl/esctl/eventstore"
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
			ev, err := copyEvents(ctx, e, cmd, src, dst, from, dry)
			if err != nil {
				return err
			}
			secrets, err := copySecrets(ctx, src, dst, from, dry)
			if err != nil {
				return err
			}
			if dry {
				return e.printDryRun(cmd, (&summary{Command: "copy"}).add("events", ev.Events, "").add("secrets", secrets, ""),
					fmt.Sprintf("the target is empty or an earlier copy; every event and secret checked: would copy %s events (to position %s) and %s secrets; nothing written",
						commas(ev.Events), commas(ev.LastPosition), commas(secrets)))
			}
			// Checkpoints of interrupted runs: their batches are in the
			// target, which is the copy's record.
			list, err := dst.Imports(ctx)
			if err != nil {
				return err
			}
			for _, c := range list {
				if strings.HasPrefix(c.SourceID, "copy:"+eventstore.RedactURL(from)+"@") || strings.HasPrefix(c.SourceID, "copy-secrets:"+eventstore.RedactURL(from)+"@") {
					if err := dst.AbortImport(ctx, c.SourceID); err != nil {
						return err
					}
				}
			}
			return e.printSummary(cmd, (&summary{Command: "copy"}).
				add("events", ev.Events, fmt.Sprintf("%s events copied", commas(ev.Events))).
				add("lastPosition", ev.LastPosition, fmt.Sprintf("target at position %s", commas(ev.LastPosition))).
				add("secrets", secrets, fmt.Sprintf("%s secrets copied", commas(secrets))), false)
		},
	}
}

// copyEvents streams the source's events after the target's last position
// into the target (positions kept). The target's last position is where an
// earlier copy stopped; its event there must be the source's.
func copyEvents(ctx context.Context, e *env, cmd *cli.Command, src, dst *eventstore.Store, from string, dry bool) (*eventstore.ImportResult, error) {
	sd, err := src.Describe(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	dd, err := dst.Describe(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("target: %w", err)
	}
	start := dd.LastPosition
	if start > sd.LastPosition {
		return nil, &storeStateError{fmt.Errorf("%w: the target ends at position %d, after the source's last position %d: the target is not an earlier copy of this source", errCopyMismatch, start, sd.LastPosition)}
	}
	if start > 0 {
		if err := sameEventAt(ctx, src, dst, start); err != nil {
			return nil, err
		}
	}
	res := &eventstore.ImportResult{LastPosition: start}
	if start >= sd.LastPosition {
		return res, nil
	}
	p := e.newProgress(cmd, "copied", "events", sd.LastPosition-start)
	defer p.stop()
	pr, pw := io.Pipe()
	exported := make(chan error, 1)
	go func() {
		_, err := src.ExportEvents(ctx, pw, &eventstore.ExportOptions{Cursor: eventstore.CursorAt(start)})
		pw.CloseWithError(err)
		exported <- err
	}()
	// A source id per starting point: a re-run starts where the target's
	// last committed batch ended, as a new import.
	sourceID := fmt.Sprintf("copy:%s@%d", eventstore.RedactURL(from), start)
	res, err = dst.ImportEvents(ctx, pr, &eventstore.ImportOptions{
		SourceID: sourceID,
		DryRun:   dry,
		ProgressFunc: func(ip eventstore.ImportProgress) {
			p.update(ip.Events, ip.ByteOffset, "")
		},
	})
	pr.CloseWithError(errors.New("import stopped"))
	exportErr := <-exported
	if err == nil && exportErr != nil {
		err = fmt.Errorf("export from the source: %w", exportErr)
	}
	if err != nil {
		at := start
		if res != nil {
			at = max(at, res.LastPosition)
		}
		return nil, withHint(err, fmt.Sprintf("the target holds the source's events up to position %d; resume point: position %d: run the same esctl copy again to continue from there", at, at))
	}
	// The import is complete: forget its checkpoint, the target's events
	// are the copy's record (a dry run recorded none).
	if dry {
		return res, nil
	}
	if err := dst.AbortImport(ctx, sourceID); err != nil {
		return nil, err
	}
	return res, nil
}

// sameEventAt checks that source and target hold the same event at
// position pos.
func sameEventAt(ctx context.Context, src, dst *eventstore.Store, pos int64) error {
	get := func(s *eventstore.Store) (*eventstore.StoredEvent, error) {
		page, err := s.LoadEvents(ctx, eventstore.Filter{Cursor: eventstore.CursorAt(pos - 1), Limit: 1})
		if err != nil {
			return nil, err
		}
		if len(page.Events) == 0 || page.Events[0].Position != pos {
			return nil, nil
		}
		return &page.Events[0], nil
	}
	a, err := get(src)
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	b, err := get(dst)
	if err != nil {
		return fmt.Errorf("target: %w", err)
	}
	if a == nil || b == nil || !bytes.Equal(eventstore.AppendEventLine(nil, *a), eventstore.AppendEventLine(nil, *b)) {
		return &storeStateError{fmt.Errorf("%w: the target's last event, at position %d, is not the source's event there: the target is not an earlier copy of this source", errCopyMismatch, pos)}
	}
	return nil
}

// copySecrets copies the source's secrets with an idx above the target's
// highest, after checking that the target's highest is the source's.
func copySecrets(ctx context.Context, src, dst *eventstore.Store, from string, dry bool) (int64, error) {
	top, err := highestSecret(ctx, dst)
	if err != nil {
		return 0, fmt.Errorf("target: %w", err)
	}
	if top != nil {
		page, err := src.Secrets().LoadSecrets(ctx, eventstore.SecretFilter{Idx: top.Idx, Limit: 1, IncludeDeleted: true})
		if err != nil {
			return 0, fmt.Errorf("source: %w", err)
		}
		if len(page.Secrets) == 0 || page.Secrets[0].Idx != top.Idx || page.Secrets[0].ID != top.ID {
			return 0, &storeStateError{fmt.Errorf("%w: the target's secret idx %d (%q) is not the source's", errCopyMismatch, top.Idx, top.ID)}
		}
	}
	next := int64(0)
	if top != nil {
		next = top.Idx + 1
	}
	pr, pw := io.Pipe()
	exported := make(chan error, 1)
	go func() {
		_, err := src.Secrets().ExportSecrets(ctx, pw, &eventstore.SecretsExportOptions{Idx: next})
		pw.CloseWithError(err)
		exported <- err
	}()
	sourceID := fmt.Sprintf("copy-secrets:%s@%d", eventstore.RedactURL(from), next)
	res, err := dst.Secrets().ImportSecrets(ctx, pr, &eventstore.SecretsImportOptions{SourceID: sourceID, DryRun: dry})
	pr.CloseWithError(errors.New("import stopped"))
	exportErr := <-exported
	if err != nil {
		return 0, withHint(err, "run the same esctl copy again to continue after the last committed batch")
	}
	if exportErr != nil {
		return 0, fmt.Errorf("export secrets from the source: %w", exportErr)
	}
	if dry {
		return res.Events, nil
	}
	if err := dst.AbortImport(ctx, sourceID); err != nil {
		return 0, err
	}
	return res.Events, nil
}

// highestSecret returns the secret (or tombstone) with the highest idx, nil
// when there is none: a binary search on "is there a secret at or above
// idx", O(log) queries whatever the number of secrets.
func highestSecret(ctx context.Context, s *eventstore.Store) (*eventstore.Secret, error) {
	at := func(idx int64) (*eventstore.Secret, error) {
		page, err := s.Secrets().LoadSecrets(ctx, eventstore.SecretFilter{Idx: idx, Limit: 1, IncludeDeleted: true})
		if err != nil || len(page.Secrets) == 0 {
			return nil, err
		}
		return &page.Secrets[0], nil
	}
	first, err := at(0)
	if err != nil || first == nil {
		return nil, err
	}
	lo, hi := first.Idx, int64(1)<<62 // a secret at or above lo exists; none at or above hi
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		sec, err := at(mid)
		if err != nil {
			return nil, err
		}
		if sec != nil {
			lo = sec.Idx
		} else {
			hi = mid
		}
	}
	return at(lo)
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
		fmt.Sprintf("would create the store in %s and copy all %s events (to position %s) and %s secrets; nothing written",
			where, commas(sd.EventCount), commas(sd.LastPosition), commas(sd.SecretCount)))
}
