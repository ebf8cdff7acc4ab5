package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/esctl/esctl/estype"
	"github.com/esctl/esctl/internal/driver"
)

// discard makes sure a connection that may still be inside a transaction is
// not reused: pgxpool destroys connections released outside the idle state,
// and a ROLLBACK returns a healthy one to idle.
func discard(conn *pgxpool.Conn) {
	if conn.Conn().PgConn().TxStatus() != 'I' && !conn.Conn().IsClosed() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = conn.Exec(ctx, rollbackSQL)
	}
}

// Append implements driver.Driver (see driver.AppendParams).
//
// The whole append is one round trip: a pipeline of BEGIN, the
// transaction's settings and id, a Flush, the append statement (state row
// and insert in one, fastAppendSQL), COMMIT and Sync. The Flush makes the
// server send the transaction id back while it goes on with the rest, so
// the client knows it before COMMIT can have run. The fast statement
// assumes no conflict; when the unique key fires the transaction is aborted
// and the group is sent again with appendSQL, which keeps the conflicting
// requests out. If the connection
// breaks, the outcome is learned on a fresh connection (resolveAppend,
// resolveWithoutXid).
func (d *Dialect) Append(ctx context.Context, p *driver.AppendParams) (*driver.AppendResult, error) {
	a := newAppendArgs(p)
	if a.withMetadata && !d.sql().meta {
		return nil, driver.ErrNoMetadata()
	}
	res, err := d.appendOnce(ctx, a, true)
	if isVersionConflict(err) {
		res, err = d.appendOnce(ctx, a, false)
	}
	if errors.Is(err, estype.ErrFrozen) {
		// The freeze trigger (migration 6) refused the statement when the
		// store was frozen before it started: nothing was written.
		return &driver.AppendResult{Frozen: true}, nil
	}
	return res, err
}

// appendArgs are an append's events as parallel arrays.
type appendArgs struct {
	p          *driver.AppendParams
	n          int64
	reqs       []int32
	ids        []string
	versions   []int64
	types      []string
	timestamps []int64
	payloads   []string
	metadatas  []string // "" for none (the statements read it as NULL)
	metadata   any      // the first event's metadata: nil or its text
	// withMetadata is set when an event has metadata.
	withMetadata bool
}

func newAppendArgs(p *driver.AppendParams) *appendArgs {
	n := 0
	for _, r := range p.Requests {
		n += len(r.Events)
	}
	a := &appendArgs{p: p, n: int64(n),
		reqs: make([]int32, 0, n), ids: make([]string, 0, n), versions: make([]int64, 0, n),
		types: make([]string, 0, n), timestamps: make([]int64, 0, n), payloads: make([]string, 0, n), metadatas: make([]string, 0, n)}
	for i, r := range p.Requests {
		for _, e := range r.Events {
			a.reqs = append(a.reqs, int32(i))
			a.ids = append(a.ids, e.AggregateID)
			a.versions = append(a.versions, e.AggregateVersion)
			a.types = append(a.types, e.Type)
			a.timestamps = append(a.timestamps, e.Timestamp)
			a.payloads = append(a.payloads, string(e.Payload))
			a.metadatas = append(a.metadatas, string(e.Metadata))
			a.withMetadata = a.withMetadata || e.Metadata != nil
		}
	}
	if n > 0 && a.metadatas[0] != "" {
		a.metadata = a.metadatas[0]
	}
	return a
}

// appendArgsOf returns appendSQL's arguments.
func appendArgsOf(es *eventSQL, a *appendArgs) []any {
	args := []any{a.reqs, a.ids, a.versions, a.types, a.timestamps, a.payloads}
	if es.meta {
		args = append(args, a.metadatas)
	}
	return args
}

// pipelined is one statement of a pipeline: its SQL, its arguments, and
// what reads its rows (nil: none expected).
type pipelined struct {
	sql  string
	args []any
	scan func(fields []pgconn.FieldDescription, values [][]byte) error
}

