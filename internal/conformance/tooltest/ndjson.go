package tooltest

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/internal/conformance"
	"github.com/esctl/esctl/transfer"
)

//go:embed testdata/resolve-export.ndjson
var resolveExport []byte

//go:embed testdata/resolve-secrets-export.ndjson
var resolveSecretsExport []byte

// exportAll exports the whole store and returns the bytes.
func exportAll(t testing.TB, s *eventstore.Store) []byte {
	t.Helper()
	var buf bytes.Buffer
	res, err := transfer.ExportEvents(context.Background(), s, &buf, nil)
	require.NoError(t, err)
	require.True(t, res.End)
	require.EqualValues(t, buf.Len(), res.Bytes)
	return buf.Bytes()
}

// importAll imports data in full into s.
func importAll(t testing.TB, s *eventstore.Store, data []byte, opts *transfer.ImportOptions) *transfer.ImportResult {
	t.Helper()
	res, err := transfer.ImportEvents(context.Background(), s, bytes.NewReader(data), opts)
	require.NoError(t, err)
	require.True(t, res.Done)
	require.EqualValues(t, len(data), res.ByteOffset)
	return res
}

func auto() *transfer.ImportOptions {
	return &transfer.ImportOptions{Mode: transfer.MaintenanceAuto}
}

func runNDJSON(t *testing.T, h conformance.Harness) {
	t.Run("RoundTripAcrossEngines", func(t *testing.T) { t.Parallel(); runRoundTrip(t, h) })
	t.Run("ResolveFixture", func(t *testing.T) { t.Parallel(); runResolveFixture(t, h) })
	t.Run("BadInput", func(t *testing.T) { t.Parallel(); runBadInput(t, h) })
	t.Run("Positions", func(t *testing.T) { t.Parallel(); runImportPositions(t, h) })
	t.Run("ResumeAndCancel", func(t *testing.T) { t.Parallel(); runImportResume(t, h) })
	t.Run("AutoMode", func(t *testing.T) { t.Parallel(); runAutoMode(t, h) })
	t.Run("ExportBudgetAndCursor", func(t *testing.T) { t.Parallel(); runExportBudget(t, h) })
	t.Run("ExportSnapshot", func(t *testing.T) { t.Parallel(); runExportSnapshot(t, h) })
	t.Run("Secrets", func(t *testing.T) { t.Parallel(); runSecretsNDJSON(t, h) })
	t.Run("ReservedTypes", func(t *testing.T) { t.Parallel(); runReservedTypes(t, h) })
	// Issue 4's crash test: 200,000 events, 5 SIGKILLs. The AUTO variant
	// replaces a non-empty store (staged, then swapped).
	t.Run("CrashManual", func(t *testing.T) { t.Parallel(); RunCrashImport(t, h, 200_000, 5, "manual") })
	t.Run("CrashAuto", func(t *testing.T) { t.Parallel(); RunCrashImport(t, h, 100_000, 5, "auto") })
}

// runRoundTrip: a generated corpus of 10,000 events (unicode, escapes, large
// numbers, payloads from empty to 1 MiB, metadata on every event) exported from this engine,
// imported into every peer engine and back, exports byte-identical at every
// step, positions included.
func runRoundTrip(t *testing.T, h conformance.Harness) {
	ctx := context.Background()
	src, _ := conformance.NewStore(t, h, nil)
	corpus := conformance.WithMetadata(43, conformance.GenerateEvents(42, 10_000))
	for i := 0; i < len(corpus); i += 250 {
		_, err := src.SaveEvents(ctx, corpus[i:min(i+250, len(corpus))])
		require.NoError(t, err)
	}
	want := exportAll(t, src)
	require.Equal(t, 10_000, bytes.Count(want, []byte("\n")))
	require.Equal(t, 10_000, bytes.Count(want, []byte(`,"metadata":{`)), "every event has metadata")

	engines := map[string]func(testing.TB) string{"self": h.NewURL}
	for name, newURL := range h.Peers {
		engines[name] = newURL
	}
	for name, newURL := range engines {
		t.Run(name, func(t *testing.T) {
			peer := conformance.Open(t, newURL(t), nil)
			require.NoError(t, peer.Init(ctx))
			importAll(t, peer, want, auto())
			require.Equal(t, want, exportAll(t, peer), "export of the %s copy differs", name)
			back, _ := conformance.NewStore(t, h, nil)
			importAll(t, back, exportAll(t, peer), nil)
			require.Equal(t, want, exportAll(t, back), "export after the trip through %s differs", name)
			d, err := back.Describe(ctx, nil)
			require.NoError(t, err)
			require.EqualValues(t, 10_000, d.EventCount)
		})
	}
}

// runResolveFixture imports a file exported by reSolve's PostgreSQL adapter:
// no positions (assigned in file order), jsonb-ordered payloads kept as they
// are, thread fields accepted and ignored.
func runResolveFixture(t *testing.T, h conformance.Harness) {
	ctx := context.Background()
	s, _ := conformance.NewStore(t, h, nil)
	res := importAll(t, s, resolveExport, nil)
	lines := bytes.Split(bytes.TrimSuffix(resolveExport, []byte("\n")), []byte("\n"))
	require.EqualValues(t, len(lines), res.Events)
	events, _ := conformance.LoadAll(t, s, eventstore.Filter{Limit: 1000})
	require.Len(t, events, len(lines))
	for i, e := range events {
		require.EqualValues(t, i+1, e.Position)
		var payload string
		if at := bytes.Index(lines[i], []byte(`,"payload":`)); at >= 0 {
			payload = string(lines[i][at+len(`,"payload":`) : len(lines[i])-1])
		}
		require.Equal(t, payload, string(e.Payload), "line %d: payload bytes", i+1)
	}
	// Re-exported, each line is reSolve's line with threads recomputed
	// from the position and the position appended.
	out := exportAll(t, s)
	first := bytes.SplitN(out, []byte("\n"), 2)[0]
	require.True(t, bytes.HasPrefix(first, []byte(`{"threadCounter":0,"threadId":0,"type":`)))
	require.True(t, bytes.HasSuffix(first, []byte(`,"position":1}`)))

	// Secrets exported by reSolve (no tombstones, idx from 1).
	sres, err := transfer.ImportSecrets(ctx, s, bytes.NewReader(resolveSecretsExport), nil)
	require.NoError(t, err)
	require.True(t, sres.Done)
	require.EqualValues(t, 999, sres.Events)
	v, found, err := s.Secrets().GetSecret(ctx, "user-8")
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, "secret-key-8-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", v)
	_, found, err = s.Secrets().GetSecret(ctx, "user-7")
	require.NoError(t, err)
	require.False(t, found, "reSolve left its deleted user-7 out of the export")
	var sbuf bytes.Buffer
	_, err = transfer.ExportSecrets(ctx, s, &sbuf, nil)
	require.NoError(t, err)
	require.Equal(t, string(resolveSecretsExport), sbuf.String(), "secrets export is byte-identical to reSolve's")
}

