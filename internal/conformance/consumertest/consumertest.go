// Package consumertest is the conformance suite of durable consumers
// (package consumer) on an engine: adapters' tests call Run with the
// harness they give package conformance. It is apart from the store's
// suite so that the store's suite does not import package consumer, which
// is built on the store.
package consumertest

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/esctl/esctl/consumer"
	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/internal/access"
	"github.com/esctl/esctl/internal/conformance"
)

func init() {
	conformance.RegisterChild("consumer child", envConsumerChild, consumerChild)
}

// Run runs durable consumers (package consumer) on the engine: kill-and-resume with
// at-least-once and exactly-once (TxFunc) handlers, one active instance,
// groups, parking and replay, and the administration functions.
func Run(t *testing.T, h conformance.Harness) {
	t.Run("KillResume", func(t *testing.T) { t.Parallel(); testConsumerKillResume(t, h, "func") })
	t.Run("KillResumeTx", func(t *testing.T) { t.Parallel(); testConsumerKillResume(t, h, "tx") })
	t.Run("SingleActive", func(t *testing.T) { t.Parallel(); testConsumerSingleActive(t, h) })
	t.Run("Group", func(t *testing.T) { t.Parallel(); testConsumerGroup(t, h) })
	t.Run("Balance", func(t *testing.T) { t.Parallel(); testConsumerBalance(t, h, "func") })
	t.Run("BalanceTx", func(t *testing.T) { t.Parallel(); testConsumerBalance(t, h, "tx") })
	t.Run("ParkReplay", func(t *testing.T) { t.Parallel(); testConsumerParkReplay(t, h, "func") })
	t.Run("ParkReplayTx", func(t *testing.T) { t.Parallel(); testConsumerParkReplay(t, h, "tx") })
	t.Run("Admin", func(t *testing.T) { t.Parallel(); testConsumerAdmin(t, h) })
	t.Run("ContentFilter", func(t *testing.T) { t.Parallel(); testConsumerContentFilter(t, h) })
}

// consumerEvents is the size of the kill and group tests: 100,000 events,
// a tenth under the race detector, where the consumer processes run about
// ten times slower (make test runs them at full size in its non-race pass).
func consumerEvents() int {
	if conformance.RaceEnabled {
		return 10_000
	}
	return 100_000
}

// envConsumerChild makes the test binary a consumer process:
// "url|name|mode|log|instance" runs consumer name until it is killed. Mode
// "func" appends each handled position to log (one write per event, which
// a SIGKILL cannot tear); mode "tx" keeps the read model rm_counts in the
// handler's transaction and also logs.
const envConsumerChild = "ESCTL_CONSUMER_CHILD"

// Lease and checkpoint settings of the consumer tests: a killed holder's
// lease ends within childLeaseTTL.
const (
	childLeaseTTL = 3 * time.Second
	// childLeaseTTLRace is the lease under the race detector, where a
	// consumer process runs about ten times slower.
	childLeaseTTLRace      = 6 * time.Second
	childCheckpointEvery   = 1_000
	childCheckpointEveryMs = 200
)

func leaseTTL() time.Duration {
	if conformance.RaceEnabled {
		return childLeaseTTLRace
	}
	return childLeaseTTL
}

func consumerChild(spec string) error {
	parts := strings.Split(spec, "|")
	if len(parts) != 6 {
		return fmt.Errorf("bad %s %q", envConsumerChild, spec)
	}
	url, name, mode, logPath, instance := parts[0], parts[1], parts[2], parts[3], parts[4]
	members, err := strconv.Atoi(parts[5])
	if err != nil {
		return fmt.Errorf("bad %s %q: %w", envConsumerChild, spec, err)
	}
	ctx := context.Background()
	s, err := eventstore.Open(ctx, url, nil)
	if err != nil {
		return err
	}
	defer s.Close()
	log, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	logEvent := func(e *eventstore.StoredEvent) error {
		// One write per event: start and end of the handling, so that the
		// single-active test can compare the instances' intervals.
		start := time.Now().UnixNano()
		_, err := fmt.Fprintf(log, "%d %d %d\n", e.Position, start, time.Now().UnixNano())
		return err
	}
	var h consumer.Handler
	switch mode {
	case "func":
		h = consumer.Func(func(ctx context.Context, e *eventstore.StoredEvent) error { return logEvent(e) })
	case "tx":
		h = readModelHandler(s.Engine(), nil, logEvent)
	default:
		return fmt.Errorf("bad mode %q", mode)
	}
	o := childOptions(instance)
	o.Members = members
	c, err := consumer.New(s, name, h, o)
	if err != nil {
		return err
	}
	return c.Run(ctx)
}

func childOptions(instance string) *consumer.Options {
	return &consumer.Options{
		Instance:           instance,
		Logger:             slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		LeaseTTL:           leaseTTL(),
		CheckpointEvery:    childCheckpointEvery,
		CheckpointInterval: childCheckpointEveryMs * time.Millisecond,
	}
}

