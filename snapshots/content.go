package snapshots

import (
	"bytes"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// Errors. Load never returns ErrStateVersion or ErrInvalidSnapshot: it
// ignores such a snapshot and reports why in LoadInfo.Discarded.
var (
	// ErrStateVersion: a snapshot was written for another
	// Options.StateVersion or another shape of the state type.
	ErrStateVersion = errors.New("snapshots: snapshot of another state version")
	// ErrInvalidSnapshot: a snapshot cannot be used: its content does not
	// decode, it belongs to another aggregate, or it does not match the
	// store's events (past the end of the store, or the events after it do
	// not continue its version).
	ErrInvalidSnapshot = errors.New("snapshots: invalid snapshot")
	// ErrInvalidArgument: a Repository was given a bad argument or option.
	ErrInvalidArgument = errors.New("snapshots: invalid argument")
)

// formatV1 identifies the content layout: a one-line JSON header, a newline,
// then the encoded state, byte for byte (EncodeFunc may return any bytes).
const formatV1 = "esctl-snapshot/1"

// header is the first line of a snapshot's content.
type header struct {
	Format       string `json:"format"`
	Kind         string `json:"kind"`
	ID           string `json:"id"`
	StateVersion int    `json:"stateVersion"`
	Shape        string `json:"shape"`
	Version      int64  `json:"version"`
	Position     int64  `json:"position"`
}

func joinSnapshot(h header, state []byte) ([]byte, error) {
	line, err := json.Marshal(h) // compact, so it has no newline
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(line)+1+len(state))
	out = append(out, line...)
	out = append(out, '\n')
	return append(out, state...), nil
}

func splitSnapshot(content []byte) (header, []byte, error) {
	var h header
	line, state, ok := bytes.Cut(content, []byte{'\n'})
	if !ok {
		return h, nil, fmt.Errorf("%w: no header", ErrInvalidSnapshot)
	}
	if err := json.Unmarshal(line, &h); err != nil {
		return h, nil, fmt.Errorf("%w: header: %w", ErrInvalidSnapshot, err)
	}
	if h.Format != formatV1 {
		return h, nil, fmt.Errorf("%w: format %q, want %q", ErrInvalidSnapshot, h.Format, formatV1)
	}
	return h, state, nil
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

// jsonUnmarshal decodes strictly enough that a state of another shape fails
// instead of decoding partially: unknown fields are errors.
func jsonUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the state")
	}
	return nil
}

var (
	jsonMarshalerType = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
)

// shapeOf fingerprints the JSON shape of t: exported field names, json tags
// and kinds, recursively. Named types that marshal themselves count by name.
// A change in the fingerprint makes old snapshots unusable.
func shapeOf(t reflect.Type) string {
	var b strings.Builder
	describeType(&b, t, map[reflect.Type]bool{})
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:8])
}

func describeType(b *strings.Builder, t reflect.Type, seen map[reflect.Type]bool) {
	if t == nil {
		b.WriteString("nil")
		return
	}
	if t.Name() != "" {
		if seen[t] { // a recursive type: name it instead of looping
			b.WriteString("@" + t.PkgPath() + "." + t.Name())
			return
		}
		if marshalsItself(t) {
			b.WriteString("marshaler " + t.PkgPath() + "." + t.Name())
			return
		}
		seen[t] = true
		defer delete(seen, t)
	}
	switch t.Kind() {
	case reflect.Pointer:
		b.WriteString("*")
		describeType(b, t.Elem(), seen)
	case reflect.Slice:
		b.WriteString("[]")
		describeType(b, t.Elem(), seen)
	case reflect.Array:
		b.WriteString("[" + strconv.Itoa(t.Len()) + "]")
		describeType(b, t.Elem(), seen)
	case reflect.Map:
		b.WriteString("map[")
		describeType(b, t.Key(), seen)
		b.WriteString("]")
		describeType(b, t.Elem(), seen)
	case reflect.Struct:
		b.WriteString("struct{")
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() && !f.Anonymous {
				continue
			}
			b.WriteString(f.Name + " " + strconv.Quote(f.Tag.Get("json")) + " ")
			describeType(b, f.Type, seen)
			b.WriteString(";")
		}
		b.WriteString("}")
	default:
		b.WriteString(t.Kind().String())
	}
}

func marshalsItself(t reflect.Type) bool {
	pt := reflect.PointerTo(t)
	return t.Implements(jsonMarshalerType) || pt.Implements(jsonMarshalerType) ||
		t.Implements(textMarshalerType) || pt.Implements(textMarshalerType)
}