// goodLine returns a valid line with position pos.
func goodLine(pos int) string {
	return fmt.Sprintf(`{"threadCounter":%d,"threadId":%d,"type":"T","timestamp":%d,"aggregateId":"a-%d","aggregateVersion":1,"payload":{"n":%d},"position":%d}`,
		(pos-1)/256, (pos-1)%256, 1000+pos, pos, pos, pos)
}

// goodLines returns lines with positions from..to, each ending in "\n".
func goodLines(from, to int) string {
	var b strings.Builder
	for p := from; p <= to; p++ {
		b.WriteString(goodLine(p))
		b.WriteByte('\n')
	}
	return b.String()
}

// withField returns a good line for pos with one member replaced.
func withField(pos int, old, repl string) string {
	l := goodLine(pos)
	if !strings.Contains(l, old) {
		panic("withField: " + old)
	}
	return strings.Replace(l, old, repl, 1)
}

// badInputCase is a bad line that follows five good lines (positions 1-5).
type badInputCase struct {
	name   string
	bad    string // the bad line, "\n" added unless noNL
	reason string
	noNL   bool
	prep   func(t *testing.T, s *eventstore.Store) // runs before the import
}

// badInputCases lists every kind of bad line the import must reject.
func badInputCases() []badInputCase {
	ctx := context.Background()
	long := goodLine(6)[:len(goodLine(6))-1] + `,"x":"` + strings.Repeat("y", 2000) + `"}`
	return []badInputCase{
		{name: "TruncatedLastLine", bad: goodLine(6)[:40], noNL: true, reason: "truncated last line"},
		{name: "CompleteLastLineWithoutNewline", bad: goodLine(6), noNL: true, reason: "truncated last line"},
		{name: "BlankLine", bad: "", reason: "blank line"},
		{name: "WhitespaceLine", bad: "  \t ", reason: "blank line"},
		{name: "CRLF", bad: goodLine(6) + "\r", reason: "CRLF"},
		{name: "TwoValues", bad: goodLine(6) + goodLine(7), reason: "two values on one line"},
		{name: "TrailingGarbage", bad: goodLine(6) + " x", reason: "unexpected data after"},
		{name: "Array", bad: `[1,2]`, reason: "must be a JSON object"},
		{name: "String", bad: `"x"`, reason: "must be a JSON object"},
		{name: "Number", bad: `42`, reason: "must be a JSON object"},
		{name: "Null", bad: `null`, reason: "must be a JSON object"},
		{name: "InvalidUTF8", bad: withField(6, `"a-6"`, "\"a-\xff6\""), reason: "invalid UTF-8"},
		{name: "InvalidUTF8InPayload", bad: withField(6, `{"n":6}`, "{\"n\":\"\xc3\x28\"}"), reason: "invalid UTF-8"},
		{name: "RawControlCharacter", bad: withField(6, `"a-6"`, "\"a\t6\""), reason: "raw control character"},
		{name: "DuplicateKey", bad: withField(6, `"type":"T",`, `"type":"T","type":"U",`), reason: `duplicate key "type"`},
		{name: "DuplicateKeyInPayload", bad: withField(6, `{"n":6}`, `{"n":6,"n":7}`), reason: `duplicate key "n"`},
		{name: "UnknownKey", bad: withField(6, `"type":"T",`, `"type":"T","extra":1,`), reason: `unknown key "extra"`},
		{name: "CaseVariantKey", bad: withField(6, `"aggregateId"`, `"AggregateId"`), reason: `did you mean "aggregateId"`},
		{name: "NaN", bad: withField(6, `{"n":6}`, `{"n":NaN}`), reason: "NaN"},
		{name: "JSON5SingleQuotes", bad: withField(6, `{"n":6}`, `{'n':6}`), reason: "single-quoted"},
		{name: "JSON5TrailingComma", bad: withField(6, `{"n":6}`, `{"n":6,}`), reason: "trailing comma"},
		{name: "JSON5Comment", bad: withField(6, `{"n":6}`, `{"n":6 /* c */}`), reason: "comments"},
		{name: "VersionOutOfRange", bad: withField(6, `"aggregateVersion":1`, `"aggregateVersion":9223372036854775808`), reason: "out of range"},
		{name: "VersionFractional", bad: withField(6, `"aggregateVersion":1`, `"aggregateVersion":1.5`), reason: "not an integer"},
		{name: "VersionOneDotZero", bad: withField(6, `"aggregateVersion":1`, `"aggregateVersion":1.0`), reason: "not an integer"},
		{name: "VersionExponent", bad: withField(6, `"aggregateVersion":1`, `"aggregateVersion":1e0`), reason: "not an integer"},
		{name: "VersionAsString", bad: withField(6, `"aggregateVersion":1`, `"aggregateVersion":"1"`), reason: "expected an integer"},
		{name: "VersionZero", bad: withField(6, `"aggregateVersion":1`, `"aggregateVersion":0`), reason: "must be at least 1"},
		{name: "VersionNegative", bad: withField(6, `"aggregateVersion":1`, `"aggregateVersion":-3`), reason: "must be at least 1"},
		{name: "TimestampNegative", bad: withField(6, `"timestamp":1006`, `"timestamp":-1`), reason: "must not be negative"},
		{name: "TimestampAboveSafeInteger", bad: withField(6, `"timestamp":1006`, `"timestamp":9007199254740993`), reason: "at most 2^53-1"},
		{name: "MissingType", bad: withField(6, `"type":"T",`, ``), reason: `field "type": is missing`},
		{name: "MissingAggregateID", bad: withField(6, `"aggregateId":"a-6",`, ``), reason: `field "aggregateId": is missing`},
		{name: "MissingTimestamp", bad: withField(6, `"timestamp":1006,`, ``), reason: `field "timestamp": is missing`},
		{name: "MissingVersion", bad: withField(6, `"aggregateVersion":1,`, ``), reason: `field "aggregateVersion": is missing`},
		{name: "EmptyType", bad: withField(6, `"type":"T"`, `"type":""`), reason: "must not be empty"},
		{name: "EmptyAggregateID", bad: withField(6, `"aggregateId":"a-6"`, `"aggregateId":""`), reason: "must not be empty"},
		{name: "NullAggregateID", bad: withField(6, `"aggregateId":"a-6"`, `"aggregateId":null`), reason: "must be a string"},
		{name: "NULEscape", bad: withField(6, `{"n":6}`, `{"n":"\u0000"}`), reason: `\u0000`},
		{name: "LoneSurrogate", bad: withField(6, `{"n":6}`, `{"n":"\ud800"}`), reason: "surrogate"},
		{name: "DuplicatePairInFile", bad: withField(6, `"aggregateId":"a-6"`, `"aggregateId":"a-2"`), reason: `aggregate "a-2" version 1 is`},
		{name: "DuplicatePairAgainstStore", bad: withField(6, `"aggregateId":"a-6"`, `"aggregateId":"pre"`),
			prep: func(t *testing.T, s *eventstore.Store) {
				_, err := s.SaveEvent(ctx, eventstore.Event{AggregateID: "pre", AggregateVersion: 1, Type: "T"})
				require.NoError(t, err)
			}, reason: `aggregate "pre" version 1 is already in the store`},
		{name: "PositionNotIncreasing", bad: goodLine(4), reason: "position 4 is not above the previous line's position 5"},
		{name: "PositionRepeated", bad: goodLine(5), reason: "not above"},
		{name: "PositionMissingOnOneLine", bad: withField(6, `,"position":6`, ``), reason: "some lines of this file have a position and others not"},
		{name: "ThreadMismatch", bad: withField(6, `"threadId":5`, `"threadId":9`), reason: "do not match position"},
		{name: "LineTooLong", bad: long, reason: "longer than the limit"},
		{name: "MetadataArray", bad: withField(6, `"payload":{"n":6}`, `"payload":{"n":6},"metadata":[1]`), reason: `field "metadata": must be a JSON object`},
		{name: "MetadataString", bad: withField(6, `"payload":{"n":6}`, `"payload":{"n":6},"metadata":"c-1"`), reason: `field "metadata": must be a JSON object`},
		{name: "MetadataNumber", bad: withField(6, `"payload":{"n":6}`, `"payload":{"n":6},"metadata":1.5`), reason: `field "metadata": must be a JSON object`},
		{name: "MetadataDuplicateKey", bad: withField(6, `"payload":{"n":6}`, `"payload":{"n":6},"metadata":{"c":1,"c":2}`), reason: `duplicate key "c"`},
		{name: "MetadataInvalidUTF8", bad: withField(6, `"payload":{"n":6}`, "\"payload\":{\"n\":6},\"metadata\":{\"c\":\"\xc3\x28\"}"), reason: "invalid UTF-8"},
		{name: "MetadataNaN", bad: withField(6, `"payload":{"n":6}`, `"payload":{"n":6},"metadata":{"c":NaN}`), reason: "NaN"},
		{name: "MetadataTwice", bad: withField(6, `"payload":{"n":6}`, `"payload":{"n":6},"metadata":{},"metadata":{}`), reason: `duplicate key "metadata"`},
	}
}

