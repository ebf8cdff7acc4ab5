package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"math"

	"github.com/esctl/esctl/internal/core"
	"github.com/esctl/esctl/internal/driver"
)

// Read limits.
const (
	// MaxLimit is the largest Filter.Limit LoadEvents accepts. To read more,
	// page with the returned cursor, or use Events, which pages for you.
	MaxLimit = 10_000
	// DefaultPageSize is the page size Events uses when Filter.Limit is 0.
	DefaultPageSize = 1_000
	// MaxFilterValues caps the length of Filter.AggregateIDs and EventTypes.
	MaxFilterValues = 1_000
)

// Filter selects events for LoadEvents, Events and LatestEvent.
//
// A read is either by cursor (Cursor, possibly empty for the start) or by
// time range (StartTime and/or FinishTime, both inclusive, in ms), never both.
// Cursor reads return events in position order and a cursor to resume from;
// time-range reads return events in (timestamp, position) order and no
// cursor (page them with Events, or by moving StartTime).
//
// AggregateIDs and EventTypes restrict the events (AND between the two, OR
// within each). nil means no restriction; an empty non-nil list matches
// nothing, as in reSolve. Payload and Metadata select by content, ANDed
// with the rest.
type Filter struct {
	// Cursor is where a cursor read starts: after the event it was taken
	// from (Page.Cursor, StoredEvent.Cursor, CursorAt). Empty means the
	// start of the store. A malformed cursor is *InvalidFilterError; one
	// past the end of the store is *CursorBeyondEndError. Not allowed with
	// StartTime or FinishTime.
	Cursor Cursor
	// StartTime, when set, makes the read a time-range read: events with a
	// timestamp >= *StartTime (ms since the Unix epoch). Not allowed with
	// Cursor; at most FinishTime.
	StartTime *int64
	// FinishTime, when set, makes the read a time-range read: events with
	// a timestamp <= *FinishTime (ms since the Unix epoch). Not allowed
	// with Cursor.
	FinishTime *int64
	// AggregateIDs keeps only the events of these aggregates (any of
	// them). nil: every aggregate; an empty non-nil list matches nothing.
	// At most MaxFilterValues ids.
	AggregateIDs []string
	// EventTypes keeps only the events of these types (any of them). nil:
	// every type; an empty non-nil list matches nothing. At most
	// MaxFilterValues types.
	EventTypes []string
	// Limit is the page size: required by LoadEvents (1..MaxLimit), optional
	// for Events (0: DefaultPageSize), ignored by LatestEvent.
	Limit int
	// Payload, when set, keeps only the events whose payload contains this
	// JSON object: {"accountId":"a-1"} matches a payload with that member
	// and value, whatever else it has. Containment is PostgreSQL jsonb's
	// @> on both engines: nested objects by containment, arrays when each
	// element of the filter's array is contained in one of the payload's
	// (in any order), numbers by value (1 matches 1.0), strings after
	// unescaping. It is decided in the database; on a large store add an
	// index (Store.CreateIndex, esctl index). Not a JSON object, or
	// invalid JSON, is *InvalidFilterError.
	Payload json.RawMessage
	// Metadata is Payload's filter for the events' metadata; an event
	// without metadata matches no Metadata filter.
	Metadata json.RawMessage

	// payload and metadata are the parsed Payload and Metadata (validate).
	payload, metadata *driver.Contains
}

// parseContains parses a Payload or Metadata filter by the store's JSON
// rules (as strict as for payloads).
func parseContains(field string, text json.RawMessage) (*driver.Contains, error) {
	if text == nil {
		return nil, nil
	}
	compact, err := core.CompactMetadata(text, driver.MaxContainsBytes)
	if err == nil && compact == nil {
		err = errors.New("must be a JSON object, not null")
	}
	if err != nil {
		return nil, &InvalidFilterError{Field: field, Reason: err.Error()}
	}
	c, err := driver.ParseContains(compact)
	if err != nil {
		return nil, &InvalidFilterError{Field: field, Reason: err.Error()}
	}
	return c, nil
}

// Page is the result of LoadEvents.
type Page struct {
	Events []StoredEvent
	// Cursor resumes reading right after the last returned event (or where
	// the read started, when the page is empty). Filtered reads advance the
	// cursor only over returned events. Empty for time-range reads.
	Cursor Cursor
}

