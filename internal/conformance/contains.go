package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/esctl/esctl/eventstore"
)

// containsEvents are the events of the selection table: aggregate "e<i>"
// (i from 1), type Odd or Even, the payload and metadata ("" none).
var containsEvents = []struct{ payload, metadata string }{
	{`{"accountId":"a-1","amount":10,"tags":["x","y"],"nested":{"k":{"deep":true}},"n":1.0}`, `{"correlationId":"c-9","user":{"id":7}}`},
	{`{"accountId":"a-2","amount":10.0,"tags":["y"],"nested":{"k":{"deep":false}},"n":1}`, `null`},
	{`{"accountId":"a-1","amount":1e1,"tags":[],"list":[{"id":1,"v":"a"},{"id":2,"v":"b"}],"mat":[[1,2],[3]]}`, `{"correlationId":"c-9","causationId":"5"}`},
	{`{"s":"q\"b\\s\/\u00e9\ud83c\udf89\n","accountId":"a-\u0031"}`, `{"tags":["t1"]}`},
	{`null`, `{}`},
	{`[1,2]`, `{"correlationId":"c-10"}`},
	{`"str"`, ``},
	{`{"accountId":null,"flag":true,"zero":0,"neg":-0,"big":12345,"float":0.5,"e":5e-1}`, ``},
	{`{"a.b":1,"a":{"b":2},"k\"q":"v","":"empty","it's":"quote"}`, ``},
	{`{"tags":"x"}`, ``},
}

// containsCases are the selection table: a filter and the events it
// selects (their numbers, in position order).
var containsCases = []struct {
	name     string
	payload  string
	metadata string
	types    []string
	ids      []string
	want     []int
}{
	{name: "String", payload: `{"accountId":"a-1"}`, want: []int{1, 3, 4}},
	{name: "TwoMembers", payload: `{"accountId":"a-1","amount":10}`, want: []int{1, 3}},
	{name: "NumberByValue", payload: `{"amount":10}`, want: []int{1, 2, 3}},
	{name: "NumberOneIsOnePointZero", payload: `{"n":1}`, want: []int{1, 2}},
	{name: "FloatFilter", payload: `{"big":12345.0}`, want: []int{8}},
	{name: "HalfTwoSpellings", payload: `{"float":0.5,"e":0.50}`, want: []int{8}},
	{name: "MinusZero", payload: `{"zero":-0,"neg":0}`, want: []int{8}},
	{name: "StringIsNotNumber", payload: `{"zero":"0"}`, want: nil},
	{name: "TrueIsNotOne", payload: `{"flag":1}`, want: nil},
	{name: "True", payload: `{"flag":true}`, want: []int{8}},
	{name: "Null", payload: `{"accountId":null}`, want: []int{8}},
	{name: "ArrayElement", payload: `{"tags":["y"]}`, want: []int{1, 2}},
	{name: "ArrayAnyOrder", payload: `{"tags":["y","x"]}`, want: []int{1}},
	{name: "EmptyArray", payload: `{"tags":[]}`, want: []int{1, 2, 3}},
	{name: "ScalarIsNotInArray", payload: `{"tags":"x"}`, want: []int{10}},
	{name: "Nested", payload: `{"nested":{"k":{"deep":true}}}`, want: []int{1}},
	{name: "EmptyNestedObject", payload: `{"nested":{}}`, want: []int{1, 2}},
	{name: "ObjectInArray", payload: `{"list":[{"id":2}]}`, want: []int{3}},
	{name: "ObjectInArraySameElement", payload: `{"list":[{"id":2,"v":"a"}]}`, want: nil},
	{name: "ArrayInArray", payload: `{"mat":[[3]]}`, want: []int{3}},
	{name: "ArrayInArrayOneElement", payload: `{"mat":[[1,3]]}`, want: nil},
	{name: "ArraysInArray", payload: `{"mat":[[2],[3]]}`, want: []int{3}},
	{name: "EscapedString", payload: `{"s":"q\"b\\s/é🎉\n"}`, want: []int{4}},
	{name: "EscapedStringOtherSpelling", payload: `{"s":"q\u0022b\u005cs\/\u00e9\ud83c\udf89\u000a"}`, want: []int{4}},
	{name: "EmptyObjectMatchesObjects", payload: `{}`, want: []int{1, 2, 3, 4, 8, 9, 10}},
	{name: "KeyWithDot", payload: `{"a.b":1}`, want: []int{9}},
	{name: "KeyPath", payload: `{"a":{"b":2}}`, want: []int{9}},
	{name: "KeyWithQuote", payload: `{"k\"q":"v"}`, want: []int{9}},
	{name: "KeyWithApostrophe", payload: `{"it's":"quote"}`, want: []int{9}},
	{name: "EmptyKey", payload: `{"":"empty"}`, want: []int{9}},
	{name: "Missing", payload: `{"accountId":"nobody"}`, want: nil},
	{name: "Metadata", metadata: `{"correlationId":"c-9"}`, want: []int{1, 3}},
	{name: "MetadataEmptyObject", metadata: `{}`, want: []int{1, 3, 4, 5, 6}},
	{name: "MetadataNested", metadata: `{"user":{"id":7}}`, want: []int{1}},
	{name: "MetadataArray", metadata: `{"tags":["t1"]}`, want: []int{4}},
	{name: "PayloadAndMetadata", payload: `{"accountId":"a-1"}`, metadata: `{"correlationId":"c-9"}`, want: []int{1, 3}},
	{name: "WithType", payload: `{"accountId":"a-1"}`, types: []string{"Odd"}, want: []int{1, 3}},
	{name: "WithAggregates", payload: `{"accountId":"a-1"}`, ids: []string{"e3", "e4", "e5"}, want: []int{3, 4}},
	{name: "WithOneAggregate", payload: `{"accountId":"a-1"}`, ids: []string{"e4"}, want: []int{4}},
}

