package conformance

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/internal/access"
	"github.com/esctl/esctl/internal/driver"
)

// envAppendChild makes the test binary an appending child: "url|prefix|n"
// appends n events to aggregates prefix-0 .. prefix-9 and exits.
const envAppendChild = "ESCTL_APPEND_CHILD"

func appendChild(spec string) error {
	parts := strings.SplitN(spec, "|", 3)
	if len(parts) != 3 {
		return fmt.Errorf("bad %s %q", envAppendChild, spec)
	}
	n, err := strconv.Atoi(parts[2])
	if err != nil {
		return err
	}
	ctx := context.Background()
	s, err := eventstore.Open(ctx, parts[0], nil)
	if err != nil {
		return err
	}
	defer s.Close()
	return appendSome(ctx, s, parts[1], n)
}

// appendSome appends n events to aggregates prefix-0..9, types A and B,
// singly and in pairs.
func appendSome(ctx context.Context, s *eventstore.Store, prefix string, n int) error {
	versions := map[string]int64{}
	for i := 0; i < n; {
		k := min(1+i%2, n-i)
		batch := make([]eventstore.Event, 0, k)
		for j := range k {
			agg := fmt.Sprintf("%s-%d", prefix, (i+j)%10)
			if j > 0 && agg == batch[0].AggregateID {
				break
			}
			versions[agg]++
			batch = append(batch, eventstore.Event{AggregateID: agg, AggregateVersion: versions[agg], Type: []string{"A", "B"}[(i+j)%2], Payload: []byte(fmt.Sprintf(`{"i":%d}`, i+j))})
		}
		if _, err := s.SaveEvents(ctx, batch); err != nil {
			return err
		}
		i += len(batch)
	}
	return nil
}

// collector runs a subscription in the background and keeps what it
// delivered.
type collector struct {
	mu       sync.Mutex
	events   []eventstore.StoredEvent
	last     int64 // the last delivered cursor's position
	progress int
	err      error
	cancel   context.CancelFunc
	done     chan struct{}
	slow     time.Duration // sleep in the loop body per event
}

func subscribe(t *testing.T, s *eventstore.Store, f eventstore.Filter, slow time.Duration) *collector {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	start, err := f.Cursor.Position()
	require.NoError(t, err)
	c := &collector{cancel: cancel, done: make(chan struct{}), slow: slow, last: start}
	t.Cleanup(func() { cancel(); <-c.done })
	go func() {
		defer close(c.done)
		for d, err := range s.Subscribe(ctx, f) {
			c.mu.Lock()
			if err != nil {
				c.err = err
				c.mu.Unlock()
				return
			}
			pos, perr := d.Cursor.Position()
			if perr != nil || pos <= c.last {
				c.err = fmt.Errorf("cursor %q does not move forward from %d (%v)", d.Cursor, c.last, perr)
				c.mu.Unlock()
				return
			}
			c.last = pos
			if d.Event != nil {
				if d.Event.Position != pos {
					c.err = fmt.Errorf("event at %d with cursor %d", d.Event.Position, pos)
				}
				c.events = append(c.events, *d.Event)
			} else {
				c.progress++
			}
			c.mu.Unlock()
			if c.slow > 0 && d.Event != nil {
				time.Sleep(c.slow)
			}
		}
	}()
	return c
}

// waitFor waits until the collector's cursor reaches end and stops it.
func (c *collector) waitFor(t *testing.T, end int64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		c.mu.Lock()
		last, err := c.last, c.err
		c.mu.Unlock()
		require.NoError(t, err)
		if last >= end {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the subscription reached position %d, not %d, within %s", last, end, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.cancel()
	<-c.done
	if c.err != nil && !errors.Is(c.err, context.Canceled) {
		t.Fatalf("subscription: %v", c.err)
	}
}

func positions(events []eventstore.StoredEvent) []int64 {
	out := make([]int64, len(events))
	for i, e := range events {
		out[i] = e.Position
	}
	return out
}

func runSubscribe(t *testing.T, h Harness) {
	for _, tt := range []struct {
		name string
		run  func(t *testing.T, h Harness)
	}{
		{"FromAnyCursor", runSubscribeFromAnyCursor},
		{"BreakDuringCatchUp", runSubscribeBreak},
		{"SparseFilterProgress", runSubscribeSparse},
		{"LiveAcrossProcesses", runSubscribeLive},
		{"SlowSubscriber", runSubscribeSlow},
		{"WakeUps", runSubscribeWakeUps},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.run(t, h)
		})
	}
}

