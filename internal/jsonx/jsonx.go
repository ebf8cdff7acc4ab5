// Package jsonx is the strict JSON reader and writer behind event payloads and
// NDJSON lines.
//
// encoding/json (v1) accepts duplicate keys, case-variant keys, invalid UTF-8
// (silently replaced) and rewrites what it re-encodes; none of that is
// acceptable for an event store whose promise is "payload bytes round-trip
// exactly". This package validates RFC 8259 JSON with the I-JSON (RFC 7493)
// restrictions: valid UTF-8, no lone surrogates, no duplicate object keys, and
// additionally no \u0000 escapes (PostgreSQL cannot process them) and a depth
// limit. Compact returns the input with insignificant whitespace removed and
// nothing else changed: key order, number spelling and string escapes are kept.
package jsonx

import (
	"bytes"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxDepth is the deepest nesting of arrays and objects accepted.
const MaxDepth = 512

// SyntaxError reports invalid or rejected JSON. Offset is the byte offset in
// the input where the problem was found.
type SyntaxError struct {
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("%s at byte %d", e.Msg, e.Offset)
}

func errAt(off int, format string, args ...any) error {
	return &SyntaxError{Offset: off, Msg: fmt.Sprintf(format, args...)}
}

// Compact validates src as exactly one JSON value (surrounding whitespace
// allowed) and appends its compact form to dst.
func Compact(dst, src []byte) ([]byte, error) {
	p := parser{src: src}
	p.skipSpace()
	start := len(dst)
	dst, err := p.value(dst, 0)
	if err != nil {
		return dst[:start], err
	}
	p.skipSpace()
	if p.i < len(p.src) {
		return dst[:start], errAt(p.i, "unexpected data after the JSON value")
	}
	return dst, nil
}

// Valid reports whether src is one strict JSON value (see Compact).
func Valid(src []byte) error {
	_, err := Compact(nil, src)
	return err
}

// Parser reads JSON values from a byte slice; it is used by the NDJSON codec
// to walk an envelope object while reusing the strict value rules.
type Parser struct{ p parser }

// NewParser returns a parser positioned at the start of src.
func NewParser(src []byte) *Parser { return &Parser{p: parser{src: src}} }

// Offset returns the current byte offset.
func (p *Parser) Offset() int { return p.p.i }

// SkipSpace skips JSON whitespace.
func (p *Parser) SkipSpace() { p.p.skipSpace() }

// Peek returns the next byte without consuming it, or 0 at the end.
func (p *Parser) Peek() byte {
	if p.p.i < len(p.p.src) {
		return p.p.src[p.p.i]
	}
	return 0
}

// Expect consumes byte c (after whitespace) or fails.
func (p *Parser) Expect(c byte) error {
	p.p.skipSpace()
	if p.p.i >= len(p.p.src) {
		return errAt(p.p.i, "unexpected end of input, expected %q", c)
	}
	if p.p.src[p.p.i] != c {
		return errAt(p.p.i, "expected %q, found %s", c, describeByte(p.p.src[p.p.i]))
	}
	p.p.i++
	return nil
}

// AtEnd reports whether only whitespace remains.
func (p *Parser) AtEnd() bool {
	p.p.skipSpace()
	return p.p.i >= len(p.p.src)
}

// String reads a JSON string and returns its decoded value.
func (p *Parser) String() (string, error) {
	p.p.skipSpace()
	if p.p.i >= len(p.p.src) || p.p.src[p.p.i] != '"' {
		return "", p.p.unexpected("a string")
	}
	return p.p.decodeString()
}

// StringBytes is String without the allocation: it returns the decoded
// value as a slice of the input when the string has no escapes, or else
// appended to scratch[:0]. The result is valid until the input or scratch
// changes.
func (p *Parser) StringBytes(scratch []byte) ([]byte, error) {
	p.p.skipSpace()
	if p.p.i >= len(p.p.src) || p.p.src[p.p.i] != '"' {
		return nil, p.p.unexpected("a string")
	}
	return p.p.decodeStringBytes(scratch)
}

// Int reads a JSON number that must be an integer in the int64 range.
func (p *Parser) Int() (int64, error) {
	p.p.skipSpace()
	start := p.p.i
	if p.p.i >= len(p.p.src) || !(p.p.src[p.p.i] == '-' || isDigit(p.p.src[p.p.i])) {
		return 0, p.p.unexpected("an integer")
	}
	if err := p.p.scanNumber(); err != nil {
		return 0, err
	}
	lit := p.p.src[start:p.p.i]
	for _, c := range lit {
		if c == '.' || c == 'e' || c == 'E' {
			return 0, errAt(start, "number %s is not an integer", lit)
		}
	}
	n, err := strconv.ParseInt(string(lit), 10, 64)
	if err != nil {
		return 0, errAt(start, "integer %s is out of range", lit)
	}
	return n, nil
}

// Null consumes a JSON null if it is next and reports whether it did.
func (p *Parser) Null() bool {
	p.p.skipSpace()
	if len(p.p.src)-p.p.i >= 4 && string(p.p.src[p.p.i:p.p.i+4]) == "null" {
		p.p.i += 4
		return true
	}
	return false
}

// Value reads any JSON value and appends its compact form to dst.
func (p *Parser) Value(dst []byte) ([]byte, error) {
	p.p.skipSpace()
	return p.p.value(dst, 0)
}

type parser struct {
	src []byte
	i   int
}

func (p *parser) skipSpace() {
	for p.i < len(p.src) {
		switch p.src[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func describeByte(c byte) string {
	switch {
	case c < 0x20 || c == 0x7f:
		return fmt.Sprintf("control byte 0x%02x", c)
	case c >= 0x80:
		return fmt.Sprintf("byte 0x%02x", c)
	default:
		return fmt.Sprintf("%q", c)
	}
}

func (p *parser) unexpected(want string) error {
	if p.i >= len(p.src) {
		return errAt(p.i, "unexpected end of input, expected %s", want)
	}
	c := p.src[p.i]
	switch {
	case c == 'N' || c == 'I' || (c == '-' && p.i+1 < len(p.src) && p.src[p.i+1] == 'I'):
		return errAt(p.i, "NaN and Infinity are not JSON, expected %s", want)
	case c == '\'':
		return errAt(p.i, "single-quoted strings are not JSON, expected %s", want)
	case c == '/':
		return errAt(p.i, "comments are not JSON, expected %s", want)
	}
	return errAt(p.i, "expected %s, found %s", want, describeByte(c))
}

func (p *parser) value(dst []byte, depth int) ([]byte, error) {
	if p.i >= len(p.src) {
		return dst, p.unexpected("a JSON value")
	}
	switch c := p.src[p.i]; {
	case c == '{':
		return p.object(dst, depth+1)
	case c == '[':
		return p.array(dst, depth+1)
	case c == '"':
		start := p.i
		if err := p.scanString(); err != nil {
			return dst, err
		}
		return append(dst, p.src[start:p.i]...), nil
	case c == '-' || isDigit(c):
		return p.number(dst)
	case c == 't':
		return p.literal(dst, "true")
	case c == 'f':
		return p.literal(dst, "false")
	case c == 'n':
		return p.literal(dst, "null")
	default:
		return dst, p.unexpected("a JSON value")
	}
}

func (p *parser) literal(dst []byte, lit string) ([]byte, error) {
	if len(p.src)-p.i >= len(lit) && string(p.src[p.i:p.i+len(lit)]) == lit {
		p.i += len(lit)
		return append(dst, lit...), nil
	}
	return dst, p.unexpected("a JSON value")
}

func (p *parser) object(dst []byte, depth int) ([]byte, error) {
	if depth > MaxDepth {
		return dst, errAt(p.i, "nesting deeper than %d levels", MaxDepth)
	}
	open := p.i
	p.i++ // '{'
	dst = append(dst, '{')
	p.skipSpace()
	if p.i < len(p.src) && p.src[p.i] == '}' {
		p.i++
		return append(dst, '}'), nil
	}
	// Keys seen in this object, decoded, for duplicate detection: slices of
	// the input unless a key has escapes. Objects are usually small, so a
	// slice scan beats a map; switch to a map for large ones.
	var keyBuf [16][]byte
	keys := keyBuf[:0]
	var keySet map[string]struct{}
	for n := 0; ; n++ {
		if n > 0 {
			dst = append(dst, ',')
		}
		p.skipSpace()
		if p.i >= len(p.src) || p.src[p.i] != '"' {
			if p.i < len(p.src) && p.src[p.i] == '}' {
				return dst, errAt(p.i, "trailing comma in object")
			}
			return dst, p.unexpected("an object key (a double-quoted string)")
		}
		keyStart := p.i
		key, err := p.decodeStringBytes(nil)
		if err != nil {
			return dst, err
		}
		if keySet != nil {
			if _, dup := keySet[string(key)]; dup {
				return dst, errAt(keyStart, "duplicate key %q in object opened at byte %d", key, open)
			}
			keySet[string(key)] = struct{}{}
		} else {
			for _, k := range keys {
				if string(k) == string(key) {
					return dst, errAt(keyStart, "duplicate key %q in object opened at byte %d", key, open)
				}
			}
			if len(keys) == len(keyBuf) {
				keySet = make(map[string]struct{}, 2*len(keyBuf))
				for _, k := range keys {
					keySet[string(k)] = struct{}{}
				}
				keySet[string(key)] = struct{}{}
			} else {
				keys = append(keys, key)
			}
		}
		dst = append(dst, p.src[keyStart:p.i]...)
		p.skipSpace()
		if p.i >= len(p.src) || p.src[p.i] != ':' {
			return dst, p.unexpected("':' after an object key")
		}
		p.i++
		dst = append(dst, ':')
		p.skipSpace()
		if dst, err = p.value(dst, depth); err != nil {
			return dst, err
		}
		p.skipSpace()
		if p.i >= len(p.src) {
			return dst, errAt(p.i, "unexpected end of input in object opened at byte %d", open)
		}
		switch p.src[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return append(dst, '}'), nil
		default:
			return dst, p.unexpected("',' or '}' in object")
		}
	}
}

func (p *parser) array(dst []byte, depth int) ([]byte, error) {
	if depth > MaxDepth {
		return dst, errAt(p.i, "nesting deeper than %d levels", MaxDepth)
	}
	open := p.i
	p.i++ // '['
	dst = append(dst, '[')
	p.skipSpace()
	if p.i < len(p.src) && p.src[p.i] == ']' {
		p.i++
		return append(dst, ']'), nil
	}
	for n := 0; ; n++ {
		if n > 0 {
			dst = append(dst, ',')
		}
		p.skipSpace()
		if p.i < len(p.src) && p.src[p.i] == ']' {
			return dst, errAt(p.i, "trailing comma in array")
		}
		var err error
		if dst, err = p.value(dst, depth); err != nil {
			return dst, err
		}
		p.skipSpace()
		if p.i >= len(p.src) {
			return dst, errAt(p.i, "unexpected end of input in array opened at byte %d", open)
		}
		switch p.src[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			return append(dst, ']'), nil
		default:
			return dst, p.unexpected("',' or ']' in array")
		}
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// number scans an RFC 8259 number and appends it unchanged.
func (p *parser) number(dst []byte) ([]byte, error) {
	start := p.i
	if err := p.scanNumber(); err != nil {
		return dst, err
	}
	return append(dst, p.src[start:p.i]...), nil
}

// scanNumber validates the RFC 8259 number at p.i and moves past it.
func (p *parser) scanNumber() error {
	start := p.i
	if p.src[p.i] == '-' {
		p.i++
	}
	if p.i >= len(p.src) {
		return errAt(p.i, "unexpected end of input in number")
	}
	switch c := p.src[p.i]; {
	case c == '0':
		p.i++
		if p.i < len(p.src) && isDigit(p.src[p.i]) {
			return errAt(start, "number with a leading zero")
		}
	case c >= '1' && c <= '9':
		for p.i < len(p.src) && isDigit(p.src[p.i]) {
			p.i++
		}
	case c == 'I':
		return errAt(start, "NaN and Infinity are not JSON")
	default:
		return errAt(p.i, "expected a digit in number, found %s", describeByte(c))
	}
	if p.i < len(p.src) && p.src[p.i] == '.' {
		p.i++
		if p.i >= len(p.src) || !isDigit(p.src[p.i]) {
			return errAt(p.i, "expected a digit after the decimal point")
		}
		for p.i < len(p.src) && isDigit(p.src[p.i]) {
			p.i++
		}
	}
	if p.i < len(p.src) && (p.src[p.i] == 'e' || p.src[p.i] == 'E') {
		p.i++
		if p.i < len(p.src) && (p.src[p.i] == '+' || p.src[p.i] == '-') {
			p.i++
		}
		if p.i >= len(p.src) || !isDigit(p.src[p.i]) {
			return errAt(p.i, "expected a digit in the exponent")
		}
		for p.i < len(p.src) && isDigit(p.src[p.i]) {
			p.i++
		}
	}
	return nil
}

// scanString validates the string starting at p.i (which holds '"') and
// leaves p.i after the closing quote. The fast path is plain ASCII.
func (p *parser) scanString() error {
	open := p.i
	p.i++
	for p.i < len(p.src) {
		c := p.src[p.i]
		switch {
		case c == '"':
			p.i++
			return nil
		case c == '\\':
			if _, err := p.escape(nil); err != nil {
				return err
			}
		case c < 0x20:
			return errAt(p.i, "raw control character 0x%02x in string (must be escaped)", c)
		case c < 0x80:
			p.i++
		default:
			r, size := utf8.DecodeRune(p.src[p.i:])
			if r == utf8.RuneError && size <= 1 {
				return errAt(p.i, "invalid UTF-8 byte 0x%02x in string", c)
			}
			p.i += size
		}
	}
	return errAt(open, "unterminated string")
}

// decodeString validates the string at p.i and returns its value.
func (p *parser) decodeString() (string, error) {
	b, err := p.decodeStringBytes(nil)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// decodeStringBytes validates the string at p.i and returns its value: a
// slice of the input when it has no escapes, else appended to scratch[:0].
func (p *parser) decodeStringBytes(scratch []byte) ([]byte, error) {
	start := p.i
	if err := p.scanString(); err != nil {
		return nil, err
	}
	raw := p.src[start+1 : p.i-1 : p.i-1]
	if bytes.IndexByte(raw, '\\') < 0 {
		return raw, nil
	}
	out := scratch[:0]
	if out == nil {
		out = make([]byte, 0, len(raw)) // escape appends only to a non-nil dst
	}
	q := parser{src: p.src, i: start + 1}
	for q.i < p.i-1 {
		c := q.src[q.i]
		if c != '\\' {
			out = append(out, c)
			q.i++
			continue
		}
		var err error
		if out, err = q.escape(out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// escape reads one escape sequence at p.i ('\\') and appends the decoded
// character to dst (when dst is nil it only validates).
func (p *parser) escape(dst []byte) ([]byte, error) {
	at := p.i
	if p.i+1 >= len(p.src) {
		return dst, errAt(at, "unterminated escape sequence")
	}
	c := p.src[p.i+1]
	p.i += 2
	var b byte
	switch c {
	case '"', '\\', '/':
		b = c
	case 'b':
		b = '\b'
	case 'f':
		b = '\f'
	case 'n':
		b = '\n'
	case 'r':
		b = '\r'
	case 't':
		b = '\t'
	case 'u':
		r, err := p.hex4(at)
		if err != nil {
			return dst, err
		}
		switch {
		case r == 0:
			return dst, errAt(at, `\u0000 escape is not allowed (PostgreSQL cannot store it)`)
		case utf16.IsSurrogate(r):
			if r >= 0xDC00 {
				return dst, errAt(at, `lone low surrogate \u%04x`, r)
			}
			if p.i+1 >= len(p.src) || p.src[p.i] != '\\' || p.src[p.i+1] != 'u' {
				return dst, errAt(at, `lone high surrogate \u%04x`, r)
			}
			p.i += 2
			r2, err := p.hex4(p.i - 2)
			if err != nil {
				return dst, err
			}
			if r2 < 0xDC00 || r2 > 0xDFFF {
				return dst, errAt(at, `high surrogate \u%04x not followed by a low surrogate`, r)
			}
			r = utf16.DecodeRune(r, r2)
		}
		if dst != nil {
			dst = utf8.AppendRune(dst, r)
		}
		return dst, nil
	default:
		return dst, errAt(at, "invalid escape sequence \\%c", c)
	}
	if dst != nil {
		dst = append(dst, b)
	}
	return dst, nil
}

func (p *parser) hex4(at int) (rune, error) {
	if p.i+4 > len(p.src) {
		return 0, errAt(at, `truncated \u escape`)
	}
	var r rune
	for _, c := range p.src[p.i : p.i+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, errAt(at, `invalid hex digit in \u escape`)
		}
	}
	p.i += 4
	return r, nil
}

// AppendString appends s as a JSON string encoded the way JavaScript's
// JSON.stringify does (the form reSolve writes): '"' and '\\' escaped, the
// control characters as \b \f \n \r \t or \u00xx, everything else verbatim.
// s must be valid UTF-8.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"':
			dst = append(dst, '\\', '"')
		case '\\':
			dst = append(dst, '\\', '\\')
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			const hex = "0123456789abcdef"
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