// runContains checks selection by content: the table on every read path
// (LoadEvents with a small page, Events, LatestEvent, Subscribe), bad
// filters refused, and a sparse filter's subscription moving its cursor.
func runContains(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := NewStore(t, h, nil)
	for i, e := range containsEvents {
		typ := "Even"
		if (i+1)%2 == 1 {
			typ = "Odd"
		}
		_, err := s.SaveEvent(ctx, eventstore.Event{AggregateID: fmt.Sprintf("e%d", i+1), AggregateVersion: 1, Type: typ,
			Payload: json.RawMessage(e.payload), Metadata: json.RawMessage(e.metadata)})
		require.NoError(t, err)
	}
	filterOf := func(c int) eventstore.Filter {
		tc := containsCases[c]
		f := eventstore.Filter{EventTypes: tc.types, AggregateIDs: tc.ids}
		if tc.payload != "" {
			f.Payload = json.RawMessage(tc.payload)
		}
		if tc.metadata != "" {
			f.Metadata = json.RawMessage(tc.metadata)
		}
		return f
	}
	numbers := func(events []eventstore.StoredEvent) []int {
		var out []int
		for _, e := range events {
			var n int
			_, err := fmt.Sscanf(e.AggregateID, "e%d", &n)
			require.NoError(t, err)
			out = append(out, n)
		}
		return out
	}
	t.Run("Table", func(t *testing.T) {
		for c, tc := range containsCases {
			t.Run(tc.name, func(t *testing.T) {
				f := filterOf(c)
				f.Limit = 2
				loaded, _ := LoadAll(t, s, f)
				require.Equal(t, tc.want, numbers(loaded), "LoadEvents")
				f.Limit = 0
				var iterated []eventstore.StoredEvent
				for e, err := range s.Events(ctx, f) {
					require.NoError(t, err)
					iterated = append(iterated, e)
				}
				require.Equal(t, tc.want, numbers(iterated), "Events")
				latest, err := s.LatestEvent(ctx, f)
				require.NoError(t, err)
				if len(tc.want) == 0 {
					require.Nil(t, latest, "LatestEvent")
				} else {
					require.NotNil(t, latest, "LatestEvent")
					require.Equal(t, tc.want[len(tc.want)-1], numbers([]eventstore.StoredEvent{*latest})[0], "LatestEvent")
				}
				var delivered []eventstore.StoredEvent
				sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				defer cancel()
				end := eventstore.CursorAt(int64(len(containsEvents)))
				for d, err := range s.Subscribe(sctx, f) {
					require.NoError(t, err)
					if d.Event != nil {
						delivered = append(delivered, *d.Event)
					}
					if d.Cursor == end {
						break // at the end, by an event or a progress step
					}
				}
				require.Equal(t, tc.want, numbers(delivered), "Subscribe")
			})
		}
	})
	t.Run("Indexes", func(t *testing.T) {
		// The engine's form of an index for each column: PostgreSQL's GIN
		// covers the document, SQLite's expression index one member.
		var made []string
		for _, on := range []string{eventstore.IndexOnPayload, eventstore.IndexOnMetadata} {
			whole, werr := s.CreateIndex(ctx, eventstore.IndexSpec{On: on})
			member, merr := s.CreateIndex(ctx, eventstore.IndexSpec{On: on, Path: []string{"accountId"}})
			var ie *eventstore.InvalidIndexError
			switch s.Engine() {
			case "postgres":
				require.NoError(t, werr)
				require.ErrorAs(t, merr, &ie)
				require.Equal(t, "path", ie.Field)
				made = append(made, whole.Name)
			default:
				require.ErrorAs(t, werr, &ie)
				require.Equal(t, "path", ie.Field)
				require.NoError(t, merr)
				require.Equal(t, []string{"accountId"}, member.Path)
				made = append(made, member.Name)
				nested, err := s.CreateIndex(ctx, eventstore.IndexSpec{On: on, Path: []string{"a", "b"}})
				require.NoError(t, err)
				made = append(made, nested.Name)
				odd, err := s.CreateIndex(ctx, eventstore.IndexSpec{On: on, Path: []string{"k\"q", "it's"}})
				require.NoError(t, err)
				require.Equal(t, []string{"k\"q", "it's"}, odd.Path)
				made = append(made, odd.Name)
			}
		}
		_, err := s.CreateIndex(ctx, eventstore.IndexSpec{On: "type"})
		require.ErrorIs(t, err, eventstore.ErrInvalidIndex)
		list, err := s.Indexes(ctx)
		require.NoError(t, err)
		var names []string
		for _, ix := range list {
			require.True(t, ix.Valid, "%+v", ix)
			require.NotEmpty(t, ix.Definition)
			require.Contains(t, []string{eventstore.IndexOnPayload, eventstore.IndexOnMetadata}, ix.On)
			names = append(names, ix.Name)
		}
		slices.Sort(made)
		require.Equal(t, made, names)
		// The table gives the same answers with the indexes.
		for c, tc := range containsCases {
			f := filterOf(c)
			f.Limit = 3
			loaded, _ := LoadAll(t, s, f)
			require.Equal(t, tc.want, numbers(loaded), "%s with indexes", tc.name)
		}
		// Creating again is a no-op; dropping drops only the store's own.
		_, err = s.CreateIndex(ctx, list[0].IndexSpec)
		require.NoError(t, err)
		_, err = s.DropIndex(ctx, "events_type_position_idx")
		require.ErrorIs(t, err, eventstore.ErrInvalidIndex)
		for _, name := range names {
			found, err := s.DropIndex(ctx, name)
			require.NoError(t, err)
			require.True(t, found, name)
		}
		found, err := s.DropIndex(ctx, names[0])
		require.NoError(t, err)
		require.False(t, found)
		list, err = s.Indexes(ctx)
		require.NoError(t, err)
		require.Empty(t, list)
	})
	t.Run("BadFilters", func(t *testing.T) {
		for _, b := range []struct{ field, value string }{
			{"payload", `[1]`}, {"payload", `"x"`}, {"payload", `7`}, {"payload", `null`}, {"payload", `{"a":`},
			{"payload", `{"a":1,"a":2}`}, {"payload", `{"a":NaN}`}, {"metadata", `[]`}, {"metadata", "{\"a\":\"\xff\"}"},
		} {
			f := eventstore.Filter{Limit: 10}
			if b.field == "payload" {
				f.Payload = json.RawMessage(b.value)
			} else {
				f.Metadata = json.RawMessage(b.value)
			}
			_, err := s.LoadEvents(ctx, f)
			var fe *eventstore.InvalidFilterError
			require.True(t, errors.As(err, &fe), "%s %s: %v", b.field, b.value, err)
			require.Equal(t, b.field, fe.Field, "%v", err)
			f.Limit = 0
			_, err = s.LatestEvent(ctx, f)
			require.True(t, errors.As(err, &fe), "LatestEvent %s %s: %v", b.field, b.value, err)
		}
	})
}

