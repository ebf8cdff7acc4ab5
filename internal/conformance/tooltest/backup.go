package tooltest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/esctl/esctl/backup"
	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/internal/conformance"
	"github.com/esctl/esctl/transfer"
)

func runBackup(t *testing.T, h conformance.Harness) {
	t.Run("RoundTripAcrossEngines", func(t *testing.T) { t.Parallel(); runBackupRoundTrip(t, h) })
	t.Run("ResumeFromEveryMark", func(t *testing.T) { t.Parallel(); runBackupResume(t, h) })
	t.Run("Verify", func(t *testing.T) { t.Parallel(); runBackupVerify(t, h) })
	t.Run("RestoreRefusesAndResumes", func(t *testing.T) { t.Parallel(); runRestoreResume(t, h) })
}

// fillForBackup gives s events over several aggregates (payloads with
// unicode and escapes; metadata on two in three), secrets with tombstones, and snapshots whose
// content is not valid UTF-8.
func fillForBackup(t testing.TB, s *eventstore.Store, events int) {
	t.Helper()
	ctx := context.Background()
	batch := make([]eventstore.Event, 0, 100)
	for i := range events {
		batch = append(batch, eventstore.Event{
			AggregateID:      fmt.Sprintf("acc-%d", i%7),
			AggregateVersion: int64(i/7) + 1,
			Type:             []string{"Opened", "Deposited", "Withdrawn"}[i%3],
			Timestamp:        int64(1_700_000_000_000 + i),
			Payload:          []byte(fmt.Sprintf(`{"n":%d,"note":"caf\u00e9 \"%d\" \\ ü","amount":1.50}`, i, i)),
		})
		if i%3 != 0 { // metadata on two events in three
			batch[len(batch)-1].Metadata = []byte(fmt.Sprintf(`{"correlationId":"c-%d","causationId":"%d","note":"\u00e9 \"%d\"","n":1.50}`, i/3, i, i))
		}
		if len(batch) == cap(batch) || i == events-1 {
			_, err := s.SaveEvents(ctx, batch)
			require.NoError(t, err)
			batch = batch[:0]
		}
	}
	m := s.Secrets()
	for i := range 12 {
		require.NoError(t, m.SetSecret(ctx, fmt.Sprintf("subject-%d", i), fmt.Sprintf("key-%d \"é\"", i)))
	}
	for _, i := range []int{2, 9} {
		_, err := m.DeleteSecret(ctx, fmt.Sprintf("subject-%d", i))
		require.NoError(t, err)
	}
	for i := range 5 {
		require.NoError(t, s.SaveSnapshot(ctx, fmt.Sprintf("acc-%d:v1", i), []byte{0xff, 0x00, byte(i), '"', '\n'}))
	}
	require.NoError(t, s.SaveSnapshot(ctx, "empty", nil))
}

// backupOf takes a whole backup and returns its bytes, its manifest, and
// every mark with the number of bytes written before it.
func backupOf(t testing.TB, s *eventstore.Store, markBytes int64) ([]byte, *backup.Manifest, []backup.Mark, []int) {
	t.Helper()
	var buf bytes.Buffer
	var marks []backup.Mark
	var offsets []int
	man, err := backup.WriteStream(context.Background(), s, &buf, &backup.StreamOptions{
		MarkBytes: markBytes, PageSize: 37,
		Mark: func(m backup.Mark) error {
			marks = append(marks, m)
			offsets = append(offsets, buf.Len())
			return nil
		},
	})
	require.NoError(t, err)
	require.NotEmpty(t, marks)
	require.Equal(t, "done", marks[len(marks)-1].Section, "the last mark follows the manifest")
	require.Equal(t, buf.Len(), offsets[len(offsets)-1])
	return buf.Bytes(), man, marks, offsets
}

// snapshotsOf returns the store's snapshots read back by key.
func snapshotsOf(t testing.TB, s *eventstore.Store, keys []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, k := range keys {
		c, found, err := s.LoadSnapshot(context.Background(), k)
		require.NoError(t, err)
		if found {
			out[k] = string(c)
		}
	}
	return out
}

