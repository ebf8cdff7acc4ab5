// Package consumer runs durable consumers on an event store: named
// projections and processes whose checkpoint the store keeps, that run once
// across a fleet, in groups for parallelism, and that never lose or skip an
// event.
//
// A Consumer follows the store (eventstore.Store.Subscribe) from its
// checkpoint and hands each event to its Handler. The checkpoint is saved
// every Options.CheckpointEvery events or Options.CheckpointInterval,
// whichever comes first, and never moves past an event whose handler has
// not returned successfully: delivery is at least once, and after a crash
// the events since the last checkpoint (at most one batch) are delivered
// again. A TxFunc handler writes its SQL read model in the transaction that
// also saves the checkpoint, so that its effects happen exactly once.
//
// Each member of a consumer holds a lease (a row of the store's
// esctl_consumers table, on the database server's clock on PostgreSQL):
// one instance handles a member's events at a time, wherever the others
// run. When the holder dies, another instance takes the member over within
// LeaseTTL + LeaseTTL/4 (the lease runs out, and waiting instances try
// every LeaseTTL/4). A holder that cannot renew its lease in time stops
// handling before the lease can end.
//
// A group of N members splits the events by aggregate: member
// Owner(aggregateID, N) handles every event of an aggregate, in version
// order. Each member has its own checkpoint. An instance runs several
// members; by default (Options.Pin nil) the instances balance the members
// among themselves (heartbeats in esctl_consumer_instances), handing
// members over after the event in flight and its checkpoint when others
// join, and taking a dead instance's members when its leases run out.
// Changing N is Resize, with
// every member stopped: the new members start from the lowest checkpoint
// of the old ones, so nothing is skipped (events some old member had
// handled already are handled again).
//
// A handler that fails is retried with backoff (Options.MaxAttempts,
// RetryMin, RetryMax); then the event is parked (esctl_parked_events, with
// the error) and the consumer goes on. Replay (esctl consumers replay)
// asks the running member to handle parked events again; a replay never
// moves a checkpoint.
package consumer

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/internal/access"
	"github.com/esctl/esctl/internal/driver"
)

// Defaults for Options.
const (
	DefaultCheckpointEvery    = 1_000
	DefaultCheckpointInterval = time.Second
	DefaultLeaseTTL           = 15 * time.Second
	DefaultMaxAttempts        = 5
	DefaultRetryMin           = 100 * time.Millisecond
	DefaultRetryMax           = 10 * time.Second
	// MaxNameLen is the longest consumer name, in bytes.
	MaxNameLen = 200
	// pageSize is the consumer's subscription page size.
	pageSize = 1_000
	// deliveryBuffer is how many deliveries the reader keeps ready ahead
	// of the handler.
	deliveryBuffer = 1_024
	// stopTimeout bounds the final checkpoint and lease release after
	// Run's context ended.
	stopTimeout = 5 * time.Second
)

// StartAt is where a consumer that the store has no record of begins.
type StartAt int

const (
	// FromBeginning: the first event of the store is its first event.
	FromBeginning StartAt = iota
	// FromEnd: events appended after the consumer is first created.
	FromEnd
)

// Options configure a Consumer. The zero value means the defaults.
type Options struct {
	// Members is the group's size (0 means 1). Every instance of a
	// consumer is started with the same Members; see Resize.
	Members int
	// Pin, when set, are the members this instance runs (each
	// 0..Members-1), and only those. Nil (the default) balances: the
	// instance takes every member no live instance holds, and hands
	// members over when other instances join, so that each of I live
	// instances holds Members/I members or one more.
	Pin []int
	// EventTypes, when set, are the only types handed to the handler;
	// the others still move the checkpoint.
	EventTypes []string
	// Payload and Metadata, when set, hand the handler only the events
	// whose payload (metadata) contains this JSON object (see
	// eventstore.Filter.Payload); the others still move the checkpoint,
	// however sparse the filter (the subscription's progress steps).
	Payload  json.RawMessage
	Metadata json.RawMessage
	// StartAt is where a new consumer begins (a recorded one resumes
	// from its checkpoint).
	StartAt StartAt
	// CheckpointEvery and CheckpointInterval: the checkpoint is saved
	// after this many events or this long after the first unsaved one,
	// whichever comes first: at most CheckpointEvery events are handled
	// again after a crash. (A Func handler's checkpoints are saved in the
	// background every half batch, the handler waiting only for the save
	// before the last one.) CheckpointInterval must be at most a third of
	// LeaseTTL.
	CheckpointEvery    int
	CheckpointInterval time.Duration
	// LeaseTTL is how long a lease lasts without renewal (renewed every
	// LeaseTTL/3).
	LeaseTTL time.Duration
	// MaxAttempts is how many times an event is handed to the handler
	// before it is parked (1: no retry); RetryMin and RetryMax bound the
	// backoff between attempts, which doubles.
	MaxAttempts int
	RetryMin    time.Duration
	RetryMax    time.Duration
	// Instance names this instance as a lease holder; "" means
	// host/pid/random.
	Instance string
	// Logger receives warnings (retries, parked events, lost leases);
	// nil is silent. Payloads are never logged.
	Logger *slog.Logger
	// CheckpointFunc, when set, is called after each checkpoint saved,
	// with the consumer's statistics (from the goroutine of the member
	// that saved it: concurrently when the instance runs several members;
	// keep it short).
	CheckpointFunc func(Stats)
}

