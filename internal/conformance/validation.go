package conformance

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/esctl/esctl/eventstore"
)

func runValidation(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := NewStore(t, h, &eventstore.Options{MaxPayloadBytes: 1000})

	valid := func() eventstore.Event {
		return eventstore.Event{AggregateID: "a", AggregateVersion: 1, Type: "T", Timestamp: 1, Payload: []byte(`{}`)}
	}
	with := func(f func(*eventstore.Event)) eventstore.Event {
		e := valid()
		f(&e)
		return e
	}
	payload := func(p string) eventstore.Event {
		return with(func(e *eventstore.Event) { e.Payload = []byte(p) })
	}
	events := []struct {
		name  string
		event eventstore.Event
		field string
	}{
		{"EmptyAggregateID", with(func(e *eventstore.Event) { e.AggregateID = "" }), "aggregateId"},
		{"BlankAggregateID", with(func(e *eventstore.Event) { e.AggregateID = " \t " }), "aggregateId"},
		{"LongAggregateID", with(func(e *eventstore.Event) { e.AggregateID = strings.Repeat("x", eventstore.MaxAggregateIDBytes+1) }), "aggregateId"},
		{"AggregateIDInvalidUTF8", with(func(e *eventstore.Event) { e.AggregateID = "a\xffb" }), "aggregateId"},
		{"AggregateIDNUL", with(func(e *eventstore.Event) { e.AggregateID = "a\x00b" }), "aggregateId"},
		{"EmptyType", with(func(e *eventstore.Event) { e.Type = "" }), "type"},
		{"LongType", with(func(e *eventstore.Event) { e.Type = strings.Repeat("t", eventstore.MaxTypeBytes+1) }), "type"},
		{"TypeControlCharacter", with(func(e *eventstore.Event) { e.Type = "a\nb" }), "type"},
		{"ReservedSetSecretType", with(func(e *eventstore.Event) { e.Type = eventstore.SetSecretEventType }), "type"},
		{"ReservedDeleteSecretType", with(func(e *eventstore.Event) { e.Type = eventstore.DeleteSecretEventType }), "type"},
		{"VersionZero", with(func(e *eventstore.Event) { e.AggregateVersion = 0 }), "aggregateVersion"},
		{"VersionNegative", with(func(e *eventstore.Event) { e.AggregateVersion = -5 }), "aggregateVersion"},
		{"VersionAboveSafeInteger", with(func(e *eventstore.Event) { e.AggregateVersion = eventstore.MaxSafeInteger + 1 }), "aggregateVersion"},
		{"TimestampNegative", with(func(e *eventstore.Event) { e.Timestamp = -1 }), "timestamp"},
		{"TimestampAboveSafeInteger", with(func(e *eventstore.Event) { e.Timestamp = eventstore.MaxSafeInteger + 1 }), "timestamp"},
		{"PayloadTruncated", payload(`{"a":1`), "payload"},
		{"PayloadTwoValues", payload(`{"a":1}{"b":2}`), "payload"},
		{"PayloadTrailingGarbage", payload(`{"a":1} x`), "payload"},
		{"PayloadDuplicateKey", payload(`{"a":1,"b":2,"a":3}`), "payload"},
		{"PayloadDuplicateKeyByEscape", payload(`{"a":1,"\u0061":2}`), "payload"},
		{"PayloadNaN", payload(`{"a":NaN}`), "payload"},
		{"PayloadInfinity", payload(`[-Infinity]`), "payload"},
		{"PayloadSingleQuotes", payload(`{'a':1}`), "payload"},
		{"PayloadUnquotedKey", payload(`{a:1}`), "payload"},
		{"PayloadTrailingComma", payload(`{"a":1,}`), "payload"},
		{"PayloadComment", payload(`{"a":1 /* c */}`), "payload"},
		{"PayloadLeadingZero", payload(`{"a":01}`), "payload"},
		{"PayloadNULEscape", payload(`{"a":"x\u0000y"}`), "payload"},
		{"PayloadLoneHighSurrogate", payload(`"\ud800"`), "payload"},
		{"PayloadLoneLowSurrogate", payload(`"\udc00\ud800"`), "payload"},
		{"PayloadInvalidUTF8", payload("\"a\xffb\""), "payload"},
		{"PayloadRawControlCharacter", payload("\"a\tb\""), "payload"},
		{"PayloadTooDeep", payload(strings.Repeat("[", 600) + strings.Repeat("]", 600)), "payload"},
		{"PayloadTooLarge", payload(`"` + strings.Repeat("x", 1000) + `"`), "payload"},
		{"PayloadOnlyWhitespace", payload("   "), "payload"},
	}
	for _, tt := range events {
		t.Run("Event"+tt.name, func(t *testing.T) {
			_, err := s.SaveEvent(ctx, tt.event)
			require.ErrorIs(t, err, eventstore.ErrInvalidEvent)
			var ie *eventstore.InvalidEventError
			require.ErrorAs(t, err, &ie)
			require.Equal(t, tt.field, ie.Field, "error: %v", err)
			require.Zero(t, ie.Index)
			// In a SaveEvents call the index names the bad event and nothing is stored.
			_, err = s.SaveEvents(ctx, []eventstore.Event{with(func(e *eventstore.Event) { e.AggregateID = "ok" }), tt.event})
			require.ErrorAs(t, err, &ie)
			require.Equal(t, 1, ie.Index)
		})
	}

	t.Run("EventDuplicatePairInOneCall", func(t *testing.T) {
		_, err := s.SaveEvents(ctx, []eventstore.Event{valid(), with(func(e *eventstore.Event) { e.Type = "U" })})
		var ie *eventstore.InvalidEventError
		require.ErrorAs(t, err, &ie)
		require.Equal(t, 1, ie.Index)
		require.Equal(t, "aggregateVersion", ie.Field)
	})

	t.Run("NothingStored", func(t *testing.T) {
		d, err := s.Describe(ctx, nil)
		require.NoError(t, err)
		require.Zero(t, d.EventCount, "no invalid event reached the store")
	})

	t.Run("EdgeValuesAccepted", func(t *testing.T) {
		for i, e := range []eventstore.Event{
			with(func(e *eventstore.Event) { e.AggregateID = strings.Repeat("é", eventstore.MaxAggregateIDBytes/2) }),
			with(func(e *eventstore.Event) { e.AggregateID = "v"; e.AggregateVersion = eventstore.MaxSafeInteger }),
			with(func(e *eventstore.Event) { e.AggregateID = "ts"; e.Timestamp = eventstore.MaxSafeInteger }),
			with(func(e *eventstore.Event) { e.AggregateID = "nil"; e.Payload = nil }),
			with(func(e *eventstore.Event) {
				e.AggregateID = "deep"
				e.Payload = []byte(strings.Repeat("[", 500) + strings.Repeat("]", 500))
			}),
			with(func(e *eventstore.Event) { e.AggregateID = "ws"; e.Payload = []byte(" \n{ \"a\" : [ 1 , 2 ] }\r\n") }),
		} {
			_, err := s.SaveEvent(ctx, e)
			require.NoError(t, err, "case %d", i)
		}
	})

	limit := func(n int) eventstore.Filter { return eventstore.Filter{Limit: n} }
	filters := []struct {
		name   string
		filter eventstore.Filter
		field  string
		reason string
	}{
		{"LimitMissing", limit(0), "limit", "required"},
		{"LimitNegative", limit(-1), "limit", "at least 1"},
		{"LimitAboveCap", limit(eventstore.MaxLimit + 1), "limit", "at most"},
		{"CursorWithStartTime", eventstore.Filter{Limit: 1, Cursor: eventstore.CursorAt(0), StartTime: ptr[int64](0)}, "", "startTime and finishTime are not allowed in cursor filter"},
		{"CursorWithFinishTime", eventstore.Filter{Limit: 1, Cursor: eventstore.CursorAt(0), FinishTime: ptr[int64](0)}, "", "startTime and finishTime are not allowed in cursor filter"},
		{"StartAfterFinish", eventstore.Filter{Limit: 1, StartTime: ptr[int64](3), FinishTime: ptr[int64](2)}, "startTime", "cannot be later than finishTime"},
		{"TooManyTypes", eventstore.Filter{Limit: 1, EventTypes: make([]string, eventstore.MaxFilterValues+1)}, "eventTypes", "more than the limit"},
		{"TooManyAggregates", eventstore.Filter{Limit: 1, AggregateIDs: make([]string, eventstore.MaxFilterValues+1)}, "aggregateIds", "more than the limit"},
		{"MalformedCursor", eventstore.Filter{Limit: 1, Cursor: "not-a-cursor"}, "cursor", "malformed"},
	}
	for _, tt := range filters {
		t.Run("Filter"+tt.name, func(t *testing.T) {
			_, err := s.LoadEvents(ctx, tt.filter)
			require.ErrorIs(t, err, eventstore.ErrInvalidFilter)
			var fe *eventstore.InvalidFilterError
			require.ErrorAs(t, err, &fe)
			require.Equal(t, tt.field, fe.Field)
			require.Contains(t, fe.Error(), tt.reason)
		})
	}

	t.Run("LatestEventRejectsReadFields", func(t *testing.T) {
		for _, f := range []eventstore.Filter{{Cursor: eventstore.CursorAt(0)}, {Limit: 3}, {StartTime: ptr[int64](1)}} {
			_, err := s.LatestEvent(ctx, f)
			require.ErrorIs(t, err, eventstore.ErrInvalidFilter)
		}
	})

	t.Run("TypedErrorsAreDistinct", func(t *testing.T) {
		_, err := s.SaveEvent(ctx, with(func(e *eventstore.Event) { e.Type = "" }))
		require.False(t, errors.Is(err, eventstore.ErrConflict))
		require.False(t, errors.Is(err, eventstore.ErrInvalidFilter))
	})
}
