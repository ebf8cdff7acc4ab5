package main

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"
)

// TestCompressedImportHint: importing a compressed file is refused (exit
// 3) with a hint whose commands and flags exist. Before (2026-12-03) the
// hint named "esctl's --compress", which import does not take.
func TestCompressedImportHint(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	lines := eventLines(1, 10, 2)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(lines)
	require.NoError(t, zw.Close())
	enc, err := zstd.NewWriter(nil)
	require.NoError(t, err)
	zs := enc.EncodeAll(lines, nil)
	for name, data := range map[string][]byte{"events.ndjson.gz": gz.Bytes(), "events.ndjson.zst": zs} {
		in := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(in, data, 0o644))
		r := esctl(t, "", "--db", sqliteURL(t, "h.db"), "import", "--in", in)
		wantCode(t, r, exitBadInput, "compressed", "esctl restore --in FILE")
		flags := regexp.MustCompile(`--[a-z][a-z-]*`).FindAllString(r.stderr, -1)
		for _, f := range flags {
			help := mustEsctl(t, "", "import", "--help").stdout + mustEsctl(t, "", "restore", "--help").stdout
			if !strings.Contains(help, f) {
				t.Errorf("%s: the hint names %s, which neither import nor restore takes: %s", name, f, r.stderr)
			}
		}
	}
}

// TestSecretsAndSnapshotsList: list shows ids, states, keys and sizes,
// never a secret's value or a snapshot's content.
func TestSecretsAndSnapshotsList(t *testing.T) {
	t.Parallel()
	url := sqliteURL(t, "list.db")
	mustEsctl(t, "", "--db", url, "init")
	mustEsctl(t, "value-of-alpha", "--db", url, "secrets", "set", "alpha")
	mustEsctl(t, "value-of-beta", "--db", url, "secrets", "set", "beta")
	mustEsctl(t, "", "--db", url, "secrets", "delete", "beta", "--yes")
	mustEsctl(t, `{"balance":42}`, "--db", url, "snapshots", "set", "aggregate:account:1")

	r := mustEsctl(t, "", "--db", url, "secrets", "list")
	require.Regexp(t, `(?m)^IDX\s+ID\s+STATE\n1\s+alpha\s+set\n2\s+beta\s+deleted\n$`, r.stdout)
	j := mustEsctl(t, "", "--db", url, "-o", "json", "secrets", "list")
	require.JSONEq(t, `[{"idx":1,"id":"alpha","state":"set"},{"idx":2,"id":"beta","state":"deleted"}]`, j.stdout)

	r2 := mustEsctl(t, "", "--db", url, "snapshots", "list")
	require.Regexp(t, `(?m)^KEY\s+BYTES\naggregate:account:1\s+14\n$`, r2.stdout)
	j2 := mustEsctl(t, "", "--db", url, "-o", "json", "snapshots", "list")
	require.JSONEq(t, `[{"key":"aggregate:account:1","bytes":14}]`, j2.stdout)

	for _, out := range []string{r.stdout + r.stderr, j.stdout, r2.stdout + r2.stderr, j2.stdout} {
		for _, secret := range []string{"value-of-alpha", "value-of-beta", "balance"} {
			require.NotContains(t, out, secret)
		}
	}
	// An empty store lists nothing (JSON: an empty array).
	empty := sqliteURL(t, "empty.db")
	mustEsctl(t, "", "--db", empty, "init")
	require.JSONEq(t, `[]`, mustEsctl(t, "", "--db", empty, "-o", "json", "secrets", "list").stdout)
	require.JSONEq(t, `[]`, mustEsctl(t, "", "--db", empty, "-o", "json", "snapshots", "list").stdout)
}