func (o *Options) resolved() Options {
	var r Options
	if o != nil {
		r = *o
	}
	r.Members = cmp.Or(r.Members, 1)
	r.CheckpointEvery = cmp.Or(r.CheckpointEvery, DefaultCheckpointEvery)
	r.CheckpointInterval = cmp.Or(r.CheckpointInterval, DefaultCheckpointInterval)
	r.LeaseTTL = cmp.Or(r.LeaseTTL, DefaultLeaseTTL)
	r.MaxAttempts = cmp.Or(r.MaxAttempts, DefaultMaxAttempts)
	r.RetryMin = cmp.Or(r.RetryMin, DefaultRetryMin)
	r.RetryMax = cmp.Or(r.RetryMax, DefaultRetryMax)
	if r.Instance == "" {
		r.Instance = defaultInstance()
	}
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	return r
}

func defaultInstance() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%s", cmp.Or(host, "host"), os.Getpid(), hex.EncodeToString(b[:]))
}

// Stats are a consumer instance's figures.
type Stats struct {
	Name string
	// Running are the members this instance runs (holds the lease of),
	// in order; Members is the group's size.
	Running []int
	Members int
	// Position is the last event handled (or skipped: not the member's,
	// not of its types); Checkpoint the last saved (the lowest of the
	// members running).
	Position   int64
	Checkpoint int64
	// End is the store's last position (read at most once a second,
	// after a checkpoint save); Lag = End - Checkpoint events.
	End int64
	Lag int64
	// Handled counts the events this instance handed to its handler
	// successfully, Parked those it parked, Replayed the parked events it
	// handled again; Rate is handled events per second between the last
	// two checkpoints.
	Handled  int64
	Parked   int64
	Replayed int64
	Rate     float64
	// Active reports whether the instance holds a lease (Running is not
	// empty).
	Active bool
}

// Consumer is one instance of a named consumer. Run it; Stats may be read
// from any goroutine.
type Consumer struct {
	s    *eventstore.Store
	d    driver.Driver
	name string
	h    Handler
	o    Options

	mu       sync.Mutex
	stats    Stats
	running  map[int]*memberPos // the members run, under mu
	lastSave time.Time          // for Stats.Rate, under mu
	lastRate int64

	handled atomic.Int64
}

// New returns an instance of consumer name over store s.
func New(s *eventstore.Store, name string, h Handler, opts *Options) (*Consumer, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	if h == nil {
		return nil, errors.New("consumer: nil handler")
	}
	o := opts.resolved()
	switch {
	case o.Members < 1:
		return nil, fmt.Errorf("consumer: Members is %d: use 1 or more", o.Members)
	case !validPin(o.Pin, o.Members):
		return nil, fmt.Errorf("consumer: Pin is %v: use distinct members 0..%d", o.Pin, o.Members-1)
	case o.CheckpointEvery < 1, o.MaxAttempts < 1, o.LeaseTTL < 3*time.Millisecond, o.RetryMin <= 0, o.RetryMax < o.RetryMin:
		return nil, errors.New("consumer: CheckpointEvery, MaxAttempts, LeaseTTL and the retry bounds must be positive, RetryMax >= RetryMin")
	case 3*o.CheckpointInterval > o.LeaseTTL:
		return nil, fmt.Errorf("consumer: CheckpointInterval (%s) must be at most a third of LeaseTTL (%s)", o.CheckpointInterval, o.LeaseTTL)
	}
	if err := (&eventstore.Filter{Payload: o.Payload, Metadata: o.Metadata}).Validate(); err != nil {
		return nil, fmt.Errorf("consumer: %w", err)
	}
	c := &Consumer{s: s, d: access.Driver(s), name: name, h: h, o: o}
	c.stats = Stats{Name: name, Members: o.Members}
	c.running = map[int]*memberPos{}
	c.lastSave = time.Now()
	return c, nil
}

// ValidateName checks a consumer name: 1 to MaxNameLen bytes of UTF-8
// without control characters.
func ValidateName(name string) error {
	if name == "" || len(name) > MaxNameLen {
		return fmt.Errorf("%w: %q: use 1 to %d bytes", ErrInvalidName, name, MaxNameLen)
	}
	for _, r := range name {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return fmt.Errorf("%w: %q holds a control character or invalid UTF-8", ErrInvalidName, name)
		}
	}
	return nil
}

// Owner returns the member of a group of members that handles the events
// of aggregateID: FNV-1a (32 bits) of the id, modulo members. It is part
// of the stored state's meaning (checkpoints per member) and never changes.
func Owner(aggregateID string, members int) int {
	if members <= 1 {
		return 0
	}
	h := uint32(2166136261) // FNV-1a, 32 bits
	for i := 0; i < len(aggregateID); i++ {
		h ^= uint32(aggregateID[i])
		h *= 16777619
	}
	return int(h % uint32(members))
}

