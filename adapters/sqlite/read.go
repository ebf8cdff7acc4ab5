package sqlite

import (
	"context"
	"database/sql"
	sqldriver "database/sql/driver"
	"encoding/json"
	"strings"

	"github.com/esctl/esctl/estype"
	"github.com/esctl/esctl/internal/driver"
)

// querier is what *sql.DB, *sql.Conn and *sql.Tx have in common.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// reader implements driver.Reader over a querier, with the statements of
// the store's schema version.
type reader struct {
	q  querier
	es *eventSQL
}

// ListEvents implements driver.Reader on the reader pool.
func (d *Dialect) ListEvents(ctx context.Context, p *driver.ListEventsParams) (*driver.ListEventsResult, error) {
	return reader{d.rdb, d.sql()}.ListEvents(ctx, p)
}

// ReadState implements driver.Reader in one read transaction.
func (d *Dialect) ReadState(ctx context.Context) (*driver.StoreState, error) {
	tx, err := d.BeginRead(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Close(ctx)
	return tx.ReadState(ctx)
}

// ListSecrets implements driver.Reader on the reader pool.
func (d *Dialect) ListSecrets(ctx context.Context, p *driver.ListSecretsParams) ([]estype.Secret, error) {
	return reader{d.rdb, d.sql()}.ListSecrets(ctx, p)
}

// ListSnapshots implements driver.Reader on the reader pool.
func (d *Dialect) ListSnapshots(ctx context.Context, p *driver.ListSnapshotsParams) ([]driver.Snapshot, error) {
	return reader{d.rdb, d.sql()}.ListSnapshots(ctx, p)
}

// readTx is one read transaction on a dedicated connection. BEGIN (deferred)
// takes no lock; in WAL mode the first read fixes the snapshot.
type readTx struct {
	reader
	c *sql.Conn
}

// BeginRead implements driver.Driver.
func (d *Dialect) BeginRead(ctx context.Context) (driver.ReadTx, error) {
	c, err := d.rdb.Conn(ctx)
	if err != nil {
		return nil, interpretError(err)
	}
	if _, err := c.ExecContext(ctx, beginDeferredSQL); err != nil {
		_ = c.Close()
		return nil, interpretError(err)
	}
	// Fix the snapshot now, not at the caller's first read.
	var last int64
	if err := c.QueryRowContext(ctx, lastPositionSQL).Scan(&last); err != nil {
		endRead(context.WithoutCancel(ctx), c)
		_ = c.Close()
		return nil, interpretError(err)
	}
	return &readTx{reader: reader{c, d.sql()}, c: c}, nil
}

func (t *readTx) Close(ctx context.Context) error {
	endRead(context.WithoutCancel(ctx), t.c)
	return t.c.Close()
}

// endRead ends a read transaction; if that fails the connection is
// discarded rather than returned to the pool mid-transaction.
func endRead(ctx context.Context, c *sql.Conn) {
	if _, err := c.ExecContext(ctx, rollbackSQL); err != nil {
		_ = c.Raw(func(any) error { return sqldriver.ErrBadConn })
	}
}

func (r reader) ListEvents(ctx context.Context, p *driver.ListEventsParams) (*driver.ListEventsResult, error) {
	res := &driver.ListEventsResult{}
	// The last position is read before the events: any cursor the caller
	// obtained before this call is at or below it.
	if err := r.q.QueryRowContext(ctx, lastPositionSQL).Scan(&res.LastPosition); err != nil {
		return nil, interpretError(err)
	}
	query, args := buildEventQuery(p, false, r.es)
	rows, err := r.q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, interpretError(err)
	}
	res.Events, err = scanEvents(rows, p.Limit)
	if err != nil {
		return nil, err
	}
	return res, nil
}