// A subscription started at any cursor delivers what LoadEvents returns
// from it, with and without filters; a cursor beyond the end fails.
func runSubscribeFromAnyCursor(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := NewStore(t, h, nil)
	require.NoError(t, appendSome(ctx, s, "agg", 250))
	for _, f := range []eventstore.Filter{
		{}, {Cursor: eventstore.CursorAt(100)}, {Cursor: eventstore.CursorAt(250)},
		{EventTypes: []string{"B"}, Limit: 7}, {Cursor: eventstore.CursorAt(30), AggregateIDs: []string{"agg-3", "agg-4"}, Limit: 5},
	} {
		want, _ := LoadAll(t, s, f)
		c := subscribe(t, s, f, 0)
		c.waitFor(t, 250, 30*time.Second)
		require.Equal(t, positions(want), positions(c.events), "filter %+v", f)
		require.Equal(t, want, c.events)
	}
	var beyond *eventstore.CursorBeyondEndError
	for _, err := range s.Subscribe(ctx, eventstore.Filter{Cursor: eventstore.CursorAt(251)}) {
		require.ErrorAs(t, err, &beyond)
		break
	}
	for _, err := range s.Subscribe(ctx, eventstore.Filter{StartTime: new(int64)}) {
		require.ErrorIs(t, err, eventstore.ErrInvalidFilter)
		break
	}
}

// A loop body that breaks in the middle of a catch-up (within a page, at a
// page's end, one event before the end) ends the iteration at once; a
// subscription from the cursor it kept delivers the rest, each event once,
// and the store closes.
func runSubscribeBreak(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := NewStore(t, h, nil)
	require.NoError(t, appendSome(ctx, s, "agg", 250))
	want, _ := LoadAll(t, s, eventstore.Filter{})
	// take returns the first n events from cursor on, pages of 10, and
	// the cursor after the last.
	take := func(n int, cursor eventstore.Cursor) ([]eventstore.StoredEvent, eventstore.Cursor) {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second) // an event missed: the tail waits for it
		defer cancel()
		var got []eventstore.StoredEvent
		for d, err := range s.Subscribe(ctx, eventstore.Filter{Cursor: cursor, Limit: 10}) {
			require.NoError(t, err, "after %d of %d events", len(got), n)
			cursor = d.Cursor
			if d.Event != nil {
				if got = append(got, *d.Event); len(got) == n {
					break
				}
			}
		}
		return got, cursor
	}
	for _, stop := range []int{5, 10, 35, 249} {
		got, cursor := take(stop, "")
		require.Len(t, got, stop)
		rest, _ := take(len(want)-stop, cursor)
		require.Equal(t, positions(want), positions(append(got, rest...)), "stopped at %d", stop)
	}
	require.NoError(t, s.Close())
}

// A filter that matches nothing new still moves the cursor to the end,
// with progress steps, while events are appended live.
func runSubscribeSparse(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := NewStore(t, h, nil)
	require.NoError(t, appendSome(ctx, s, "agg", 20))
	none := subscribe(t, s, eventstore.Filter{EventTypes: []string{"Nothing"}}, 0)
	empty := subscribe(t, s, eventstore.Filter{AggregateIDs: []string{}}, 0)
	require.NoError(t, appendSome(ctx, s, "more", 100))
	d, err := s.Describe(ctx, nil)
	require.NoError(t, err)
	for _, c := range []*collector{none, empty} {
		c.waitFor(t, d.LastPosition, 30*time.Second)
		require.Empty(t, c.events)
		require.Positive(t, c.progress)
	}
}