func (f *Filter) byTime() bool { return f.StartTime != nil || f.FinishTime != nil }

// validate checks f and returns the cursor's position.
func (f *Filter) validate(requireLimit bool) (int64, error) {
	if f.byTime() && f.Cursor != "" {
		return 0, &InvalidFilterError{Reason: "startTime and finishTime are not allowed in cursor filter"}
	}
	if f.StartTime != nil && f.FinishTime != nil && *f.StartTime > *f.FinishTime {
		return 0, &InvalidFilterError{Field: "startTime", Reason: "Event filter start time cannot be later than finishTime"}
	}
	switch {
	case requireLimit && f.Limit == 0:
		return 0, &InvalidFilterError{Field: "limit", Reason: "is required (1 to " + fmt.Sprint(MaxLimit) + ")"}
	case f.Limit < 0:
		return 0, &InvalidFilterError{Field: "limit", Reason: fmt.Sprintf("must be at least 1, got %d", f.Limit)}
	case f.Limit > MaxLimit:
		return 0, &InvalidFilterError{Field: "limit", Reason: fmt.Sprintf("must be at most %d, got %d: page with the cursor, or use Events", MaxLimit, f.Limit)}
	}
	if len(f.AggregateIDs) > MaxFilterValues {
		return 0, &InvalidFilterError{Field: "aggregateIds", Reason: fmt.Sprintf("has %d values, more than the limit of %d", len(f.AggregateIDs), MaxFilterValues)}
	}
	if len(f.EventTypes) > MaxFilterValues {
		return 0, &InvalidFilterError{Field: "eventTypes", Reason: fmt.Sprintf("has %d values, more than the limit of %d", len(f.EventTypes), MaxFilterValues)}
	}
	pos, err := f.Cursor.Position()
	if err != nil {
		return 0, &InvalidFilterError{Field: "cursor", Reason: fmt.Sprintf("is malformed: %v", err), Err: err}
	}
	if f.payload, err = parseContains("payload", f.Payload); err != nil {
		return 0, err
	}
	if f.metadata, err = parseContains("metadata", f.Metadata); err != nil {
		return 0, err
	}
	return pos, nil
}

// Validate checks f as LoadEvents, Events and Subscribe do (Limit
// excepted): nil, or *InvalidFilterError naming the field.
func (f *Filter) Validate() error {
	c := *f
	_, err := c.validate(false)
	return err
}

// selectsContent reports a Payload or Metadata filter.
func (f *Filter) selectsContent() bool { return f.payload != nil || f.metadata != nil }

// listParams returns the driver parameters of the first page. A time read
// starts its (timestamp, position) keyset just below StartTime, so that the
// start bound is an index condition: (StartTime-1, MaxInt64) < (ts, pos)
// holds exactly when ts >= StartTime.
func (f *Filter) listParams(pos int64) *driver.ListEventsParams {
	p := &driver.ListEventsParams{
		After:          pos,
		AfterTimestamp: -1,
		ByTime:         f.byTime(),
		StartTime:      f.StartTime,
		FinishTime:     f.FinishTime,
		AggregateIDs:   f.AggregateIDs,
		EventTypes:     f.EventTypes,
		Payload:        f.payload,
		Metadata:       f.metadata,
		Limit:          f.Limit,
	}
	if p.ByTime {
		p.After = 0
		if f.StartTime != nil && *f.StartTime > 0 {
			p.AfterTimestamp, p.After = *f.StartTime-1, math.MaxInt64
		}
	}
	return p
}

// matchesNothing reports a filter with an empty non-nil list.
func (f *Filter) matchesNothing() bool {
	return (f.AggregateIDs != nil && len(f.AggregateIDs) == 0) || (f.EventTypes != nil && len(f.EventTypes) == 0)
}

