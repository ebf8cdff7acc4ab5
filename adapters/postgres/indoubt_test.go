package postgres_test

import (
	"bytes"
	"context"
	"encoding/binary"
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

// cutProxy relays PostgreSQL connections and cuts one at a chosen moment
// of an append. An append is one client write holding the whole pipeline,
// the only one with a Flush message in it (prepared statements are sent
// before, with Syncs). The proxy then either cuts before forwarding it (the
// append never runs: cutBeforeExecution), or forwards it and withholds the
// server's answers: all of them (cutAllAnswers: the append commits, the
// client learns nothing), or all but those the Flush released, which carry
// the transaction id (cutAfterXid: the append commits, the client knows its
// transaction id but not its outcome). It closes both sides once the
// server has answered the whole pipeline.
type cutProxy struct {
	ln       net.Listener
	upstream func() (net.Conn, error)
	mode     cutMode
	cut      atomic.Bool
	wg       sync.WaitGroup
}

type cutMode int

const (
	cutBeforeExecution cutMode = iota
	cutAfterXid
	cutAllAnswers
)

func newCutProxy(t *testing.T, upstreamURL string, mode cutMode) *cutProxy {
	cfg, err := pgconn.ParseConfig(upstreamURL)
	require.NoError(t, err)
	network, addr := "tcp", net.JoinHostPort(cfg.Host, itoa(int(cfg.Port)))
	if len(cfg.Host) > 0 && cfg.Host[0] == '/' {
		network, addr = "unix", cfg.Host+"/.s.PGSQL."+itoa(int(cfg.Port))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &cutProxy{ln: ln, mode: mode, upstream: func() (net.Conn, error) { return net.Dial(network, addr) }}
	go p.serve()
	t.Cleanup(func() { _ = ln.Close(); p.wg.Wait() })
	return p
}

func itoa(i int) string { return fmt.Sprint(i) }

// flushMessage is the protocol's Flush message.
var flushMessage = []byte{'H', 0, 0, 0, 4}

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
		var thisCut atomic.Bool
		go func() { // client to server
			defer p.wg.Done()
			buf := make([]byte, 64<<10)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					chunk := buf[:n]
					if !p.cut.Load() && bytes.Contains(chunk, flushMessage) {
						p.cut.Store(true)
						if p.mode == cutBeforeExecution {
							closeBoth()
							return
						}
						thisCut.Store(true)
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
		go func() { // server to client
			defer p.wg.Done()
			buf := make([]byte, 64<<10)
			var pending []byte // server messages since the cut, not yet complete
			sawRow, released := false, p.mode == cutAllAnswers
			for {
				n, err := u.Read(buf)
				if n > 0 && thisCut.Load() {
					// From the cut on, the stream is read message by
					// message (type byte, int32 length including itself).
					pending = append(pending, buf[:n]...)
					for len(pending) >= 5 {
						size := 1 + int(binary.BigEndian.Uint32(pending[1:5]))
						if len(pending) < size {
							break
						}
						msg := pending[:size]
						pending = pending[size:]
						switch {
						case msg[0] == 'Z': // ReadyForQuery: the pipeline is done
							closeBoth()
							return
						case !released:
							if _, werr := c.Write(msg); werr != nil {
								closeBoth()
								return
							}
							if msg[0] == 'D' {
								sawRow = true
							}
							if msg[0] == 'C' && sawRow { // the setup's row: the xid is out
								released = true
							}
						}
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
func storeThroughProxy(t *testing.T, mode cutMode) (*eventstore.Store, *eventstore.Store, *cutProxy) {
	ctx := context.Background()
	url := testdb.PostgresURL(t)
	direct, err := eventstore.Open(ctx, url, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = direct.Close() })
	require.NoError(t, direct.Init(ctx))

	proxy := newCutProxy(t, url, mode)
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
	s, direct, proxy := storeThroughProxy(t, cutAfterXid)
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
	s, direct, proxy := storeThroughProxy(t, cutBeforeExecution)
	_, err := s.SaveEvent(ctx, eventstore.Event{AggregateID: "lost", AggregateVersion: 1, Type: "T"})
	require.True(t, proxy.cut.Load(), "the proxy never cut the connection")
	require.ErrorIs(t, err, eventstore.ErrUnavailable)
	require.False(t, errors.Is(err, eventstore.ErrOutcomeUnknown))
	d, err := direct.Describe(ctx, nil)
	require.NoError(t, err)
	require.Zero(t, d.EventCount, "nothing was stored")
}

// TestInDoubtWithoutXidIsUnknown: the append reaches the server and
// commits, but no answer reaches the client, not even the transaction id.
// The store ends the broken session, finds the append's event stored, and
// cannot tell whether it or a concurrent writer stored it: it must say
// ErrOutcomeUnknown, not success and not a definite failure.
func TestInDoubtWithoutXidIsUnknown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, direct, proxy := storeThroughProxy(t, cutAllAnswers)
	_, err := s.SaveEvent(ctx, eventstore.Event{AggregateID: "unknown", AggregateVersion: 1, Type: "T"})
	t.Logf("SaveEvent: %v", err)
	require.True(t, proxy.cut.Load(), "the proxy never cut the connection")
	require.ErrorIs(t, err, eventstore.ErrOutcomeUnknown)
	require.False(t, errors.Is(err, eventstore.ErrUnavailable))
	d, err := direct.Describe(ctx, nil)
	require.NoError(t, err)
	require.EqualValues(t, 1, d.EventCount, "the append committed once")
}
