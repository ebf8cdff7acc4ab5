package main

import (
	"bytes"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/esctl/esctl/eventstore"
)

// pick returns the lines of an export (positions 1..n) whose 1-based
// position satisfies keep.
func pick(lines []byte, keep func(pos int) bool) string {
	var b strings.Builder
	for i, l := range bytes.SplitAfter(lines, []byte("\n")) {
		if len(l) > 0 && keep(i+1) {
			b.Write(l)
		}
	}
	return b.String()
}

func TestEvents(t *testing.T) {
	t.Parallel()
	// 40 events over 4 aggregates: event at position p has aggregate
	// agg-(p-1)%4, type Type(p-1)%5, timestamp 1000*p.
	lines := eventLines(1, 40, 4)
	url := importedStore(t, lines)

	r := mustEsctl(t, "", "--db", url, "events")
	if r.stdout != string(lines) {
		t.Fatalf("events prints the export format: %s", r)
	}
	wantCode(t, r, 0, "40 events", "next cursor "+string(eventstore.CursorAt(40)))

	// --limit and --cursor page through the store.
	var got strings.Builder
	cursor := ""
	for page := 0; ; page++ {
		r := mustEsctl(t, "", "--db", url, "-o", "json", "events", "--limit", "15", "--cursor", cursor)
		got.WriteString(r.stdout)
		s := summaryJSON(t, r.stderr)
		if s["command"] != "events" {
			t.Fatalf("summary: %v", s)
		}
		if num(t, s, "events") == 0 {
			break
		}
		cursor = s["cursor"].(string)
		if page > 5 {
			t.Fatal("paging does not end")
		}
	}
	if got.String() != string(lines) {
		t.Fatal("paging by --cursor and --limit does not give every event once")
	}

	for _, c := range []struct {
		args []string
		keep func(pos int) bool
	}{
		{[]string{"--type", "Type1"}, func(p int) bool { return (p-1)%5 == 1 }},
		{[]string{"--type", "Type1", "--type", "Type3"}, func(p int) bool { return (p-1)%5 == 1 || (p-1)%5 == 3 }},
		{[]string{"--aggregate", "agg-2"}, func(p int) bool { return (p-1)%4 == 2 }},
		{[]string{"--aggregate", "agg-0", "--aggregate", "agg-3"}, func(p int) bool { return (p-1)%4 == 0 || (p-1)%4 == 3 }},
		{[]string{"--aggregate", "agg-1", "--type", "Type0"}, func(p int) bool { return (p-1)%4 == 1 && (p-1)%5 == 0 }},
		{[]string{"--since", "5000", "--until", "9000"}, func(p int) bool { return p >= 5 && p <= 9 }},
		{[]string{"--since", time.UnixMilli(30_000).UTC().Format(time.RFC3339)}, func(p int) bool { return p >= 30 }},
		{[]string{"--until", "1970-01-01T00:00:03.5Z"}, func(p int) bool { return p <= 3 }},
		{[]string{"--since", "10000", "--type", "Type2", "--limit", "2"}, func(p int) bool { return p == 13 || p == 18 }},
		{[]string{"--cursor", string(eventstore.CursorAt(35))}, func(p int) bool { return p > 35 }},
		{[]string{"--cursor", string(eventstore.CursorAt(40))}, func(p int) bool { return false }},
	} {
		r := mustEsctl(t, "", append([]string{"--db", url, "events"}, c.args...)...)
		if want := pick(lines, c.keep); r.stdout != want {
			t.Fatalf("events %v:\ngot  %q\nwant %q", c.args, r.stdout, want)
		}
		noJSONLines(t, "stderr", r.stderr)
	}
	// Quiet: the data, no summary.
	if r := mustEsctl(t, "", "--db", url, "-q", "events", "--limit", "1"); r.stderr != "" || ndjsonLines(t, r.stdout) != 1 {
		t.Fatalf("events -q: %s", r)
	}
}

func TestEventsFailures(t *testing.T) {
	t.Parallel()
	url := importedStore(t, eventLines(1, 3, 1))
	for _, c := range []struct {
		args      []string
		code      int
		fragments []string
	}{
		{[]string{"--cursor", "garbage"}, exitBadInput, []string{"invalid cursor"}},
		{[]string{"--cursor", string(eventstore.CursorAt(9))}, exitBadInput, []string{"beyond the end"}},
		{[]string{"--cursor", string(eventstore.CursorAt(1)), "--since", "1"}, exitUsage, []string{"--cursor cannot be combined"}},
		{[]string{"--since", "yesterday"}, exitUsage, []string{"--since", "RFC 3339"}},
		{[]string{"--until", "-5"}, exitUsage, []string{"before the Unix epoch"}},
		{[]string{"--limit", "-1"}, exitUsage, []string{"--limit"}},
		{[]string{"first"}, exitUsage, []string{"takes no arguments"}},
	} {
		r := esctl(t, "", append([]string{"--db", url, "events"}, c.args...)...)
		wantCode(t, r, c.code, c.fragments...)
		if r.stdout != "" {
			t.Fatalf("%v: %s", c.args, r)
		}
	}
	wantCode(t, esctl(t, "", "--db", sqliteURL(t, "none.db"), "events"), exitStoreState, "does not exist")
}

