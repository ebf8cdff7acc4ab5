package postgres

import (
	"strings"

	"github.com/esctl/esctl/migrations"
)

// SQL of the PostgreSQL dialect. This file and migrations/postgres are the
// only places PostgreSQL SQL lives. Values are always bound parameters. The
// only identifier that varies is the store's schema, written {s} here and
// replaced by Dialect.q, at each use, with the quoted form of a name that
// passed validSchema; table and index names are constants.

// Write-transaction setup. set_config(..., true) is SET LOCAL with bound
// values. pg_current_xact_id() gives the transaction an id up front, so that
// after a connection lost during COMMIT the store can ask pg_xact_status.
//
// indexOnlySQL turns sequential scans, bitmap scans, hash joins and merge
// joins off for the rest of the transaction. Every statement run under it
// is designed for ordered index access (lookups by key, keyset pages that a
// LIMIT stops early), but pgx caches prepared statements and PostgreSQL
// caches their generic plans: a plan made while a table was small (a
// sequential scan, a hash join) would otherwise stay in use as the table
// grows, until the next ANALYZE; and a bitmap scan reads every matching row
// (a whole aggregate, a whole type) to sort it before the LIMIT applies.
const (
	beginSQL       = `BEGIN`
	commitSQL      = `COMMIT`
	rollbackSQL    = `ROLLBACK`
	txSetupSQL     = `SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true), pg_current_xact_id()::text`
	appendSetupSQL = `SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true), set_config('enable_seqscan', 'off', true), set_config('enable_bitmapscan', 'off', true), set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true), pg_current_xact_id()::text, ` + timelineExpr
	// fastSetupSQL is txSetupSQL with the timeline, for the fast append.
	fastSetupSQL = `SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true), pg_current_xact_id()::text, ` + timelineExpr
	// timelineExpr is the server's WAL timeline (the first 8 hex digits of
	// the current WAL file's name): a promotion starts a new one. An
	// append in doubt compares it with the server it resolves on: after a
	// failover, transaction ids of the old timeline that never reached the
	// new primary are handed out again there, so pg_xact_status may answer
	// for another transaction.
	timelineExpr    = `substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)`
	timelineSQL     = `SELECT ` + timelineExpr
	notifySQL       = `SELECT pg_notify($1, '')`
	endBackendSQL   = `SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE pid = $1`
	backendAliveSQL = `SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)`
	indexOnlySQL    = `SELECT set_config('enable_seqscan', 'off', true), set_config('enable_bitmapscan', 'off', true), set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true)`
	// containsSetupSQL is indexOnlySQL for a read with a content filter:
	// bitmap scans stay on, the only way PostgreSQL reads a GIN index (a
	// selective filter then costs its matches, not the store), and every
	// execution is planned with its values (plan_cache_mode): a generic
	// plan cannot tell a rare value from a common one, and would read the
	// store in position order, filtering (found by TestQueryPlans: 999,900
	// rows read for 100 matches).
	containsSetupSQL = `SELECT set_config('enable_seqscan', 'off', true), set_config('enable_bitmapscan', 'on', true), set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true), set_config('plan_cache_mode', 'force_custom_plan', true)`
	lockStateSQL     = `SELECT frozen, last_position FROM {s}.store_state WHERE id = 1 FOR UPDATE`
	// lockStateReasonSQL starts every Write transaction (driver.State).
	lockStateReasonSQL = `SELECT frozen, frozen_reason, last_position FROM {s}.store_state WHERE id = 1 FOR UPDATE`
	stateSQL           = `SELECT frozen, last_position FROM {s}.store_state WHERE id = 1`
	xactStatusSQL      = `SELECT pg_xact_status($1::text::xid8)`
	readOnlySnapshot   = `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`
	createSchemaSQL    = `CREATE SCHEMA IF NOT EXISTS {s}`
	schemaTableSQL     = `SELECT to_regclass($1) IS NOT NULL`
	adoptVersionSQL    = `ALTER TABLE {s}.schema_migrations RENAME TO esctl_schema_migrations`
	adoptVersionPKSQL  = `ALTER INDEX IF EXISTS {s}.schema_migrations_pkey RENAME TO esctl_schema_migrations_pkey`
	dropSchemaSQL      = `DROP SCHEMA IF EXISTS {s} RESTRICT`
	schemaIsEmptySQL   = `SELECT NOT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1)`
)

// dropFunctionsSQL drops the trigger functions of migration 6 (their
// triggers went with the events table).
const dropFunctionsSQL = `DROP FUNCTION IF EXISTS {s}.esctl_refuse_frozen(), {s}.esctl_count_aggregates(), {s}.esctl_uncount_aggregates()`

// setMaintenanceSQL opens (true) and closes (false) the frozen-store
// trigger's bypass for the store's own writes into a frozen store, inside
// the transaction that holds the state row's lock.
const setMaintenanceSQL = `UPDATE {s}.store_state SET maintenance = $1 WHERE id = 1`

