package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/esctl/esctl/eventstore"
)

// Follow latency: a child process appends at a steady rate to a fresh
// store; a subscription of this process, at the end, receives. Each event
// carries the wall-clock time its append began (both processes read the
// same clock), and the store figure is the time from there to the
// delivery; the limit is the append call itself, measured by the child.
// The only wake-ups that cross the processes are the engine's own
// (PostgreSQL: NOTIFY; SQLite: PRAGMA data_version).

// followRates are the rows' append rates, events/s.
var followRates = []int{1_000, 10}

// followIdle is how long the child waits, after opening its store, before
// its first append: the subscription is at the end and its polling has
// backed off.
const followIdle = 500 * time.Millisecond

// followFigures is one rate's measurement, shared by its three rows.
type followFigures struct{ p50, p99, max figures }

// followDuration is how long one run appends at rate: the run duration,
// and at least 10 s at low rates so that p99 has 100 events.
func (e *engineEnv) followDuration(rate int) time.Duration {
	return max(e.cfg.Duration, time.Duration(100/rate)*time.Second)
}

// followRow is one of a rate's three rows; targets are by engine.
func followRow(rate int, stat string, targets map[string]*target) benchmark {
	return benchmark{
		ID:      fmt.Sprintf("follow-%d-%s", rate, stat),
		Name:    fmt.Sprintf("append in another process to delivery at %s events/s, %s (ms; limit: the append)", groupThousands(int64(rate)), stat),
		Unit:    millis,
		Targets: targets,
		Run: func(ctx context.Context, e *engineEnv) (*figures, error) {
			f, err := e.followLatency(ctx, rate)
			if err != nil {
				return nil, err
			}
			switch stat {
			case "p50":
				return &f.p50, nil
			case "p99":
				return &f.p99, nil
			}
			return &f.max, nil
		},
	}
}

// followLatency measures rate's runs once for its three rows.
func (e *engineEnv) followLatency(ctx context.Context, rate int) (*followFigures, error) {
	if f := e.follow[rate]; f != nil {
		return f, nil
	}
	out := &followFigures{}
	for run := range e.cfg.Runs {
		deliver, commit, err := e.followRun(ctx, rate, run)
		if err != nil {
			return nil, err
		}
		for _, p := range []struct {
			f *figures
			q float64
		}{{&out.p50, 50}, {&out.p99, 99}, {&out.max, 100}} {
			p.f.Store = append(p.f.Store, percentile(deliver, p.q))
			p.f.Limit = append(p.f.Limit, percentile(commit, p.q))
		}
		e.log.printf("[%s] follow at %d/s run %d/%d: delivery p50 %.2f p99 %.2f max %.2f ms, append p50 %.2f p99 %.2f ms",
			e.name, rate, run+1, e.cfg.Runs, out.p50.Store[run], out.p99.Store[run], out.max.Store[run], out.p50.Limit[run], out.p99.Limit[run])
	}
	if e.follow == nil {
		e.follow = map[int]*followFigures{}
	}
	e.follow[rate] = out
	return out, nil
}

// followPayload is the events' payload: when the append began.
type followPayload struct {
	StartedNs int64 `json:"startedNs"`
	Seq       int   `json:"seq"`
}

// followRun is one run on a fresh store: delivery and append latencies in
// ms, one per event.
func (e *engineEnv) followRun(ctx context.Context, rate, run int) (deliver, commit []float64, err error) {
	url, drop, err := initDatabase(ctx, e.b, fmt.Sprintf("follow%d_%d", rate, run))
	if err != nil {
		return nil, nil, err
	}
	defer func() { err = errors.Join(err, drop()) }()
	sub, err := openStore(ctx, url)
	if err != nil {
		return nil, nil, err
	}
	defer func() { err = errors.Join(err, sub.Close()) }()
	d := e.followDuration(rate)
	n := int(d.Seconds() * float64(rate))

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type received struct {
		deliver []float64
		err     error
	}
	got := make(chan received, 1)
	go func() {
		var r received
		for dl, err := range sub.Subscribe(sctx, eventstore.Filter{}) {
			if err != nil {
				r.err = err
				break
			}
			if dl.Event == nil {
				continue
			}
			at := time.Now().UnixNano()
			var p followPayload
			if err := json.Unmarshal(dl.Event.Payload, &p); err != nil {
				r.err = err
				break
			}
			r.deliver = append(r.deliver, float64(at-p.StartedNs)/1e6)
			if len(r.deliver) == n {
				break
			}
		}
		got <- r
	}()
	child, err := runChild(ctx, "follow-writer", childArgs{Engine: e.name, URL: url, Rate: rate, Events: n})
	if err != nil {
		return nil, nil, err
	}
	var r received
	select {
	case r = <-got:
	case <-time.After(30 * time.Second):
		return nil, nil, errors.New("the subscription did not receive every event within 30 s of the last append")
	}
	if r.err != nil {
		return nil, nil, r.err
	}
	return r.deliver, child.Result.AppendMs, nil
}

// childFollowWriter opens the store, waits followIdle, then appends
// a.Events events at a.Rate per second to one aggregate, each payload
// holding the time its append began, and reports each append's duration.
func childFollowWriter(ctx context.Context, a childArgs) (res childResult, err error) {
	s, err := eventstore.Open(ctx, a.URL, nil)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, s.Close()) }()
	time.Sleep(followIdle)
	start := time.Now()
	for v := 1; v <= a.Events; v++ {
		if wait := time.Until(start.Add(time.Duration(v-1) * time.Second / time.Duration(a.Rate))); wait > 0 {
			time.Sleep(wait)
		}
		began := time.Now()
		payload, err := json.Marshal(followPayload{StartedNs: began.UnixNano(), Seq: v})
		if err != nil {
			return res, err
		}
		if _, err := s.SaveEvent(ctx, eventstore.Event{AggregateID: "follow", AggregateVersion: int64(v), Type: corpusTypes[0], Payload: payload}); err != nil {
			return res, err
		}
		res.AppendMs = append(res.AppendMs, float64(time.Since(began))/float64(time.Millisecond))
	}
	res.Events = a.Events
	return res, nil
}