// BadInputs returns, by name, every bad input the conformance suite feeds
// to ImportEvents (five good lines, then the bad one, then a good one), for
// fuzz seeds. The suite imports them with MaxLineBytes 1000.
func BadInputs() map[string][]byte {
	out := map[string][]byte{
		"BOM":  []byte("\xef\xbb\xbf" + goodLines(1, 2)),
		"Gzip": []byte("\x1f\x8b\x08\x00\x00\x00\x00\x00\n"),
		"Zstd": []byte("\x28\xb5\x2f\xfd\x00\x00\n"),
	}
	for _, c := range badInputCases() {
		data := goodLines(1, 5) + c.bad
		if !c.noNL {
			data += "\n" + goodLine(99) + "\n"
		}
		out[c.name] = []byte(data)
	}
	return out
}

// runBadInput checks every kind of bad input: the import stops at the bad
// line with an error naming its line, byte offset and reason, the store
// holds exactly the lines before it, and the reported offset resumes there.
func runBadInput(t *testing.T, h conformance.Harness) {
	ctx := context.Background()
	const k = 5 // good lines before the bad one
	prefix := goodLines(1, k)
	tests := badInputCases()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, _ := conformance.NewStore(t, h, nil)
			if tt.prep != nil {
				tt.prep(t, s)
			}
			d0, err := s.Describe(ctx, nil)
			require.NoError(t, err)
			data := prefix + tt.bad
			if !tt.noNL {
				data += "\n" + goodLine(99) + "\n" // lines after the bad one must never be written
			}
			badAt := len(prefix)
			if tt.prep != nil {
				// The store is not empty: keep the file's positions above it.
				data = renumberThreads(strings.ReplaceAll(data, `"position":`, `"position":1000`))
				badAt = len(renumberThreads(strings.ReplaceAll(prefix, `"position":`, `"position":1000`)))
			}
			for _, batch := range []int{0, 2} {
				s2 := s
				if batch != 0 {
					s2, _ = conformance.NewStore(t, h, nil)
					if tt.prep != nil {
						tt.prep(t, s2)
					}
				}
				res, err := transfer.ImportEvents(ctx, s2, strings.NewReader(data), &transfer.ImportOptions{BatchEvents: batch, MaxLineBytes: 1000})
				require.ErrorIs(t, err, transfer.ErrBadInput, "batch %d", batch)
				var le *transfer.LineError
				require.ErrorAs(t, err, &le)
				require.EqualValues(t, k+1, le.Line, "line of %v", err)
				require.EqualValues(t, badAt, le.Offset, "byte offset of %v", err)
				require.Contains(t, le.Error(), tt.reason)
				require.Contains(t, le.Error(), fmt.Sprintf("line %d (byte offset %d", k+1, badAt))
				require.EqualValues(t, badAt, res.ByteOffset, "committed offset")
				require.EqualValues(t, k, res.Lines)
				d, err := s2.Describe(ctx, nil)
				require.NoError(t, err)
				require.Equal(t, d0.EventCount+k, d.EventCount, "exactly the lines before the bad one are stored (batch %d)", batch)
			}
		})
	}

	for _, tt := range []struct{ name, data, reason string }{
		{"BOM", "\xef\xbb\xbf" + goodLines(1, 2), "byte order mark"},
		{"Gzip", "\x1f\x8b\x08\x00\x00\x00\x00\x00\n", "gzip-compressed"},
		{"Zstd", "\x28\xb5\x2f\xfd\x00\x00\n", "zstd-compressed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, _ := conformance.NewStore(t, h, nil)
			_, err := transfer.ImportEvents(ctx, s, strings.NewReader(tt.data), nil)
			var le *transfer.LineError
			require.ErrorAs(t, err, &le)
			require.EqualValues(t, 1, le.Line)
			require.Zero(t, le.Offset)
			require.Contains(t, le.Error(), tt.reason)
		})
	}

	t.Run("FixAndResume", func(t *testing.T) {
		// After a bad line, fix it and resume from the reported offset:
		// the import completes with every line exactly once.
		t.Parallel()
		s, _ := conformance.NewStore(t, h, nil)
		bad := prefix + withField(6, `"aggregateVersion":1`, `"aggregateVersion":0`) + "\n" + goodLines(7, 9)
		res, err := transfer.ImportEvents(ctx, s, strings.NewReader(bad), nil)
		require.ErrorIs(t, err, transfer.ErrBadInput)
		fixed := goodLines(1, 9)
		res2, err := transfer.ImportEvents(ctx, s, strings.NewReader(fixed[res.ByteOffset:]), &transfer.ImportOptions{ByteOffset: res.ByteOffset})
		require.NoError(t, err)
		require.True(t, res2.Done)
		require.EqualValues(t, 4, res2.Events)
		require.Equal(t, []byte(fixed), exportAll(t, s))
	})
}