// dropStoreSQL drops every table the store may have created.
const dropStoreSQL = `DROP TABLE IF EXISTS {s}.esctl_consumer_instances, {s}.esctl_parked_events, {s}.esctl_consumers, {s}.events_quarantine, {s}.incremental_import_events, {s}.incremental_imports, {s}.import_staging, {s}.import_checkpoints, {s}.secrets, {s}.snapshots, {s}.events, {s}.store_state, {s}.esctl_schema_migrations`

// appendSQL writes one group in one statement, after lockStateSQL took the
// row lock in the same transaction (so this statement's snapshot sees every
// earlier writer's commit). Inputs are parallel arrays, one element per
// event: request index, aggregate id, version, type, timestamp, payload. A
// request conflicts when any of its pairs is stored; the others are inserted
// at last_position + 1 ... in input order. It returns one row: frozen,
// last_position before the append, and the conflicting requests as arrays
// (the first stored pair of each).
const appendTmpl = `
WITH input AS (
    SELECT * FROM unnest($1::int[], $2::text[], $3::bigint[], $4::text[], $5::bigint[], $6::text[]{$7[]})
        WITH ORDINALITY AS t(req, aggregate_id, aggregate_version, type, timestamp, payload{m}, ord)
), state AS (
    SELECT frozen, last_position FROM {s}.store_state WHERE id = 1
), conflicts AS (
    -- The keys come straight from the parameters, not from the input CTE,
    -- so that the planner sees an index-only probe of the unique key.
    SELECT DISTINCT ON (k.req) k.req, k.aggregate_id, k.aggregate_version
    FROM unnest($1::int[], $2::text[], $3::bigint[]) WITH ORDINALITY AS k(req, aggregate_id, aggregate_version, ord)
    WHERE EXISTS (SELECT 1 FROM {s}.events e WHERE e.aggregate_id = k.aggregate_id AND e.aggregate_version = k.aggregate_version)
    ORDER BY k.req, k.ord
), accepted AS (
    SELECT i.aggregate_id, i.aggregate_version, i.type, i.timestamp, i.payload{m},
           (SELECT last_position FROM state) + row_number() OVER (ORDER BY i.ord) AS position
    FROM input i
    WHERE NOT (SELECT frozen FROM state) AND i.req NOT IN (SELECT req FROM conflicts)
), inserted AS (
    INSERT INTO {s}.events (position, aggregate_id, aggregate_version, type, timestamp, payload{m})
    SELECT position, aggregate_id, aggregate_version, type, timestamp, payload::json{mj} FROM accepted
), advanced AS (
    UPDATE {s}.store_state
    SET last_position = last_position + (SELECT count(*) FROM accepted),
        event_count = event_count + (SELECT count(*) FROM accepted)
    WHERE id = 1 AND EXISTS (SELECT 1 FROM accepted)
)
SELECT (SELECT frozen FROM state), (SELECT last_position FROM state),
       coalesce(array_agg(c.req ORDER BY c.req) FILTER (WHERE c.req IS NOT NULL), '{}'),
       coalesce(array_agg(c.aggregate_id ORDER BY c.req) FILTER (WHERE c.req IS NOT NULL), '{}'),
       coalesce(array_agg(c.aggregate_version ORDER BY c.req) FILTER (WHERE c.req IS NOT NULL), '{}')
FROM (SELECT 1) one LEFT JOIN conflicts c ON true`

// The fast path of an append assumes no conflict: fastAppendSQL is one
// statement that locks the state row, advances it, and inserts every event
// at the positions it reserved. The UPDATE takes the row lock (waiting for
// the previous writer, then re-checking "NOT frozen" on the row as that
// writer committed it); the INSERT takes the positions from its RETURNING,
// never from a second read of the table, so the positions it writes and
// the freeze it obeys come from one locked read. (Two statements, or a
// second read of store_state with the statement's snapshot, can see a
// Freeze or Unfreeze that committed in between: events then land at
// positions already used, or at positions <= 0 where no read finds them.)
// On a frozen store the UPDATE matches no row, so nothing is locked,
// written or inserted. The statement returns one row: the new last
// position (NULL when nothing was reserved) and whether the state row
// exists (frozen, or not a store). fastAppendOneSQL does the same for a
// single event, without the set-returning function (a lone SaveEvent is
// the common case, and unnest costs the server more than the insert). If
// the unique key fires the transaction is aborted and the append is run
// again with appendSQL, which sorts out the conflicting requests. Plain
// statements cost the server much less than appendSQL's conflict probes,
// and conflicts are the exception. Neither reads the events table, so they
// need no planner settings (a generic plan of these is always right).
const (
	fastAppendTmpl = `WITH r AS (
    UPDATE {s}.store_state SET last_position = last_position + $6, event_count = event_count + $6
    WHERE id = 1 AND NOT frozen RETURNING last_position
), ins AS (
    INSERT INTO {s}.events (position, aggregate_id, aggregate_version, type, timestamp, payload{m})
    SELECT r.last_position - $6 + t.ord, t.aggregate_id, t.aggregate_version, t.type, t.timestamp, t.payload::json{mj}
    FROM r, unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::text[]{$7[]}) WITH ORDINALITY AS t(aggregate_id, aggregate_version, type, timestamp, payload{m}, ord)
)
SELECT (SELECT last_position FROM r), EXISTS (SELECT 1 FROM {s}.store_state WHERE id = 1)`
	fastAppendOneTmpl = `WITH r AS (
    UPDATE {s}.store_state SET last_position = last_position + 1, event_count = event_count + 1
    WHERE id = 1 AND NOT frozen RETURNING last_position
), ins AS (
    INSERT INTO {s}.events (position, aggregate_id, aggregate_version, type, timestamp, payload{m})
    SELECT r.last_position, $1, $2, $3, $4, $5::json{$6json} FROM r
)
SELECT (SELECT last_position FROM r), EXISTS (SELECT 1 FROM {s}.store_state WHERE id = 1)`
)

