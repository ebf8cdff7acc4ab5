package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/esctl/esctl/internal/driver"
)

var _ driver.Listener = (*Dialect)(nil)

// Listening: every transaction that writes events sends a notification on
// the store's channel (pg_notify in the transaction: delivered at commit,
// dropped at rollback); one dedicated connection per Store listens.
const (
	// listenProbeTimeout is how long the start-up probe waits for its own
	// notification before deciding that none arrive.
	listenProbeTimeout = 2 * time.Second
	// listenKeepAlive is how often an idle listening connection is pinged,
	// so that a connection lost without a FIN is noticed.
	listenKeepAlive = 15 * time.Second
	// listenBackoffMax caps the wait between two reconnection attempts.
	listenBackoffMax = 5 * time.Second
)

// ListenApplicationName is the application_name of a Store's listening
// connection (in pg_stat_activity).
const ListenApplicationName = "esctl-listen"

// errNoNotifications: the probe's own notification did not come back.
var errNoNotifications = errors.New("postgres: notifications do not arrive on this connection (a pooler in transaction mode, or a standby?)")

// channel is the store's notification channel: one per schema.
func (d *Dialect) channel() string { return "esctl_events:" + d.schema }

// Listen implements driver.Listener: LISTEN on a connection of its own,
// reconnecting with backoff, a ping every listenKeepAlive, and wake after
// every (re)connection (what was missed meanwhile is found by the reads it
// triggers). The first connection probes itself: it sends a notification
// through the pool and waits for it; when none comes, Listen returns
// errNoNotifications and the store polls.
func (d *Dialect) Listen(ctx context.Context, wake func()) error {
	backoff := 100 * time.Millisecond
	probed := false
	cc := d.pool.Config().ConnConfig.Copy()
	cc.RuntimeParams["application_name"] = ListenApplicationName
	for {
		conn, err := pgx.ConnectConfig(ctx, cc)
		if err == nil {
			_, err = conn.Exec(ctx, "LISTEN "+pgx.Identifier{d.channel()}.Sanitize())
		}
		if err == nil && !probed {
			if err = d.probe(ctx, conn); errors.Is(err, errNoNotifications) {
				_ = conn.Close(context.WithoutCancel(ctx))
				return err
			}
			probed = err == nil
		}
		if err == nil {
			wake()
			backoff = 100 * time.Millisecond
			err = waitNotifications(ctx, conn, wake)
		}
		if conn != nil {
			_ = conn.Close(context.WithoutCancel(ctx))
		}
		if ctx.Err() != nil {
			return nil
		}
		_ = err // reconnect: the reads a wake triggers find what was missed
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, listenBackoffMax)
	}
}

// probe sends a notification through the pool and waits for it (or for
// any other) on conn.
func (d *Dialect) probe(ctx context.Context, conn *pgx.Conn) error {
	if _, err := d.pool.Exec(ctx, notifySQL, d.channel()); err != nil {
		return interpretError(err)
	}
	wctx, cancel := context.WithTimeout(ctx, listenProbeTimeout)
	defer cancel()
	if _, err := conn.WaitForNotification(wctx); err != nil {
		if ctx.Err() == nil && errors.Is(wctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("%w: waited %s", errNoNotifications, listenProbeTimeout)
		}
		return err
	}
	return nil
}

// waitNotifications calls wake for each notification on conn until ctx
// ends or the connection fails, pinging it when idle.
func waitNotifications(ctx context.Context, conn *pgx.Conn, wake func()) error {
	for {
		wctx, cancel := context.WithTimeout(ctx, listenKeepAlive)
		_, err := conn.WaitForNotification(wctx)
		timedOut := errors.Is(wctx.Err(), context.DeadlineExceeded)
		cancel()
		switch {
		case err == nil:
			wake()
		case ctx.Err() != nil:
			return nil
		case timedOut && !conn.IsClosed():
			pctx, cancel := context.WithTimeout(ctx, listenKeepAlive)
			err = conn.Ping(pctx)
			cancel()
			if err != nil {
				return err
			}
		default:
			return err
		}
	}
}
