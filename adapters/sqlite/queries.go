package sqlite

import (
	"strings"

	"github.com/esctl/esctl/migrations"
)

// SQL of the SQLite dialect. This file and migrations/sqlite are the only
// places SQLite SQL lives. Identifiers are constants; values are always bound
// parameters.

// writeTxPragmas run on the writer connection before every write transaction,
// so that a *sql.DB opened without the recommended DSN still writes durably
// (synchronous=FULL), waits on a locked database instead of failing
// (busy_timeout) and zeroes deleted secrets (secure_delete).
const writeTxPragmas = `PRAGMA busy_timeout = 10000; PRAGMA synchronous = FULL; PRAGMA secure_delete = ON`

// writeTxPragmasNoSync are writeTxPragmas without syncing (Options.NoSync).
const writeTxPragmasNoSync = `PRAGMA busy_timeout = 10000; PRAGMA synchronous = OFF; PRAGMA secure_delete = ON`

const (
	beginImmediateSQL = `BEGIN IMMEDIATE`
	beginDeferredSQL  = `BEGIN DEFERRED`
	commitSQL         = `COMMIT`
	rollbackSQL       = `ROLLBACK`
	checkpointSQL     = `PRAGMA wal_checkpoint(TRUNCATE)`
	journalModeWALSQL = `PRAGMA journal_mode = WAL`
	databaseListSQL   = `SELECT file FROM pragma_database_list WHERE name = 'main'`
	dataVersionSQL    = `PRAGMA data_version`
)

// The schema version's tables (see migrations.VersionTable).
const (
	tableExistsSQL       = `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?`
	adoptVersionTableSQL = `ALTER TABLE schema_migrations RENAME TO esctl_schema_migrations`
)

// dropStoreSQL lists every table the store may have created, newest first.
var dropStoreSQL = []string{
	`DROP TABLE IF EXISTS esctl_consumer_instances`,
	`DROP TABLE IF EXISTS esctl_parked_events`,
	`DROP TABLE IF EXISTS esctl_consumers`,
	`DROP TABLE IF EXISTS events_quarantine`,
	`DROP TABLE IF EXISTS incremental_import_events`,
	`DROP TABLE IF EXISTS incremental_imports`,
	`DROP TABLE IF EXISTS import_staging`,
	`DROP TABLE IF EXISTS import_checkpoints`,
	`DROP TABLE IF EXISTS secrets`,
	`DROP TABLE IF EXISTS snapshots`,
	`DROP TABLE IF EXISTS events`,
	`DROP TABLE IF EXISTS store_state`,
	`DROP TABLE IF EXISTS esctl_schema_migrations`,
}

// The operations of a write transaction (driver.Tx), which runs under
// BEGIN IMMEDIATE: no other writer can change anything until it ends.
const (
	lockedStateSQL         = `SELECT frozen, frozen_reason, last_position FROM store_state WHERE id = 1`
	savepointSQL           = `SAVEPOINT esctl_insert`
	rollbackToSavepointSQL = `ROLLBACK TO esctl_insert`
	releaseSavepointSQL    = `RELEASE esctl_insert`
	advanceStateSQL        = `UPDATE store_state SET last_position = ?, event_count = event_count + ? WHERE id = 1`
	// lastVersionSQL reads an aggregate's highest version backwards on the
	// aggregate-version unique index: one row, however long the aggregate.
	lastVersionSQL      = `SELECT aggregate_version FROM events WHERE aggregate_id = ? ORDER BY aggregate_version DESC LIMIT 1`
	setMaintenanceSQL   = `UPDATE store_state SET maintenance = ? WHERE id = 1`
	setFrozenSQL        = `UPDATE store_state SET frozen = ?, frozen_reason = ? WHERE id = 1`
	maxSecretIdxSQL     = `SELECT COALESCE(MAX(idx), 0) FROM secrets`
	secretIdxUsedSQL    = `SELECT 1 FROM secrets WHERE idx = ?`
	insertSecretSQL     = `INSERT INTO secrets (idx, id, secret) VALUES (?, ?, ?)`
	tombstoneSecretSQL  = `UPDATE secrets SET secret = NULL WHERE id = ? AND secret IS NOT NULL`
	addSecretCountsSQL  = `UPDATE store_state SET secret_count = secret_count + ?, deleted_secret_count = deleted_secret_count + ? WHERE id = 1`
	deleteSnapshotsSQL  = `DELETE FROM snapshots`
	deleteCheckpointSQL = `DELETE FROM import_checkpoints WHERE source_id = ?`
	clearStagingSQL     = `DELETE FROM import_staging`
	deleteEventsSQL     = `DELETE FROM events`
	resetEventStateSQL  = `UPDATE store_state SET last_position = 0, event_count = 0 WHERE id = 1`
	swapStateSQL        = `UPDATE store_state SET last_position = (SELECT coalesce(max(position), 0) FROM events), event_count = (SELECT count(*) FROM events) WHERE id = 1`
	upsertCheckpointSQL = `INSERT INTO import_checkpoints (source_id, kind, mode, froze, base_position, byte_offset, line, events, last_position, hash_state, done, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (source_id) DO UPDATE SET kind = excluded.kind, mode = excluded.mode, froze = excluded.froze,
    base_position = excluded.base_position, byte_offset = excluded.byte_offset, line = excluded.line, events = excluded.events,
    last_position = excluded.last_position, hash_state = excluded.hash_state, done = excluded.done, updated_at = excluded.updated_at`
)

