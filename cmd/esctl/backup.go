package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/urfave/cli/v3"

	"github.com/esctl/esctl/eventstore"
)

// errBadBackup: a backup file that fails its checks (exit 3).
var errBadBackup = eventstore.ErrBadBackup

// compressions are the values of --compress.
var compressions = []string{"zstd", "gzip", "none"}

// frameBytes is how much of the backup stream goes into one compressed
// frame (and between two checkpoints).
const frameBytes = 4 << 20

// backupCheckpoint is FILE.part.checkpoint: how much of FILE.part is whole
// frames, and where the backup stream stands at that point.
type backupCheckpoint struct {
	Format    string                `json:"format"` // checkpointFormat
	Compress  string                `json:"compress"`
	FileBytes int64                 `json:"fileBytes"` // whole frames in FILE.part
	FileHash  []byte                `json:"fileHash"`  // SHA-256 state over them
	Mark      eventstore.BackupMark `json:"mark"`
}

const checkpointFormat = "esctl-backup-checkpoint/1"

// backupPaths are the files of one backup.
type backupPaths struct{ out, part, checkpoint, sidecar string }

func pathsFor(out string) backupPaths {
	return backupPaths{out: out, part: out + ".part", checkpoint: out + ".part.checkpoint", sidecar: out + ".sha256"}
}

