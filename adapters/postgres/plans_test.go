package postgres

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/esctl/esctl/estype"
	"github.com/esctl/esctl/internal/conformance"
	"github.com/esctl/esctl/internal/testdb"

	"github.com/esctl/esctl/internal/driver"
)

// TestQueryPlans builds a store of 1,000,000 events (10,000 aggregates, 20
// types, rising timestamps), then EXPLAINs every read shape the dialect
// generates, both as a custom plan and as the generic plan a cached prepared
// statement ends up with, and requires index scans: no sequential scan of
// events. With ESCTL_PLANS_OUT=FILE it writes the plans there (they are
// quoted in docs/architecture.md).
func TestQueryPlans(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 1,000,000-event store")
	}
	t.Parallel()
	ctx := context.Background()
	pool, _ := testdb.PostgresPool(t)
	d := New(pool)
	if _, err := d.Migrate(ctx, &driver.MigrateParams{Op: estype.MigrateUp}); err != nil {
		t.Fatal(err)
	}
	const n = 1_000_000
	rare := conformance.PlanRarePositions(n)
	for _, q := range []string{
		fmt.Sprintf(`INSERT INTO events (position, aggregate_id, aggregate_version, type, timestamp, payload)
SELECT g, 'agg-' || (g %% %[2]d), (g - 1) / %[2]d + 1, 'TYPE_' || lpad((g %% %[3]d)::text, 2, '0'), %[4]d + g * 10,
       ('{"n":' || g || ',"note":"' || md5(g::text) || '"}')::json
FROM generate_series(1, %[1]d) g`, n, conformance.PlanAggregates, conformance.PlanTypes, conformance.PlanTimestamp(0)),
		fmt.Sprintf(`UPDATE store_state SET last_position = %d, event_count = %d`, n, n),
		// Three events of a rare type, far apart: a read of it must not
		// scan the store between them.
		fmt.Sprintf(`UPDATE events SET type = '%s' WHERE position IN (%d, %d, %d)`, conformance.PlanRareType, rare[0], rare[1], rare[2]),
		`ANALYZE events`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	index := map[conformance.Index]string{
		conformance.ByPosition:  "events_pkey",
		conformance.ByType:      "events_type_position_idx",
		conformance.ByAggregate: "events_aggregate_id_position_idx",
		conformance.ByTimestamp: "events_timestamp_position_idx",
	}
	shapes := conformance.ReadShapes(n)
	var report strings.Builder
	for _, sh := range shapes {
		query, args := buildEventQuery(sh.Params, sh.Latest, &eventSQLs[1])
		query = d.q(query)
		for _, mode := range []string{"custom", "generic"} {
			plan := explain(t, ctx, pool.Config().ConnConfig, query, args, mode)
			if strings.Contains(plan, "Seq Scan on events") {
				t.Errorf("%s (%s plan) scans events sequentially:\n%s", sh.Name, mode, plan)
			}
			if !strings.Contains(plan, " using "+index[sh.Index]+" on events") || strings.Contains(plan, "Bitmap") {
				t.Errorf("%s (%s plan) is not an ordered scan of %s:\n%s", sh.Name, mode, index[sh.Index], plan)
			}
			if mode == "custom" {
				fmt.Fprintf(&report, "### %s\n\n```sql\n%s\n```\n\n```\n%s```\n\n", sh.Name, query, plan)
			}
		}
	}
	// A content filter matching 100 of the 1,000,000 events reads the GIN
	// index (a bitmap scan of its matches), not the store.
	if _, err := pool.Exec(ctx, `UPDATE events SET payload = ('{"n":' || position || ',"tag":"rare"}')::json WHERE position % 10000 = 7`); err != nil {
		t.Fatal(err)
	}
	// No ANALYZE here: CreateIndex runs it (the expression's statistics).
	ix, err := d.CreateIndex(ctx, &estype.IndexSpec{On: estype.IndexOnPayload})
	if err != nil {
		t.Fatal(err)
	}
	rareTag, err := driver.ParseContains([]byte(`{"tag":"rare"}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, sh := range []struct {
		name   string
		p      *driver.ListEventsParams
		latest bool
	}{
		{"content filter", &driver.ListEventsParams{AfterTimestamp: -1, Payload: rareTag, Limit: 1000}, false},
		{"content filter after a cursor", &driver.ListEventsParams{After: 500_000, AfterTimestamp: -1, Payload: rareTag, Limit: 1000}, false},
		{"latest by content", &driver.ListEventsParams{Payload: rareTag}, true},
	} {
		query, args := buildEventQuery(sh.p, sh.latest, &eventSQLs[1])
		query = d.q(query)
		for _, mode := range []string{"custom", "generic"} {
			plan := explainWith(t, ctx, pool.Config().ConnConfig, containsSetupSQL, query, args, mode)
			if strings.Contains(plan, "Seq Scan on events") || !strings.Contains(plan, "Bitmap Index Scan on "+ix.Name) {
				t.Errorf("%s (%s plan) does not read %s:\n%s", sh.name, mode, ix.Name, plan)
			}
			if mode == "custom" {
				fmt.Fprintf(&report, "### %s (GIN index)\n\n```sql\n%s\n```\n\n```\n%s```\n\n", sh.name, query, plan)
			}
		}
	}
	if out := os.Getenv("ESCTL_PLANS_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(report.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAppendPlanOnSmallTable: the append statement's generic plan, made
// while events is small and freshly analyzed (as on a new store), must still
// find conflicts through the unique index, not by scanning events: pgx
// caches the prepared statement, PostgreSQL caches its generic plan, and a
// hash join over a sequential scan planned at 200 rows would run on every
// append while the table grows (found by make bench: appends slowed from
// 236 to 1,334 us of server time at 16,000 rows). indexOnlySQL prevents it.
func TestAppendPlanOnSmallTable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, d := smallStore(t, ctx, 200)
	plan := explain(t, ctx, pool.Config().ConnConfig, d.q(eventSQLs[1].append),
		[]any{[]int32{0}, []string{"a7"}, []int64{1}, []string{"T"}, []int64{1}, []string{"x"}, []string{""}}, "generic")

	if strings.Contains(plan, "Seq Scan on events") || strings.Contains(plan, "Hash Join") || !strings.Contains(plan, "events_aggregate_version_key") {
		t.Fatalf("the append's generic plan does not look conflicts up by index:\n%s", plan)
	}
}

// explain returns EXPLAIN ANALYZE of query with args, as a custom plan or
// as the generic plan a cached prepared statement would use: the query is
// PREPAREd and EXPLAIN EXECUTEd with literal arguments (EXPLAIN of a
// statement with bound parameters would plan with their values, that is,
// always a custom plan).
func explain(t *testing.T, ctx context.Context, cc *pgx.ConnConfig, query string, args []any, mode string) string {
	t.Helper()
	return explainWith(t, ctx, cc, indexOnlySQL, query, args, mode)
}

// explainWith is explain with the planner settings of setup.
func explainWith(t *testing.T, ctx context.Context, cc *pgx.ConnConfig, setup, query string, args []any, mode string) string {
	t.Helper()
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// One transaction, as the store's reads and writes run: indexOnlySQL's
	// settings are local to it.
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	for _, q := range []string{"SET LOCAL plan_cache_mode = force_" + mode + "_plan", setup, "PREPARE q AS " + query} {
		if _, err := tx.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	lits := make([]string, len(args))
	for i, a := range args {
		lits[i] = sqlLiteral(t, a)
	}
	exec := "EXECUTE q"
	if len(lits) > 0 {
		exec += "(" + strings.Join(lits, ", ") + ")"
	}
	rows, err := tx.Query(ctx, "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) "+exec, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		t.Fatalf("explain %s: %v", query, err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n") + "\n"
}

// sqlLiteral writes a test argument as an SQL literal (test values only:
// no quotes in them).
func sqlLiteral(t *testing.T, v any) string {
	switch v := v.(type) {
	case int:
		return fmt.Sprint(v)
	case int32:
		return fmt.Sprint(v)
	case int64:
		return fmt.Sprint(v)
	case string:
		return "'" + v + "'"
	case []string:
		return "'{" + strings.Join(v, ",") + "}'"
	case []int32:
		return "'{" + strings.Trim(strings.Join(strings.Fields(fmt.Sprint(v)), ","), "[]") + "}'"
	case []int64:
		return "'{" + strings.Trim(strings.Join(strings.Fields(fmt.Sprint(v)), ","), "[]") + "}'"
	}
	t.Fatalf("sqlLiteral: %T", v)
	return ""
}

// TestLastVersionsPlan: the last version of an aggregate, read under the
// store lock by Append's expectations, is a backward probe of the unique
// index per aggregate, in the generic plan too: never a scan of events or
// of an aggregate's events.
func TestLastVersionsPlan(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, d := smallStore(t, ctx, 2000)
	for _, mode := range []string{"custom", "generic"} {
		plan := explain(t, ctx, pool.Config().ConnConfig, d.q(lastVersionsSQL), []any{[]string{"a7", "none"}}, mode)
		if strings.Contains(plan, "Seq Scan on events") || strings.Contains(plan, "Sort") ||
			!strings.Contains(plan, "Index Only Scan Backward using events_aggregate_version_key on events") {
			t.Errorf("%s plan of lastVersionsSQL is not a backward probe of the unique index:\n%s", mode, plan)
		}
	}
}

// smallStore returns a migrated store of n events over 20 aggregates,
// freshly analyzed.
func smallStore(t *testing.T, ctx context.Context, n int) (*pgxpool.Pool, *Dialect) {
	t.Helper()
	pool, _ := testdb.PostgresPool(t)
	d := New(pool)
	if _, err := d.Migrate(ctx, &driver.MigrateParams{Op: estype.MigrateUp}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{fmt.Sprintf(`INSERT INTO events SELECT g, 'a' || (g %% 20), g / 20 + 1, 'T', g, '{}' FROM generate_series(1, %d) g`, n), `ANALYZE events`} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	return pool, d
}
