package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/esctl/esctl/eventstore"
)

// runMetadata checks event metadata: kept byte for byte beside the payload
// on every write path and every read path, none when absent, bad metadata
// refused with nothing written, and a store at the schema version before
// metadata served without it until it is migrated.
func runMetadata(t *testing.T, h Harness) {
	t.Run("RoundTrip", func(t *testing.T) { t.Parallel(); metadataRoundTrip(t, h) })
	t.Run("Rejected", func(t *testing.T) { t.Parallel(); metadataRejected(t, h) })
	t.Run("OldSchema", func(t *testing.T) { t.Parallel(); metadataOldSchema(t, h) })
}

// metadataCases are metadata values as given and as stored ("" for none).
var metadataCases = []struct{ in, want string }{
	{`{"correlationId":"c-1","causationId":"e-0"}`, ""},
	{` { "z" : 1 , "a" : [ 1.50, "x" ] } `, `{"z":1,"a":[1.50,"x"]}`},
	{`{"s":"q\"b\\s\/\u00e9\ud83c\udf89","n":12345678901234567890}`, ""},
	{`{"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","user":{"id":7}}`, ""},
	{`{}`, ""},
	{`null`, "-"}, // null is none
	{``, "-"},     // absent
}

func metadataRoundTrip(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := NewStore(t, h, nil)
	want := map[int64]string{} // position -> stored metadata ("" none)
	add := func(saved []eventstore.StoredEvent, metas []string) {
		t.Helper()
		for i, e := range saved {
			w := metas[i]
			require.Equal(t, w, string(e.Metadata), "metadata returned by the save at position %d", e.Position)
			if w == "" {
				require.Nil(t, e.Metadata, "no metadata is nil")
			}
			want[e.Position] = w
		}
	}
	stored := func(c int) string {
		switch w := metadataCases[c].want; w {
		case "-":
			return ""
		case "":
			return metadataCases[c].in
		default:
			return w
		}
	}
	// One event at a time (the single-row append), then batches of every
	// case (the multi-row append), across several aggregates and types.
	for c := range metadataCases {
		e, err := s.SaveEvent(ctx, eventstore.Event{AggregateID: "one-" + itoa(c), AggregateVersion: 1, Type: "M" + itoa(c%2), Timestamp: int64(c + 1),
			Payload: json.RawMessage(`{"c":` + itoa(c) + `}`), Metadata: json.RawMessage(metadataCases[c].in)})
		require.NoError(t, err, "case %d", c)
		add([]eventstore.StoredEvent{e}, []string{stored(c)})
	}
	for b := range 3 {
		var batch []eventstore.Event
		var metas []string
		for c := range metadataCases {
			batch = append(batch, eventstore.Event{AggregateID: fmt.Sprintf("batch-%d", b), AggregateVersion: int64(c + 1), Type: "M" + itoa(c%2),
				Timestamp: int64(100 + c), Payload: json.RawMessage(`[` + itoa(c) + `]`), Metadata: json.RawMessage(metadataCases[c].in)})
			metas = append(metas, stored(c))
		}
		saved, err := s.SaveEvents(ctx, batch)
		require.NoError(t, err)
		add(saved, metas)
	}
	check := func(name string, events []eventstore.StoredEvent) {
		t.Helper()
		require.NotEmpty(t, events, name)
		for _, e := range events {
			w, ok := want[e.Position]
			require.True(t, ok, "%s: position %d", name, e.Position)
			require.Equal(t, w, string(e.Metadata), "%s: metadata at position %d", name, e.Position)
			if w == "" {
				require.Nil(t, e.Metadata, "%s: no metadata is nil at position %d", name, e.Position)
			}
		}
	}
	all, _ := LoadAll(t, s, eventstore.Filter{Limit: 4})
	require.Len(t, all, len(want))
	check("LoadEvents", all)
	one, _ := LoadAll(t, s, eventstore.Filter{AggregateIDs: []string{"batch-1"}})
	check("LoadEvents by aggregate", one)
	many, _ := LoadAll(t, s, eventstore.Filter{AggregateIDs: []string{"batch-0", "one-0", "one-5", "batch-2"}})
	check("LoadEvents by aggregates", many)
	types, _ := LoadAll(t, s, eventstore.Filter{EventTypes: []string{"M0", "M1"}})
	check("LoadEvents by types", types)
	timed, _ := LoadAll(t, s, eventstore.Filter{StartTime: ptr(int64(0))})
	check("LoadEvents by time", timed)
	var iterated []eventstore.StoredEvent
	for e, err := range s.Events(ctx, eventstore.Filter{Limit: 3}) {
		require.NoError(t, err)
		iterated = append(iterated, e)
	}
	check("Events", iterated)
	for _, agg := range []string{"one-0", "one-5", "batch-2"} {
		latest, err := s.LatestEvent(ctx, eventstore.Filter{AggregateIDs: []string{agg}})
		require.NoError(t, err)
		check("LatestEvent "+agg, []eventstore.StoredEvent{*latest})
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var delivered []eventstore.StoredEvent
	for d, err := range s.Subscribe(sctx, eventstore.Filter{}) {
		require.NoError(t, err)
		if d.Event != nil {
			delivered = append(delivered, *d.Event)
		}
		if len(delivered) == len(want) {
			break
		}
	}
	check("Subscribe", delivered)
	require.Len(t, delivered, len(want))
}

func metadataRejected(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := NewStore(t, h, &eventstore.Options{MaxMetadataBytes: 64})
	_, err := s.SaveEvent(ctx, eventstore.Event{AggregateID: "a", AggregateVersion: 1, Type: "T", Payload: []byte(`{}`), Metadata: []byte(`{"ok":true}`)})
	require.NoError(t, err)
	bad := []struct{ name, metadata string }{
		{"Array", `[1,2]`},
		{"String", `"c-1"`},
		{"Number", `7`},
		{"True", `true`},
		{"Truncated", `{"a":1`},
		{"TwoValues", `{"a":1}{"b":2}`},
		{"DuplicateKey", `{"a":1,"a":2}`},
		{"TrailingGarbage", `{"a":1} x`},
		{"InvalidUTF8", "{\"a\":\"\xff\"}"},
		{"TooLarge", `{"blob":"` + strings.Repeat("x", 60) + `"}`},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			check := func(err error, index int) {
				t.Helper()
				var ie *eventstore.InvalidEventError
				require.True(t, errors.As(err, &ie), "want *InvalidEventError, got %v", err)
				require.Equal(t, "metadata", ie.Field, "%v", err)
				require.Equal(t, index, ie.Index, "%v", err)
			}
			_, err := s.SaveEvent(ctx, eventstore.Event{AggregateID: "bad-" + b.name, AggregateVersion: 1, Type: "T", Payload: []byte(`{}`), Metadata: []byte(b.metadata)})
			check(err, 0)
			_, err = s.SaveEvents(ctx, []eventstore.Event{
				{AggregateID: "bad-" + b.name, AggregateVersion: 1, Type: "T", Payload: []byte(`{}`), Metadata: []byte(`{"fine":1}`)},
				{AggregateID: "bad-" + b.name, AggregateVersion: 2, Type: "T", Payload: []byte(`{}`), Metadata: []byte(b.metadata)},
			})
			check(err, 1)
			page, err := s.LoadEvents(ctx, eventstore.Filter{AggregateIDs: []string{"bad-" + b.name}, Limit: 10})
			require.NoError(t, err)
			require.Empty(t, page.Events, "nothing written")
		})
	}
	all, _ := LoadAll(t, s, eventstore.Filter{})
	require.Len(t, all, 1)
}

