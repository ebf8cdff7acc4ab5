package eventstore

import (
	"context"
	"fmt"

	"github.com/esctl/esctl/internal/driver"
)

// CreateIndex makes an index that serves content filters (Filter.Payload
// and Filter.Metadata) on a large store, if it is not there yet, and
// returns it. What it is depends on the engine:
//
//   - PostgreSQL: a GIN index (jsonb_path_ops) on the whole payload or
//     metadata, which serves every containment filter on it; spec.Path
//     must be empty. It is built CONCURRENTLY: appends and reads go on
//     meanwhile. Each append then also updates the index.
//   - SQLite: an expression index on the member at spec.Path (a key, or
//     keys into nested objects), which serves the filters that give that
//     member a string, number or boolean value. SQLite builds it under its
//     write lock: appends wait for the build.
//
// A spec the engine cannot index is *InvalidIndexError; a metadata index
// on a store at schema version 7 is *SchemaVersionError.
func (s *Store) CreateIndex(ctx context.Context, spec IndexSpec) (*Index, error) {
	if spec.On != IndexOnPayload && spec.On != IndexOnMetadata {
		return nil, &InvalidIndexError{Field: "on", Reason: fmt.Sprintf("%q: use %q or %q", spec.On, IndexOnPayload, IndexOnMetadata)}
	}
	if err := s.c.Begin(ctx); err != nil {
		return nil, err
	}
	defer s.c.Exit()
	if spec.On == IndexOnMetadata {
		if err := s.c.MetadataReady(ctx); err != nil {
			return nil, err
		}
	}
	ix, err := s.c.D.CreateIndex(ctx, &spec)
	if err != nil {
		return nil, fmt.Errorf("create index: %w", err)
	}
	return ix, nil
}

// Indexes returns the indexes CreateIndex made, by name.
func (s *Store) Indexes(ctx context.Context) ([]Index, error) {
	if err := s.c.Begin(ctx); err != nil {
		return nil, err
	}
	defer s.c.Exit()
	list, err := s.c.D.ListIndexes(ctx)
	if err != nil {
		return nil, fmt.Errorf("list indexes: %w", err)
	}
	return list, nil
}

// DropIndex drops the index CreateIndex made under name (on PostgreSQL
// CONCURRENTLY) and reports whether there was one. A name that cannot be
// one of the store's indexes is *InvalidIndexError: DropIndex never drops
// another index.
func (s *Store) DropIndex(ctx context.Context, name string) (bool, error) {
	if !driver.ValidIndexName(name) {
		return false, &InvalidIndexError{Field: "name", Reason: fmt.Sprintf("%q is not one of the store's indexes (they start with %s)", name, driver.IndexPrefix)}
	}
	if err := s.c.Begin(ctx); err != nil {
		return false, err
	}
	defer s.c.Exit()
	found, err := s.c.D.DropIndex(ctx, name)
	if err != nil {
		return false, fmt.Errorf("drop index: %w", err)
	}
	return found, nil
}
