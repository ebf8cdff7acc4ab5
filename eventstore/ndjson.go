package eventstore

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/bits"
	"strconv"
	"strings"

	"github.com/esctl/esctl/eventstore/internal/jsonx"

	"github.com/esctl/esctl/eventstore/driver"
)

// The NDJSON event format (docs/ndjson-format.md): one JSON object per line,
// terminated by "\n", with reSolve's keys in reSolve's order plus position:
//
//	{"threadCounter":0,"threadId":4,"type":"T","timestamp":1,"aggregateId":"a","aggregateVersion":1,"payload":{},"position":5}
//
// threadId is (position-1) mod 256 and threadCounter (position-1) div 256,
// so that reSolve reads the file; reSolve's own files have no position and
// get positions in file order.

// DefaultMaxLineBytes is the default limit on one NDJSON line.
const DefaultMaxLineBytes = 64 << 20

// lineReader reads NDJSON lines strictly: every line ends with "\n" and fits
// maxLine bytes. It counts lines and byte offsets and hashes the lines the
// caller accepts, so that an import can record a verifiable prefix hash.
type lineReader struct {
	br      *bufio.Reader
	maxLine int
	offset  int64 // byte offset of the next line
	line    int64 // number of the next line
	hash    hash.Hash
	buf     []byte
}

func newLineReader(r io.Reader, maxLine int, offset, line int64, h hash.Hash) *lineReader {
	if h == nil {
		h = sha256.New()
	}
	return &lineReader{br: bufio.NewReaderSize(r, 1<<20), maxLine: maxLine, offset: offset, line: line, hash: h}
}

// next returns the next line without its "\n". The slice is valid until the
// next call. At the end of the input it returns io.EOF; a last line without
// "\n" is a *LineError (truncated).
func (lr *lineReader) next() ([]byte, error) {
	lr.buf = lr.buf[:0]
	if lr.offset == 0 {
		// Compressed input is recognized before it reads as an endless
		// or cut-short line.
		if b, _ := lr.br.Peek(4); compressedReason(b) != "" {
			return nil, lr.errAt(0, "", compressedReason(b))
		}
	}
	for {
		chunk, err := lr.br.ReadSlice('\n')
		if len(lr.buf)+len(chunk) > lr.maxLine+1 {
			return nil, lr.errAt(-1, "", fmt.Sprintf("line is longer than the limit of %d bytes", lr.maxLine))
		}
		switch {
		case err == nil:
			var line []byte
			if len(lr.buf) == 0 {
				line = chunk
			} else {
				lr.buf = append(lr.buf, chunk...)
				line = lr.buf
			}
			return line[:len(line)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			lr.buf = append(lr.buf, chunk...)
		case errors.Is(err, io.EOF):
			lr.buf = append(lr.buf, chunk...)
			if len(lr.buf) == 0 {
				return nil, io.EOF
			}
			return nil, lr.errAt(-1, "", fmt.Sprintf("truncated last line: %d bytes without a final newline (the file may be cut short; if it is complete, end it with a newline)", len(lr.buf)))
		default:
			return nil, err
		}
	}
}

// accept moves past an accepted line (given without its "\n"), adding it to
// the prefix hash; a rejected line is never accepted, so the hash always
// covers exactly the source's first offset bytes.
func (lr *lineReader) accept(line []byte) {
	lr.hash.Write(line)
	lr.hash.Write(newline)
	lr.offset += int64(len(line)) + 1
	lr.line++
}

var newline = []byte{'\n'}

func (lr *lineReader) errAt(column int, field, reason string) *LineError {
	return &LineError{Line: lr.line, Offset: lr.offset, Column: column, Field: field, Reason: reason}
}

// hashState returns the serialized state of the prefix hash.
func (lr *lineReader) hashState() []byte {
	b, err := lr.hash.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		panic(err) // sha256 state always marshals
	}
	return b
}