// The read model of the TxFunc tests: per aggregate, how many events were
// handled, the last version, and whether every version came in order.
const (
	createReadModelSQL = `CREATE TABLE rm_counts (aggregate_id TEXT PRIMARY KEY, events BIGINT NOT NULL, last_version BIGINT NOT NULL, ordered BOOLEAN NOT NULL)`
	upsertReadModelSQL = `INSERT INTO rm_counts (aggregate_id, events, last_version, ordered) VALUES ($1, 1, CAST($2 AS BIGINT), CAST($2 AS BIGINT) = 1)
ON CONFLICT (aggregate_id) DO UPDATE SET events = rm_counts.events + 1, last_version = excluded.last_version,
ordered = rm_counts.ordered AND rm_counts.last_version + 1 = excluded.last_version`
	readReadModelSQL = `SELECT aggregate_id, events, last_version, ordered FROM rm_counts ORDER BY aggregate_id`
)

// placeholders turns $n into SQLite's ?n.
func placeholders(engine, q string) string {
	if engine == "postgres" {
		return q
	}
	return strings.ReplaceAll(q, "$", "?")
}

// txExec runs a statement in a handler's transaction of either engine.
func txExec(ctx context.Context, tx any, engine, q string, args ...any) error {
	q = placeholders(engine, q)
	switch tx := tx.(type) {
	case pgx.Tx:
		_, err := tx.Exec(ctx, q, args...)
		return err
	case *sql.Tx:
		_, err := tx.ExecContext(ctx, q, args...)
		return err
	}
	return fmt.Errorf("unknown transaction %T", tx)
}

// readModelHandler updates rm_counts in the handler's transaction; fail,
// when set, decides the events it fails on.
func readModelHandler(engine string, fail func(e *eventstore.StoredEvent) bool, also func(e *eventstore.StoredEvent) error) consumer.Handler {
	handle := func(ctx context.Context, tx any, e *eventstore.StoredEvent) error {
		if fail != nil && fail(e) {
			return errors.New("chosen to fail")
		}
		if err := txExec(ctx, tx, engine, upsertReadModelSQL, e.AggregateID, e.AggregateVersion); err != nil {
			return err
		}
		if also != nil {
			return also(e)
		}
		return nil
	}
	if engine == "postgres" {
		return consumer.TxFunc(func(ctx context.Context, tx pgx.Tx, e *eventstore.StoredEvent) error { return handle(ctx, tx, e) })
	}
	return consumer.TxFunc(func(ctx context.Context, tx *sql.Tx, e *eventstore.StoredEvent) error { return handle(ctx, tx, e) })
}

type readModelRow struct {
	events, lastVersion int64
	ordered             bool
}

// withTx runs fn in a transaction of the store's database (the one a
// TxFunc handler gets), committed when fn returns nil.
func withTx(t *testing.T, s *eventstore.Store, fn func(tx any) error) {
	t.Helper()
	ctx := context.Background()
	tx, err := access.Driver(s).BeginConsumerTx(ctx)
	require.NoError(t, err)
	if err := fn(tx.Raw()); err != nil {
		_ = tx.Rollback(ctx)
		require.NoError(t, err)
	}
	require.NoError(t, tx.Commit(ctx))
}

func createReadModel(t *testing.T, s *eventstore.Store) {
	withTx(t, s, func(tx any) error { return txExec(context.Background(), tx, s.Engine(), createReadModelSQL) })
}

func readReadModel(t *testing.T, s *eventstore.Store) map[string]readModelRow {
	out := map[string]readModelRow{}
	ctx := context.Background()
	withTx(t, s, func(tx any) error {
		var rows interface {
			Next() bool
			Scan(dest ...any) error
			Err() error
		}
		switch tx := tx.(type) {
		case pgx.Tx:
			r, err := tx.Query(ctx, readReadModelSQL)
			if err != nil {
				return err
			}
			defer r.Close()
			rows = r
		case *sql.Tx:
			r, err := tx.QueryContext(ctx, readReadModelSQL)
			if err != nil {
				return err
			}
			defer r.Close()
			rows = r
		default:
			return fmt.Errorf("unknown transaction %T", tx)
		}
		for rows.Next() {
			var id string
			var r readModelRow
			if err := rows.Scan(&id, &r.events, &r.lastVersion, &r.ordered); err != nil {
				return err
			}
			out[id] = r
		}
		return rows.Err()
	})
	return out
}

// rebuild is the read model computed from the events.
func rebuild(t *testing.T, s *eventstore.Store) map[string]readModelRow {
	out := map[string]readModelRow{}
	for e, err := range s.Events(context.Background(), eventstore.Filter{}) {
		require.NoError(t, err)
		r := out[e.AggregateID]
		r.events++
		r.ordered = r.lastVersion+1 == e.AggregateVersion && (r.events == 1 || r.ordered)
		r.lastVersion = e.AggregateVersion
		out[e.AggregateID] = r
	}
	return out
}

