package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/esctl/esctl/consumer"
	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/internal/access"
	"github.com/esctl/esctl/internal/driver"
)

// Subscriptions: catch-up throughput against LoadEvents, append-to-delivery
// latency at a steady rate against the append's own commit latency, and
// what 100 subscribers at the tail cost against one.

// subscribeRate is the steady append rate of the fan-out rows.
const subscribeRate = 1_000

// runSubscribeCatchUp reads the whole read store with one subscription
// (until it reaches the store's end), next to paging it with LoadEvents.
func runSubscribeCatchUp(ctx context.Context, e *engineEnv) (*figures, error) {
	s, _, err := e.reader(ctx)
	if err != nil {
		return nil, err
	}
	return e.measurePair(ctx, "subscribe-catchup", perSecond,
		rate(e.cfg.Events, func(ctx context.Context) (int, error) { return catchUp(ctx, s, int64(e.cfg.Events)) }),
		rate(e.cfg.Events, func(ctx context.Context) (int, error) { return scanStore(ctx, s, nil, pageSize) }))
}

// catchUp counts a subscription's events from the start until position end.
func catchUp(ctx context.Context, s *eventstore.Store, end int64) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n := 0
	for d, err := range s.Subscribe(ctx, eventstore.Filter{Limit: pageSize}) {
		if err != nil {
			return n, err
		}
		if d.Event != nil {
			n++
		}
		if pos, _ := d.Cursor.Position(); pos >= end {
			return n, nil
		}
	}
	return n, errors.New("the subscription ended early")
}

// fanOut is measured once for its two rows.
type fanOut struct{ reads, cpu figures }

func runFanOutReads(ctx context.Context, e *engineEnv) (*figures, error) {
	f, err := e.fanOut(ctx)
	if err != nil {
		return nil, err
	}
	return &f.reads, nil
}

func runFanOutCPU(ctx context.Context, e *engineEnv) (*figures, error) {
	f, err := e.fanOut(ctx)
	if err != nil {
		return nil, err
	}
	return &f.cpu, nil
}

// fanOut appends at subscribeRate events/s for the run duration with 100
// subscriptions at the end (store) and with 1 (limit), and counts the
// subscriptions' Store's reads per second and the process's CPU time per
// second of the run.
func (e *engineEnv) fanOut(ctx context.Context) (*fanOut, error) {
	if e.fan != nil {
		return e.fan, nil
	}
	out := &fanOut{}
	for run := range e.cfg.Runs {
		for _, subs := range []int{100, 1} {
			reads, cpu, err := e.fanOutRun(ctx, run, subs)
			if err != nil {
				return nil, err
			}
			if subs == 100 {
				out.reads.Store, out.cpu.Store = append(out.reads.Store, reads), append(out.cpu.Store, cpu)
			} else {
				out.reads.Limit, out.cpu.Limit = append(out.reads.Limit, reads), append(out.cpu.Limit, cpu)
			}
			e.log.printf("[%s] fan-out run %d/%d, %d subscribers: %.0f reads/s, %.0f ms CPU/s", e.name, run+1, e.cfg.Runs, subs, reads, cpu)
		}
	}
	e.fan = out
	return out, nil
}