const (
	getSecretSQL        = `SELECT secret FROM secrets WHERE id = ? AND secret IS NOT NULL`
	lastSecretSQL       = `SELECT idx, id, secret FROM secrets ORDER BY idx DESC LIMIT 1`
	listSecretsSQL      = `SELECT idx, id, secret FROM secrets WHERE idx >= ?`
	listSecretsLiveSQL  = ` AND secret IS NOT NULL`
	listSecretsOrderSQL = ` ORDER BY idx LIMIT ? OFFSET ?`
	secretIDInSQL       = ` AND id IN (`
)

const (
	putSnapshotSQL    = `INSERT INTO snapshots (snapshot_key, content) VALUES (?, ?) ON CONFLICT (snapshot_key) DO UPDATE SET content = excluded.content`
	getSnapshotSQL    = `SELECT content FROM snapshots WHERE snapshot_key = ?`
	deleteSnapshotSQL = `DELETE FROM snapshots WHERE snapshot_key = ?`
	listSnapshotsSQL  = `SELECT snapshot_key, content FROM snapshots WHERE snapshot_key > ? ORDER BY snapshot_key LIMIT ?`
)

const (
	readStateSQL  = `SELECT last_position, event_count, secret_count, deleted_secret_count, frozen, frozen_reason FROM store_state WHERE id = 1`
	pairStoredSQL = `SELECT EXISTS (SELECT 1 FROM events WHERE aggregate_id = ? AND aggregate_version = ?)`
	countRowsSQL  = `SELECT (SELECT count(*) FROM events), coalesce((SELECT min(position) FROM events), 0), coalesce((SELECT max(position) FROM events), 0), (SELECT count(*) FROM secrets), (SELECT count(*) FROM secrets WHERE secret IS NULL), (SELECT count(*) FROM events_quarantine), (SELECT count(*) FROM import_staging), (SELECT count(DISTINCT aggregate_id) FROM events)`
	readStatsSQL  = `SELECT coalesce((SELECT min(position) FROM events), 0), (SELECT count(DISTINCT aggregate_id) FROM events), (SELECT count(*) FROM snapshots)`
	// readCountedStatsSQL reads the aggregate count kept by migration 6's
	// triggers: the same cost at any size.
	readCountedStatsSQL = `SELECT coalesce((SELECT min(position) FROM events), 0), (SELECT aggregate_count FROM store_state WHERE id = 1), (SELECT count(*) FROM snapshots)`
	lastTimestampSQL    = `SELECT MAX(timestamp) FROM events`
	lastPositionSQL     = `SELECT last_position FROM store_state WHERE id = 1`
)

// Event reads are assembled from these fragments by buildEventQuery: a base
// select, optional filters with one placeholder per value, and the keyset
// order. A filter list of at most unionMaxValues values becomes one
// sub-select per value, each an index range scan bounded by the limit, merged
// by the outer ORDER BY; longer lists use IN. Exactly one term may drive the
// read through its index: the split value, or else the position or time
// bound. Every other filter is written with a unary plus (+type = ?), which
// SQLite's planner never uses for an index: without statistics it takes any
// equality for a selective one, and would otherwise read a rare aggregate's
// events through a common type's index, or sort a whole type for a time
// range.
const (
	afterPositionSQL    = `position > ?`
	afterTimeSQL        = `(timestamp, position) > (?, ?)`
	startTimeSQL        = ` AND timestamp >= ?`
	finishTimeSQL       = ` AND timestamp <= ?`
	typeEqSQL           = ` AND type = ?`
	aggregateEqSQL      = ` AND aggregate_id = ?`
	typeFilterSQL       = ` AND +type = ?`
	aggregateFilterSQL  = ` AND +aggregate_id = ?`
	typeInSQL           = ` AND +type IN (`
	aggregateInSQL      = ` AND +aggregate_id IN (`
	orderPositionSQL    = ` ORDER BY position LIMIT ?`
	orderPositionDesc   = ` ORDER BY position DESC LIMIT 1`
	orderTimeSQL        = ` ORDER BY timestamp, position LIMIT ?`
	unionAllSQL         = ` UNION ALL `
	subSelectOpenSQL    = `SELECT * FROM (`
	subSelectCloseSQL   = `)`
	noConditionSQL      = `1 = 1`
	falseSQL            = `1 = 0`
	andSQL              = ` AND `
	placeholderSQL      = `?`
	commaPlaceholderSQL = `, ?`
	closeParenSQL       = `)`
)

