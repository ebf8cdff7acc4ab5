package consumer

import (
	"context"
	"fmt"
	"reflect"
	"runtime/debug"

	"github.com/esctl/esctl/eventstore"
)

// Handler handles a consumer's events: Func for a handler with effects of
// its own, TxFunc for one that writes SQL tables of the store's database
// in the transaction that also moves the checkpoint.
type Handler interface {
	// call handles e; tx is the engine's transaction (TxFunc) or nil.
	call(ctx context.Context, tx any, e *eventstore.StoredEvent) error
	// txType is the transaction type TxFunc takes, or nil for Func.
	txType() reflect.Type
}

// Func returns a Handler that calls fn for each event. The checkpoint
// moves past an event only after fn returned nil for it (or the event was
// parked); after a crash, the events since the last checkpoint (at most one
// batch, see Options.CheckpointEvery) are delivered again: at least once.
func Func(fn func(ctx context.Context, e *eventstore.StoredEvent) error) Handler {
	return funcHandler(fn)
}

type funcHandler func(ctx context.Context, e *eventstore.StoredEvent) error

func (h funcHandler) call(ctx context.Context, _ any, e *eventstore.StoredEvent) error {
	return h(ctx, e)
}

func (funcHandler) txType() reflect.Type { return nil }

// TxFunc returns a Handler that calls fn inside a transaction on the
// store's own database, which the consumer commits together with its
// checkpoint: a read model kept in SQL tables there changes exactly once
// per event, even across crashes. T is the engine's transaction type:
// pgx.Tx on PostgreSQL, *sql.Tx on SQLite (Run reports a *TxTypeError
// otherwise). fn must not commit or roll back tx, and must not write to
// the store through the Store meanwhile (on SQLite that write would wait
// for this transaction). One transaction covers the events of a
// checkpoint batch; when fn fails, the batch's earlier events are handled
// again in a new transaction, and the failing event is retried alone.
func TxFunc[T any](fn func(ctx context.Context, tx T, e *eventstore.StoredEvent) error) Handler {
	return txHandler[T](fn)
}

type txHandler[T any] func(ctx context.Context, tx T, e *eventstore.StoredEvent) error

func (h txHandler[T]) call(ctx context.Context, tx any, e *eventstore.StoredEvent) error {
	t, ok := tx.(T)
	if !ok {
		return &TxTypeError{Want: reflect.TypeFor[T]().String(), Got: fmt.Sprintf("%T", tx)}
	}
	return h(ctx, t, e)
}

func (txHandler[T]) txType() reflect.Type { return reflect.TypeFor[T]() }

// safeCall calls h, turning a panic into a *PanicError.
func safeCall(ctx context.Context, h Handler, tx any, e *eventstore.StoredEvent) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return h.call(ctx, tx, e)
}

// WithTx runs fn in a transaction on the store's database, of the type a
// TxFunc handler gets (pgx.Tx on PostgreSQL, *sql.Tx on SQLite), and
// commits it when fn returns nil (otherwise rolls it back and returns fn's
// error): create a read model's tables, read them. A T the engine does not
// give is a *TxTypeError. On SQLite the transaction holds the store's
// write lock: keep it short.
func WithTx[T any](ctx context.Context, s *eventstore.Store, fn func(ctx context.Context, tx T) error) error {
	d, err := storeDriver(ctx, s)
	if err != nil {
		return err
	}
	tx, err := d.BeginConsumerTx(ctx)
	if err != nil {
		return err
	}
	t, ok := tx.Raw().(T)
	if !ok {
		_ = tx.Rollback(ctx)
		return &TxTypeError{Want: reflect.TypeFor[T]().String(), Got: fmt.Sprintf("%T", tx.Raw())}
	}
	if err := fn(ctx, t); err != nil {
		_ = tx.Rollback(ctx)
		return err
	}
	return tx.Commit(ctx)
}
