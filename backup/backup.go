// Package backup backs up and restores an eventstore.Store: as a stream
// (WriteStream, VerifyStream, RestoreStream: docs/backup-format.md), and in
// files, the stream in a container made for crashes (Write, Verify,
// Restore).
//
//   - The stream is cut at WriteStream's marks into frames, each
//     compressed on its own (zstd, gzip or none); zstd and gzip readers read
//     concatenated frames as one stream, and frames cut at the same marks
//     compress to the same bytes.
//   - While it is written the file is FILE.part, synced after every frame,
//     with FILE.part.checkpoint (written atomically) saying how many bytes
//     are whole frames, the SHA-256 state over them and the stream's mark.
//     Write again after a crash resumes after the last whole frame, and the
//     result is the same bytes an uninterrupted run gives.
//   - When complete, a sha256sum-compatible FILE.sha256 is written, then
//     FILE.part is renamed to FILE and the checkpoint removed.
//
// Verify checks a file against its sidecar and its manifest; Restore reads
// it into a store. esctl's backup and restore commands are these functions
// with flags and progress.
package backup

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

	"github.com/esctl/esctl/eventstore"
)

// Compression is how a backup's frames are compressed.
type Compression string

// Compressions.
const (
	Zstd Compression = "zstd"
	Gzip Compression = "gzip"
	None Compression = "none"
)

// Compressions lists the accepted compressions, the default first.
var Compressions = []Compression{Zstd, Gzip, None}

// FrameBytes is how much of the backup stream goes into one frame (and
// between two checkpoints).
const FrameBytes = 4 << 20

// checkpointFormat names the checkpoint file's format.
const checkpointFormat = "esctl-backup-checkpoint/1"

// checkpoint is FILE.part.checkpoint.
type checkpoint struct {
	Format    string      `json:"format"`
	Compress  Compression `json:"compress"`
	FileBytes int64       `json:"fileBytes"` // whole frames in FILE.part
	FileHash  []byte      `json:"fileHash"`  // SHA-256 state over them
	Mark      Mark        `json:"mark"`
}

// Paths are the files of one backup.
type Paths struct {
	File       string // the finished backup
	Part       string // FILE.part while it is written
	Checkpoint string // FILE.part.checkpoint
	Sidecar    string // FILE.sha256
}

// PathsFor returns the files of the backup at file.
func PathsFor(file string) Paths {
	return Paths{File: file, Part: file + ".part", Checkpoint: file + ".part.checkpoint", Sidecar: file + ".sha256"}
}

// CompressionMismatchError: a FILE.part begun with another compression
// cannot be resumed with this one. Nothing was written.
type CompressionMismatchError struct {
	Paths      Paths
	Begun, Now Compression
}

func (e *CompressionMismatchError) Error() string {
	return fmt.Sprintf("%s was begun with compression %s, not %s: resume it with %s, or delete %s and %s to start over",
		e.Paths.Part, e.Begun, e.Now, e.Begun, e.Paths.Part, e.Paths.Checkpoint)
}

// WriteOptions configure Write. A nil *WriteOptions means all defaults.
type WriteOptions struct {
	// Compression of the frames; "" is Zstd.
	Compression Compression
	// ResumeFunc, when set, is called before anything is written when
	// Write resumes a FILE.part, with the checkpoint's counts.
	ResumeFunc func(Resume)
	// ProgressFunc, when set, is called after each frame.
	ProgressFunc func(Progress)
}

// Resume describes the FILE.part a Write resumes.
type Resume struct {
	FileBytes int64 // whole frames kept
	Mark      Mark
}

// Progress reports a Write after a frame.
type Progress struct {
	Mark      Mark
	FileBytes int64 // written to FILE.part so far
}

// Result reports a finished Write.
type Result struct {
	Mark          Mark // the final mark: counts and end position
	FileBytes     int64
	SHA256        string // hex, of the file (as in the sidecar)
	Compression   Compression
	ResumedAtByte int64 // 0 when the backup was not resumed
}

// PartError is a Write that failed after whole frames were kept in
// FILE.part: running it again resumes from them.
type PartError struct {
	Paths     Paths
	FileBytes int64
	Events    int64
	Err       error
}

func (e *PartError) Error() string { return e.Err.Error() }
func (e *PartError) Unwrap() error { return e.Err }

