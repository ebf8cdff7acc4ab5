package backup_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	_ "github.com/esctl/esctl/adapters/sqlite"
	"github.com/esctl/esctl/backup"
	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/transfer"
)

// newStore returns an initialized SQLite store with n events of about 250
// bytes and a secret (the file container does not depend on the engine;
// internal/conformance checks WriteStream on both).
func newStore(t *testing.T, n int) *eventstore.Store {
	t.Helper()
	ctx := context.Background()
	s, err := eventstore.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "es.db"), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	require.NoError(t, s.Init(ctx))
	var src bytes.Buffer
	for i := 1; i <= n; i++ {
		e := eventstore.StoredEvent{Position: int64(i), Event: eventstore.Event{
			AggregateID: fmt.Sprintf("acc-%d", i%100), AggregateVersion: int64(i/100 + 1), Type: "Deposited", Timestamp: int64(1000 + i),
			Payload: fmt.Appendf(nil, `{"amount":%d,"memo":"%0200d"}`, i, i),
		}}
		src.Write(transfer.AppendEventLine(nil, e))
	}
	_, err = transfer.ImportEvents(ctx, s, &src, nil)
	require.NoError(t, err)
	require.NoError(t, s.Secrets().SetSecret(ctx, "k1", "v1"))
	return s
}

func export(t *testing.T, s *eventstore.Store) []byte {
	t.Helper()
	var b bytes.Buffer
	_, err := transfer.ExportEvents(context.Background(), s, &b, nil)
	require.NoError(t, err)
	return b.Bytes()
}

func emptyStore(t *testing.T) *eventstore.Store {
	t.Helper()
	ctx := context.Background()
	s, err := eventstore.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "dst.db"), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	require.NoError(t, s.Init(ctx))
	return s
}

func TestWriteVerifyRestore(t *testing.T) {
	t.Parallel()
	src := newStore(t, 2_000)
	for _, c := range backup.Compressions {
		t.Run(string(c), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			file := filepath.Join(t.TempDir(), "b.esbackup")
			res, err := backup.Write(ctx, src, file, &backup.WriteOptions{Compression: c})
			require.NoError(t, err)
			require.EqualValues(t, 2_001, res.Mark.Events) // and the secret's audit event
			require.NoFileExists(t, file+".part")
			require.NoFileExists(t, file+".part.checkpoint")
			side, err := os.ReadFile(file + ".sha256")
			require.NoError(t, err)
			require.Equal(t, res.SHA256+"  b.esbackup\n", string(side))
			v, err := backup.Verify(ctx, file, nil)
			require.NoError(t, err)
			require.True(t, v.Sidecar)
			require.Equal(t, res.SHA256, v.SHA256)
			dst := emptyStore(t)
			rr, err := backup.Restore(ctx, dst, file, v.Manifest, nil)
			require.NoError(t, err)
			require.EqualValues(t, 2_001, rr.Events)
			require.Equal(t, export(t, src), export(t, dst))
		})
	}
}

// An interrupted Write leaves whole frames in FILE.part; the next Write
// resumes after them and the file is byte for byte an uninterrupted one.
func TestResumeGivesTheSameBytes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := newStore(t, 40_000) // about 10 MiB of stream: three frames
	dir := t.TempDir()
	whole := filepath.Join(dir, "whole")
	want, err := backup.Write(ctx, src, whole, nil)
	require.NoError(t, err)

	file := filepath.Join(dir, "cut")
	cctx, cancel := context.WithCancel(ctx)
	_, err = backup.Write(cctx, src, file, &backup.WriteOptions{ProgressFunc: func(backup.Progress) { cancel() }})
	var part *backup.PartError
	require.ErrorAs(t, err, &part)
	require.ErrorIs(t, err, context.Canceled)
	require.FileExists(t, file+".part")
	// A torn frame after the last whole one, as a crash leaves.
	f, err := os.OpenFile(file+".part", os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.Write([]byte("torn frame"))
	require.NoError(t, err)
	require.NoError(t, f.Close())

	var resumed *backup.Resume
	got, err := backup.Write(ctx, src, file, &backup.WriteOptions{ResumeFunc: func(r backup.Resume) { resumed = &r }})
	require.NoError(t, err)
	require.NotNil(t, resumed)
	require.Equal(t, part.FileBytes, resumed.FileBytes)
	require.Equal(t, part.FileBytes, got.ResumedAtByte)
	require.Equal(t, want.SHA256, got.SHA256)
	a, _ := os.ReadFile(whole)
	b, _ := os.ReadFile(file)
	require.True(t, bytes.Equal(a, b), "the resumed file differs from the uninterrupted one")
}

func TestResumeWithOtherCompressionRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := newStore(t, 30_000)
	file := filepath.Join(t.TempDir(), "b")
	cctx, cancel := context.WithCancel(ctx)
	_, err := backup.Write(cctx, src, file, &backup.WriteOptions{Compression: backup.Gzip, ProgressFunc: func(backup.Progress) { cancel() }})
	require.Error(t, err)
	_, err = backup.Write(ctx, src, file, &backup.WriteOptions{Compression: backup.Zstd})
	var mm *backup.CompressionMismatchError
	require.ErrorAs(t, err, &mm)
	require.Equal(t, backup.Gzip, mm.Begun)
}

// Verify refuses a damaged file, and a file its sidecar does not describe.
func TestVerifyRefusesDamage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := newStore(t, 500)
	for _, tt := range []struct {
		name   string
		damage func(t *testing.T, file string)
	}{
		{"FlippedByte", func(t *testing.T, file string) {
			b, err := os.ReadFile(file)
			require.NoError(t, err)
			b[len(b)/2] ^= 0x40
			require.NoError(t, os.WriteFile(file, b, 0o600))
		}},
		{"Truncated", func(t *testing.T, file string) {
			st, err := os.Stat(file)
			require.NoError(t, err)
			require.NoError(t, os.Truncate(file, st.Size()-10))
			require.NoError(t, os.Remove(file+".sha256"))
		}},
		{"OtherSidecar", func(t *testing.T, file string) {
			require.NoError(t, os.WriteFile(file+".sha256", []byte(fmt.Sprintf("%064d  b\n", 0)), 0o600))
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			file := filepath.Join(t.TempDir(), "b")
			_, err := backup.Write(ctx, src, file, &backup.WriteOptions{Compression: backup.None})
			require.NoError(t, err)
			tt.damage(t, file)
			_, err = backup.Verify(ctx, file, nil)
			require.True(t, errors.Is(err, backup.ErrBadBackup), "%v", err)
		})
	}
}
