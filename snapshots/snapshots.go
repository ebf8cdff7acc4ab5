// Package snapshots rebuilds aggregates from a snapshot plus the events after
// it, on top of an [eventstore.Store].
//
// A [Repository] is typed by the aggregate's state S. Load reads the latest
// snapshot of an aggregate (state, version, position), reads only the
// aggregate's events after the snapshot's position, and applies them with the
// caller's [ApplyFunc]. Append and Update write the aggregate's next events
// with optimistic concurrency and apply them too. A new snapshot is saved by
// an explicit policy: once Options.Every events have been applied since the
// last snapshot (Load, Append and Update check it), or when the caller calls
// Snapshot (Options.Every = Never leaves it to the caller).
//
// Snapshots are a cache. The state is always a function of the events, so any
// snapshot may be dropped or ignored at any time: Load then reads more events
// and gets the same state. A snapshot that cannot be used is ignored, never
// mis-decoded:
//
//   - Its content records Options.StateVersion and a fingerprint of S's JSON
//     shape (exported field names, tags and types). A snapshot written for
//     another StateVersion or another shape of S is ignored, so changing S, or
//     bumping StateVersion when ApplyFunc changes meaning, invalidates old
//     snapshots.
//   - It records the aggregate it belongs to and the version and position it
//     covers; a snapshot of another aggregate, one past the end of the store
//     (a store restored from an older backup) or one whose following events do
//     not continue its version is ignored.
//
// Aggregate.Loaded.Discarded tells why a snapshot was ignored; an ignored
// snapshot is replaced by the next one saved.
//
// # Personal data
//
// Snapshots are stored in the store's snapshots table in whatever form
// EncodeFunc gives them (JSON by default). If S held decrypted personal data,
// every snapshot would be a copy of it in clear, out of reach of
// crypto-shredding. Keep personal data in S in its encrypted form (for example
// [github.com/esctl/esctl/secrets.Sealed] fields, exactly as they are in the
// events) and decrypt it at the edge, where it is shown; or encrypt the whole
// snapshot in EncodeFunc with the subject's key. In addition,
// secrets.Keyring.Forget can drop the subject's snapshots (pass Key(id) in
// its options) before it deletes the key.
//
// # Versions
//
// The repository assumes the usual event-sourcing discipline: an aggregate's
// events have consecutive versions 1, 2, 3..., each written by a caller that
// had read the previous one (Append and Update do this). Then the state built
// from the events up to position P covers every event of the aggregate at or
// below P, which is what makes "the events after the snapshot's position"
// exact.
package snapshots

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/esctl/esctl/eventstore"
)

// DefaultEvery is the default snapshot policy: a snapshot after every 100
// events applied.
const DefaultEvery = 100

// Never, as Options.Every, saves snapshots only when the caller calls
// Repository.Snapshot.
const Never = -1

// DefaultMaxAttempts is the number of times Update tries a command by
// default: the first attempt plus retries after concurrency conflicts.
const DefaultMaxAttempts = 10

// MaxKindBytes is the longest aggregate kind New accepts.
const MaxKindBytes = 100

// ApplyFunc applies one event of an aggregate to its state. It must be a pure
// function of the state and the event: snapshots rely on replaying the same
// events giving the same state. An error stops Load (or is returned by
// Append, after the events were stored).
type ApplyFunc[S any] func(state *S, e eventstore.StoredEvent) error

// DecideFunc decides a command against an aggregate's current state (for
// Update): it returns the events to append, with AggregateID and
// AggregateVersion left zero (nil or empty: nothing to append), or an error
// that ends Update. It may be called again after a concurrency conflict, with
// the aggregate reloaded, so it must not have side effects that cannot be
// repeated.
type DecideFunc[S any] func(a *Aggregate[S]) ([]eventstore.Event, error)

