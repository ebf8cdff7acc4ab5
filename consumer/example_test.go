package consumer_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	_ "github.com/esctl/esctl/adapters/sqlite" // links the SQLite engine into Open
	"github.com/esctl/esctl/consumer"
	"github.com/esctl/esctl/eventstore"
)

func openExampleStore() (*eventstore.Store, func()) {
	dir, err := os.MkdirTemp("", "consumer-example")
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	s, err := eventstore.Open(ctx, "sqlite://"+filepath.Join(dir, "events.db"), nil)
	if err != nil {
		log.Fatal(err)
	}
	if err := s.Init(ctx); err != nil {
		log.Fatal(err)
	}
	return s, func() { _ = s.Close(); _ = os.RemoveAll(dir) }
}

// A durable consumer keeps a SQL read model in the store's own database:
// the handler's writes and the checkpoint commit in one transaction, so
// each event counts exactly once, across crashes and restarts.
func ExampleTxFunc() {
	s, done := openExampleStore()
	defer done()
	ctx := context.Background()
	for i, amount := range []int{100, -30, 45} {
		_, err := s.SaveEvent(ctx, eventstore.Event{AggregateID: "acc-1", AggregateVersion: int64(i + 1), Type: "Deposited", Payload: fmt.Appendf(nil, `{"amount":%d}`, amount)})
		if err != nil {
			log.Fatal(err)
		}
	}

	// On SQLite the handler gets a *sql.Tx (on PostgreSQL, a pgx.Tx).
	balances := consumer.TxFunc(func(ctx context.Context, tx *sql.Tx, e *eventstore.StoredEvent) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO balances (id, cents) VALUES (?1, ?2->>'amount')
			ON CONFLICT (id) DO UPDATE SET cents = cents + excluded.cents`, e.AggregateID, string(e.Payload))
		return err
	})
	createBalances(s)
	c, err := consumer.New(s, "balances", balances, nil)
	if err != nil {
		log.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- c.Run(rctx) }()
	for c.Stats().Checkpoint < 3 {
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	if err := <-ran; err != nil {
		log.Fatal(err)
	}

	info, err := consumer.Get(ctx, s, "balances")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("checkpoint:", info.Checkpoint, "lag:", info.Lag)
	// Output: checkpoint: 3 lag: 0
}

// createBalances creates the example's read model table.
func createBalances(s *eventstore.Store) {
	err := consumer.WithTx(context.Background(), s, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `CREATE TABLE balances (id TEXT PRIMARY KEY, cents INTEGER NOT NULL)`)
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
}