func (e *engineEnv) fanOutRun(ctx context.Context, run, subs int) (reads, cpuMillis float64, err error) {
	url, drop, err := initDatabase(ctx, e.b, fmt.Sprintf("fanout%d_%d", run, subs))
	if err != nil {
		return 0, 0, err
	}
	defer func() { err = errors.Join(err, drop()) }()
	plain, err := openStore(ctx, url)
	if err != nil {
		return 0, 0, err
	}
	defer func() { err = errors.Join(err, plain.Close()) }()
	counter := &countingDriver{Driver: access.Driver(plain)}
	var d driver.Driver = counter
	if _, ok := access.Driver(plain).(driver.Listener); ok {
		d = countingListener{counter}
	}
	s, err := eventstore.New(d, nil)
	if err != nil {
		return 0, 0, err
	}
	defer func() { err = errors.Join(err, s.Close()) }()
	writer := plain // another Store on the same database: NOTIFY on PostgreSQL, polling on SQLite
	if e.name == "sqlite" {
		writer = s // wake-ups cross no process on SQLite
	}
	n := int(e.cfg.Duration.Seconds() * subscribeRate)
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var failed atomic.Value
	var delivered atomic.Int64
	for range subs {
		wg.Go(func() {
			for d, err := range s.Subscribe(sctx, eventstore.Filter{}) {
				if err != nil {
					if sctx.Err() == nil {
						failed.Store(err)
					}
					return
				}
				if d.Event != nil && delivered.Add(1) == int64(n*subs) {
					return
				}
			}
		})
	}
	time.Sleep(300 * time.Millisecond) // every subscription at the end
	payloads := payloadPool(e.cfg.corpus(), 64)
	counter.reads.Store(0)
	cpu0 := cpuTime()
	start := time.Now()
	for v := 1; v <= n; v++ {
		if wait := time.Until(start.Add(time.Duration(v) * time.Second / subscribeRate)); wait > 0 {
			time.Sleep(wait)
		}
		if _, err := writer.SaveEvent(ctx, eventstore.Event{AggregateID: "fanout", AggregateVersion: int64(v), Type: corpusTypes[0], Payload: []byte(payloads[v%len(payloads)])}); err != nil {
			cancel()
			wg.Wait()
			return 0, 0, err
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for delivered.Load() < int64(n*subs) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start).Seconds()
	cpu := cpuTime() - cpu0
	nreads := counter.reads.Load()
	cancel()
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		return 0, 0, err
	}
	if got := delivered.Load(); got < int64(n*subs) {
		return 0, 0, fmt.Errorf("%d subscriptions received %d of %d deliveries", subs, got, n*subs)
	}
	return float64(nreads) / elapsed, float64(cpu) / float64(time.Millisecond) / elapsed, nil
}

// countingDriver counts a Store's event reads (the tail's and the
// catch-ups').
type countingDriver struct {
	driver.Driver
	reads atomic.Int64
}

func (c *countingDriver) ListEvents(ctx context.Context, p *driver.ListEventsParams) (*driver.ListEventsResult, error) {
	c.reads.Add(1)
	return c.Driver.ListEvents(ctx, p)
}

// countingListener keeps the counted driver's wake-ups.
type countingListener struct{ *countingDriver }

func (c countingListener) Listen(ctx context.Context, wake func()) error {
	return c.Driver.(driver.Listener).Listen(ctx, wake)
}

// runConsumer runs a durable consumer with a no-op handler over the whole
// read store, checkpoint every 1,000 events, next to paging the store
// with LoadEvents: the consumer's cost over the reads it does anyway. Each
// run is a new consumer (a name of its own), from the start of the store.
func runConsumer(ctx context.Context, e *engineEnv) (*figures, error) {
	s, _, err := e.reader(ctx)
	if err != nil {
		return nil, err
	}
	end := int64(e.cfg.Events)
	return e.measurePair(ctx, "consumer", perSecond,
		func(ctx context.Context, run int) (float64, error) {
			return consumeAll(ctx, s, fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), run), end)
		},
		rate(e.cfg.Events, func(ctx context.Context) (int, error) { return scanStore(ctx, s, nil, pageSize) }))
}

// consumeAll runs consumer name from the start until its checkpoint
// reaches end, and returns the events handled per second.
func consumeAll(ctx context.Context, s *eventstore.Store, name string, end int64) (float64, error) {
	var handled atomic.Int64
	reached := make(chan struct{})
	var once sync.Once
	c, err := consumer.New(s, name, consumer.Func(func(context.Context, *eventstore.StoredEvent) error {
		handled.Add(1)
		return nil
	}), &consumer.Options{CheckpointEvery: 1_000, CheckpointFunc: func(st consumer.Stats) {
		if st.Checkpoint >= end {
			once.Do(func() { close(reached) })
		}
	}})
	if err != nil {
		return 0, err
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ran := make(chan error, 1)
	start := time.Now()
	go func() { ran <- c.Run(rctx) }()
	select {
	case <-reached:
	case err := <-ran:
		return 0, fmt.Errorf("the consumer stopped early: %v", err)
	}
	elapsed := time.Since(start)
	cancel()
	if err := <-ran; err != nil {
		return 0, err
	}
	if n := handled.Load(); n != end {
		return 0, fmt.Errorf("the consumer handled %d events, want %d", n, end)
	}
	return float64(end) / elapsed.Seconds(), errors.Join(consumer.Delete(ctx, s, name, nil))
}
