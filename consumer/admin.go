package consumer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/internal/access"
	"github.com/esctl/esctl/internal/driver"
)

// Info is what the store records of a consumer (esctl consumers list).
type Info struct {
	Name    string `json:"name"`
	Members int    `json:"members"`
	// Checkpoint is the lowest member checkpoint: every event up to it
	// was handled by its member.
	Checkpoint int64 `json:"checkpoint"`
	// Lag is the number of events after Checkpoint (the store's last
	// position minus Checkpoint); LagTime how long ago the first of them
	// was appended (its timestamp), 0 when caught up.
	Lag       int64         `json:"lag"`
	LagTime   time.Duration `json:"-"`
	LagMillis int64         `json:"lagMillis"`
	// Active counts the members whose lease is held.
	Active int `json:"active"`
	// Parked counts the parked events.
	Parked       int64        `json:"parked"`
	MemberStates []MemberInfo `json:"memberStates"`
}

// MemberInfo is one member's row.
type MemberInfo struct {
	Member     int       `json:"member"`
	Checkpoint int64     `json:"checkpoint"`
	Lag        int64     `json:"lag"`
	Holder     string    `json:"holder,omitempty"` // the lease holder while the lease is live
	LeaseUntil time.Time `json:"leaseUntil,omitzero"`
	UpdatedAt  time.Time `json:"updatedAt"`
}

// List returns every consumer the store records, by name.
func List(ctx context.Context, s *eventstore.Store) ([]Info, error) {
	return list(ctx, s, "")
}