var backupSnapshotKeys = []string{"acc-0:v1", "acc-1:v1", "acc-2:v1", "acc-3:v1", "acc-4:v1", "empty", "missing"}

func secretsExport(t testing.TB, s *eventstore.Store) string {
	t.Helper()
	var buf bytes.Buffer
	_, err := transfer.ExportSecrets(context.Background(), s, &buf, nil)
	require.NoError(t, err)
	return buf.String()
}

func runBackupRoundTrip(t *testing.T, h conformance.Harness) {
	ctx := context.Background()
	src, _ := conformance.NewStore(t, h, nil)
	fillForBackup(t, src, 500)
	data, man, _, _ := backupOf(t, src, 4096)
	require.EqualValues(t, 500+12+2, man.Events, "events, and the audit events of secrets")
	require.EqualValues(t, 12, man.Secrets)
	require.EqualValues(t, 2, man.Tombstones)
	require.EqualValues(t, 6, man.Snapshots)
	require.EqualValues(t, man.Events, man.LastPosition)
	require.Equal(t, eventstore.CursorAt(man.LastPosition), man.EndCursor)
	require.True(t, strings.HasPrefix(string(data), `{"esctlBackup":1,"engine":"`), "header first")

	again, _, _, _ := backupOf(t, src, 1<<20)
	require.Equal(t, data, again, "two backups of an unchanged store are the same bytes, whatever the mark spacing")

	verified, err := backup.VerifyStream(bytes.NewReader(data))
	require.NoError(t, err)
	require.Equal(t, man, verified)

	wantEvents, wantSecrets := exportAll(t, src), secretsExport(t, src)
	require.Equal(t, 333, strings.Count(string(wantEvents), `,"metadata":{"correlationId"`), "the backup's source has metadata")
	wantSnaps := snapshotsOf(t, src, backupSnapshotKeys)
	targets := map[string]func(testing.TB) string{"same engine": h.NewURL}
	maps.Copy(targets, h.Peers)
	for _, name := range slices.Sorted(maps.Keys(targets)) {
		t.Run(name, func(t *testing.T) {
			dst := conformance.Open(t, targets[name](t), nil)
			require.NoError(t, dst.Init(ctx))
			res, err := backup.RestoreStream(ctx, dst, bytes.NewReader(data), verified, nil)
			require.NoError(t, err)
			require.False(t, res.Resumed)
			require.EqualValues(t, man.Events, res.Events)
			require.EqualValues(t, man.Secrets, res.Secrets)
			require.EqualValues(t, man.Snapshots, res.Snapshots)
			require.Equal(t, string(wantEvents), string(exportAll(t, dst)), "the restored store exports the source's bytes")
			require.Equal(t, wantSecrets, secretsExport(t, dst))
			require.Equal(t, wantSnaps, snapshotsOf(t, dst, backupSnapshotKeys))
			// A backup of the restored store is the source's backup but for
			// the engine named in it.
			back, _, _, _ := backupOf(t, dst, 4096)
			verifiedBack, err := backup.VerifyStream(bytes.NewReader(back))
			require.NoError(t, err)
			require.Equal(t, man.Events, verifiedBack.Events)
			if dst.Engine() == src.Engine() {
				require.Equal(t, data, back)
			}
			// Restoring it again is a no-op.
			res, err = backup.RestoreStream(ctx, dst, bytes.NewReader(data), verified, nil)
			require.NoError(t, err)
			require.True(t, res.Resumed)
			require.Equal(t, string(wantEvents), string(exportAll(t, dst)))
		})
	}
}

