package eventstoretest

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/esctl/esctl/eventstore"
)

// runIncrementalFrom: IncrementalImportFrom reads NDJSON strictly, merges it
// as one incremental import (duplicates dropped, versions assigned), and
// writes nothing when a line is bad.
func runIncrementalFrom(t *testing.T, h Harness) {
	ctx := context.Background()
	c := &clock{ms: 100}
	s, _ := newStore(t, h, &eventstore.Options{NowFunc: c.now})
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
	var pushes []eventstore.IncrementalProgress
	res, err := s.IncrementalImportFrom(ctx, strings.NewReader(b.String()), &eventstore.IncrementalImportOptions{
		PushEvents:   3,
		ProgressFunc: func(p eventstore.IncrementalProgress) { pushes = append(pushes, p) },
	})
	require.NoError(t, err)
	require.EqualValues(t, 8, res.Appended)
	require.EqualValues(t, 2, res.Duplicates)
	require.Len(t, pushes, 4, "pushes of 3, 3, 3 and 1 lines")
	require.EqualValues(t, 10, pushes[3].Lines)
	require.EqualValues(t, len(b.String()), pushes[3].ByteOffset)
	all, _ := loadAll(t, s, eventstore.Filter{})
	require.Len(t, all, 9)
	require.EqualValues(t, 8, all[7].AggregateVersion, "versions continue the aggregate")
	require.Equal(t, "b", all[8].AggregateID)
	require.EqualValues(t, 1, all[8].AggregateVersion, "a file's version is not kept")
	require.EqualValues(t, 9, all[8].Position, "nor its position")

	// A bad line fails the whole import with its line and offset, and
	// nothing is written; no import is left open.
	bad := `{"type":"T","timestamp":400,"aggregateId":"c","payload":{}}` + "\n" + `{"type":"T","timestamp":400,"aggregateId":"c","payload":{}` + "\n"
	_, err = s.IncrementalImportFrom(ctx, strings.NewReader(bad), nil)
	var le *eventstore.LineError
	require.ErrorAs(t, err, &le)
	require.EqualValues(t, 2, le.Line)
	require.EqualValues(t, strings.Index(bad, "\n")+1, le.Offset)
	all, _ = loadAll(t, s, eventstore.Filter{})
	require.Len(t, all, 9)
	open, err := s.IncrementalImports(ctx)
	require.NoError(t, err)
	require.Empty(t, open)

	// Older events: fail by default, skipped on request.
	older := `{"type":"T","timestamp":50,"aggregateId":"c","payload":{}}` + "\n"
	_, err = s.IncrementalImportFrom(ctx, strings.NewReader(older), nil)
	require.ErrorIs(t, err, eventstore.ErrOlderEvents)
	res, err = s.IncrementalImportFrom(ctx, strings.NewReader(older), &eventstore.IncrementalImportOptions{Older: eventstore.OlderSkip})
	require.NoError(t, err)
	require.EqualValues(t, 1, res.Skipped)
	require.EqualValues(t, 0, res.Appended)
}
