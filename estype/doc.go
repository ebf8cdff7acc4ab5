// Package estype is the vocabulary that the store, its engines and its tools
// share: the events (Event, StoredEvent), their positions and cursors, the
// stored secrets, import checkpoints and schema versions, and the errors
// every layer returns (sentinels for errors.Is, typed errors for errors.As).
//
// It imports nothing of this module. Applications use these names through
// package eventstore, which re-exports them (eventstore.Event is
// estype.Event, eventstore.ErrConflict is estype.ErrConflict); engines under
// adapters/ and the migrations use them here, without depending on the
// application's package.
package estype