// Write writes a backup of s to file (see the package doc), resuming a
// FILE.part left by an interrupted Write of the same file. It does not
// check whether file exists: it replaces it.
func Write(ctx context.Context, s *eventstore.Store, file string, opts *WriteOptions) (*Result, error) {
	var o WriteOptions
	if opts != nil {
		o = *opts
	}
	if o.Compression == "" {
		o.Compression = Zstd
	}
	if !validCompression(o.Compression) {
		return nil, fmt.Errorf("backup: unknown compression %q", o.Compression)
	}
	paths := PathsFor(file)
	ck, err := loadCheckpoint(paths)
	if err != nil {
		return nil, err
	}
	if ck != nil && ck.Compress != o.Compression {
		return nil, &CompressionMismatchError{Paths: paths, Begun: ck.Compress, Now: o.Compression}
	}
	fw, err := openFrameWriter(paths, o.Compression, ck)
	if err != nil {
		return nil, err
	}
	defer fw.close()
	res := &Result{Compression: o.Compression}
	var resume *Mark
	if ck != nil {
		resume, res.ResumedAtByte = &ck.Mark, ck.FileBytes
		if o.ResumeFunc != nil {
			o.ResumeFunc(Resume{FileBytes: ck.FileBytes, Mark: ck.Mark})
		}
	}
	last := ck
	if ck == nil || ck.Mark.Section != "done" {
		_, err = WriteStream(ctx, s, fw, &StreamOptions{
			Resume:    resume,
			MarkBytes: FrameBytes,
			Mark: func(m Mark) error {
				c, err := fw.frame(m)
				if err != nil {
					return err
				}
				last = c
				if o.ProgressFunc != nil {
					o.ProgressFunc(Progress{Mark: m, FileBytes: c.FileBytes})
				}
				return nil
			},
		})
		if err != nil {
			if last != nil {
				return nil, &PartError{Paths: paths, FileBytes: last.FileBytes, Events: last.Mark.Events, Err: err}
			}
			return nil, err
		}
	}
	if res.SHA256, err = fw.finish(); err != nil {
		return nil, err
	}
	res.Mark, res.FileBytes = last.Mark, last.FileBytes
	return res, nil
}

func validCompression(c Compression) bool {
	for _, v := range Compressions {
		if c == v {
			return true
		}
	}
	return false
}

// loadCheckpoint reads FILE.part.checkpoint; nil when there is nothing to
// resume (no .part, or a .part without a checkpoint: it held no whole frame).
func loadCheckpoint(paths Paths) (*checkpoint, error) {
	b, err := os.ReadFile(paths.Checkpoint)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(paths.Part); errors.Is(err, os.ErrNotExist) {
		return nil, nil // a checkpoint left without its file: start over
	}
	var ck checkpoint
	if err := json.Unmarshal(b, &ck); err != nil || ck.Format != checkpointFormat {
		return nil, fmt.Errorf("%s is not a backup checkpoint esctl can read (%v): delete it and %s to start over", paths.Checkpoint, err, paths.Part)
	}
	return &ck, nil
}

// frameWriter receives the backup stream and writes it to FILE.part in
// frames: each frame is the stream between two marks, compressed on its own.
type frameWriter struct {
	paths     Paths
	compress  Compression
	f         *os.File
	buf       bytes.Buffer
	zenc      *zstd.Encoder
	fileHash  hash.Hash
	fileBytes int64
	scratch   []byte
}

