package tooltest

import (
	"context"
	"maps"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/internal/conformance"
	"github.com/esctl/esctl/transfer"
)

// runCopy: Copy into a store of this engine and of every peer: the target
// exports the source's bytes and holds its secrets; a second Copy copies
// only what the source gained; a target whose history is not the source's
// is refused and left as it was.
func runCopy(t *testing.T, h conformance.Harness) {
	ctx := context.Background()
	targets := map[string]func(testing.TB) string{"same engine": h.NewURL}
	maps.Copy(targets, h.Peers)
	for _, name := range slices.Sorted(maps.Keys(targets)) {
		t.Run(name, func(t *testing.T) {
			src, _ := conformance.NewStore(t, h, nil)
			fillForBackup(t, src, 500)
			dst := conformance.Open(t, targets[name](t), nil)
			require.NoError(t, dst.Init(ctx))
			var progress []transfer.CopyProgress
			res, err := transfer.Copy(ctx, src, dst, &transfer.CopyOptions{SourceName: "src", ProgressFunc: func(p transfer.CopyProgress) {
				progress = append(progress, p)
			}})
			require.NoError(t, err)
			sd, err := src.Describe(ctx, nil)
			require.NoError(t, err)
			require.Equal(t, &transfer.CopyResult{Events: sd.EventCount, LastPosition: sd.LastPosition, Secrets: sd.SecretCount}, res)
			require.NotEmpty(t, progress)
			require.Equal(t, sd.LastPosition, progress[len(progress)-1].Total)
			require.Equal(t, string(exportAll(t, src)), string(exportAll(t, dst)))
			require.Equal(t, secretsExport(t, src), secretsExport(t, dst))
			imports, err := transfer.Imports(ctx, dst)
			require.NoError(t, err)
			require.Empty(t, imports, "a finished copy leaves no checkpoint")

			// Again: nothing new. Then the source grows: only that is copied.
			res, err = transfer.Copy(ctx, src, dst, &transfer.CopyOptions{SourceName: "src"})
			require.NoError(t, err)
			require.Zero(t, res.Events)
			require.Zero(t, res.Secrets)
			_, err = src.SaveEvent(ctx, eventstore.Event{AggregateID: "late", AggregateVersion: 1, Type: "Late", Payload: []byte(`{}`)})
			require.NoError(t, err)
			require.NoError(t, src.Secrets().SetSecret(ctx, "late", "k"))
			dry, err := transfer.Copy(ctx, src, dst, &transfer.CopyOptions{SourceName: "src", DryRun: true})
			require.NoError(t, err)
			require.EqualValues(t, 2, dry.Events, "the event and the secret's audit event")
			require.EqualValues(t, 1, dry.Secrets)
			require.Equal(t, sd.LastPosition, func() int64 { d, _ := dst.Describe(ctx, nil); return d.LastPosition }(), "a dry run writes nothing")
			res, err = transfer.Copy(ctx, src, dst, &transfer.CopyOptions{SourceName: "src"})
			require.NoError(t, err)
			require.Equal(t, sd.LastPosition, res.StartPosition)
			require.EqualValues(t, 2, res.Events)
			require.EqualValues(t, 1, res.Secrets)
			require.Equal(t, string(exportAll(t, src)), string(exportAll(t, dst)))

			// A target that went its own way is not a copy.
			_, err = dst.SaveEvent(ctx, eventstore.Event{AggregateID: "own", AggregateVersion: 1, Type: "Own", Payload: []byte(`{}`)})
			require.NoError(t, err)
			_, err = src.SaveEvent(ctx, eventstore.Event{AggregateID: "other", AggregateVersion: 1, Type: "Other", Payload: []byte(`{}`)})
			require.NoError(t, err)
			before := exportAll(t, dst)
			_, err = transfer.Copy(ctx, src, dst, nil)
			require.ErrorIs(t, err, transfer.ErrCopyMismatch)
			require.Equal(t, string(before), string(exportAll(t, dst)))
		})
	}
}
