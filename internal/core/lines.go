package core

import (
	"errors"

	"github.com/esctl/esctl/estype"
	"github.com/esctl/esctl/internal/ndjson"
)

// The NDJSON codec is internal/ndjson; these join it to the store's rules.

// CheckEnvelope checks a decoded line's envelope with SaveEvent's rules
// (the store's reserved types allowed: they are in exports).
func CheckEnvelope(e *estype.Event) *ndjson.Error {
	err := ValidateEnvelope(0, e, true)
	if err == nil {
		return nil
	}
	var ie *estype.InvalidEventError
	if errors.As(err, &ie) {
		return &ndjson.Error{Column: -1, Field: ie.Field, Reason: ie.Reason}
	}
	return &ndjson.Error{Column: -1, Reason: err.Error()}
}

// ParseLine parses and checks one event line; with versionless,
// aggregateVersion may be absent.
func ParseLine(line []byte, lim Limits, versionless bool) (*ndjson.Event, *ndjson.Error) {
	return ndjson.ParseEvent(line, ndjson.Limits(lim), versionless, CheckEnvelope)
}

// ParseSecretLine parses and checks one secret line.
func ParseSecretLine(line []byte) (*estype.Secret, *ndjson.Error) {
	ds, lerr := ndjson.ParseSecret(line)
	if lerr != nil {
		return nil, lerr
	}
	sec := *ds
	if err := CheckSecretID(sec.ID); err != nil {
		return nil, &ndjson.Error{Column: -1, Field: "id", Reason: err.Error()}
	}
	if sec.Secret != nil {
		if err := CheckSecretValue(*sec.Secret); err != nil {
			return nil, &ndjson.Error{Column: -1, Field: "secret", Reason: err.Error()}
		}
	}
	return &sec, nil
}

// Page sizes of the reads that walk a whole table: secrets (exports and
// backups) and snapshots (backups).
const (
	SecretsPageSize   = 1000
	SnapshotsPageSize = 100
)