// keysStoredSQL counts which of the given pairs are stored, whoever wrote
// them.
const keysStoredSQL = `
SELECT count(*)
FROM unnest($1::text[], $2::bigint[]) AS k(aggregate_id, aggregate_version)
JOIN {s}.events e ON e.aggregate_id = k.aggregate_id AND e.aggregate_version = k.aggregate_version`

const resolveAppendSQL = `
SELECT e.position, e.aggregate_id, e.aggregate_version
FROM unnest($1::text[], $2::bigint[]) AS k(aggregate_id, aggregate_version)
JOIN {s}.events e ON e.aggregate_id = k.aggregate_id AND e.aggregate_version = k.aggregate_version
WHERE e.xmin::text = $3`

// The operations of a Write transaction (driver.Tx), which holds the
// store-state row lock: no other writer inserts events, staged events or
// secrets meanwhile, so a statement's pre-check of the keys holds until
// commit (the unique keys stay the final arbiter).
const (
	advanceStateSQL = `UPDATE {s}.store_state SET last_position = $1, event_count = event_count + $2 WHERE id = 1`
	setFrozenSQL    = `UPDATE {s}.store_state SET frozen = $1, frozen_reason = $2 WHERE id = 1`
	// insertEventsSQL inserts a few events in one statement unless one's
	// pair is stored in table %s or repeated in the input; it returns the
	// index of the first such event (NULL: all inserted).
	insertEventsTmpl = `WITH k AS (
  SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::bigint[], $6::text[]{$7[]}) WITH ORDINALITY
    AS k(position, aggregate_id, aggregate_version, type, timestamp, payload{m}, ord)),
c AS (
  SELECT min(ord) - 1 AS i FROM (
    SELECT k.*, row_number() OVER (PARTITION BY aggregate_id, aggregate_version ORDER BY ord) AS rn FROM k) k
  WHERE rn > 1 OR EXISTS (SELECT 1 FROM {s}.%s t WHERE t.aggregate_id = k.aggregate_id AND t.aggregate_version = k.aggregate_version)),
ins AS (
  INSERT INTO {s}.%s (position, aggregate_id, aggregate_version, type, timestamp, payload{m})
  SELECT position, aggregate_id, aggregate_version, type, timestamp, payload::json{mj} FROM k
  WHERE (SELECT i FROM c) IS NULL ORDER BY ord
  RETURNING 1)
SELECT (SELECT i FROM c), (SELECT count(*) FROM ins)`
	// insertConflictSQL finds, after COPY hit a unique key, the first
	// event whose pair is in table %s or repeated in the input.
	insertConflictSQL = `SELECT min(ord) - 1 FROM (
  SELECT k.*, row_number() OVER (PARTITION BY aggregate_id, aggregate_version ORDER BY ord) AS rn
  FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS k(aggregate_id, aggregate_version, ord)) k
WHERE rn > 1 OR EXISTS (SELECT 1 FROM {s}.%s t WHERE t.aggregate_id = k.aggregate_id AND t.aggregate_version = k.aggregate_version)`
	savepointSQL           = `SAVEPOINT esctl_insert`
	rollbackToSavepointSQL = `ROLLBACK TO SAVEPOINT esctl_insert`
	releaseSavepointSQL    = `RELEASE SAVEPOINT esctl_insert`
	maxSecretIdxSQL        = `SELECT coalesce(max(idx), 0) FROM {s}.secrets`
	// lastVersionsSQL reads each aggregate's highest version backwards on
	// the aggregate-version unique index (one row per aggregate, however
	// long it is), in the order of the input.
	lastVersionsSQL = `SELECT coalesce((SELECT e.aggregate_version FROM {s}.events e
    WHERE e.aggregate_id = k.aggregate_id ORDER BY e.aggregate_version DESC LIMIT 1), 0)
FROM unnest($1::text[]) WITH ORDINALITY AS k(aggregate_id, ord) ORDER BY k.ord`
	// insertSecretsSQL inserts secrets unless one's id or idx is used or
	// repeated in the input; it returns the index of the first such one.
	insertSecretsSQL = `WITH k AS (
  SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[]) WITH ORDINALITY AS k(idx, id, secret, ord)),
c AS (
  SELECT min(ord) - 1 AS i FROM (
    SELECT k.*, row_number() OVER (PARTITION BY id ORDER BY ord) AS rid, row_number() OVER (PARTITION BY idx ORDER BY ord) AS ridx FROM k) k
  WHERE rid > 1 OR ridx > 1
     OR EXISTS (SELECT 1 FROM {s}.secrets s WHERE s.id = k.id)
     OR EXISTS (SELECT 1 FROM {s}.secrets s WHERE s.idx = k.idx)),
ins AS (
  INSERT INTO {s}.secrets (idx, id, secret) SELECT idx, id, secret FROM k WHERE (SELECT i FROM c) IS NULL
  RETURNING 1)
SELECT (SELECT i FROM c), (SELECT count(*) FROM ins)`
	tombstoneSecretSQL = `UPDATE {s}.secrets SET secret = NULL WHERE id = $1 AND secret IS NOT NULL`
	addSecretCountsSQL = `UPDATE {s}.store_state SET secret_count = secret_count + $1, deleted_secret_count = deleted_secret_count + $2 WHERE id = 1`
	getSecretSQL       = `SELECT secret FROM {s}.secrets WHERE id = $1 AND secret IS NOT NULL`
	lastSecretSQL      = `SELECT idx, id, secret FROM {s}.secrets ORDER BY idx DESC LIMIT 1`
	listSecretsSQL     = `SELECT idx, id, secret FROM {s}.secrets WHERE idx >= $1 AND ($2 OR secret IS NOT NULL) ORDER BY idx LIMIT $3 OFFSET $4`
	listSecretsIDsSQL  = `SELECT idx, id, secret FROM {s}.secrets WHERE idx >= $1 AND ($2 OR secret IS NOT NULL) AND id = ANY($5) ORDER BY idx LIMIT $3 OFFSET $4`
)

