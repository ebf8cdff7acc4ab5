package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v3"

	"github.com/esctl/esctl/backup"
	"github.com/esctl/esctl/eventstore"
)

// errBadBackup: a backup file that fails its checks (exit 3).
var errBadBackup = eventstore.ErrBadBackup

func compressFlag() cli.Flag {
	return &cli.StringFlag{
		Name:  "compress",
		Value: string(backup.Zstd),
		Usage: "zstd, gzip or none",
		Validator: func(s string) error {
			for _, c := range backup.Compressions {
				if s == string(c) {
					return nil
				}
			}
			return fmt.Errorf("--compress must be zstd, gzip or none, not %q", s)
		},
	}
}

func backupCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "backup",
		Usage: "write a consistent, resumable backup of the store's events, secrets and snapshots",
		Description: "Writes the store's events, secrets (tombstones included) and snapshots, with a manifest\n" +
			"(counts, end cursor, format version, SHA-256), in the format of docs/backup-format.md.\n" +
			"The file is written as FILE.part, compressed in independent frames, with a checkpoint in\n" +
			"FILE.part.checkpoint after each frame; when complete it is renamed to FILE and a\n" +
			"sha256sum-compatible FILE.sha256 is written next to it (sha256sum -c FILE.sha256).\n\n" +
			"Re-running the same command after a crash or Ctrl-C resumes from the end of FILE.part's\n" +
			"last whole frame; the result is the same bytes an uninterrupted run gives. The backup holds\n" +
			"the events up to the store's last position when it began; secrets and snapshots are read\n" +
			"as of each run: freeze the store (esctl freeze) for one point in time across interruptions.\n\n" +
			"Examples:\n  esctl backup --out store.esbackup\n  esctl --db \"$PG_URL\" backup --out pg.esbackup.gz --compress gzip",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Usage: "the backup file (required; FILE.part while it is written)"},
			compressFlag(),
			&cli.BoolFlag{Name: "force", Usage: "overwrite an existing backup file"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			out := cmd.String("out")
			if out == "" || out == "-" {
				return usagef("backup needs --out FILE: it writes a file it can resume (FILE.part), not a stream")
			}
			if _, err := os.Stat(out); err == nil && !cmd.Bool("force") {
				return usagef("%s exists: pass --force to overwrite it", out)
			}
			s, err := e.openExisting(ctx, cmd)
			if err != nil {
				return err
			}
			defer s.Close()
			return e.backup(ctx, cmd, s, out, backup.Compression(cmd.String("compress")))
		},
	}
}

func (e *env) backup(ctx context.Context, cmd *cli.Command, s *eventstore.Store, out string, compress backup.Compression) error {
	d, err := s.Describe(ctx, nil)
	if err != nil {
		return err
	}
	paths := backup.PathsFor(out)
	var p *progress
	res, err := backup.Write(ctx, s, out, &backup.WriteOptions{
		Compression: compress,
		ResumeFunc: func(r backup.Resume) {
			e.log.Info("resuming backup", "file", paths.Part, "byte", r.FileBytes, "section", r.Mark.Section)
			fmt.Fprintf(e.stderr, "esctl: resuming %s at byte %d (%s events written)\n", paths.Part, r.FileBytes, commas(r.Mark.Events))
		},
		ProgressFunc: func(bp backup.Progress) {
			if p == nil {
				p = e.newProgress(cmd, "backed up", "events", d.LastPosition)
			}
			done := bp.Mark.After
			if bp.Mark.Section != "events" {
				done = bp.Mark.EndPosition
			}
			p.update(done, bp.FileBytes, bp.Mark.Section)
		},
	})
	if p != nil {
		p.stop()
	}
	var mismatch *backup.CompressionMismatchError
	var part *backup.PartError
	switch {
	case errors.As(err, &mismatch):
		return usagef("%s was begun with --compress %s: re-run with --compress %s to resume it, or delete %s and %s to start over",
			paths.Part, mismatch.Begun, mismatch.Begun, paths.Part, paths.Checkpoint)
	case errors.As(err, &part):
		return withHint(part.Err, fmt.Sprintf("%s holds %s of whole frames (%s events); re-run the same command to resume it",
			paths.Part, humanBytes(part.FileBytes), commas(part.Events)))
	case err != nil:
		return err
	}
	m := res.Mark
	return e.printSummary(cmd, (&summary{Command: "backup"}).
		add("file", paths.File, paths.File).
		add("events", m.Events, fmt.Sprintf("%s events", commas(m.Events))).
		add("secrets", m.Secrets, fmt.Sprintf("%s secrets (%s deleted)", commas(m.Secrets), commas(m.Tombstones))).
		add("tombstones", m.Tombstones, "").
		add("snapshots", m.Snapshots, fmt.Sprintf("%s snapshots", commas(m.Snapshots))).
		add("endCursor", eventstore.CursorAt(m.EndPosition), "end cursor "+string(eventstore.CursorAt(m.EndPosition))).
		add("bytes", res.FileBytes, humanBytes(res.FileBytes)+" "+string(compress)).
		add("streamBytes", m.Bytes, "").
		add("compress", string(compress), "").
		add("sha256", res.SHA256, "sha256 "+res.SHA256+" (in "+filepath.Base(paths.Sidecar)+")").
		add("resumedAtByte", res.ResumedAtByte, resumedText(res.ResumedAtByte)), false)
}

