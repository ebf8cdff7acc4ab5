package main

import (
	"fmt"
	"strings"
	"testing"
)

// incLine is an event line for incremental-import: no version, no position.
func incLine(aggregate, typ string, ts int64, payload string) string {
	return fmt.Sprintf(`{"type":%q,"timestamp":%d,"aggregateId":%q,"payload":%s}`+"\n", typ, ts, aggregate, payload)
}

func TestIncrementalImport(t *testing.T) {
	t.Parallel()
	lines := eventLines(1, 20, 2) // timestamps 1000..20000; agg-0 and agg-1 at versions 1..10
	url := importedStore(t, lines)
	dir := t.TempDir()

	// The store's own export: every line is a duplicate.
	file := writeFile(t, dir, "same.ndjson", lines)
	r := mustEsctl(t, "", "--db", url, "-o", "json", "incremental-import", "--in", file)
	if s := decodeJSON(t, r.stdout); num(t, s, "appended") != 0 || num(t, s, "duplicates") != 20 || num(t, s, "skipped") != 0 {
		t.Fatalf("re-importing the store's events: %v", s)
	}
	wantBytes(t, "after an all-duplicates import", exportOf(t, url), lines)

	// New events (newer than the store's newest), with duplicates of the
	// store and of each other, from stdin: versions and positions are the
	// store's.
	in := incLine("agg-1", "Deposited", 30_000, `{"a":1}`) +
		string(eventLines(5, 1, 2)) + // a stored event, version and position included
		incLine("agg-9", "Opened", 31_000, `{"b":[1,2]}`) +
		incLine("agg-1", "Deposited", 30_000, `{"a":1}`) + // the first line again
		incLine("agg-1", "Withdrawn", 32_000, `{"c":"caf\u00e9"}`)
	r = mustEsctl(t, in, "--db", url, "incremental-import")
	wantCode(t, r, 0, "3 events appended", "2 duplicates dropped", "0 older events skipped")
	got := mustEsctl(t, "", "--db", url, "events", "--cursor", "", "--aggregate", "agg-1", "--aggregate", "agg-9", "--since", "30000").stdout
	want := []string{
		`"type":"Deposited","timestamp":30000,"aggregateId":"agg-1","aggregateVersion":11,"payload":{"a":1},"position":21}`,
		`"type":"Opened","timestamp":31000,"aggregateId":"agg-9","aggregateVersion":1,"payload":{"b":[1,2]},"position":22}`,
		`"type":"Withdrawn","timestamp":32000,"aggregateId":"agg-1","aggregateVersion":12,"payload":{"c":"caf\u00e9"},"position":23}`,
	}
	if n := ndjsonLines(t, got); n != 3 {
		t.Fatalf("appended events: %s", got)
	}
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Fatalf("appended events lack %s:\n%s", w, got)
		}
	}
}

func TestIncrementalImportOlder(t *testing.T) {
	t.Parallel()
	url := importedStore(t, eventLines(1, 10, 2)) // newest timestamp 10000
	before := exportOf(t, url)
	in := incLine("agg-0", "Late", 2_500, `{}`) + incLine("agg-5", "New", 50_000, `{"new":true}`)

	// --older fail (the default): nothing written, a clear message, exit 3.
	r := esctl(t, in, "--db", url, "incremental-import")
	wantCode(t, r, exitBadInput, "older than the store's newest", "nothing was written", "--older skip")
	wantCode(t, esctl(t, in, "--db", url, "incremental-import", "--older", "fail"), exitBadInput, "older")
	wantBytes(t, "after --older fail", exportOf(t, url), before)

	// --older skip: the older event is dropped and reported.
	r = mustEsctl(t, in, "--db", url, "-o", "json", "incremental-import", "--older", "skip")
	s := decodeJSON(t, r.stdout)
	if num(t, s, "appended") != 1 || num(t, s, "skipped") != 1 || num(t, s, "duplicates") != 0 || num(t, s, "lastPosition") != 11 {
		t.Fatalf("--older skip: %v", s)
	}
	wantCode(t, mustEsctl(t, in, "--db", url, "incremental-import", "--older", "skip"), 0, "0 events appended", "1 duplicate dropped", "1 older event skipped")
}

// TestIncrementalImportBadLine: a bad line fails the whole import with its
// line and byte offset (exit 3) and writes nothing, even the good lines
// before it.
func TestIncrementalImportBadLine(t *testing.T) {
	t.Parallel()
	url := importedStore(t, eventLines(1, 5, 1))
	before := exportOf(t, url)
	first := incLine("agg-7", "Good", 90_000, `{"ok":1}`)
	in := first + `{"type":"Bad","timestamp":91000,"aggregateId":"agg-7","payload":}` + "\n"
	file := writeFile(t, t.TempDir(), "bad.ndjson", []byte(in))
	r := esctl(t, "", "--db", url, "incremental-import", "--in", file)
	wantCode(t, r, exitBadInput, fmt.Sprintf("line 2 (byte offset %d", len(first)), "nothing was written")
	wantBytes(t, "after a bad line", exportOf(t, url), before)
	// Missing fields too.
	wantCode(t, esctl(t, `{"type":"X","timestamp":1}`+"\n", "--db", url, "incremental-import"), exitBadInput, "line 1", "aggregateId")
	wantBytes(t, "after a line without aggregateId", exportOf(t, url), before)
}

func TestIncrementalImportFailures(t *testing.T) {
	t.Parallel()
	url := importedStore(t, eventLines(1, 3, 1))
	in := incLine("agg-3", "New", 99_000, `{}`)
	wantCode(t, esctl(t, in, "--db", url, "incremental-import", "--older", "sometimes"), exitUsage, "fail or skip")
	wantCode(t, esctl(t, in, "--db", url, "incremental-import", "file.ndjson"), exitUsage, "--in FILE")
	wantCode(t, esctl(t, in, "--db", sqliteURL(t, "none.db"), "incremental-import"), exitStoreState, "does not exist")
	// Freeze blocks the commit.
	mustEsctl(t, "", "--db", url, "freeze")
	wantCode(t, esctl(t, in, "--db", url, "incremental-import"), exitStoreState, "frozen")
	mustEsctl(t, "", "--db", url, "unfreeze")
	wantCode(t, mustEsctl(t, in, "--db", url, "incremental-import"), 0, "1 event appended")
}