const (
	putSnapshotSQL    = `INSERT INTO {s}.snapshots (snapshot_key, content) VALUES ($1, $2) ON CONFLICT (snapshot_key) DO UPDATE SET content = excluded.content`
	getSnapshotSQL    = `SELECT content FROM {s}.snapshots WHERE snapshot_key = $1`
	deleteSnapshotSQL = `DELETE FROM {s}.snapshots WHERE snapshot_key = $1`
	listSnapshotsSQL  = `SELECT snapshot_key, content FROM {s}.snapshots WHERE snapshot_key > $1 ORDER BY snapshot_key LIMIT $2`
)

const (
	readStateSQL = `SELECT last_position, event_count, secret_count, deleted_secret_count, frozen, frozen_reason,
       (SELECT max(timestamp) FROM {s}.events) FROM {s}.store_state WHERE id = 1`
	lastPositionSQL = `SELECT last_position FROM {s}.store_state WHERE id = 1`
	// snapshotStateSQL starts a ReadTx: the last position, and whether
	// the events table ($1) has the metadata column in this snapshot's
	// database (a standby may not have replayed migration 8 yet).
	snapshotStateSQL = `SELECT last_position, EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = 'metadata' AND NOT attisdropped) FROM {s}.store_state WHERE id = 1`
	countRowsSQL     = `SELECT (SELECT count(*) FROM {s}.events), coalesce((SELECT min(position) FROM {s}.events), 0), coalesce((SELECT max(position) FROM {s}.events), 0), (SELECT count(*) FROM {s}.secrets), (SELECT count(*) FROM {s}.secrets WHERE secret IS NULL), (SELECT count(*) FROM {s}.events_quarantine), (SELECT count(*) FROM {s}.import_staging), (SELECT count(DISTINCT aggregate_id) FROM {s}.events)`
	readStatsSQL     = `SELECT coalesce((SELECT min(position) FROM {s}.events), 0), (SELECT count(DISTINCT aggregate_id) FROM {s}.events), (SELECT count(*) FROM {s}.snapshots)`
	// readCountedStatsSQL reads the aggregate count kept by migration 6's
	// triggers: the same cost at any size.
	readCountedStatsSQL = `SELECT coalesce((SELECT min(position) FROM {s}.events), 0), (SELECT aggregate_count FROM {s}.store_state WHERE id = 1), (SELECT count(*) FROM {s}.snapshots)`
)

