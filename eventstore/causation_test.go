package eventstore_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/esctl/esctl/eventstore"
)

func TestCausationMetadata(t *testing.T) {
	c := eventstore.Causation{CorrelationID: "req-1", CausationID: "cmd-7", TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
	tests := []struct {
		name, in, want string
	}{
		{"None", ``, `{"correlationId":"req-1","causationId":"cmd-7","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}`},
		{"Null", `null`, `{"correlationId":"req-1","causationId":"cmd-7","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}`},
		{"KeepsOthersInOrderByteForByte", ` {"z": 1.50, "user":{"id":"\u00e9"}, "causationId":"old"} `,
			`{"z":1.50,"user":{"id":"\u00e9"},"causationId":"cmd-7","correlationId":"req-1","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}`},
		{"HTMLKept", `{"<k>":"&"}`, `{"<k>":"&","correlationId":"req-1","causationId":"cmd-7","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.Metadata(json.RawMessage(tt.in))
			require.NoError(t, err)
			require.Equal(t, tt.want, string(got))
			require.Equal(t, c, eventstore.CausationOf(got))
		})
	}
	for _, bad := range []string{`[1]`, `"x"`, `{"a":`, `7`} {
		_, err := c.Metadata(json.RawMessage(bad))
		require.Error(t, err, bad)
	}
	got, err := eventstore.Causation{}.Metadata(nil)
	require.NoError(t, err)
	require.Nil(t, got, "nothing to set on no metadata is still none")
	got, err = eventstore.Causation{}.Metadata(json.RawMessage(`{"a":1}`))
	require.NoError(t, err)
	require.Equal(t, `{"a":1}`, string(got))
}

func TestCausedBy(t *testing.T) {
	root := &eventstore.StoredEvent{Position: 41}
	first := eventstore.CausedBy(root)
	require.Equal(t, eventstore.Causation{CorrelationID: "41", CausationID: "41"}, first, "an event without metadata starts the conversation")

	cause := &eventstore.StoredEvent{Position: 42, Event: eventstore.Event{
		Metadata: json.RawMessage(`{"correlationId":"req-1","causationId":"cmd-7","traceparent":"00-a-b-01","tracestate":"k=v","user":"u"}`)}}
	c := eventstore.CausedBy(cause)
	require.Equal(t, eventstore.Causation{CorrelationID: "req-1", CausationID: "42", TraceParent: "00-a-b-01", TraceState: "k=v"}, c)

	events := []eventstore.Event{{Metadata: json.RawMessage(`{"tenant":"t"}`)}, {}}
	require.NoError(t, c.Stamp(events))
	require.Equal(t, `{"tenant":"t","correlationId":"req-1","causationId":"42","traceparent":"00-a-b-01","tracestate":"k=v"}`, string(events[0].Metadata))
	require.Equal(t, `{"correlationId":"req-1","causationId":"42","traceparent":"00-a-b-01","tracestate":"k=v"}`, string(events[1].Metadata))
	bad := []eventstore.Event{{}, {Metadata: json.RawMessage(`[1]`)}}
	var ie *eventstore.InvalidEventError
	require.ErrorAs(t, c.Stamp(bad), &ie)
	require.Equal(t, 1, ie.Index)
	require.Equal(t, "metadata", ie.Field)

	ctx := eventstore.ContextWithCausation(context.Background(), c)
	back, ok := eventstore.CausationFromContext(ctx)
	require.True(t, ok)
	require.Equal(t, c, back)
	_, ok = eventstore.CausationFromContext(context.Background())
	require.False(t, ok)
}
