// Package access gives this module's packages built on package eventstore
// (consumer, and the module's own tests and benchmarks) the engine driver
// and the core (internal/core) under a *eventstore.Store, which
// applications cannot reach. Package eventstore installs the functions
// from its init; store is always a *eventstore.Store.
package access

import (
	"context"

	"github.com/esctl/esctl/internal/core"
	"github.com/esctl/esctl/internal/driver"
)

var (
	coreOf  func(store any) *core.Store
	readyOf func(ctx context.Context, store any) error
)

// Install is called once, by package eventstore's init.
func Install(coreFunc func(store any) *core.Store, readyFunc func(ctx context.Context, store any) error) {
	coreOf, readyOf = coreFunc, readyFunc
}

// Core returns a *eventstore.Store's core: its drivers, writer, life cycle.
func Core(store any) *core.Store { return coreOf(store) }

// Driver returns the driver a *eventstore.Store writes through.
func Driver(store any) driver.Driver { return coreOf(store).D }

// Ready runs the Store's own checks before an operation that goes to its
// driver directly: the store is not closed, and its schema is at the
// version this build expects (ErrClosed, ErrNotInitialized,
// *SchemaVersionError otherwise).
func Ready(ctx context.Context, store any) error { return readyOf(ctx, store) }
