// Package conformance is the conformance suite every engine of the event
// store runs, unchanged: adapters/sqlite and adapters/postgres call Run from
// their tests (and consumertest.Run, the durable consumers' suite, and
// drivertest.Exercise, the seam's). A behaviour tested for one engine only
// is a gap in these suites.
//
// The suite works through the public eventstore API over real databases,
// which the engine's test supplies through a Harness.
package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/esctl/esctl/eventstore"
)

// Harness gives the suite databases of one engine.
type Harness struct {
	// NewURL returns the URL of a fresh, empty database (or schema) that
	// eventstore.Open accepts. It is called once per test; the database may
	// be opened several times (several Stores, reopen after close).
	NewURL func(t testing.TB) string
	// Concurrency sizes the concurrency tests (zero: defaults).
	Concurrency Concurrency
	// Peers gives fresh databases of the other engines, by name, for the
	// cross-engine round trips (export here, import there, and back).
	Peers map[string]func(t testing.TB) string
	// ReadURL, when set, gives the URL of a replica of the database at
	// url (a streaming standby): RunTailCheck's readers then read there
	// (eventstore.Options.ReadURL) while the writers write to url.
	ReadURL func(t testing.TB, url string) string
}

// Run runs the whole suite.
func Run(t *testing.T, h Harness) {
	t.Helper()
	suites := []struct {
		name string
		run  func(t *testing.T, h Harness)
	}{
		{"Lifecycle", runLifecycle},
		{"SaveLoad", runSaveLoad},
		{"Filters", runFilters},
		{"Validation", runValidation},
		{"Payloads", runPayloads},
		{"Concurrency", runConcurrency},
		{"Expect", runExpect},
		{"Freeze", runFreeze},
		{"Snapshots", runSnapshots},
		{"Secrets", runSecrets},
		{"Subscribe", runSubscribe},
		{"Metadata", runMetadata},
		{"Contains", runContains},
		{"ContainsFollow", runContainsFollow},
	}
	for _, s := range suites {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			s.run(t, h)
		})
	}
}

// Clock is a settable clock for Options.NowFunc (MS: Unix milliseconds).
type Clock struct{ MS int64 }

// Now is the clock's time.
func (c *Clock) Now() time.Time { return time.UnixMilli(c.MS) }

// Open opens a Store on url and closes it at cleanup.
func Open(t testing.TB, url string, opts *eventstore.Options) *eventstore.Store {
	t.Helper()
	s, err := eventstore.Open(context.Background(), url, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// NewStore opens and initializes a store on a fresh database.
func NewStore(t testing.TB, h Harness, opts *eventstore.Options) (*eventstore.Store, string) {
	t.Helper()
	url := h.NewURL(t)
	s := Open(t, url, opts)
	require.NoError(t, s.Init(context.Background()))
	return s, url
}

// testEvent is reSolve's makeTestEvent(i).
func testEvent(i int) eventstore.Event {
	return eventstore.Event{
		AggregateID:      "aggregateId",
		AggregateVersion: int64(i + 1),
		Type:             "EVENT",
		Timestamp:        int64(i + 1),
		Payload:          json.RawMessage(fmt.Sprintf(`{"eventIndex":%d}`, i)),
	}
}

// LoadAll reads every event matching f by paging with the cursor.
func LoadAll(t testing.TB, s *eventstore.Store, f eventstore.Filter) ([]eventstore.StoredEvent, eventstore.Cursor) {
	t.Helper()
	ctx := context.Background()
	if f.Limit == 0 {
		f.Limit = 100
	}
	var all []eventstore.StoredEvent
	for {
		page, err := s.LoadEvents(ctx, f)
		require.NoError(t, err)
		all = append(all, page.Events...)
		f.Cursor = page.Cursor
		if len(page.Events) < f.Limit {
			return all, page.Cursor
		}
	}
}

func ptr[T any](v T) *T { return &v }

func itoa(i int) string { return fmt.Sprint(i) }

func jsonUint(v uint) string { return fmt.Sprint(v) }
