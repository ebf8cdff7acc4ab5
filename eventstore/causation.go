package eventstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// The metadata keys of the store's conventions (docs/metadata.md). The
// store reads none of them; its helpers (Causation) write them, and its
// tools (esctl events --metadata, the console) follow them.
const (
	// CorrelationIDKey is the id of the conversation an event belongs to:
	// the request or command that started it, shared by every event
	// caused along the way (a string).
	CorrelationIDKey = "correlationId"
	// CausationIDKey is the id of what caused the event (a string): the
	// command's or request's id, or, for an event caused by a stored
	// event, that event's position in decimal.
	CausationIDKey = "causationId"
	// TraceParentKey and TraceStateKey are the W3C trace context of the
	// operation that appended the event (the traceparent and tracestate
	// headers' values).
	TraceParentKey = "traceparent"
	TraceStateKey  = "tracestate"
)

// Causation is the part of an event's metadata that says where the event
// came from. Empty fields are not written.
type Causation struct {
	CorrelationID string
	CausationID   string
	TraceParent   string
	TraceState    string
}

// CausationOf reads the convention keys of metadata. A key that is
// absent, or whose value is not a string, reads as empty; metadata that is
// not a JSON object reads as no causation.
func CausationOf(metadata json.RawMessage) Causation {
	var m map[string]json.RawMessage
	if json.Unmarshal(metadata, &m) != nil {
		return Causation{}
	}
	str := func(k string) string {
		var s string
		if json.Unmarshal(m[k], &s) != nil {
			return ""
		}
		return s
	}
	return Causation{CorrelationID: str(CorrelationIDKey), CausationID: str(CausationIDKey), TraceParent: str(TraceParentKey), TraceState: str(TraceStateKey)}
}

// CausedBy returns the causation of an event caused by the stored event
// cause (a process manager's or a consumer's reaction to it): the cause's
// correlation id (or, when it has none, its position: it started the
// conversation), the cause's position as the causation id, and the cause's
// trace context.
func CausedBy(cause *StoredEvent) Causation {
	c := CausationOf(cause.Metadata)
	pos := strconv.FormatInt(cause.Position, 10)
	if c.CorrelationID == "" {
		c.CorrelationID = pos
	}
	c.CausationID = pos
	return c
}

type causationKey struct{}

// ContextWithCausation returns a copy of ctx that carries c: a request's
// middleware sets it (the request id as correlation and causation id, the
// traceparent header), and the code that appends reads it back with
// CausationFromContext.
func ContextWithCausation(ctx context.Context, c Causation) context.Context {
	return context.WithValue(ctx, causationKey{}, c)
}

// CausationFromContext returns the causation ContextWithCausation put in
// ctx, and whether there was one.
func CausationFromContext(ctx context.Context) (Causation, bool) {
	c, ok := ctx.Value(causationKey{}).(Causation)
	return c, ok
}

// Metadata returns metadata (a JSON object; nil or null for none) with
// c's non-empty fields set under their keys. The object's other members
// are kept in their order, their values byte for byte; a convention key
// already there gets c's value in its place, and the others are added at
// the end. Metadata that is not a JSON object is an error.
func (c Causation) Metadata(metadata json.RawMessage) (json.RawMessage, error) {
	set := []struct{ key, value string }{
		{CorrelationIDKey, c.CorrelationID}, {CausationIDKey, c.CausationID},
		{TraceParentKey, c.TraceParent}, {TraceStateKey, c.TraceState},
	}
	members, none, err := objectMembers(metadata)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	out.WriteByte('{')
	n := 0
	write := func(key string, value []byte) {
		if n > 0 {
			out.WriteByte(',')
		}
		n++
		out.Write(jsonText(key))
		out.WriteByte(':')
		out.Write(value)
	}
	done := make([]bool, len(set))
	for _, m := range members {
		value := m.value
		for i, s := range set {
			if m.key == s.key && s.value != "" {
				value, done[i] = jsonText(s.value), true
			}
		}
		write(m.key, value)
	}
	for i, s := range set {
		if !done[i] && s.value != "" {
			write(s.key, jsonText(s.value))
		}
	}
	out.WriteByte('}')
	if n == 0 && none {
		return nil, nil // nothing to set on no metadata: still none
	}
	return out.Bytes(), nil
}

// Stamp sets c in the metadata of every event (see Metadata).
func (c Causation) Stamp(events []Event) error {
	for i := range events {
		m, err := c.Metadata(events[i].Metadata)
		if err != nil {
			return &InvalidEventError{Index: i, Field: "metadata", Reason: err.Error()}
		}
		events[i].Metadata = m
	}
	return nil
}

type member struct {
	key   string
	value json.RawMessage
}

// objectMembers returns the members of the JSON object m in order, or
// none for an empty m or null.
func objectMembers(m json.RawMessage) (members []member, none bool, err error) {
	trimmed := bytes.TrimSpace(m)
	if len(trimmed) == 0 || string(trimmed) == "null" {
		return nil, true, nil
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, trimmed); err != nil {
		return nil, false, fmt.Errorf("metadata: %w", err)
	}
	dec := json.NewDecoder(&compact)
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, false, errors.New("metadata must be a JSON object")
	}
	var out []member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, false, fmt.Errorf("metadata: %w", err)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, false, fmt.Errorf("metadata: %w", err)
		}
		out = append(out, member{key: tok.(string), value: v})
	}
	return out, false, nil
}

// jsonText is s as a JSON string, HTML characters as they are.
func jsonText(s string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}