// ScanEvents implements driver.ReadTx: ListEvents's queries, with each
// row handed to fn as it is read. The payload and the metadata are scanned
// as sql.RawBytes, not copied.
func (t *readTx) ScanEvents(ctx context.Context, p *driver.ListEventsParams, fn func(*estype.StoredEvent) error) (int64, error) {
	var last int64
	if err := t.q.QueryRowContext(ctx, lastPositionSQL).Scan(&last); err != nil {
		return 0, interpretError(err)
	}
	query, args := buildEventQuery(p, false, t.es)
	rows, err := t.q.QueryContext(ctx, query, args...)
	if err != nil {
		return last, interpretError(err)
	}
	defer rows.Close()
	var e estype.StoredEvent
	var payload, metadata sql.RawBytes
	for rows.Next() {
		if err := rows.Scan(&e.Position, &e.AggregateID, &e.AggregateVersion, &e.Type, &e.Timestamp, &payload, &metadata); err != nil {
			return last, interpretError(err)
		}
		e.Payload, e.Metadata = json.RawMessage(payload), json.RawMessage(metadata)
		if err := fn(&e); err != nil {
			return last, err
		}
	}
	return last, interpretError(rows.Err())
}

func scanEvents(rows *sql.Rows, capacity int) ([]estype.StoredEvent, error) {
	defer rows.Close()
	events := make([]estype.StoredEvent, 0, capacity)
	for rows.Next() {
		var e estype.StoredEvent
		var payload, metadata sql.RawBytes
		if err := rows.Scan(&e.Position, &e.AggregateID, &e.AggregateVersion, &e.Type, &e.Timestamp, &payload, &metadata); err != nil {
			return nil, interpretError(err)
		}
		e.Payload = append([]byte(nil), payload...)
		if metadata != nil {
			e.Metadata = append([]byte(nil), metadata...)
		}
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, interpretError(err)
	}
	return events, nil
}

// eventQuery assembles an event read from the fragments in queries.go.
type eventQuery struct {
	sb   strings.Builder
	args []any
	es   *eventSQL
	// aliases counts json_each aliases, so that each is unique.
	aliases int
}

// where writes the conditions shared by every sub-select: the keyset bound,
// the time range, and the filters. One of the lists may be replaced by a
// single value (split) when the read is split into one sub-select per value.
func (q *eventQuery) where(p *driver.ListEventsParams, splitAggregate, splitType *string, desc bool) {
	switch {
	case p.ByTime:
		q.sb.WriteString(afterTimeSQL)
		q.args = append(q.args, p.AfterTimestamp, p.After)
	case desc:
		q.sb.WriteString(noConditionSQL)
	default:
		q.sb.WriteString(afterPositionSQL)
		q.args = append(q.args, p.After)
	}
	if p.StartTime != nil {
		q.sb.WriteString(startTimeSQL)
		q.args = append(q.args, *p.StartTime)
	}
	if p.FinishTime != nil {
		q.sb.WriteString(finishTimeSQL)
		q.args = append(q.args, *p.FinishTime)
	}
	switch {
	case splitAggregate != nil:
		q.sb.WriteString(aggregateEqSQL)
		q.args = append(q.args, *splitAggregate)
	case len(p.AggregateIDs) == 1:
		q.sb.WriteString(aggregateFilterSQL)
		q.args = append(q.args, p.AggregateIDs[0])
	case p.AggregateIDs != nil:
		q.in(aggregateInSQL, p.AggregateIDs)
	}
	switch {
	case splitType != nil:
		q.sb.WriteString(typeEqSQL)
		q.args = append(q.args, *splitType)
	case len(p.EventTypes) == 1:
		q.sb.WriteString(typeFilterSQL)
		q.args = append(q.args, p.EventTypes[0])
	case p.EventTypes != nil:
		q.in(typeInSQL, p.EventTypes)
	}
	if p.Payload != nil {
		q.sb.WriteString(andSQL)
		q.contains(payloadColumn, p.Payload.Root)
	}
	if p.Metadata != nil {
		q.sb.WriteString(andSQL)
		if q.es.meta {
			q.contains(metadataColumn, p.Metadata.Root)
		} else {
			q.sb.WriteString(falseSQL) // schema 7: no event has metadata
		}
	}
}

func (q *eventQuery) in(open string, values []string) {
	q.sb.WriteString(open)
	for i, v := range values {
		if i == 0 {
			q.sb.WriteString(placeholderSQL)
		} else {
			q.sb.WriteString(commaPlaceholderSQL)
		}
		q.args = append(q.args, v)
	}
	q.sb.WriteString(closeParenSQL)
}

