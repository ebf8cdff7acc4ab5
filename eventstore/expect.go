package eventstore

import (
	"context"
	"encoding/json"
	"fmt"
)

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
	base, exact := expect.Exact() // Exactly's; the others are chosen in the transaction
	switch {
	case expect == Expect{}:
		return nil, invalid(0, "expect", "no expectation: use Any, NoStream, StreamExists or Exactly(v)")
	case exact && base < 0:
		return nil, invalid(0, "expect", "Exactly(%d): the version must be at least 0", base)
	case exact && base > MaxSafeInteger-int64(len(events)):
		return nil, invalid(0, "expect", "Exactly(%d): %d events would pass version 2^53-1", base, len(events))
	}
	evs := make([]Event, len(events))
	for i, d := range events {
		evs[i] = Event{AggregateID: aggregateID, AggregateVersion: base + 1 + int64(i), Type: d.Type, Timestamp: d.Timestamp, Payload: d.Payload}
	}
	return s.save(ctx, evs, expect)
}
