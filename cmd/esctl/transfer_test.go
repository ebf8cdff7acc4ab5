package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/esctl/esctl/eventstore"
)

func TestExport(t *testing.T) {
	t.Parallel()
	lines := eventLines(1, 30, 3)
	url := importedStore(t, lines)
	dir := t.TempDir()

	// To stdout: the data only; the summary, with the cursor, on stderr.
	r := mustEsctl(t, "", "--db", url, "export")
	wantBytes(t, "export to stdout", []byte(r.stdout), lines)
	wantCode(t, r, 0, "30 events", "to stdout", "continue with --cursor "+string(eventstore.CursorAt(30)))
	noJSONLines(t, "stderr", r.stderr)
	r = mustEsctl(t, "", "--db", url, "-o", "json", "export", "--out", "-")
	wantBytes(t, "export --out -", []byte(r.stdout), lines)
	if s := summaryJSON(t, r.stderr); num(t, s, "events") != 30 || s["cursor"] != string(eventstore.CursorAt(30)) || num(t, s, "bytes") != int64(len(lines)) {
		t.Fatalf("export -o json summary: %v", s)
	}

	// To a file: written as FILE.part, renamed when complete.
	out := filepath.Join(dir, "out.ndjson")
	r = mustEsctl(t, "", "--db", url, "export", "--out", out)
	if r.stdout != "" {
		t.Fatalf("export to a file wrote to stdout: %s", r)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	wantBytes(t, "export --out FILE", got, lines)
	if _, err := os.Stat(out + ".part"); !os.IsNotExist(err) {
		t.Fatalf("%s.part left behind: %v", out, err)
	}
	// With -o json and a file, the summary is the only thing on stdout.
	r = mustEsctl(t, "", "--db", url, "-o", "json", "export", "--out", filepath.Join(dir, "j.ndjson"))
	if s := decodeJSON(t, r.stdout); s["command"] != "export" || num(t, s, "events") != 30 {
		t.Fatalf("export --out -o json: %s", r)
	}

	// An existing file is kept unless --force.
	r = esctl(t, "", "--db", url, "export", "--out", out, "--cursor", string(eventstore.CursorAt(20)))
	wantCode(t, r, exitUsage, "exists", "--force")
	// --force replaces a file: asked (off a terminal, --yes answers).
	r = esctl(t, "", "--db", url, "export", "--out", out, "--cursor", string(eventstore.CursorAt(20)), "--force")
	wantCode(t, r, exitUsage, "refusing to overwrite "+out, "pass --yes")
	mustEsctl(t, "", "--db", url, "export", "--out", out, "--cursor", string(eventstore.CursorAt(20)), "--force", "--yes")
	got, _ = os.ReadFile(out)
	wantBytes(t, "export --cursor --force", got, []byte(pick(lines, func(p int) bool { return p > 20 })))

	// --maintenance auto freezes the store while it runs, and unfreezes it.
	r = mustEsctl(t, "", "--db", url, "export", "--maintenance", "auto")
	wantBytes(t, "export --maintenance auto", []byte(r.stdout), lines)
	if describe(t, url)["isFrozen"] != false {
		t.Fatal("export --maintenance auto left the store frozen")
	}
	// ... but leaves alone a freeze that is not its own.
	mustEsctl(t, "", "--db", url, "freeze")
	mustEsctl(t, "", "--db", url, "export", "--maintenance", "auto")
	if describe(t, url)["isFrozen"] != true {
		t.Fatal("export --maintenance auto lifted someone else's freeze")
	}
}

func TestExportFailures(t *testing.T) {
	t.Parallel()
	url := importedStore(t, eventLines(1, 5, 1))
	wantCode(t, esctl(t, "", "--db", url, "export", "--cursor", "nope"), exitBadInput, "invalid cursor")
	wantCode(t, esctl(t, "", "--db", url, "export", "--cursor", string(eventstore.CursorAt(6))), exitBadInput, "beyond the end")
	wantCode(t, esctl(t, "", "--db", sqliteURL(t, "none.db"), "export"), exitStoreState, "does not exist")
	r := esctl(t, "", "--db", url, "export", "--out", filepath.Join(t.TempDir(), "no", "such", "dir.ndjson"))
	wantCode(t, r, exitFailure, "no such file or directory")
}

func TestImport(t *testing.T) {
	t.Parallel()
	lines := eventLines(1, 50, 5)
	dir := t.TempDir()
	file := writeFile(t, dir, "events.ndjson", lines)

	// From a file.
	dst := sqliteURL(t, "dst.db")
	r := mustEsctl(t, "", "--db", dst, "-o", "json", "import", "--in", file)
	s := decodeJSON(t, r.stdout)
	if num(t, s, "events") != 50 || num(t, s, "byteOffset") != int64(len(lines)) || s["done"] != true || num(t, s, "lines") != 50 || num(t, s, "lastPosition") != 50 {
		t.Fatalf("import summary: %v", s)
	}
	wantBytes(t, "export after import", exportOf(t, dst), lines)
	// It is recorded, and running it again imports nothing new.
	r = mustEsctl(t, "", "--db", dst, "imports")
	if !strings.Contains(r.stdout, "events:"+file) || !strings.Contains(r.stdout, "true") {
		t.Fatalf("imports: %s", r)
	}
	wantCode(t, mustEsctl(t, "", "--db", dst, "import", "--in", file, "--resume"), 0, "0 events imported (50 in all for this source)")

	// From stdin.
	dst2 := sqliteURL(t, "dst2.db")
	wantCode(t, mustEsctl(t, string(lines), "--db", dst2, "import"), 0, "50 events imported", "byte offset "+fmt.Sprint(len(lines)))
	wantBytes(t, "export after import from stdin", exportOf(t, dst2), lines)
	list := mustEsctl(t, "", "--db", dst2, "-o", "json", "imports").stdout
	if !strings.Contains(list, `"sourceId": "events:stdin"`) || !strings.Contains(list, `"done": true`) {
		t.Fatalf("imports -o json: %s", list)
	}

	// A store that already holds events: the file's positions do not
	// continue it (exit 3), --renumber gives them new ones.
	r = esctl(t, "", "--db", dst2, "import", "--in", file, "--source-id", "again")
	wantCode(t, r, exitBadInput, "line 1 (byte offset 0)", "not above the store's last position 50", "renumber")
	r = mustEsctl(t, "", "--db", dst2, "-o", "json", "import", "--in", writeFile(t, dir, "other.ndjson", bytes.ReplaceAll(eventLines(1, 50, 7), []byte(`"agg-`), []byte(`"other-`))), "--renumber")
	if s := decodeJSON(t, r.stdout); num(t, s, "events") != 50 || num(t, s, "lastPosition") != 100 {
		t.Fatalf("import --renumber: %v", s)
	}
	d := describe(t, dst2)
	if num(t, d, "eventCount") != 100 {
		t.Fatalf("after --renumber: %v", d)
	}

	// --maintenance auto replaces the store's events: it asks first.
	r = esctl(t, "", "--db", dst2, "import", "--in", file, "--maintenance", "auto")
	wantCode(t, r, exitUsage, "refusing to replace the 100 events", "pass --yes")
	mustEsctl(t, "", "--db", dst2, "import", "--in", file, "--maintenance", "auto", "--yes")
	wantBytes(t, "export after --maintenance auto", exportOf(t, dst2), lines)
	if d := describe(t, dst2); d["isFrozen"] != false {
		t.Fatalf("import --maintenance auto left the store frozen: %v", d)
	}

	// Manual imports are maintenance: a frozen store (frozen to keep
	// applications out meanwhile) takes them.
	dst3 := sqliteURL(t, "dst3.db")
	mustEsctl(t, "", "--db", dst3, "init")
	mustEsctl(t, "", "--db", dst3, "freeze")
	mustEsctl(t, "", "--db", dst3, "import", "--in", file)
	wantBytes(t, "import into a frozen store", exportOf(t, dst3), lines)
}

// TestImportBadLine is acceptance 4: a bad line exits 3 naming its line and
// byte offset, and the target holds exactly what was committed before it
// (every line before it: the last batch is cut there). Fixing the line and
// resuming (--resume, or --byte-offset with the rest) completes the import.
func TestImportBadLine(t *testing.T) {
	t.Parallel()
	const n, bad = 12_000, 10_500 // batches of 5,000: two full ones, then part of the third
	good := eventLines(1, n, 100)
	offset := 0
	for range bad - 1 {
		offset += bytes.IndexByte(good[offset:], '\n') + 1
	}
	end := offset + bytes.IndexByte(good[offset:], '\n') + 1
	corrupt := append(append(append([]byte{}, good[:offset]...), `{"type":"Broken","timestamp":1,`+"\n"...), good[end:]...)
	dir := t.TempDir()
	file := writeFile(t, dir, "bad.ndjson", corrupt)
	url := sqliteURL(t, "t.db")

	r := esctl(t, "", "--db", url, "import", "--in", file)
	wantCode(t, r, exitBadInput, fmt.Sprintf("line %d (byte offset %d", bad, offset),
		fmt.Sprintf("%s (%s) of this source committed, through byte offset %d; continue with: esctl --db %s import --in %s --resume", plural(bad-1, "line"), plural(bad-1, "event"), offset, url, file))
	if r.stdout != "" {
		t.Fatalf("import error on stdout: %s", r)
	}
	wantBytes(t, "the target after a bad line", exportOf(t, url), good[:offset])
	cp := decodeJSON(t, strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(mustEsctl(t, "", "--db", url, "-o", "json", "imports").stdout), "["), "]"))
	if num(t, cp, "byteOffset") != int64(offset) || num(t, cp, "lines") != bad-1 || cp["done"] != false {
		t.Fatalf("checkpoint after a bad line: %v", cp)
	}

	// Resuming the unfixed file fails again at the same line, adding nothing.
	wantCode(t, esctl(t, "", "--db", url, "import", "--in", file, "--resume"), exitBadInput, fmt.Sprintf("line %d (byte offset %d", bad, offset))
	// --byte-offset must be the recorded one.
	r = esctl(t, "", "--db", url, "import", "--in", file, "--byte-offset", "5")
	wantCode(t, r, exitBadInput, "byte offset 5 is not the committed offset", "nothing was written")
	// Another file is refused by --resume (its first bytes differ).
	other := writeFile(t, dir, "other.ndjson", append([]byte(`{"x":1}`+"\n"), good...))
	wantCode(t, esctl(t, "", "--db", url, "import", "--in", other, "--resume", "--source-id", "events:"+file), exitBadInput, "differ")
	wantCode(t, esctl(t, "", "--db", url, "import", "--in", file, "--resume", "--byte-offset", "5"), exitUsage, "pass one")
	wantBytes(t, "the target after refused resumes", exportOf(t, url), good[:offset])

	// Fixed in place, --resume finishes it.
	writeFile(t, dir, "bad.ndjson", good)
	wantCode(t, mustEsctl(t, "", "--db", url, "import", "--in", file, "--resume"), 0, fmt.Sprintf("%s events imported (%s in all", commas(n-bad+1), commas(n)))
	wantBytes(t, "the target after --resume", exportOf(t, url), good)

	// The same with --byte-offset, on a smaller file: the rest of the
	// input on stdin, or the file itself (esctl seeks).
	small := eventLines(1, 300, 10)
	smallOffset := bytes.Index(small, eventLines(120, 1, 10))
	smallCorrupt := append(append(append([]byte{}, small[:smallOffset]...), "{}\n"...), small[smallOffset+len(eventLines(120, 1, 10)):]...)
	url2 := sqliteURL(t, "t2.db")
	wantCode(t, esctl(t, string(smallCorrupt), "--db", url2, "import"), exitBadInput, fmt.Sprintf("line 120 (byte offset %d", smallOffset), fmt.Sprintf("--byte-offset %d", smallOffset))
	r = mustEsctl(t, string(small[smallOffset:]), "--db", url2, "-o", "json", "import", "--byte-offset", fmt.Sprint(smallOffset))
	if s := decodeJSON(t, r.stdout); num(t, s, "byteOffset") != int64(len(small)) || s["done"] != true {
		t.Fatalf("import --byte-offset: %v", s)
	}
	wantBytes(t, "the target after --byte-offset", exportOf(t, url2), small)
	url3 := sqliteURL(t, "t3.db")
	smallFile := writeFile(t, dir, "small.ndjson", smallCorrupt)
	wantCode(t, esctl(t, "", "--db", url3, "import", "--in", smallFile), exitBadInput)
	writeFile(t, dir, "small.ndjson", small)
	mustEsctl(t, "", "--db", url3, "import", "--in", smallFile, "--byte-offset", fmt.Sprint(smallOffset))
	wantBytes(t, "the target after --byte-offset with a file", exportOf(t, url3), small)
}

