package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSecrets(t *testing.T) {
	t.Parallel()
	url := sqliteURL(t, "s.db")
	mustEsctl(t, "", "--db", url, "init")
	dir := t.TempDir()

	// set reads stdin (one trailing newline dropped) or --value-file.
	r := mustEsctl(t, "key-one\n", "--db", url, "secrets", "set", "one")
	wantCode(t, r, 0, `secret "one" set (7 bytes, sha256:`)
	if strings.Contains(r.stdout+r.stderr, "key-one") {
		t.Fatalf("secrets set printed the value: %s", r)
	}
	file := writeFile(t, dir, "two.key", []byte("key-two\r\n"))
	mustEsctl(t, "", "--db", url, "secrets", "set", "two", "--value-file", file)
	mustEsctl(t, "raw\n", "--db", url, "secrets", "set", "--raw", "three")
	wantCode(t, mustEsctl(t, "x", "--db", url, "secrets", "set", "four", "--dry-run"), 0, `would set secret "four" (1 byte,`, "(dry run)")

	for id, want := range map[string]string{"one": "key-one\n", "two": "key-two\n", "three": "raw\n\n"} {
		if r := mustEsctl(t, "", "--db", url, "secrets", "get", id); r.stdout != want {
			t.Fatalf("secrets get %s: %q, want %q", id, r.stdout, want)
		}
	}
	g := decodeJSON(t, mustEsctl(t, "", "--db", url, "-o", "json", "secrets", "get", "one").stdout)
	if g["id"] != "one" || g["secret"] != "key-one" {
		t.Fatalf("secrets get -o json: %v", g)
	}
	wantCode(t, esctl(t, "", "--db", url, "secrets", "get", "four"), exitFailure, `no secret "four"`)

	// delete asks; --dry-run and --yes.
	wantCode(t, esctl(t, "", "--db", url, "secrets", "delete", "two"), exitUsage, `delete secret "two" for good`, "--yes")
	wantCode(t, mustEsctl(t, "", "--db", url, "secrets", "delete", "two", "--dry-run"), 0, `would delete secret "two" (dry run)`)
	wantCode(t, mustEsctl(t, "", "--db", url, "secrets", "delete", "nope", "--dry-run"), 0, "nothing to delete (dry run)")
	mustEsctl(t, "", "--db", url, "secrets", "get", "two")
	wantCode(t, mustEsctl(t, "", "--db", url, "secrets", "delete", "two", "--yes"), 0, `secret "two" deleted`)
	wantCode(t, mustEsctl(t, "", "--db", url, "secrets", "delete", "nope", "--yes"), 0, "nothing deleted")
	wantCode(t, esctl(t, "", "--db", url, "secrets", "get", "two"), exitFailure, "deleted")
	d := describe(t, url)
	if num(t, d, "secretCount") != 3 || num(t, d, "setSecretCount") != 2 || num(t, d, "deletedSecretCount") != 1 {
		t.Fatalf("describe after secrets: %v", d)
	}

	// Ids are never reusable (exit 4).
	wantCode(t, esctl(t, "k", "--db", url, "secrets", "set", "one"), exitStoreState, "already used")
	wantCode(t, esctl(t, "k", "--db", url, "secrets", "set", "two"), exitStoreState, "already used")

	// export and import, through a file: the same secrets and tombstones.
	out := filepath.Join(dir, "secrets.ndjson")
	wantCode(t, mustEsctl(t, "", "--db", url, "secrets", "export", "--out", out), 0, "3 secrets including 1 tombstones")
	exported, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if ndjsonLines(t, string(exported)) != 3 || !strings.Contains(string(exported), `"secret":null`) {
		t.Fatalf("secrets export: %s", exported)
	}
	wantCode(t, esctl(t, "", "--db", url, "secrets", "export", "--out", out), exitUsage, "--force")
	if r := mustEsctl(t, "", "--db", url, "secrets", "export"); r.stdout != string(exported) {
		t.Fatalf("secrets export to stdout differs from the file: %s", r)
	}
	dst := sqliteURL(t, "dst.db")
	r = mustEsctl(t, "", "--db", dst, "-o", "json", "secrets", "import", "--in", out)
	if s := decodeJSON(t, r.stdout); num(t, s, "secrets") != 3 || num(t, s, "byteOffset") != int64(len(exported)) {
		t.Fatalf("secrets import: %v", s)
	}
	wantBytes(t, "secrets after import", secretsOf(t, dst), exported)
	if r := mustEsctl(t, "", "--db", dst, "secrets", "get", "one"); r.stdout != "key-one\n" {
		t.Fatalf("imported secret: %s", r)
	}
	// Imports are recorded like event imports, and re-running adds nothing.
	if r := mustEsctl(t, "", "--db", dst, "imports"); !strings.Contains(r.stdout, "secrets:"+out) {
		t.Fatalf("imports: %s", r)
	}
	wantCode(t, mustEsctl(t, "", "--db", dst, "secrets", "import", "--in", out, "--resume"), 0, "0 secrets imported")
	// From stdin, into a store that holds them already: a conflict.
	wantCode(t, esctl(t, string(exported), "--db", dst, "secrets", "import"), exitBadInput, "line 1", "already used")
}