// Event reads are assembled by buildEventQuery from these fragments, with
// placeholders numbered in order of use, so that each shape is its own
// prepared statement and every bound is an index condition (no "$n IS NULL
// OR ..." filters, which generic plans cannot use as index bounds).
//
// A read filtered by aggregate ids or event types (and not by time) is
// driven by one value's range of the (aggregate_id, position) or (type,
// position) index. A list of up to splitMaxValues values reads one such
// range of at most Limit rows per value (LATERAL over the list), merged by
// the outer ORDER BY: a page costs O(limit) however large the store and
// however rare the values.
//
// An aggregate is written as aggregate_id = value AND position > cursor,
// ordered by position: aggregates are many and small, the planner knows it,
// and the (aggregate_id, position) index is its choice in custom and generic
// plans alike. A type is written differently: the value and the cursor are
// bounds of a row comparison on (type, position), and the order is (type,
// position). Types are few, so a generic plan estimates every type as
// common and, given type = value, prefers a position-ordered scan that
// filters on the type, which reads the whole store after the cursor for a
// rare type. Only the (type, position) index yields the order (type,
// position) without sorting, so the row-comparison form always uses it.
const (
	eventColumnsTmpl = `position, aggregate_id, aggregate_version, type, timestamp, payload::text, {mcol}`
	selectEventsTmpl = `SELECT ` + eventColumnsTmpl + ` FROM {s}.events WHERE `
	lateralOpenTmpl  = `SELECT e.* FROM unnest(%s::text[]) AS v(x) CROSS JOIN LATERAL (SELECT ` + eventColumnsTmpl + ` FROM {s}.events WHERE `
	lateralValue     = `v.x`
	lateralClose     = `) e`
	trueSQL          = `true`
	falseSQL         = `false`
	// Containment (driver.Contains) is jsonb's @>, on the expression that
	// a GIN index (Dialect.CreateIndex) is built on.
	payloadContainsSQL  = `payload::jsonb @> %s::jsonb`
	metadataContainsSQL = `metadata::jsonb @> %s::jsonb`
	andSQL              = ` AND `
	afterPositionSQL    = `position > %s`
	afterTimeSQL        = `(timestamp, position) > (%s, %s)`
	finishTimeSQL       = `timestamp <= %s`
	aggregateAnySQL     = `aggregate_id = ANY(%s)`
	typeAnySQL          = `type = ANY(%s)`
	aggregateEqSQL      = `aggregate_id = %s`
	typeEqSQL           = `type = %s`
	aggregateAfterSQL   = `aggregate_id = %[1]s AND position > %[2]s`                                              // value, cursor
	typeAfterSQL        = `(type, position) > (%[1]s, %[2]s) AND (type, position) <= (%[1]s, 9223372036854775807)` // value, cursor
	typeAllSQL          = `(type, position) > (%[1]s, 0) AND (type, position) <= (%[1]s, 9223372036854775807)`     // value
	orderTypeSQL        = ` ORDER BY type, position LIMIT %s`
	orderTypeDesc       = ` ORDER BY type DESC, position DESC LIMIT 1`
	orderPositionSQL    = ` ORDER BY position LIMIT %s`
	orderPositionDesc   = ` ORDER BY position DESC LIMIT 1`
	orderTimeSQL        = ` ORDER BY timestamp, position LIMIT %s`
	outerPositionSQL    = ` ORDER BY e.position LIMIT %s`
	outerPositionDesc   = ` ORDER BY e.position DESC LIMIT 1`
	aggregateColumn     = `aggregate_id`
	typeColumn          = `type`
)

// splitMaxValues: lists of 2 to this many values use the per-value LATERAL
// shapes; a single value is one key range; longer lists are = ANY filters
// on a position-ordered scan.
const splitMaxValues = 32

// Imports. Large batches go in with COPY (see InsertEvents).
const (
	deleteSnapshotsSQL  = `DELETE FROM {s}.snapshots`
	upsertCheckpointSQL = `INSERT INTO {s}.import_checkpoints (source_id, kind, mode, froze, base_position, byte_offset, line, events, last_position, hash_state, done, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (source_id) DO UPDATE SET kind = excluded.kind, mode = excluded.mode, froze = excluded.froze,
    base_position = excluded.base_position, byte_offset = excluded.byte_offset, line = excluded.line, events = excluded.events,
    last_position = excluded.last_position, hash_state = excluded.hash_state, done = excluded.done, updated_at = excluded.updated_at`
	checkpointColumns   = `source_id, kind, mode, froze, base_position, byte_offset, line, events, last_position, hash_state, done, updated_at`
	getCheckpointSQL    = `SELECT ` + checkpointColumns + ` FROM {s}.import_checkpoints WHERE source_id = $1`
	listCheckpointsSQL  = `SELECT ` + checkpointColumns + ` FROM {s}.import_checkpoints ORDER BY source_id`
	deleteCheckpointSQL = `DELETE FROM {s}.import_checkpoints WHERE source_id = $1`
	clearStagingSQL     = `DELETE FROM {s}.import_staging`
	deleteEventsSQL     = `DELETE FROM {s}.events`
	resetEventStateSQL  = `UPDATE {s}.store_state SET last_position = 0, event_count = 0 WHERE id = 1`
	swapStateSQL        = `UPDATE {s}.store_state SET last_position = (SELECT coalesce(max(position), 0) FROM {s}.events), event_count = (SELECT count(*) FROM {s}.events) WHERE id = 1`
	conflictIndexSQL    = `SELECT min(k.ord) - 1 FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS k(aggregate_id, aggregate_version, ord)
JOIN {s}.%s t ON t.aggregate_id = k.aggregate_id AND t.aggregate_version = k.aggregate_version`
)