func openFrameWriter(paths Paths, compress Compression, ck *checkpoint) (*frameWriter, error) {
	f, err := os.OpenFile(paths.Part, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	fw := &frameWriter{paths: paths, compress: compress, f: f, fileHash: sha256.New()}
	if ck != nil {
		st, err := f.Stat()
		if err == nil && st.Size() < ck.FileBytes {
			err = fmt.Errorf("%s is %d bytes, shorter than the %d its checkpoint records: delete it and %s to start over",
				paths.Part, st.Size(), ck.FileBytes, paths.Checkpoint)
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
	if compress == Zstd {
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
func (fw *frameWriter) frame(m Mark) (*checkpoint, error) {
	data := fw.buf.Bytes()
	switch fw.compress {
	case Zstd:
		fw.scratch = fw.zenc.EncodeAll(data, fw.scratch[:0])
		data = fw.scratch
	case Gzip:
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
		return nil, fmt.Errorf("write %s: %w", fw.paths.Part, err)
	}
	if err := fw.f.Sync(); err != nil {
		return nil, fmt.Errorf("sync %s: %w", fw.paths.Part, err)
	}
	fw.fileHash.Write(data)
	fw.fileBytes += int64(len(data))
	fw.buf.Reset()
	st, err := fw.fileHash.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return nil, err
	}
	ck := &checkpoint{Format: checkpointFormat, Compress: fw.compress, FileBytes: fw.fileBytes, FileHash: st, Mark: m}
	b, err := json.Marshal(ck)
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(fw.paths.Checkpoint, b); err != nil {
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
	line := fmt.Sprintf("%s  %s\n", sum, filepath.Base(fw.paths.File))
	if err := writeFileAtomic(fw.paths.Sidecar, []byte(line)); err != nil {
		return "", err
	}
	if err := os.Rename(fw.paths.Part, fw.paths.File); err != nil {
		return "", err
	}
	if err := os.Remove(fw.paths.Checkpoint); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	syncDir(filepath.Dir(fw.paths.File))
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

// VerifyOptions configure Verify. A nil *VerifyOptions means all defaults.
type VerifyOptions struct {
	// ProgressFunc, when set, is called as the file is read, with the
	// bytes read so far.
	ProgressFunc func(read int64)
}

// Verified is a backup file that passed Verify.
type Verified struct {
	Manifest *Manifest
	SHA256   string // hex, of the file
	Sidecar  bool   // FILE.sha256 exists and matches
}

// Verify checks the backup at path: the whole stream (every line, the
// counts and the SHA-256 in its manifest, see VerifyStream),
// then the file against FILE.sha256 when there is one. A file that fails
// is ErrBadBackup.
func Verify(ctx context.Context, path string, opts *VerifyOptions) (*Verified, error) {
	var o VerifyOptions
	if opts != nil {
		o = *opts
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fileHash := sha256.New()
	var src io.Reader = &readCounter{r: io.TeeReader(f, fileHash), progress: o.ProgressFunc}
	r, closeR, err := decompress(src)
	if err != nil {
		return nil, err
	}
	man, err := VerifyStream(&ctxReader{ctx: ctx, r: r})
	closeR()
	if err == nil {
		_, err = io.Copy(io.Discard, src) // the file's last bytes, for its hash
	}
	if err != nil {
		if !errors.Is(err, ErrBadBackup) && ctx.Err() == nil {
			err = fmt.Errorf("%w: %s: %w", ErrBadBackup, path, err)
		}
		return nil, err
	}
	v := &Verified{Manifest: man, SHA256: hex.EncodeToString(fileHash.Sum(nil))}
	want, err := readSidecar(path + ".sha256")
	if err != nil {
		return nil, err
	}
	if want != "" && want != v.SHA256 {
		return nil, fmt.Errorf("%w: %s has SHA-256 %s, its sidecar %s.sha256 says %s: the file is corrupted or not the one the sidecar describes",
			ErrBadBackup, path, v.SHA256, path, want)
	}
	v.Sidecar = want != ""
	return v, nil
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
		return "", fmt.Errorf("%w: %s is not a sha256sum line", ErrBadBackup, path)
	}
	return strings.ToLower(fields[0]), nil
}

// Restore writes the verified backup at path into s (see RestoreStream:
// resumable, an empty store only, else ErrNotEmpty).
func Restore(ctx context.Context, s *eventstore.Store, path string, man *Manifest, opts *RestoreOptions) (*RestoreResult, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, closeR, err := decompress(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return nil, err
	}
	defer closeR()
	return RestoreStream(ctx, s, r, man, opts)
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
			return nil, nil, fmt.Errorf("%w: %v", ErrBadBackup, err)
		}
		return &badFrameReader{gr}, func() { _ = gr.Close() }, nil
	}
	return br, func() {}, nil
}

// badFrameReader marks decompression errors as a bad backup.
type badFrameReader struct{ r io.Reader }

func (b *badFrameReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = fmt.Errorf("%w: the compressed data is corrupted: %v", ErrBadBackup, err)
	}
	return n, err
}

// readCounter reports the bytes read through it.
type readCounter struct {
	r        io.Reader
	n        int64
	progress func(int64)
}

func (c *readCounter) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	if c.progress != nil {
		c.progress(c.n)
	}
	return n, err
}

// ctxReader stops a read when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(b)
}