// appendSpread appends n events over aggregates prefix-0..aggs-1, in calls
// of batch events, each aggregate's versions in order.
func appendSpread(ctx context.Context, s *eventstore.Store, prefix string, aggs, n, batch int) error {
	return appendPaced(ctx, s, prefix, aggs, n, batch, 0)
}

// appendPaced is appendSpread with a pause after each call. On SQLite a
// writer that never pauses starves the other processes' writers (their
// busy handler sleeps between tries and seldom finds the lock free), which
// would hold up a consumer process's checkpoints and lease renewals: the
// kill tests pace their writer as a real application's would be.
func appendPaced(ctx context.Context, s *eventstore.Store, prefix string, aggs, n, batch int, pause time.Duration) error {
	versions := make([]int64, aggs)
	for i := 0; i < n; {
		k := min(batch, n-i)
		events := make([]eventstore.Event, k)
		for j := range events {
			a := (i + j) % aggs
			versions[a]++
			events[j] = eventstore.Event{AggregateID: fmt.Sprintf("%s-%d", prefix, a), AggregateVersion: versions[a], Type: "T", Payload: []byte(fmt.Sprintf(`{"i":%d}`, i+j))}
		}
		if _, err := s.SaveEvents(ctx, events); err != nil {
			return err
		}
		i += k
		if pause > 0 {
			time.Sleep(pause)
		}
	}
	return nil
}

// child is a consumer process.
type child struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

func startChild(t *testing.T, url, name, mode, log, instance string) *child {
	t.Helper()
	return startGroupChild(t, url, name, mode, log, instance, 1)
}

// startGroupChild starts a consumer process of a group of members,
// balanced (no Pin).
func startGroupChild(t *testing.T, url, name, mode, log, instance string, members int) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envConsumerChild+"="+strings.Join([]string{url, name, mode, log, instance, strconv.Itoa(members)}, "|"))
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	c := &child{cmd: cmd, log: log, done: make(chan struct{})}
	go func() { c.err = cmd.Wait(); close(c.done) }()
	t.Cleanup(func() { c.kill() })
	return c
}

func (c *child) kill() {
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
}

// exited reports whether the process ended on its own (a failure: the
// consumer runs until killed).
func (c *child) exited() error {
	select {
	case <-c.done:
		return fmt.Errorf("consumer child exited: %v", c.err)
	default:
		return nil
	}
}

// logLine is one handled event as a child logged it.
type logLine struct {
	pos        int64
	start, end int64 // ns
}

func readLog(t *testing.T, path string) []logLine {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	require.NoError(t, err)
	defer f.Close()
	var out []logLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l logLine
		_, err := fmt.Sscanf(sc.Text(), "%d %d %d", &l.pos, &l.start, &l.end)
		require.NoError(t, err, "log line %q", sc.Text())
		out = append(out, l)
	}
	require.NoError(t, sc.Err())
	return out
}

// checkpoint returns the consumer's checkpoint, -1 before it is recorded.
func checkpoint(t *testing.T, s *eventstore.Store, name string) int64 {
	t.Helper()
	in, err := consumer.Get(context.Background(), s, name)
	if errors.Is(err, consumer.ErrNotFound) {
		return -1
	}
	require.NoError(t, err)
	return in.Checkpoint
}

