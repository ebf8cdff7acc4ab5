package conformance

import (
	"fmt"
	"math"

	"github.com/esctl/esctl/internal/driver"
)

// The plan tests of the engines fill a store of n events with this layout,
// in their own SQL: event i (1..n) belongs to aggregate
// PlanAggregate(i % PlanAggregates) at version (i-1)/PlanAggregates+1, has
// type PlanType(i % PlanTypes) and timestamp PlanTimestamp(i), except the
// events at PlanRarePositions(n), whose type is PlanRareType.
const (
	PlanAggregates = 10_000
	PlanTypes      = 20
	PlanRareType   = "TYPE_RARE"
)

// PlanAggregate names aggregate k of the plan-test layout ("agg-k").
func PlanAggregate(k int) string { return fmt.Sprintf("agg-%d", k) }

// PlanType names type k of the plan-test layout ("TYPE_07").
func PlanType(k int) string { return fmt.Sprintf("TYPE_%02d", k) }

// PlanTimestamp is the timestamp of the event at position pos.
func PlanTimestamp(pos int64) int64 { return 1700000000000 + pos*10 }

// PlanRarePositions are the three positions, far apart, holding
// PlanRareType.
func PlanRarePositions(n int64) []int64 { return []int64{10, n / 2, n - 10} }

// Index names the index a read shape must be driven by.
type Index string

const (
	ByPosition  Index = "position"
	ByType      Index = "type"
	ByAggregate Index = "aggregate"
	ByTimestamp Index = "timestamp"
)

// ReadShape is one shape of event read an engine must plan as an ordered
// scan of one index, so that a page costs O(limit) on any store.
type ReadShape struct {
	Name   string
	Params *driver.ListEventsParams
	Latest bool // a LatestEvent read (Params carries only the filters)
	Index  Index
}

// ReadShapes returns the read shapes the plan tests check, on a store of n
// events with the plan-test layout.
func ReadShapes(n int64) []ReadShape {
	mid := n / 2
	types := func(k int) []string {
		out := make([]string, k)
		for i := range out {
			out[i] = PlanType(i * 3)
		}
		return out
	}
	aggs := func(k int) []string {
		out := make([]string, k)
		for i := range out {
			out[i] = PlanAggregate(i * 97)
		}
		return out
	}
	timeRead := func(start, finish int64, p driver.ListEventsParams) *driver.ListEventsParams {
		p.ByTime, p.AfterTimestamp, p.After = true, start-1, math.MaxInt64
		p.StartTime, p.FinishTime = &start, &finish
		return &p
	}
	rare := []string{PlanRareType}
	return []ReadShape{
		{"cursor, no filter", &driver.ListEventsParams{After: mid, Limit: 1000}, false, ByPosition},
		{"cursor, one type", &driver.ListEventsParams{After: mid, EventTypes: types(1), Limit: 1000}, false, ByType},
		{"cursor, a rare type", &driver.ListEventsParams{After: 0, EventTypes: rare, Limit: 1000}, false, ByType},
		{"cursor, three types", &driver.ListEventsParams{After: mid, EventTypes: types(3), Limit: 1000}, false, ByType},
		{"cursor, one aggregate (rehydration)", &driver.ListEventsParams{After: 0, AggregateIDs: aggs(1), Limit: 1000}, false, ByAggregate},
		{"cursor, one aggregate after a snapshot", &driver.ListEventsParams{After: n * 9 / 10, AggregateIDs: aggs(1), Limit: 1000}, false, ByAggregate},
		{"cursor, five aggregates and two types", &driver.ListEventsParams{After: mid, AggregateIDs: aggs(5), EventTypes: types(2), Limit: 1000}, false, ByAggregate},
		{"cursor, 40 types (ANY)", &driver.ListEventsParams{After: mid, EventTypes: append(types(7), aggs(33)...), Limit: 1000}, false, ByPosition},
		{"time range", timeRead(PlanTimestamp(mid), PlanTimestamp(mid+5000), driver.ListEventsParams{Limit: 1000}), false, ByTimestamp},
		{"time range, one type", timeRead(PlanTimestamp(mid), PlanTimestamp(mid+50000), driver.ListEventsParams{EventTypes: types(1), Limit: 1000}), false, ByTimestamp},
		{"latest, no filter", &driver.ListEventsParams{Limit: 1}, true, ByPosition},
		{"latest, one type", &driver.ListEventsParams{EventTypes: types(1), Limit: 1}, true, ByType},
		{"latest, a rare type", &driver.ListEventsParams{EventTypes: rare, Limit: 1}, true, ByType},
		{"latest, one aggregate", &driver.ListEventsParams{AggregateIDs: aggs(1), Limit: 1}, true, ByAggregate},
		{"latest, two aggregates and a type", &driver.ListEventsParams{AggregateIDs: aggs(2), EventTypes: types(1), Limit: 1}, true, ByAggregate},
	}
}
