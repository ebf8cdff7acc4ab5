package conformance

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/esctl/esctl/eventstore"
)

// runFilters ports reSolve's eventstore-filter-events tests and checks every
// filter shape against an in-memory model.
func runFilters(t *testing.T, h Harness) {
	ctx := context.Background()

	s, _ := NewStore(t, h, nil)
	var saved []eventstore.StoredEvent
	for i := range 120 {
		se, err := s.SaveEvent(ctx, eventstore.Event{
			AggregateID:      fmt.Sprintf("aggregateId_%d", 1+i%5),
			AggregateVersion: int64(i + 1),
			Type:             fmt.Sprintf("EVENT_%d", 1+i%4),
			Timestamp:        int64(i + 1),
			Payload:          []byte(fmt.Sprintf(`{"eventIndex":%d}`, i)),
		})
		require.NoError(t, err)
		saved = append(saved, se)
	}
	model := func(ids, types []string) []eventstore.StoredEvent {
		var out []eventstore.StoredEvent
		for _, e := range saved {
			if (ids == nil || slices.Contains(ids, e.AggregateID)) && (types == nil || slices.Contains(types, e.Type)) {
				out = append(out, e)
			}
		}
		return out
	}

	t.Run("UnknownTypeAndAggregate", func(t *testing.T) {
		for _, f := range []eventstore.Filter{{EventTypes: []string{"UNKNOWN"}}, {AggregateIDs: []string{"UNKNOWN"}}} {
			f.Limit = 100
			page, err := s.LoadEvents(ctx, f)
			require.NoError(t, err)
			require.Empty(t, page.Events)
			require.Equal(t, eventstore.CursorAt(0), page.Cursor)
			f.Limit = 0
			latest, err := s.LatestEvent(ctx, f)
			require.NoError(t, err)
			require.Nil(t, latest)
		}
	})

	t.Run("EmptyListsMatchNothing", func(t *testing.T) {
		for _, f := range []eventstore.Filter{{EventTypes: []string{}}, {AggregateIDs: []string{}}} {
			f.Limit = 100
			page, err := s.LoadEvents(ctx, f)
			require.NoError(t, err)
			require.Empty(t, page.Events)
			require.Equal(t, eventstore.CursorAt(0), page.Cursor, "the initial cursor")
			f.Cursor = saved[9].Cursor()
			page, err = s.LoadEvents(ctx, f)
			require.NoError(t, err)
			require.Empty(t, page.Events)
			require.Equal(t, saved[9].Cursor(), page.Cursor, "the given cursor")
			latest, err := s.LatestEvent(ctx, eventstore.Filter{EventTypes: f.EventTypes, AggregateIDs: f.AggregateIDs})
			require.NoError(t, err)
			require.Nil(t, latest)
			n := 0
			for range s.Events(ctx, eventstore.Filter{EventTypes: f.EventTypes, AggregateIDs: f.AggregateIDs}) {
				n++
			}
			require.Zero(t, n)
		}
	})

	tests := []struct {
		name  string
		ids   []string
		types []string
		want  int
	}{
		{"ByType", nil, []string{"EVENT_2"}, 30},
		{"ByAggregate", []string{"aggregateId_2"}, nil, 24},
		{"ByDistinctTypes", nil, []string{"EVENT_1", "EVENT_3"}, 60},
		{"ByDistinctAggregates", []string{"aggregateId_2", "aggregateId_4"}, nil, 48},
		{"TypeAndAggregate", []string{"aggregateId_3"}, []string{"EVENT_2"}, 6},
		{"DistinctTypesAndAggregates", []string{"aggregateId_1", "aggregateId_5"}, []string{"EVENT_1", "EVENT_4"}, 24},
		{"All", nil, nil, 120},
		{"ManyValuesWithUnknowns", manyValues("aggregateId_", 1, 40), manyValues("EVENT_", 2, 45), 90},
		{"ShortListWithUnknowns", manyValues("aggregateId_", 4, 10), nil, 48},
		{"ManyTypes", nil, manyValues("EVENT_", 3, 40), 60},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := model(tt.ids, tt.types)
			require.Len(t, want, tt.want)
			for _, limit := range []int{1, 7, 1000} {
				got, end := LoadAll(t, s, eventstore.Filter{AggregateIDs: tt.ids, EventTypes: tt.types, Limit: limit})
				require.Equal(t, want, got, "limit %d", limit)
				require.Equal(t, want[len(want)-1].Cursor(), end, "the cursor advances only over returned events")
				// A follow-up read from the returned cursor returns the same cursor.
				page, err := s.LoadEvents(ctx, eventstore.Filter{AggregateIDs: tt.ids, EventTypes: tt.types, Cursor: end, Limit: 1})
				require.NoError(t, err)
				require.Empty(t, page.Events)
				require.Equal(t, end, page.Cursor)
			}
			latest, err := s.LatestEvent(ctx, eventstore.Filter{AggregateIDs: tt.ids, EventTypes: tt.types})
			require.NoError(t, err)
			require.Equal(t, want[len(want)-1], *latest)
			var iterated []eventstore.StoredEvent
			for e, err := range s.Events(ctx, eventstore.Filter{AggregateIDs: tt.ids, EventTypes: tt.types, Limit: 9}) {
				require.NoError(t, err)
				iterated = append(iterated, e)
			}
			require.Equal(t, want, iterated)
			// From the middle.
			mid := want[len(want)/2]
			got, _ := LoadAll(t, s, eventstore.Filter{AggregateIDs: tt.ids, EventTypes: tt.types, Cursor: mid.Cursor(), Limit: 5})
			require.Equal(t, want[len(want)/2+1:], got)
		})
	}

	t.Run("BigAggregates", func(t *testing.T) {
		// reSolve: 3 aggregates x 120 interleaved events, payload null,
		// loaded per aggregate in pages of 50.
		t.Parallel()
		s, _ := NewStore(t, h, nil)
		for i := range 360 {
			_, err := s.SaveEvent(ctx, eventstore.Event{AggregateID: fmt.Sprintf("big-%d", i%3), AggregateVersion: int64(i/3 + 1), Type: "T"})
			require.NoError(t, err)
		}
		d, err := s.Describe(ctx, nil)
		require.NoError(t, err)
		require.EqualValues(t, 360, d.EventCount)
		for a := range 3 {
			got, _ := LoadAll(t, s, eventstore.Filter{AggregateIDs: []string{fmt.Sprintf("big-%d", a)}, Limit: 50})
			require.Len(t, got, 120)
			for v, e := range got {
				require.EqualValues(t, v+1, e.AggregateVersion)
				require.Equal(t, "null", string(e.Payload))
			}
		}
	})
}

func manyValues(prefix string, from, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, from+i)
	}
	return out
}