// TestEventsFollow: --follow prints the events so far, then those another
// process appends, as they commit; --limit ends it (exit 0).
func TestEventsFollow(t *testing.T) {
	t.Parallel()
	url := sqliteURL(t, "f.db")
	mustEsctl(t, string(eventLines(1, 5, 3)), "--db", url, "import", "--source-id", "first")
	p := start(t, t.TempDir(), nil, "--db", url, "events", "--follow", "--limit", "8")
	mustEsctl(t, string(eventLines(6, 3, 3)), "--db", url, "import", "--source-id", "second")
	if code := p.wait(); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.stderrText())
	}
	wantBytes(t, "followed events", p.stdout.Bytes(), eventLines(1, 8, 3))
	require.Contains(t, p.stderrText(), "8 events")
}

// TestEventsFollowInterrupt: Ctrl-C ends --follow with exit 0 and the
// cursor to resume from, which a filter matching nothing still moved to the
// store's end.
func TestEventsFollowInterrupt(t *testing.T) {
	t.Parallel()
	url := sqliteURL(t, "f.db")
	mustEsctl(t, string(eventLines(1, 5, 3)), "--db", url, "import")
	p := start(t, t.TempDir(), nil, "--db", url, "events", "--follow", "--type", "Nothing")
	time.Sleep(300 * time.Millisecond) // following
	p.signal(syscall.SIGINT)
	if code := p.wait(); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.stderrText())
	}
	require.Empty(t, p.stdout.Bytes())
	end := string(eventstore.CursorAt(5))
	require.Contains(t, p.stderrText(), "continue with: esctl --db "+url+" events --follow --type Nothing --cursor "+end+"\n")
	require.NotContains(t, p.stderrText(), "committed whole", "a read has no batch to commit")
}

// TestEventsMetadata: esctl events prints each event's metadata (the
// export format's metadata key), and esctl import takes it back.
func TestEventsMetadata(t *testing.T) {
	t.Parallel()
	lines := `{"threadCounter":0,"threadId":0,"type":"T","timestamp":1,"aggregateId":"a","aggregateVersion":1,"payload":{"n":1},"metadata":{"correlationId":"c-1","causationId":"x"},"position":1}` + "\n" +
		`{"threadCounter":0,"threadId":1,"type":"T","timestamp":2,"aggregateId":"a","aggregateVersion":2,"payload":{"n":2},"position":2}` + "\n"
	url := importedStore(t, []byte(lines))
	r := mustEsctl(t, "", "--db", url, "events")
	if r.stdout != lines {
		t.Fatalf("events prints metadata as imported: %s", r)
	}
	page, err := openStore(t, url).LoadEvents(t.Context(), eventstore.Filter{Limit: 10})
	require.NoError(t, err)
	require.Equal(t, `{"correlationId":"c-1","causationId":"x"}`, string(page.Events[0].Metadata))
	require.Nil(t, page.Events[1].Metadata)
}

// TestEventsContent: --payload and --metadata select by containment, also
// with --follow; a filter that is not a JSON object is a usage error.
func TestEventsContent(t *testing.T) {
	t.Parallel()
	line := func(pos int, payload, metadata string) string {
		l := fmt.Sprintf(`{"threadCounter":0,"threadId":%d,"type":"T","timestamp":%d,"aggregateId":"a-%d","aggregateVersion":1,"payload":%s`, pos-1, pos, pos, payload)
		if metadata != "" {
			l += `,"metadata":` + metadata
		}
		return l + fmt.Sprintf(`,"position":%d}`, pos) + "\n"
	}
	lines := []string{
		line(1, `{"accountId":"a-1","amount":10}`, `{"correlationId":"c-1"}`),
		line(2, `{"accountId":"a-2","amount":10.0}`, ``),
		line(3, `{"accountId":"a-1","tags":["x"]}`, `{"correlationId":"c-2"}`),
	}
	url := importedStore(t, []byte(strings.Join(lines, "")))
	r := mustEsctl(t, "", "--db", url, "events", "--payload", `{"accountId":"a-1"}`)
	require.Equal(t, lines[0]+lines[2], r.stdout)
	r = mustEsctl(t, "", "--db", url, "events", "--payload", `{"amount":10}`, "--metadata", `{}`)
	require.Equal(t, lines[0], r.stdout)
	r = mustEsctl(t, "", "--db", url, "events", "--metadata", `{"correlationId":"c-2"}`)
	require.Equal(t, lines[2], r.stdout)
	wantCode(t, esctl(t, "", "--db", url, "events", "--payload", `[1]`), exitUsage, `payload`, "JSON object")
	wantCode(t, esctl(t, "", "--db", url, "events", "--metadata", `{"a":`), exitUsage, `metadata`)

	p := start(t, t.TempDir(), nil, "--db", url, "events", "--follow", "--payload", `{"tags":["x"]}`, "--limit", "2")
	more := line(4, `{"tags":["y"]}`, ``) + line(5, `{"tags":["y","x"]}`, `{"correlationId":"c-3"}`)
	mustEsctl(t, more, "--db", url, "import", "--source-id", "more")
	if code := p.wait(); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.stderrText())
	}
	wantBytes(t, "followed events", p.stdout.Bytes(), []byte(lines[2]+line(5, `{"tags":["y","x"]}`, `{"correlationId":"c-3"}`)))
}
