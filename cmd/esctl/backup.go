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
	"github.com/esctl/esctl/transfer"
)

// errBadBackup: a backup file that fails its checks (exit 3).
var errBadBackup = backup.ErrBadBackup

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
			&cli.BoolFlag{Name: "force", Usage: "overwrite an existing backup file (asks first; --yes answers)"},
			yesFlag(),
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			out := cmd.String("out")
			if out == "" || out == "-" {
				return usagef("backup needs --out FILE: it writes a file it can resume (FILE.part), not a stream")
			}
			if err := e.overwrite(ctx, cmd, out); err != nil {
				return err
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
			fmt.Fprintf(e.stderr, "esctl: resuming %s at byte %d (%s written)\n", paths.Part, r.FileBytes, plural(r.Mark.Events, "event"))
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
		return withHint(part.Err, fmt.Sprintf("%s holds %s of whole frames (%s); continue with: %s",
			paths.Part, humanBytes(part.FileBytes), plural(part.Events, "event"), e.rerun(cmd, nil)))
	case err != nil:
		return err
	}
	m := res.Mark
	return e.printSummary(cmd, (&summary{Command: "backup"}).
		add("file", paths.File, paths.File).
		add("events", m.Events, plural(m.Events, "event")).
		add("secrets", m.Secrets, fmt.Sprintf("%s (%s deleted)", plural(m.Secrets, "secret"), commas(m.Tombstones))).
		add("tombstones", m.Tombstones, "").
		add("snapshots", m.Snapshots, plural(m.Snapshots, "snapshot")).
		add("endCursor", eventstore.CursorAt(m.EndPosition), "end cursor "+string(eventstore.CursorAt(m.EndPosition))).
		add("bytes", res.FileBytes, humanBytes(res.FileBytes)+" "+string(compress)).
		add("streamBytes", m.Bytes, "").
		add("compress", string(compress), "").
		add("fileSha256", res.SHA256, "file sha256 "+res.SHA256+" (in "+filepath.Base(paths.Sidecar)+")").
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
				return e.restoreDryRun(ctx, cmd, man.Manifest)
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
func (e *env) restoreDryRun(ctx context.Context, cmd *cli.Command, man *backup.Manifest) error {
	target := eventstore.RedactURL(dbURL(cmd))
	sum := (&summary{Command: "restore"}).add("events", man.Events, "").add("secrets", man.Secrets, "").add("snapshots", man.Snapshots, "")
	what := fmt.Sprintf("%s, %s, %s", plural(man.Events, "event"), plural(man.Secrets, "secret"), plural(man.Snapshots, "snapshot"))
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
	cps, err := transfer.Imports(ctx, s)
	if err != nil {
		return err
	}
	srcEvents, srcSecrets := backup.SourceIDs(man)
	for _, cp := range cps {
		if cp.SourceID == srcEvents || cp.SourceID == srcSecrets {
			return e.printDryRun(cmd, sum, fmt.Sprintf("the backup is sound; would resume its restore into %s (%s and %s there now)", target, plural(d.EventCount, "event"), plural(d.SecretCount, "secret")))
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
		return withHint(&storeStateError{fmt.Errorf("%w: %s holds %s, %s and snapshots (dry run: nothing was written)", backup.ErrNotEmpty, target, plural(d.EventCount, "event"), plural(d.SecretCount, "secret"))},
			"restore into an empty store, or pass --force to replace this one")
	}
	return e.printDryRun(cmd, sum, fmt.Sprintf("the backup is sound; would drop the %s and %s of %s and restore %s", plural(d.EventCount, "event"), plural(d.SecretCount, "secret"), target, what))
}

// verifyBackupFile checks the file against its sidecar (when there is one)
// and its manifest, and says so on stderr (unless --quiet).
func (e *env) verifyBackupFile(ctx context.Context, cmd *cli.Command, path string) (*verifiedBackup, error) {
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
	vb := &verifiedBackup{Manifest: v.Manifest, FileSHA256: v.SHA256, ContentSHA256: v.Manifest.SHA256, Sidecar: v.Sidecar}
	if !cmd.Root().Bool("quiet") {
		fmt.Fprintf(e.stderr, "esctl: %s verified: %s, %s, %s; %s\n",
			path, plural(vb.Events, "event"), plural(vb.Secrets, "secret"), plural(vb.Snapshots, "snapshot"), vb.sums(path))
	}
	return vb, nil
}

// verifiedBackup is a backup file that passed verification: its manifest
// and both of its checksums, each named for what it covers (-o json).
type verifiedBackup struct {
	*backup.Manifest
	// SHA256 hides the manifest's unlabelled field: ContentSHA256 is it.
	SHA256 string `json:"sha256,omitempty"`
	// FileSHA256 is the SHA-256 of the file's bytes, as in FILE.sha256
	// (sha256sum -c checks it).
	FileSHA256 string `json:"fileSha256"`
	// ContentSHA256 is the SHA-256 of the uncompressed stream before the
	// manifest, as recorded in the manifest (restore checks it).
	ContentSHA256 string `json:"contentSha256"`
	// Sidecar: FILE.sha256 exists and matches the file.
	Sidecar bool `json:"sidecar"`
}

// sums is the text form of the two checksums.
func (v *verifiedBackup) sums(path string) string {
	check := "no " + filepath.Base(path) + ".sha256 to check it against"
	if v.Sidecar {
		check = "matches " + filepath.Base(path) + ".sha256"
	}
	return fmt.Sprintf("file sha256 %s (%s), content sha256 %s (matches its manifest)", v.FileSHA256, check, v.ContentSHA256)
}

func (e *env) restore(ctx context.Context, cmd *cli.Command, s *eventstore.Store, path string, vb *verifiedBackup) error {
	man := vb.Manifest
	target := eventstore.RedactURL(dbURL(cmd))
	write := func() (*backup.RestoreResult, error) {
		p := e.newProgress(cmd, "restored", "events", man.Events)
		defer p.stop()
		return backup.Restore(ctx, s, path, man, &backup.RestoreOptions{
			ProgressFunc: func(rp backup.RestoreProgress) {
				p.update(rp.Events, 0, rp.Section)
			},
		})
	}
	res, err := write()
	if errors.Is(err, backup.ErrNotEmpty) {
		if !cmd.Bool("force") {
			return withHint(&storeStateError{err}, "restore into an empty store, or pass --force to replace this one")
		}
		if err := e.confirm(ctx, cmd, fmt.Sprintf("replace everything in %s with the backup", target)); err != nil {
			return err
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
			return withHint(err, fmt.Sprintf("%s and %s are committed; continue with: %s", plural(res.Events, "event"), plural(res.Secrets, "secret"), e.rerun(cmd, nil)))
		}
		return err
	}
	text := fmt.Sprintf("%s, %s, %s restored into %s", plural(res.Events, "event"), plural(res.Secrets, "secret"), plural(res.Snapshots, "snapshot"), target)
	if res.Resumed {
		text += " (resumed)"
	}
	return e.printSummary(cmd, (&summary{Command: "restore"}).
		add("events", res.Events, text).
		add("secrets", res.Secrets, "").
		add("snapshots", res.Snapshots, "").
		add("resumed", res.Resumed, "").
		add("endCursor", man.EndCursor, "end cursor "+string(man.EndCursor)).
		add("fileSha256", vb.FileSHA256, "").
		add("contentSha256", vb.ContentSHA256, "content sha256 "+vb.ContentSHA256), false)
}