func runBackupResume(t *testing.T, h conformance.Harness) {
	ctx := context.Background()
	src, _ := conformance.NewStore(t, h, nil)
	fillForBackup(t, src, 300)
	full, _, marks, offsets := backupOf(t, src, 300)
	require.Greater(t, len(marks), 10)
	// The store goes on: events appended after the backup began are not in
	// a resumed backup, so it stays the same bytes.
	_, err := src.SaveEvent(ctx, eventstore.Event{AggregateID: "late", AggregateVersion: 1, Type: "Late", Payload: []byte(`{}`)})
	require.NoError(t, err)
	sections := map[string]bool{}
	for i, m := range marks[:len(marks)-1] {
		sections[m.Section] = true
		var buf bytes.Buffer
		buf.Write(full[:offsets[i]])
		var next []int
		_, err := backup.WriteStream(ctx, src, &buf, &backup.StreamOptions{
			Resume: &m, MarkBytes: 300,
			Mark: func(backup.Mark) error { next = append(next, buf.Len()); return nil },
		})
		require.NoError(t, err, "mark %d", i)
		require.Equal(t, full, buf.Bytes(), "resumed at mark %d (%s, after %d) gives the same bytes", i, m.Section, m.After)
		require.Equal(t, offsets[i+1:], next, "and marks at the same places")
	}
	require.True(t, sections["events"] && sections["secrets"], "marks fell in several sections: %v", sections)

	// A mark of this store does not resume a backup of another store.
	other, _ := conformance.NewStore(t, h, nil)
	fillForBackup(t, other, 301)
	for _, m := range marks {
		if m.Section == "events" && m.After > 0 {
			_, err := backup.WriteStream(ctx, other, &bytes.Buffer{}, &backup.StreamOptions{Resume: &m})
			require.ErrorIs(t, err, transfer.ErrResumeMismatch)
			break
		}
	}
	empty, _ := conformance.NewStore(t, h, nil)
	_, err = backup.WriteStream(ctx, empty, &bytes.Buffer{}, &backup.StreamOptions{Resume: &marks[1]})
	require.ErrorIs(t, err, transfer.ErrResumeMismatch, "a store shorter than the backup")
	_, err = backup.WriteStream(ctx, src, &bytes.Buffer{}, &backup.StreamOptions{Resume: &marks[len(marks)-1]})
	require.ErrorIs(t, err, transfer.ErrResumeMismatch, "a finished backup")

	// Cancelling stops the backup; the marks before it stand.
	cctx, cancel := context.WithCancel(ctx)
	n := 0
	_, err = backup.WriteStream(cctx, src, &bytes.Buffer{}, &backup.StreamOptions{MarkBytes: 2048, PageSize: 10,
		Mark: func(backup.Mark) error {
			if n++; n == 2 {
				cancel()
			}
			return nil
		}})
	require.ErrorIs(t, err, context.Canceled)
	cancel()
}

func runBackupVerify(t *testing.T, h conformance.Harness) {
	src, _ := conformance.NewStore(t, h, nil)
	fillForBackup(t, src, 120)
	data, _, _, offsets := backupOf(t, src, 1024)
	bad := func(name string, b []byte, fragment string) {
		t.Helper()
		_, err := backup.VerifyStream(bytes.NewReader(b))
		require.ErrorIs(t, err, backup.ErrBadBackup, name)
		require.ErrorIs(t, err, transfer.ErrBadInput, name)
		var le *transfer.LineError
		require.ErrorAs(t, err, &le, name)
		require.Positive(t, le.Line, name)
		require.Contains(t, err.Error(), fragment, name)
	}
	// A flipped byte inside a payload: every line still parses, the
	// checksum does not match.
	at := bytes.Index(data, []byte(`"n":57,`)) + 5
	flipped := bytes.Clone(data)
	flipped[at] = '8'
	bad("flipped digit", flipped, "SHA-256")
	broken := bytes.Clone(data)
	broken[bytes.Index(data, []byte(`"n":58,`))] = '\''
	bad("broken JSON", broken, "line")
	bad("truncated at a mark", data[:offsets[3]], "incomplete")
	bad("truncated mid-line", data[:offsets[3]+10], "line")
	bad("empty", nil, "incomplete")
	bad("not a backup", exportAll(t, src), "not an esctl backup")
	bad("data after the manifest", append(bytes.Clone(data), data[:offsets[0]]...), "after the manifest")
	bad("newer format", bytes.Replace(data, []byte(`{"esctlBackup":1,`), []byte(`{"esctlBackup":2,`), 1), "newer")
	manAt := bytes.LastIndex(data, []byte(`{"manifest":`))
	withCount := bytes.Clone(data)
	withCount = append(withCount[:manAt], bytes.Replace(data[manAt:], []byte(`"snapshots":6`), []byte(`"snapshots":5`), 1)...)
	bad("manifest count", withCount, "counts differ")
}