func TestSecretsImportBadLine(t *testing.T) {
	t.Parallel()
	var lines strings.Builder
	for i := range 30 {
		fmt.Fprintf(&lines, `{"secret":"k%d","id":"s%d","idx":%d}`+"\n", i, i, i+1)
	}
	good := lines.String()
	offset := strings.Index(good, `{"secret":"k20"`)
	bad := good[:offset] + `{"secret":"k20","id":` + "\n" + good[strings.Index(good, `{"secret":"k21"`):]
	dir := t.TempDir()
	file := writeFile(t, dir, "s.ndjson", []byte(bad))
	url := sqliteURL(t, "s.db")
	r := esctl(t, "", "--db", url, "secrets", "import", "--in", file)
	wantCode(t, r, exitBadInput, fmt.Sprintf("line 21 (byte offset %d", offset), "continue with: esctl --db "+url+" secrets import --in "+file+" --resume")
	wantBytes(t, "secrets before the bad line", secretsOf(t, url), []byte(good[:offset]))
	writeFile(t, dir, "s.ndjson", []byte(good))
	mustEsctl(t, "", "--db", url, "secrets", "import", "--in", file, "--resume")
	wantBytes(t, "secrets after --resume", secretsOf(t, url), []byte(good))
}

func TestSecretsFailures(t *testing.T) {
	t.Parallel()
	url := sqliteURL(t, "s.db")
	mustEsctl(t, "", "--db", url, "init")
	for _, args := range [][]string{
		{"secrets", "set"},
		{"secrets", "set", "a", "b"},
		{"secrets", "set", "a", "--value", "inline"}, // never from a flag
		{"secrets", "get"},
		{"secrets", "delete", "--yes"},
		{"secrets", "rotate"},
	} {
		r := esctl(t, "k", append([]string{"--db", url}, args...)...)
		wantCode(t, r, exitUsage)
		if r.stdout != "" {
			t.Fatalf("%v: %s", args, r)
		}
	}
	wantCode(t, esctl(t, "", "--db", url, "secrets", "set", "a", "--value-file", filepath.Join(t.TempDir(), "missing")), exitFailure, "no such file")
	wantCode(t, esctl(t, "k", "--db", url, "secrets", "set", ""), exitBadInput, "invalid secret")
	// An empty value (a forgotten pipe: secrets set ID </dev/null) is bad
	// input and stores nothing, unless asked for; so for snapshots.
	for _, args := range [][]string{{"secrets", "set", "empty"}, {"secrets", "set", "empty", "--value-file", writeFile(t, t.TempDir(), "e", nil)}, {"snapshots", "set", "empty"}} {
		wantCode(t, esctl(t, "\n", append([]string{"--db", url}, args...)...), exitBadInput, "is empty: nothing was stored", "--allow-empty")
	}
	if r := mustEsctl(t, "", "--db", url, "-o", "json", "secrets", "list"); r.stdout != "[]\n" {
		t.Fatalf("an empty value was stored: %s", r)
	}
	mustEsctl(t, "", "--db", url, "secrets", "set", "empty", "--allow-empty")
	if r := mustEsctl(t, "", "--db", url, "secrets", "get", "empty"); r.stdout != "\n" {
		t.Fatalf("secrets get of an empty secret: %q", r.stdout)
	}
	none := sqliteURL(t, "none.db")
	for _, args := range [][]string{{"secrets", "get", "a"}, {"secrets", "export"}, {"secrets", "delete", "a", "--yes"}} {
		wantCode(t, esctl(t, "", append([]string{"--db", none}, args...)...), exitStoreState, "does not exist")
	}
	wantCode(t, esctl(t, "", "--db", url, "secrets", "import", "--in", filepath.Join(t.TempDir(), "missing")), exitFailure, "no such file")
	// The help offers a file or stdin, and no --value flag.
	h := mustEsctl(t, "", "secrets", "set", "--help").stdout
	if !strings.Contains(h, "--value-file") || strings.Contains(h, "--value ") {
		t.Fatalf("secrets set --help: %s", h)
	}
}