// runContainsFollow: a content-filtered subscription delivers new matching
// events as they commit, and a sparse filter moves its cursor with
// progress steps while nothing matches (a checkpoint kept from them never
// stalls).
func runContainsFollow(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := NewStore(t, h, nil)
	save := func(id string, payload string) {
		t.Helper()
		_, err := s.SaveEvent(ctx, eventstore.Event{AggregateID: id, AggregateVersion: 1, Type: "T", Payload: json.RawMessage(payload),
			Metadata: json.RawMessage(`{"correlationId":"` + id + `"}`)})
		require.NoError(t, err)
	}
	for i := range 20 {
		save(fmt.Sprintf("old-%d", i), fmt.Sprintf(`{"n":%d}`, i))
	}
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	type step struct {
		id     string // "" for progress
		cursor eventstore.Cursor
	}
	steps := make(chan step, 1000)
	subscribe := func(f eventstore.Filter) {
		go func() {
			for d, err := range s.Subscribe(sctx, f) {
				if err != nil {
					close(steps)
					return
				}
				st := step{cursor: d.Cursor}
				if d.Event != nil {
					st.id = d.Event.AggregateID
				}
				steps <- st
			}
		}()
	}
	subscribe(eventstore.Filter{Payload: json.RawMessage(`{"hit":true}`), Metadata: json.RawMessage(`{}`)})
	next := func() step {
		t.Helper()
		select {
		case st, ok := <-steps:
			require.True(t, ok, "the subscription ended")
			return st
		case <-time.After(30 * time.Second):
			t.Fatal("no delivery within 30 s")
		}
		return step{}
	}
	require.Equal(t, step{cursor: eventstore.CursorAt(20)}, next(), "a filter matching nothing moves to the end")
	for i := range 30 {
		save(fmt.Sprintf("miss-%d", i), `{"hit":false}`)
	}
	// Only progress steps, the last at the end: the cursor is never stuck.
	for {
		st := next()
		require.Empty(t, st.id, "nothing matches")
		if st.cursor == eventstore.CursorAt(50) {
			break
		}
	}
	save("hit-1", `{"hit":true,"x":1}`)
	require.Equal(t, step{id: "hit-1", cursor: eventstore.CursorAt(51)}, next())
	save("miss-x", `{"hit":"true"}`)
	save("hit-2", `{"x":[1],"hit":true}`)
	var got []string
	for len(got) < 1 {
		if st := next(); st.id != "" {
			got = append(got, st.id)
		}
	}
	require.True(t, slices.Equal([]string{"hit-2"}, got), "%v", got)
}