// appendOnce runs one append transaction: the fast statements, or appendSQL.
// A unique violation of the fast path is returned as the driver error (the
// caller retries with appendSQL).
func (d *Dialect) appendOnce(ctx context.Context, a *appendArgs, fast bool) (*driver.AppendResult, error) {
	conn, err := d.pool.Acquire(ctx)
	if err != nil {
		return nil, interpretError(err)
	}
	defer conn.Release()
	c := conn.Conn()
	m := c.TypeMap()
	es := d.sql()

	var xid, timeline string
	res := &driver.AppendResult{}
	var last int64
	var reserved *int64 // fast path: the new last position, nil if none reserved
	stateExists := true
	var cReqs []int32
	var cIDs []string
	var cVersions []int64
	head := []pipelined{{sql: beginSQL}}
	var body []pipelined
	if fast {
		head = append(head, pipelined{sql: fastSetupSQL, args: []any{d.lockTO, d.stmtTO}, scan: func(f []pgconn.FieldDescription, v [][]byte) error {
			var lockTO, stmtTO string
			return pgx.ScanRow(m, f, v, &lockTO, &stmtTO, &xid, &timeline)
		}})
		fastAppend := pipelined{sql: d.q(es.fastAppend), args: []any{a.ids, a.versions, a.types, a.timestamps, a.payloads, a.n}}
		if es.meta {
			fastAppend.args = append(fastAppend.args, a.metadatas)
		}
		if a.n == 1 {
			fastAppend = pipelined{sql: d.q(es.fastAppendOne), args: []any{a.ids[0], a.versions[0], a.types[0], a.timestamps[0], a.payloads[0]}}
			if es.meta {
				fastAppend.args = append(fastAppend.args, a.metadata)
			}
		}
		fastAppend.scan = func(f []pgconn.FieldDescription, v [][]byte) error {
			return pgx.ScanRow(m, f, v, &reserved, &stateExists)
		}
		body = []pipelined{fastAppend}
	} else {
		head = append(head, pipelined{sql: appendSetupSQL, args: []any{d.lockTO, d.stmtTO}, scan: func(f []pgconn.FieldDescription, v [][]byte) error {
			var s [6]string
			return pgx.ScanRow(m, f, v, &s[0], &s[1], &s[2], &s[3], &s[4], &s[5], &xid, &timeline)
		}})
		body = []pipelined{
			{sql: d.q(lockStateSQL), scan: func(f []pgconn.FieldDescription, v [][]byte) error {
				return pgx.ScanRow(m, f, v, &res.Frozen, &last)
			}},
			{sql: d.q(es.append), args: appendArgsOf(es, a), scan: func(f []pgconn.FieldDescription, v [][]byte) error {
				return pgx.ScanRow(m, f, v, &res.Frozen, &last, &cReqs, &cIDs, &cVersions)
			}},
		}
	}
	// The wake-up of subscriptions in every process, sent at commit.
	body = append(body, pipelined{sql: notifySQL, args: []any{d.channel()}, scan: ignoreRow}, pipelined{sql: commitSQL})

	// Prepared once per connection (pgx keeps them): only a connection's
	// first append pays the round trips of Parse and Describe.
	stmts := append(head, body...)
	sds := make([]*pgconn.StatementDescription, len(stmts))
	for i, s := range stmts {
		if sds[i], err = c.Prepare(ctx, s.sql, s.sql); err != nil {
			if !isServerError(err) {
				discard(conn)
			}
			return nil, interpretError(err)
		}
	}

	pid := c.PgConn().PID()
	err = runPipeline(ctx, c, stmts, sds, len(head))
	if err != nil {
		var ee *encodeError
		if errors.As(err, &ee) {
			return nil, err
		}
		if isStatementError(err) {
			discard(conn)
			if fast && isVersionConflict(err) {
				return nil, err // the caller retries with appendSQL
			}
			return nil, interpretError(err)
		}
		// The connection failed after COMMIT may have been sent. Give the
		// broken connection back first: the check needs a fresh one, and
		// the pool may have no other.
		discard(conn)
		conn.Release()
		if xid == "" {
			return d.resolveWithoutXid(ctx, err, pid, a)
		}
		return d.resolveAppend(ctx, err, xid, timeline, a, fast)
	}
	if fast {
		switch {
		case !stateExists:
			return nil, fmt.Errorf("%w: the store-state row is missing", estype.ErrNotInitialized)
		case reserved == nil:
			// The UPDATE found the row frozen (re-checked under its lock
			// when another writer held it): nothing was written.
			return &driver.AppendResult{Frozen: true}, nil
		}
		last = *reserved - a.n
	}
	if res.Frozen {
		return &driver.AppendResult{Frozen: true}, nil
	}
	res.FirstPosition = last + 1
	for i := range cReqs {
		res.Conflicts = append(res.Conflicts, driver.AppendConflict{
			Request: int(cReqs[i]), AggregateID: cIDs[i], AggregateVersion: cVersions[i],
		})
	}
	return res, nil
}