// Options configure a Repository. A nil *Options means all defaults.
type Options[S any] struct {
	// StateVersion names the meaning of a snapshot's state. Bump it when
	// ApplyFunc changes what the state means (a change in S's shape is
	// detected without it): snapshots of other versions are then ignored.
	StateVersion int
	// Every is the snapshot policy: save a snapshot once this many events
	// have been applied since the last one. 0: DefaultEvery. Never: only
	// when the caller calls Snapshot.
	Every int
	// NewFunc returns the state of an aggregate that has no events yet (it
	// may, for example, make maps). nil: the zero S.
	NewFunc func(id string) S
	// EncodeFunc and DecodeFunc turn a state into a snapshot's content and
	// back. nil: encoding/json. Set both or neither. DecodeFunc starts from
	// NewFunc's state; an error from it makes Load ignore the snapshot.
	// Use them to encrypt a state that holds personal data (see the package
	// documentation).
	EncodeFunc func(ctx context.Context, id string, state *S) ([]byte, error)
	DecodeFunc func(ctx context.Context, id string, content []byte, state *S) error
	// PageSize is the number of events read per query. 0:
	// eventstore.DefaultPageSize.
	PageSize int
	// MaxAttempts bounds the attempts of Update. 0: DefaultMaxAttempts.
	MaxAttempts int
}

// Repository loads and updates the aggregates of one kind, whose state is S.
// It is safe for concurrent use; the Aggregates it returns are not.
type Repository[S any] struct {
	store       *eventstore.Store
	kind        string
	apply       ApplyFunc[S]
	stateVer    int
	shape       string
	every       int
	newFunc     func(id string) S
	encode      func(ctx context.Context, id string, state *S) ([]byte, error)
	decode      func(ctx context.Context, id string, content []byte, state *S) error
	pageSize    int
	maxAttempts int
}

// New returns a Repository for the aggregates of one kind on store. kind
// names them in snapshot keys ("account" gives keys "aggregate:account:ID"):
// 1 to MaxKindBytes bytes of UTF-8 without ':' or NUL. apply applies an event
// to a state.
func New[S any](store *eventstore.Store, kind string, apply ApplyFunc[S], opts *Options[S]) (*Repository[S], error) {
	if opts == nil {
		opts = &Options[S]{}
	}
	switch {
	case store == nil:
		return nil, fmt.Errorf("%w: nil store", ErrInvalidArgument)
	case apply == nil:
		return nil, fmt.Errorf("%w: nil ApplyFunc", ErrInvalidArgument)
	case kind == "" || len(kind) > MaxKindBytes || strings.ContainsAny(kind, ":\x00") || !utf8.ValidString(kind):
		return nil, fmt.Errorf("%w: kind %q must be 1 to %d bytes without ':' or NUL", ErrInvalidArgument, kind, MaxKindBytes)
	case (opts.EncodeFunc == nil) != (opts.DecodeFunc == nil):
		return nil, fmt.Errorf("%w: set both EncodeFunc and DecodeFunc, or neither", ErrInvalidArgument)
	case opts.Every < Never:
		return nil, fmt.Errorf("%w: Every must be positive, 0 (default) or Never, got %d", ErrInvalidArgument, opts.Every)
	case opts.PageSize < 0 || opts.PageSize > eventstore.MaxLimit:
		return nil, fmt.Errorf("%w: PageSize must be 0 to %d, got %d", ErrInvalidArgument, eventstore.MaxLimit, opts.PageSize)
	case opts.MaxAttempts < 0:
		return nil, fmt.Errorf("%w: MaxAttempts must not be negative, got %d", ErrInvalidArgument, opts.MaxAttempts)
	}
	r := &Repository[S]{
		store:       store,
		kind:        kind,
		apply:       apply,
		stateVer:    opts.StateVersion,
		shape:       shapeOf(reflect.TypeFor[S]()),
		every:       opts.Every,
		newFunc:     opts.NewFunc,
		encode:      opts.EncodeFunc,
		decode:      opts.DecodeFunc,
		pageSize:    opts.PageSize,
		maxAttempts: opts.MaxAttempts,
	}
	if r.every == 0 {
		r.every = DefaultEvery
	}
	if r.pageSize == 0 {
		r.pageSize = eventstore.DefaultPageSize
	}
	if r.maxAttempts == 0 {
		r.maxAttempts = DefaultMaxAttempts
	}
	return r, nil
}