// restoreHash returns a sha256 hash continued from a serialized state.
func restoreHash(state []byte) (hash.Hash, error) {
	h := sha256.New()
	if len(state) == 0 {
		return h, nil
	}
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(state); err != nil {
		return nil, fmt.Errorf("restore the import's prefix hash: %w", err)
	}
	return h, nil
}

// compressedReason says why input that starts with b is refused when it is
// gzip or zstd data, and what to do; "" otherwise.
func compressedReason(b []byte) string {
	const todo = ": an esctl backup restores with esctl restore --in FILE; other files: decompress first (%s FILE | esctl import)"
	switch {
	case bytes.HasPrefix(b, []byte{0x1f, 0x8b}):
		return "the input is gzip-compressed" + fmt.Sprintf(todo, "gunzip -c")
	case bytes.HasPrefix(b, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return "the input is zstd-compressed" + fmt.Sprintf(todo, "zstd -dc")
	}
	return ""
}

// checkLineFrame rejects what is wrong with a line as a whole, before JSON:
// compressed input, a byte-order mark, blank lines and CRLF endings.
func checkLineFrame(line []byte, first bool) (column int, reason string) {
	if first {
		if reason := compressedReason(line); reason != "" {
			return 0, reason
		}
		switch {
		case bytes.HasPrefix(line, []byte{0xef, 0xbb, 0xbf}):
			return 0, "UTF-8 byte order mark at the start of the input (remove it)"
		}
	}
	if len(bytes.TrimSpace(line)) == 0 {
		return 0, "blank line"
	}
	if line[len(line)-1] == '\r' {
		return len(line) - 1, `CRLF line ending ("\r\n"): lines must end with "\n" only`
	}
	return -1, ""
}

// lineEvent is an event line as parsed.
type lineEvent struct {
	Event
	position      int64
	hasPosition   bool
	threadID      int64
	threadCounter int64
	hasThreadID   bool
	hasCounter    bool
}

var eventKeys = []string{"threadCounter", "threadId", "type", "timestamp", "aggregateId", "aggregateVersion", "payload", "position"}

// lineErr builds the error of a line the caller locates.
type lineErr struct {
	column int
	field  string
	reason string
}

func (e *lineErr) Error() string { return e.reason }

func jsonLineErr(err error, field string) *lineErr {
	var se *jsonx.SyntaxError
	if errors.As(err, &se) {
		return &lineErr{column: se.Offset, field: field, reason: se.Msg}
	}
	return &lineErr{column: -1, field: field, reason: err.Error()}
}

// unknownKey explains an unexpected key, naming a case-variant match.
func unknownKey(key string, known []string) string {
	for _, k := range known {
		if strings.EqualFold(k, key) {
			return fmt.Sprintf("unknown key %q (keys are case-sensitive: did you mean %q?)", key, k)
		}
	}
	return fmt.Sprintf("unknown key %q (expected only %s)", key, strings.Join(known, ", "))
}

// parseEventLine parses one event line. Every value keeps its exact form:
// strings are decoded, integers must be exact int64 integers, and the
// payload is validated and kept as its compact JSON text.
func parseEventLine(line []byte, maxPayload int) (*lineEvent, *lineErr) {
	return parseLine(line, maxPayload, false)
}

// parseLine is parseEventLine; with versionless, aggregateVersion may be
// absent (then 0; an incremental import assigns versions).
func parseLine(line []byte, maxPayload int, versionless bool) (*lineEvent, *lineErr) {
	d := lineDecoder{maxPayload: maxPayload, versionless: versionless}
	ev := &lineEvent{}
	if lerr := d.parse(ev, line); lerr != nil {
		return nil, lerr
	}
	return ev, nil
}

// lineDecoder parses event lines as parseLine does, reusing what it can
// from one line to the next, for imports that read millions of them: event
// types are interned, and with an arena the payloads go into it instead of
// one allocation each.
type lineDecoder struct {
	maxPayload  int
	versionless bool
	arena       *payloadArena     // nil: each payload is allocated
	types       map[string]string // interned event types
}

// maxInternedTypes bounds the interned event types (a store has a few
// dozen; a file with a new type on every line must not grow the map).
const maxInternedTypes = 1024

// The envelope keys, as bits of lineDecoder.parse's seen set, in the
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
	}
	return 0
}