// Name returns the consumer's name.
func (c *Consumer) Name() string { return c.name }

// Stats returns the instance's figures.
func (c *Consumer) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.stats
	st.Handled = c.handled.Load()
	st.Running = nil
	for m, p := range c.running {
		st.Running = append(st.Running, m)
		if len(st.Running) == 1 || p.pos < st.Position {
			st.Position = p.pos
		}
		if len(st.Running) == 1 || p.saved < st.Checkpoint {
			st.Checkpoint = p.saved
		}
	}
	slices.Sort(st.Running)
	st.Active = len(st.Running) > 0
	if st.Active {
		st.Lag = max(st.End-st.Checkpoint, 0)
	}
	return st
}

// memberPos is a running member's position and checkpoint (Stats).
type memberPos struct{ pos, saved int64 }

func validPin(pin []int, members int) bool {
	seen := map[int]bool{}
	for _, m := range pin {
		if m < 0 || m >= members || seen[m] {
			return false
		}
		seen[m] = true
	}
	return true
}

func (c *Consumer) update(fn func(st *Stats)) {
	c.mu.Lock()
	fn(&c.stats)
	c.mu.Unlock()
}

// nowMillis is the clock of lease times where the engine uses the
// caller's (SQLite).
func nowMillis() int64 { return time.Now().UnixMilli() }

// renewExpired renews the lease of member that ran out locally, only if
// this instance still holds it, and returns resume; -1 when another
// instance took it, a reset or resize cleared it, or the member's row is
// gone (Run then waits for a lease and starts from the checkpoint).
func (c *Consumer) renewExpired(ctx context.Context, member int, resume int64) (int64, error) {
	var taken bool
	err := c.retry(ctx, "renew the lease", func() (err error) {
		lp := c.leaseParams(member)
		lp.Renew = true
		_, taken, err = c.d.TakeLease(ctx, lp)
		return err
	})
	if err != nil || !taken {
		return -1, err
	}
	c.o.Logger.Info("consumer: lease renewed late; going on", "consumer", c.name, "member", member, "position", resume)
	return resume, nil
}

// transient reports the errors Run waits out.
func transient(err error) bool {
	return errors.Is(err, eventstore.ErrUnavailable) || errors.Is(err, eventstore.ErrTimeout) || errors.Is(err, eventstore.ErrOutcomeUnknown)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// retry runs fn until it succeeds, fails with a non-transient error, or
// ctx ends.
func (c *Consumer) retry(ctx context.Context, what string, fn func() error) error {
	backoff := c.o.RetryMin
	for {
		err := fn()
		if err == nil || !transient(err) {
			return err
		}
		c.o.Logger.Warn("consumer: "+what+" failed; retrying", "consumer", c.name, "err", err, "in", backoff)
		if !sleep(ctx, backoff) {
			return ctx.Err()
		}
		backoff = min(2*backoff, c.o.RetryMax)
	}
}

// prepare records the consumer when the store has none of that name, and
// checks the group size and the handler's transaction type.
func (c *Consumer) prepare(ctx context.Context) error {
	if err := c.retry(ctx, "check the store", func() error { return access.Ready(ctx, c.s) }); err != nil {
		return err
	}
	if t := c.h.txType(); t != nil {
		err := c.retry(ctx, "open a transaction", func() error {
			tx, err := c.d.BeginConsumerTx(ctx)
			if err != nil {
				return err
			}
			raw := tx.Raw()
			_ = tx.Rollback(ctx)
			if !typeOf(raw).AssignableTo(t) {
				return &TxTypeError{Want: t.String(), Got: typeOf(raw).String()}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return c.retry(ctx, "record the consumer", func() error {
		start := int64(0)
		if c.o.StartAt == FromEnd {
			st, err := c.d.ReadState(ctx)
			if err != nil {
				return err
			}
			start = st.LastPosition
		}
		created, err := c.d.CreateConsumer(ctx, &driver.CreateConsumerParams{Name: c.name, Members: c.o.Members, Position: start, Now: nowMillis()})
		if err != nil || created {
			return err
		}
		l, err := c.d.ListConsumers(ctx, c.name)
		if err != nil {
			return err
		}
		for _, r := range l.Rows {
			if r.Members != c.o.Members {
				return &GroupSizeError{Name: c.name, Recorded: r.Members, Given: c.o.Members}
			}
		}
		if len(l.Rows) != c.o.Members {
			return &GroupSizeError{Name: c.name, Recorded: len(l.Rows), Given: c.o.Members}
		}
		return nil
	})
}

func (c *Consumer) leaseParams(member int) *driver.LeaseParams {
	return &driver.LeaseParams{Name: c.name, Member: member, Holder: c.o.Instance, TTL: c.o.LeaseTTL.Milliseconds(), Now: nowMillis()}
}