// Aggregate is an aggregate's state as rebuilt by a Repository, with the
// version and position of the last event applied. It is not safe for
// concurrent use.
type Aggregate[S any] struct {
	// ID is the aggregate id (the events' AggregateID).
	ID string
	// State is the state after the last applied event.
	State S
	// Version is the AggregateVersion of the last applied event: the next
	// event is Version+1. 0: the aggregate has no events.
	Version int64
	// Position is the store position of the last applied event (0: none).
	Position int64
	// Loaded describes the Load that built this aggregate.
	Loaded LoadInfo
	// SnapshotErr is the error of the last snapshot the policy tried to save
	// for this aggregate, nil when it succeeded or none was due. A failed
	// snapshot never fails Load, Append or Update (the events are what
	// counts); the policy tries again at the next opportunity.
	SnapshotErr error

	sinceSnapshot int
}

// LoadInfo describes how Load built an aggregate.
type LoadInfo struct {
	// SnapshotVersion and SnapshotPosition are the version and position the
	// snapshot Load started from covered; both 0 when Load started from the
	// first event.
	SnapshotVersion  int64
	SnapshotPosition int64
	// EventsRead is the number of events Load read from the store.
	EventsRead int
	// Discarded, when not nil, is why a stored snapshot was ignored: it
	// matches ErrStateVersion or ErrInvalidSnapshot.
	Discarded error
}

// SinceSnapshot returns the number of events applied to the aggregate since
// the snapshot it was loaded from, or since the last snapshot saved of it.
func (a *Aggregate[S]) SinceSnapshot() int { return a.sinceSnapshot }

// Kind returns the repository's aggregate kind.
func (r *Repository[S]) Kind() string { return r.kind }

// Key returns the snapshot key of aggregate id: "aggregate:KIND:ID".
func (r *Repository[S]) Key(id string) string { return "aggregate:" + r.kind + ":" + id }

func (r *Repository[S]) fresh(id string) *Aggregate[S] {
	a := &Aggregate[S]{ID: id}
	if r.newFunc != nil {
		a.State = r.newFunc(id)
	}
	return a
}

// Load rebuilds aggregate id: from its latest usable snapshot, plus the
// aggregate's events after the snapshot's position, applied in order. An
// aggregate without events loads with Version 0 and NewFunc's state. When
// the policy says a snapshot is due (Every events applied since the last
// one), Load saves one; its failure is reported in Aggregate.SnapshotErr,
// not as an error.
func (r *Repository[S]) Load(ctx context.Context, id string) (*Aggregate[S], error) {
	if err := r.checkID(id); err != nil {
		return nil, err
	}
	a, err := r.fromSnapshot(ctx, id)
	if err != nil {
		return nil, err
	}
	err = r.replay(ctx, a)
	if a.Loaded.SnapshotVersion > 0 && (errors.Is(err, eventstore.ErrCursorBeyondEnd) || errors.Is(err, errVersionGap)) {
		// The snapshot does not belong to this store's history (an older
		// backup was restored, the events were replaced): start over from
		// the first event.
		read := a.Loaded.EventsRead
		a = r.fresh(id)
		a.Loaded.EventsRead = read
		a.Loaded.Discarded = fmt.Errorf("%w: %w", ErrInvalidSnapshot, err)
		err = r.replay(ctx, a)
	}
	if err != nil {
		return nil, err
	}
	r.policy(ctx, a)
	return a, nil
}

var errVersionGap = errors.New("the events after the snapshot do not continue its version")

// fromSnapshot returns the aggregate as its stored snapshot has it, or a
// fresh one when there is no snapshot or it cannot be used (Loaded.Discarded
// then says why).
func (r *Repository[S]) fromSnapshot(ctx context.Context, id string) (*Aggregate[S], error) {
	content, found, err := r.store.LoadSnapshot(ctx, r.Key(id))
	if err != nil {
		return nil, fmt.Errorf("load snapshot of %s: %w", id, err)
	}
	a := r.fresh(id)
	if !found {
		return a, nil
	}
	h, state, err := splitSnapshot(content)
	if err == nil {
		err = r.checkHeader(h, id)
	}
	if err != nil {
		a.Loaded.Discarded = err
		return a, nil
	}
	if r.decode != nil {
		err = r.decode(ctx, id, state, &a.State)
	} else {
		err = jsonUnmarshal(state, &a.State)
	}
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		a = r.fresh(id) // DecodeFunc may have changed the state before failing
		a.Loaded.Discarded = fmt.Errorf("%w: decode state: %w", ErrInvalidSnapshot, err)
		return a, nil
	}
	a.Version, a.Position = h.Version, h.Position
	a.Loaded.SnapshotVersion, a.Loaded.SnapshotPosition = h.Version, h.Position
	return a, nil
}

