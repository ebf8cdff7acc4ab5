package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/esctl/esctl/estype"
	"github.com/esctl/esctl/internal/driver"
)

// TestNoSync: a store opened with ?sync=off writes with synchronous=OFF on
// its writer connection; without it, FULL (a committed append survives a
// power loss).
func TestNoSync(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for url, want := range map[string]int{"?sync=off": 0, "?sync=OFF": 0, "": 2, "?sync=on": 2} {
		path := filepath.Join(t.TempDir(), "nosync.db")
		dd, closeFunc, err := openURL(ctx, "sqlite://"+path+url)
		require.NoError(t, err)
		d := dd.(*Dialect)
		_, err = d.Migrate(ctx, &driver.MigrateParams{Op: estype.MigrateUp})
		require.NoError(t, err)
		require.NoError(t, d.Write(ctx, &driver.WriteParams{}, func(driver.Tx) error { return nil }))
		var got int
		require.NoError(t, d.w.c.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&got))
		require.Equal(t, want, got, "URL suffix %q", url)
		require.NoError(t, closeFunc())
	}
}
