package conformance

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/esctl/esctl/eventstore"
)

// envFreezeChild names the freeze-race child's store: "url".
const envFreezeChild = "ESCTL_FREEZE_CHILD"

// freezeChild toggles Freeze/Unfreeze back to back on its own Store until
// its standard input closes, then leaves the store unfrozen and prints how
// many toggles it made.
func freezeChild(url string) error {
	ctx := context.Background()
	s, err := eventstore.Open(ctx, url, nil)
	if err != nil {
		return err
	}
	defer s.Close()
	stop := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(stop)
	}()
	fmt.Println("ready")
	n, err := toggleFreeze(ctx, s, stop)
	if err != nil {
		return err
	}
	fmt.Printf("toggles %d\n", n)
	return nil
}

// toggleFreeze calls Freeze then Unfreeze, back to back, until stop is
// closed, and returns the number of calls that took effect. It ends with
// the store unfrozen. A lock timeout (SQLite lets another process's writer
// take the lock again and again) changed nothing: the call is tried again.
func toggleFreeze(ctx context.Context, s *eventstore.Store, stop <-chan struct{}) (int, error) {
	n := 0
	for frozen := false; ; {
		select {
		case <-stop:
			if !frozen {
				return n, nil
			}
		default:
		}
		set := func(ctx context.Context) error { return s.Freeze(ctx, "FreezeRace") }
		if frozen {
			set = s.Unfreeze
		}
		switch err := set(ctx); {
		case errors.Is(err, eventstore.ErrTimeout):
			continue
		case err != nil:
			return n, fmt.Errorf("toggle %d (frozen %t): %w", n, frozen, err)
		}
		frozen = !frozen
		n++
		if frozen && n%40 == 1 {
			// Now and then the freeze lasts a little, so that appends
			// meet a frozen store whatever the scheduling.
			time.Sleep(2 * time.Millisecond)
		}
	}
}

// raceAppend is one append of the freeze race and what it returned.
type raceAppend struct {
	events []eventstore.Event
	stored []eventstore.StoredEvent
	err    error
}