// renumberThreads recomputes threadId/threadCounter of lines whose position
// was changed by a test.
func renumberThreads(data string) string {
	var out []string
	for _, l := range strings.Split(data, "\n") {
		var pos int
		i := strings.Index(l, `"position":`)
		if i < 0 || strings.HasPrefix(l, "[") {
			out = append(out, l)
			continue
		}
		if _, err := fmt.Sscanf(l[i+len(`"position":`):], "%d", &pos); err != nil || pos < 1 {
			out = append(out, l)
			continue
		}
		if j := strings.Index(l, `"threadId":`); j >= 0 && strings.HasPrefix(l, `{"threadCounter":`) {
			rest := l[j:]
			rest = rest[strings.Index(rest, ","):]
			l = fmt.Sprintf(`{"threadCounter":%d,"threadId":%d%s`, (pos-1)/256, (pos-1)%256, rest)
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

// runImportPositions checks how positions are kept or assigned.
func runImportPositions(t *testing.T, h conformance.Harness) {
	ctx := context.Background()

	t.Run("KeptWhenContinuing", func(t *testing.T) {
		t.Parallel()
		s, _ := conformance.NewStore(t, h, nil)
		importAll(t, s, []byte(goodLines(1, 3)), nil)
		importAll(t, s, []byte(goodLines(10, 12)), &transfer.ImportOptions{SourceID: "second"})
		events, _ := conformance.LoadAll(t, s, eventstore.Filter{})
		var got []int64
		for _, e := range events {
			got = append(got, e.Position)
		}
		require.Equal(t, []int64{1, 2, 3, 10, 11, 12}, got, "positions are kept, gaps included")
		_, err := s.SaveEvent(ctx, eventstore.Event{AggregateID: "x", AggregateVersion: 1, Type: "T"})
		require.NoError(t, err)
		latest, err := s.LatestEvent(ctx, eventstore.Filter{})
		require.NoError(t, err)
		require.EqualValues(t, 13, latest.Position, "appends continue after imported positions")
	})

	t.Run("RefusedWhenNotContinuing", func(t *testing.T) {
		t.Parallel()
		s, _ := conformance.NewStore(t, h, nil)
		importAll(t, s, []byte(goodLines(1, 5)), nil)
		data := strings.ReplaceAll(goodLines(3, 4), `"aggregateId":"a-`, `"aggregateId":"b-`)
		_, err := transfer.ImportEvents(ctx, s, strings.NewReader(data), &transfer.ImportOptions{SourceID: "again"})
		var le *transfer.LineError
		require.ErrorAs(t, err, &le)
		require.EqualValues(t, 1, le.Line)
		require.Contains(t, le.Error(), "position 3 is not above the store's last position 5")
		res := importAll(t, s, []byte(data), &transfer.ImportOptions{SourceID: "renumbered", Renumber: true})
		require.EqualValues(t, 7, res.LastPosition, "renumbered after the store's last position")
	})

	t.Run("AssignedInFileOrder", func(t *testing.T) {
		t.Parallel()
		s, _ := conformance.NewStore(t, h, nil)
		_, err := s.SaveEvent(ctx, eventstore.Event{AggregateID: "x", AggregateVersion: 1, Type: "T"})
		require.NoError(t, err)
		data := `{"type":"A","timestamp":5,"aggregateId":"r","aggregateVersion":1,"payload":{"z":1,"a":2}}` + "\n" +
			`{"threadCounter":9,"threadId":3,"type":"B","timestamp":1,"aggregateId":"r","aggregateVersion":2}` + "\n"
		importAll(t, s, []byte(data), nil)
		events, _ := conformance.LoadAll(t, s, eventstore.Filter{AggregateIDs: []string{"r"}})
		require.Len(t, events, 2)
		require.EqualValues(t, 2, events[0].Position)
		require.EqualValues(t, 3, events[1].Position)
		require.EqualValues(t, 5, events[0].Timestamp, "imports keep timestamps as given")
		require.Equal(t, `{"z":1,"a":2}`, string(events[0].Payload))
		require.Equal(t, "null", string(events[1].Payload), "a missing payload is null")
	})
}

// runImportResume: an import cancelled midway reports the committed offset;
// resuming (from that offset, or from the start with Resume) imports the
// rest exactly once; resumes that do not match are refused.
func runImportResume(t *testing.T, h conformance.Harness) {
	ctx := context.Background()
	data := []byte(goodLines(1, 2000))

	t.Run("CancelThenResume", func(t *testing.T) {
		t.Parallel()
		for _, resume := range []string{"offset", "whole-source"} {
			s, _ := conformance.NewStore(t, h, nil)
			cctx, cancel := context.WithCancel(ctx)
			batches := 0
			res, err := transfer.ImportEvents(cctx, s, bytes.NewReader(data), &transfer.ImportOptions{
				BatchEvents: 100,
				ProgressFunc: func(transfer.ImportProgress) {
					batches++
					if batches == 3 {
						cancel()
					}
				},
			})
			cancel()
			require.ErrorIs(t, err, context.Canceled)
			require.False(t, res.Done)
			require.Positive(t, res.Lines)
			require.Less(t, res.Lines, int64(2000))
			require.EqualValues(t, bytes.Index(data, []byte(goodLine(int(res.Lines)+1))), res.ByteOffset, "the offset is the start of the first uncommitted line")
			d, err := s.Describe(ctx, nil)
			require.NoError(t, err)
			require.Equal(t, res.Lines, d.EventCount, "exactly the committed lines are stored")

			var res2 *transfer.ImportResult
			if resume == "offset" {
				res2, err = transfer.ImportEvents(ctx, s, bytes.NewReader(data[res.ByteOffset:]), &transfer.ImportOptions{ByteOffset: res.ByteOffset})
			} else {
				res2, err = transfer.ImportEvents(ctx, s, bytes.NewReader(data), &transfer.ImportOptions{Resume: true})
			}
			require.NoError(t, err)
			require.True(t, res2.Done)
			require.EqualValues(t, 2000, res2.TotalEvents)
			require.Equal(t, data, exportAll(t, s), resume)
			// Resuming a finished import changes nothing.
			res3, err := transfer.ImportEvents(ctx, s, bytes.NewReader(data), &transfer.ImportOptions{Resume: true})
			require.NoError(t, err)
			require.True(t, res3.Done)
			require.Zero(t, res3.Events)
		}
	})

	t.Run("MismatchesAreRefused", func(t *testing.T) {
		t.Parallel()
		s, _ := conformance.NewStore(t, h, nil)
		cut := bytes.Index(data, []byte(goodLine(1001)))
		_, err := transfer.ImportEvents(ctx, s, bytes.NewReader(data[:cut]), nil)
		require.NoError(t, err)
		// Pretend the first run stopped here: a resume must name the
		// recorded offset, and the skipped bytes must be the same.
		s2, _ := conformance.NewStore(t, h, nil)
		cctx, cancel := context.WithCancel(ctx)
		res, err := transfer.ImportEvents(cctx, s2, bytes.NewReader(data), &transfer.ImportOptions{BatchEvents: 500,
			ProgressFunc: func(p transfer.ImportProgress) {
				if p.Lines >= 1000 {
					cancel()
				}
			}})
		cancel()
		require.ErrorIs(t, err, context.Canceled)
		_, err = transfer.ImportEvents(ctx, s2, bytes.NewReader(data[res.ByteOffset+1:]), &transfer.ImportOptions{ByteOffset: res.ByteOffset + 1})
		require.ErrorIs(t, err, transfer.ErrResumeMismatch, "an offset that is not the recorded one")
		other := bytes.Replace(data, []byte(`"payload":{"n":17}`), []byte(`"payload":{"n":18}`), 1)
		_, err = transfer.ImportEvents(ctx, s2, bytes.NewReader(other), &transfer.ImportOptions{Resume: true})
		require.ErrorIs(t, err, transfer.ErrResumeMismatch, "another file")
		_, err = transfer.ImportEvents(ctx, s2, bytes.NewReader(data[:100]), &transfer.ImportOptions{Resume: true})
		require.ErrorIs(t, err, transfer.ErrResumeMismatch, "a shorter file")
		_, err = transfer.ImportEvents(ctx, s2, bytes.NewReader(data), &transfer.ImportOptions{Resume: true, SourceID: "never-seen"})
		require.ErrorIs(t, err, transfer.ErrResumeMismatch, "an unknown source")
		d, err := s2.Describe(ctx, nil)
		require.NoError(t, err)
		require.Equal(t, res.Lines, d.EventCount, "refused resumes wrote nothing")
		_, err = transfer.ImportEvents(ctx, s2, bytes.NewReader(data), &transfer.ImportOptions{Resume: true})
		require.NoError(t, err)
		require.Equal(t, data, exportAll(t, s2))
		imports, err := transfer.Imports(ctx, s2)
		require.NoError(t, err)
		require.Len(t, imports, 1)
		require.True(t, imports[0].Done)
		require.EqualValues(t, len(data), imports[0].ByteOffset)
	})

	// A MANUAL import of a recorded source starts again only by resuming:
	// from its start, it would append the source twice (renumbered) or
	// fail at its first line. It is refused before anything is read,
	// saying whether the recorded import is done.
	t.Run("RecordedSourceRefused", func(t *testing.T) {
		t.Parallel()
		s, _ := conformance.NewStore(t, h, nil)
		small := []byte(goodLines(1, 30))
		_, err := transfer.ImportEvents(ctx, s, bytes.NewReader(small), &transfer.ImportOptions{SourceID: "file"})
		require.NoError(t, err)
		for _, o := range []*transfer.ImportOptions{{SourceID: "file"}, {SourceID: "file", Renumber: true}, {SourceID: "file", DryRun: true}} {
			_, err = transfer.ImportEvents(ctx, s, bytes.NewReader(small), o)
			var rec *transfer.ImportRecordedError
			require.ErrorAs(t, err, &rec, "%+v", o)
			require.ErrorIs(t, err, transfer.ErrImportRecorded)
			require.True(t, rec.Done)
			require.EqualValues(t, 30, rec.Events)
			require.EqualValues(t, 30, rec.Lines)
		}
		require.Equal(t, small, exportAll(t, s), "nothing was written")

		// Unfinished: the same refusal, not done.
		cctx, cancel := context.WithCancel(ctx)
		_, err = transfer.ImportEvents(cctx, s, bytes.NewReader([]byte(goodLines(31, 500))), &transfer.ImportOptions{SourceID: "more", BatchEvents: 100,
			ProgressFunc: func(transfer.ImportProgress) { cancel() }})
		cancel()
		require.ErrorIs(t, err, context.Canceled)
		_, err = transfer.ImportEvents(ctx, s, bytes.NewReader([]byte(goodLines(31, 500))), &transfer.ImportOptions{SourceID: "more"})
		var rec *transfer.ImportRecordedError
		require.ErrorAs(t, err, &rec)
		require.False(t, rec.Done)
		d, err := s.Describe(ctx, nil)
		require.NoError(t, err)
		require.Positive(t, rec.Lines)
		require.Equal(t, d.EventCount-30, rec.Lines, "the lines committed before the cancel")

		// Forgotten (AbortImport), the source imports anew.
		require.NoError(t, transfer.AbortImport(ctx, s, "file"))
		_, err = transfer.ImportEvents(ctx, s, bytes.NewReader([]byte(goodLines(1, 30))), &transfer.ImportOptions{SourceID: "file", Renumber: true})
		require.ErrorIs(t, err, transfer.ErrBadInput, "its pairs are stored: now the lines are refused, not the source")
	})
}

// runAutoMode checks replacing imports and what a failed one leaves.
func runAutoMode(t *testing.T, h conformance.Harness) {
	ctx := context.Background()
	file := []byte(goodLines(1, 50))

	t.Run("ReplacesEventsAndSnapshotsKeepsSecrets", func(t *testing.T) {
		t.Parallel()
		s, _ := conformance.NewStore(t, h, nil)
		for i := range 80 {
			_, err := s.SaveEvent(ctx, eventstore.Event{AggregateID: "old", AggregateVersion: int64(i + 1), Type: "OLD"})
			require.NoError(t, err)
		}
		require.NoError(t, s.SaveSnapshot(ctx, "old", []byte("state")))
		require.NoError(t, s.Secrets().SetSecret(ctx, "k", "v"))
		importAll(t, s, file, &transfer.ImportOptions{Mode: transfer.MaintenanceAuto, BatchEvents: 7})
		require.Equal(t, file, exportAll(t, s), "the store holds exactly the file")
		d, err := s.Describe(ctx, nil)
		require.NoError(t, err)
		require.EqualValues(t, 50, d.EventCount)
		require.False(t, d.IsFrozen, "unfrozen: the import froze it")
		_, found, err := s.LoadSnapshot(ctx, "old")
		require.NoError(t, err)
		require.False(t, found, "snapshots are replaced too")
		_, found, err = s.Secrets().GetSecret(ctx, "k")
		require.NoError(t, err)
		require.True(t, found, "secrets are untouched")
		_, err = s.SaveEvent(ctx, eventstore.Event{AggregateID: "new", AggregateVersion: 1, Type: "T"})
		require.NoError(t, err)
	})

	t.Run("DuplicatePairWhileStaged", func(t *testing.T) {
		// A replacing import into a non-empty store stages the file: a
		// pair repeated in the file is a line error there too, and the
		// store is left as it was. (On SQLite the staging table's key
		// violation was not recognized as a conflict until 2026-12-03:
		// the import failed with the raw driver error.)
		t.Parallel()
		s, _ := conformance.NewStore(t, h, nil)
		_, err := s.SaveEvent(ctx, eventstore.Event{AggregateID: "old", AggregateVersion: 1, Type: "OLD"})
		require.NoError(t, err)
		before := exportAll(t, s)
		bad := goodLines(1, 5) + withField(6, `"aggregateId":"a-6"`, `"aggregateId":"a-2"`) + "\n"
		// Batches of 2: the repeated pair is found by the staging table's
		// key, not by the batch's own check.
		_, err = transfer.ImportEvents(ctx, s, strings.NewReader(bad), &transfer.ImportOptions{Mode: transfer.MaintenanceAuto, BatchEvents: 2})
		var le *transfer.LineError
		require.ErrorAs(t, err, &le)
		require.EqualValues(t, 6, le.Line, "%v", err)
		require.Contains(t, le.Reason, `aggregate "a-2" version 1`)
		require.Equal(t, before, exportAll(t, s), "the store is unchanged")
	})

	t.Run("FrozenStoreStaysFrozen", func(t *testing.T) {
		t.Parallel()
		s, _ := conformance.NewStore(t, h, nil)
		require.NoError(t, s.Freeze(ctx, ""))
		importAll(t, s, file, auto())
		d, err := s.Describe(ctx, nil)
		require.NoError(t, err)
		require.True(t, d.IsFrozen, "an AUTO import unfreezes only what it froze")
		var buf bytes.Buffer
		_, err = transfer.ExportEvents(ctx, s, &buf, &transfer.ExportOptions{Mode: transfer.MaintenanceAuto})
		require.NoError(t, err)
		d, err = s.Describe(ctx, nil)
		require.NoError(t, err)
		require.True(t, d.IsFrozen, "an AUTO export unfreezes only what it froze")
	})

	t.Run("FailedReplaceLeavesStoreUnchanged", func(t *testing.T) {
		t.Parallel()
		s, _ := conformance.NewStore(t, h, nil)
		for i := range 30 {
			_, err := s.SaveEvent(ctx, eventstore.Event{AggregateID: "old", AggregateVersion: int64(i + 1), Type: "OLD"})
			require.NoError(t, err)
		}
		before := exportAll(t, s)
		bad := goodLines(1, 20) + "not json\n" + goodLines(22, 50)
		res, err := transfer.ImportEvents(ctx, s, strings.NewReader(bad), &transfer.ImportOptions{Mode: transfer.MaintenanceAuto, BatchEvents: 8})
		require.ErrorIs(t, err, transfer.ErrBadInput)
		require.Contains(t, err.Error(), "the store is unchanged")
		require.EqualValues(t, 20, res.Lines)
		require.Equal(t, before, exportAll(t, s), "never half-replaced")
		d, err := s.Describe(ctx, nil)
		require.NoError(t, err)
		require.False(t, d.IsFrozen, "not left frozen")
		// Resume with the line fixed: the replacement completes.
		fixed := goodLines(1, 50)
		res2, err := transfer.ImportEvents(ctx, s, strings.NewReader(fixed), &transfer.ImportOptions{Mode: transfer.MaintenanceAuto, Resume: true})
		require.NoError(t, err)
		require.True(t, res2.Done)
		require.Equal(t, []byte(fixed), exportAll(t, s))
	})

	t.Run("ResumeRefusedWhenStoreChanged", func(t *testing.T) {
		t.Parallel()
		s, _ := conformance.NewStore(t, h, nil)
		_, err := s.SaveEvent(ctx, eventstore.Event{AggregateID: "old", AggregateVersion: 1, Type: "OLD"})
		require.NoError(t, err)
		_, err = transfer.ImportEvents(ctx, s, strings.NewReader(goodLines(1, 5)+"bad\n"), auto())
		require.ErrorIs(t, err, transfer.ErrBadInput)
		_, err = s.SaveEvent(ctx, eventstore.Event{AggregateID: "old", AggregateVersion: 2, Type: "OLD"})
		require.NoError(t, err, "the failed AUTO import left the store writable")
		_, err = transfer.ImportEvents(ctx, s, strings.NewReader(goodLines(1, 10)), &transfer.ImportOptions{Mode: transfer.MaintenanceAuto, Resume: true})
		require.ErrorIs(t, err, transfer.ErrResumeMismatch, "finishing would silently drop the new event")
		require.NoError(t, transfer.AbortImport(ctx, s, ""))
		events, _ := conformance.LoadAll(t, s, eventstore.Filter{})
		require.Len(t, events, 2, "abort keeps the store as it is")
	})

	t.Run("FailedImportIntoEmptyStore", func(t *testing.T) {
		t.Parallel()
		for _, undo := range []string{"resume", "abort"} {
			s, _ := conformance.NewStore(t, h, nil)
			bad := goodLines(1, 20) + "{}\n"
			res, err := transfer.ImportEvents(ctx, s, strings.NewReader(bad), &transfer.ImportOptions{Mode: transfer.MaintenanceAuto, BatchEvents: 8})
			require.ErrorIs(t, err, transfer.ErrBadInput)
			require.Contains(t, err.Error(), "stays frozen")
			d, err := s.Describe(ctx, nil)
			require.NoError(t, err)
			require.True(t, d.IsFrozen, "frozen, not silently: the error and Describe say why")
			require.Contains(t, d.FrozenReason, "AUTO import")
			require.EqualValues(t, 20, d.EventCount)
			_, err = s.SaveEvent(ctx, eventstore.Event{AggregateID: "app", AggregateVersion: 1, Type: "T"})
			require.ErrorIs(t, err, eventstore.ErrFrozen, "applications cannot write into a half-restored store")
			switch undo {
			case "resume":
				fixed := goodLines(1, 30)
				_, err := transfer.ImportEvents(ctx, s, strings.NewReader(fixed[res.ByteOffset:]), &transfer.ImportOptions{Mode: transfer.MaintenanceAuto, ByteOffset: res.ByteOffset})
				require.NoError(t, err)
				require.Equal(t, []byte(fixed), exportAll(t, s))
			case "abort":
				require.NoError(t, transfer.AbortImport(ctx, s, ""))
				d, err := s.Describe(ctx, nil)
				require.NoError(t, err)
				require.Zero(t, d.EventCount, "abort empties the store again")
			}
			d, err = s.Describe(ctx, nil)
			require.NoError(t, err)
			require.False(t, d.IsFrozen, undo)
		}
	})
}

// runExportBudget: a byte budget stops before the line that would exceed it
// but always writes at least one event, so budgeted exports resumed from
// their cursors add up to the full export.
func runExportBudget(t *testing.T, h conformance.Harness) {
	ctx := context.Background()
	s, _ := conformance.NewStore(t, h, nil)
	events := conformance.GenerateEvents(7, 300)
	_, err := s.SaveEvents(ctx, events)
	require.NoError(t, err)
	full := exportAll(t, s)
	for _, budget := range []int64{1, 500, 4000, 100_000} {
		var all bytes.Buffer
		var cursor eventstore.Cursor
		calls := 0
		for {
			var buf bytes.Buffer
			res, err := transfer.ExportEvents(ctx, s, &buf, &transfer.ExportOptions{Cursor: cursor, MaxBytes: budget, PageSize: 37})
			require.NoError(t, err)
			require.Positive(t, res.Events, "every call makes progress")
			if res.Events > 1 {
				require.LessOrEqual(t, res.Bytes, budget)
			}
			require.EqualValues(t, buf.Len(), res.Bytes)
			all.Write(buf.Bytes())
			cursor = res.Cursor
			calls++
			if res.End {
				break
			}
			require.True(t, res.BufferOverflow)
		}
		require.Equal(t, full, all.Bytes(), "budget %d", budget)
		if budget == 1 {
			require.Equal(t, 300, calls, "one event per call when every line exceeds the budget")
		}
	}
	_, err = transfer.ExportEvents(ctx, s, &bytes.Buffer{}, &transfer.ExportOptions{Cursor: eventstore.CursorAt(301)})
	require.ErrorIs(t, err, eventstore.ErrCursorBeyondEnd)
	_, err = transfer.ExportEvents(ctx, s, &bytes.Buffer{}, &transfer.ExportOptions{Cursor: "bad"})
	require.ErrorIs(t, err, eventstore.ErrInvalidCursor)

	// Cancelled midway: a valid cursor, and the rest from it.
	cctx, cancel := context.WithCancel(ctx)
	var part bytes.Buffer
	res, err := transfer.ExportEvents(cctx, s, &part, &transfer.ExportOptions{PageSize: 50, ProgressFunc: func(p transfer.ExportProgress) {
		if p.Events >= 100 {
			cancel()
		}
	}})
	cancel()
	require.ErrorIs(t, err, context.Canceled)
	require.False(t, res.End)
	require.EqualValues(t, 100, res.Events)
	var rest bytes.Buffer
	_, err = transfer.ExportEvents(ctx, s, &rest, &transfer.ExportOptions{Cursor: res.Cursor})
	require.NoError(t, err)
	require.Equal(t, full, append(part.Bytes(), rest.Bytes()...))
}

// runExportSnapshot: appends committed while an export runs are not in it
// (one snapshot), and the next export from its cursor gets them.
func runExportSnapshot(t *testing.T, h conformance.Harness) {
	ctx := context.Background()
	s, url := conformance.NewStore(t, h, nil)
	writer := conformance.Open(t, url, nil)
	for i := range 500 {
		_, err := s.SaveEvent(ctx, eventstore.Event{AggregateID: "a", AggregateVersion: int64(i + 1), Type: "T"})
		require.NoError(t, err)
	}
	var buf bytes.Buffer
	appended := 0
	res, err := transfer.ExportEvents(ctx, s, &buf, &transfer.ExportOptions{PageSize: 100, ProgressFunc: func(transfer.ExportProgress) {
		for range 10 {
			appended++
			_, err := writer.SaveEvent(ctx, eventstore.Event{AggregateID: "b", AggregateVersion: int64(appended), Type: "T"})
			require.NoError(t, err)
		}
	}})
	require.NoError(t, err)
	require.True(t, res.End)
	require.EqualValues(t, 500, res.Events, "the export saw its snapshot only")
	require.EqualValues(t, 500, res.LastPosition)
	require.Positive(t, appended)
	var more bytes.Buffer
	res2, err := transfer.ExportEvents(ctx, s, &more, &transfer.ExportOptions{Cursor: res.Cursor})
	require.NoError(t, err)
	require.EqualValues(t, appended, res2.Events)
}

// runSecretsNDJSON: tombstones and idx survive export and import; ids in use
// are refused with the line.
func runSecretsNDJSON(t *testing.T, h conformance.Harness) {
	ctx := context.Background()
	src, _ := conformance.NewStore(t, h, nil)
	m := src.Secrets()
	for i := range 30 {
		require.NoError(t, m.SetSecret(ctx, fmt.Sprintf("id-%d", i), fmt.Sprintf("key \"%d\" é", i)))
	}
	for _, i := range []int{3, 17, 29} {
		ok, err := m.DeleteSecret(ctx, fmt.Sprintf("id-%d", i))
		require.NoError(t, err)
		require.True(t, ok)
	}
	var buf bytes.Buffer
	res, err := transfer.ExportSecrets(ctx, src, &buf, nil)
	require.NoError(t, err)
	require.EqualValues(t, 30, res.Secrets)
	require.EqualValues(t, 3, res.Tombstones)
	require.Contains(t, buf.String(), `{"secret":null,"id":"id-3","idx":4}`+"\n")
	require.Contains(t, buf.String(), `{"secret":"key \"0\" é","id":"id-0","idx":1}`+"\n")

	dst, _ := conformance.NewStore(t, h, nil)
	ires, err := transfer.ImportSecrets(ctx, dst, bytes.NewReader(buf.Bytes()), nil)
	require.NoError(t, err)
	require.True(t, ires.Done)
	var again bytes.Buffer
	_, err = transfer.ExportSecrets(ctx, dst, &again, nil)
	require.NoError(t, err)
	require.Equal(t, buf.String(), again.String(), "byte-identical, tombstones and idx included")
	d, err := dst.Describe(ctx, nil)
	require.NoError(t, err)
	require.EqualValues(t, 30, d.SecretCount)
	require.EqualValues(t, 3, d.DeletedSecretCount)
	require.ErrorIs(t, dst.Secrets().SetSecret(ctx, "id-17", "reuse"), eventstore.ErrSecretExists, "an imported tombstone blocks reuse")
	require.NoError(t, dst.Secrets().SetSecret(ctx, "new", "v"))
	page, err := dst.Secrets().LoadSecrets(ctx, eventstore.SecretFilter{IDs: []string{"new"}, Limit: 1})
	require.NoError(t, err)
	require.EqualValues(t, 31, page.Secrets[0].Idx, "new secrets continue after imported idx")

	// An id already in the store stops the import at its line.
	lines := `{"secret":"a","id":"fresh-1","idx":100}` + "\n" + `{"secret":"b","id":"id-5","idx":101}` + "\n" + `{"secret":"c","id":"fresh-2","idx":102}` + "\n"
	_, err = transfer.ImportSecrets(ctx, dst, strings.NewReader(lines), &transfer.SecretsImportOptions{SourceID: "more"})
	var le *transfer.LineError
	require.ErrorAs(t, err, &le)
	require.EqualValues(t, 2, le.Line)
	require.ErrorIs(t, err, eventstore.ErrSecretExists)
	_, found, err := dst.Secrets().GetSecret(ctx, "fresh-1")
	require.NoError(t, err)
	require.True(t, found, "the line before the bad one is stored")
	_, found, err = dst.Secrets().GetSecret(ctx, "fresh-2")
	require.NoError(t, err)
	require.False(t, found, "nothing after the bad line")

	for _, bad := range []string{`{"id":"x","idx":1}`, `{"secret":"v","idx":1}`, `{"secret":1,"id":"x"}`, `{"secret":"v","id":"x","extra":1}`, `{"secret":"v","id":""}`, `{"secret":"v","id":"x","idx":-1}`} {
		s2, _ := conformance.NewStore(t, h, nil)
		_, err := transfer.ImportSecrets(ctx, s2, strings.NewReader(bad+"\n"), nil)
		require.ErrorIs(t, err, transfer.ErrBadInput, bad)
	}
	_, err = transfer.ImportSecrets(ctx, dst, strings.NewReader(goodLines(1, 1)), &transfer.SecretsImportOptions{SourceID: "events-file"})
	require.ErrorIs(t, err, transfer.ErrBadInput, "an events file given as secrets")
	require.True(t, errors.Is(err, transfer.ErrBadInput))
}

// runReservedTypes: the secret audit event types are written by the store
// only. An import (a store's history) accepts them in the store's own form
// and refuses any other (a file cannot plant an audit event that claims a
// secret was set with a payload of its choosing); SaveEvents and
// incremental imports refuse them outright. Before 2026-12-03 ImportEvents
// accepted any event of those types.
func runReservedTypes(t *testing.T, h conformance.Harness) {
	ctx := context.Background()
	line := func(pos int, typ, agg, payload string) string {
		return fmt.Sprintf(`{"threadCounter":0,"threadId":%d,"type":%q,"timestamp":%d,"aggregateId":%q,"aggregateVersion":1,"payload":%s,"position":%d}`,
			pos-1, typ, 1000+pos, agg, payload, pos) + "\n"
	}
	for _, tt := range []struct {
		name, typ, agg, payload, field string
	}{
		{"ForeignPayload", "RESOLVE_SET_SECRET", "RESOLVE_SET_SECRET_user-1_abcdefghij", `{"id":"user-1","amount":5}`, "payload"},
		{"NoID", "RESOLVE_DELETE_SECRET", "RESOLVE_DELETE_SECRET_user-1_abcdefghij", `{"who":"user-1"}`, "payload"},
		{"AggregateNotTheStores", "RESOLVE_SET_SECRET", "account-1", `{"id":"user-1"}`, "aggregateId"},
		{"AggregateOfAnotherID", "RESOLVE_SET_SECRET", "RESOLVE_SET_SECRET_user-2_abcdefghij", `{"id":"user-1"}`, "aggregateId"},
		{"SuffixNotRandomForm", "RESOLVE_DELETE_SECRET", "RESOLVE_DELETE_SECRET_user-1_abc", `{"id":"user-1"}`, "aggregateId"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, _ := conformance.NewStore(t, h, nil)
			in := goodLines(1, 2) + line(3, tt.typ, tt.agg, tt.payload)
			_, err := transfer.ImportEvents(ctx, s, strings.NewReader(in), nil)
			var le *transfer.LineError
			require.ErrorAs(t, err, &le)
			require.EqualValues(t, 3, le.Line)
			require.Equal(t, tt.field, le.Field, "%v", err)
			require.Contains(t, le.Reason, "must have the form the store writes")
			d, err := s.Describe(ctx, nil)
			require.NoError(t, err)
			require.EqualValues(t, 2, d.EventCount, "the lines before it, nothing of it")
		})
	}

	t.Run("StoresOwnFormRoundTrips", func(t *testing.T) {
		t.Parallel()
		src, _ := conformance.NewStore(t, h, nil)
		require.NoError(t, src.Secrets().SetSecret(ctx, "Zoë \"1\"", "k1"))
		require.NoError(t, src.Secrets().SetSecret(ctx, "user-2", "k2"))
		_, err := src.Secrets().DeleteSecret(ctx, "user-2")
		require.NoError(t, err)
		want := exportAll(t, src)
		dst, _ := conformance.NewStore(t, h, nil)
		importAll(t, dst, want, nil)
		require.Equal(t, want, exportAll(t, dst))
	})

	t.Run("RefusedByIncrementalImport", func(t *testing.T) {
		t.Parallel()
		s, _ := conformance.NewStore(t, h, nil)
		id, err := transfer.BeginIncrementalImport(ctx, s)
		require.NoError(t, err)
		err = transfer.PushIncrementalImport(ctx, s, id, []transfer.VersionlessEvent{{
			AggregateID: "RESOLVE_SET_SECRET_user-1_abcdefghij", Type: eventstore.SetSecretEventType, Timestamp: 1, Payload: []byte(`{"id":"user-1"}`),
		}})
		var ie *eventstore.InvalidEventError
		require.ErrorAs(t, err, &ie)
		require.Equal(t, "type", ie.Field)
	})
}