func resumedText(at int64) string {
	if at == 0 {
		return ""
	}
	return fmt.Sprintf("resumed at byte %d", at)
}

func restoreCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "restore",
		Usage: "restore a backup into an empty store, resumable",
		Description: "Checks the whole backup first (its sha256 sidecar if present, then every line, the counts\n" +
			"and the SHA-256 in its manifest) and writes nothing if anything is wrong (exit 3). The target\n" +
			"(--db, created if missing) must be empty; --force replaces a non-empty one (asking on a\n" +
			"terminal; --yes answers). Events and secrets are written in batches that each commit with a\n" +
			"checkpoint: re-running the same command after a crash or Ctrl-C resumes the restore, and\n" +
			"re-running a finished one changes nothing. Works across engines: a SQLite backup restores\n" +
			"into PostgreSQL and back, positions and payload bytes unchanged.\n\n" +
			"Examples:\n  esctl --db sqlite://./restored.db restore --in store.esbackup\n" +
			"  esctl --db \"$PG_URL\" restore --in store.esbackup --force --yes",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "in", Usage: "the backup file (required)"},
			&cli.BoolFlag{Name: "force", Usage: "replace a store that is not empty (drop, then restore)"},
			yesFlag(),
			dryRunFlag(),
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			in := cmd.String("in")
			if in == "" || in == "-" {
				return usagef("restore needs --in FILE: it reads the backup twice (verify, then write)")
			}
			man, err := e.verifyBackupFile(ctx, cmd, in)
			if err != nil {
				return err
			}
			if cmd.Bool("dry-run") {
				return e.restoreDryRun(ctx, cmd, man)
			}
			s, err := e.openURL(ctx, dbURL(cmd), true)
			if err != nil {
				return err
			}
			defer s.Close()
			if err := s.Init(ctx); err != nil {
				return err
			}
			return e.restore(ctx, cmd, s, in, man)
		},
	}
}

// restoreDryRun reports what restore would do with a verified backup,
// creating and changing nothing.
func (e *env) restoreDryRun(ctx context.Context, cmd *cli.Command, man *eventstore.BackupManifest) error {
	target := eventstore.RedactURL(dbURL(cmd))
	sum := (&summary{Command: "restore"}).add("events", man.Events, "").add("secrets", man.Secrets, "").add("snapshots", man.Snapshots, "")
	what := fmt.Sprintf("%s events, %s secrets, %s snapshots", commas(man.Events), commas(man.Secrets), commas(man.Snapshots))
	path, missing, err := missingFile(dbURL(cmd))
	if err != nil {
		return err
	}
	if missing {
		return e.printDryRun(cmd, sum, fmt.Sprintf("the backup is sound; would create the store in %s and restore %s", path, what))
	}
	s, err := e.openExisting(ctx, cmd)
	if err != nil {
		return err
	}
	defer s.Close()
	st, err := s.Migrate(ctx, &eventstore.MigrateOptions{Op: eventstore.MigrateStatus})
	if err != nil {
		return err
	}
	if st.Version == 0 && !st.Dirty {
		return e.printDryRun(cmd, sum, fmt.Sprintf("the backup is sound; would create the store in %s and restore %s", target, what))
	}
	d, err := s.Describe(ctx, nil)
	if err != nil {
		return err
	}
	cps, err := s.Imports(ctx)
	if err != nil {
		return err
	}
	srcEvents, srcSecrets := eventstore.RestoreSourceIDs(man)
	for _, cp := range cps {
		if cp.SourceID == srcEvents || cp.SourceID == srcSecrets {
			return e.printDryRun(cmd, sum, fmt.Sprintf("the backup is sound; would resume its restore into %s (%s events and %s secrets there now)", target, commas(d.EventCount), commas(d.SecretCount)))
		}
	}
	snaps, err := s.ListSnapshots(ctx, "", 1)
	if err != nil {
		return err
	}
	switch {
	case d.EventCount == 0 && d.SecretCount == 0 && len(snaps) == 0:
		return e.printDryRun(cmd, sum, fmt.Sprintf("the backup is sound; would restore %s into %s", what, target))
	case !cmd.Bool("force"):
		return withHint(&storeStateError{fmt.Errorf("%w: %s holds %s events, %s secrets, %d+ snapshots (dry run: nothing was written)", eventstore.ErrNotEmpty, target, commas(d.EventCount), commas(d.SecretCount), len(snaps))},
			"restore into an empty store, or pass --force to replace this one")
	}
	return e.printDryRun(cmd, sum, fmt.Sprintf("the backup is sound; would drop the %s events and %s secrets of %s and restore %s", commas(d.EventCount), commas(d.SecretCount), target, what))
}

