package eventstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
)

// SaveEvent appends one event and returns it as stored, with its position
// and the timestamp actually stored: max(now, e.Timestamp), as reSolve does.
//
// If the aggregate already has an event at e.AggregateVersion the call fails
// with *ConflictError (errors.Is(err, ErrConflict)): reload the aggregate and
// retry the command. A frozen store fails with ErrFrozen. Concurrent calls
// share transactions (group commit) but each gets its own result.
//
// Once the append has been handed to the database, SaveEvent waits for the
// outcome even if ctx is cancelled, so that it never reports a guess.
func (s *Store) SaveEvent(ctx context.Context, e Event) (StoredEvent, error) {
	out, err := s.SaveEvents(ctx, []Event{e})
	if err != nil {
		return StoredEvent{}, err
	}
	return out[0], nil
}

// SaveEvents appends several events, of one or several aggregates,
// atomically: all of them are stored at consecutive positions, or none is.
// The rules of SaveEvent apply to each event; a conflict on any of them fails
// the whole call. An empty call stores nothing and returns nil.
func (s *Store) SaveEvents(ctx context.Context, events []Event) ([]StoredEvent, error) {
	if len(events) == 0 {
		return nil, nil
	}
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	defer s.exit()
	now := s.nowMillis()
	batch := make([]Event, len(events))
	seen := make(map[versionKey]int, len(events))
	for i := range events {
		e := events[i]
		payload, err := validateEvent(i, &e, s.opts.MaxPayloadBytes, false)
		if err != nil {
			return nil, err
		}
		k := versionKey{e.AggregateID, e.AggregateVersion}
		if j, dup := seen[k]; dup {
			return nil, &InvalidEventError{Index: i, Field: "aggregateVersion",
				Reason: fmt.Sprintf("aggregate %q version %d is also event %d of this call", e.AggregateID, e.AggregateVersion, j)}
		}
		seen[k] = i
		e.Payload = payload
		e.Timestamp = max(now, e.Timestamp)
		batch[i] = e
	}
	first, err := s.appender.append(ctx, batch, seen)
	if err != nil {
		return nil, err
	}
	out := make([]StoredEvent, len(batch))
	for i := range batch {
		out[i] = StoredEvent{Event: batch[i], Position: first + int64(i)}
	}
	return out, nil
}

type versionKey struct {
	id      string
	version int64
}

// appender implements group commit. Callers queue requests; one goroutine
// takes everything queued (up to maxEvents events), sends it to the dialect
// as one Append (one transaction), and hands each caller its own outcome.
// While a group is in flight the next one accumulates, so the group size
// grows with the load and a lone caller pays no added latency.
type appender struct {
	d         Dialect
	maxEvents int
	log       *slog.Logger

	queue   chan *appendReq
	stop    chan struct{}
	stopped chan struct{}
	once    sync.Once
}

// States of an appendReq, so that a caller whose context ends while it is
// still queued can withdraw, but not once its events were handed over.
const (
	reqQueued int32 = iota
	reqTaken
	reqWithdrawn
)

type appendReq struct {
	events []Event
	keys   map[versionKey]int
	state  atomic.Int32
	done   chan appendOutcome // buffered, receives exactly one outcome
}

type appendOutcome struct {
	first int64
	err   error
}

func newAppender(d Dialect, maxEvents int, log *slog.Logger) *appender {
	a := &appender{
		d:         d,
		maxEvents: maxEvents,
		log:       log,
		queue:     make(chan *appendReq, 1024),
		stop:      make(chan struct{}),
		stopped:   make(chan struct{}),
	}
	go a.run()
	return a
}

