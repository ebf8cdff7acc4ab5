package eventstore

import (
	"errors"
	"testing"
)

func TestExpectString(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		e    Expect
		want string
	}{
		{Any, "any"},
		{NoStream, "no stream"},
		{StreamExists, "stream exists"},
		{Exactly(0), "version 0"},
		{Exactly(7), "version 7"},
		{Expect{}, "none"},
	} {
		if got := tt.e.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.e, got, tt.want)
		}
	}
	if Exactly(3) != Exactly(3) || Exactly(3) == Exactly(4) || Any == NoStream {
		t.Error("Expect values do not compare by value")
	}
}

func TestConflictErrorMessages(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		err  *ConflictError
		want string
	}{
		{&ConflictError{}, "eventstore: concurrency conflict: aggregate id and version already stored"},
		{&ConflictError{AggregateID: "a", AggregateVersion: 2}, `eventstore: concurrency conflict: aggregate "a" already has version 2`},
		{&ConflictError{AggregateID: "a", AggregateVersion: 3, Expected: NoStream}, `eventstore: concurrency conflict: expected no stream, aggregate "a" is at version 3`},
		{&ConflictError{AggregateID: "a", Expected: StreamExists}, `eventstore: concurrency conflict: expected stream exists, aggregate "a" has no events`},
		{&ConflictError{AggregateID: "a", AggregateVersion: 3, Expected: Exactly(2)}, `eventstore: concurrency conflict: expected version 2, aggregate "a" already has version 3`},
	} {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("got  %s\nwant %s", got, tt.want)
		}
		if !errors.Is(tt.err, ErrConflict) {
			t.Errorf("%v is not ErrConflict", tt.err)
		}
	}
}