// RunFreezeRace toggles Freeze/Unfreeze back to back for d while 8
// goroutines append SaveEvents of 1 and 3 events to fresh aggregates, then
// checks the outcome of every append and the store. otherProcess runs the
// toggling in a child process with its own Store (a second writer whose
// commits this process's connections see only through the database).
//
// Every append must return its positions, ErrFrozen, or ErrTimeout (a lock
// wait that expired: nothing written; SQLite's writers in two processes can
// starve one another under load): the aggregates are fresh and no
// connection breaks, so a conflict, an in-doubt outcome or a raw driver
// error is a failure. Every acknowledged event must be readable
// at its position, positions must be dense from 1, Describe's counts must
// match the rows, and every refused append must be absent: saving the same
// events again must succeed (an event stored where no read sees it, at a
// position <= 0, would make it conflict).
//
// Sensitivity, checked by hand (2026-12-03) on the PostgreSQL fast path of
// before this test (reservation UPDATE, then an INSERT reading the state row
// again with its own snapshot), 15 s each: in four runs, 673, 925 (same
// process) and 1,789, 2,675 (other process) appends of about 10,000 to
// 20,000 returned neither positions nor ErrFrozen, but "append reserved no
// positions and the store is not frozen" or a raw "duplicate key value
// violates unique constraint events_pkey (SQLSTATE 23505)". (Events stored
// at positions <= 0 need the race to hit an empty store; the re-save
// check below counts them when it does.)
func RunFreezeRace(t *testing.T, h Harness, d time.Duration, otherProcess bool) {
	ctx := context.Background()
	s, url := NewStore(t, h, nil)

	stop := make(chan struct{})
	toggled := make(chan error, 1)
	var toggles int
	if otherProcess {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envFreezeChild+"="+url)
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		require.NoError(t, err)
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		lines := bufio.NewScanner(out)
		require.True(t, lines.Scan(), "the freeze child did not start")
		require.Equal(t, "ready", lines.Text())
		go func() {
			<-stop
			_ = stdin.Close()
			var last string
			for lines.Scan() {
				last = lines.Text()
			}
			err := cmd.Wait()
			if err == nil {
				_, err = fmt.Sscanf(last, "toggles %d", &toggles)
			}
			toggled <- err
		}()
	} else {
		go func() {
			n, err := toggleFreeze(ctx, s, stop)
			toggles = n
			toggled <- err
		}()
	}

	const writers = 8
	results := make([][]raceAppend, writers)
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; time.Now().Before(deadline); n++ {
				k := 1
				if n%2 == 1 {
					k = 3
				}
				events := make([]eventstore.Event, k)
				for i := range events {
					events[i] = eventstore.Event{
						AggregateID:      fmt.Sprintf("w%d-%d-%d", w, n, i%2),
						AggregateVersion: int64(i/2 + 1),
						Type:             "Raced",
						Payload:          []byte(fmt.Sprintf(`{"w":%d,"n":%d,"i":%d}`, w, n, i)),
					}
				}
				stored, err := s.SaveEvents(ctx, events)
				results[w] = append(results[w], raceAppend{events: events, stored: stored, err: err})
			}
		}()
	}
	wg.Wait()
	close(stop)
	require.NoError(t, <-toggled, "toggling Freeze/Unfreeze")

	var acked, frozen, timedOut int
	var bad []string
	want := map[int64]eventstore.StoredEvent{}
	var refused []eventstore.Event  // ErrFrozen: must not be stored
	var failed [][]eventstore.Event // any other error: must not be stored either
	for _, rs := range results {
		for _, r := range rs {
			switch {
			case r.err == nil:
				acked++
				for _, e := range r.stored {
					if _, dup := want[e.Position]; dup || e.Position <= 0 {
						bad = append(bad, fmt.Sprintf("position %d acknowledged twice or not positive", e.Position))
					}
					want[e.Position] = e
				}
			case errors.Is(r.err, eventstore.ErrFrozen):
				frozen++
				refused = append(refused, r.events...)
			case errors.Is(r.err, eventstore.ErrTimeout):
				timedOut++
				refused = append(refused, r.events...)
			default:
				bad = append(bad, fmt.Sprintf("append of %d events: %v", len(r.events), r.err))
				failed = append(failed, r.events)
			}
		}
	}
	t.Logf("%d toggles; %d appends acknowledged (%d events), %d refused as frozen, %d timed out, %d other outcomes",
		toggles, acked, len(want), frozen, timedOut, len(bad))
	require.Positive(t, acked, "no append got through: the race did not run")
	require.Positive(t, frozen, "no append met a frozen store: the race did not run")

	// Check everything before failing, so that a failure says how much
	// went wrong.
	var problems []string
	all, _ := LoadAll(t, s, eventstore.Filter{Limit: 1000})
	if len(all) != len(want) {
		problems = append(problems, fmt.Sprintf("the store holds %d events, %d were acknowledged", len(all), len(want)))
	}
	for i, e := range all {
		if e.Position != int64(i+1) {
			problems = append(problems, fmt.Sprintf("event %d of the store is at position %d: positions are not dense from 1", i, e.Position))
			break
		}
		if w, ok := want[e.Position]; !ok || w.AggregateID != e.AggregateID || w.AggregateVersion != e.AggregateVersion ||
			w.Type != e.Type || w.Timestamp != e.Timestamp || string(w.Payload) != string(e.Payload) {
			problems = append(problems, fmt.Sprintf("position %d holds %+v, acknowledged %+v", e.Position, e, w))
			break
		}
	}
	desc, err := s.Describe(ctx, nil)
	require.NoError(t, err)
	if desc.IsFrozen {
		problems = append(problems, "the store is still frozen after the toggling")
	}
	if desc.EventCount != int64(len(all)) || desc.LastPosition != int64(len(all)) {
		problems = append(problems, fmt.Sprintf("Describe: %d events, last position %d; the store holds %d", desc.EventCount, desc.LastPosition, len(all)))
	}

	// Nothing refused was stored: saving it again succeeds. Refused
	// appends go in chunks (atomic: a conflict names the aggregate that is
	// taken), failed ones one by one, to count them. A conflict while
	// LoadEvents shows nothing of the aggregate is an invisible event.
	invisible := 0
	for i := 0; i < len(refused); i += 500 {
		if _, err := s.SaveEvents(ctx, refused[i:min(i+500, len(refused))]); err != nil {
			problems = append(problems, fmt.Sprintf("re-saving appends refused as frozen: %v", err))
			break
		}
	}
	for _, evs := range failed {
		if _, err := s.SaveEvents(ctx, evs); errors.Is(err, eventstore.ErrConflict) {
			invisible++
		} else if err != nil {
			problems = append(problems, fmt.Sprintf("re-saving a failed append: %v", err))
		}
	}
	if invisible > 0 {
		problems = append(problems, fmt.Sprintf("%d failed appends were stored where no read sees them (re-saving them conflicts)", invisible))
	}
	if len(bad) > 0 {
		problems = append(problems, fmt.Sprintf("%d appends returned neither positions, ErrFrozen nor ErrTimeout, for example: %v", len(bad), bad[:min(3, len(bad))]))
	}
	require.Empty(t, problems)

	all, _ = LoadAll(t, s, eventstore.Filter{Limit: 1000})
	require.Len(t, all, len(want)+len(refused))
	desc, err = s.Describe(ctx, nil)
	require.NoError(t, err)
	require.EqualValues(t, len(all), desc.EventCount)
	require.EqualValues(t, len(all), desc.LastPosition)
}

// Child runs this process as one of the suites' child processes when the
// environment names one (the freeze race's toggler, the append child, and
// those registered with RegisterChild: the crash test's importer, the
// consumers' children), then exits; otherwise it returns at once. Adapters'
// TestMain call it first:
//
//	func TestMain(m *testing.M) { conformance.Child(); ... }
func Child() {
	if code, ok := childMain(); ok {
		os.Exit(code)
	}
}

// childMain runs this process as one of the suite's child processes, if the
// environment names one. Each returns its exit code.
func childMain() (int, bool) {
	if url := os.Getenv(envFreezeChild); url != "" {
		if err := freezeChild(url); err != nil {
			fmt.Fprintln(os.Stderr, "freeze child:", strings.TrimSpace(err.Error()))
			return 1, true
		}
		return 0, true
	}
	for _, c := range children {
		if spec := os.Getenv(c.env); spec != "" {
			if err := c.run(spec); err != nil {
				fmt.Fprintf(os.Stderr, "%s: %v\n", c.name, err)
				return 1, true
			}
			return 0, true
		}
	}
	if spec := os.Getenv(envAppendChild); spec != "" {
		if err := appendChild(spec); err != nil {
			fmt.Fprintln(os.Stderr, "append child:", err)
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

// children are the child processes of the suites in other packages
// (tooltest, consumertest), registered from their init.
var children []registeredChild

type registeredChild struct {
	name, env string
	run       func(spec string) error
}

// RegisterChild makes Child run fn(spec) when the environment variable env
// holds spec: a suite in another package (consumertest) starts its child
// processes through it. Call it from an init function.
func RegisterChild(name, env string, fn func(spec string) error) {
	children = append(children, registeredChild{name: name, env: env, run: fn})
}
