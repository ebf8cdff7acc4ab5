package eventstore

import (
	"errors"
	"hash"
	"io"

	"github.com/esctl/esctl/estype"
	"github.com/esctl/esctl/internal/core"
	"github.com/esctl/esctl/internal/ndjson"
)

// The NDJSON codec is internal/ndjson; this file joins it to the
// store's errors and rules.

// DefaultMaxLineBytes is the default limit on one NDJSON line.
const DefaultMaxLineBytes = 64 << 20

// lineReader is the codec's line reader, its errors as *LineError.
type lineReader struct{ *ndjson.Reader }

func newLineReader(r io.Reader, maxLine int, offset, line int64, h hash.Hash) *lineReader {
	return &lineReader{ndjson.NewReader(r, maxLine, offset, line, h)}
}

// next returns the next line without its "\n" (valid until the next call),
// io.EOF at the end.
func (lr *lineReader) next() ([]byte, error) {
	line, err := lr.Next()
	var le *ndjson.LineError
	if errors.As(err, &le) {
		return nil, lineError(le)
	}
	return line, err
}

// accept moves past an accepted line, adding it to the prefix hash.
func (lr *lineReader) accept(line []byte) { lr.Accept(line) }

// errAt is the *LineError of the next line at column.
func (lr *lineReader) errAt(column int, field, reason string) *LineError {
	return lineError(lr.ErrAt(column, field, reason))
}

func lineError(le *ndjson.LineError) *LineError {
	return &LineError{Line: le.Line, Offset: le.Offset, Column: le.Column, Field: le.Field, Reason: le.Reason}
}

// checkEnvelope checks a decoded line's envelope with SaveEvent's rules
// (the store's reserved types allowed: they are in exports).
func checkEnvelope(e *estype.Event) *ndjson.Error {
	err := core.ValidateEnvelope(0, (*Event)(e), true)
	if err == nil {
		return nil
	}
	var ie *InvalidEventError
	if errors.As(err, &ie) {
		return &ndjson.Error{Column: -1, Field: ie.Field, Reason: ie.Reason}
	}
	return &ndjson.Error{Column: -1, Reason: err.Error()}
}

// parseLine parses and checks one event line; with versionless,
// aggregateVersion may be absent.
func parseLine(line []byte, maxPayload int, versionless bool) (*ndjson.Event, *ndjson.Error) {
	return ndjson.ParseEvent(line, maxPayload, versionless, checkEnvelope)
}

// parseSecretLine parses and checks one secret line.
func parseSecretLine(line []byte) (*Secret, *ndjson.Error) {
	ds, lerr := ndjson.ParseSecret(line)
	if lerr != nil {
		return nil, lerr
	}
	sec := Secret(*ds)
	if err := checkSecretID(sec.ID); err != nil {
		return nil, &ndjson.Error{Column: -1, Field: "id", Reason: err.Error()}
	}
	if sec.Secret != nil {
		if err := checkSecretValue(*sec.Secret); err != nil {
			return nil, &ndjson.Error{Column: -1, Field: "secret", Reason: err.Error()}
		}
	}
	return &sec, nil
}

// appendSecretLine appends s as one NDJSON secret line.
func appendSecretLine(dst []byte, s *Secret) []byte {
	return ndjson.AppendSecret(dst, (*estype.Secret)(s))
}
