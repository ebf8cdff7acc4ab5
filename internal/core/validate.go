package core

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/esctl/esctl/estype"
	"github.com/esctl/esctl/internal/jsonx"
)

// CheckAuditEvent checks that a reserved-type event has the form of the
// store's own secret audit events (see SetSecretEventType); it returns the
// field at fault and why, or "" and "".
func CheckAuditEvent(e *estype.Event) (field, reason string) {
	form := fmt.Sprintf(`a %s event must have the form the store writes: aggregate id %s_ID_RANDOM (RANDOM: 10 characters of [A-Za-z0-9_-]), version 1, payload {"id":ID}`, e.Type, e.Type)
	var fields map[string]json.RawMessage
	var id string
	if err := json.Unmarshal(e.Payload, &fields); err != nil || len(fields) != 1 || json.Unmarshal(fields["id"], &id) != nil || id == "" {
		return "payload", form
	}
	if e.AggregateVersion != 1 {
		return "aggregateVersion", form
	}
	suffix, ok := strings.CutPrefix(e.AggregateID, e.Type+"_"+id+"_")
	if !ok || len(suffix) != 10 || strings.Trim(suffix, IDAlphabet) != "" {
		return "aggregateId", form
	}
	return "", ""
}

// Limits are the size limits of an event's JSON parts, in compact bytes.
type Limits struct {
	Payload  int
	Metadata int
}

// ValidateEvent checks e and replaces its payload and metadata by their
// compact forms (a nil payload becomes null; a null metadata becomes nil).
func ValidateEvent(index int, e *estype.Event, lim Limits, allowReserved bool) error {
	if err := ValidateEnvelope(index, e, allowReserved); err != nil {
		return err
	}
	payload, err := CompactPayload(e.Payload, lim.Payload)
	if err != nil {
		return &estype.InvalidEventError{Index: index, Field: "payload", Reason: err.Error()}
	}
	metadata, err := CompactMetadata(e.Metadata, lim.Metadata)
	if err != nil {
		return &estype.InvalidEventError{Index: index, Field: "metadata", Reason: err.Error()}
	}
	e.Payload, e.Metadata = payload, metadata
	return nil
}

// ValidateEnvelope checks every field of e but the payload (for callers
// that have validated and compacted it already, as the NDJSON reader does).
func ValidateEnvelope(index int, e *estype.Event, allowReserved bool) error {
	invalid := func(field, format string, args ...any) error {
		return &estype.InvalidEventError{Index: index, Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	if reason := CheckAggregateID(e.AggregateID); reason != "" {
		return invalid("aggregateId", "%s", reason)
	}
	if reason := CheckType(e.Type); reason != "" {
		return invalid("type", "%s", reason)
	}
	if e.Type == estype.SetSecretEventType || e.Type == estype.DeleteSecretEventType {
		if !allowReserved {
			return invalid("type", "%s is reserved for the store's secret audit events", e.Type)
		}
		if field, reason := CheckAuditEvent(e); reason != "" {
			return invalid(field, "%s", reason)
		}
	}
	if e.AggregateVersion < 1 {
		return invalid("aggregateVersion", "must be at least 1, got %d", e.AggregateVersion)
	}
	if e.AggregateVersion > estype.MaxSafeInteger {
		return invalid("aggregateVersion", "must be at most 2^53-1, got %d", e.AggregateVersion)
	}
	if e.Timestamp < 0 {
		return invalid("timestamp", "must not be negative, got %d", e.Timestamp)
	}
	if e.Timestamp > estype.MaxSafeInteger {
		return invalid("timestamp", "must be at most 2^53-1, got %d", e.Timestamp)
	}
	return nil
}

var nullPayload = []byte("null")

// CompactPayload returns p in compact form (null for an empty p), or why
// it is not valid JSON or exceeds maxPayload bytes.
func CompactPayload(p []byte, maxPayload int) ([]byte, error) {
	if len(p) == 0 {
		return nullPayload, nil
	}
	out, err := compactJSON(p)
	if err != nil {
		return nil, err
	}
	if len(out) > maxPayload {
		return nil, fmt.Errorf("%d bytes exceeds the limit of %d bytes", len(out), maxPayload)
	}
	return out, nil
}

// compactJSON returns the compact form of the JSON text b, or why it is
// not valid JSON.
func compactJSON(b []byte) ([]byte, error) {
	out, err := jsonx.Compact(make([]byte, 0, len(b)), b)
	if err != nil {
		var se *jsonx.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("not valid JSON: %s", se.Error())
		}
		return nil, err
	}
	return out, nil
}

// CompactMetadata returns m in compact form, nil for an empty m or null,
// or why it is not a JSON object or exceeds maxMetadata bytes.
func CompactMetadata(m []byte, maxMetadata int) ([]byte, error) {
	if len(m) == 0 {
		return nil, nil
	}
	out, err := compactJSON(m)
	if err != nil {
		return nil, err
	}
	return CheckMetadata(out, maxMetadata)
}

// CheckMetadata checks compact JSON m as metadata: an object, or null
// (none: nil is returned), of at most maxMetadata bytes.
func CheckMetadata(m []byte, maxMetadata int) ([]byte, error) {
	switch {
	case string(m) == "null":
		return nil, nil
	case m[0] != '{':
		return nil, fmt.Errorf("must be a JSON object, got %s", jsonKind(m[0]))
	case len(m) > maxMetadata:
		return nil, fmt.Errorf("%d bytes exceeds the limit of %d bytes", len(m), maxMetadata)
	}
	return m, nil
}

// jsonKind names the kind of the JSON value that starts with b.
func jsonKind(b byte) string {
	switch b {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	}
	return "a number"
}

// CheckAggregateID returns why s is not a valid aggregate id, or "".
func CheckAggregateID(s string) string {
	switch {
	case s == "":
		return "must not be empty"
	case len(s) > estype.MaxAggregateIDBytes:
		return fmt.Sprintf("is %d bytes, more than the limit of %d", len(s), estype.MaxAggregateIDBytes)
	case !utf8.ValidString(s):
		return "is not valid UTF-8"
	case strings.IndexByte(s, 0) >= 0:
		return "contains a NUL character"
	case strings.TrimSpace(s) == "":
		return "must not be only whitespace"
	}
	return ""
}

// CheckType returns why s is not a valid event type, or "".
func CheckType(s string) string {
	switch {
	case s == "":
		return "must not be empty"
	case len(s) > estype.MaxTypeBytes:
		return fmt.Sprintf("is %d bytes, more than the limit of %d", len(s), estype.MaxTypeBytes)
	case !utf8.ValidString(s):
		return "is not valid UTF-8"
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return fmt.Sprintf("contains the control character 0x%02x", s[i])
		}
	}
	if strings.TrimSpace(s) == "" {
		return "must not be only whitespace"
	}
	return ""
}

// IDAlphabet is the alphabet of the random part of a secret audit event's
// aggregate id.
const IDAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-"
