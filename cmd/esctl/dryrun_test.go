package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/transfer"
)

// fileSums returns the SHA-256 of the files of a SQLite store that hold
// its data: the database and its -wal file, when it exists. (The -shm
// file is a shared-memory index that readers update too: its read marks.)
func fileSums(t testing.TB, url string) map[string]string {
	t.Helper()
	path := strings.TrimPrefix(url, "sqlite://")
	out := map[string]string{}
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(path + suffix)
		if os.IsNotExist(err) {
			continue
		}
		require.NoError(t, err)
		sum := sha256.Sum256(b)
		out[filepath.Base(path+suffix)] = hex.EncodeToString(sum[:])
	}
	return out
}

// TestImportDryRun: import --dry-run reads and checks every line against
// the store as it is and writes nothing: the SQLite files are byte for byte
// the same, no checkpoint is recorded, the store is not frozen. It reports
// what the import would do, or the line the import would stop at.
func TestImportDryRun(t *testing.T) {
	t.Parallel()
	eachEngine(t, func(t *testing.T, engine, url string) {
		importInto(t, url, eventLines(1, 10, 3))
		before := exportOf(t, url)
		sums := fileSums(t, url)
		dir := t.TempDir()
		imports := func() string { return mustEsctl(t, "", "--db", url, "imports").stdout }
		cps := imports()

		good := writeFile(t, dir, "good.ndjson", eventLines(11, 20, 3))
		r := mustEsctl(t, "", "--db", url, "import", "--in", good, "--dry-run")
		wantCode(t, r, 0, "would import 20 events (20 lines", "last position 30", "(dry run)")
		s := summaryJSON(t, mustEsctl(t, "", "--db", url, "-o", "json", "import", "--in", good, "--dry-run").stdout)
		require.Equal(t, true, s["dryRun"])
		require.EqualValues(t, 20, num(t, s, "events"))

		// A pair already in the store, on line 4 of the file.
		in := writeFile(t, dir, "clash.ndjson", linesWith(11, 6, map[int64]string{14: "agg-1"}, 1))
		wantCode(t, esctl(t, "", "--db", url, "import", "--in", in, "--dry-run"), exitBadInput, "line 4", "already in the store", "dry run: nothing was written")

		// A pair repeated in the file, far apart (other batches).
		in = writeFile(t, dir, "repeat.ndjson", linesWith(11, 6001, map[int64]string{6011: "new-11"}, 1))
		wantCode(t, esctl(t, "", "--db", url, "import", "--in", in, "--dry-run"), exitBadInput, "line 6001", "dry run: nothing was written")

		// AUTO mode asks nothing, freezes nothing.
		wantCode(t, mustEsctl(t, "", "--db", url, "import", "--in", good, "--maintenance", "auto", "--dry-run"), 0, "would import 20 events")

		require.Equal(t, string(before), string(exportOf(t, url)), "the events")
		require.Equal(t, cps, imports(), "no checkpoint recorded")
		require.Equal(t, false, describe(t, url)["isFrozen"])
		if engine == "sqlite" {
			require.Equal(t, sums, fileSums(t, url), "the store's files are unchanged")
		}
		// The real import then does what the dry run said.
		wantCode(t, mustEsctl(t, "", "--db", url, "import", "--in", good), 0, "20 events imported")
		wantCode(t, esctl(t, "", "--db", sqliteURL(t, "missing.db"), "import", "--in", good, "--dry-run"), exitStoreState, "does not exist")
	})
}

// linesWith returns n export lines at positions first..., each event of
// its own aggregate new-POSITION at version 1, except those whose
// aggregate ids over gives (at version version).
func linesWith(first, n int64, over map[int64]string, version int64) []byte {
	var b []byte
	for pos := first; pos < first+n; pos++ {
		e := eventstore.Event{AggregateID: fmt.Sprintf("new-%d", pos), AggregateVersion: 1, Type: "T", Timestamp: pos, Payload: []byte(`{}`)}
		if id, ok := over[pos]; ok {
			e.AggregateID, e.AggregateVersion = id, version
		}
		b = transfer.AppendEventLine(b, eventstore.StoredEvent{Event: e, Position: pos})
	}
	return b
}

// TestRestoreDryRun: restore --dry-run verifies the backup and says what
// the restore would do to the target, which stays byte for byte the same
// (or is not created).
func TestRestoreDryRun(t *testing.T) {
	t.Parallel()
	src := sqliteURL(t, "src.db")
	seed(t, src, 40, 4, 2)
	bk := filepath.Join(t.TempDir(), "s.bk")
	mustEsctl(t, "", "--db", src, "backup", "--out", bk)

	missing := sqliteURL(t, "new.db")
	wantCode(t, mustEsctl(t, "", "--db", missing, "restore", "--in", bk, "--dry-run"), 0, "verified", "would create the store", "(dry run)")
	_, err := os.Stat(strings.TrimPrefix(missing, "sqlite://"))
	require.True(t, os.IsNotExist(err), "the dry run created the target")

	empty := sqliteURL(t, "empty.db")
	mustEsctl(t, "", "--db", empty, "init")
	sums := fileSums(t, empty)
	wantCode(t, mustEsctl(t, "", "--db", empty, "restore", "--in", bk, "--dry-run"), 0, "would restore 43 events, 2 secrets")
	require.Equal(t, sums, fileSums(t, empty))

	full := sqliteURL(t, "full.db")
	seed(t, full, 5, 1, 0)
	sums = fileSums(t, full)
	wantCode(t, esctl(t, "", "--db", full, "restore", "--in", bk, "--dry-run"), exitStoreState, "dry run: nothing was written", "--force")
	wantCode(t, mustEsctl(t, "", "--db", full, "restore", "--in", bk, "--dry-run", "--force"), 0, "would drop the 5 events")
	require.Equal(t, sums, fileSums(t, full))

	// A bad backup fails the dry run as it fails the restore (exit 3).
	b, err := os.ReadFile(bk)
	require.NoError(t, err)
	b[len(b)/2] ^= 0xff
	bad := writeFile(t, t.TempDir(), "bad.bk", b)
	wantCode(t, esctl(t, "", "--db", empty, "restore", "--in", bad, "--dry-run"), exitBadInput)
	require.Equal(t, sums, fileSums(t, full))
}