const unionMaxValues = 32

// Import checkpoints.
const (
	checkpointColumns  = `source_id, kind, mode, froze, base_position, byte_offset, line, events, last_position, hash_state, done, updated_at`
	getCheckpointSQL   = `SELECT ` + checkpointColumns + ` FROM import_checkpoints WHERE source_id = ?`
	listCheckpointsSQL = `SELECT ` + checkpointColumns + ` FROM import_checkpoints ORDER BY source_id`
)

// Incremental imports. A commit classifies the staged events in a
// temporary table of the writer connection (cls: a driver.IncrementalClass,
// bound as a parameter), then appends the fresh ones.
const (
	beginIncrementalSQL  = `INSERT INTO incremental_imports (import_id, created_at, updated_at) VALUES (?, ?, ?)`
	incrementalExistsSQL = `SELECT 1 FROM incremental_imports WHERE import_id = ?`
	touchIncrementalSQL  = `UPDATE incremental_imports SET updated_at = ? WHERE import_id = ?`
	deleteStagedSQL      = `DELETE FROM incremental_import_events WHERE import_id = ?`
	deleteIncrementalSQL = `DELETE FROM incremental_imports WHERE import_id = ?`
	listIncrementalSQL   = `SELECT i.import_id, (SELECT count(*) FROM incremental_import_events e WHERE e.import_id = i.import_id), i.created_at, i.updated_at FROM incremental_imports i ORDER BY i.created_at, i.import_id`
	createWorkSQL        = `CREATE TEMP TABLE IF NOT EXISTS incremental_work (seq INTEGER PRIMARY KEY, aggregate_id TEXT, type TEXT, timestamp INTEGER, payload TEXT, metadata TEXT, cls INTEGER, base INTEGER)`
	clearWorkSQL         = `DELETE FROM temp.incremental_work`
	newestTimestampSQL   = `SELECT coalesce(max(timestamp), -1) FROM events`
	markOlderSQL         = `UPDATE temp.incremental_work SET cls = ?1 WHERE cls = ?2 AND timestamp < ?3`
	workCountsSQL        = `SELECT coalesce(sum(cls = ?1), 0), coalesce(sum(cls IN (?2, ?3)), 0), coalesce(sum(cls = ?4), 0) FROM temp.incremental_work`
	oldestWorkSQL        = `SELECT aggregate_id, timestamp FROM temp.incremental_work WHERE cls = ? ORDER BY timestamp, seq LIMIT 1`
	workBaseVersionSQL   = `UPDATE temp.incremental_work SET base = coalesce((SELECT max(e.aggregate_version) FROM events e WHERE e.aggregate_id = temp.incremental_work.aggregate_id), 0) WHERE cls = ?`
)

