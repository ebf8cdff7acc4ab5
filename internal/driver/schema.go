package driver

import (
	"sync/atomic"

	"github.com/esctl/esctl/estype"
)

// SchemaChoice is what an adapter keeps of Driver.UseSchema: whether the
// store's schema has the events' metadata column. The zero value means it
// has not (schema 7), until UseSchema says otherwise.
type SchemaChoice struct{ meta atomic.Bool }

// UseSchema records the store's schema version (Driver.UseSchema).
func (c *SchemaChoice) UseSchema(version uint) {
	c.meta.Store(version >= estype.MetadataSchemaVersion)
}

// BySchema returns an adapter's statements for the schema UseSchema
// recorded: both[0] without the metadata column, both[1] with it.
func BySchema[T any](c *SchemaChoice, both *[2]T) *T {
	if c.meta.Load() {
		return &both[1]
	}
	return &both[0]
}
