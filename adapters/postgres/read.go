package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/esctl/esctl/estype"
	"github.com/esctl/esctl/internal/driver"
)

// querier is what *pgxpool.Pool and pgx.Tx have in common.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// reader implements driver.Reader over a querier.
type reader struct {
	d *Dialect
	q querier
	// es, when set, are the event statements of the reader's snapshot
	// (a ReadTx); nil: the dialect's, with a fallback for a standby that
	// has not replayed the metadata migration yet (withoutMetadata).
	es *eventSQL
}

// eventSQL returns the event statements of r.
func (r reader) eventSQL() *eventSQL {
	if r.es != nil {
		return r.es
	}
	return r.d.sql()
}

// withoutMetadata reports whether a read with es failed because the
// events table has no metadata column: a standby (Options.ReadURL) that
// has not yet replayed the migration the primary ran. Such a standby has
// no event with metadata either (it replays in order), so the read is
// run again without the column.
func withoutMetadata(es *eventSQL, err error) bool {
	return es.meta && isUndefinedColumn(err)
}

func (d *Dialect) pooled() reader { return reader{d: d, q: d.pool} }

// ListEvents implements driver.Reader.
func (d *Dialect) ListEvents(ctx context.Context, p *driver.ListEventsParams) (*driver.ListEventsResult, error) {
	return d.pooled().ListEvents(ctx, p)
}

// ReadState implements driver.Reader.
func (d *Dialect) ReadState(ctx context.Context) (*driver.StoreState, error) {
	return d.pooled().ReadState(ctx)
}

// ListSecrets implements driver.Reader.
func (d *Dialect) ListSecrets(ctx context.Context, p *driver.ListSecretsParams) ([]estype.Secret, error) {
	return d.pooled().ListSecrets(ctx, p)
}

// ListSnapshots implements driver.Reader.
func (d *Dialect) ListSnapshots(ctx context.Context, p *driver.ListSnapshotsParams) ([]driver.Snapshot, error) {
	return d.pooled().ListSnapshots(ctx, p)
}

// readTx is a REPEATABLE READ READ ONLY transaction: one snapshot for a
// whole export. It takes no lock and holds no transaction id.
type readTx struct {
	reader
	tx pgx.Tx
}

// BeginRead implements driver.Driver.
func (d *Dialect) BeginRead(ctx context.Context) (driver.ReadTx, error) {
	tx, err := d.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, interpretError(err)
	}
	// Take the snapshot now, not at the caller's first read, and learn
	// whether it has the metadata column (a standby may lag a migration).
	var last int64
	var meta bool
	if err := tx.QueryRow(ctx, d.q(snapshotStateSQL), d.qschema+"."+eventsTable).Scan(&last, &meta); err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return nil, interpretError(err)
	}
	es := &eventSQLs[0]
	if meta && d.sql().meta {
		es = &eventSQLs[1]
	}
	return &readTx{reader: reader{d: d, q: tx, es: es}, tx: tx}, nil
}

func (t *readTx) Close(ctx context.Context) error {
	err := t.tx.Rollback(context.WithoutCancel(ctx))
	if errors.Is(err, pgx.ErrTxClosed) {
		return nil
	}
	return interpretError(err)
}

// ListEvents reads the last position and one page of events in one round
// trip. The last position is read first: any cursor the caller obtained
// before this call is at or below it.
func (r reader) ListEvents(ctx context.Context, p *driver.ListEventsParams) (*driver.ListEventsResult, error) {
	es := r.eventSQL()
	res, err := r.listEvents(ctx, p, es)
	if withoutMetadata(es, err) {
		res, err = r.listEvents(ctx, p, &eventSQLs[0])
	}
	if err != nil {
		return nil, interpretError(err)
	}
	return res, nil
}