// verifyBackupFile checks the file against its sidecar (when there is one)
// and its manifest.
func (e *env) verifyBackupFile(ctx context.Context, cmd *cli.Command, path string) (*eventstore.BackupManifest, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	p := e.newProgress(cmd, "verified", "bytes", st.Size())
	v, err := backup.Verify(ctx, path, &backup.VerifyOptions{ProgressFunc: func(n int64) { p.update(n, n, "") }})
	p.stop()
	if err != nil {
		return nil, err
	}
	check := "no sidecar"
	if v.Sidecar {
		check = "matches " + filepath.Base(path) + ".sha256"
	}
	man := v.Manifest
	fmt.Fprintf(e.stderr, "esctl: %s verified: %s events, %s secrets, %s snapshots, sha256 %s (%s)\n",
		path, commas(man.Events), commas(man.Secrets), commas(man.Snapshots), v.SHA256, check)
	return man, nil
}

func (e *env) restore(ctx context.Context, cmd *cli.Command, s *eventstore.Store, path string, man *eventstore.BackupManifest) error {
	target := eventstore.RedactURL(dbURL(cmd))
	write := func() (*eventstore.RestoreResult, error) {
		p := e.newProgress(cmd, "restored", "events", man.Events)
		defer p.stop()
		return backup.Restore(ctx, s, path, man, &eventstore.RestoreOptions{
			ProgressFunc: func(rp eventstore.RestoreProgress) {
				p.update(rp.Events, 0, rp.Section)
			},
		})
	}
	res, err := write()
	if errors.Is(err, eventstore.ErrNotEmpty) {
		if !cmd.Bool("force") {
			return withHint(&storeStateError{err}, "restore into an empty store, or pass --force to replace this one")
		}
		if isTerminal(e.stdin) {
			if err := e.confirm(ctx, cmd, fmt.Sprintf("replace everything in %s with the backup", target)); err != nil {
				return err
			}
		}
		fmt.Fprintf(e.stderr, "esctl: --force: dropping %s before the restore\n", target)
		if err := s.Drop(ctx); err != nil {
			return err
		}
		if err := s.Init(ctx); err != nil {
			return err
		}
		res, err = write()
	}
	if err != nil {
		if res != nil && ctx.Err() != nil {
			return withHint(err, fmt.Sprintf("%s events and %s secrets are committed; re-run the same command to resume", commas(res.Events), commas(res.Secrets)))
		}
		return err
	}
	text := fmt.Sprintf("%s events, %s secrets, %s snapshots restored into %s", commas(res.Events), commas(res.Secrets), commas(res.Snapshots), target)
	if res.Resumed {
		text += " (resumed)"
	}
	return e.printSummary(cmd, (&summary{Command: "restore"}).
		add("events", res.Events, text).
		add("secrets", res.Secrets, "").
		add("snapshots", res.Snapshots, "").
		add("resumed", res.Resumed, "").
		add("endCursor", man.EndCursor, "end cursor "+string(man.EndCursor)).
		add("sha256", man.SHA256, ""), false)
}
