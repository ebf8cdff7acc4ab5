package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/esctl/esctl/estype"
	"github.com/esctl/esctl/internal/conformance"

	"github.com/esctl/esctl/internal/driver"
)

// TestQueryPlans checks SQLite's plan (EXPLAIN QUERY PLAN) of every read
// shape the dialect generates, on a store of 20,000 events with a rare
// type (SQLite has no statistics here: the plans do not depend on the size): each must search the index that bounds the read (no scan of events
// in position order filtering on a value, no sort of a whole aggregate or
// type), so that a page costs O(limit).
func TestQueryPlans(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 20,000-event store")
	}
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "plans.db")
	db, err := sql.Open("sqlite", DSN(path, false))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	d := New(db)
	defer d.Close()
	if _, err := d.Migrate(ctx, &driver.MigrateParams{Op: estype.MigrateUp}); err != nil {
		t.Fatal(err)
	}
	const n = 20_000
	rare := conformance.PlanRarePositions(n)
	for _, q := range []string{
		fmt.Sprintf(`WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < %[1]d)
INSERT INTO events (position, aggregate_id, aggregate_version, type, timestamp, payload)
SELECT i, 'agg-' || (i %% %[2]d), (i - 1) / %[2]d + 1, printf('TYPE_%%02d', i %% %[3]d), %[4]d + i * 10, '{"n":' || i || '}' FROM g`,
			n, conformance.PlanAggregates, conformance.PlanTypes, conformance.PlanTimestamp(0)),
		fmt.Sprintf(`UPDATE events SET type = '%s' WHERE position IN (%d, %d, %d)`, conformance.PlanRareType, rare[0], rare[1], rare[2]),
		fmt.Sprintf(`UPDATE store_state SET last_position = %d, event_count = %d`, n, n),
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	index := map[conformance.Index]string{
		conformance.ByPosition:  "SEARCH events USING INTEGER PRIMARY KEY",
		conformance.ByType:      "USING INDEX events_type_position_idx",
		conformance.ByAggregate: "USING INDEX events_aggregate_id_position_idx",
		conformance.ByTimestamp: "USING INDEX events_timestamp_position_idx",
	}
	shapes := conformance.ReadShapes(n)
	for _, sh := range shapes {
		want := index[sh.Index]
		if sh.Latest && sh.Index == conformance.ByPosition {
			want = "SCAN events" // backwards on the rowid, stopping at the first row
		}
		query, args := buildEventQuery(sh.Params, sh.Latest, &eventSQLs[1])
		p := queryPlan(t, ctx, db, query, args...)
		t.Logf("%s:\n%s", sh.Name, p)
		// Every read of events must use the wanted index and deliver its
		// order from it: a temp b-tree may only sort a split read's
		// sub-select results (LIMIT rows each) for the merge.
		ok := strings.Contains(p, want)
		lines := strings.Split(strings.TrimSpace(p), "\n")
		for i, l := range lines {
			if strings.Contains(l, " events") && !strings.Contains(l, want) {
				ok = false
			}
			if strings.Contains(l, "USE TEMP B-TREE") && (i == 0 || !strings.HasPrefix(lines[i-1], "SCAN (subquery")) {
				ok = false
			}
		}
		if !ok {
			t.Errorf("%s does not read %q in order:\n%s\n%s", sh.Name, want, query, p)
		}
	}

	// A selective content filter reads the expression index of its
	// member (Dialect.CreateIndex), not the store.
	for _, c := range []struct {
		on, path, filter string
		latest           bool
	}{
		{estype.IndexOnPayload, "n", `{"n":12345}`, false},
		{estype.IndexOnPayload, "n", `{"n":12345}`, true},
		{estype.IndexOnMetadata, "correlationId", `{"correlationId":"c-9"}`, false},
	} {
		ix, err := d.CreateIndex(ctx, &estype.IndexSpec{On: c.on, Path: []string{c.path}})
		if err != nil {
			t.Fatal(err)
		}
		f, err := driver.ParseContains([]byte(c.filter))
		if err != nil {
			t.Fatal(err)
		}
		p := &driver.ListEventsParams{Limit: 100, AfterTimestamp: -1}
		if c.on == estype.IndexOnPayload {
			p.Payload = f
		} else {
			p.Metadata = f
		}
		query, args := buildEventQuery(p, c.latest, &eventSQLs[1])
		plan := queryPlan(t, ctx, db, query, args...)
		// The index's entries are in rowid (position) order for one value:
		// the cursor bound is in the index and no sort is needed.
		if !strings.Contains(plan, "SEARCH events USING INDEX "+ix.Name+" (<expr>=?") || strings.Contains(plan, "TEMP B-TREE") {
			t.Errorf("%s (latest %v) does not search %s:\n%s\n%s", c.filter, c.latest, ix.Name, query, plan)
		}
	}
}

// TestLastVersionPlan: the last version of an aggregate, read under the
// write lock by Append's expectations, is a search of the unique index on
// (aggregate_id, aggregate_version), read backwards: one row, never a scan
// of events or a sort of an aggregate's events.
func TestLastVersionPlan(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := sql.Open("sqlite", DSN(filepath.Join(t.TempDir(), "plan.db"), false))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	d := New(db)
	defer d.Close()
	if _, err := d.Migrate(ctx, &driver.MigrateParams{Op: estype.MigrateUp}); err != nil {
		t.Fatal(err)
	}
	p := queryPlan(t, ctx, db, lastVersionSQL, "a")
	if strings.TrimSpace(p) != "SEARCH events USING COVERING INDEX sqlite_autoindex_events_1 (aggregate_id=?)" {
		t.Errorf("lastVersionSQL is not one search of the unique index:\n%s", p)
	}
}

// queryPlan returns the details of EXPLAIN QUERY PLAN of query, a line each.
func queryPlan(t *testing.T, ctx context.Context, db *sql.DB, query string, args ...any) string {
	t.Helper()
	rows, err := db.QueryContext(ctx, "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	var plan strings.Builder
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&plan, "%s\n", detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return plan.String()
}