func (r reader) listEvents(ctx context.Context, p *driver.ListEventsParams, es *eventSQL) (*driver.ListEventsResult, error) {
	res := &driver.ListEventsResult{Events: make([]estype.StoredEvent, 0, min(p.Limit, 1024))}
	query, args := buildEventQuery(p, false, es)
	b := &pgx.Batch{}
	b.Queue(readSetupSQL(p)) // local to the batch's implicit transaction (or the ReadTx)
	b.Queue(r.d.q(lastPositionSQL)).QueryRow(func(row pgx.Row) error { return row.Scan(&res.LastPosition) })
	b.Queue(r.d.q(query), args...).Query(func(rows pgx.Rows) error {
		var err error
		res.Events, err = scanEvents(rows, res.Events)
		return err
	})
	if err := r.q.SendBatch(ctx, b).Close(); err != nil {
		return nil, err
	}
	return res, nil
}

// ScanEvents implements driver.ReadTx: ListEvents's round trip, with
// each row handed to fn as it is decoded. The payload is the driver's own
// buffer (pgtype.DriverBytes), not a copy.
func (t *readTx) ScanEvents(ctx context.Context, p *driver.ListEventsParams, fn func(*estype.StoredEvent) error) (int64, error) {
	var last int64
	query, args := buildEventQuery(p, false, t.es)
	b := &pgx.Batch{}
	b.Queue(readSetupSQL(p))
	b.Queue(t.d.q(lastPositionSQL)).QueryRow(func(row pgx.Row) error { return row.Scan(&last) })
	b.Queue(t.d.q(query), args...).Query(func(rows pgx.Rows) error {
		var e estype.StoredEvent
		var payload, metadata pgtype.DriverBytes
		for rows.Next() {
			if err := rows.Scan(&e.Position, &e.AggregateID, &e.AggregateVersion, &e.Type, &e.Timestamp, &payload, &metadata); err != nil {
				return err
			}
			e.Payload, e.Metadata = json.RawMessage(payload), json.RawMessage(metadata)
			if err := fn(&e); err != nil {
				return &callbackError{err}
			}
		}
		return rows.Err()
	})
	err := t.q.SendBatch(ctx, b).Close()
	var ce *callbackError
	if errors.As(err, &ce) {
		return last, ce.err
	}
	if err != nil {
		return last, interpretError(err)
	}
	return last, nil
}

// readSetupSQL is the planner settings of a read: index access only
// (indexOnlySQL), but for a content filter, whose GIN index is read by a
// bitmap scan (containsSetupSQL).
func readSetupSQL(p *driver.ListEventsParams) string {
	if p.Payload != nil || p.Metadata != nil {
		return containsSetupSQL
	}
	return indexOnlySQL
}

// callbackError carries an error of ScanEvents's fn through pgx unchanged.
type callbackError struct{ err error }

func (e *callbackError) Error() string { return e.err.Error() }

func scanEvents(rows pgx.Rows, events []estype.StoredEvent) ([]estype.StoredEvent, error) {
	for rows.Next() {
		var e estype.StoredEvent
		var payload string
		var metadata *string
		if err := rows.Scan(&e.Position, &e.AggregateID, &e.AggregateVersion, &e.Type, &e.Timestamp, &payload, &metadata); err != nil {
			return nil, err
		}
		e.Payload = []byte(payload)
		if metadata != nil {
			e.Metadata = []byte(*metadata)
		}
		events = append(events, e)
	}
	return events, rows.Err()
}

// queryBuilder assembles SQL from the fragments in queries.go, numbering
// placeholders in the order arguments are added.
type queryBuilder struct {
	sb   strings.Builder
	args []any
}

func (q *queryBuilder) arg(v any) string {
	q.args = append(q.args, v)
	return "$" + strconv.Itoa(len(q.args))
}

// add writes a fragment, filling its %s verbs with new placeholders.
func (q *queryBuilder) add(fragment string, args ...any) {
	ph := make([]any, len(args))
	for i, a := range args {
		ph[i] = q.arg(a)
	}
	if len(ph) == 0 {
		q.sb.WriteString(fragment)
		return
	}
	fmt.Fprintf(&q.sb, fragment, ph...)
}