// metadataOldSchema: a store migrated down to the version before metadata
// is served as it was (events without metadata), refuses an event with
// metadata with *SchemaVersionError naming what needs the migration, and
// takes metadata once migrated, through the same Store.
func metadataOldSchema(t *testing.T, h Harness) {
	ctx := context.Background()
	s, url := NewStore(t, h, nil)
	_, err := s.SaveEvent(ctx, eventstore.Event{AggregateID: "a", AggregateVersion: 1, Type: "T", Payload: []byte(`{}`), Metadata: []byte(`{"m":1}`)})
	require.NoError(t, err)
	st, err := s.Migrate(ctx, &eventstore.MigrateOptions{Op: eventstore.MigrateDown, Steps: 1})
	require.NoError(t, err)
	require.Equal(t, uint(7), st.Version)

	old := Open(t, url, nil) // a process that opens the store at version 7
	for _, store := range []*eventstore.Store{s, old} {
		_, err = store.SaveEvent(ctx, eventstore.Event{AggregateID: "a", AggregateVersion: 2, Type: "T", Payload: []byte(`{}`), Metadata: []byte(`{"m":2}`)})
		var sv *eventstore.SchemaVersionError
		require.True(t, errors.As(err, &sv), "want *SchemaVersionError, got %v", err)
		require.True(t, errors.Is(err, eventstore.ErrSchemaVersion))
		require.Contains(t, err.Error(), "metadata")
		require.Contains(t, err.Error(), "migrate")
		require.Equal(t, uint(8), sv.Expected)
	}
	saved, err := old.SaveEvents(ctx, []eventstore.Event{
		{AggregateID: "a", AggregateVersion: 2, Type: "T", Payload: []byte(`{"v":2}`)},
		{AggregateID: "a", AggregateVersion: 3, Type: "T", Payload: []byte(`{"v":3}`), Metadata: []byte(`null`)},
	})
	require.NoError(t, err, "events without metadata are written at version 7")
	require.Len(t, saved, 2)
	for _, store := range []*eventstore.Store{s, old} {
		all, _ := LoadAll(t, store, eventstore.Filter{})
		require.Len(t, all, 3)
		for _, e := range all {
			require.Nil(t, e.Metadata, "version 7 has no metadata column")
		}
	}

	_, err = old.Migrate(ctx, &eventstore.MigrateOptions{Op: eventstore.MigrateUp})
	require.NoError(t, err)
	// s did not migrate: it sees the new version when it next needs it.
	e, err := s.SaveEvent(ctx, eventstore.Event{AggregateID: "a", AggregateVersion: 4, Type: "T", Payload: []byte(`{}`), Metadata: []byte(`{"m":4}`)})
	require.NoError(t, err)
	require.Equal(t, `{"m":4}`, string(e.Metadata))
	require.Eventually(t, func() bool {
		latest, err := s.LatestEvent(ctx, eventstore.Filter{AggregateIDs: []string{"a"}})
		return err == nil && string(latest.Metadata) == `{"m":4}`
	}, 5*time.Second, 50*time.Millisecond, "reads see metadata after the migration")
}