// Tables and columns for COPY (pgx quotes them).
const (
	eventsTable  = "events"
	stagingTable = "import_staging"
)

// copyColumns are COPY's columns without metadata ([0]) and with it ([1]).
var copyColumns = [2][]string{
	{"position", "aggregate_id", "aggregate_version", "type", "timestamp", "payload"},
	{"position", "aggregate_id", "aggregate_version", "type", "timestamp", "payload", "metadata"},
}

// Incremental imports. A push holds the import's row FOR SHARE and a
// commit holds it FOR UPDATE, so no push lands between a commit's reading
// and its deleting of the staged events. A commit classifies the staged
// events in a temporary table (cls: a driver.IncrementalClass, bound as a
// parameter), then appends the fresh ones.
const (
	beginIncrementalSQL  = `INSERT INTO {s}.incremental_imports (import_id, created_at, updated_at) VALUES ($1, $2, $2)`
	shareIncrementalSQL  = `SELECT 1 FROM {s}.incremental_imports WHERE import_id = $1 FOR SHARE`
	lockIncrementalSQL   = `SELECT 1 FROM {s}.incremental_imports WHERE import_id = $1 FOR UPDATE`
	touchIncrementalSQL  = `UPDATE {s}.incremental_imports SET updated_at = $2 WHERE import_id = $1`
	deleteStagedSQL      = `DELETE FROM {s}.incremental_import_events WHERE import_id = $1`
	deleteIncrementalSQL = `DELETE FROM {s}.incremental_imports WHERE import_id = $1`
	listIncrementalSQL   = `SELECT i.import_id, (SELECT count(*) FROM {s}.incremental_import_events e WHERE e.import_id = i.import_id), i.created_at, i.updated_at
FROM {s}.incremental_imports i ORDER BY i.created_at, i.import_id`
	createWorkSQL = `CREATE TEMP TABLE esctl_incremental_work (seq bigint PRIMARY KEY, aggregate_id text, type text, timestamp bigint, payload text, metadata text, cls int) ON COMMIT DROP`
	markOlderSQL  = `UPDATE esctl_incremental_work SET cls = $1::int WHERE cls = $2::int AND timestamp < (SELECT coalesce(max(timestamp), -1) FROM {s}.events)`
	workCountsSQL = `SELECT count(*) FILTER (WHERE cls = $1::int), count(*) FILTER (WHERE cls IN ($2::int, $3::int)), count(*) FILTER (WHERE cls = $4::int),
       (SELECT coalesce(max(timestamp), -1) FROM {s}.events),
       (SELECT aggregate_id FROM esctl_incremental_work WHERE cls = $4::int ORDER BY timestamp, seq LIMIT 1),
       (SELECT timestamp FROM esctl_incremental_work WHERE cls = $4::int ORDER BY timestamp, seq LIMIT 1)
FROM esctl_incremental_work`
)

// stagedColumns are the staged events' COPY columns without metadata ([0])
// and with it ([1]).
var stagedColumns = [2][]string{
	{"import_id", "aggregate_id", "type", "timestamp", "payload"},
	{"import_id", "aggregate_id", "type", "timestamp", "payload", "metadata"},
}

const stagedTable = "incremental_import_events"

// Durable consumers (driver.Consumers). Lease times are the server's clock
// in milliseconds (nowMS), so that the clocks of the machines running
// consumers do not matter.
const nowMS = `(extract(epoch FROM clock_timestamp()) * 1000)::bigint`