// Catch-up, then live, while two other processes and two goroutines of
// this one append: every subscriber gets each of its events once, in
// order, none missing.
func runSubscribeLive(t *testing.T, h Harness) {
	ctx := context.Background()
	s, url := NewStore(t, h, nil)
	require.NoError(t, appendSome(ctx, s, "before", 300))
	all := subscribe(t, s, eventstore.Filter{}, 0)
	typeB := subscribe(t, s, eventstore.Filter{EventTypes: []string{"B"}}, 0)
	late := subscribe(t, s, eventstore.Filter{Cursor: eventstore.CursorAt(150), AggregateIDs: []string{"p0-1", "g1-2", "before-3"}}, 0)

	const perWriter = 300
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), envAppendChild+"="+url+"|p"+strconv.Itoa(i)+"|"+strconv.Itoa(perWriter))
			cmd.Stderr = os.Stderr
			if out, err := cmd.Output(); err != nil {
				errs <- fmt.Errorf("append child %d: %v (%s)", i, err, out)
			}
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := appendSome(ctx, s, "g"+strconv.Itoa(i), perWriter); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	d, err := s.Describe(ctx, nil)
	require.NoError(t, err)
	require.EqualValues(t, 300+4*perWriter, d.LastPosition)
	for _, tt := range []struct {
		c *collector
		f eventstore.Filter
	}{
		{all, eventstore.Filter{}},
		{typeB, eventstore.Filter{EventTypes: []string{"B"}}},
		{late, eventstore.Filter{Cursor: eventstore.CursorAt(150), AggregateIDs: []string{"p0-1", "g1-2", "before-3"}}},
	} {
		tt.c.waitFor(t, d.LastPosition, 60*time.Second)
		want, _ := LoadAll(t, s, tt.f)
		require.Equal(t, positions(want), positions(tt.c.events), "filter %+v", tt.f)
		require.Equal(t, want, tt.c.events)
	}
}

// A subscriber slower than the appends falls behind the shared reader and
// reads on its own: it still gets everything in order, and the fast one
// is not held up.
func runSubscribeSlow(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := NewStore(t, h, nil)
	fast := subscribe(t, s, eventstore.Filter{}, 0)
	slow := subscribe(t, s, eventstore.Filter{}, 200*time.Microsecond)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			require.NoError(t, appendSome(ctx, s, "w"+strconv.Itoa(i), 500))
		}()
	}
	wg.Wait()
	fast.waitFor(t, 2000, 60*time.Second)
	slow.waitFor(t, 2000, 120*time.Second)
	want, _ := LoadAll(t, s, eventstore.Filter{})
	require.Equal(t, positions(want), positions(fast.events))
	require.Equal(t, positions(want), positions(slow.events))
}

// Appends of the subscription's own Store wake it at once; on an engine
// with a Listener, so do another Store's (another process's) appends; with
// PollOnly, an append of another Store arrives within the poll interval.
// The poll interval is an hour where wake-ups are what is tested, so that
// polling cannot pass the test for them.
func runSubscribeWakeUps(t *testing.T, h Harness) {
	ctx := context.Background()
	url := h.NewURL(t)
	hour := &eventstore.Options{PollInterval: time.Hour}
	s := Open(t, url, hour)
	require.NoError(t, s.Init(ctx))
	other := Open(t, url, nil)
	require.NoError(t, appendSome(ctx, s, "a", 10))
	c := subscribe(t, s, eventstore.Filter{}, 0)
	c.waitFor(t, 10, 30*time.Second)
	// Now idle at the end: its own append wakes it.
	c = subscribe(t, s, eventstore.Filter{Cursor: eventstore.CursorAt(10)}, 0)
	time.Sleep(200 * time.Millisecond) // at the end and waiting
	require.NoError(t, appendSome(ctx, s, "own", 1))
	c.waitFor(t, 11, 10*time.Second)

	if _, ok := access.Driver(s).(driver.Listener); ok {
		c = subscribe(t, s, eventstore.Filter{Cursor: eventstore.CursorAt(11)}, 0)
		time.Sleep(200 * time.Millisecond)
		require.NoError(t, appendSome(ctx, other, "other", 1))
		c.waitFor(t, 12, 10*time.Second)
	} else {
		require.NoError(t, appendSome(ctx, other, "other", 1))
	}

	// Poll-only: another Store's append is seen by polling.
	polling := Open(t, url, &eventstore.Options{PollOnly: true, PollInterval: 50 * time.Millisecond})
	c = subscribe(t, polling, eventstore.Filter{Cursor: eventstore.CursorAt(12)}, 0)
	time.Sleep(200 * time.Millisecond)
	require.NoError(t, appendSome(ctx, other, "polled", 1))
	c.waitFor(t, 13, 10*time.Second)
}