// LoadEvents returns one page of events matching f. See Filter.
//
// A cursor read fails with *CursorBeyondEndError when the cursor points past
// the store's last position, instead of returning empty pages forever.
func (s *Store) LoadEvents(ctx context.Context, f Filter) (*Page, error) {
	pos, err := f.validate(true)
	if err != nil {
		return nil, err
	}
	if err := s.c.Begin(ctx); err != nil {
		return nil, err
	}
	defer s.c.Exit()
	if f.matchesNothing() {
		if f.byTime() {
			return &Page{}, nil
		}
		return &Page{Cursor: CursorAt(pos)}, nil
	}
	p := f.listParams(pos)
	res, err := s.c.R.ListEvents(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("load events after %d: %w", pos, err)
	}
	events := res.Events
	if p.ByTime {
		return &Page{Events: events}, nil
	}
	if pos > res.LastPosition {
		if err := s.beyondEnd(ctx, pos, res.LastPosition); err != nil {
			return nil, err
		}
		return &Page{Cursor: CursorAt(pos)}, nil // a replica behind the cursor
	}
	next := pos
	if n := len(events); n > 0 {
		next = events[n-1].Position
	}
	return &Page{Events: events, Cursor: CursorAt(next)}, nil
}

// Events returns an iterator over every event matching f, in the order
// LoadEvents uses, fetched in pages of f.Limit (0: DefaultPageSize). No
// database cursor stays open between pages, so the loop body may call the
// store (with SQLite's single writer connection an open row cursor would
// block it). Events appended while iterating are included when they match and
// come after the current page. An error ends the iteration after being
// yielded once.
func (s *Store) Events(ctx context.Context, f Filter) iter.Seq2[StoredEvent, error] {
	return func(yield func(StoredEvent, error) bool) {
		pos, err := f.validate(false)
		if err != nil {
			yield(StoredEvent{}, err)
			return
		}
		if f.matchesNothing() {
			return
		}
		p := f.listParams(pos)
		if p.Limit == 0 {
			p.Limit = DefaultPageSize
		}
		first := true
		for {
			res, err := s.listPage(ctx, p)
			if err != nil {
				yield(StoredEvent{}, err)
				return
			}
			if first && !p.ByTime && pos > res.LastPosition {
				if err := s.beyondEnd(ctx, pos, res.LastPosition); err != nil {
					yield(StoredEvent{}, err)
				}
				return // or a replica behind the cursor: nothing yet
			}
			first = false
			for i := range res.Events {
				if !yield(res.Events[i], nil) {
					return
				}
			}
			if len(res.Events) < p.Limit {
				return
			}
			last := res.Events[len(res.Events)-1]
			p.After = last.Position
			if p.ByTime {
				p.AfterTimestamp = last.Timestamp
			}
		}
	}
}

func (s *Store) listPage(ctx context.Context, p *driver.ListEventsParams) (*driver.ListEventsResult, error) {
	if err := s.c.Begin(ctx); err != nil {
		return nil, err
	}
	defer s.c.Exit()
	res, err := s.c.R.ListEvents(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("load events after %d: %w", p.After, err)
	}
	return res, nil
}

// beyondEnd is the answer to a cursor at pos past the end (end) of the
// database events are read from: *CursorBeyondEndError, unless that is a
// replica (Options.ReadURL) and pos is within the primary's end, which
// the replica has not reached yet (nil: it lags).
func (s *Store) beyondEnd(ctx context.Context, pos, end int64) error {
	if s.c.R == s.c.D {
		return &CursorBeyondEndError{Position: pos, End: end}
	}
	st, err := s.c.D.ReadState(ctx)
	if err != nil {
		return fmt.Errorf("read the primary's end: %w", err)
	}
	if pos > st.LastPosition {
		return &CursorBeyondEndError{Position: pos, End: st.LastPosition}
	}
	return nil
}

// LatestEvent returns the matching event with the highest position, or nil
// when none matches. Only f.AggregateIDs and f.EventTypes apply; the other
// fields must be zero.
func (s *Store) LatestEvent(ctx context.Context, f Filter) (*StoredEvent, error) {
	if f.Cursor != "" || f.byTime() || f.Limit != 0 {
		return nil, &InvalidFilterError{Reason: "LatestEvent uses only AggregateIDs, EventTypes, Payload and Metadata"}
	}
	if _, err := f.validate(false); err != nil {
		return nil, err
	}
	if err := s.c.Begin(ctx); err != nil {
		return nil, err
	}
	defer s.c.Exit()
	if f.matchesNothing() {
		return nil, nil
	}
	e, err := s.c.D.LatestEvent(ctx, &driver.LatestEventParams{AggregateIDs: f.AggregateIDs, EventTypes: f.EventTypes, Payload: f.payload, Metadata: f.metadata})
	if err != nil {
		return nil, fmt.Errorf("latest event: %w", err)
	}
	if e == nil {
		return nil, nil
	}
	return e, nil
}