func (q *eventQuery) order(p *driver.ListEventsParams, desc bool, limit int) {
	switch {
	case desc:
		q.sb.WriteString(orderPositionDesc)
		return
	case p.ByTime:
		q.sb.WriteString(orderTimeSQL)
	default:
		q.sb.WriteString(orderPositionSQL)
	}
	q.args = append(q.args, limit)
}

// buildEventQuery returns the SQL and arguments of an event read. Position
// reads filtered by a short list run one sub-select per value (each an index
// range scan of at most Limit rows on (aggregate_id, position) or (type,
// position)) merged by the outer ORDER BY, so a page costs O(limit) whatever
// the store's size and however rare the values are. A time-range read is
// driven by the (timestamp, position) index, its filters applied to the
// range. plans_test.go checks every shape's plan. es gives the columns read.
func buildEventQuery(p *driver.ListEventsParams, desc bool, es *eventSQL) (string, []any) {
	q := eventQuery{es: es}
	var split []string
	splitOnAggregate := false
	if !p.ByTime {
		switch {
		case p.AggregateIDs != nil && len(p.AggregateIDs) <= unionMaxValues:
			split, splitOnAggregate = p.AggregateIDs, true
		case p.EventTypes != nil && len(p.EventTypes) <= unionMaxValues:
			split = p.EventTypes
		}
	}
	switch {
	case len(split) == 0:
		q.sb.WriteString(es.selectEvents)
		q.where(p, nil, nil, desc)
		q.order(p, desc, p.Limit)
		return q.sb.String(), q.args
	case len(split) == 1:
		q.sb.WriteString(es.selectEvents)
		if splitOnAggregate {
			q.where(p, &split[0], nil, desc)
		} else {
			q.where(p, nil, &split[0], desc)
		}
		q.order(p, desc, p.Limit)
		return q.sb.String(), q.args
	}
	q.sb.WriteString(es.selectAllFrom)
	for i := range split {
		if i > 0 {
			q.sb.WriteString(unionAllSQL)
		}
		q.sb.WriteString(subSelectOpenSQL)
		q.sb.WriteString(es.selectEvents)
		if splitOnAggregate {
			q.where(p, &split[i], nil, desc)
		} else {
			q.where(p, nil, &split[i], desc)
		}
		q.order(p, desc, p.Limit)
		q.sb.WriteString(subSelectCloseSQL)
	}
	q.sb.WriteString(subSelectCloseSQL)
	q.order(p, desc, p.Limit)
	return q.sb.String(), q.args
}

// LatestEvent implements driver.Driver.
func (d *Dialect) LatestEvent(ctx context.Context, p *driver.LatestEventParams) (*estype.StoredEvent, error) {
	query, args := buildEventQuery(&driver.ListEventsParams{
		AggregateIDs: p.AggregateIDs, EventTypes: p.EventTypes, Payload: p.Payload, Metadata: p.Metadata, Limit: 1,
	}, true, d.sql())
	rows, err := d.rdb.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, interpretError(err)
	}
	events, err := scanEvents(rows, 1)
	if err != nil || len(events) == 0 {
		return nil, err
	}
	return &events[0], nil
}

// FirstStoredPair implements driver.Driver: one index probe per event,
// on one reader connection.
func (d *Dialect) FirstStoredPair(ctx context.Context, events []estype.StoredEvent) (int, error) {
	if len(events) == 0 {
		return -1, nil
	}
	conn, err := d.rdb.Conn(ctx)
	if err != nil {
		return 0, interpretError(err)
	}
	defer conn.Close()
	st, err := conn.PrepareContext(ctx, pairStoredSQL)
	if err != nil {
		return 0, interpretError(err)
	}
	defer st.Close()
	for i, e := range events {
		var stored bool
		if err := st.QueryRowContext(ctx, e.AggregateID, e.AggregateVersion).Scan(&stored); err != nil {
			return 0, interpretError(err)
		}
		if stored {
			return i, nil
		}
	}
	return -1, nil
}

// CountRows implements driver.Driver on the reader pool.
func (d *Dialect) CountRows(ctx context.Context) (*driver.RowCounts, error) {
	c, err := driver.ScanRow(d.rdb.QueryRowContext(ctx, countRowsSQL), driver.RowCountsFields)
	return c, interpretError(err)
}