// replay applies the aggregate's events after a.Position.
func (r *Repository[S]) replay(ctx context.Context, a *Aggregate[S]) error {
	f := eventstore.Filter{AggregateIDs: []string{a.ID}, Cursor: eventstore.CursorAt(a.Position), Limit: r.pageSize}
	fromSnapshot := a.Position > 0
	for e, err := range r.store.Events(ctx, f) {
		if err != nil {
			return fmt.Errorf("load events of %s after %d: %w", a.ID, a.Position, err)
		}
		a.Loaded.EventsRead++
		if fromSnapshot && a.Loaded.EventsRead == 1 && e.AggregateVersion <= a.Version {
			return fmt.Errorf("%w: version %d at position %d, snapshot at version %d", errVersionGap, e.AggregateVersion, e.Position, a.Version)
		}
		if err := r.apply(&a.State, e); err != nil {
			return fmt.Errorf("apply event %d (%s, version %d) to %s: %w", e.Position, e.Type, e.AggregateVersion, a.ID, err)
		}
		a.Version, a.Position = e.AggregateVersion, e.Position
		a.sinceSnapshot++
	}
	return nil
}

// Append stores events as aggregate a's next versions (AggregateID and
// AggregateVersion may be left zero; if set they must be a.ID and the next
// versions), atomically, and applies them to a. On a concurrency conflict it
// returns the store's *eventstore.ConflictError and leaves a unchanged: load
// the aggregate again and decide again (Update does this). If ApplyFunc fails
// the events are stored nevertheless: the error says so, and a must be loaded
// again. A due snapshot is saved as in Load.
func (r *Repository[S]) Append(ctx context.Context, a *Aggregate[S], events ...eventstore.Event) ([]eventstore.StoredEvent, error) {
	if a == nil {
		return nil, fmt.Errorf("%w: nil aggregate", ErrInvalidArgument)
	}
	if len(events) == 0 {
		return nil, nil
	}
	batch := make([]eventstore.Event, len(events))
	for i, e := range events {
		want := a.Version + int64(i) + 1
		switch {
		case e.AggregateID != "" && e.AggregateID != a.ID:
			return nil, &eventstore.InvalidEventError{Index: i, Field: "aggregateId",
				Reason: fmt.Sprintf("is %q, appending to aggregate %q", e.AggregateID, a.ID)}
		case e.AggregateVersion != 0 && e.AggregateVersion != want:
			return nil, &eventstore.InvalidEventError{Index: i, Field: "aggregateVersion",
				Reason: fmt.Sprintf("is %d, the aggregate's next version is %d", e.AggregateVersion, want)}
		}
		e.AggregateID, e.AggregateVersion = a.ID, want
		batch[i] = e
	}
	stored, err := r.store.SaveEvents(ctx, batch)
	if err != nil {
		return nil, err
	}
	for _, e := range stored {
		if err := r.apply(&a.State, e); err != nil {
			return stored, fmt.Errorf("events stored, but apply event %d (%s, version %d) to %s failed (load the aggregate again): %w",
				e.Position, e.Type, e.AggregateVersion, a.ID, err)
		}
		a.Version, a.Position = e.AggregateVersion, e.Position
		a.sinceSnapshot++
	}
	r.policy(ctx, a)
	return stored, nil
}

// Outcome is the result of Update.
type Outcome[S any] struct {
	// Aggregate is the aggregate after the appended events.
	Aggregate *Aggregate[S]
	// Events are the events appended (none when decide returned none).
	Events []eventstore.StoredEvent
	// Conflicts is the number of concurrency conflicts that made Update
	// load the aggregate and decide again.
	Conflicts int
}

