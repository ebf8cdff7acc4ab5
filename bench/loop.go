package main

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// closedLoop runs op from clients goroutines, each calling it again as soon
// as it returns, until d has passed, and returns the completed calls per
// second (the elapsed time includes the calls in flight at the deadline).
// The first error stops every goroutine and is returned.
func closedLoop(ctx context.Context, clients int, d time.Duration, op func(ctx context.Context, client, i int) error) (float64, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var done atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for c := range clients {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil && time.Now().Before(deadline); i++ {
				if err := op(ctx, c, i); err != nil {
					cancel(err)
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := context.Cause(ctx); err != nil {
		return 0, err
	}
	return float64(done.Load()) / elapsed.Seconds(), nil
}

// payloadPool returns n payloads of the corpus's kind, generated up front so
// that append loops measure the store, not the generator.
func payloadPool(c corpus, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = string(c.Payload(int64(i)))
	}
	return out
}

// ceilingNonce makes the aggregate ids of successive ceiling runs on one
// database distinct.
var ceilingNonce atomic.Int64