func (a *appender) append(ctx context.Context, events []Event, keys map[versionKey]int) (int64, error) {
	req := &appendReq{events: events, keys: keys, done: make(chan appendOutcome, 1)}
	select {
	case <-a.stop:
		return 0, ErrClosed
	default:
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	select {
	case a.queue <- req:
	case <-a.stop:
		return 0, ErrClosed
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	select {
	case out := <-req.done:
		return out.first, out.err
	case <-a.stopped:
		// The committer has exited after replying to every request it
		// took; a request still unanswered was enqueued after its final
		// drain and never sent.
		select {
		case out := <-req.done:
			return out.first, out.err
		default:
			return 0, ErrClosed
		}
	case <-ctx.Done():
		if req.state.CompareAndSwap(reqQueued, reqWithdrawn) {
			return 0, ctx.Err()
		}
		// Already handed to the database: wait for the real outcome.
		out := <-req.done
		return out.first, out.err
	}
}

// close stops the appender: queued requests fail with ErrClosed and a group
// in flight completes first.
func (a *appender) close() {
	a.once.Do(func() { close(a.stop) })
	<-a.stopped
}

func (a *appender) run() {
	defer close(a.stopped)
	var carry []*appendReq // requests deferred to the next group
	for {
		var first *appendReq
		if len(carry) > 0 {
			first, carry = carry[0], carry[1:]
		} else {
			select {
			case first = <-a.queue:
			case <-a.stop:
				a.failQueued(carry)
				return
			}
		}
		select {
		case <-a.stop:
			a.failQueued(append(carry, first))
			return
		default:
		}
		group, rest := a.collect(first, carry)
		carry = rest
		if len(group) > 0 {
			a.commit(group)
		}
	}
}

// collect builds a group from first, the carried-over requests and what is
// queued, up to maxEvents events. A request sharing an (aggregate id,
// version) pair with one already in the group waits for the next group, so
// that within a group conflicts depend only on what is stored.
func (a *appender) collect(first *appendReq, carry []*appendReq) (group, rest []*appendReq) {
	taken := map[versionKey]struct{}{}
	n := 0
	// add puts r in the group, or reports false when r must wait for a
	// later group. A request is marked taken only once it is sure to be
	// sent, so a caller can withdraw until that moment.
	add := func(r *appendReq) bool {
		if n > 0 && n+len(r.events) > a.maxEvents {
			return false
		}
		for k := range r.keys {
			if _, clash := taken[k]; clash {
				return false
			}
		}
		if !r.state.CompareAndSwap(reqQueued, reqTaken) {
			return true // withdrawn by its caller: drop it
		}
		for k := range r.keys {
			taken[k] = struct{}{}
		}
		group = append(group, r)
		n += len(r.events)
		return true
	}
	add(first) // the first request always fits an empty group
	for i, r := range carry {
		if n >= a.maxEvents {
			return group, append(rest, carry[i:]...)
		}
		if !add(r) {
			rest = append(rest, r)
		}
	}
	for n < a.maxEvents {
		select {
		case r := <-a.queue:
			if !add(r) {
				rest = append(rest, r)
				if n+len(r.events) > a.maxEvents {
					return group, rest // full
				}
			}
		default:
			return group, rest
		}
	}
	return group, rest
}

func (a *appender) failQueued(carry []*appendReq) {
	for _, r := range carry {
		r.done <- appendOutcome{err: ErrClosed}
	}
	for {
		select {
		case r := <-a.queue:
			r.done <- appendOutcome{err: ErrClosed}
		default:
			return
		}
	}
}

// commit sends one group. The context is not any caller's: once handed over,
// a group runs to its outcome (the dialect applies lock and statement
// timeouts).
func (a *appender) commit(group []*appendReq) {
	outcomes := a.send(group)
	// A group that failed as a whole for a reason other than the connection
	// or a timeout may have been failed by one request: retry each alone so
	// that one caller's bad request never fails another caller.
	if len(group) > 1 && outcomes == nil {
		return
	}
	for i, r := range group {
		r.done <- outcomes[i]
	}
}

func (a *appender) send(group []*appendReq) []appendOutcome {
	p := &AppendParams{Requests: make([]AppendRequest, len(group))}
	for i, r := range group {
		p.Requests[i].Events = r.events
	}
	res, err := a.d.Append(context.Background(), p)
	outcomes := make([]appendOutcome, len(group))
	if err != nil {
		if len(group) > 1 && isolatable(err) {
			a.log.Warn("eventstore: group append failed, retrying its requests one by one", "requests", len(group), "err", err)
			for _, r := range group {
				r.done <- a.send([]*appendReq{r})[0]
			}
			return nil
		}
		var ce *ConflictError
		if len(group) == 1 && errors.As(err, &ce) && ce.AggregateID == "" && len(group[0].events) == 1 {
			// The unique key, not the pre-check, caught it: name the pair.
			e := group[0].events[0]
			outcomes[0].err = &ConflictError{AggregateID: e.AggregateID, AggregateVersion: e.AggregateVersion}
			return outcomes
		}
		for i := range outcomes {
			outcomes[i].err = fmt.Errorf("append: %w", err)
		}
		return outcomes
	}
	if res.Frozen {
		for i := range outcomes {
			outcomes[i].err = ErrFrozen
		}
		return outcomes
	}
	conflicted := make(map[int]AppendConflict, len(res.Conflicts))
	for _, c := range res.Conflicts {
		conflicted[c.Request] = c
	}
	next := res.FirstPosition
	for i, r := range group {
		if c, bad := conflicted[i]; bad {
			outcomes[i].err = &ConflictError{AggregateID: c.AggregateID, AggregateVersion: c.AggregateVersion}
			continue
		}
		outcomes[i].first = next
		next += int64(len(r.events))
	}
	if a.log.Enabled(context.Background(), slog.LevelDebug) {
		a.log.Debug("eventstore: group committed", "requests", len(group), "conflicts", len(res.Conflicts),
			"first_position", strconv.FormatInt(res.FirstPosition, 10))
	}
	return outcomes
}

// isolatable reports whether a failed group should be retried request by
// request: definite failures that one request could have caused (a unique
// key violation the pre-check did not predict, a value the engine refused),
// not connection, timeout or unknown-outcome errors, which would fail alone
// too or must not be re-sent.
func isolatable(err error) bool {
	return !errors.Is(err, ErrUnavailable) && !errors.Is(err, ErrTimeout) &&
		!errors.Is(err, ErrOutcomeUnknown) && !errors.Is(err, ErrClosed)
}