// Update runs a command against aggregate id: it loads the aggregate, calls
// decide, and appends the events decide returns. When another writer appended
// to the aggregate in between (a concurrency conflict) it loads the aggregate
// again and calls decide again, up to Options.MaxAttempts attempts in all;
// after that it returns the last conflict (errors.Is(err,
// eventstore.ErrConflict)). An error from decide is returned as is, with the
// outcome so far.
func (r *Repository[S]) Update(ctx context.Context, id string, decide DecideFunc[S]) (*Outcome[S], error) {
	if decide == nil {
		return nil, fmt.Errorf("%w: nil DecideFunc", ErrInvalidArgument)
	}
	out := &Outcome[S]{}
	for attempt := 1; ; attempt++ {
		a, err := r.Load(ctx, id)
		if err != nil {
			return out, err
		}
		out.Aggregate = a
		events, err := decide(a)
		if err != nil {
			return out, err
		}
		stored, err := r.Append(ctx, a, events...)
		if err == nil {
			out.Events = stored
			return out, nil
		}
		if !errors.Is(err, eventstore.ErrConflict) {
			return out, err
		}
		if attempt >= r.maxAttempts {
			return out, fmt.Errorf("update %s: gave up after %d attempts: %w", id, attempt, err)
		}
		out.Conflicts++
		if err := ctx.Err(); err != nil {
			return out, err
		}
	}
}

// Snapshot saves a snapshot of a's current state now, whatever the policy.
// An aggregate without events has nothing to save: Snapshot returns nil.
func (r *Repository[S]) Snapshot(ctx context.Context, a *Aggregate[S]) error {
	if a == nil {
		return fmt.Errorf("%w: nil aggregate", ErrInvalidArgument)
	}
	if a.Version == 0 {
		return nil
	}
	var state []byte
	var err error
	if r.encode != nil {
		state, err = r.encode(ctx, a.ID, &a.State)
	} else {
		state, err = jsonMarshal(&a.State)
	}
	if err != nil {
		return fmt.Errorf("encode snapshot of %s: %w", a.ID, err)
	}
	h := header{
		Format:       formatV1,
		Kind:         r.kind,
		ID:           a.ID,
		StateVersion: r.stateVer,
		Shape:        r.shape,
		Version:      a.Version,
		Position:     a.Position,
	}
	content, err := joinSnapshot(h, state)
	if err != nil {
		return fmt.Errorf("encode snapshot of %s: %w", a.ID, err)
	}
	if err := r.store.SaveSnapshot(ctx, r.Key(a.ID), content); err != nil {
		return fmt.Errorf("save snapshot of %s at version %d: %w", a.ID, a.Version, err)
	}
	a.sinceSnapshot = 0
	return nil
}

// DropSnapshot deletes the snapshot of aggregate id, if any. The next Load
// reads all its events.
func (r *Repository[S]) DropSnapshot(ctx context.Context, id string) error {
	if err := r.checkID(id); err != nil {
		return err
	}
	if err := r.store.DropSnapshot(ctx, r.Key(id)); err != nil {
		return fmt.Errorf("drop snapshot of %s: %w", id, err)
	}
	return nil
}

// policy saves a snapshot when one is due, recording the outcome in a.
func (r *Repository[S]) policy(ctx context.Context, a *Aggregate[S]) {
	if r.every == Never || a.sinceSnapshot < r.every {
		return
	}
	a.SnapshotErr = r.Snapshot(ctx, a)
}

func (r *Repository[S]) checkID(id string) error {
	if id == "" || len(id) > eventstore.MaxAggregateIDBytes {
		return fmt.Errorf("%w: aggregate id must be 1 to %d bytes, got %d", ErrInvalidArgument, eventstore.MaxAggregateIDBytes, len(id))
	}
	return nil
}

func (r *Repository[S]) checkHeader(h header, id string) error {
	switch {
	case h.Kind != r.kind || h.ID != id:
		return fmt.Errorf("%w: it belongs to %s %q", ErrInvalidSnapshot, h.Kind, h.ID)
	case h.Version < 1 || h.Position < 1:
		return fmt.Errorf("%w: version %d, position %d", ErrInvalidSnapshot, h.Version, h.Position)
	case h.StateVersion != r.stateVer:
		return fmt.Errorf("%w: state version %d, want %d", ErrStateVersion, h.StateVersion, r.stateVer)
	case h.Shape != r.shape:
		return fmt.Errorf("%w: state shape %s, want %s (the state type changed)", ErrStateVersion, h.Shape, r.shape)
	}
	return nil
}