// Durable consumers (driver.Consumers). Lease times are the caller's clock
// (one machine) in milliseconds.
const (
	consumerColumns   = `name, member, members, position, holder, lease_until, updated_at`
	consumerExistsSQL = `SELECT count(*) FROM esctl_consumers WHERE name = ?`
	// insertConsumerRowsSQL inserts members 0..?2-1.
	insertConsumerRowsSQL = `WITH RECURSIVE m(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM m WHERE i + 1 < ?2)
INSERT INTO esctl_consumers (name, member, members, position, updated_at) SELECT ?1, i, ?2, ?3, ?4 FROM m`
	deleteConsumerRowsSQL = `DELETE FROM esctl_consumers WHERE name = ?`
	listConsumersSQL      = `SELECT ` + consumerColumns + ` FROM esctl_consumers WHERE ?1 = '' OR name = ?1 ORDER BY name, member`
	takeLeaseSQL          = `UPDATE esctl_consumers SET holder = ?3, lease_until = ?5 + ?4
WHERE name = ?1 AND member = ?2 AND (holder = ?3 OR holder = '' OR lease_until <= ?5)
RETURNING ` + consumerColumns
	renewLeaseSQL = `UPDATE esctl_consumers SET lease_until = ?5 + ?4
WHERE name = ?1 AND member = ?2 AND holder = ?3
RETURNING ` + consumerColumns
	consumerRowSQL    = `SELECT ` + consumerColumns + ` FROM esctl_consumers WHERE name = ? AND member = ?`
	releaseLeaseSQL   = `UPDATE esctl_consumers SET holder = '', lease_until = 0 WHERE name = ? AND member = ? AND holder = ?`
	saveCheckpointSQL = `UPDATE esctl_consumers SET position = ?4, updated_at = ?5 WHERE name = ?1 AND member = ?2 AND holder = ?3`
	resetConsumerSQL  = `UPDATE esctl_consumers SET position = ?2, updated_at = ?3, holder = '', lease_until = 0 WHERE name = ?1`
	deleteParkedSQL   = `DELETE FROM esctl_parked_events WHERE name = ?`
	parkEventSQL      = `INSERT INTO esctl_parked_events AS p (name, position, aggregate_id, error, attempts, parked_at)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (name, position) DO UPDATE SET error = excluded.error, attempts = p.attempts + excluded.attempts, parked_at = excluded.parked_at, replay = 0`
	listParkedSQL = `SELECT name, position, aggregate_id, error, attempts, parked_at, replay FROM esctl_parked_events
WHERE name = ?1 AND position > ?2 AND (NOT ?3 OR replay) ORDER BY position LIMIT ?4`
	countParkedSQL      = `SELECT name, count(*) FROM esctl_parked_events GROUP BY name ORDER BY name`
	requestReplayAllSQL = `UPDATE esctl_parked_events SET replay = 1 WHERE name = ?`
	requestReplayOneSQL = `UPDATE esctl_parked_events SET replay = 1 WHERE name = ? AND position = ?`
	unparkEventSQL      = `DELETE FROM esctl_parked_events WHERE name = ? AND position = ?`
	heartbeatSQL        = `INSERT INTO esctl_consumer_instances (name, instance, seen_until) VALUES (?1, ?2, ?4 + ?3)
ON CONFLICT (name, instance) DO UPDATE SET seen_until = excluded.seen_until`
	forgetInstancesSQL = `DELETE FROM esctl_consumer_instances WHERE name = ?1 AND seen_until <= ?2`
	listInstancesSQL   = `SELECT instance FROM esctl_consumer_instances WHERE name = ?1 AND seen_until > ?2 ORDER BY instance`
	leaveGroupSQL      = `DELETE FROM esctl_consumer_instances WHERE name = ? AND instance = ?`
	deleteInstancesSQL = `DELETE FROM esctl_consumer_instances WHERE name = ?`
)

// versionSQL reads a version table's row, by the table's name.
var versionSQL = map[string]string{
	migrations.VersionTable:       `SELECT version, dirty FROM esctl_schema_migrations LIMIT 1`,
	migrations.LegacyVersionTable: `SELECT version, dirty FROM schema_migrations LIMIT 1`,
}

// The statements that name the events' metadata column (schema version 8
// on), written once with these marks and built for a store with metadata
// and one without (esql): {m} is ", metadata" or nothing, {m?} its
// placeholder, {mcol} the column read (NULL without), {s.m} the staged
// column (NULL without), {same} the metadata part of an incremental
// import's duplicate test.
const (
	insertEventTmpl     = `INSERT INTO events (position, aggregate_id, aggregate_version, type, timestamp, payload{m}) VALUES (?, ?, ?, ?, ?, ?{m?})`
	insertStagingTmpl   = `INSERT INTO import_staging (position, aggregate_id, aggregate_version, type, timestamp, payload{m}) VALUES (?, ?, ?, ?, ?, ?{m?})`
	swapMoveTmpl        = `INSERT INTO events (position, aggregate_id, aggregate_version, type, timestamp, payload{m}) SELECT position, aggregate_id, aggregate_version, type, timestamp, payload{m} FROM import_staging ORDER BY position`
	eventColumnsTmpl    = `position, aggregate_id, aggregate_version, type, timestamp, payload, {mcol}`
	pushIncrementalTmpl = `INSERT INTO incremental_import_events (import_id, aggregate_id, type, timestamp, payload{m}) VALUES (?, ?, ?, ?, ?{m?})`
	classifyStagedTmpl  = `INSERT INTO temp.incremental_work (seq, aggregate_id, type, timestamp, payload, metadata, cls, base)
SELECT s.seq, s.aggregate_id, s.type, s.timestamp, s.payload, {s.m},
       CASE WHEN s.rn > 1 THEN ?2
            WHEN EXISTS (SELECT 1 FROM events e WHERE e.aggregate_id = s.aggregate_id AND e.timestamp = s.timestamp AND e.type = s.type AND e.payload = s.payload{same}) THEN ?3
            ELSE ?4 END,
       0
FROM (SELECT *, row_number() OVER (PARTITION BY aggregate_id, type, timestamp, payload{m} ORDER BY timestamp, seq) AS rn
      FROM incremental_import_events WHERE import_id = ?1) s`
	appendWorkTmpl = `INSERT INTO events (position, aggregate_id, aggregate_version, type, timestamp, payload{m})
SELECT ?1 + row_number() OVER (ORDER BY timestamp, seq), aggregate_id,
       base + row_number() OVER (PARTITION BY aggregate_id ORDER BY timestamp, seq), type, timestamp, payload{m}
FROM temp.incremental_work WHERE cls = ?2 ORDER BY timestamp, seq`
)