func TestImportAbortAndFailures(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	lines := eventLines(1, 20, 2)
	bad := append(append([]byte{}, lines...), "not json\n"...)
	file := writeFile(t, dir, "e.ndjson", bad)
	url := sqliteURL(t, "a.db")
	wantCode(t, esctl(t, "", "--db", url, "import", "--in", file), exitBadInput, "line 21")
	if r := mustEsctl(t, "", "--db", url, "imports"); !strings.Contains(r.stdout, "events:"+file) {
		t.Fatalf("imports: %s", r)
	}
	wantCode(t, esctl(t, "", "--db", url, "import", "--in", file, "--abort"), exitUsage, "refusing to forget the unfinished import", "(its 20 events committed so far stay)", "--yes")
	wantCode(t, mustEsctl(t, "", "--db", url, "import", "--in", file, "--abort", "--yes"), 0, "aborted")
	if r := mustEsctl(t, "", "--db", url, "imports"); strings.Contains(r.stdout, "events:"+file) {
		t.Fatalf("the aborted import is still listed: %s", r)
	}
	// A MANUAL import's events stay after an abort.
	wantBytes(t, "after abort", exportOf(t, url), lines)
	wantCode(t, esctl(t, "", "--db", url, "import", "--in", file, "--abort", "--yes"), exitBadInput, "no import of source")

	wantCode(t, esctl(t, "", "--db", url, "import", "--in", filepath.Join(dir, "missing.ndjson")), exitFailure, "no such file")
	wantCode(t, esctl(t, "", "--db", url, "import", "--byte-offset", "-3"), exitUsage, "negative")
	wantCode(t, esctl(t, "", "--db", url, "import", "--in", file, "--resume", "--source-id", "never"), exitBadInput, "no import of source")
	wantCode(t, esctl(t, "", "--db", "mysql://x", "import", "--in", file), exitUsage, "postgres://")
	// imports of a store that does not exist.
	wantCode(t, esctl(t, "", "--db", sqliteURL(t, "none.db"), "imports"), exitStoreState, "does not exist")
	// An incomplete last line (a cut file) is bad input too.
	cut := writeFile(t, dir, "cut.ndjson", lines[:len(lines)-10])
	wantCode(t, esctl(t, "", "--db", sqliteURL(t, "c.db"), "import", "--in", cut), exitBadInput, "line 20")
}

