package transfer

import (
	"github.com/esctl/esctl/estype"
	"github.com/esctl/esctl/internal/ndjson"
)

// AppendEventLine appends e to dst as one NDJSON line in the export format
// (docs/ndjson-format.md), the final "\n" included: the bytes ExportEvents
// writes for it.
func AppendEventLine(dst []byte, e estype.StoredEvent) []byte {
	return ndjson.AppendEvent(dst, &estype.StoredEvent{Event: estype.Event(e.Event), Position: e.Position})
}