// Get returns one consumer; ErrNotFound when the store has no record of it.
func Get(ctx context.Context, s *eventstore.Store, name string) (*Info, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	infos, err := list(ctx, s, name)
	if err != nil {
		return nil, err
	}
	if len(infos) == 0 {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	return &infos[0], nil
}

func list(ctx context.Context, s *eventstore.Store, name string) ([]Info, error) {
	d, err := storeDriver(ctx, s)
	if err != nil {
		return nil, err
	}
	l, err := d.ListConsumers(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("list consumers: %w", err)
	}
	now := engineNow(l)
	st, err := d.ReadState(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the store's state: %w", err)
	}
	parked, err := d.CountParked(ctx)
	if err != nil {
		return nil, fmt.Errorf("count parked events: %w", err)
	}
	var out []Info
	for _, r := range l.Rows {
		if len(out) == 0 || out[len(out)-1].Name != r.Name {
			out = append(out, Info{Name: r.Name, Members: r.Members, Checkpoint: r.Position, Parked: parked[r.Name]})
		}
		in := &out[len(out)-1]
		m := MemberInfo{Member: r.Member, Checkpoint: r.Position, Lag: max(st.LastPosition-r.Position, 0), UpdatedAt: time.UnixMilli(r.UpdatedAt)}
		if r.Holder != "" && r.LeaseUntil > now {
			m.Holder, m.LeaseUntil = r.Holder, time.UnixMilli(r.LeaseUntil)
			in.Active++
		}
		in.Checkpoint = min(in.Checkpoint, r.Position)
		in.MemberStates = append(in.MemberStates, m)
	}
	for i := range out {
		in := &out[i]
		in.Lag = max(st.LastPosition-in.Checkpoint, 0)
		if in.Lag > 0 {
			page, err := s.LoadEvents(ctx, eventstore.Filter{Cursor: eventstore.CursorAt(in.Checkpoint), Limit: 1})
			if err != nil {
				return nil, fmt.Errorf("read the first event after consumer %q's checkpoint: %w", in.Name, err)
			}
			if len(page.Events) > 0 {
				in.LagTime = max(time.Duration(now-page.Events[0].Timestamp)*time.Millisecond, 0)
				in.LagMillis = in.LagTime.Milliseconds()
			}
		}
	}
	return out, nil
}

// engineNow is the clock leases are compared with: the engine's when it
// reports one (PostgreSQL), else this machine's.
func engineNow(l *driver.ConsumerList) int64 {
	if l.Now != 0 {
		return l.Now
	}
	return nowMillis()
}

// checkStopped returns a *LeaseHeldError when a member of the consumer
// holds a live lease.
func checkStopped(ctx context.Context, d driver.Driver, name string) ([]driver.ConsumerRow, error) {
	l, err := d.ListConsumers(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("read consumer %q: %w", name, err)
	}
	if len(l.Rows) == 0 {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	now := engineNow(l)
	for _, r := range l.Rows {
		if r.Holder != "" && r.LeaseUntil > now {
			return l.Rows, &LeaseHeldError{Name: name, Member: r.Member, Holder: r.Holder, Until: time.UnixMilli(r.LeaseUntil)}
		}
	}
	return l.Rows, nil
}

// AdminOptions are the options of Reset, Resize and Delete.
type AdminOptions struct {
	// Force runs the operation while members run: their leases are
	// cleared, so that they stop at their next checkpoint (which is not
	// saved) and start again from the new state.
	Force bool
	// DryRun runs every check the operation makes (the consumer exists,
	// no member holds a live lease unless Force, the position is in the
	// store) and returns what it would return, writing nothing.
	DryRun bool
}

func (o *AdminOptions) force() bool  { return o != nil && o.Force }
func (o *AdminOptions) dryRun() bool { return o != nil && o.DryRun }

// Start and End are the positions Reset takes for the start and the end
// of the store.
const (
	Start int64 = 0
	End   int64 = -1
)

// Reset sets every member's checkpoint to position (Start, End: the
// store's last position, or a position <= the last), for every member:
// the consumer handles the events after it next. Members must be stopped
// unless opts.Force.
func Reset(ctx context.Context, s *eventstore.Store, name string, position int64, opts *AdminOptions) (int64, error) {
	if err := ValidateName(name); err != nil {
		return 0, err
	}
	d, err := storeDriver(ctx, s)
	if err != nil {
		return 0, err
	}
	if _, err := checkStopped(ctx, d, name); err != nil && !(opts.force() && isHeld(err)) {
		return 0, err
	}
	st, err := d.ReadState(ctx)
	if err != nil {
		return 0, err
	}
	switch {
	case position == End:
		position = st.LastPosition
	case position < 0:
		return 0, fmt.Errorf("consumer %q: reset to position %d: use 0 (start), -1 (end) or a position", name, position)
	case position > st.LastPosition:
		return 0, &eventstore.CursorBeyondEndError{Position: position, End: st.LastPosition}
	}
	if opts.dryRun() {
		return position, nil
	}
	if _, err := d.ResetConsumer(ctx, &driver.ResetConsumerParams{Name: name, Position: position, Now: nowMillis()}); err != nil {
		return 0, fmt.Errorf("reset consumer %q: %w", name, err)
	}
	return position, nil
}

func isHeld(err error) bool {
	var lhe *LeaseHeldError
	return errors.As(err, &lhe)
}

// Resize changes the consumer's group to members members, all starting
// from the lowest checkpoint of the old ones (nothing is skipped; events
// that some old member had handled are handled again by their new owner).
// Members must be stopped unless opts.Force. It returns that checkpoint.
func Resize(ctx context.Context, s *eventstore.Store, name string, members int, opts *AdminOptions) (int64, error) {
	if err := ValidateName(name); err != nil {
		return 0, err
	}
	if members < 1 {
		return 0, fmt.Errorf("consumer %q: resize to %d members: use 1 or more", name, members)
	}
	d, err := storeDriver(ctx, s)
	if err != nil {
		return 0, err
	}
	rows, err := checkStopped(ctx, d, name)
	if err != nil && !(opts.force() && isHeld(err)) {
		return 0, err
	}
	from := rows[0].Position
	for _, r := range rows {
		from = min(from, r.Position)
	}
	if opts.dryRun() {
		return from, nil
	}
	if err := d.ResizeConsumer(ctx, &driver.CreateConsumerParams{Name: name, Members: members, Position: from, Now: nowMillis()}); err != nil {
		return 0, fmt.Errorf("resize consumer %q: %w", name, err)
	}
	return from, nil
}

// Delete removes the consumer's record and its parked events. Members
// must be stopped unless opts.Force.
func Delete(ctx context.Context, s *eventstore.Store, name string, opts *AdminOptions) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	d, err := storeDriver(ctx, s)
	if err != nil {
		return err
	}
	if _, err := checkStopped(ctx, d, name); err != nil && !(opts.force() && isHeld(err)) {
		return err
	}
	if opts.dryRun() {
		return nil
	}
	if _, err := d.DeleteConsumer(ctx, name); err != nil {
		return fmt.Errorf("delete consumer %q: %w", name, err)
	}
	return nil
}

// ParkedEvent is an event a consumer's handler failed on.
type ParkedEvent struct {
	Position    int64     `json:"position"`
	AggregateID string    `json:"aggregateId"`
	Error       string    `json:"error"`
	Attempts    int       `json:"attempts"`
	ParkedAt    time.Time `json:"parkedAt"`
	// Replay: a replay was requested and has not run yet.
	Replay bool `json:"replayRequested"`
}

// Parked lists a consumer's parked events by position, after position
// after, at most limit (0: all).
func Parked(ctx context.Context, s *eventstore.Store, name string, after int64, limit int) ([]ParkedEvent, error) {
	if _, err := Get(ctx, s, name); err != nil {
		return nil, err
	}
	rows, err := access.Driver(s).ListParked(ctx, &driver.ListParkedParams{Name: name, After: after, Limit: limit})
	if err != nil {
		return nil, fmt.Errorf("list consumer %q's parked events: %w", name, err)
	}
	out := make([]ParkedEvent, len(rows))
	for i, r := range rows {
		out[i] = ParkedEvent{Position: r.Position, AggregateID: r.AggregateID, Error: r.Error, Attempts: r.Attempts, ParkedAt: time.UnixMilli(r.ParkedAt), Replay: r.Replay}
	}
	return out, nil
}

// Replay asks the running members of a consumer to handle its parked
// events again (those at positions, or all of them when positions is
// nil): each member replays its own within about
// Options.CheckpointInterval. A replayed event that succeeds leaves the
// parked list; one that fails again stays, with its new error. No
// checkpoint moves. It returns the number of events flagged.
func Replay(ctx context.Context, s *eventstore.Store, name string, positions []int64) (int, error) {
	if _, err := Get(ctx, s, name); err != nil {
		return 0, err
	}
	n, err := access.Driver(s).RequestReplay(ctx, &driver.RequestReplayParams{Name: name, Positions: positions})
	if err != nil {
		return 0, fmt.Errorf("request a replay of consumer %q's parked events: %w", name, err)
	}
	return n, nil
}

// storeDriver returns the driver under s after the Store's own checks: s is
// open and its schema is the version this build expects.
func storeDriver(ctx context.Context, s *eventstore.Store) (driver.Driver, error) {
	if err := access.Ready(ctx, s); err != nil {
		return nil, err
	}
	return access.Driver(s), nil
}
