// Package eventstoretest helps an application test its code against a real
// event store, as River's rivertest does for jobs: NewStore gives each test
// its own store (SQLite, in the test's temporary directory, initialized,
// closed at the end of the test) with every rule of a production store
// (dense positions, optimistic concurrency, validation, subscriptions), at
// nearly the speed of memory: its commits are not synced to disk. The
// Require functions check what the code under test appended.
//
//	func TestOpenAccount(t *testing.T) {
//		s := eventstoretest.NewStore(t, nil)
//		start := eventstoretest.End(t, s)
//		openAccount(ctx, s, "acc-1") // the code under test
//		eventstoretest.RequireAppended(t, s, start,
//			eventstore.Event{AggregateID: "acc-1", AggregateVersion: 1, Type: "AccountOpened", Payload: []byte(`{"owner":"ada"}`)})
//	}
package eventstoretest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	_ "github.com/esctl/esctl/adapters/sqlite" // the engine of NewStore's stores
	"github.com/esctl/esctl/eventstore"
)

// NewStore returns an initialized store of its own for t, in t's temporary
// directory, closed when t ends. opts are the store's options (nil:
// defaults). It is SQLite opened with sync=off: a test's commits are not
// synced to disk, which a test never needs.
func NewStore(t testing.TB, opts *eventstore.Options) *eventstore.Store {
	t.Helper()
	path := filepath.Join(t.TempDir(), "events.db")
	ctx := context.Background()
	s, err := eventstore.Open(ctx, "sqlite://"+path+"?sync=off", opts)
	if err != nil {
		t.Fatalf("eventstoretest: open a store: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Init(ctx); err != nil {
		t.Fatalf("eventstoretest: init the store: %v", err)
	}
	return s
}

// End returns the cursor after the store's last event: RequireAppended
// from it sees what is appended afterwards.
func End(t testing.TB, s *eventstore.Store) eventstore.Cursor {
	t.Helper()
	d, err := s.Describe(context.Background(), nil)
	if err != nil {
		t.Fatalf("eventstoretest: describe the store: %v", err)
	}
	return d.Cursor
}

// Events returns every event that f selects (f.Cursor onwards, f.Limit
// ignored), in position order.
func Events(t testing.TB, s *eventstore.Store, f eventstore.Filter) []eventstore.StoredEvent {
	t.Helper()
	f.Limit = 0
	var out []eventstore.StoredEvent
	for e, err := range s.Events(context.Background(), f) {
		if err != nil {
			t.Fatalf("eventstoretest: read events: %v", err)
		}
		out = append(out, e)
	}
	return out
}

// RequireEvents fails t unless the events that f selects are want, in
// order. Each wanted event is compared on what it sets: AggregateID and
// Type always, AggregateVersion and Timestamp when not 0, Payload when not
// nil, as JSON (key order and spacing do not matter).
func RequireEvents(t testing.TB, s *eventstore.Store, f eventstore.Filter, want ...eventstore.Event) {
	t.Helper()
	requireEvents(t, Events(t, s, f), want)
}

// RequireAppended fails t unless the events appended after the cursor
// after (from End) are want, in order, compared as RequireEvents does.
func RequireAppended(t testing.TB, s *eventstore.Store, after eventstore.Cursor, want ...eventstore.Event) {
	t.Helper()
	requireEvents(t, Events(t, s, eventstore.Filter{Cursor: after}), want)
}

func requireEvents(t testing.TB, got []eventstore.StoredEvent, want []eventstore.Event) {
	t.Helper()
	var diffs []string
	for i := range max(len(got), len(want)) {
		switch {
		case i >= len(got):
			diffs = append(diffs, fmt.Sprintf("event %d: missing, want %s", i, describe(want[i])))
		case i >= len(want):
			diffs = append(diffs, fmt.Sprintf("event %d: unexpected %s (position %d)", i, describe(got[i].Event), got[i].Position))
		default:
			if why := mismatch(&got[i].Event, &want[i]); why != "" {
				diffs = append(diffs, fmt.Sprintf("event %d (position %d): %s\n\tgot  %s\n\twant %s", i, got[i].Position, why, describe(got[i].Event), describe(want[i])))
			}
		}
	}
	if len(diffs) > 0 {
		t.Fatalf("eventstoretest: %d events, want %d:\n%s", len(got), len(want), strings.Join(diffs, "\n"))
	}
}

// mismatch says how got differs from what want sets, or "".
func mismatch(got, want *eventstore.Event) string {
	switch {
	case got.AggregateID != want.AggregateID:
		return "aggregate id differs"
	case got.Type != want.Type:
		return "type differs"
	case want.AggregateVersion != 0 && got.AggregateVersion != want.AggregateVersion:
		return "version differs"
	case want.Timestamp != 0 && got.Timestamp != want.Timestamp:
		return "timestamp differs"
	case want.Payload != nil && !sameJSON(got.Payload, want.Payload):
		return "payload differs"
	}
	return ""
}

// sameJSON reports whether a and b are the same JSON value (or the same
// bytes, when either is not JSON).
func sameJSON(a, b []byte) bool {
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return bytes.Equal(a, b)
	}
	return reflect.DeepEqual(va, vb)
}

func describe(e eventstore.Event) string {
	return fmt.Sprintf("%s v%d %s %s", e.AggregateID, e.AggregateVersion, e.Type, e.Payload)
}
