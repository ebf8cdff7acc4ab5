package estype

import (
	"encoding/base64"
	"encoding/binary"
)

// Cursor is an opaque, versioned reading position. The empty cursor means
// "the start of the store". A cursor names a position, not a transaction, so
// it stays valid across export, import, restore and a move to another engine.
//
// The encoding is 12 characters of unpadded base64url over a version byte and
// a big-endian uint64 position. Treat it as opaque: the format may gain
// versions, and decoding is strict (exact length, canonical alphabet).
type Cursor string

const cursorVersion = 1

var cursorEncoding = base64.RawURLEncoding.Strict()

// CursorAt returns the cursor that resumes reading after position p
// (CursorAt(0) is the start of the store).
func CursorAt(p int64) Cursor {
	var b [9]byte
	b[0] = cursorVersion
	binary.BigEndian.PutUint64(b[1:], uint64(p))
	return Cursor(cursorEncoding.EncodeToString(b[:]))
}

// Position decodes the cursor: reading resumes after the returned position.
// The empty cursor decodes to 0.
func (c Cursor) Position() (int64, error) {
	if c == "" {
		return 0, nil
	}
	if len(c) != 12 {
		return 0, &InvalidCursorError{Cursor: string(c), Reason: "wrong length"}
	}
	var b [9]byte
	n, err := cursorEncoding.Decode(b[:], []byte(c))
	if err != nil || n != 9 {
		return 0, &InvalidCursorError{Cursor: string(c), Reason: "not base64url"}
	}
	if b[0] != cursorVersion {
		return 0, &InvalidCursorError{Cursor: string(c), Reason: "unknown cursor version"}
	}
	p := binary.BigEndian.Uint64(b[1:])
	if p > 1<<63-1 {
		return 0, &InvalidCursorError{Cursor: string(c), Reason: "position out of range"}
	}
	return int64(p), nil
}

// NextCursor returns the cursor after prev and the given events: the cursor
// resumes after the highest position among prev and the events. Like
// reSolve's getNextCursor it is pure, order-independent and never moves
// backwards; NextCursor("", nil) is the start cursor.
func NextCursor(prev Cursor, events []StoredEvent) (Cursor, error) {
	p, err := prev.Position()
	if err != nil {
		return "", err
	}
	for i := range events {
		p = max(p, events[i].Position)
	}
	return CursorAt(p), nil
}