// waitCheckpoint waits until the consumer's checkpoint reaches pos.
func waitCheckpoint(t *testing.T, s *eventstore.Store, name string, pos int64, within time.Duration, alive func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		cp := checkpoint(t, s, name)
		if cp >= pos {
			return
		}
		if alive != nil {
			require.NoError(t, alive())
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer %s: checkpoint %d has not reached %d within %s", name, cp, pos, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testConsumerKillResume: a consumer process is killed with SIGKILL 5 times
// while 100,000 events are appended, and restarted each time. Every event
// is handled; none is skipped; an event is handled again only by the run
// after a kill, and at most one checkpoint batch of them. With the TxFunc
// handler, the read model equals a rebuild from the events.
func testConsumerKillResume(t *testing.T, h conformance.Harness, mode string) {
	const kills = 5
	total := consumerEvents()
	ctx := context.Background()
	s, url := conformance.NewStore(t, h, nil)
	if mode == "tx" {
		createReadModel(t, s)
	}
	dir := t.TempDir()
	name := "kill-" + mode

	appended := make(chan error, 1)
	go func() { appended <- appendPaced(ctx, s, "acc", 1_000, total, 100, 2*time.Millisecond) }()

	var logs []string
	for run := 0; ; run++ {
		log := filepath.Join(dir, fmt.Sprintf("run-%d.log", run))
		logs = append(logs, log)
		c := startChild(t, url, name, mode, log, fmt.Sprintf("child-%d", run))
		if run == kills {
			require.NoError(t, <-appended)
			waitCheckpoint(t, s, name, int64(total), 5*time.Minute, c.exited)
			c.kill()
			break
		}
		waitCheckpoint(t, s, name, int64((run+1)*total/(kills+2)), 5*time.Minute, c.exited)
		c.kill()
	}

	// Each run's positions are consecutive; the next run starts at most
	// one batch before the previous run's last, and never after it.
	var last int64
	redelivered, redone := 0, 0
	for i, log := range logs {
		lines := readLog(t, log)
		if len(lines) == 0 {
			continue
		}
		first := lines[0].pos
		require.LessOrEqual(t, first, last+1, "run %d skipped events %d..%d", i, last+1, first-1)
		again := int(last + 1 - first)
		require.LessOrEqual(t, again, childCheckpointEvery, "run %d handled %d events again: more than a checkpoint batch", i, again)
		if i == 0 {
			require.EqualValues(t, 1, first)
		}
		redelivered += again
		for j := 1; j < len(lines); j++ {
			prev, pos := lines[j-1].pos, lines[j].pos
			if mode == "tx" && pos <= prev {
				// A TxFunc handler's transaction rolled back (its lease
				// ran out locally, on a busy machine) and its events are
				// handled again in a new one: the log, written outside
				// the transaction, shows the attempts; the read model,
				// checked below, counts each event once.
				require.LessOrEqual(t, int(prev-pos+1), childCheckpointEvery, "run %d: %d events redone after %d", i, prev-pos+1, prev)
				redone += int(prev - pos + 1)
				continue
			}
			require.Equal(t, prev+1, pos, "run %d: position %d after %d", i, pos, prev)
		}
		last = max(last, lines[len(lines)-1].pos)
	}
	require.EqualValues(t, total, last)
	t.Logf("%s: %d events, %d kills, %d handled again after the kills, %d redone after a rollback", mode, total, kills, redelivered, redone)
	if mode == "tx" {
		require.Equal(t, rebuild(t, s), readReadModel(t, s), "the read model equals a rebuild")
	}
}

// testConsumerSingleActive: two instances of one consumer; only one
// handles at a time; when the holder is killed the other takes over
// within LeaseTTL + LeaseTTL/4 (plus a second of scheduling slack).
func testConsumerSingleActive(t *testing.T, h conformance.Harness) {
	ctx := context.Background()
	s, url := conformance.NewStore(t, h, nil)
	dir := t.TempDir()
	const name = "single"
	logA, logB := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")
	a := startChild(t, url, name, "func", logA, "A")
	b := startChild(t, url, name, "func", logB, "B")

	stop := make(chan struct{})
	var wrote atomic.Int64
	appended := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				appended <- nil
				return
			default:
			}
			if _, err := s.SaveEvent(ctx, eventstore.Event{AggregateID: fmt.Sprintf("s-%d", i%50), AggregateVersion: int64(i/50 + 1), Type: "T", Payload: []byte(`{}`)}); err != nil {
				appended <- err
				return
			}
			wrote.Add(1)
			time.Sleep(2 * time.Millisecond)
		}
	}()
	waitCheckpoint(t, s, name, 200, time.Minute, func() error { return errors.Join(a.exited(), b.exited()) })

	// Kill whichever instance handles.
	holder, other, otherLog := a, b, logB
	if len(readLog(t, logA)) == 0 {
		holder, other, otherLog = b, a, logA
	}
	require.Empty(t, readLog(t, otherLog), "the waiting instance handled nothing")
	holder.kill()
	killed := time.Now()
	for len(readLog(t, otherLog)) == 0 {
		require.NoError(t, other.exited())
		require.Less(t, time.Since(killed), leaseTTL()+leaseTTL()/4+time.Second, "no takeover within the lease's time")
		time.Sleep(10 * time.Millisecond)
	}
	took := time.Since(killed)
	end := wrote.Load()
	waitCheckpoint(t, s, name, end, time.Minute, other.exited)
	close(stop)
	require.NoError(t, <-appended)
	other.kill()

	// The two instances' handling never overlaps in time, and together
	// they handled every event.
	la, lb := readLog(t, logA), readLog(t, logB)
	require.NotEmpty(t, la)
	require.NotEmpty(t, lb)
	first, second := la, lb
	if la[0].start > lb[0].start {
		first, second = lb, la
	}
	require.Less(t, first[len(first)-1].end, second[0].start, "the second instance started handling before the first stopped")
	seen := map[int64]bool{}
	for _, l := range append(first, second...) {
		seen[l.pos] = true
	}
	for p := int64(1); p <= end; p++ {
		require.True(t, seen[p], "position %d not handled", p)
	}
	t.Logf("takeover %s after the kill (lease %s)", took.Round(time.Millisecond), leaseTTL())
}

