package main

import (
	"bytes"
	"context"
	"net/url"
	"strings"
	"syscall"
	"testing"

	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/internal/testdb"
)

// withSchema adds ?schema=NAME to a postgres URL.
func withSchema(t testing.TB, rawURL, schema string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("schema", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// TestCopySQLitePostgresSQLite is acceptance 2: esctl copy SQLite →
// PostgreSQL → SQLite keeps events and secrets byte for byte.
func TestCopySQLitePostgresSQLite(t *testing.T) {
	t.Parallel()
	src := sqliteURL(t, "src.db")
	seed(t, src, 3_000, 40, 5) // 3,000 events, 5 secrets set and 1 deleted: 6 audit events
	mustEsctl(t, `{"v":1}`, "--db", src, "snapshots", "set", "agg-1")
	pg := withSchema(t, testdb.PostgresURL(t), "copied")
	back := sqliteURL(t, "back.db")

	r := mustEsctl(t, "", "-o", "json", "copy", "--from", src, "--to", pg)
	s := decodeJSON(t, r.stdout)
	if num(t, s, "events") != 3_006 || num(t, s, "lastPosition") != 3_006 || num(t, s, "secrets") != 5 {
		t.Fatalf("copy summary: %v", s)
	}
	wantCode(t, mustEsctl(t, "", "copy", "--from", pg, "--to", back), 0, "3,006 events copied", "5 secrets copied")

	want, wantSecrets := exportOf(t, src), secretsOf(t, src)
	for _, u := range []string{pg, back} {
		wantBytes(t, "events of "+u, []byte(mustEsctl(t, "", "--db", u, "export").stdout), want)
		wantBytes(t, "secrets of "+u, []byte(mustEsctl(t, "", "--db", u, "secrets", "export").stdout), wantSecrets)
	}
	d, dBack := describe(t, src), describe(t, back)
	for _, k := range []string{"eventCount", "secretCount", "setSecretCount", "deletedSecretCount", "cursor", "lastEventTimestamp"} {
		if d[k] != dBack[k] {
			t.Fatalf("%s: source %v, copy %v", k, d[k], dBack[k])
		}
	}
	// Copy checkpoints are forgotten once complete: the target's state
	// is the record.
	if r := mustEsctl(t, "", "--db", back, "imports"); strings.Contains(r.stdout, "copy") {
		t.Fatalf("copy checkpoints left: %s", r)
	}

	// Re-running copies only what is new.
	seed2(t, src, 10)
	wantCode(t, mustEsctl(t, "", "copy", "--from", src, "--to", pg), 0, "10 events copied", "0 secrets copied")
	wantCode(t, mustEsctl(t, "", "copy", "--from", src, "--to", pg), 0, "0 events copied", "0 secrets copied")
	wantBytes(t, "events after a second copy", exportOf(t, pg), exportOf(t, src))
}

// seed2 appends n more events to a seeded store through the library.
func seed2(t testing.TB, url string, n int) {
	t.Helper()
	ctx := context.Background()
	s := openStore(t, url)
	for i := range n {
		if _, err := s.SaveEvent(ctx, eventstore.Event{AggregateID: "late", AggregateVersion: int64(i + 1), Type: "Late", Payload: []byte(`{"late":true}`)}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCopyFailures(t *testing.T) {
	t.Parallel()
	src := importedStore(t, eventLines(1, 10, 2))
	wantCode(t, esctl(t, "", "copy", "--from", src), exitUsage, `"to"`)
	wantCode(t, esctl(t, "", "copy", "--from", src, "--to", src), exitUsage, "same store")
	wantCode(t, esctl(t, "", "copy", "--from", sqliteURL(t, "none.db"), "--to", sqliteURL(t, "x.db")), exitStoreState, "does not exist")
	wantCode(t, esctl(t, "", "copy", "--from", src, "--to", "oracle://x"), exitUsage, "sqlite://")

	// A target with another history is refused, and left alone.
	other := importedStore(t, bytes.ReplaceAll(eventLines(1, 4, 1), []byte("Type"), []byte("Other")))
	r := esctl(t, "", "copy", "--from", src, "--to", other)
	wantCode(t, r, exitStoreState, "not an earlier copy of this source")
	if n := num(t, describe(t, other), "eventCount"); n != 4 {
		t.Fatalf("a refused copy changed the target: %d events", n)
	}
	// A target ahead of the source is refused too.
	wantCode(t, esctl(t, "", "copy", "--from", importedStore(t, eventLines(1, 3, 2)), "--to", src), exitStoreState, "not an earlier copy")
}

// TestCopyResumes is acceptance 2 for copies: a copy killed (SIGKILL) and
// then interrupted (SIGINT) continues where the target stopped when run
// again, and never duplicates an event.
func TestCopyResumes(t *testing.T) {
	t.Parallel()
	_, src := bigFixture(t)
	dir := t.TempDir()
	dst := sqliteURL(t, "dst.db")
	args := []string{"copy", "--from", src, "--to", dst}

	p := start(t, dir, nil, args...)
	p.waitFor("esctl: copied", 2)
	p.signal(syscall.SIGKILL)
	if code := p.wait(); code != -1 {
		t.Fatalf("copy was not killed (exit %d):\n%s", code, p.stderrText())
	}
	at1 := num(t, describe(t, dst), "lastPosition")
	if at1 == 0 || at1 >= bigEvents {
		t.Fatalf("the kill did not land mid-copy: target at %d", at1)
	}

	p = start(t, dir, nil, args...)
	p.waitFor("esctl: copied", 2)
	p.signal(syscall.SIGINT)
	if code := p.wait(); code != exitInterrupted {
		t.Fatalf("interrupted copy: exit %d:\n%s", code, p.stderrText())
	}
	at2 := num(t, describe(t, dst), "lastPosition")
	if at2 <= at1 || at2 >= bigEvents {
		t.Fatalf("the second run did not continue from %d: target at %d", at1, at2)
	}
	if !strings.Contains(p.stderrText(), "esctl: interrupted: the target holds the source's events up to position") || !strings.Contains(p.stderrText(), "continue with: esctl copy --from") {
		t.Fatalf("no resume point:\n%s", p.stderrText())
	}

	r := binary(t, dir, nil, nil, append([]string{"-o", "json"}, args...)...)
	if r.code != 0 {
		t.Fatalf("final copy: %s", r)
	}
	if s := decodeJSON(t, r.stdout); num(t, s, "events") != bigEvents-at2 || num(t, s, "lastPosition") != bigEvents {
		t.Fatalf("the final copy did not continue from %d: %v", at2, s)
	}
	d := describe(t, dst)
	if num(t, d, "eventCount") != bigEvents {
		t.Fatalf("target: %v", d)
	}
	wantBytes(t, "export of the resumed copy", exportOf(t, dst), exportOf(t, src))
}
