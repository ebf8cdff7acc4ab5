package consumer

import (
	"errors"
	"fmt"
	"time"
)

// ErrNotFound: no consumer of this name is recorded in the store.
var ErrNotFound = errors.New("consumer: not found")

// ErrInvalidName: a consumer name is empty, longer than MaxNameLen bytes,
// or holds control characters.
var ErrInvalidName = errors.New("consumer: invalid name")

// errLeaseLost ends a leased run: another instance took the lease over, or
// a reset or resize cleared it, or it could not be renewed in time. Run
// then waits for a lease again.
var errLeaseLost = errors.New("consumer: lease lost")

// errLeaseExpired: the run stopped because its lease was not renewed in
// time (the database was slow or unreachable). Nobody else may have taken
// it: Run first tries to renew it and, when it still holds it, goes on
// from where it was, without handling anything again.
var errLeaseExpired = fmt.Errorf("%w: not renewed in time", errLeaseLost)

// GroupSizeError: a consumer was started with a number of members other
// than the group's recorded one. Change it with Resize (esctl consumers
// resize), with every member stopped.
type GroupSizeError struct {
	Name     string
	Recorded int
	Given    int
}

func (e *GroupSizeError) Error() string {
	return fmt.Sprintf("consumer %q: the group has %d members, this instance was started with %d: stop every member and resize the group (esctl consumers resize %s %d) to change it",
		e.Name, e.Recorded, e.Given, e.Name, e.Given)
}

// LeaseHeldError: an operation that needs every member stopped (a reset,
// a resize, a delete) found a live lease. Stop the consumer's instances,
// wait for the lease to end, or force the operation.
type LeaseHeldError struct {
	Name   string
	Member int
	Holder string
	Until  time.Time
}

func (e *LeaseHeldError) Error() string {
	return fmt.Sprintf("consumer %q: member %d is running (lease held by %s until %s): stop it first, or force",
		e.Name, e.Member, e.Holder, e.Until.UTC().Format(time.RFC3339))
}

// TxTypeError: a TxFunc handler asks for a transaction type that the
// store's engine does not give (pgx.Tx on PostgreSQL, *sql.Tx on SQLite).
type TxTypeError struct {
	Want string // the handler's type
	Got  string // the engine's
}

func (e *TxTypeError) Error() string {
	return fmt.Sprintf("consumer: the handler takes a %s but the store's engine gives a %s", e.Want, e.Got)
}

// PanicError is a handler's panic, recovered and treated as its failure on
// that event (retried, then parked).
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("consumer: handler panicked: %v", e.Value) }
