package ndjson

import (
	"fmt"
	"math/bits"
	"strconv"

	"github.com/esctl/esctl/estype"
	"github.com/esctl/esctl/internal/jsonx"
)

// The NDJSON event format (docs/ndjson-format.md): one JSON object per line,
// terminated by "\n", with reSolve's keys in reSolve's order plus position:
//
//	{"threadCounter":0,"threadId":4,"type":"T","timestamp":1,"aggregateId":"a","aggregateVersion":1,"payload":{},"position":5}
//
// An event with metadata has "metadata" (a JSON object) after "payload";
// a line without it is an event without metadata. threadId is
// (position-1) mod 256 and threadCounter (position-1) div 256,
// so that reSolve reads the file; reSolve's own files have no position and
// get positions in file order.

// nullPayload is the payload of a line without one (reSolve omits an
// undefined payload).
var nullPayload = []byte("null")

// Event is an event line as parsed.
type Event struct {
	estype.Event
	Position      int64
	HasPosition   bool
	ThreadID      int64
	ThreadCounter int64
	HasThreadID   bool
	HasCounter    bool
}

var eventKeys = []string{"threadCounter", "threadId", "type", "timestamp", "aggregateId", "aggregateVersion", "payload", "position", "metadata"}

// Limits are the size limits of a line's payload and metadata, in compact
// bytes (core.Limits).
type Limits struct {
	Payload  int
	Metadata int
}

// ParseEvent parses one event line. Every value keeps its exact form:
// strings are decoded, integers must be exact int64 integers, and the
// payload is validated and kept as its compact JSON text. With
// versionless, aggregateVersion may be absent (then 1 for check: an
// incremental import assigns versions). check, when set, validates the
// envelope (see Decoder.Check).
func ParseEvent(line []byte, lim Limits, versionless bool, check func(*estype.Event) *Error) (*Event, *Error) {
	d := Decoder{Limits: lim, Versionless: versionless, Check: check}
	ev := &Event{}
	if lerr := d.Parse(ev, line); lerr != nil {
		return nil, lerr
	}
	return ev, nil
}

// Decoder parses event lines as ParseEvent does, reusing what it can
// from one line to the next, for imports that read millions of them: event
// types are interned, and with an arena the payloads and metadata go into
// it instead of one allocation each.
type Decoder struct {
	Limits      Limits
	Versionless bool
	Arena       *Arena // nil: each payload is allocated
	// Check, when set, validates the envelope of a parsed line (the
	// payload is valid JSON already); a non-nil Error rejects the line.
	Check func(*estype.Event) *Error
	types map[string]string // interned event types
}

// maxInternedTypes bounds the interned event types (a store has a few
// dozen; a file with a new type on every line must not grow the map).
const maxInternedTypes = 1024

// The envelope keys, as bits of Decoder.parse's seen set, in the
// order of eventKeys.
const (
	keyThreadCounter = 1 << iota
	keyThreadID
	keyType
	keyTimestamp
	keyAggregateID
	keyAggregateVersion
	keyPayload
	keyPosition
	keyMetadata
)

// eventKeyBit returns the bit of an envelope key, or 0 for an unknown key.
func eventKeyBit(key []byte) int {
	switch string(key) {
	case "threadCounter":
		return keyThreadCounter
	case "threadId":
		return keyThreadID
	case "type":
		return keyType
	case "timestamp":
		return keyTimestamp
	case "aggregateId":
		return keyAggregateID
	case "aggregateVersion":
		return keyAggregateVersion
	case "payload":
		return keyPayload
	case "position":
		return keyPosition
	case "metadata":
		return keyMetadata
	}
	return 0
}

