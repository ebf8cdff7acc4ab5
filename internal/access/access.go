// Package access gives this module's packages built on package eventstore
// (consumer, and the module's own tests and benchmarks) the engine driver
// under a *eventstore.Store, which applications cannot reach: the seam
// (internal/driver) is internal. Package eventstore installs the functions
// from its init; store is always a *eventstore.Store.
package access

import (
	"context"

	"github.com/esctl/esctl/internal/driver"
)

var (
	driverOf func(store any) driver.Driver
	readyOf  func(ctx context.Context, store any) error
)

// Install is called once, by package eventstore's init.
func Install(driverFunc func(store any) driver.Driver, readyFunc func(ctx context.Context, store any) error) {
	driverOf, readyOf = driverFunc, readyFunc
}

// Driver returns the driver a *eventstore.Store writes through.
func Driver(store any) driver.Driver { return driverOf(store) }

// Ready runs the Store's own checks before an operation that goes to its
// driver directly: the store is not closed, and its schema is at the
// version this build expects (ErrClosed, ErrNotInitialized,
// *SchemaVersionError otherwise).
func Ready(ctx context.Context, store any) error { return readyOf(ctx, store) }
