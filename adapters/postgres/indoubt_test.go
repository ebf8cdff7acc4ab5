package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/esctl/esctl/adapters/postgres"
	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/internal/testdb"
)

// cutProxy relays one PostgreSQL connection and cuts it at a chosen moment
// of an append: it watches the client's messages for the statement text
// "COMMIT", which pgx sends when it prepares the append's second batch, and
// then either cuts before forwarding that preparation (the append never
// runs) or forwards the next client write, the batch's execution with its
// COMMIT, and cuts before the server's answer reaches the client (the append
// commits but the client cannot know).
type cutProxy struct {
	ln           net.Listener
	upstream     func() (net.Conn, error)
	afterExecute bool
	cut          atomic.Bool
	wg           sync.WaitGroup
}

func newCutProxy(t *testing.T, upstreamURL string, afterExecute bool) *cutProxy {
	cfg, err := pgconn.ParseConfig(upstreamURL)
	require.NoError(t, err)
	network, addr := "tcp", net.JoinHostPort(cfg.Host, itoa(int(cfg.Port)))
	if len(cfg.Host) > 0 && cfg.Host[0] == '/' {
		network, addr = "unix", cfg.Host+"/.s.PGSQL."+itoa(int(cfg.Port))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &cutProxy{ln: ln, afterExecute: afterExecute, upstream: func() (net.Conn, error) { return net.Dial(network, addr) }}
	go p.serve()
	t.Cleanup(func() { _ = ln.Close(); p.wg.Wait() })
	return p
}

func itoa(i int) string { return fmt.Sprint(i) }

// syncMessage is the protocol's Sync message, which ends a pipeline;
// readyForQuery is the server's answer to it (followed by a status byte).
var (
	syncMessage   = []byte{'S', 0, 0, 0, 4}
	readyForQuery = []byte{'Z', 0, 0, 0, 5}
)

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		u, err := p.upstream()
		if err != nil {
			_ = c.Close()
			continue
		}
		p.wg.Add(2)
		var once sync.Once
		closeBoth := func() { once.Do(func() { _ = c.Close(); _ = u.Close() }) }
		// Only the first connection to reach the cut point is cut; later
		// ones (the fresh connection that checks the outcome) pass.
		var thisCut atomic.Bool
		answered := make(chan struct{}) // the server finished the cut batch
		// client -> server, watching for the cut point
		go func() {
			defer p.wg.Done()
			buf := make([]byte, 64<<10)
			armed := false
			for {
				n, err := c.Read(buf)
				if n > 0 {
					chunk := buf[:n]
					switch {
					case armed:
						// Forward the execution batch up to its Sync
						// message, then cut the client off.
						if _, werr := u.Write(chunk); werr != nil {
							closeBoth()
							return
						}
						if !bytes.HasSuffix(chunk, syncMessage) {
							continue
						}
						// Swallow the server's answer; cut the client once
						// the server is done (so that pgx's cancel request,
						// sent when it sees the EOF, cannot abort the batch).
						thisCut.Store(true)
						p.cut.Store(true)
						select {
						case <-answered:
						case <-time.After(10 * time.Second):
						}
						closeBoth()
						return
					case !p.cut.Load() && bytes.Contains(chunk, []byte("COMMIT")):
						if !p.afterExecute {
							thisCut.Store(true)
							p.cut.Store(true)
							closeBoth()
							return
						}
						armed = true
					}
					if _, werr := u.Write(chunk); werr != nil {
						closeBoth()
						return
					}
				}
				if err != nil {
					closeBoth()
					return
				}
			}
		}()
		// server -> client, dropped once cut
		go func() {
			defer p.wg.Done()
			buf := make([]byte, 64<<10)
			for {
				n, err := u.Read(buf)
				if n > 0 && thisCut.Load() {
					if bytes.Contains(buf[:n], readyForQuery) {
						close(answered)
						return
					}
					continue
				}
				if n > 0 {
					if _, werr := c.Write(buf[:n]); werr != nil {
						closeBoth()
						return
					}
				}
				if err != nil {
					closeBoth() // propagate the server's close (or EOF) to the client
					return
				}
			}
		}()
	}
}

// storeThroughProxy returns a Store whose pool (one connection) goes through
// the proxy, over a store initialized directly.
func storeThroughProxy(t *testing.T, afterExecute bool) (*eventstore.Store, *eventstore.Store, *cutProxy) {
	ctx := context.Background()
	url := testdb.PostgresURL(t)
	direct, err := eventstore.Open(ctx, url, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = direct.Close() })
	require.NoError(t, direct.Init(ctx))

	proxy := newCutProxy(t, url, afterExecute)
	cfg, err := pgxpool.ParseConfig(url)
	require.NoError(t, err)
	_, port, _ := net.SplitHostPort(proxy.ln.Addr().String())
	cfg.ConnConfig.Host = "127.0.0.1"
	cfg.ConnConfig.Port = uint16(mustAtoi(t, port))
	cfg.ConnConfig.Fallbacks = nil
	cfg.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	d, err := postgres.NewWithOptions(pool, &postgres.Options{ResolveTimeout: 20 * time.Second})
	require.NoError(t, err)
	s, err := eventstore.New(d, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s, direct, proxy
}

func mustAtoi(t *testing.T, s string) int {
	var n int
	_, err := fmt.Sscan(s, &n)
	require.NoError(t, err)
	return n
}

// TestInDoubtCommitIsResolved: the connection breaks after the append's
// COMMIT reached the server but before the answer reached the client. The
// store must not guess: it asks pg_xact_status on a fresh connection, learns
// that the append committed, and reports success with the right position.
func TestInDoubtCommitIsResolved(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, direct, proxy := storeThroughProxy(t, true)
	_, err := direct.SaveEvent(ctx, eventstore.Event{AggregateID: "before", AggregateVersion: 1, Type: "T"})
	require.NoError(t, err)

	start := time.Now()
	e, err := s.SaveEvent(ctx, eventstore.Event{AggregateID: "doubt", AggregateVersion: 1, Type: "T", Payload: []byte(`{"x":1}`)})
	t.Logf("SaveEvent returned after %v: %v", time.Since(start), err)
	require.True(t, proxy.cut.Load(), "the proxy never cut the connection")
	require.NoError(t, err, "a committed append must be reported as committed")
	require.EqualValues(t, 2, e.Position)

	page, err := direct.LoadEvents(ctx, eventstore.Filter{Limit: 10})
	require.NoError(t, err)
	require.Len(t, page.Events, 2, "stored exactly once")
	require.Equal(t, e, page.Events[1])
}

// TestBrokenAppendBeforeExecutionIsDefinite: the connection breaks before
// the append's batch reached the server. The transaction is rolled back and
// the store reports a definite failure (ErrUnavailable), not a guess.
func TestBrokenAppendBeforeExecutionIsDefinite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, direct, proxy := storeThroughProxy(t, false)
	_, err := s.SaveEvent(ctx, eventstore.Event{AggregateID: "lost", AggregateVersion: 1, Type: "T"})
	require.True(t, proxy.cut.Load(), "the proxy never cut the connection")
	require.ErrorIs(t, err, eventstore.ErrUnavailable)
	require.False(t, errors.Is(err, eventstore.ErrOutcomeUnknown))
	d, err := direct.Describe(ctx, nil)
	require.NoError(t, err)
	require.Zero(t, d.EventCount, "nothing was stored")
}
