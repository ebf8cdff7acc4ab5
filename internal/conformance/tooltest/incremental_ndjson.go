package tooltest

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/internal/conformance"
	"github.com/esctl/esctl/transfer"
)

// runIncrementalFrom: IncrementalImportFrom reads NDJSON strictly, merges it
// as one incremental import (duplicates dropped, versions assigned), and
// writes nothing when a line is bad.
func runIncrementalFrom(t *testing.T, h conformance.Harness) {
	ctx := context.Background()
	c := &conformance.Clock{MS: 100}
	s, _ := conformance.NewStore(t, h, &eventstore.Options{NowFunc: c.Now})
	_, err := s.SaveEvent(ctx, eventstore.Event{AggregateID: "a", AggregateVersion: 1, Type: "Opened", Timestamp: 100, Payload: []byte(`{"x":1}`)})
	require.NoError(t, err)
	var b strings.Builder
	// The store's own event again (a duplicate), an in-file duplicate,
	// lines with and without versions and positions (both ignored).
	b.WriteString(`{"type":"Opened","timestamp":100,"aggregateId":"a","aggregateVersion":1,"payload":{"x":1}}` + "\n")
	for i := range 7 {
		fmt.Fprintf(&b, `{"type":"Moved","timestamp":%d,"aggregateId":"a","payload":{"i":%d}}`+"\n", 200+i, i)
	}
	b.WriteString(`{"type":"Moved","timestamp":200,"aggregateId":"a","payload":{"i":0}}` + "\n")
	b.WriteString(`{"type":"Opened","timestamp":300,"aggregateId":"b","aggregateVersion":9,"payload":{},"position":77}` + "\n")
	var pushes []transfer.IncrementalProgress
	res, err := transfer.IncrementalImportFrom(ctx, s, strings.NewReader(b.String()), &transfer.IncrementalImportOptions{
		PushEvents:   3,
		ProgressFunc: func(p transfer.IncrementalProgress) { pushes = append(pushes, p) },
	})
	require.NoError(t, err)
	require.EqualValues(t, 8, res.Appended)
	require.EqualValues(t, 2, res.Duplicates)
	require.Len(t, pushes, 4, "pushes of 3, 3, 3 and 1 lines")
	require.EqualValues(t, 10, pushes[3].Lines)
	require.EqualValues(t, len(b.String()), pushes[3].ByteOffset)
	all, _ := conformance.LoadAll(t, s, eventstore.Filter{})
	require.Len(t, all, 9)
	require.EqualValues(t, 8, all[7].AggregateVersion, "versions continue the aggregate")
	require.Equal(t, "b", all[8].AggregateID)
	require.EqualValues(t, 1, all[8].AggregateVersion, "a file's version is not kept")
	require.EqualValues(t, 9, all[8].Position, "nor its position")

	// A bad line fails the whole import with its line and offset, and
	// nothing is written; no import is left open.
	bad := `{"type":"T","timestamp":400,"aggregateId":"c","payload":{}}` + "\n" + `{"type":"T","timestamp":400,"aggregateId":"c","payload":{}` + "\n"
	_, err = transfer.IncrementalImportFrom(ctx, s, strings.NewReader(bad), nil)
	var le *transfer.LineError
	require.ErrorAs(t, err, &le)
	require.EqualValues(t, 2, le.Line)
	require.EqualValues(t, strings.Index(bad, "\n")+1, le.Offset)
	all, _ = conformance.LoadAll(t, s, eventstore.Filter{})
	require.Len(t, all, 9)
	open, err := transfer.IncrementalImports(ctx, s)
	require.NoError(t, err)
	require.Empty(t, open)

	// Older events: fail by default, skipped on request.
	older := `{"type":"T","timestamp":50,"aggregateId":"c","payload":{}}` + "\n"
	_, err = transfer.IncrementalImportFrom(ctx, s, strings.NewReader(older), nil)
	require.ErrorIs(t, err, transfer.ErrOlderEvents)
	res, err = transfer.IncrementalImportFrom(ctx, s, strings.NewReader(older), &transfer.IncrementalImportOptions{Older: transfer.OlderSkip})
	require.NoError(t, err)
	require.EqualValues(t, 1, res.Skipped)
	require.EqualValues(t, 0, res.Appended)
}

