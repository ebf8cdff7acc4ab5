package ndjson

import (
	"fmt"
	"strconv"

	"github.com/esctl/esctl/estype"
	"github.com/esctl/esctl/internal/jsonx"
)

// AppendSecret appends s as one NDJSON secret line, "\n" included.
func AppendSecret(dst []byte, s *estype.Secret) []byte {
	dst = append(dst, `{"secret":`...)
	if s.Secret == nil {
		dst = append(dst, "null"...)
	} else {
		dst = jsonx.AppendString(dst, *s.Secret)
	}
	dst = append(dst, `,"id":`...)
	dst = jsonx.AppendString(dst, s.ID)
	dst = append(dst, `,"idx":`...)
	dst = strconv.AppendInt(dst, s.Idx, 10)
	return append(dst, "}\n"...)
}

var secretKeys = []string{"secret", "id", "idx"}

// ParseSecret parses one secret line strictly. A line without idx has Idx
// -1. The caller validates the id and the value.
func ParseSecret(line []byte) (*estype.Secret, *Error) {
	p := jsonx.NewParser(line)
	if p.Peek() != '{' {
		if _, err := p.Value(nil); err != nil {
			return nil, JSONError(err, "")
		}
		return nil, &Error{Column: 0, Reason: "a line must be a JSON object"}
	}
	_ = p.Expect('{')
	sec := &estype.Secret{Idx: -1}
	seen := map[string]bool{}
	p.SkipSpace()
	for p.Peek() != '}' {
		if len(seen) > 0 {
			if err := p.Expect(','); err != nil {
				return nil, JSONError(err, "")
			}
		}
		p.SkipSpace()
		keyAt := p.Offset()
		key, err := p.String()
		if err != nil {
			return nil, JSONError(err, "")
		}
		if seen[key] {
			return nil, &Error{Column: keyAt, Field: key, Reason: fmt.Sprintf("duplicate key %q", key)}
		}
		seen[key] = true
		if err := p.Expect(':'); err != nil {
			return nil, JSONError(err, key)
		}
		p.SkipSpace()
		valueAt := p.Offset()
		switch key {
		case "secret":
			if p.Null() {
				break
			}
			if p.Peek() != '"' {
				return nil, &Error{Column: valueAt, Field: key, Reason: "must be a string or null"}
			}
			v, err := p.String()
			if err != nil {
				return nil, JSONError(err, key)
			}
			sec.Secret = &v
		case "id":
			if p.Peek() != '"' {
				return nil, &Error{Column: valueAt, Field: key, Reason: "must be a string"}
			}
			if sec.ID, err = p.String(); err != nil {
				return nil, JSONError(err, key)
			}
		case "idx":
			n, err := p.Int()
			if err != nil {
				return nil, JSONError(err, key)
			}
			if n < 0 {
				return nil, &Error{Column: valueAt, Field: key, Reason: fmt.Sprintf("must not be negative, got %d", n)}
			}
			sec.Idx = n
		default:
			return nil, &Error{Column: keyAt, Reason: UnknownKey(key, secretKeys)}
		}
		p.SkipSpace()
	}
	_ = p.Expect('}')
	if !p.AtEnd() {
		return nil, &Error{Column: p.Offset(), Reason: "unexpected data after the JSON object (two values on one line?)"}
	}
	for _, k := range []string{"secret", "id"} {
		if !seen[k] {
			return nil, &Error{Column: -1, Field: k, Reason: "is missing"}
		}
	}
	return sec, nil
}