// testConsumerGroup: 4 members over 100,000 events of 1,000 aggregates:
// each aggregate's events are handled by exactly one member, the owner, in
// version order, each once. Then the group is resized to 3 (members
// stopped) and goes on from the lowest checkpoint.
func testConsumerGroup(t *testing.T, h conformance.Harness) {
	const aggs, members = 1_000, 4
	total := consumerEvents()
	ctx := context.Background()
	s, _ := conformance.NewStore(t, h, nil)
	require.NoError(t, appendSpread(ctx, s, "g", aggs, total/2, 500))

	type handled struct {
		member  int
		version int64
	}
	var mu sync.Mutex
	byAgg := map[string][]handled{}
	runGroup := func(n int, until int64) {
		t.Helper()
		gctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for m := range n {
			c, err := consumer.New(s, "group", consumer.Func(func(_ context.Context, e *eventstore.StoredEvent) error {
				mu.Lock()
				byAgg[e.AggregateID] = append(byAgg[e.AggregateID], handled{m, e.AggregateVersion})
				mu.Unlock()
				return nil
			}), &consumer.Options{Members: n, Pin: []int{m}, Instance: fmt.Sprintf("m%d", m), CheckpointInterval: 50 * time.Millisecond})
			require.NoError(t, err)
			wg.Add(1)
			go func() { defer wg.Done(); errs <- c.Run(gctx) }()
		}
		deadline := time.Now().Add(5 * time.Minute)
		for {
			cp := checkpoint(t, s, "group")
			if cp >= until {
				break
			}
			require.True(t, time.Now().Before(deadline), "group at %d, not %d", cp, until)
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- appendSpread(ctx, s, "h", aggs, total/2, 500) }()
	go func() {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	// The second half is appended while the group runs.
	runGroup(members, int64(total))

	require.Len(t, byAgg, 2*aggs)
	for agg, hs := range byAgg {
		owner := consumer.Owner(agg, members)
		for i, x := range hs {
			require.Equal(t, owner, x.member, "aggregate %s handled by member %d, owner %d", agg, x.member, owner)
			require.EqualValues(t, i+1, x.version, "aggregate %s: version %d handled as number %d", agg, x.version, i+1)
		}
	}
	n := 0
	for _, hs := range byAgg {
		n += len(hs)
	}
	require.Equal(t, total, n, "each event handled once")

	// Starting with another size is refused; resizing needs the members
	// stopped (they are), and the new members go on from the lowest
	// checkpoint.
	c, err := consumer.New(s, "group", consumer.Func(func(context.Context, *eventstore.StoredEvent) error { return nil }), &consumer.Options{Members: 3})
	require.NoError(t, err)
	var gse *consumer.GroupSizeError
	require.ErrorAs(t, c.Run(ctx), &gse)
	require.Equal(t, members, gse.Recorded)
	from, err := consumer.Resize(ctx, s, "group", 3, nil)
	require.NoError(t, err)
	require.EqualValues(t, total, from)
	byAgg = map[string][]handled{}
	require.NoError(t, appendSpread(ctx, s, "k", 100, 3_000, 500))
	runGroup(3, int64(total)+3_000)
	require.Len(t, byAgg, 100)
	for agg, hs := range byAgg {
		for i, x := range hs {
			require.Equal(t, consumer.Owner(agg, 3), x.member)
			require.EqualValues(t, i+1, x.version)
		}
	}
}

// testConsumerParkReplay: a handler fails on chosen events: after the
// retries they are parked and the rest flows on; a replay handles them
// once they succeed, and no checkpoint moves, backwards or forwards.
func testConsumerParkReplay(t *testing.T, h conformance.Harness, mode string) {
	const total = 1_000
	ctx := context.Background()
	s, _ := conformance.NewStore(t, h, nil)
	if mode == "tx" {
		createReadModel(t, s)
	}
	require.NoError(t, appendSpread(ctx, s, "p", 20, total, 100))
	chosen := map[int64]bool{7: true, 300: true, 301: true, 999: true}
	var failing atomic.Bool
	failing.Store(true)
	var mu sync.Mutex
	calls := map[int64]int{}
	fail := func(e *eventstore.StoredEvent) bool {
		mu.Lock()
		calls[e.Position]++
		mu.Unlock()
		return failing.Load() && chosen[e.Position]
	}
	var hd consumer.Handler
	if mode == "tx" {
		hd = readModelHandler(s.Engine(), fail, nil)
	} else {
		hd = consumer.Func(func(_ context.Context, e *eventstore.StoredEvent) error {
			if fail(e) {
				return errors.New("chosen to fail")
			}
			return nil
		})
	}
	name := "park-" + mode
	c, err := consumer.New(s, name, hd, &consumer.Options{MaxAttempts: 3, RetryMin: time.Millisecond, RetryMax: 2 * time.Millisecond, CheckpointInterval: 20 * time.Millisecond, CheckpointEvery: 100})
	require.NoError(t, err)
	rctx, cancel := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- c.Run(rctx) }()
	defer func() { cancel(); require.NoError(t, <-ran) }()

	waitCheckpoint(t, s, name, total, time.Minute, nil)
	parked, err := consumer.Parked(ctx, s, name, 0, 0)
	require.NoError(t, err)
	var positions []int64
	for _, p := range parked {
		positions = append(positions, p.Position)
		require.Equal(t, 3, p.Attempts)
		require.Contains(t, p.Error, "chosen to fail")
	}
	require.Equal(t, []int64{7, 300, 301, 999}, positions)
	mu.Lock()
	for p := range chosen {
		require.Equal(t, 3, calls[p], "position %d: attempts", p)
	}
	mu.Unlock()
	in, err := consumer.Get(ctx, s, name)
	require.NoError(t, err)
	require.EqualValues(t, 4, in.Parked)

	// A replay while the handler still fails: they stay parked, with
	// more attempts; the checkpoint stays.
	n, err := consumer.Replay(ctx, s, name, []int64{7})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	waitParked(t, s, name, func(ps []consumer.ParkedEvent) bool { return len(ps) > 0 && ps[0].Attempts == 6 && !ps[0].Replay })
	require.EqualValues(t, total, checkpoint(t, s, name))

	failing.Store(false)
	n, err = consumer.Replay(ctx, s, name, nil)
	require.NoError(t, err)
	require.Equal(t, 4, n)
	waitParked(t, s, name, func(ps []consumer.ParkedEvent) bool { return len(ps) == 0 })
	require.EqualValues(t, total, checkpoint(t, s, name), "a replay does not move the checkpoint")
	// The statistics follow the replay's commit.
	for deadline := time.Now().Add(time.Minute); c.Stats().Replayed < 4; {
		require.True(t, time.Now().Before(deadline), "replayed: %d", c.Stats().Replayed)
		time.Sleep(5 * time.Millisecond)
	}
	require.EqualValues(t, 4, c.Stats().Replayed)
	if mode == "tx" {
		// Every event counted once, the replayed ones after the rest.
		rm := readReadModel(t, s)
		want := rebuild(t, s)
		for agg, r := range want {
			require.Equal(t, r.events, rm[agg].events, "aggregate %s", agg)
		}
	}
	// The consumer goes on after the replay.
	require.NoError(t, appendSpread(ctx, s, "q", 5, 10, 10))
	waitCheckpoint(t, s, name, total+10, time.Minute, nil)
}

func waitParked(t *testing.T, s *eventstore.Store, name string, ok func([]consumer.ParkedEvent) bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ps, err := consumer.Parked(context.Background(), s, name, 0, 0)
		require.NoError(t, err)
		if ok(ps) {
			return
		}
		require.True(t, time.Now().Before(deadline), "parked events: %+v", ps)
		time.Sleep(10 * time.Millisecond)
	}
}