// buildEventQuery returns the SQL (with {s} still to fill) and arguments
// of an event read: position order (desc false) or the latest match (desc
// true). See the fragments in queries.go; es gives the columns read.
func buildEventQuery(p *driver.ListEventsParams, desc bool, es *eventSQL) (string, []any) {
	var q queryBuilder
	// The driving key: one value (key range), a short list (LATERAL over
	// key ranges), or none (position or time order, filters).
	var keyColumn string
	var keyValues []string
	if !p.ByTime {
		switch {
		case len(p.AggregateIDs) >= 1 && len(p.AggregateIDs) <= splitMaxValues:
			keyColumn, keyValues = aggregateColumn, p.AggregateIDs
		case len(p.EventTypes) >= 1 && len(p.EventTypes) <= splitMaxValues:
			keyColumn, keyValues = typeColumn, p.EventTypes
		}
	}
	filter := func(column, eq, anyOf string, values []string) {
		switch {
		case values == nil || column == keyColumn:
		case len(values) == 1:
			q.add(andSQL)
			q.add(eq, values[0])
		default:
			q.add(andSQL)
			q.add(anyOf, values)
		}
	}
	filters := func() {
		filter(aggregateColumn, aggregateEqSQL, aggregateAnySQL, p.AggregateIDs)
		filter(typeColumn, typeEqSQL, typeAnySQL, p.EventTypes)
		if p.Payload != nil {
			q.add(andSQL)
			q.add(payloadContainsSQL, string(p.Payload.JSON))
		}
		if p.Metadata != nil {
			q.add(andSQL)
			if es.meta {
				q.add(metadataContainsSQL, string(p.Metadata.JSON))
			} else {
				q.add(falseSQL) // schema 7: no event has metadata
			}
		}
	}
	if keyColumn == "" {
		q.add(es.selectEvents)
		switch {
		case p.ByTime:
			q.add(afterTimeSQL, p.AfterTimestamp, p.After)
			if p.FinishTime != nil {
				q.add(andSQL)
				q.add(finishTimeSQL, *p.FinishTime)
			}
		case desc:
			q.add(trueSQL)
		default:
			q.add(afterPositionSQL, p.After)
		}
		filters()
		switch {
		case desc:
			q.add(orderPositionDesc)
		case p.ByTime:
			q.add(orderTimeSQL, p.Limit)
		default:
			q.add(orderPositionSQL, p.Limit)
		}
		return q.sb.String(), q.args
	}
	var value string
	if len(keyValues) == 1 {
		q.add(es.selectEvents)
		value = q.arg(keyValues[0])
	} else {
		q.add(es.lateralOpen, keyValues)
		value = lateralValue
	}
	byType := keyColumn == typeColumn
	switch {
	case byType && desc:
		fmt.Fprintf(&q.sb, typeAllSQL, value)
	case byType:
		fmt.Fprintf(&q.sb, typeAfterSQL, value, q.arg(p.After))
	case desc:
		fmt.Fprintf(&q.sb, aggregateEqSQL, value)
	default:
		fmt.Fprintf(&q.sb, aggregateAfterSQL, value, q.arg(p.After))
	}
	filters()
	order, orderDesc := orderPositionSQL, orderPositionDesc
	if byType {
		order, orderDesc = orderTypeSQL, orderTypeDesc
	}
	if desc {
		q.add(orderDesc)
		if len(keyValues) > 1 {
			q.add(lateralClose)
			q.add(outerPositionDesc)
		}
		return q.sb.String(), q.args
	}
	limit := q.arg(p.Limit)
	q.sb.WriteString(strings.Replace(order, "%s", limit, 1))
	if len(keyValues) > 1 {
		q.add(lateralClose)
		q.sb.WriteString(strings.Replace(outerPositionSQL, "%s", limit, 1))
	}
	return q.sb.String(), q.args
}

// LatestEvent implements driver.Driver.
func (d *Dialect) LatestEvent(ctx context.Context, p *driver.LatestEventParams) (*estype.StoredEvent, error) {
	es := d.sql()
	e, err := d.latestEvent(ctx, p, es)
	if withoutMetadata(es, err) {
		e, err = d.latestEvent(ctx, p, &eventSQLs[0])
	}
	return e, interpretError(err)
}

