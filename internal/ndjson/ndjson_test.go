package ndjson

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/esctl/esctl/estype"
)

const maxPayload = 16 << 20

// enc encodes ev at pos.
func enc(ev estype.Event, pos int64) []byte {
	return AppendEvent(nil, &estype.StoredEvent{Event: ev, Position: pos})
}

const goodLineText = `{"threadCounter":0,"threadId":4,"type":"T","timestamp":5,"aggregateId":"a","aggregateVersion":1,"payload":{"z":[1,"é\u00e9"],"a":null},"position":5}`

func TestParseAndEncodeEventLine(t *testing.T) {
	t.Parallel()
	ev, lerr := ParseEvent([]byte(goodLineText), Limits{Payload: maxPayload, Metadata: maxPayload}, false, nil)
	if lerr != nil {
		t.Fatal(lerr)
	}
	got := enc(ev.Event, ev.Position)
	if string(got) != goodLineText+"\n" {
		t.Fatalf("re-encoded:\n%s\nwant:\n%s", got, goodLineText)
	}
}

func TestLineReader(t *testing.T) {
	t.Parallel()
	data := "a\n" + strings.Repeat("b", 3<<20) + "\nc"
	lr := NewReader(strings.NewReader(data), 4<<20, 0, 1, nil)
	for _, want := range []int{1, 3 << 20} {
		line, err := lr.Next()
		if err != nil || len(line) != want {
			t.Fatalf("line of %d bytes: %d, %v", want, len(line), err)
		}
		lr.Accept(line)
	}
	_, err := lr.Next()
	var le *LineError
	if !errors.As(err, &le) || le.Line != 3 || le.Offset != int64(len(data)-1) || !strings.Contains(le.Reason, "truncated") {
		t.Fatalf("truncated last line: %v", err)
	}
	lr = NewReader(strings.NewReader(""), 10, 0, 1, nil)
	if _, err := lr.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("empty input: %v", err)
	}
	lr = NewReader(strings.NewReader(strings.Repeat("x", 50)+"\n"), 10, 0, 1, nil)
	if _, err := lr.Next(); !errors.As(err, &le) || !strings.Contains(le.Reason, "longer than the limit of 10 bytes") {
		t.Fatalf("long line: %v", err)
	}
}

// FuzzParseEventLine: parsing never panics, and whatever is accepted
// re-encodes to a line that parses back to the same event, and re-encodes
// to the same bytes again (the export form is a fixed point).
func FuzzParseEventLine(f *testing.F) {
	for _, s := range []string{goodLineText, `{"type":"T","timestamp":1,"aggregateId":"x","aggregateVersion":2}`,
		`{"type":"T","timestamp":1,"aggregateId":"x","aggregateVersion":2,"payload":"\ud83c\udf89"}`,
		`{"type":"T","type":"T"}`, `{"Type":"T"}`, `[]`, `{"type":"T","timestamp":1.0}`, `{"position":0}`,
		`{"type":"T","timestamp":1,"aggregateId":"x","aggregateVersion":1,"threadId":300}`, "{\"type\":\"\xff\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		ev, lerr := ParseEvent(line, Limits{Payload: 1 << 20, Metadata: 1 << 20}, false, nil)
		if lerr != nil {
			if lerr.Column > len(line) {
				t.Fatalf("column %d beyond the line (%d bytes)", lerr.Column, len(line))
			}
			return
		}
		pos := ev.Position
		if !ev.HasPosition {
			pos = 1
		}
		line1 := enc(ev.Event, pos)
		ev2, lerr := ParseEvent(bytes.TrimSuffix(line1, []byte("\n")), Limits{Payload: 1 << 20, Metadata: 1 << 20}, false, nil)
		if lerr != nil {
			t.Fatalf("re-encoded line %q does not parse: %v", line1, lerr)
		}
		if ev2.Event.AggregateID != ev.AggregateID || ev2.Type != ev.Type || ev2.Timestamp != ev.Timestamp ||
			ev2.AggregateVersion != ev.AggregateVersion || !bytes.Equal(ev2.Payload, ev.Payload) || ev2.Position != pos {
			t.Fatalf("round trip changed the event:\n%+v\n%+v", ev, ev2)
		}
		line2 := enc(ev2.Event, ev2.Position)
		if !bytes.Equal(line1, line2) {
			t.Fatalf("the export form is not a fixed point:\n%s%s", line1, line2)
		}
	})
}

// TestLineDecoderReuse: one Decoder with a payload arena, as an import
// uses it, parses lines with escaped keys, types and ids exactly as
// ParseEvent does, never writes into the lines, and the payloads of
// earlier lines stay intact while later ones are parsed, until the arena is
// reset.
func TestLineDecoderReuse(t *testing.T) {
	t.Parallel()
	lines := []string{
		goodLineText,
		`{"type":"T\u00e9\"q","timestamp":5,"aggregateId":"a\\b\u00e9","aggregateVersion":1,"payload":{"k\u00e9y":"v\n","n":[1.5e3,-0,{}]}}`,
		`{"typ\u0065":"T","time\u0073tamp":6,"aggregateId":"` + strings.Repeat("x", 300) + `","aggregateVersion":2}`,
		`{"type":"T","timestamp":7,"aggregateId":"a","aggregateVersion":3,"payload":"` + strings.Repeat("p", 3000) + `"}`,
		`{"type":"T\u00e9\"q","timestamp":8,"aggregateId":"b","aggregateVersion":1,"payload":null}`,
	}
	var arena Arena
	d := Decoder{Limits: Limits{Payload: maxPayload, Metadata: maxPayload}, Arena: &arena}
	for round := range 3 {
		var got []estype.Event
		for _, text := range lines {
			line := []byte(text)
			var ev Event
			if lerr := d.Parse(&ev, line); lerr != nil {
				t.Fatalf("%s: %v", text, lerr)
			}
			if string(line) != text {
				t.Fatalf("the decoder wrote into the line:\n%s\n%s", line, text)
			}
			got = append(got, ev.Event)
		}
		for i, text := range lines {
			want, lerr := ParseEvent([]byte(text), Limits{Payload: maxPayload, Metadata: maxPayload}, false, nil)
			if lerr != nil {
				t.Fatal(lerr)
			}
			if g := got[i]; g.Type != want.Type || g.AggregateID != want.AggregateID || g.Timestamp != want.Timestamp ||
				g.AggregateVersion != want.AggregateVersion || !bytes.Equal(g.Payload, want.Payload) {
				t.Fatalf("round %d, line %d:\n%+v\nwant\n%+v", round, i+1, g, want.Event)
			}
		}
		arena.Reset()
	}
}