// ReadStats implements driver.Driver on the reader pool.
func (d *Dialect) ReadStats(ctx context.Context, p *driver.ReadStatsParams) (*driver.StoreStats, error) {
	q := readStatsSQL
	if p.Counted {
		q = readCountedStatsSQL
	}
	st, err := driver.ScanRow(d.rdb.QueryRowContext(ctx, q), driver.StoreStatsFields)
	return st, interpretError(err)
}

func (r reader) ReadState(ctx context.Context) (*driver.StoreState, error) {
	st := &driver.StoreState{}
	err := r.q.QueryRowContext(ctx, readStateSQL).Scan(&st.LastPosition, &st.EventCount, &st.SecretCount,
		&st.DeletedSecretCount, &st.Frozen, &st.FrozenReason)
	if err != nil {
		return nil, interpretError(err)
	}
	var ts sql.NullInt64
	if err := r.q.QueryRowContext(ctx, lastTimestampSQL).Scan(&ts); err != nil {
		return nil, interpretError(err)
	}
	if ts.Valid {
		st.LastEventTimestamp = &ts.Int64
	}
	return st, nil
}

func (r reader) ListSecrets(ctx context.Context, p *driver.ListSecretsParams) ([]estype.Secret, error) {
	var sb strings.Builder
	args := []any{p.MinIdx}
	sb.WriteString(listSecretsSQL)
	if !p.IncludeDeleted {
		sb.WriteString(listSecretsLiveSQL)
	}
	if p.IDs != nil {
		sb.WriteString(secretIDInSQL)
		for i, id := range p.IDs {
			if i == 0 {
				sb.WriteString(placeholderSQL)
			} else {
				sb.WriteString(commaPlaceholderSQL)
			}
			args = append(args, id)
		}
		sb.WriteString(closeParenSQL)
	}
	sb.WriteString(listSecretsOrderSQL)
	args = append(args, p.Limit, p.Skip)
	rows, err := r.q.QueryContext(ctx, sb.String(), args...)
	if err != nil {
		return nil, interpretError(err)
	}
	defer rows.Close()
	var out []estype.Secret
	for rows.Next() {
		var s estype.Secret
		var v sql.NullString
		if err := rows.Scan(&s.Idx, &s.ID, &v); err != nil {
			return nil, interpretError(err)
		}
		if v.Valid {
			s.Secret = &v.String
		}
		out = append(out, s)
	}
	return out, interpretError(rows.Err())
}

func (r reader) ListSnapshots(ctx context.Context, p *driver.ListSnapshotsParams) ([]driver.Snapshot, error) {
	rows, err := r.q.QueryContext(ctx, listSnapshotsSQL, p.AfterKey, p.Limit)
	if err != nil {
		return nil, interpretError(err)
	}
	defer rows.Close()
	out, err := driver.ScanAll(rows, driver.SnapshotFields)
	return out, interpretError(err)
}

// GetSnapshot implements driver.Driver.
func (d *Dialect) GetSnapshot(ctx context.Context, key string) ([]byte, bool, error) {
	content, found, err := driver.ScanValue[[]byte](d.rdb.QueryRowContext(ctx, getSnapshotSQL, key), sql.ErrNoRows)
	return content, found, interpretError(err)
}

// GetSecret implements driver.Driver.
func (d *Dialect) GetSecret(ctx context.Context, id string) (string, bool, error) {
	v, found, err := driver.ScanValue[string](d.rdb.QueryRowContext(ctx, getSecretSQL, id), sql.ErrNoRows)
	return v, found, interpretError(err)
}

// LastSecret implements driver.Driver: one probe of the idx key.
func (d *Dialect) LastSecret(ctx context.Context) (*estype.Secret, error) {
	var s estype.Secret
	var v sql.NullString
	err := d.rdb.QueryRowContext(ctx, lastSecretSQL).Scan(&s.Idx, &s.ID, &v)
	if found, err := driver.Found(err, sql.ErrNoRows); !found {
		return nil, interpretError(err)
	}
	if v.Valid {
		s.Secret = &v.String
	}
	return &s, nil
}
