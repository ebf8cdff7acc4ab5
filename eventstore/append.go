package eventstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"

	"github.com/esctl/esctl/estype"
	"github.com/esctl/esctl/internal/core"
	"github.com/esctl/esctl/internal/driver"
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
	return s.save(ctx, events, Expect{})
}

// save validates events and appends them with expect: the zero Expect or
// Exactly for the versions given, a resolved expectation for versions
// chosen in the write transaction (the events' versions are then only
// validated).
func (s *Store) save(ctx context.Context, events []Event, expect Expect) ([]StoredEvent, error) {
	if len(events) == 0 {
		return nil, nil
	}
	if err := s.c.Begin(ctx); err != nil {
		return nil, err
	}
	defer s.c.Exit()
	now := s.c.NowMillis()
	batch := make([]estype.Event, len(events)) // as the driver writes them
	var seen map[core.VersionKey]int           // nil when the versions are resolved
	withMetadata := false                      // the store keeps metadata: checked
	if !expect.Resolved() {
		seen = make(map[core.VersionKey]int, len(events))
	}
	for i := range events {
		e := events[i]
		if err := core.ValidateEvent(i, &e, s.c.Limits(), false); err != nil {
			return nil, err
		}
		if e.Metadata != nil && !withMetadata {
			if err := s.c.MetadataReady(ctx); err != nil {
				return nil, err
			}
			withMetadata = true
		}
		if seen != nil {
			k := core.VersionKey{ID: e.AggregateID, Version: e.AggregateVersion}
			if j, dup := seen[k]; dup {
				return nil, &InvalidEventError{Index: i, Field: "aggregateVersion",
					Reason: fmt.Sprintf("aggregate %q version %d is also event %d of this call", e.AggregateID, e.AggregateVersion, j)}
			}
			seen[k] = i
		}
		e.Timestamp = max(now, e.Timestamp)
		batch[i] = estype.Event(e)
	}
	first, err := s.appender.append(ctx, batch, seen, expect)
	if err != nil {
		return nil, err
	}
	out := make([]StoredEvent, len(batch))
	for i := range batch {
		out[i] = StoredEvent{Event: Event(batch[i]), Position: first + int64(i)}
	}
	return out, nil
}

// appender implements group commit, leader/follower style. A caller that
// finds no commit in progress becomes the leader: it takes everything queued
// (up to maxEvents events, its own request included), sends it to the
// driver as one append (one transaction) and hands each caller its own
// outcome. Callers arriving meanwhile queue up; when the leader's own request
// is done it passes the leadership to the first of them, whose goroutine
// sends the next group. Groups thus grow with the load, and a lone caller
// commits in its own goroutine with no handoff at all.
type appender struct {
	d         driver.Driver
	w         core.DriverWriter
	maxEvents int
	log       *slog.Logger

	mu      sync.Mutex
	cond    *sync.Cond // signalled when leading becomes false
	queue   []*appendReq
	leading bool
	closed  bool
}

type appendReq struct {
	events []estype.Event
	keys   map[core.VersionKey]int // nil when expect is resolved: the versions are not chosen yet
	expect Expect                  // Append's; the zero Expect for SaveEvents
	taken  bool                    // in a group being sent (guarded by mu)
	leader bool                    // leadership handed to its goroutine (guarded by mu)
	done   chan appendOutcome      // buffered: the leadership signal, then the outcome
}

// conflict is the error of a request whose pair (id, version) was taken.
// It names Exactly's expectation; a resolved expectation's versions were
// free under the lock, so should the unique key still fire the error says
// only what it found.
func (r *appendReq) conflict(id string, version int64) *ConflictError {
	ce := &ConflictError{AggregateID: id, AggregateVersion: version}
	if !r.expect.Resolved() {
		ce.Expected = r.expect
	}
	return ce
}

type appendOutcome struct {
	first int64
	err   error
	lead  bool // not an outcome: take the leadership
}

func newAppender(d driver.Driver, w core.DriverWriter, maxEvents int, log *slog.Logger) *appender {
	a := &appender{d: d, w: w, maxEvents: maxEvents, log: log}
	a.cond = sync.NewCond(&a.mu)
	return a
}

// append appends one caller's events and returns the first one's
// position. When expect is resolved keys is nil and the events' versions
// are set in the write transaction.
func (a *appender) append(ctx context.Context, events []estype.Event, keys map[core.VersionKey]int, expect Expect) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	req := &appendReq{events: events, keys: keys, expect: expect, done: make(chan appendOutcome, 2)}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return 0, ErrClosed
	}
	a.queue = append(a.queue, req)
	if !a.leading {
		a.leading = true
		a.mu.Unlock()
		a.lead(req)
	} else {
		a.mu.Unlock()
	}
	for {
		select {
		case out := <-req.done:
			if out.lead {
				a.lead(req)
				continue
			}
			return out.first, out.err
		case <-ctx.Done():
			a.mu.Lock()
			if !req.taken && !req.leader {
				a.remove(req)
				a.mu.Unlock()
				return 0, ctx.Err()
			}
			a.mu.Unlock()
			// Sent, or about to lead: wait for the real outcome.
			for out := range req.done {
				if out.lead {
					a.lead(req)
					continue
				}
				return out.first, out.err
			}
		}
	}
}

// remove takes a withdrawn request out of the queue. Called with mu held.
func (a *appender) remove(req *appendReq) {
	for i, r := range a.queue {
		if r == req {
			a.queue = append(a.queue[:i], a.queue[i+1:]...)
			return
		}
	}
}

