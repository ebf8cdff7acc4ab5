package main

import (
	"fmt"
	"iter"
	"math/rand/v2"
	"strconv"

	"github.com/esctl/esctl/eventstore"
)

// corpusTypes are the event types of the corpus, in the order the generator
// picks them from.
var corpusTypes = []string{
	"AccountOpened", "AccountClosed", "MoneyDeposited", "MoneyWithdrawn", "TransferRequested",
	"TransferCompleted", "TransferFailed", "OwnerRenamed", "AddressChanged", "CardIssued",
	"CardBlocked", "CardUnblocked", "LimitRaised", "LimitLowered", "StatementIssued",
	"InterestAccrued", "FeeCharged", "OverdraftStarted", "OverdraftEnded", "NoteAdded",
}

// memoWords feed the free-text part of payloads, so that payloads differ in
// length and content.
var memoWords = []string{
	"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
	"juliett", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo",
	"sierra", "tango", "uniform", "victor", "whiskey", "xray", "yankee", "zulu",
	"caf\u00e9", "\u00fcber", "na\u00efve", "\u65e5\u672c",
}

// baseTimestamp is the corpus's first timestamp (2025-01-01T00:00:00Z, in
// ms); event i is 10 ms after event i-1.
const baseTimestamp = 1_735_689_600_000

// corpus describes a deterministic set of events: n events over a
// aggregates, each aggregate getting n/a or n/a+1 events with contiguous
// versions from 1, interleaved in a seeded random order; positions 1..n.
type corpus struct {
	Events     int
	Aggregates int
	Seed       uint64
	// AggregateBase is added to the aggregates' numbers (their ids), so
	// that corpora appended one after the other (bench-scale) have
	// aggregates of their own.
	AggregateBase int `json:"aggregateBase,omitempty"`
}

// aggregateID names aggregate k.
func aggregateID(k int) string { return fmt.Sprintf("account-%07d", k) }

// order returns, for each position-1, the index of the aggregate the event
// belongs to: every aggregate appears n/a or n/a+1 times, shuffled.
func (c corpus) order() []int32 {
	out := make([]int32, c.Events)
	for i := range out {
		out[i] = int32(i % c.Aggregates)
	}
	r := rand.New(rand.NewPCG(c.Seed, 0x5eed))
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// All yields the corpus's events in position order (positions 1..n). The
// payloads are already compact JSON, so the store keeps them unchanged.
func (c corpus) All() iter.Seq[eventstore.StoredEvent] {
	return func(yield func(eventstore.StoredEvent) bool) {
		order := c.order()
		versions := make([]int64, c.Aggregates)
		buf := make([]byte, 0, 512)
		for i, k := range order {
			versions[k]++
			pos := int64(i + 1)
			r := eventRand(c.Seed, pos)
			buf = appendPayload(buf[:0], r, c.AggregateBase+int(k), pos)
			e := eventstore.StoredEvent{
				Event: eventstore.Event{
					AggregateID:      aggregateID(c.AggregateBase + int(k)),
					AggregateVersion: versions[k],
					Type:             corpusTypes[r.IntN(len(corpusTypes))],
					Timestamp:        baseTimestamp + 10*pos,
					Payload:          append([]byte(nil), buf...),
				},
				Position: pos,
			}
			if !yield(e) {
				return
			}
		}
	}
}

// eventRand is the random source of one event: each event's content depends
// only on the seed and its position.
func eventRand(seed uint64, pos int64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, uint64(pos)))
}

// Payload returns a payload like the corpus's, for the append benchmarks.
func (c corpus) Payload(n int64) []byte {
	r := eventRand(c.Seed^0xa99e4d, n)
	return appendPayload(nil, r, r.IntN(max(c.Aggregates, 1)), n)
}

// aggregateSize is the number of events of aggregate k.
func (c corpus) aggregateSize(k int) int {
	n := c.Events / c.Aggregates
	if k < c.Events%c.Aggregates {
		n++
	}
	return n
}

// appendPayload writes a compact JSON object of about 200 bytes (150 to 260)
// whose numbers, text and array length vary with r.
func appendPayload(b []byte, r *rand.Rand, aggregate int, seq int64) []byte {
	b = append(b, `{"account":"`...)
	b = append(b, aggregateID(aggregate)...)
	b = append(b, `","amount":`...)
	b = strconv.AppendInt(b, r.Int64N(1_000_000), 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, 10+r.Int64N(90), 10)
	b = append(b, `,"currency":"`...)
	b = append(b, [...]string{"EUR", "USD", "GBP", "CHF", "JPY"}[r.IntN(5)]...)
	b = append(b, `","memo":"`...)
	for i, n := 0, 3+r.IntN(10); i < n; i++ {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, memoWords[r.IntN(len(memoWords))]...)
	}
	b = append(b, `","tags":[`...)
	for i, n := 0, r.IntN(4); i < n; i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, memoWords[r.IntN(len(memoWords))]...)
		b = append(b, '"')
	}
	b = append(b, `],"seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `,"approved":`...)
	b = strconv.AppendBool(b, r.IntN(2) == 0)
	b = append(b, `,"ref":"`...)
	b = strconv.AppendUint(b, r.Uint64(), 36)
	b = append(b, `"}`...)
	return b
}
