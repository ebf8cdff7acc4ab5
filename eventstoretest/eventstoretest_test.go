package eventstoretest_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/eventstoretest"
)

// openAccount stands for an application's command handler: the code a test
// of the application checks.
func openAccount(ctx context.Context, s *eventstore.Store, id, owner string) error {
	_, err := s.Append(ctx, id, eventstore.NoStream, eventstore.EventData{Type: "AccountOpened", Payload: []byte(fmt.Sprintf(`{"owner":%q}`, owner))})
	return err
}

// TestOpenAccount is the package's example: a test of an application's
// command against its own store.
func TestOpenAccount(t *testing.T) {
	ctx := context.Background()
	s := eventstoretest.NewStore(t, nil)
	start := eventstoretest.End(t, s)
	if err := openAccount(ctx, s, "acc-1", "ada"); err != nil {
		t.Fatal(err)
	}
	eventstoretest.RequireAppended(t, s, start,
		eventstore.Event{AggregateID: "acc-1", AggregateVersion: 1, Type: "AccountOpened", Payload: []byte(`{ "owner": "ada" }`)})

	// The store keeps a production store's rules: a second open conflicts.
	if err := openAccount(ctx, s, "acc-1", "bob"); !errors.Is(err, eventstore.ErrConflict) {
		t.Fatalf("second open: %v, want ErrConflict", err)
	}
	eventstoretest.RequireEvents(t, s, eventstore.Filter{AggregateIDs: []string{"acc-1"}},
		eventstore.Event{AggregateID: "acc-1", Type: "AccountOpened"})
}

// recorder is a testing.TB whose Fatalf records the message and ends the
// goroutine, as the real one does.
type recorder struct {
	*testing.T
	mu  sync.Mutex
	msg string
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.msg = fmt.Sprintf(format, args...)
	r.mu.Unlock()
	runtime.Goexit()
}

// fails runs fn with a recorder and returns what it failed with ("": it
// did not fail).
func fails(t *testing.T, fn func(tb testing.TB)) string {
	r := &recorder{T: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(r)
	}()
	<-done
	return r.msg
}

// TestRequireReportsDifferences: every kind of difference fails, naming the
// event and what differs; what a wanted event leaves unset is not compared.
func TestRequireReportsDifferences(t *testing.T) {
	ctx := context.Background()
	s := eventstoretest.NewStore(t, nil)
	start := eventstoretest.End(t, s)
	if _, err := s.SaveEvents(ctx, []eventstore.Event{
		{AggregateID: "a", AggregateVersion: 1, Type: "T", Timestamp: 5, Payload: []byte(`{"x":1,"y":[1,2]}`)},
		{AggregateID: "a", AggregateVersion: 2, Type: "U", Payload: []byte(`{}`)},
	}); err != nil {
		t.Fatal(err)
	}
	first := eventstore.Event{AggregateID: "a", Type: "T"}
	second := eventstore.Event{AggregateID: "a", Type: "U"}
	if msg := fails(t, func(tb testing.TB) {
		eventstoretest.RequireAppended(tb, s, start, first, second)
		eventstoretest.RequireAppended(tb, s, start, eventstore.Event{AggregateID: "a", AggregateVersion: 1, Type: "T", Payload: []byte(`{"y":[1,2],"x":1}`)}, second)
	}); msg != "" {
		t.Fatalf("matching events failed: %s", msg)
	}
	for want, events := range map[string][]eventstore.Event{
		"event 2: missing":                           {first, second, first},
		"event 1: unexpected a v2 U":                 {first},
		"event 0 (position 1): aggregate id differs": {{AggregateID: "b", Type: "T"}, second},
		"event 0 (position 1): type differs":         {{AggregateID: "a", Type: "X"}, second},
		"event 0 (position 1): version differs":      {{AggregateID: "a", AggregateVersion: 2, Type: "T"}, second},
		"event 0 (position 1): timestamp differs":    {{AggregateID: "a", Type: "T", Timestamp: 6}, second},
		"event 0 (position 1): payload differs":      {{AggregateID: "a", Type: "T", Payload: []byte(`{"x":2,"y":[1,2]}`)}, second},
	} {
		msg := fails(t, func(tb testing.TB) { eventstoretest.RequireAppended(tb, s, start, events...) })
		if !strings.Contains(msg, want) {
			t.Errorf("want a failure with %q, got %q", want, msg)
		}
	}
	// From the end, nothing was appended.
	end := eventstoretest.End(t, s)
	if msg := fails(t, func(tb testing.TB) { eventstoretest.RequireAppended(tb, s, end) }); msg != "" {
		t.Fatalf("nothing appended after the end: %s", msg)
	}
}