func (d *Dialect) latestEvent(ctx context.Context, p *driver.LatestEventParams, es *eventSQL) (*estype.StoredEvent, error) {
	lp := &driver.ListEventsParams{AggregateIDs: p.AggregateIDs, EventTypes: p.EventTypes, Payload: p.Payload, Metadata: p.Metadata}
	query, args := buildEventQuery(lp, true, es)
	var events []estype.StoredEvent
	b := &pgx.Batch{}
	b.Queue(readSetupSQL(lp))
	b.Queue(d.q(query), args...).Query(func(rows pgx.Rows) error {
		var err error
		events, err = scanEvents(rows, nil)
		return err
	})
	if err := d.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, err
	}
	if len(events) == 0 {
		return nil, nil
	}
	return &events[0], nil
}

// CountRows implements driver.Driver.
func (d *Dialect) CountRows(ctx context.Context) (*driver.RowCounts, error) {
	c, err := driver.ScanRow(d.pool.QueryRow(ctx, d.q(countRowsSQL)), driver.RowCountsFields)
	return c, interpretError(err)
}

// ReadStats implements driver.Driver.
func (d *Dialect) ReadStats(ctx context.Context, p *driver.ReadStatsParams) (*driver.StoreStats, error) {
	q := readStatsSQL
	if p.Counted {
		q = readCountedStatsSQL
	}
	st, err := driver.ScanRow(d.pool.QueryRow(ctx, d.q(q)), driver.StoreStatsFields)
	return st, interpretError(err)
}

func (r reader) ReadState(ctx context.Context) (*driver.StoreState, error) {
	st := &driver.StoreState{}
	err := r.q.QueryRow(ctx, r.d.q(readStateSQL)).Scan(&st.LastPosition, &st.EventCount, &st.SecretCount,
		&st.DeletedSecretCount, &st.Frozen, &st.FrozenReason, &st.LastEventTimestamp)
	if err != nil {
		return nil, interpretError(err)
	}
	return st, nil
}

func (r reader) ListSecrets(ctx context.Context, p *driver.ListSecretsParams) ([]estype.Secret, error) {
	var rows pgx.Rows
	var err error
	if p.IDs != nil {
		rows, err = r.q.Query(ctx, r.d.q(listSecretsIDsSQL), p.MinIdx, p.IncludeDeleted, p.Limit, p.Skip, p.IDs)
	} else {
		rows, err = r.q.Query(ctx, r.d.q(listSecretsSQL), p.MinIdx, p.IncludeDeleted, p.Limit, p.Skip)
	}
	if err != nil {
		return nil, interpretError(err)
	}
	defer rows.Close()
	var out []estype.Secret
	for rows.Next() {
		var s estype.Secret
		if err := rows.Scan(&s.Idx, &s.ID, &s.Secret); err != nil {
			return nil, interpretError(err)
		}
		out = append(out, s)
	}
	return out, interpretError(rows.Err())
}

func (r reader) ListSnapshots(ctx context.Context, p *driver.ListSnapshotsParams) ([]driver.Snapshot, error) {
	rows, err := r.q.Query(ctx, r.d.q(listSnapshotsSQL), p.AfterKey, p.Limit)
	if err != nil {
		return nil, interpretError(err)
	}
	defer rows.Close()
	out, err := driver.ScanAll(rows, driver.SnapshotFields)
	return out, interpretError(err)
}

// GetSnapshot implements driver.Driver.
func (d *Dialect) GetSnapshot(ctx context.Context, key string) ([]byte, bool, error) {
	content, found, err := driver.ScanValue[[]byte](d.pool.QueryRow(ctx, d.q(getSnapshotSQL), key), pgx.ErrNoRows)
	return content, found, interpretError(err)
}

// GetSecret implements driver.Driver.
func (d *Dialect) GetSecret(ctx context.Context, id string) (string, bool, error) {
	v, found, err := driver.ScanValue[string](d.pool.QueryRow(ctx, d.q(getSecretSQL), id), pgx.ErrNoRows)
	return v, found, interpretError(err)
}

// LastSecret implements driver.Driver: one probe of the idx index.
func (d *Dialect) LastSecret(ctx context.Context) (*estype.Secret, error) {
	var s estype.Secret
	err := d.pool.QueryRow(ctx, d.q(lastSecretSQL)).Scan(&s.Idx, &s.ID, &s.Secret)
	if found, err := driver.Found(err, pgx.ErrNoRows); !found {
		return nil, interpretError(err)
	}
	return &s, nil
}