// lead sends groups until own has its outcome, then hands the leadership to
// the first queued request, or gives it up when the queue is empty.
func (a *appender) lead(own *appendReq) {
	for {
		a.mu.Lock()
		if a.closed {
			// Close failed everything else queued; own was not sent.
			a.remove(own)
			own.leader = false
			own.done <- appendOutcome{err: ErrClosed}
			a.leading = false
			a.cond.Broadcast()
			a.mu.Unlock()
			return
		}
		group := a.takeGroup()
		a.mu.Unlock()
		if len(group) > 0 {
			a.commit(group)
		}
		a.mu.Lock()
		if own.taken || len(group) == 0 {
			if len(a.queue) > 0 && !a.closed {
				next := a.queue[0]
				next.leader = true
				next.done <- appendOutcome{lead: true}
			} else {
				a.leading = false
				a.cond.Broadcast()
			}
			a.mu.Unlock()
			return
		}
		a.mu.Unlock()
	}
}

// takeGroup removes a group from the queue: requests in arrival order, up to
// maxEvents events (a single larger request goes alone). A request sharing
// an (aggregate id, version) pair with one already in the group waits for a
// later group, so that within a group conflicts depend only on what is
// stored. (A request whose versions are resolved has no pairs yet: it
// joins any group, and the transaction counts the events of the requests
// before it, as if they had committed first.) Called with mu held.
func (a *appender) takeGroup() []*appendReq {
	var group []*appendReq
	taken := map[core.VersionKey]struct{}{}
	n := 0
	rest := a.queue[:0]
	for i, r := range a.queue {
		if n > 0 && n+len(r.events) > a.maxEvents {
			rest = append(rest, a.queue[i:]...)
			break
		}
		clash := false
		for k := range r.keys {
			if _, ok := taken[k]; ok {
				clash = true
				break
			}
		}
		if clash {
			rest = append(rest, r)
			continue
		}
		for k := range r.keys {
			taken[k] = struct{}{}
		}
		r.taken, r.leader = true, false
		group = append(group, r)
		n += len(r.events)
	}
	a.queue = rest
	return group
}

// close stops the appender: queued requests fail with ErrClosed and Close
// waits for a group in flight to complete.
func (a *appender) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closed = true
	for _, r := range a.queue {
		if !r.leader {
			r.done <- appendOutcome{err: ErrClosed}
		}
	}
	kept := a.queue[:0]
	for _, r := range a.queue {
		if r.leader {
			kept = append(kept, r) // its goroutine leads: it finds the queue closed
		}
	}
	a.queue = kept
	for a.leading {
		a.cond.Wait()
	}
}

// commit sends one group and delivers the outcomes. The context is not any
// caller's: once handed over, a group runs to its outcome (the dialect
// applies lock and statement timeouts).
func (a *appender) commit(group []*appendReq) {
	outcomes := a.send(group)
	// A group that failed as a whole for a reason other than the connection
	// or a timeout may have been failed by one request: send() then retried
	// each alone and delivered the outcomes itself.
	if len(group) > 1 && outcomes == nil {
		return
	}
	for i, r := range group {
		r.done <- outcomes[i]
	}
}

func (a *appender) send(group []*appendReq) []appendOutcome {
	p := &driver.AppendParams{Requests: make([]driver.AppendRequest, len(group))}
	for i, r := range group {
		p.Requests[i].Events = r.events
	}
	var expects []Expect // set when a request's versions are resolved in the transaction
	if slices.ContainsFunc(group, func(r *appendReq) bool { return r.expect.Resolved() }) {
		expects = make([]Expect, len(group))
		for i, r := range group {
			expects[i] = r.expect
		}
	}
	var res *driver.AppendResult
	var failed map[int]error
	var err error
	if ap, ok := a.d.(driver.Appender); ok && expects == nil {
		res, err = ap.Append(context.Background(), p)
		if err == nil && !res.Frozen && a.w.Wake != nil {
			a.w.Wake()
		}
	} else {
		// An Appender's contract has no expectations: a group with one
		// runs as the generic append, which resolves them under the lock.
		res, failed, err = core.AppendTx(context.Background(), a.w, p, expects)
	}
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
			outcomes[0].err = group[0].conflict(e.AggregateID, e.AggregateVersion)
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
	conflicted := make(map[int]driver.AppendConflict, len(res.Conflicts))
	for _, c := range res.Conflicts {
		conflicted[c.Request] = c
	}
	next := res.FirstPosition
	for i, r := range group {
		if err := failed[i]; err != nil {
			outcomes[i].err = err
			continue
		}
		if c, bad := conflicted[i]; bad {
			outcomes[i].err = r.conflict(c.AggregateID, c.AggregateVersion)
			continue
		}
		outcomes[i].first = next
		next += int64(len(r.events))
	}
	if a.log.Enabled(context.Background(), slog.LevelDebug) {
		a.log.Debug("eventstore: group committed", "requests", len(group), "conflicts", len(res.Conflicts)+len(failed),
			"first_position", strconv.FormatInt(res.FirstPosition, 10))
	}
	return outcomes
}

// isolatable reports whether a failed group should be retried request by
// request: definite failures that one request could have caused (a unique
// key violation the pre-check did not predict, a value the engine refused),
// not connection, timeout, out-of-resources or unknown-outcome errors, which
// would fail alone too or must not be re-sent.
func isolatable(err error) bool {
	return !errors.Is(err, ErrUnavailable) && !errors.Is(err, ErrTimeout) &&
		!errors.Is(err, ErrOutcomeUnknown) && !errors.Is(err, ErrClosed) && !errors.Is(err, ErrResources)
}