// Parse parses line into *ev (which it overwrites). The strings and the
// payload it sets do not refer to line.
func (d *Decoder) Parse(ev *Event, line []byte) *Error {
	*ev = Event{}
	p := jsonx.NewParser(line)
	if p.Peek() != '{' {
		if _, err := p.Value(nil); err != nil {
			return JSONError(err, "")
		}
		return &Error{Column: 0, Reason: "a line must be a JSON object"}
	}
	if err := p.Expect('{'); err != nil {
		return JSONError(err, "")
	}
	seen := 0
	p.SkipSpace()
	if p.Peek() == '}' {
		_ = p.Expect('}')
	} else {
		for {
			if lerr := d.field(p, ev, &seen, len(line)); lerr != nil {
				return lerr
			}
			p.SkipSpace()
			if p.Peek() == ',' {
				_ = p.Expect(',')
				continue
			}
			if err := p.Expect('}'); err != nil {
				return JSONError(err, "")
			}
			break
		}
	}
	if !p.AtEnd() {
		return &Error{Column: p.Offset(), Reason: "unexpected data after the JSON object (two values on one line?)"}
	}
	for _, k := range []struct {
		bit  int
		name string
	}{{keyType, "type"}, {keyTimestamp, "timestamp"}, {keyAggregateID, "aggregateId"}, {keyAggregateVersion, "aggregateVersion"}} {
		if seen&k.bit == 0 && !(d.Versionless && k.bit == keyAggregateVersion) {
			return &Error{Column: -1, Field: k.name, Reason: "is missing"}
		}
	}
	if d.Versionless && seen&keyAggregateVersion == 0 {
		ev.AggregateVersion = 1 // for validation only: the import assigns versions
	}
	if ev.HasPosition && ev.Position < 1 {
		return &Error{Column: -1, Field: "position", Reason: fmt.Sprintf("must be at least 1, got %d", ev.Position)}
	}
	if ev.HasThreadID && (ev.ThreadID < 0 || ev.ThreadID > 255) {
		return &Error{Column: -1, Field: "threadId", Reason: fmt.Sprintf("must be 0 to 255, got %d", ev.ThreadID)}
	}
	if ev.HasCounter && ev.ThreadCounter < 0 {
		return &Error{Column: -1, Field: "threadCounter", Reason: fmt.Sprintf("must not be negative, got %d", ev.ThreadCounter)}
	}
	if ev.HasPosition && (ev.HasThreadID || ev.HasCounter) {
		tid, tc := ThreadOf(ev.Position)
		if (ev.HasThreadID && ev.ThreadID != tid) || (ev.HasCounter && ev.ThreadCounter != tc) {
			return &Error{Column: -1, Field: "threadId", Reason: fmt.Sprintf("threadId %d and threadCounter %d do not match position %d (expected %d and %d)",
				ev.ThreadID, ev.ThreadCounter, ev.Position, tid, tc)}
		}
	}
	// The payload was validated and compacted as it was read.
	if d.Check != nil {
		if lerr := d.Check(&ev.Event); lerr != nil {
			return lerr
		}
	}
	if ev.Payload == nil {
		ev.Payload = nullPayload // reSolve omits an undefined payload
	}
	return nil
}

// field parses one "key": value member of an event line of lineLen bytes.
func (d *Decoder) field(p *jsonx.Parser, ev *Event, seen *int, lineLen int) *Error {
	p.SkipSpace()
	keyAt := p.Offset()
	rawKey, err := p.StringBytes(nil)
	if err != nil {
		return JSONError(err, "")
	}
	bit := eventKeyBit(rawKey)
	if bit == 0 {
		// An unknown key: the first one is the line's error.
		key := string(rawKey)
		if err := p.Expect(':'); err != nil {
			return JSONError(err, key)
		}
		return &Error{Column: keyAt, Reason: UnknownKey(key, eventKeys)}
	}
	key := eventKeys[bits.TrailingZeros(uint(bit))]
	if *seen&bit != 0 {
		return &Error{Column: keyAt, Field: key, Reason: fmt.Sprintf("duplicate key %q", key)}
	}
	*seen |= bit
	if err := p.Expect(':'); err != nil {
		return JSONError(err, key)
	}
	p.SkipSpace()
	valueAt := p.Offset()
	switch bit {
	case keyType, keyAggregateID:
		if p.Peek() != '"' {
			return &Error{Column: valueAt, Field: key, Reason: "must be a string"}
		}
		b, err := p.StringBytes(nil)
		if err != nil {
			return JSONError(err, key)
		}
		if bit == keyType {
			ev.Type = d.internType(b)
		} else {
			ev.AggregateID = string(b)
		}
	case keyTimestamp, keyAggregateVersion, keyPosition, keyThreadID, keyThreadCounter:
		n, err := p.Int()
		if err != nil {
			return JSONError(err, key)
		}
		switch bit {
		case keyTimestamp:
			ev.Timestamp = n
		case keyAggregateVersion:
			ev.AggregateVersion = n
		case keyPosition:
			ev.Position, ev.HasPosition = n, true
		case keyThreadID:
			ev.ThreadID, ev.HasThreadID = n, true
		case keyThreadCounter:
			ev.ThreadCounter, ev.HasCounter = n, true
		}
	case keyPayload:
		v, lerr := d.value(p, key, valueAt, lineLen, d.Limits.Payload)
		if lerr != nil {
			return lerr
		}
		ev.Payload = v
	case keyMetadata:
		switch p.Peek() {
		case '{':
		case 'n': // null: none
		default:
			if _, err := p.Value(nil); err != nil {
				return JSONError(err, key)
			}
			return &Error{Column: valueAt, Field: key, Reason: "must be a JSON object"}
		}
		v, lerr := d.value(p, key, valueAt, lineLen, d.Limits.Metadata)
		if lerr != nil {
			return lerr
		}
		if string(v) != "null" {
			ev.Metadata = v
		}
	}
	return nil
}