// parse parses line into *ev (which it overwrites). The strings and the
// payload it sets do not refer to line.
func (d *lineDecoder) parse(ev *lineEvent, line []byte) *lineErr {
	*ev = lineEvent{}
	p := jsonx.NewParser(line)
	if p.Peek() != '{' {
		if _, err := p.Value(nil); err != nil {
			return jsonLineErr(err, "")
		}
		return &lineErr{column: 0, reason: "a line must be a JSON object"}
	}
	if err := p.Expect('{'); err != nil {
		return jsonLineErr(err, "")
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
				return jsonLineErr(err, "")
			}
			break
		}
	}
	if !p.AtEnd() {
		return &lineErr{column: p.Offset(), reason: "unexpected data after the JSON object (two values on one line?)"}
	}
	for _, k := range []struct {
		bit  int
		name string
	}{{keyType, "type"}, {keyTimestamp, "timestamp"}, {keyAggregateID, "aggregateId"}, {keyAggregateVersion, "aggregateVersion"}} {
		if seen&k.bit == 0 && !(d.versionless && k.bit == keyAggregateVersion) {
			return &lineErr{column: -1, field: k.name, reason: "is missing"}
		}
	}
	if d.versionless && seen&keyAggregateVersion == 0 {
		ev.AggregateVersion = 1 // for validation only: the import assigns versions
	}
	if ev.hasPosition && ev.position < 1 {
		return &lineErr{column: -1, field: "position", reason: fmt.Sprintf("must be at least 1, got %d", ev.position)}
	}
	if ev.hasThreadID && (ev.threadID < 0 || ev.threadID > 255) {
		return &lineErr{column: -1, field: "threadId", reason: fmt.Sprintf("must be 0 to 255, got %d", ev.threadID)}
	}
	if ev.hasCounter && ev.threadCounter < 0 {
		return &lineErr{column: -1, field: "threadCounter", reason: fmt.Sprintf("must not be negative, got %d", ev.threadCounter)}
	}
	if ev.hasPosition && (ev.hasThreadID || ev.hasCounter) {
		tid, tc := threadOf(ev.position)
		if (ev.hasThreadID && ev.threadID != tid) || (ev.hasCounter && ev.threadCounter != tc) {
			return &lineErr{column: -1, field: "threadId", reason: fmt.Sprintf("threadId %d and threadCounter %d do not match position %d (expected %d and %d)",
				ev.threadID, ev.threadCounter, ev.position, tid, tc)}
		}
	}
	// The payload was validated and compacted as it was read.
	if err := validateEnvelope(0, &ev.Event, true); err != nil {
		var ie *InvalidEventError
		if errors.As(err, &ie) {
			return &lineErr{column: -1, field: ie.Field, reason: ie.Reason}
		}
		return &lineErr{column: -1, reason: err.Error()}
	}
	if ev.Payload == nil {
		ev.Payload = nullPayload // reSolve omits an undefined payload
	}
	return nil
}