// TestExportImportPipe is acceptance 2 for pipes: esctl export | esctl
// import between two built binaries, through a real OS pipe, gives a store
// whose export is byte-identical to the source's.
func TestExportImportPipe(t *testing.T) {
	t.Parallel()
	lines := eventLines(1, 5_000, 50) // more than a pipe holds
	src := importedStore(t, lines)
	dst := sqliteURL(t, "dst.db")
	dir := t.TempDir()

	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	exp := exec.Command(esctlBin, "--db", src, "export")
	imp := exec.Command(esctlBin, "--db", dst, "import")
	exp.Dir, imp.Dir = dir, dir
	exp.Stdout, imp.Stdin = pw, pr
	var expErr, impOut, impErr bytes.Buffer
	exp.Stderr, imp.Stdout, imp.Stderr = &expErr, &impOut, &impErr
	if err := exp.Start(); err != nil {
		t.Fatal(err)
	}
	if err := imp.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	pr.Close()
	if err := exp.Wait(); err != nil {
		t.Fatalf("export: %v\n%s", err, expErr.String())
	}
	if err := imp.Wait(); err != nil {
		t.Fatalf("import: %v\n%s", err, impErr.String())
	}
	if impOut.Len() != 0 {
		t.Fatalf("import wrote to stdout: %s", impOut.String())
	}
	if !strings.Contains(impErr.String(), "5,000 events imported") {
		t.Fatalf("import summary: %s", impErr.String())
	}
	got := binary(t, dir, nil, nil, "--db", dst, "export")
	wantBytes(t, "export of the piped copy", []byte(got.stdout), lines)
	wantBytes(t, "export of the source", exportOf(t, src), lines)
}

// TestStdoutCarriesOnlyData: the ecosystem checks, with the built binary:
// esctl export 2>/dev/null is NDJSON; esctl export 2>&1 >/dev/null holds no
// JSON; usage errors print nothing on stdout.
func TestStdoutCarriesOnlyData(t *testing.T) {
	t.Parallel()
	url := importedStore(t, eventLines(1, 100, 3))
	dir := t.TempDir()
	env := []string{"ESCTL_PROGRESS=plain", "ESCTL_PROGRESS_INTERVAL=1ms", "ESCTL_LOG_LEVEL=debug"}
	r := binary(t, dir, nil, env, "--db", url, "export")
	if r.code != 0 || ndjsonLines(t, r.stdout) != 100 {
		t.Fatalf("export: %s", r)
	}
	noJSONLines(t, "stderr", r.stderr)
	r = binary(t, dir, nil, env, "--db", url, "export", "--bogus")
	if r.code != exitUsage || r.stdout != "" {
		t.Fatalf("export --bogus: %s", r)
	}
	r = binary(t, dir, strings.NewReader(""), env, "--db", url, "events", "--type", "Type1")
	if r.code != 0 || ndjsonLines(t, r.stdout) != 20 {
		t.Fatalf("events: %s", r)
	}
}