func TestSnapshots(t *testing.T) {
	t.Parallel()
	url := sqliteURL(t, "snap.db")
	mustEsctl(t, "", "--db", url, "init")
	state := `{"balance":42,"owner":"Ad\u00e9"}`

	wantCode(t, mustEsctl(t, state+"\n", "--db", url, "snapshots", "set", "aggregate:account:1"), 0, fmt.Sprintf(`snapshot "aggregate:account:1" set (%d bytes)`, len(state)))
	if r := mustEsctl(t, "", "--db", url, "snapshots", "get", "aggregate:account:1"); r.stdout != state || r.stderr != "" {
		t.Fatalf("snapshots get: %s", r)
	}
	file := writeFile(t, t.TempDir(), "s.bin", []byte("v2\n"))
	mustEsctl(t, "", "--db", url, "snapshots", "set", "aggregate:account:1", "--value-file", file, "--raw")
	if r := mustEsctl(t, "", "--db", url, "snapshots", "get", "aggregate:account:1"); r.stdout != "v2\n" {
		t.Fatalf("snapshots get after a replacing set: %q", r.stdout)
	}
	wantCode(t, mustEsctl(t, "v3", "--db", url, "snapshots", "set", "aggregate:account:1", "--dry-run"), 0, "would set", "(dry run)")
	wantCode(t, mustEsctl(t, "", "--db", url, "snapshots", "drop", "aggregate:account:1", "--dry-run"), 0, "would drop", "(dry run)")
	if r := mustEsctl(t, "", "--db", url, "snapshots", "get", "aggregate:account:1"); r.stdout != "v2\n" {
		t.Fatalf("a dry run changed the snapshot: %q", r.stdout)
	}
	wantCode(t, mustEsctl(t, "", "--db", url, "snapshots", "drop", "aggregate:account:1"), 0, "dropped")
	wantCode(t, esctl(t, "", "--db", url, "snapshots", "get", "aggregate:account:1"), exitFailure, `no snapshot "aggregate:account:1"`)

	// Snapshots are a cache: a frozen store takes them.
	mustEsctl(t, "", "--db", url, "freeze")
	mustEsctl(t, "x", "--db", url, "snapshots", "set", "k")

	// Failures.
	wantCode(t, esctl(t, "", "--db", url, "snapshots", "get"), exitUsage, "one argument")
	wantCode(t, esctl(t, "x", "--db", url, "snapshots", "set"), exitUsage, "one argument")
	wantCode(t, esctl(t, "", "--db", url, "snapshots", "drop", "a", "b"), exitUsage, "one argument")
	wantCode(t, esctl(t, "x", "--db", url, "snapshots", "set", ""), exitBadInput, "invalid snapshot")
	none := sqliteURL(t, "none.db")
	wantCode(t, esctl(t, "", "--db", none, "snapshots", "get", "k"), exitStoreState, "does not exist")
	wantCode(t, esctl(t, "x", "--db", none, "snapshots", "set", "k"), exitStoreState, "does not exist")
	wantCode(t, esctl(t, "", "--db", none, "snapshots", "drop", "k"), exitStoreState, "does not exist")
}