// value reads a JSON value of at most limit compact bytes, compacted.
func (d *Decoder) value(p *jsonx.Parser, key string, valueAt, lineLen, limit int) ([]byte, *Error) {
	var dst []byte
	if d.Arena != nil {
		// The compact form is never longer than the line.
		dst = d.Arena.room(lineLen)
	} else {
		dst = make([]byte, 0, 256)
	}
	v, err := p.Value(dst)
	if err != nil {
		return nil, JSONError(err, key)
	}
	if len(v) > limit {
		return nil, &Error{Column: valueAt, Field: key, Reason: fmt.Sprintf("%d bytes exceeds the limit of %d bytes", len(v), limit)}
	}
	if d.Arena != nil {
		v = d.Arena.keep(v)
	}
	return v, nil
}

// internType returns b as a string, shared with earlier lines of the same
// type.
func (d *Decoder) internType(b []byte) string {
	if s, ok := d.types[string(b)]; ok {
		return s
	}
	s := string(b)
	if d.types == nil {
		d.types = make(map[string]string)
	}
	if len(d.types) < maxInternedTypes {
		d.types[s] = s
	}
	return s
}

// Arena holds the payloads of one import batch in large chunks, so
// that a batch costs a few allocations instead of one per line. Reset
// recycles the chunks once the batch is stored: nothing refers to a
// payload after its batch (the driver reads it only during InsertEvents).
type Arena struct {
	cur  []byte   // the chunk being filled
	used [][]byte // chunks filled in this batch, before cur
	free [][]byte // chunks of earlier batches, empty
}

// arenaChunk is the size of an arena chunk; a longer payload gets a chunk
// of its own.
const arenaChunk = 1 << 20

// room returns an empty slice of the arena with capacity for n bytes.
func (a *Arena) room(n int) []byte {
	if cap(a.cur)-len(a.cur) < n {
		if a.cur != nil {
			a.used = append(a.used, a.cur)
		}
		if k := len(a.free); k > 0 && n <= arenaChunk {
			a.cur, a.free = a.free[k-1], a.free[:k-1]
		} else {
			a.cur = make([]byte, 0, max(n, arenaChunk))
		}
	}
	return a.cur[len(a.cur):len(a.cur)]
}

// keep records that b, a slice returned by room and appended to within its
// capacity, is in use, and returns it with its capacity clipped so that no
// append runs into the next payload.
func (a *Arena) keep(b []byte) []byte {
	if cap(b) == cap(a.cur)-len(a.cur) { // b starts at the free part of cur
		a.cur = a.cur[:len(a.cur)+len(b)]
	}
	return b[:len(b):len(b)]
}

// Reset makes every chunk free again, keeping the usual ones for reuse.
func (a *Arena) Reset() {
	if a.cur != nil {
		a.used = append(a.used, a.cur)
	}
	for _, c := range a.used {
		if cap(c) == arenaChunk {
			a.free = append(a.free, c[:0])
		}
	}
	clear(a.used)
	a.used, a.cur = a.used[:0], nil
}

// ThreadOf returns reSolve's threadId and threadCounter for a position.
func ThreadOf(position int64) (threadID, threadCounter int64) {
	return (position - 1) % 256, (position - 1) / 256
}

// AppendEvent appends e as one NDJSON line, "\n" included.
func AppendEvent(dst []byte, e *estype.StoredEvent) []byte {
	tid, tc := ThreadOf(e.Position)
	dst = append(dst, `{"threadCounter":`...)
	dst = strconv.AppendInt(dst, tc, 10)
	dst = append(dst, `,"threadId":`...)
	dst = strconv.AppendInt(dst, tid, 10)
	dst = append(dst, `,"type":`...)
	dst = jsonx.AppendString(dst, e.Type)
	dst = append(dst, `,"timestamp":`...)
	dst = strconv.AppendInt(dst, e.Timestamp, 10)
	dst = append(dst, `,"aggregateId":`...)
	dst = jsonx.AppendString(dst, e.AggregateID)
	dst = append(dst, `,"aggregateVersion":`...)
	dst = strconv.AppendInt(dst, e.AggregateVersion, 10)
	dst = append(dst, `,"payload":`...)
	dst = append(dst, e.Payload...)
	if e.Metadata != nil {
		dst = append(dst, `,"metadata":`...)
		dst = append(dst, e.Metadata...)
	}
	dst = append(dst, `,"position":`...)
	dst = strconv.AppendInt(dst, e.Position, 10)
	return append(dst, "}\n"...)
}
