package tooltest

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/esctl/esctl/backup"
	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/internal/conformance"
	"github.com/esctl/esctl/transfer"
)

// runAggregateCount checks the aggregate count the writes keep (migration 6)
// after every kind of write: appends, a MANUAL and an AUTO import (the AUTO
// one replaces the events, into an empty store through staging or over
// existing events), an incremental import, a restore and a copy. Each
// time the count must equal the distinct aggregates LoadEvents returns, and
// Verify (which counts them) must find nothing wrong.
func runAggregateCount(t *testing.T, h conformance.Harness) {
	ctx := context.Background()
	check := func(t *testing.T, s *eventstore.Store, step string) {
		t.Helper()
		ids := map[string]bool{}
		for e, err := range s.Events(ctx, eventstore.Filter{}) {
			require.NoError(t, err, step)
			ids[e.AggregateID] = true
		}
		d, err := s.Describe(ctx, &eventstore.DescribeOptions{Stats: true})
		require.NoError(t, err, step)
		require.EqualValues(t, len(ids), d.AggregateCount, "%s: the kept aggregate count", step)
		rep, err := transfer.Verify(ctx, s)
		require.NoError(t, err, step)
		require.Empty(t, rep.Problems, step)
	}
	s, _ := conformance.NewStore(t, h, nil)
	check(t, s, "empty")
	_, err := s.SaveEvents(ctx, []eventstore.Event{
		{AggregateID: "a", AggregateVersion: 1, Type: "T"}, {AggregateID: "a", AggregateVersion: 2, Type: "T"},
		{AggregateID: "b", AggregateVersion: 3, Type: "T"}, {AggregateID: "b", AggregateVersion: 1, Type: "T"},
	})
	require.NoError(t, err)
	_, err = s.SaveEvent(ctx, eventstore.Event{AggregateID: "a", AggregateVersion: 3, Type: "T"})
	require.NoError(t, err)
	check(t, s, "appends")
	require.NoError(t, s.Secrets().SetSecret(ctx, "k", "v"))
	check(t, s, "a secret's audit event")

	var manual strings.Builder
	for i := range 150 {
		fmt.Fprintf(&manual, `{"aggregateId":"m%d","aggregateVersion":%d,"type":"T","timestamp":1,"payload":{}}`+"\n", i%40, i/40+1)
	}
	_, err = transfer.ImportEvents(ctx, s, strings.NewReader(manual.String()), &transfer.ImportOptions{SourceID: "manual"})
	require.NoError(t, err)
	check(t, s, "MANUAL import")

	far := time.Now().Add(24 * time.Hour).UnixMilli() // newer than every stored event
	_, err = transfer.IncrementalImport(ctx, s, []transfer.VersionlessEvent{{AggregateID: "a", Type: "T", Timestamp: far}, {AggregateID: "n", Type: "T", Timestamp: far}, {AggregateID: "n", Type: "T", Timestamp: far + 1}}, nil)
	require.NoError(t, err)
	check(t, s, "incremental import")

	var stream bytes.Buffer
	m, err := backup.WriteStream(ctx, s, &stream, nil)
	require.NoError(t, err)
	r, _ := conformance.NewStore(t, h, nil)
	_, err = backup.RestoreStream(ctx, r, bytes.NewReader(stream.Bytes()), m, nil)
	require.NoError(t, err)
	check(t, r, "restore")

	c, _ := conformance.NewStore(t, h, nil)
	_, err = transfer.Copy(ctx, s, c, nil)
	require.NoError(t, err)
	check(t, c, "copy")

	var auto strings.Builder
	for i := range 90 {
		fmt.Fprintf(&auto, `{"aggregateId":"z%d","aggregateVersion":%d,"type":"T","timestamp":1,"payload":{}}`+"\n", i%7, i/7+1)
	}
	_, err = transfer.ImportEvents(ctx, c, strings.NewReader(auto.String()), &transfer.ImportOptions{SourceID: "auto", Mode: transfer.MaintenanceAuto})
	require.NoError(t, err)
	check(t, c, "AUTO import over a store")
	e, _ := conformance.NewStore(t, h, nil)
	_, err = transfer.ImportEvents(ctx, e, strings.NewReader(auto.String()), &transfer.ImportOptions{SourceID: "auto", Mode: transfer.MaintenanceAuto})
	require.NoError(t, err)
	check(t, e, "AUTO import into an empty store")
}
