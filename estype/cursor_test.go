package estype

import (
	"errors"
	"testing"
)

func TestCursorRoundTrip(t *testing.T) {
	t.Parallel()
	for _, p := range []int64{0, 1, 255, 256, 1 << 40, 1<<63 - 1} {
		c := CursorAt(p)
		if len(c) != 12 {
			t.Fatalf("CursorAt(%d) = %q, want 12 characters", p, c)
		}
		got, err := c.Position()
		if err != nil || got != p {
			t.Fatalf("CursorAt(%d).Position() = %d, %v", p, got, err)
		}
	}
	if p, err := Cursor("").Position(); p != 0 || err != nil {
		t.Fatalf(`"".Position() = %d, %v`, p, err)
	}
}

// TestCursorAtFormat pins the encoding (cursors are stored by
// applications) and its cost: one allocation, the string (a subscription
// makes a cursor per event it delivers).
func TestCursorAtFormat(t *testing.T) { // not parallel: AllocsPerRun
	if c := CursorAt(1); c != "AQAAAAAAAAAB" {
		t.Fatalf("CursorAt(1) = %q, want AQAAAAAAAAAB", c)
	}
	var sink Cursor
	if n := testing.AllocsPerRun(100, func() { sink = CursorAt(1 << 40) }); n > 1 {
		t.Fatalf("CursorAt allocates %v times, want 1", n)
	}
	_ = sink
}

func TestCursorRejects(t *testing.T) {
	t.Parallel()
	for _, c := range []Cursor{"a", "AQAAAAAAAAA", "AQAAAAAAAAAAA", "AQAAAAAAAAA=", "AQAAAAAAAAA/", "AQAAAAAAAAA+",
		"AgAAAAAAAAAB", "AYAAAAAAAAAA", "AQAAAAAAAAB", " QAAAAAAAAAA", "AQAAAAAAAAA\n", "gAAAAAAAAAAA"} {
		if _, err := c.Position(); !errors.Is(err, ErrInvalidCursor) {
			t.Errorf("%q.Position() = %v, want ErrInvalidCursor", c, err)
		}
	}
}

func TestNextCursor(t *testing.T) {
	t.Parallel()
	c, err := NextCursor("", nil)
	if err != nil || c != CursorAt(0) {
		t.Fatalf("NextCursor(\"\", nil) = %q, %v", c, err)
	}
	events := []StoredEvent{{Position: 7}, {Position: 3}}
	c, err = NextCursor(CursorAt(5), events)
	if err != nil || c != CursorAt(7) {
		t.Fatalf("NextCursor = %q, %v", c, err)
	}
	c, err = NextCursor(CursorAt(9), events)
	if err != nil || c != CursorAt(9) {
		t.Fatalf("NextCursor moved backwards: %q, %v", c, err)
	}
	if _, err := NextCursor("bad", nil); !errors.Is(err, ErrInvalidCursor) {
		t.Fatalf("NextCursor(bad) = %v", err)
	}
}

func FuzzCursor(f *testing.F) {
	f.Add("AQAAAAAAAAAA")
	f.Add("AQAAAAAAAAGT")
	f.Add("")
	f.Add("AQAAAAAAAA==")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := Cursor(s).Position()
		if err != nil {
			if !errors.Is(err, ErrInvalidCursor) {
				t.Fatalf("error %v is not ErrInvalidCursor", err)
			}
			return
		}
		if s == "" {
			return
		}
		if p < 0 || CursorAt(p) != Cursor(s) {
			t.Fatalf("%q decodes to %d, which encodes to %q: cursors must be canonical", s, p, CursorAt(p))
		}
	})
}