func runRestoreResume(t *testing.T, h conformance.Harness) {
	ctx := context.Background()
	src, _ := conformance.NewStore(t, h, nil)
	fillForBackup(t, src, 400)
	data, man, _, _ := backupOf(t, src, 1<<20)

	// A non-empty target is refused, and nothing is written.
	busy, _ := conformance.NewStore(t, h, nil)
	_, err := busy.SaveEvent(ctx, eventstore.Event{AggregateID: "x", AggregateVersion: 1, Type: "T", Payload: []byte(`{}`)})
	require.NoError(t, err)
	_, err = backup.RestoreStream(ctx, busy, bytes.NewReader(data), man, nil)
	require.ErrorIs(t, err, backup.ErrNotEmpty)
	var ne *backup.NotEmptyError
	require.ErrorAs(t, err, &ne)
	require.EqualValues(t, 1, ne.Events)
	snapOnly, _ := conformance.NewStore(t, h, nil)
	require.NoError(t, snapOnly.SaveSnapshot(ctx, "k", []byte("v")))
	_, err = backup.RestoreStream(ctx, snapOnly, bytes.NewReader(data), man, nil)
	require.ErrorIs(t, err, backup.ErrNotEmpty, "a snapshot alone makes a store non-empty")

	// Interrupted after two batches, then resumed: the same store as one
	// uninterrupted restore.
	dst, _ := conformance.NewStore(t, h, nil)
	cctx, cancel := context.WithCancel(ctx)
	batches := 0
	res, err := backup.RestoreStream(cctx, dst, bytes.NewReader(data), man, &backup.RestoreOptions{BatchEvents: 50,
		ProgressFunc: func(p backup.RestoreProgress) {
			if p.Section == "events" {
				if batches++; batches == 2 {
					cancel()
				}
			}
		}})
	cancel()
	require.ErrorIs(t, err, context.Canceled)
	require.Positive(t, res.Events)
	require.Less(t, res.Events, man.Events)
	d, err := dst.Describe(ctx, nil)
	require.NoError(t, err)
	require.EqualValues(t, res.Events, d.EventCount, "the committed batches, nothing more")

	res, err = backup.RestoreStream(ctx, dst, bytes.NewReader(data), man, &backup.RestoreOptions{BatchEvents: 50})
	require.NoError(t, err)
	require.True(t, res.Resumed)
	require.EqualValues(t, man.Events, res.Events)
	require.Equal(t, string(exportAll(t, src)), string(exportAll(t, dst)))
	require.Equal(t, secretsExport(t, src), secretsExport(t, dst))
	require.Equal(t, snapshotsOf(t, src, backupSnapshotKeys), snapshotsOf(t, dst, backupSnapshotKeys))
	imports, err := transfer.Imports(ctx, dst)
	require.NoError(t, err)
	evID, secID := backup.SourceIDs(man)
	var ids []string
	for _, cp := range imports {
		ids = append(ids, cp.SourceID)
		require.True(t, cp.Done, cp.SourceID)
	}
	require.ElementsMatch(t, []string{evID, secID}, ids)

	// A stream that is not the verified one fails (here: another backup
	// with the first one's manifest).
	other, _ := conformance.NewStore(t, h, nil)
	fillForBackup(t, other, 401)
	otherData, _, _, _ := backupOf(t, other, 1<<20)
	fresh, _ := conformance.NewStore(t, h, nil)
	_, err = backup.RestoreStream(ctx, fresh, bytes.NewReader(otherData), man, nil)
	require.Error(t, err)
	require.True(t, errors.Is(err, backup.ErrBadBackup) || errors.Is(err, transfer.ErrBadInput), "%v", err)
}
