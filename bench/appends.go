package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/esctl/esctl/eventstore"
)

// runSaveEvent measures SaveEvent throughput with clients goroutines on one
// Store, each appending single events to new aggregates (version 1), next
// to the engine's ceiling of one-row write transactions with as many
// clients, or with group, of the same rows grouped by hand into one
// transaction per round. Store and ceiling each get a fresh database.
func runSaveEvent(clients int, group bool) func(ctx context.Context, e *engineEnv) (*figures, error) {
	return func(ctx context.Context, e *engineEnv) (f *figures, err error) {
		label := fmt.Sprintf("save%d", clients)
		storeURL, dropStore, err := initDatabase(ctx, e.b, label)
		if err != nil {
			return nil, err
		}
		defer func() { err = errors.Join(err, dropStore()) }()
		ceilingURL, dropCeiling, err := initDatabase(ctx, e.b, label+"_ceiling")
		if err != nil {
			return nil, err
		}
		defer func() { err = errors.Join(err, dropCeiling()) }()
		s, err := openStore(ctx, storeURL)
		if err != nil {
			return nil, err
		}
		defer func() { err = errors.Join(err, s.Close()) }()

		payloads := payloadPool(e.cfg.corpus(), 1024)
		store := func(ctx context.Context, run int) (float64, error) {
			return closedLoop(ctx, clients, e.cfg.Duration, func(ctx context.Context, client, i int) error {
				_, err := s.SaveEvent(ctx, eventstore.Event{
					AggregateID:      fmt.Sprintf("writer-%d-%d-%d", run, client, i),
					AggregateVersion: 1,
					Type:             corpusTypes[i%len(corpusTypes)],
					Payload:          []byte(payloads[i%len(payloads)]),
				})
				return err
			})
		}
		limit := func(ctx context.Context, _ int) (float64, error) {
			if group {
				return e.b.groupCeiling(ctx, ceilingURL, clients, e.cfg.Duration)
			}
			return e.b.appendCeiling(ctx, ceilingURL, clients, e.cfg.Duration)
		}
		return e.measurePair(ctx, fmt.Sprintf("save-%d", clients), perSecond, store, limit)
	}
}