// testConsumerAdmin: names, the handler's transaction type, reset and its
// refusal while a member runs, delete, FromEnd, and List's figures.
func testConsumerAdmin(t *testing.T, h conformance.Harness) {
	ctx := context.Background()
	s, _ := conformance.NewStore(t, h, nil)
	require.NoError(t, appendSpread(ctx, s, "a", 3, 30, 10))
	noop := consumer.Func(func(context.Context, *eventstore.StoredEvent) error { return nil })

	_, err := consumer.New(s, "", noop, nil)
	require.ErrorIs(t, err, consumer.ErrInvalidName)
	_, err = consumer.New(s, "bad\nname", noop, nil)
	require.ErrorIs(t, err, consumer.ErrInvalidName)
	_, err = consumer.Get(ctx, s, "missing")
	require.ErrorIs(t, err, consumer.ErrNotFound)

	// A handler that asks for the other engine's transaction.
	wrong := consumer.TxFunc(func(context.Context, *os.File, *eventstore.StoredEvent) error { return nil })
	c, err := consumer.New(s, "wrong", wrong, nil)
	require.NoError(t, err)
	var tte *consumer.TxTypeError
	require.ErrorAs(t, c.Run(ctx), &tte)

	// FromEnd starts at the end.
	var got []int64
	var mu sync.Mutex
	c, err = consumer.New(s, "tail", consumer.Func(func(_ context.Context, e *eventstore.StoredEvent) error {
		mu.Lock()
		got = append(got, e.Position)
		mu.Unlock()
		return nil
	}), &consumer.Options{StartAt: consumer.FromEnd, CheckpointInterval: 20 * time.Millisecond, LeaseTTL: time.Second})
	require.NoError(t, err)
	rctx, cancel := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- c.Run(rctx) }()
	waitCheckpoint(t, s, "tail", 30, time.Minute, nil)
	require.NoError(t, appendSpread(ctx, s, "b", 1, 5, 5))
	waitCheckpoint(t, s, "tail", 35, time.Minute, nil)
	mu.Lock()
	require.Equal(t, []int64{31, 32, 33, 34, 35}, got)
	mu.Unlock()

	infos, err := consumer.List(ctx, s)
	require.NoError(t, err)
	i := slices.IndexFunc(infos, func(in consumer.Info) bool { return in.Name == "tail" })
	require.GreaterOrEqual(t, i, 0)
	require.Equal(t, 1, infos[i].Active)
	require.EqualValues(t, 0, infos[i].Lag)
	require.NotEmpty(t, infos[i].MemberStates[0].Holder)

	// A reset while it runs is refused; forced, it clears the lease and
	// the consumer goes on from the new checkpoint.
	_, err = consumer.Reset(ctx, s, "tail", consumer.Start, nil)
	var lhe *consumer.LeaseHeldError
	require.ErrorAs(t, err, &lhe)
	require.Equal(t, 0, lhe.Member)
	_, err = consumer.Reset(ctx, s, "tail", 99, &consumer.AdminOptions{Force: true})
	var cbe *eventstore.CursorBeyondEndError
	require.ErrorAs(t, err, &cbe)
	pos, err := consumer.Reset(ctx, s, "tail", 32, &consumer.AdminOptions{Force: true})
	require.NoError(t, err)
	require.EqualValues(t, 32, pos)
	deadline := time.Now().Add(time.Minute)
	for {
		mu.Lock()
		seen := slices.Clone(got)
		mu.Unlock()
		if len(seen) >= 8 {
			break
		}
		require.True(t, time.Now().Before(deadline), "no redelivery after the reset: %v", seen)
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	require.Equal(t, []int64{31, 32, 33, 34, 35, 33, 34, 35}, got)
	mu.Unlock()
	cancel()
	require.NoError(t, <-ran)

	// Stopped: its lease is released, and a reset to the end, a list and
	// a delete go through.
	in, err := consumer.Get(ctx, s, "tail")
	require.NoError(t, err)
	require.Equal(t, 0, in.Active)
	require.EqualValues(t, 35, in.Checkpoint)
	_, err = consumer.Reset(ctx, s, "tail", consumer.Start, nil)
	require.NoError(t, err)
	in, err = consumer.Get(ctx, s, "tail")
	require.NoError(t, err)
	require.EqualValues(t, 35, in.Lag)
	require.Greater(t, in.LagTime, time.Duration(0))
	pos, err = consumer.Reset(ctx, s, "tail", consumer.End, nil)
	require.NoError(t, err)
	require.EqualValues(t, 35, pos)
	require.NoError(t, consumer.Delete(ctx, s, "tail", nil))
	_, err = consumer.Get(ctx, s, "tail")
	require.ErrorIs(t, err, consumer.ErrNotFound)
}

