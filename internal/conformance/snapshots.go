package conformance

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/esctl/esctl/eventstore"
)

func runSnapshots(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := NewStore(t, h, &eventstore.Options{MaxSnapshotBytes: 1 << 20})

	t.Run("LoadMissing", func(t *testing.T) {
		content, found, err := s.LoadSnapshot(ctx, "missing")
		require.NoError(t, err)
		require.False(t, found)
		require.Nil(t, content)
	})

	t.Run("EverySaveIsWritten", func(t *testing.T) {
		// reSolve wrote only every 100th save of a key (an in-memory
		// counter); here every save is stored.
		for i := range 150 {
			want := []byte(fmt.Sprintf(`{"state":%d}`, i))
			require.NoError(t, s.SaveSnapshot(ctx, "every", want))
			got, found, err := s.LoadSnapshot(ctx, "every")
			require.NoError(t, err)
			require.True(t, found)
			require.Equal(t, want, got)
		}
	})

	t.Run("BinaryAndEmptyContent", func(t *testing.T) {
		bin := []byte{0, 0xff, 0xfe, '\n', 0, 'x'}
		require.NoError(t, s.SaveSnapshot(ctx, "bin", bin))
		got, _, err := s.LoadSnapshot(ctx, "bin")
		require.NoError(t, err)
		require.Equal(t, bin, got)
		require.NoError(t, s.SaveSnapshot(ctx, "empty", nil))
		got, found, err := s.LoadSnapshot(ctx, "empty")
		require.NoError(t, err)
		require.True(t, found, "an empty snapshot exists")
		require.Empty(t, got)
		big := bytes.Repeat([]byte{7}, 1<<20)
		require.NoError(t, s.SaveSnapshot(ctx, "big", big))
		got, _, err = s.LoadSnapshot(ctx, "big")
		require.NoError(t, err)
		require.Equal(t, big, got)
	})

	t.Run("DropIsExactKey", func(t *testing.T) {
		// reSolve's PostgreSQL adapter dropped by unescaped LIKE prefix.
		keys := []string{"agg", "agg;1", "agg%", "agg_", "ag", "AGG"}
		for _, k := range keys {
			require.NoError(t, s.SaveSnapshot(ctx, k, []byte(k)))
		}
		require.NoError(t, s.DropSnapshot(ctx, "agg"))
		require.NoError(t, s.DropSnapshot(ctx, "agg%"))
		for _, k := range keys {
			_, found, err := s.LoadSnapshot(ctx, k)
			require.NoError(t, err)
			require.Equal(t, k != "agg" && k != "agg%", found, "key %q", k)
		}
		require.NoError(t, s.DropSnapshot(ctx, "never-saved"), "dropping a missing key succeeds")
	})

	t.Run("UnicodeKeys", func(t *testing.T) {
		k := "AG;invariant;агрегат-🎉"
		require.NoError(t, s.SaveSnapshot(ctx, k, []byte("u")))
		got, found, err := s.LoadSnapshot(ctx, k)
		require.NoError(t, err)
		require.True(t, found)
		require.Equal(t, "u", string(got))
	})

	t.Run("Validation", func(t *testing.T) {
		for _, k := range []string{"", strings.Repeat("k", eventstore.MaxSnapshotKeyBytes+1), "a\x00b", "a\xffb"} {
			require.ErrorIs(t, s.SaveSnapshot(ctx, k, []byte("x")), eventstore.ErrInvalidSnapshot)
			_, _, err := s.LoadSnapshot(ctx, k)
			require.ErrorIs(t, err, eventstore.ErrInvalidSnapshot)
			require.ErrorIs(t, s.DropSnapshot(ctx, k), eventstore.ErrInvalidSnapshot)
		}
		require.ErrorIs(t, s.SaveSnapshot(ctx, "too-big", make([]byte, 1<<20+1)), eventstore.ErrInvalidSnapshot)
	})
}