const (
	consumerColumns = `name, member, members, position, holder, lease_until, updated_at`
	// lockConsumerSQL serializes the creators and resizers of one
	// consumer name (a transaction-scoped advisory lock).
	lockConsumerSQL   = `SELECT pg_advisory_xact_lock(hashtextextended('esctl_consumers ' || $1, 0))`
	createConsumerSQL = `INSERT INTO {s}.esctl_consumers (name, member, members, position, updated_at)
SELECT $1, m, $2, $3, $4 FROM generate_series(0, $2::int - 1) AS m
WHERE NOT EXISTS (SELECT 1 FROM {s}.esctl_consumers WHERE name = $1)`
	deleteConsumerRowsSQL = `DELETE FROM {s}.esctl_consumers WHERE name = $1`
	insertConsumerRowsSQL = `INSERT INTO {s}.esctl_consumers (name, member, members, position, updated_at)
SELECT $1, m, $2, $3, $4 FROM generate_series(0, $2::int - 1) AS m`
	listConsumersSQL = `SELECT ` + consumerColumns + `, ` + nowMS + ` FROM {s}.esctl_consumers
WHERE $1 = '' OR name = $1 ORDER BY name, member`
	nowSQL       = `SELECT ` + nowMS
	takeLeaseSQL = `UPDATE {s}.esctl_consumers SET holder = $3, lease_until = ` + nowMS + ` + $4
WHERE name = $1 AND member = $2 AND (holder = $3 OR holder = '' OR lease_until <= ` + nowMS + `)
RETURNING ` + consumerColumns
	renewLeaseSQL = `UPDATE {s}.esctl_consumers SET lease_until = ` + nowMS + ` + $4
WHERE name = $1 AND member = $2 AND holder = $3
RETURNING ` + consumerColumns
	consumerRowSQL    = `SELECT ` + consumerColumns + ` FROM {s}.esctl_consumers WHERE name = $1 AND member = $2`
	releaseLeaseSQL   = `UPDATE {s}.esctl_consumers SET holder = '', lease_until = 0 WHERE name = $1 AND member = $2 AND holder = $3`
	saveCheckpointSQL = `UPDATE {s}.esctl_consumers SET position = $4, updated_at = $5 WHERE name = $1 AND member = $2 AND holder = $3`
	resetConsumerSQL  = `UPDATE {s}.esctl_consumers SET position = $2, updated_at = $3, holder = '', lease_until = 0 WHERE name = $1`
	deleteParkedSQL   = `DELETE FROM {s}.esctl_parked_events WHERE name = $1`
	parkEventSQL      = `INSERT INTO {s}.esctl_parked_events AS p (name, position, aggregate_id, error, attempts, parked_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (name, position) DO UPDATE SET error = excluded.error, attempts = p.attempts + excluded.attempts, parked_at = excluded.parked_at, replay = false`
	listParkedSQL = `SELECT name, position, aggregate_id, error, attempts, parked_at, replay FROM {s}.esctl_parked_events
WHERE name = $1 AND position > $2 AND (NOT $3 OR replay) ORDER BY position LIMIT $4`
	countParkedSQL       = `SELECT name, count(*) FROM {s}.esctl_parked_events GROUP BY name ORDER BY name`
	requestReplayAllSQL  = `UPDATE {s}.esctl_parked_events SET replay = true WHERE name = $1`
	requestReplaySomeSQL = `UPDATE {s}.esctl_parked_events SET replay = true WHERE name = $1 AND position = ANY($2)`
	unparkEventSQL       = `DELETE FROM {s}.esctl_parked_events WHERE name = $1 AND position = $2`
	// heartbeatSQL renews instance $2 of consumer $1 for $3 ms, forgets
	// the instances whose time ran out and returns the live ones. The
	// statement's snapshot is from before its writes: the renewed row
	// comes from RETURNING.
	heartbeatSQL = `WITH beat AS (
  INSERT INTO {s}.esctl_consumer_instances (name, instance, seen_until) VALUES ($1, $2, ` + nowMS + ` + $3)
  ON CONFLICT (name, instance) DO UPDATE SET seen_until = excluded.seen_until
  RETURNING instance
), gone AS (
  DELETE FROM {s}.esctl_consumer_instances WHERE name = $1 AND instance <> $2 AND seen_until <= ` + nowMS + `
)
SELECT instance, ` + nowMS + ` FROM beat
UNION
SELECT instance, ` + nowMS + ` FROM {s}.esctl_consumer_instances WHERE name = $1 AND instance <> $2 AND seen_until > ` + nowMS + `
ORDER BY 1`
	leaveGroupSQL      = `DELETE FROM {s}.esctl_consumer_instances WHERE name = $1 AND instance = $2`
	deleteInstancesSQL = `DELETE FROM {s}.esctl_consumer_instances WHERE name = $1`
)

// versionSQL reads a version table's row, by the table's name.
var versionSQL = map[string]string{
	migrations.VersionTable:       `SELECT version, dirty FROM {s}.esctl_schema_migrations LIMIT 1`,
	migrations.LegacyVersionTable: `SELECT version, dirty FROM {s}.schema_migrations LIMIT 1`,
}