// runPipeline sends stmts in one pipeline with a Flush after the first
// flushAfter statements and one Sync at the end, then reads every result in
// order. It returns the first error: a *pgconn.PgError when the server
// refused a statement (the rest were skipped), anything else when the
// connection failed (it is then closed).
func runPipeline(ctx context.Context, c *pgx.Conn, stmts []pipelined, sds []*pgconn.StatementDescription, flushAfter int) (err error) {
	// Encode every argument first: an encoding error must not leave a
	// half-sent pipeline (which would close the connection).
	eqbs := make([]pgx.ExtendedQueryBuilder, len(stmts))
	for i, s := range stmts {
		if err := eqbs[i].Build(c.TypeMap(), sds[i], s.args); err != nil {
			return &encodeError{err: err}
		}
	}
	pl := c.PgConn().StartPipeline(ctx)
	defer func() {
		if cerr := pl.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	for i := range stmts {
		pl.SendQueryStatement(sds[i], eqbs[i].ParamValues, eqbs[i].ParamFormats, eqbs[i].ResultFormats)
		if i+1 == flushAfter {
			pl.SendFlushRequest()
		}
	}
	pl.SendPipelineSync()
	if err := pl.Flush(); err != nil {
		return err
	}
	for _, s := range stmts {
		r, err := pl.GetResults()
		if err != nil {
			return err
		}
		rr, ok := r.(*pgconn.ResultReader)
		if !ok {
			return fmt.Errorf("postgres: pipeline returned %T where a statement's result was due", r)
		}
		var scanErr error
		for rr.NextRow() {
			if s.scan == nil {
				scanErr = fmt.Errorf("postgres: unexpected row from %.40q", s.sql)
			} else if scanErr == nil {
				scanErr = s.scan(rr.FieldDescriptions(), rr.Values())
			}
		}
		if _, err := rr.Close(); err != nil {
			return err
		}
		if scanErr != nil {
			return scanErr
		}
	}
	r, err := pl.GetResults()
	if err != nil {
		return err
	}
	if _, ok := r.(*pgconn.PipelineSync); !ok {
		return fmt.Errorf("postgres: pipeline returned %T where its Sync was due", r)
	}
	return nil
}

// ignoreRow reads a row nobody needs (pg_notify's void).
func ignoreRow([]pgconn.FieldDescription, [][]byte) error { return nil }

// encodeError is an argument that could not be encoded: nothing was sent.
type encodeError struct{ err error }

func (e *encodeError) Error() string { return "postgres: encoding an argument: " + e.err.Error() }
func (e *encodeError) Unwrap() error { return e.err }

// resolveWithoutXid learns the outcome of an append whose connection broke
// before the transaction id reached the client. The broken session is
// ended on a fresh connection (pg_terminate_backend waits for it to exit),
// so whatever it had not run yet never runs and an open transaction rolls
// back; then the append's keys are looked up. None stored: nothing was
// written, a definite failure. Stored: the append may have committed, or a
// concurrent writer may have stored the same keys, and without the
// transaction id the two cannot be told apart: ErrOutcomeUnknown.
func (d *Dialect) resolveWithoutXid(ctx context.Context, cause error, pid uint32, a *appendArgs) (*driver.AppendResult, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.resolveT)
	defer cancel()
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			_ = conn.Close(context.WithoutCancel(ctx))
		}
	}()
	for {
		var err error
		if conn == nil || conn.IsClosed() {
			conn, err = pgx.ConnectConfig(ctx, d.pool.Config().ConnConfig)
		}
		var stored int64
		if err == nil {
			err = d.endBackend(ctx, conn, pid)
		}
		if err == nil {
			err = conn.QueryRow(ctx, d.q(keysStoredSQL), a.ids, a.versions).Scan(&stored)
		}
		switch {
		case err == nil && stored == 0:
			return nil, fmt.Errorf("%w: the connection broke and the append was not written: %w", estype.ErrUnavailable, cause)
		case err == nil:
			return nil, fmt.Errorf("%w: %w (the connection broke before the transaction id arrived; %d of the append's %d events are stored, by it or by a concurrent writer)",
				estype.ErrOutcomeUnknown, cause, stored, len(a.ids))
		case ctx.Err() != nil:
			return nil, fmt.Errorf("%w: %w (ending the broken session: %v)", estype.ErrOutcomeUnknown, cause, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w (ending the broken session: %v)", estype.ErrOutcomeUnknown, cause, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// resolveByKeys answers an append in doubt after a failover from its pairs
// on the new primary: none stored, it is not on this history (nothing
// written: retry); some stored, by it or by a concurrent writer, the
// outcome is unknown.
func (d *Dialect) resolveByKeys(ctx context.Context, conn *pgx.Conn, cause error, a *appendArgs) (*driver.AppendResult, error) {
	var stored int64
	if err := conn.QueryRow(ctx, d.q(keysStoredSQL), a.ids, a.versions).Scan(&stored); err != nil {
		return nil, fmt.Errorf("%w: %w (after a failover, counting the append's stored events: %v)", estype.ErrOutcomeUnknown, cause, err)
	}
	if stored == 0 {
		return nil, fmt.Errorf("%w: the server failed over while the append committed, and the new primary does not have it: %w", estype.ErrUnavailable, cause)
	}
	return nil, fmt.Errorf("%w: %w (the server failed over; %d of the append's %d events are on the new primary, by it or by a concurrent writer)",
		estype.ErrOutcomeUnknown, cause, stored, len(a.ids))
}

// endBackend terminates server process pid, if it still runs, and returns
// once it has exited.
func (d *Dialect) endBackend(ctx context.Context, conn *pgx.Conn, pid uint32) error {
	for {
		if _, err := conn.Exec(ctx, endBackendSQL, int64(pid)); err != nil {
			return err
		}
		var alive bool
		if err := conn.QueryRow(ctx, backendAliveSQL, int64(pid)).Scan(&alive); err != nil {
			return err
		}
		if !alive {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("server process %d still running: %w", pid, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// resolveAppend learns the outcome of an append whose connection broke
// while its COMMIT may have been in flight: pg_xact_status(xid) on a fresh
// connection says committed, aborted or in progress (polled until it ends).
// A committed append's positions are recovered from the rows it wrote
// (xmin is the writing transaction's id).
//
// After a failover (the server's timeline is not the append's), the new
// primary may have handed the append's transaction id to another
// transaction: "committed" is believed only when the append's own rows are
// there (its pairs, written by that id), and an id the server does not
// know yet means the append is not on this history: its pairs decide.
func (d *Dialect) resolveAppend(ctx context.Context, cause error, xid, timeline string, a *appendArgs, fast bool) (*driver.AppendResult, error) {
	p, ids, versions := a.p, a.ids, a.versions
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.resolveT)
	defer cancel()
	full, err := strconv.ParseUint(xid, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", estype.ErrOutcomeUnknown, cause)
	}
	xid32 := strconv.FormatUint(full&0xffffffff, 10)
	// A dedicated connection: the pool may be full, and the broken
	// connection can hold its slot while pgxpool closes it.
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			_ = conn.Close(context.WithoutCancel(ctx))
		}
	}()
	for {
		var status *string
		failedOver := false
		if conn == nil || conn.IsClosed() {
			conn, err = pgx.ConnectConfig(ctx, d.pool.Config().ConnConfig)
		}
		if err == nil {
			var now string
			if err = conn.QueryRow(ctx, timelineSQL).Scan(&now); err == nil {
				failedOver = timeline != "" && now != timeline
			}
		}
		if err == nil {
			err = conn.QueryRow(ctx, xactStatusSQL, xid).Scan(&status)
			if err != nil && failedOver && isStatementError(err) {
				// An id in the new timeline's future: the append never
				// reached this server.
				return d.resolveByKeys(ctx, conn, cause, a)
			}
		}
		switch {
		case err != nil && ctx.Err() != nil:
			return nil, fmt.Errorf("%w: %w (checking the transaction's status: %v)", estype.ErrOutcomeUnknown, cause, err)
		case err != nil:
			// The server may be restarting (or a standby not promoted
			// yet): ask again.
		case status == nil:
			return nil, fmt.Errorf("%w: %w (pg_xact_status has no record of transaction %s)", estype.ErrOutcomeUnknown, cause, xid)
		case *status == "aborted":
			return nil, fmt.Errorf("%w: the connection broke and the append was rolled back: %w", estype.ErrUnavailable, cause)
		case *status == "committed":
			return d.committedAppend(ctx, conn, cause, xid32, p, ids, versions, fast, failedOver)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w (transaction %s still in progress)", estype.ErrOutcomeUnknown, cause, xid)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// fast says which statement the append ran: fastAppendSQL writes all of its
// events or, on a frozen store, none (a conflict aborts it), so a committed
// fast append that wrote nothing met a frozen store.
func (d *Dialect) committedAppend(ctx context.Context, conn *pgx.Conn, cause error, xid32 string, p *driver.AppendParams, ids []string, versions []int64, fast, failedOver bool) (*driver.AppendResult, error) {
	rows, err := conn.Query(ctx, d.q(resolveAppendSQL), ids, versions, xid32)
	if err != nil {
		return nil, fmt.Errorf("%w: %w (the append committed; reading its positions: %v)", estype.ErrOutcomeUnknown, cause, err)
	}
	type key struct {
		id string
		v  int64
	}
	written := map[key]int64{}
	for rows.Next() {
		var pos int64
		var k key
		if err := rows.Scan(&pos, &k.id, &k.v); err != nil {
			rows.Close()
			return nil, fmt.Errorf("%w: %w", estype.ErrOutcomeUnknown, err)
		}
		written[k] = pos
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", estype.ErrOutcomeUnknown, err)
	}
	if failedOver && len(written) == 0 {
		// "committed" may be another transaction's, with the same id on
		// the new timeline: none of the append's rows confirm it.
		return d.resolveByKeys(ctx, conn, cause, &appendArgs{ids: ids, versions: versions})
	}
	res := &driver.AppendResult{FirstPosition: -1}
	for i, r := range p.Requests {
		first := r.Events[0]
		pos, ok := written[key{first.AggregateID, first.AggregateVersion}]
		if !ok {
			res.Conflicts = append(res.Conflicts, driver.AppendConflict{Request: i, AggregateID: first.AggregateID, AggregateVersion: first.AggregateVersion})
			continue
		}
		if res.FirstPosition < 0 || pos < res.FirstPosition {
			res.FirstPosition = pos
		}
	}
	if len(written) == 0 && fast {
		return &driver.AppendResult{Frozen: true}, nil
	}
	if len(written) == 0 {
		// Nothing of appendSQL's was written: the store was frozen, or
		// every request conflicted. Which, the transaction did not say
		// before the connection broke; the store's state now is the best
		// evidence left.
		var frozen bool
		var last int64
		if err := conn.QueryRow(ctx, d.q(stateSQL)).Scan(&frozen, &last); err == nil && frozen {
			return &driver.AppendResult{Frozen: true}, nil
		}
	}
	return res, nil
}

// writeTx runs fn in a transaction that holds the store-state row lock,
// taken together with the transaction's settings in one round trip;
// indexOnly also limits the planner to index access (see indexOnlySQL).
// When *notify is true after fn, the transaction notifies the store's
// channel (it wrote events). It returns fn's error unchanged and
// interprets its own.
func (d *Dialect) writeTx(ctx context.Context, indexOnly bool, notify *bool, fn func(tx pgx.Tx, st driver.State) error) error {
	tx, err := d.pool.Begin(ctx)
	if err != nil {
		return interpretError(err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var st driver.State
	var xid string
	b := &pgx.Batch{}
	b.Queue(txSetupSQL, d.lockTO, d.stmtTO).QueryRow(func(row pgx.Row) error {
		var a, c string
		return row.Scan(&a, &c, &xid)
	})
	if indexOnly {
		b.Queue(indexOnlySQL)
	}
	b.Queue(d.q(lockStateReasonSQL)).QueryRow(func(row pgx.Row) error { return row.Scan(&st.Frozen, &st.FrozenReason, &st.LastPosition) })
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return interpretError(err)
	}
	if err := fn(tx, st); err != nil {
		return err
	}
	if notify != nil && *notify {
		if _, err := tx.Exec(ctx, notifySQL, d.channel()); err != nil {
			return interpretError(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		if isStatementError(err) {
			return interpretError(err)
		}
		return fmt.Errorf("%w: %w (transaction %s)", estype.ErrOutcomeUnknown, interpretError(err), xid)
	}
	return nil
}

// PutSnapshot implements driver.Driver.
func (d *Dialect) PutSnapshot(ctx context.Context, p *driver.Snapshot) error {
	_, err := d.pool.Exec(ctx, d.q(putSnapshotSQL), p.Key, p.Content)
	return interpretError(err)
}

// DeleteSnapshot implements driver.Driver.
func (d *Dialect) DeleteSnapshot(ctx context.Context, key string) error {
	_, err := d.pool.Exec(ctx, d.q(deleteSnapshotSQL), key)
	return interpretError(err)
}
