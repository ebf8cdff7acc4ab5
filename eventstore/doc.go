// Package eventstore is an event store for Go services doing event sourcing
// and CQRS, on SQLite (embedded, the default) or PostgreSQL.
//
// Start with Open and Init, then append and read:
//
//	import (
//		_ "github.com/esctl/esctl/adapters/sqlite" // or adapters/postgres
//		"github.com/esctl/esctl/eventstore"
//	)
//
//	s, err := eventstore.Open(ctx, "sqlite://./events.db", nil)
//	...
//	defer s.Close()
//	err = s.Init(ctx) // creates the store or applies pending migrations
//	e, err := s.SaveEvent(ctx, eventstore.Event{AggregateID: "account-1", AggregateVersion: 1, Type: "Opened", Payload: []byte(`{}`)})
//	page, err := s.LoadEvents(ctx, eventstore.Filter{Cursor: checkpoint, Limit: 100})
//
// The pieces:
//
//   - Store is the store: SaveEvent and SaveEvents append with optimistic
//     concurrency (a stale version is *ConflictError); Append appends to
//     one aggregate with an Expect (Any, NoStream, StreamExists,
//     Exactly(v)) and lets the store choose the versions; LoadEvents,
//     Events (an iterator that pages for you) and LatestEvent read by
//     Filter and Cursor; Freeze and Unfreeze stop appends for maintenance;
//     SaveSnapshot, LoadSnapshot and DropSnapshot keep snapshots; Secrets
//     returns the SecretsManager for crypto-shredding keys; Describe
//     reports counts and the end cursor; Subscribe follows the store live
//     from a cursor you keep (for durable consumers, whose checkpoints,
//     leases, retries and parked events the store keeps for you, use
//     package consumer: github.com/esctl/esctl/consumer); Migrate, Drop
//     and Close manage it.
//   - Event is what an application appends, StoredEvent what it reads back:
//     the event with its Position.
//   - Positions are 1, 2, 3, ... dense and in commit order: when a reader
//     sees position p, every position below it is committed and visible,
//     so paging by Cursor never skips an event. A Cursor is an opaque
//     string (StoredEvent.Cursor, Page.Cursor, NextCursor); keep it as a
//     projection's checkpoint.
//   - Errors are sentinels and typed errors (errors.go) for errors.Is and
//     errors.As: ErrConflict, ErrFrozen, ErrNotInitialized,
//     ErrSchemaVersion, ErrOutcomeUnknown and the rest. They, the event
//     types and Cursor are declared in package estype, the vocabulary that
//     engines and tools share, and are the same here under these names.
//   - Options (nil: defaults) set the logger, the clock and the limits.
//
// Engines register from their package's init, with the URL schemes and
// path suffixes they open: link one in with a blank import.
// With both adapters, Open accepts postgres://, postgresql://
// (?schema=NAME), sqlite://PATH, file:PATH and paths ending in .db,
// .sqlite or .sqlite3 (AcceptedURLs lists what is linked in). The packages snapshots and
// secrets build typed snapshot repositories and crypto-shredding on top of
// a Store; the tools that move stores are apart from this package, for
// operators and their tools: package transfer (NDJSON export and import,
// incremental imports, secrets export and import, Copy, Verify) and
// package backup (backups and restores, as streams and as resumable
// files). Package eventstoretest gives an application's tests a store of
// their own and assertions on what they appended.
// The design is in docs/architecture.md of the repository.
package eventstore