// eventSQL is the statements of a store with metadata or without.
type eventSQL struct {
	meta                                        bool
	insertEvent, insertStaging, swapMove        string
	selectEvents, selectAllFrom                 string
	pushIncremental, classifyStaged, appendWork string
}

// eventSQLs are eventSQL without metadata ([0]) and with it ([1]).
var eventSQLs = [2]eventSQL{buildEventSQL(false), buildEventSQL(true)}

func buildEventSQL(meta bool) eventSQL {
	r := strings.NewReplacer("{m}", "", "{m?}", "", "{mcol}", "NULL", "{s.m}", "NULL", "{same}", "")
	if meta {
		r = strings.NewReplacer("{m}", ", metadata", "{m?}", ", ?", "{mcol}", "metadata", "{s.m}", "s.metadata", "{same}", " AND e.metadata IS s.metadata")
	}
	columns := r.Replace(eventColumnsTmpl)
	return eventSQL{
		meta:            meta,
		insertEvent:     r.Replace(insertEventTmpl),
		insertStaging:   r.Replace(insertStagingTmpl),
		swapMove:        r.Replace(swapMoveTmpl),
		selectEvents:    `SELECT ` + columns + ` FROM events WHERE `,
		selectAllFrom:   `SELECT ` + columns + ` FROM (`,
		pushIncremental: r.Replace(pushIncrementalTmpl),
		classifyStaged:  r.Replace(classifyStagedTmpl),
		appendWork:      r.Replace(appendWorkTmpl),
	}
}

// metadataArg is the bound value of an event's metadata: NULL for none.
func metadataArg(m []byte) any {
	if m == nil {
		return nil
	}
	return string(m)
}

// Containment filters (driver.Contains) are written as conditions on the
// JSON functions, so that an expression index on json_extract(column,
// path) (Dialect.CreateIndex) serves a member's equality: the path is a
// literal (built by jsonPath, quoted for SQL by sqlString), every value a
// bound parameter. An array's elements are matched with EXISTS over
// json_each, whose element rows have a type, an atom (a scalar's SQL
// value) and a value (a container's JSON text).
const (
	payloadColumn   = `payload`
	metadataColumn  = `metadata`
	jsonExtractTmpl = `json_extract(%s, %s) = ?`
	jsonTypeTmpl    = `json_type(%s, %s) = '%s'`
	jsonNumberTmpl  = `json_type(%[1]s, %[2]s) IN ('integer', 'real') AND json_extract(%[1]s, %[2]s) = ?`
	existsEachTmpl  = `EXISTS (SELECT 1 FROM json_each(%s, %s) AS %s WHERE %s)`
	elemTypeTmpl    = `%s.type = '%s'`
	elemAtomTmpl    = `%s.type = 'text' AND %s.atom = ?`
	elemNumberTmpl  = `%[1]s.type IN ('integer', 'real') AND %[1]s.atom = ?`
	elemValueTmpl   = `%s.value`
	createIndexTmpl = `CREATE INDEX IF NOT EXISTS %s ON events (json_extract(%s, %s))`
	dropIndexTmpl   = `DROP INDEX IF EXISTS %s`
	listIndexesSQL  = `SELECT name, sql FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'events' AND name GLOB 'esctl_idx_*' ORDER BY name`
	indexExistsSQL  = `SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name = ?`
)
