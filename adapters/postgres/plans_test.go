package postgres

import (
	"context"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/internal/testdb"
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
	if _, err := d.Migrate(ctx, &eventstore.MigrateParams{Op: eventstore.MigrateUp}); err != nil {
		t.Fatal(err)
	}
	const n = 1_000_000
	for _, q := range []string{
		fmt.Sprintf(`INSERT INTO events (position, aggregate_id, aggregate_version, type, timestamp, payload)
SELECT g, 'agg-' || (g %% 10000), (g - 1) / 10000 + 1, 'TYPE_' || lpad((g %% 20)::text, 2, '0'), 1700000000000 + g * 10,
       ('{"n":' || g || ',"note":"' || md5(g::text) || '"}')::json
FROM generate_series(1, %d) g`, n),
		fmt.Sprintf(`UPDATE store_state SET last_position = %d, event_count = %d`, n, n),
		`ANALYZE events`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	mid := int64(n / 2)
	ts := func(pos int64) int64 { return 1700000000000 + pos*10 }
	types := func(k int) []string {
		out := make([]string, k)
		for i := range out {
			out[i] = fmt.Sprintf("TYPE_%02d", i*3)
		}
		return out
	}
	aggs := func(k int) []string {
		out := make([]string, k)
		for i := range out {
			out[i] = fmt.Sprintf("agg-%d", i*97)
		}
		return out
	}
	timeRead := func(start, finish int64, p eventstore.ListEventsParams) *eventstore.ListEventsParams {
		p.ByTime, p.AfterTimestamp, p.After = true, start-1, math.MaxInt64
		p.StartTime, p.FinishTime = &start, &finish
		return &p
	}
	shapes := []struct {
		name   string
		p      *eventstore.ListEventsParams
		latest bool
	}{
		{"cursor, no filter", &eventstore.ListEventsParams{After: mid, Limit: 1000}, false},
		{"cursor, one type", &eventstore.ListEventsParams{After: mid, EventTypes: types(1), Limit: 1000}, false},
		{"cursor, three types", &eventstore.ListEventsParams{After: mid, EventTypes: types(3), Limit: 1000}, false},
		{"cursor, one aggregate (rehydration)", &eventstore.ListEventsParams{After: 0, AggregateIDs: aggs(1), Limit: 1000}, false},
		{"cursor, one aggregate after a snapshot", &eventstore.ListEventsParams{After: 900_000, AggregateIDs: aggs(1), Limit: 1000}, false},
		{"cursor, five aggregates and two types", &eventstore.ListEventsParams{After: mid, AggregateIDs: aggs(5), EventTypes: types(2), Limit: 1000}, false},
		{"cursor, 40 types (ANY)", &eventstore.ListEventsParams{After: mid, EventTypes: append(types(7), aggs(33)...), Limit: 1000}, false},
		{"time range", timeRead(ts(mid), ts(mid+5000), eventstore.ListEventsParams{Limit: 1000}), false},
		{"time range, one type", timeRead(ts(mid), ts(mid+50000), eventstore.ListEventsParams{EventTypes: types(1), Limit: 1000}), false},
		{"latest, no filter", &eventstore.ListEventsParams{}, true},
		{"latest, one type", &eventstore.ListEventsParams{EventTypes: types(1)}, true},
		{"latest, one aggregate", &eventstore.ListEventsParams{AggregateIDs: aggs(1)}, true},
		{"latest, two aggregates and a type", &eventstore.ListEventsParams{AggregateIDs: aggs(2), EventTypes: types(1)}, true},
	}
	var report strings.Builder
	for _, sh := range shapes {
		query, args := buildEventQuery(sh.p, sh.latest)
		query = d.q(query)
		for _, mode := range []string{"custom", "generic"} {
			plan := explain(t, ctx, pool.Config().ConnConfig, query, args, mode)
			if strings.Contains(plan, "Seq Scan on events") {
				t.Errorf("%s (%s plan) scans events sequentially:\n%s", sh.name, mode, plan)
			}
			if mode == "custom" {
				fmt.Fprintf(&report, "### %s\n\n```sql\n%s\n```\n\n```\n%s```\n\n", sh.name, query, plan)
			}
		}
	}
	if out := os.Getenv("ESCTL_PLANS_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(report.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// explain returns EXPLAIN ANALYZE of query with args, as a custom plan or
// as the generic plan a cached prepared statement would use.
func explain(t *testing.T, ctx context.Context, cc *pgx.ConnConfig, query string, args []any, mode string) string {
	t.Helper()
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "SET plan_cache_mode = force_"+mode+"_plan"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Prepare(ctx, "q", "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) "+query); err != nil {
		t.Fatalf("prepare %s: %v", query, err)
	}
	rows, err := conn.Query(ctx, "q", args...)
	if err != nil {
		t.Fatalf("explain %s: %v", query, err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n") + "\n"
}