func compressFlag() cli.Flag {
	return &cli.StringFlag{
		Name:  "compress",
		Value: "zstd",
		Usage: "zstd, gzip or none",
		Validator: func(s string) error {
			for _, c := range compressions {
				if s == c {
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
			paths := pathsFor(out)
			if _, err := os.Stat(out); err == nil && !cmd.Bool("force") {
				return usagef("%s exists: pass --force to overwrite it", out)
			}
			s, err := e.openExisting(ctx, cmd)
			if err != nil {
				return err
			}
			defer s.Close()
			return e.backup(ctx, cmd, s, paths, cmd.String("compress"))
		},
	}
}

func (e *env) backup(ctx context.Context, cmd *cli.Command, s *eventstore.Store, paths backupPaths, compress string) error {
	ck, err := loadCheckpoint(paths)
	if err != nil {
		return err
	}
	if ck != nil && ck.Compress != compress {
		return usagef("%s was begun with --compress %s: re-run with --compress %s to resume it, or delete %s and %s to start over",
			paths.part, ck.Compress, ck.Compress, paths.part, paths.checkpoint)
	}
	fw, err := openFrameWriter(paths, compress, ck)
	if err != nil {
		return err
	}
	defer fw.close()
	var resume *eventstore.BackupMark
	resumedAt := int64(0)
	if ck != nil {
		resume, resumedAt = &ck.Mark, ck.FileBytes
		e.log.Info("resuming backup", "file", paths.part, "byte", ck.FileBytes, "section", ck.Mark.Section)
		fmt.Fprintf(e.stderr, "esctl: resuming %s at byte %d (%s events written)\n", paths.part, ck.FileBytes, commas(ck.Mark.Events))
	}
	last := ck
	if ck == nil || ck.Mark.Section != "done" {
		d, err := s.Describe(ctx, nil)
		if err != nil {
			return err
		}
		p := e.newProgress(cmd, "backed up", "events", d.LastPosition)
		_, err = s.Backup(ctx, fw, &eventstore.BackupOptions{
			Resume:    resume,
			MarkBytes: frameBytes,
			Mark: func(m eventstore.BackupMark) error {
				c, err := fw.frame(m)
				if err != nil {
					return err
				}
				last = c
				done := m.After
				if m.Section != "events" {
					done = m.EndPosition
				}
				p.update(done, c.FileBytes, m.Section)
				return nil
			},
		})
		p.stop()
		if err != nil {
			if last != nil {
				return withHint(err, fmt.Sprintf("%s holds %s of whole frames (%s events); re-run the same command to resume it",
					paths.part, humanBytes(last.FileBytes), commas(last.Mark.Events)))
			}
			return err
		}
	}
	sum, err := fw.finish()
	if err != nil {
		return err
	}
	m := last.Mark
	return e.printSummary(cmd, (&summary{Command: "backup"}).
		add("file", paths.out, paths.out).
		add("events", m.Events, fmt.Sprintf("%s events", commas(m.Events))).
		add("secrets", m.Secrets, fmt.Sprintf("%s secrets (%s deleted)", commas(m.Secrets), commas(m.Tombstones))).
		add("tombstones", m.Tombstones, "").
		add("snapshots", m.Snapshots, fmt.Sprintf("%s snapshots", commas(m.Snapshots))).
		add("endCursor", eventstore.CursorAt(m.EndPosition), "end cursor "+string(eventstore.CursorAt(m.EndPosition))).
		add("bytes", last.FileBytes, humanBytes(last.FileBytes)+" "+compress).
		add("streamBytes", m.Bytes, "").
		add("compress", compress, "").
		add("sha256", sum, "sha256 "+sum+" (in "+filepath.Base(paths.sidecar)+")").
		add("resumedAtByte", resumedAt, resumedText(resumedAt)), false)
}

func resumedText(at int64) string {
	if at == 0 {
		return ""
	}
	return fmt.Sprintf("resumed at byte %d", at)
}

// loadCheckpoint reads FILE.part.checkpoint; nil when there is nothing to
// resume (no .part, or a .part without a checkpoint: it held no whole frame).
func loadCheckpoint(paths backupPaths) (*backupCheckpoint, error) {
	b, err := os.ReadFile(paths.checkpoint)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(paths.part); errors.Is(err, os.ErrNotExist) {
		return nil, nil // a checkpoint left without its file: start over
	}
	var ck backupCheckpoint
	if err := json.Unmarshal(b, &ck); err != nil || ck.Format != checkpointFormat {
		return nil, fmt.Errorf("%s is not a backup checkpoint esctl can read (%v): delete it and %s to start over", paths.checkpoint, err, paths.part)
	}
	return &ck, nil
}

// frameWriter receives the backup stream and writes it to FILE.part in
// frames: each frame is the stream between two marks, compressed on its own
// (zstd and gzip readers read concatenated frames as one stream). Frames
// cut at the same marks compress to the same bytes, so a resumed backup
// equals an uninterrupted one.
type frameWriter struct {
	paths     backupPaths
	compress  string
	f         *os.File
	buf       bytes.Buffer
	zenc      *zstd.Encoder
	fileHash  hash.Hash
	fileBytes int64
	scratch   []byte
}

func openFrameWriter(paths backupPaths, compress string, ck *backupCheckpoint) (*frameWriter, error) {
	f, err := os.OpenFile(paths.part, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	fw := &frameWriter{paths: paths, compress: compress, f: f, fileHash: sha256.New()}
	if ck != nil {
		st, err := f.Stat()
		if err == nil && st.Size() < ck.FileBytes {
			err = fmt.Errorf("%s is %d bytes, shorter than the %d its checkpoint records: delete it and %s to start over",
				paths.part, st.Size(), ck.FileBytes, paths.checkpoint)
		}
		if err == nil {
			err = fw.fileHash.(encoding.BinaryUnmarshaler).UnmarshalBinary(ck.FileHash)
		}
		if err != nil {
			f.Close()
			return nil, err
		}
		fw.fileBytes = ck.FileBytes
	}
	// Cut what follows the last whole frame (a frame cut by the crash).
	if err := f.Truncate(fw.fileBytes); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.Seek(fw.fileBytes, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	if compress == "zstd" {
		fw.zenc, err = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault))
		if err != nil {
			f.Close()
			return nil, err
		}
	}
	return fw, nil
}

func (fw *frameWriter) Write(p []byte) (int, error) { return fw.buf.Write(p) }

// frame writes the stream received since the last mark as one frame, syncs
// it, and records the checkpoint for mark m.
func (fw *frameWriter) frame(m eventstore.BackupMark) (*backupCheckpoint, error) {
	data := fw.buf.Bytes()
	switch fw.compress {
	case "zstd":
		fw.scratch = fw.zenc.EncodeAll(data, fw.scratch[:0])
		data = fw.scratch
	case "gzip":
		var gb bytes.Buffer
		zw, err := gzip.NewWriterLevel(&gb, gzip.DefaultCompression)
		if err != nil {
			return nil, err
		}
		if _, err := zw.Write(data); err != nil {
			return nil, err
		}
		if err := zw.Close(); err != nil {
			return nil, err
		}
		data = gb.Bytes()
	}
	if _, err := fw.f.Write(data); err != nil {
		return nil, fmt.Errorf("write %s: %w", fw.paths.part, err)
	}
	if err := fw.f.Sync(); err != nil {
		return nil, fmt.Errorf("sync %s: %w", fw.paths.part, err)
	}
	fw.fileHash.Write(data)
	fw.fileBytes += int64(len(data))
	fw.buf.Reset()
	st, err := fw.fileHash.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return nil, err
	}
	ck := &backupCheckpoint{Format: checkpointFormat, Compress: fw.compress, FileBytes: fw.fileBytes, FileHash: st, Mark: m}
	b, err := json.Marshal(ck)
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(fw.paths.checkpoint, b); err != nil {
		return nil, err
	}
	return ck, nil
}

// finish completes the backup: the sidecar, then FILE.part renamed to FILE,
// then the checkpoint removed. It returns the file's SHA-256.
func (fw *frameWriter) finish() (string, error) {
	sum := hex.EncodeToString(fw.fileHash.Sum(nil))
	if err := fw.f.Sync(); err != nil {
		return "", err
	}
	if err := fw.f.Close(); err != nil {
		return "", err
	}
	fw.f = nil
	line := fmt.Sprintf("%s  %s\n", sum, filepath.Base(fw.paths.out))
	if err := writeFileAtomic(fw.paths.sidecar, []byte(line)); err != nil {
		return "", err
	}
	if err := os.Rename(fw.paths.part, fw.paths.out); err != nil {
		return "", err
	}
	if err := os.Remove(fw.paths.checkpoint); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	syncDir(filepath.Dir(fw.paths.out))
	return sum, nil
}

func (fw *frameWriter) close() {
	if fw.f != nil {
		_ = fw.f.Close()
	}
	if fw.zenc != nil {
		_ = fw.zenc.Close()
	}
}

// writeFileAtomic writes path through a synced temporary file and a rename.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	return err
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
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
			f, err := os.Open(in)
			if err != nil {
				return err
			}
			defer f.Close()
			man, err := e.verifyBackupFile(ctx, cmd, f, in)
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
			return e.restore(ctx, cmd, s, f, man)
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
func (e *env) verifyBackupFile(ctx context.Context, cmd *cli.Command, f *os.File, path string) (*eventstore.BackupManifest, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	p := e.newProgress(cmd, "verified", "bytes", st.Size())
	fileHash := sha256.New()
	cr := &countingReader{r: io.TeeReader(f, fileHash)}
	r, closeR, err := decompress(&progressReader{r: cr, p: p})
	if err != nil {
		p.stop()
		return nil, err
	}
	man, err := eventstore.VerifyBackup(r)
	closeR()
	if err == nil {
		_, err = io.Copy(io.Discard, cr) // the file's last bytes, for its hash
	}
	p.stop()
	if err != nil {
		if !errors.Is(err, eventstore.ErrBadBackup) && ctx.Err() == nil {
			err = fmt.Errorf("%w: %s: %w", errBadBackup, path, err)
		}
		return nil, err
	}
	sum := hex.EncodeToString(fileHash.Sum(nil))
	want, err := readSidecar(path + ".sha256")
	if err != nil {
		return nil, err
	}
	if want != "" && want != sum {
		return nil, fmt.Errorf("%w: %s has SHA-256 %s, its sidecar %s.sha256 says %s: the file is corrupted or not the one the sidecar describes",
			errBadBackup, path, sum, path, want)
	}
	check := "no sidecar"
	if want != "" {
		check = "matches " + filepath.Base(path) + ".sha256"
	}
	fmt.Fprintf(e.stderr, "esctl: %s verified: %s events, %s secrets, %s snapshots, sha256 %s (%s)\n",
		path, commas(man.Events), commas(man.Secrets), commas(man.Snapshots), sum, check)
	return man, nil
}

// readSidecar returns the hash a sha256sum file gives, "" when there is none.
func readSidecar(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	fields := strings.Fields(string(b))
	if len(fields) < 1 || len(fields[0]) != 64 {
		return "", fmt.Errorf("%w: %s is not a sha256sum line", errBadBackup, path)
	}
	return strings.ToLower(fields[0]), nil
}

func (e *env) restore(ctx context.Context, cmd *cli.Command, s *eventstore.Store, f *os.File, man *eventstore.BackupManifest) error {
	target := eventstore.RedactURL(dbURL(cmd))
	write := func() (*eventstore.RestoreResult, error) {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		r, closeR, err := decompress(bufio.NewReaderSize(f, 1<<20))
		if err != nil {
			return nil, err
		}
		defer closeR()
		p := e.newProgress(cmd, "restored", "events", man.Events)
		defer p.stop()
		return s.Restore(ctx, r, man, &eventstore.RestoreOptions{
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

// decompress returns the backup stream of r, by its first bytes: zstd,
// gzip, or plain NDJSON.
func decompress(r io.Reader) (io.Reader, func(), error) {
	br := bufio.NewReaderSize(r, 1<<20)
	magic, _ := br.Peek(4)
	switch {
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, nil, err
		}
		return &badFrameReader{zr}, zr.Close, nil
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		gr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %v", errBadBackup, err)
		}
		return &badFrameReader{gr}, func() { _ = gr.Close() }, nil
	}
	return br, func() {}, nil
}

// badFrameReader marks decompression errors as a bad backup (exit 3).
type badFrameReader struct{ r io.Reader }

func (b *badFrameReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = fmt.Errorf("%w: the compressed data is corrupted: %v", errBadBackup, err)
	}
	return n, err
}

// progressReader reports the bytes read through it.
type progressReader struct {
	r io.Reader
	p *progress
	n int64
}

func (pr *progressReader) Read(b []byte) (int, error) {
	n, err := pr.r.Read(b)
	pr.n += int64(n)
	pr.p.update(pr.n, pr.n, "")
	return n, err
}
