package eventstore

import (
	"context"
	"encoding/json"
	"fmt"
)

// Expect is what Append expects of an aggregate before it appends: Any,
// NoStream, StreamExists or Exactly(v), the expected-version forms of
// KurrentDB. Expectations other than Exactly are checked, and the events'
// versions chosen, inside the write transaction under the store lock, so
// that concurrent appenders, in this process or any other, cannot both
// take the same versions: a violated expectation fails with *ConflictError
// (errors.Is(err, ErrConflict)) naming what was expected and what was found.
//
// The zero Expect is no expectation: Append refuses it. Expect values are
// comparable with ==.
type Expect struct {
	kind    expectKind
	version int64 // Exactly's
}

type expectKind uint8

const (
	expectNone expectKind = iota
	expectAny
	expectNoStream
	expectStreamExists
	expectExactly
)

var (
	// Any appends at the aggregate's next version, whatever it is (1 for
	// a new aggregate). It never conflicts.
	Any = Expect{kind: expectAny}
	// NoStream appends only if the aggregate has no event yet; its events
	// get versions 1, 2, ...
	NoStream = Expect{kind: expectNoStream}
	// StreamExists appends at the aggregate's next version only if the
	// aggregate has at least one event.
	StreamExists = Expect{kind: expectStreamExists}
)

// Exactly expects the aggregate to be at version v (0: no event): the
// events get versions v+1, v+2, ..., and the append conflicts when any of
// them is already stored, exactly as SaveEvents with explicit versions
// (the unique key decides; an aggregate whose versions have a gap below
// v+1 is not detected). v must be at least 0.
func Exactly(v int64) Expect { return Expect{kind: expectExactly, version: v} }

// String says what e expects: "any", "no stream", "stream exists",
// "version 3", or "none" for the zero Expect.
func (e Expect) String() string {
	switch e.kind {
	case expectAny:
		return "any"
	case expectNoStream:
		return "no stream"
	case expectStreamExists:
		return "stream exists"
	case expectExactly:
		return fmt.Sprintf("version %d", e.version)
	}
	return "none"
}

// resolved reports whether the store chooses the versions under the lock
// (Any, NoStream, StreamExists), rather than the caller (Exactly).
func (e Expect) resolved() bool {
	return e.kind == expectAny || e.kind == expectNoStream || e.kind == expectStreamExists
}

// check reports whether an aggregate at version last (0: no event)
// satisfies a resolved expectation.
func (e Expect) check(last int64) bool {
	switch e.kind {
	case expectNoStream:
		return last == 0
	case expectStreamExists:
		return last > 0
	}
	return true
}

// EventData is an event to Append: the aggregate and the versions are
// Append's to give. The fields are those of Event, with the same rules.
type EventData struct {
	// Type is the event type (see Event.Type).
	Type string
	// Timestamp in ms since the Unix epoch; the store keeps max(now,
	// Timestamp), as SaveEvent does.
	Timestamp int64
	// Payload is any JSON value, stored as its compact form (see
	// Event.Payload). nil means null.
	Payload json.RawMessage
}

// Append appends events to one aggregate atomically, after checking
// expect, and returns them as stored, with the versions and positions they
// took. A violated expectation fails with *ConflictError whose Expected is
// expect; an invalid event or expectation fails with *InvalidEventError
// (Index is the event's index in events; Field "expect" for expect
// itself). An empty call stores nothing and returns nil without looking
// at the aggregate.
//
// Exactly(v) is SaveEvents with versions v+1, v+2, ...; the other forms
// read the aggregate's last version in the write transaction, under the
// store lock, and share group commit with every other append: each caller
// still gets its own outcome. On an engine with its own append (PostgreSQL's
// one-round-trip pipeline, which resolves a COMMIT in doubt by its
// transaction id) a group holding such a request runs as the generic
// append instead: a round trip per statement, and a COMMIT whose
// connection breaks is ErrOutcomeUnknown (read the aggregate before
// retrying).
func (s *Store) Append(ctx context.Context, aggregateID string, expect Expect, events ...EventData) ([]StoredEvent, error) {
	invalid := func(index int, field, format string, args ...any) error {
		return &InvalidEventError{Index: index, Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	switch {
	case expect.kind == expectNone:
		return nil, invalid(0, "expect", "no expectation: use Any, NoStream, StreamExists or Exactly(v)")
	case expect.kind == expectExactly && expect.version < 0:
		return nil, invalid(0, "expect", "Exactly(%d): the version must be at least 0", expect.version)
	case expect.kind == expectExactly && expect.version > MaxSafeInteger-int64(len(events)):
		return nil, invalid(0, "expect", "Exactly(%d): %d events would pass version 2^53-1", expect.version, len(events))
	}
	base := expect.version // Exactly's; the others are chosen in the transaction
	evs := make([]Event, len(events))
	for i, d := range events {
		evs[i] = Event{AggregateID: aggregateID, AggregateVersion: base + 1 + int64(i), Type: d.Type, Timestamp: d.Timestamp, Payload: d.Payload}
	}
	return s.save(ctx, evs, expect)
}

// expectedConflict is the conflict of a request whose expectation failed.
func expectedConflict(aggregateID string, expect Expect, last int64) *ConflictError {
	return &ConflictError{AggregateID: aggregateID, AggregateVersion: last, Expected: expect}
}