// TestSecretsImportDryRun: secrets import --dry-run checks every line
// against the store's secrets and writes nothing.
func TestSecretsImportDryRun(t *testing.T) {
	t.Parallel()
	url := sqliteURL(t, "s.db")
	mustEsctl(t, "", "--db", url, "init")
	mustEsctl(t, "v1", "--db", url, "secrets", "set", "taken")
	sums := fileSums(t, url)
	dir := t.TempDir()
	good := writeFile(t, dir, "good.ndjson", []byte(`{"secret":"a","id":"new-1","idx":5}`+"\n"+`{"secret":"b","id":"new-2"}`+"\n"+`{"secret":null,"id":"gone","idx":9}`+"\n"))
	wantCode(t, mustEsctl(t, "", "--db", url, "secrets", "import", "--in", good, "--dry-run"), 0, "would import 3 secrets (3 lines)", "(dry run)")
	clash := writeFile(t, dir, "clash.ndjson", []byte(`{"secret":"a","id":"new-1"}`+"\n"+`{"secret":"b","id":"taken"}`+"\n"))
	wantCode(t, esctl(t, "", "--db", url, "secrets", "import", "--in", clash, "--dry-run"), exitBadInput, "line 2", "dry run: nothing was written")
	twice := writeFile(t, dir, "twice.ndjson", []byte(`{"secret":"a","id":"x","idx":7}`+"\n"+`{"secret":"b","id":"y","idx":7}`+"\n"))
	r := esctl(t, "", "--db", url, "secrets", "import", "--in", twice, "--dry-run")
	require.NotEqual(t, 0, r.code, r.String())
	require.Contains(t, r.stderr, "line 2")
	require.Equal(t, sums, fileSums(t, url), "the store's files are unchanged")
	require.Contains(t, mustEsctl(t, "", "--db", url, "secrets", "list").stdout, "taken")
	require.NotContains(t, mustEsctl(t, "", "--db", url, "secrets", "list").stdout, "new-1")
	// The real import does what the dry run said.
	wantCode(t, mustEsctl(t, "", "--db", url, "secrets", "import", "--in", good), 0, "3 secrets imported")
}

// TestCopyDryRun: copy --dry-run checks the target (missing, empty, an
// earlier copy, or not a copy) and what would be copied, and writes nothing.
func TestCopyDryRun(t *testing.T) {
	t.Parallel()
	src := sqliteURL(t, "src.db")
	seed(t, src, 30, 3, 2)
	missing := sqliteURL(t, "missing.db")
	wantCode(t, mustEsctl(t, "", "copy", "--from", src, "--to", missing, "--dry-run"), 0, "would create the store", "copy all 33 events", "(dry run)")
	_, err := os.Stat(strings.TrimPrefix(missing, "sqlite://"))
	require.True(t, os.IsNotExist(err), "the dry run created the target")

	dst := sqliteURL(t, "dst.db")
	mustEsctl(t, "", "copy", "--from", src, "--to", dst)
	seed2(t, src, 5)
	sums := fileSums(t, dst)
	wantCode(t, mustEsctl(t, "", "copy", "--from", src, "--to", dst, "--dry-run"), 0, "would copy 5 events (to position 38) and 0 secrets")
	require.Equal(t, sums, fileSums(t, dst), "the target's files are unchanged")

	other := sqliteURL(t, "other.db")
	seed(t, other, 3, 1, 0)
	sums = fileSums(t, other)
	wantCode(t, esctl(t, "", "copy", "--from", src, "--to", other, "--dry-run"), exitStoreState, "not an earlier copy")
	require.Equal(t, sums, fileSums(t, other))

	// The real copy does what the dry run said.
	wantCode(t, mustEsctl(t, "", "copy", "--from", src, "--to", dst), 0, "5 events copied")
}

// TestIncrementalImportDryRun: incremental-import --dry-run reports what
// the merge would do and stages and writes nothing.
func TestIncrementalImportDryRun(t *testing.T) {
	t.Parallel()
	url := sqliteURL(t, "inc.db")
	importInto(t, url, eventLines(1, 10, 2))
	sums := fileSums(t, url)
	dir := t.TempDir()
	late := writeFile(t, dir, "late.ndjson", []byte(
		`{"type":"T","timestamp":99000,"aggregateId":"new","payload":{}}`+"\n"+
			`{"type":"T","timestamp":99000,"aggregateId":"new","payload":{}}`+"\n"+
			`{"type":"T","timestamp":5,"aggregateId":"old","payload":{}}`+"\n"))
	wantCode(t, esctl(t, "", "--db", url, "incremental-import", "--in", late, "--dry-run"), exitBadInput, "older", "dry run: nothing was written")
	wantCode(t, mustEsctl(t, "", "--db", url, "incremental-import", "--in", late, "--older", "skip", "--dry-run"), 0,
		"would append 1 event (positions 11 to 11), drop 1 duplicate and skip 1 older event", "(dry run)")
	require.Equal(t, sums, fileSums(t, url), "the store's files are unchanged")
	wantCode(t, mustEsctl(t, "", "--db", url, "incremental-import", "--in", late, "--older", "skip"), 0, "1 event appended", "1 duplicate dropped", "1 older event skipped")
}