// field parses one "key": value member of an event line of lineLen bytes.
func (d *lineDecoder) field(p *jsonx.Parser, ev *lineEvent, seen *int, lineLen int) *lineErr {
	p.SkipSpace()
	keyAt := p.Offset()
	rawKey, err := p.StringBytes(nil)
	if err != nil {
		return jsonLineErr(err, "")
	}
	bit := eventKeyBit(rawKey)
	if bit == 0 {
		// An unknown key: the first one is the line's error.
		key := string(rawKey)
		if err := p.Expect(':'); err != nil {
			return jsonLineErr(err, key)
		}
		return &lineErr{column: keyAt, reason: unknownKey(key, eventKeys)}
	}
	key := eventKeys[bits.TrailingZeros(uint(bit))]
	if *seen&bit != 0 {
		return &lineErr{column: keyAt, field: key, reason: fmt.Sprintf("duplicate key %q", key)}
	}
	*seen |= bit
	if err := p.Expect(':'); err != nil {
		return jsonLineErr(err, key)
	}
	p.SkipSpace()
	valueAt := p.Offset()
	switch bit {
	case keyType, keyAggregateID:
		if p.Peek() != '"' {
			return &lineErr{column: valueAt, field: key, reason: "must be a string"}
		}
		b, err := p.StringBytes(nil)
		if err != nil {
			return jsonLineErr(err, key)
		}
		if bit == keyType {
			ev.Type = d.internType(b)
		} else {
			ev.AggregateID = string(b)
		}
	case keyTimestamp, keyAggregateVersion, keyPosition, keyThreadID, keyThreadCounter:
		n, err := p.Int()
		if err != nil {
			return jsonLineErr(err, key)
		}
		switch bit {
		case keyTimestamp:
			ev.Timestamp = n
		case keyAggregateVersion:
			ev.AggregateVersion = n
		case keyPosition:
			ev.position, ev.hasPosition = n, true
		case keyThreadID:
			ev.threadID, ev.hasThreadID = n, true
		case keyThreadCounter:
			ev.threadCounter, ev.hasCounter = n, true
		}
	case keyPayload:
		var dst []byte
		if d.arena != nil {
			// The compact form is never longer than the line.
			dst = d.arena.room(lineLen)
		} else {
			dst = make([]byte, 0, 256)
		}
		v, err := p.Value(dst)
		if err != nil {
			return jsonLineErr(err, key)
		}
		if len(v) > d.maxPayload {
			return &lineErr{column: valueAt, field: key, reason: fmt.Sprintf("%d bytes exceeds the limit of %d bytes", len(v), d.maxPayload)}
		}
		if d.arena != nil {
			v = d.arena.keep(v)
		}
		ev.Payload = v
	}
	return nil
}

// internType returns b as a string, shared with earlier lines of the same
// type.
func (d *lineDecoder) internType(b []byte) string {
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

// payloadArena holds the payloads of one import batch in large chunks, so
// that a batch costs a few allocations instead of one per line. reset
// recycles the chunks once the batch is stored: nothing refers to a
// payload after its batch (ImportEventsParams).
type payloadArena struct {
	cur  []byte   // the chunk being filled
	used [][]byte // chunks filled in this batch, before cur
	free [][]byte // chunks of earlier batches, empty
}

// arenaChunk is the size of an arena chunk; a longer payload gets a chunk
// of its own.
const arenaChunk = 1 << 20

// room returns an empty slice of the arena with capacity for n bytes.
func (a *payloadArena) room(n int) []byte {
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
func (a *payloadArena) keep(b []byte) []byte {
	if cap(b) == cap(a.cur)-len(a.cur) { // b starts at the free part of cur
		a.cur = a.cur[:len(a.cur)+len(b)]
	}
	return b[:len(b):len(b)]
}

// reset makes every chunk free again, keeping the usual ones for reuse.
func (a *payloadArena) reset() {
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

// threadOf returns reSolve's threadId and threadCounter for a position.
func threadOf(position int64) (threadID, threadCounter int64) {
	return (position - 1) % 256, (position - 1) / 256
}

// appendEventLine appends e as one NDJSON line, "\n" included.
func appendEventLine(dst []byte, e *driver.StoredEvent) []byte {
	tid, tc := threadOf(e.Position)
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
	dst = append(dst, `,"position":`...)
	dst = strconv.AppendInt(dst, e.Position, 10)
	return append(dst, "}\n"...)
}