// The statements that name the events' metadata column (schema version 8
// on), written once with these marks and built for a store with metadata
// and one without (eventSQLs): {m} is ", metadata" or nothing; {mj} the
// metadata read from a text array (where "" is none) as json; {$N[]} the
// text-array parameter $N of the metadata; {$Njson} its single json
// parameter; {mcol} the column read (NULL without); {s.m} the staged
// column (NULL without); {same} the metadata part of an incremental
// import's duplicate test.
const (
	swapMoveTmpl = `INSERT INTO {s}.events (position, aggregate_id, aggregate_version, type, timestamp, payload{m})
SELECT position, aggregate_id, aggregate_version, type, timestamp, payload{m} FROM {s}.import_staging ORDER BY position`
	classifyStagedTmpl = `INSERT INTO esctl_incremental_work (seq, aggregate_id, type, timestamp, payload, metadata, cls)
SELECT s.seq, s.aggregate_id, s.type, s.timestamp, s.payload, {s.m},
       CASE WHEN s.rn > 1 THEN $2::int
            WHEN EXISTS (SELECT 1 FROM {s}.events e WHERE e.aggregate_id = s.aggregate_id AND e.timestamp = s.timestamp AND e.type = s.type AND e.payload::text = s.payload{same}) THEN $3::int
            ELSE $4::int END
FROM (SELECT *, row_number() OVER (PARTITION BY aggregate_id, type, timestamp, payload{m} ORDER BY timestamp, seq) AS rn
      FROM {s}.incremental_import_events WHERE import_id = $1) s`
	appendWorkTmpl = `INSERT INTO {s}.events (position, aggregate_id, aggregate_version, type, timestamp, payload{m})
SELECT $1 + row_number() OVER (ORDER BY w.timestamp, w.seq), w.aggregate_id,
       coalesce((SELECT max(e.aggregate_version) FROM {s}.events e WHERE e.aggregate_id = w.aggregate_id), 0)
         + row_number() OVER (PARTITION BY w.aggregate_id ORDER BY w.timestamp, w.seq),
       w.type, w.timestamp, w.payload::json{mj}
FROM esctl_incremental_work w WHERE w.cls = $2::int`
)

// eventSQL is the statements of a store with metadata or without.
type eventSQL struct {
	meta                              bool
	append, fastAppend, fastAppendOne string
	insertEvents, swapMove            string
	selectEvents, lateralOpen         string
	classifyStaged, appendWork        string
	copyColumns, stagedColumns        []string
}

// eventSQLs are eventSQL without metadata ([0]) and with it ([1]).
var eventSQLs = [2]eventSQL{buildEventSQL(false), buildEventSQL(true)}

func buildEventSQL(meta bool) eventSQL {
	r := strings.NewReplacer("{m}", "", "{mj}", "", "{$7[]}", "", "{$6json}", "",
		"{mcol}", "NULL::text", "{s.m}", "NULL", "{same}", "")
	i := 0
	if meta {
		i = 1
		r = strings.NewReplacer("{m}", ", metadata", "{mj}", ", nullif(metadata, '')::json", "{$7[]}", ", $7::text[]", "{$6json}", ", $6::json",
			"{mcol}", "metadata::text", "{s.m}", "s.metadata", "{same}", " AND e.metadata::text IS NOT DISTINCT FROM s.metadata")
	}
	return eventSQL{
		meta:           meta,
		append:         r.Replace(appendTmpl),
		fastAppend:     r.Replace(fastAppendTmpl),
		fastAppendOne:  r.Replace(fastAppendOneTmpl),
		insertEvents:   r.Replace(insertEventsTmpl),
		swapMove:       r.Replace(swapMoveTmpl),
		selectEvents:   r.Replace(selectEventsTmpl),
		lateralOpen:    r.Replace(lateralOpenTmpl),
		classifyStaged: r.Replace(classifyStagedTmpl),
		appendWork:     r.Replace(appendWorkTmpl),
		copyColumns:    copyColumns[i],
		stagedColumns:  stagedColumns[i],
	}
}

// Indexes for content filters (Dialect.CreateIndex): GIN on the column as
// jsonb, the expression of payloadContainsSQL and metadataContainsSQL. The
// names are driver.IndexName's (letters, digits, underscores).
const (
	createIndexTmpl  = `CREATE INDEX CONCURRENTLY IF NOT EXISTS %s ON {s}.events USING gin ((%s::jsonb) jsonb_path_ops)`
	dropIndexTmpl    = `DROP INDEX CONCURRENTLY IF EXISTS {s}.%s`
	analyzeEventsSQL = `ANALYZE {s}.events`
	indexValidSQL    = `SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2`
	listIndexesSQL   = `SELECT c.relname, pg_get_indexdef(i.indexrelid), i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_class t ON t.oid = i.indrelid WHERE n.nspname = $1 AND t.relname = 'events' AND c.relname LIKE $2 ORDER BY c.relname`
)