// runIncrementalDryRun: a dry run of an incremental import reports what the
// commit then does (appended, duplicates of stored events and of earlier
// lines, older events skipped or refused, positions) and writes nothing.
func runIncrementalDryRun(t *testing.T, h conformance.Harness) {
	ctx := context.Background()
	c := &conformance.Clock{MS: 100}
	s, _ := conformance.NewStore(t, h, &eventstore.Options{NowFunc: c.Now})
	for _, e := range []eventstore.Event{
		{AggregateID: "a", AggregateVersion: 1, Type: "Opened", Timestamp: 100, Payload: []byte(`{"x":1}`)},
		{AggregateID: "b", AggregateVersion: 1, Type: "Opened", Timestamp: 200, Payload: []byte(`{}`)},
	} {
		_, err := s.SaveEvent(ctx, e)
		require.NoError(t, err)
	}
	file := strings.Join([]string{
		`{"type":"Moved","timestamp":300,"aggregateId":"a","payload":{"x":2}}`,
		`{"type":"Opened","timestamp":100,"aggregateId":"a","payload":{"x":1}}`, // the stored one (and older)
		`{"type":"Opened","timestamp":300,"aggregateId":"c","payload":{"y":1}}`,
		`{"type":"Opened","timestamp":300,"aggregateId":"c","payload":{"y":1}}`, // line 3 again
		`{"type":"Late","timestamp":150,"aggregateId":"d","payload":{"z":1}}`,   // older than 200
		`{"type":"Late","timestamp":120,"aggregateId":"e","payload":{"z":2}}`,   // older still
		`{"type":"Moved","timestamp":250,"aggregateId":"b","payload":{"w":1}}`,
	}, "\n") + "\n"
	before, _ := conformance.LoadAll(t, s, eventstore.Filter{})

	// OlderFail: the dry run fails as the commit does.
	_, dryErr := transfer.IncrementalImportFrom(ctx, s, strings.NewReader(file), &transfer.IncrementalImportOptions{DryRun: true})
	var dryOlder *transfer.OlderEventsError
	require.ErrorAs(t, dryErr, &dryOlder)
	after, _ := conformance.LoadAll(t, s, eventstore.Filter{})
	require.Equal(t, before, after, "a dry run writes nothing")
	open, err := transfer.IncrementalImports(ctx, s)
	require.NoError(t, err)
	require.Empty(t, open, "a dry run stages nothing")
	_, err = transfer.IncrementalImportFrom(ctx, s, strings.NewReader(file), nil)
	var older *transfer.OlderEventsError
	require.ErrorAs(t, err, &older)
	require.Equal(t, *older, *dryOlder)
	require.EqualValues(t, 2, older.Count)
	require.Equal(t, "e", older.AggregateID)

	// OlderSkip: the same counts and positions.
	dry, err := transfer.IncrementalImportFrom(ctx, s, strings.NewReader(file), &transfer.IncrementalImportOptions{Older: transfer.OlderSkip, DryRun: true})
	require.NoError(t, err)
	after, _ = conformance.LoadAll(t, s, eventstore.Filter{})
	require.Equal(t, before, after, "a dry run writes nothing")
	committed, err := transfer.IncrementalImportFrom(ctx, s, strings.NewReader(file), &transfer.IncrementalImportOptions{Older: transfer.OlderSkip})
	require.NoError(t, err)
	require.Equal(t, *committed, *dry)
	require.EqualValues(t, 3, committed.Appended)
	require.EqualValues(t, 2, committed.Duplicates)
	require.EqualValues(t, 2, committed.Skipped)

	// Reserved types and bad lines fail the dry run as they fail the import.
	_, err = transfer.IncrementalImportFrom(ctx, s, strings.NewReader(`{"type":"RESOLVE_SET_SECRET","timestamp":900,"aggregateId":"RESOLVE_SET_SECRET_x_abcdefghij","payload":{"id":"x"}}`+"\n"), &transfer.IncrementalImportOptions{DryRun: true})
	require.ErrorIs(t, err, eventstore.ErrInvalidEvent)
	_, err = transfer.IncrementalImportFrom(ctx, s, strings.NewReader(`{"type":"T"`+"\n"), &transfer.IncrementalImportOptions{DryRun: true})
	var le *transfer.LineError
	require.ErrorAs(t, err, &le)
}