// testConsumerBalance: balanced instances (no Pin) of a group of 4
// members, as processes. One instance runs every member and handles
// everything; 3 more join and the members spread one each (the first
// hands 3 over while events are appended); two are killed with SIGKILL
// (their leases and heartbeats must run out) and the two survivors take
// their members, two each. Every event is handled (the processes' logs
// cover every position); with the TxFunc handler the read model equals a
// rebuild: each event counted once, in version order, across handovers
// and kills. Checked against a broken balance (an instance never handing
// over): the spread never happens and the test fails at its deadline.
func testConsumerBalance(t *testing.T, h conformance.Harness, mode string) {
	const members, aggs = 4, 200
	ctx := context.Background()
	s, url := conformance.NewStore(t, h, nil)
	if mode == "tx" {
		createReadModel(t, s)
	}
	dir := t.TempDir()
	name := "balance-" + mode
	var logs []string
	start := func(inst string) *child {
		log := filepath.Join(dir, inst+".log")
		logs = append(logs, log)
		return startGroupChild(t, url, name, mode, log, inst, members)
	}
	// Deadlines for a 2-core CI machine; no duration is asserted.
	within := 2*time.Minute + 20*leaseTTL()
	holders := func() map[string][]int {
		in, err := consumer.Get(ctx, s, name)
		if errors.Is(err, consumer.ErrNotFound) {
			return nil
		}
		require.NoError(t, err)
		out := map[string][]int{}
		for _, m := range in.MemberStates {
			if m.Holder != "" {
				out[m.Holder] = append(out[m.Holder], m.Member)
			}
		}
		return out
	}
	waitHolders := func(what string, ok func(map[string][]int) bool, alive ...*child) {
		t.Helper()
		began := time.Now()
		deadline := began.Add(within)
		for {
			hs := holders()
			if ok(hs) {
				t.Logf("%s after %s: %v", what, time.Since(began).Round(time.Millisecond), hs)
				return
			}
			for _, c := range alive {
				require.NoError(t, c.exited())
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %s; holders %v", what, within, hs)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	spread := func(insts []string, each int) func(map[string][]int) bool {
		return func(hs map[string][]int) bool {
			n := 0
			for _, in := range insts {
				if len(hs[in]) != each {
					return false
				}
				n += len(hs[in])
			}
			return n == members && len(hs) == len(insts)
		}
	}

	total := 2_000
	require.NoError(t, appendSpread(ctx, s, "b", aggs, total, 100))
	a := start("A")
	waitHolders("A holds every member", spread([]string{"A"}, members), a)
	waitCheckpoint(t, s, name, int64(total), within, a.exited)

	// Events flow while the others join and two of them die.
	appended := make(chan error, 1)
	go func() { appended <- appendPaced(ctx, s, "c", aggs, 10_000, 20, 20*time.Millisecond) }()
	b, c, d := start("B"), start("C"), start("D")
	waitHolders("one member each", spread([]string{"A", "B", "C", "D"}, 1), a, b, c, d)
	c.kill()
	d.kill()
	waitHolders("the survivors took the members of the killed", spread([]string{"A", "B"}, 2), a, b)
	require.NoError(t, <-appended)
	total += 10_000
	waitCheckpoint(t, s, name, int64(total), within, func() error { return errors.Join(a.exited(), b.exited()) })
	a.kill()
	b.kill()

	seen := map[int64]bool{}
	for _, log := range logs {
		for _, l := range readLog(t, log) {
			seen[l.pos] = true
		}
	}
	for p := int64(1); p <= int64(total); p++ {
		require.True(t, seen[p], "position %d not handled", p)
	}
	if mode == "tx" {
		require.Equal(t, rebuild(t, s), readReadModel(t, s), "the read model equals a rebuild: each event once, in order")
	}
}

// testConsumerContentFilter: a consumer with Payload and Metadata filters
// hands its handler only the matching events, in order, and its
// checkpoint reaches the store's end however sparse the matches.
func testConsumerContentFilter(t *testing.T, h conformance.Harness) {
	ctx := context.Background()
	s, _ := conformance.NewStore(t, h, nil)
	var events []eventstore.Event
	for i := range 300 {
		e := eventstore.Event{AggregateID: fmt.Sprintf("acc-%d", i%7), AggregateVersion: int64(i/7 + 1), Type: "T",
			Payload: json.RawMessage(fmt.Sprintf(`{"i":%d,"kind":"k%d"}`, i, i%50))}
		if i%2 == 0 {
			e.Metadata = json.RawMessage(`{"tenant":"t-1"}`)
		}
		events = append(events, e)
	}
	_, err := s.SaveEvents(ctx, events)
	require.NoError(t, err)
	_, err = consumer.New(s, "bad", consumer.Func(func(context.Context, *eventstore.StoredEvent) error { return nil }), &consumer.Options{Payload: json.RawMessage(`[1]`)})
	var fe *eventstore.InvalidFilterError
	require.ErrorAs(t, err, &fe, "a bad filter is refused at New")

	var mu sync.Mutex
	var got []int64
	c, err := consumer.New(s, "kind", consumer.Func(func(_ context.Context, e *eventstore.StoredEvent) error {
		mu.Lock()
		got = append(got, e.Position)
		mu.Unlock()
		return nil
	}), &consumer.Options{Payload: json.RawMessage(`{"kind":"k4"}`), Metadata: json.RawMessage(`{"tenant":"t-1"}`),
		CheckpointInterval: 20 * time.Millisecond, LeaseTTL: time.Second})
	require.NoError(t, err)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- c.Run(rctx) }()
	waitCheckpoint(t, s, "kind", 300, time.Minute, nil)
	_, err = s.SaveEvents(ctx, []eventstore.Event{
		{AggregateID: "late", AggregateVersion: 1, Type: "T", Payload: json.RawMessage(`{"kind":"k4"}`)}, // no metadata
		{AggregateID: "late", AggregateVersion: 2, Type: "T", Payload: json.RawMessage(`{"kind":"k4"}`), Metadata: json.RawMessage(`{"tenant":"t-1","x":1}`)},
		{AggregateID: "late", AggregateVersion: 3, Type: "T", Payload: json.RawMessage(`{"kind":"k5"}`), Metadata: json.RawMessage(`{"tenant":"t-1"}`)},
	})
	require.NoError(t, err)
	waitCheckpoint(t, s, "kind", 303, time.Minute, nil)
	cancel()
	require.NoError(t, <-ran)
	mu.Lock()
	defer mu.Unlock()
	// i%50 == 4 and i even: i = 4, 54, ..., 254 (positions i+1), then 302.
	require.Equal(t, []int64{5, 55, 105, 155, 205, 255, 302}, got)
}
