package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/esctl/esctl/eventstore"
)

// Several processes appending to one store (issue 28): processWriters
// processes of processGoroutines goroutines each append single events to
// fresh aggregates for twice -duration (10 s by default), while another process freezes the
// store for 50 ms every second. The limit is the same work from one process
// with processWriters*processGoroutines goroutines (and the same toggler):
// what the store does when one process owns the lock. The rows: total
// events/s against that limit, the slowest process's share of a fair share
// (100% = total/processes), and the p99 and max of an acknowledged append's
// latency.
const (
	processWriters    = 4
	processGoroutines = 8
)

// processFigures memoizes the runs of the several-processes rows.
type processFigures struct {
	total, share, p99, max figures
}

func runProcesses(ctx context.Context, e *engineEnv) (*figures, error) {
	p, err := e.processRuns(ctx)
	if err != nil {
		return nil, err
	}
	return &p.total, nil
}

func runProcessesShare(ctx context.Context, e *engineEnv) (*figures, error) {
	p, err := e.processRuns(ctx)
	if err != nil {
		return nil, err
	}
	return &p.share, nil
}

func runProcessesP99(ctx context.Context, e *engineEnv) (*figures, error) {
	p, err := e.processRuns(ctx)
	if err != nil {
		return nil, err
	}
	return &p.p99, nil
}

func runProcessesMax(ctx context.Context, e *engineEnv) (*figures, error) {
	p, err := e.processRuns(ctx)
	if err != nil {
		return nil, err
	}
	return &p.max, nil
}

// processRuns runs, cfg.Runs times, the several-processes workload and the
// one-process limit, alternately, each into a fresh store.
func (e *engineEnv) processRuns(ctx context.Context) (*processFigures, error) {
	if e.procs != nil {
		return e.procs, nil
	}
	out := &processFigures{}
	secs := int(2 * e.cfg.Duration / time.Second)
	for run := range e.cfg.Runs {
		for _, procs := range []int{processWriters, 1} {
			e.log.printf("%s: %d process(es) appending for %d s (run %d)", e.name, procs, secs, run+1)
			rs, err := e.processRun(ctx, procs, processWriters*processGoroutines/procs, secs)
			if err != nil {
				return nil, err
			}
			total := 0
			var worst int
			var p99, mx float64
			for i, r := range rs {
				total += r.Events
				if i == 0 || r.Events < worst {
					worst = r.Events
				}
				p99, mx = max(p99, r.P99Ms), max(mx, r.MaxMs)
			}
			rate := float64(total) / float64(secs)
			if procs == 1 {
				// The limit: one process holds its whole fair share, and
				// its latencies are those of the lock with no other
				// process contending.
				out.total.Limit = append(out.total.Limit, rate)
				out.share.Limit = append(out.share.Limit, 100)
				out.p99.Limit = append(out.p99.Limit, p99)
				out.max.Limit = append(out.max.Limit, mx)
				continue
			}
			out.total.Store = append(out.total.Store, rate)
			out.share.Store = append(out.share.Store, 100*float64(worst)/(float64(total)/float64(procs)))
			out.p99.Store = append(out.p99.Store, p99)
			out.max.Store = append(out.max.Store, mx)
		}
	}
	e.procs = out
	return out, nil
}

// processRun starts the toggler and procs writer processes of goroutines
// each on a fresh store and returns the writers' results.
func (e *engineEnv) processRun(ctx context.Context, procs, goroutines, secs int) ([]childResult, error) {
	url, drop, err := initDatabase(ctx, e.b, "procs")
	if err != nil {
		return nil, err
	}
	defer func() { _ = drop() }()
	a := childArgs{Engine: e.name, URL: url, Goroutines: goroutines, Seconds: secs}
	results := make([]childResult, procs)
	errs := make([]error, procs+1)
	var wg sync.WaitGroup
	for i := range procs + 1 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			task := "append-writer"
			if i == procs {
				task = "freeze-toggler"
			}
			a := a
			a.Seq = i
			r, err := runChild(ctx, task, a)
			if err != nil {
				errs[i] = err
				return
			}
			if i < procs {
				results[i] = r.Result
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return results, nil
}

// childAppendWriter appends from a.Goroutines goroutines for a.Seconds and
// reports the acknowledged events and their latency. A frozen store is
// waited out (5 ms); any other error ends the run.
func childAppendWriter(ctx context.Context, a childArgs) (childResult, error) {
	s, err := eventstore.Open(ctx, a.URL, nil)
	if err != nil {
		return childResult{}, err
	}
	defer s.Close()
	deadline := time.Now().Add(time.Duration(a.Seconds) * time.Second)
	var mu sync.Mutex
	var lat []time.Duration
	var firstErr error
	var wg sync.WaitGroup
	payload := []byte(`{"amount":42,"currency":"EUR","memo":"several processes"}`)
	for g := range a.Goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; time.Now().Before(deadline); n++ {
				start := time.Now()
				_, err := s.SaveEvent(ctx, eventstore.Event{AggregateID: fmt.Sprintf("p%d-g%d-%d", a.Seq, g, n), AggregateVersion: 1, Type: "Appended", Payload: payload})
				took := time.Since(start)
				switch {
				case err == nil:
					mu.Lock()
					lat = append(lat, took)
					mu.Unlock()
				case errors.Is(err, eventstore.ErrFrozen):
					time.Sleep(5 * time.Millisecond)
				default:
					mu.Lock()
					firstErr = cmpErr(firstErr, err)
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return childResult{}, firstErr
	}
	slices.Sort(lat)
	r := childResult{Events: len(lat)}
	if len(lat) > 0 {
		r.P99Ms = float64(lat[len(lat)*99/100]) / float64(time.Millisecond)
		r.MaxMs = float64(lat[len(lat)-1]) / float64(time.Millisecond)
	}
	return r, nil
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// childFreezeToggler freezes the store for 50 ms every second for
// a.Seconds, and leaves it unfrozen.
func childFreezeToggler(ctx context.Context, a childArgs) (childResult, error) {
	s, err := eventstore.Open(ctx, a.URL, nil)
	if err != nil {
		return childResult{}, err
	}
	defer s.Close()
	deadline := time.Now().Add(time.Duration(a.Seconds) * time.Second)
	n := 0
	for time.Now().Add(time.Second).Before(deadline) {
		time.Sleep(950 * time.Millisecond)
		if err := s.Freeze(ctx, ""); err != nil {
			return childResult{}, fmt.Errorf("freeze: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
		if err := s.Unfreeze(ctx); err != nil {
			return childResult{}, fmt.Errorf("unfreeze: %w", err)
		}
		n++
	}
	return childResult{Events: n}, nil
}
