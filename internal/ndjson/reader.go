// Package ndjson is the store's NDJSON codec (docs/ndjson-format.md): a
// strict line reader that counts lines and byte offsets and hashes the
// accepted prefix, the event and secret line decoders, the payload arena
// of an import batch, and the encoders. It knows the format, not the
// store's rules: callers validate what they decode (Decoder.Check).
package ndjson

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"

	"github.com/esctl/esctl/estype"
	"github.com/esctl/esctl/internal/jsonx"
)

// Reader reads NDJSON lines strictly: every line ends with "\n" and fits
// maxLine bytes. It counts lines and byte offsets and hashes the lines the
// caller accepts, so that an import can record a verifiable prefix hash.
type Reader struct {
	br      *bufio.Reader
	maxLine int
	Offset  int64     // byte offset of the next line
	Line    int64     // number of the next line
	Hash    hash.Hash // SHA-256 of the accepted lines (the source's first Offset bytes)
	buf     []byte
}

// NewReader reads r, whose next line is number line at byte offset, its
// prefix hashed into h (nil: a new SHA-256).
func NewReader(r io.Reader, maxLine int, offset, line int64, h hash.Hash) *Reader {
	if h == nil {
		h = sha256.New()
	}
	return &Reader{br: bufio.NewReaderSize(r, 1<<20), maxLine: maxLine, Offset: offset, Line: line, Hash: h}
}

// LineError is a line that cannot be read or parsed: where (Column -1: the
// line as a whole) and why. It is the store's error for a bad line.
type LineError = estype.LineError

// Next returns the next line without its "\n". The slice is valid until the
// next call. At the end of the input it returns io.EOF; a last line without
// "\n" is a *LineError (truncated).
func (lr *Reader) Next() ([]byte, error) {
	lr.buf = lr.buf[:0]
	if lr.Offset == 0 {
		// Compressed input is recognized before it reads as an endless
		// or cut-short line.
		if b, _ := lr.br.Peek(4); CompressedReason(b) != "" {
			return nil, lr.ErrAt(0, "", CompressedReason(b))
		}
	}
	for {
		chunk, err := lr.br.ReadSlice('\n')
		if len(lr.buf)+len(chunk) > lr.maxLine+1 {
			return nil, lr.ErrAt(-1, "", fmt.Sprintf("line is longer than the limit of %d bytes", lr.maxLine))
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
			return nil, lr.ErrAt(-1, "", fmt.Sprintf("truncated last line: %d bytes without a final newline (the file may be cut short; if it is complete, end it with a newline)", len(lr.buf)))
		default:
			return nil, err
		}
	}
}

// Accept moves past an accepted line (given without its "\n"), adding it to
// the prefix hash; a rejected line is never accepted, so the hash always
// covers exactly the source's first Offset bytes.
func (lr *Reader) Accept(line []byte) {
	lr.Hash.Write(line)
	lr.Hash.Write(newline)
	lr.Offset += int64(len(line)) + 1
	lr.Line++
}

var newline = []byte{'\n'}

// ErrAt returns the error of the next line at column.
func (lr *Reader) ErrAt(column int, field, reason string) *LineError {
	return &LineError{Line: lr.Line, Offset: lr.Offset, Column: column, Field: field, Reason: reason}
}

// HashState returns the serialized state of the prefix hash.
func (lr *Reader) HashState() []byte {
	b, err := lr.Hash.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		panic(err) // sha256 state always marshals
	}
	return b
}

// RestoreHash returns a sha256 hash continued from a serialized state.
func RestoreHash(state []byte) (hash.Hash, error) {
	h := sha256.New()
	if len(state) == 0 {
		return h, nil
	}
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(state); err != nil {
		return nil, fmt.Errorf("restore the import's prefix hash: %w", err)
	}
	return h, nil
}

// CompressedReason says why input that starts with b is refused when it is
// gzip or zstd data, and what to do; "" otherwise.
func CompressedReason(b []byte) string {
	const todo = ": an esctl backup restores with esctl restore --in FILE; other files: decompress first (%s FILE | esctl import)"
	switch {
	case bytes.HasPrefix(b, []byte{0x1f, 0x8b}):
		return "the input is gzip-compressed" + fmt.Sprintf(todo, "gunzip -c")
	case bytes.HasPrefix(b, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return "the input is zstd-compressed" + fmt.Sprintf(todo, "zstd -dc")
	}
	return ""
}

// CheckFrame rejects what is wrong with a line as a whole, before JSON:
// compressed input, a byte-order mark, blank lines and CRLF endings.
func CheckFrame(line []byte, first bool) (column int, reason string) {
	if first {
		if reason := CompressedReason(line); reason != "" {
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

// Error is what is wrong with a line the caller locates: the column (-1:
// the line as a whole), the field, the reason.
type Error struct {
	Column int
	Field  string
	Reason string
}

func (e *Error) Error() string { return e.Reason }

// JSONError is the Error of a JSON syntax error in field.
func JSONError(err error, field string) *Error {
	var se *jsonx.SyntaxError
	if errors.As(err, &se) {
		return &Error{Column: se.Offset, Field: field, Reason: se.Msg}
	}
	return &Error{Column: -1, Field: field, Reason: err.Error()}
}

// UnknownKey explains an unexpected key, naming a case-variant match.
func UnknownKey(key string, known []string) string {
	for _, k := range known {
		if strings.EqualFold(k, key) {
			return fmt.Sprintf("unknown key %q (keys are case-sensitive: did you mean %q?)", key, k)
		}
	}
	return fmt.Sprintf("unknown key %q (expected only %s)", key, strings.Join(known, ", "))
}
