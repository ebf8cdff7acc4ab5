package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/esctl/esctl/internal/testdb"
)

// TestIndex: index create, list and drop on both engines, in the engine's
// form (SQLite: a member's expression index; PostgreSQL: a GIN index on the
// document), and content reads that give the same events with it.
func TestIndex(t *testing.T) {
	t.Parallel()
	lines := `{"threadCounter":0,"threadId":0,"type":"T","timestamp":1,"aggregateId":"a","aggregateVersion":1,"payload":{"accountId":"a-1","customer":{"id":7}},"metadata":{"correlationId":"c-1"},"position":1}` + "\n" +
		`{"threadCounter":0,"threadId":1,"type":"T","timestamp":2,"aggregateId":"a","aggregateVersion":2,"payload":{"accountId":"a-2","customer":{"id":8}},"position":2}` + "\n"
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			url := sqliteURL(t, "index.db")
			if engine == "postgres" {
				url = withSchema(t, testdb.PostgresURL(t), "indexcli")
			}
			mustEsctl(t, "", "--db", url, "init")
			mustEsctl(t, lines, "--db", url, "import")
			var names []string
			if engine == "sqlite" {
				wantCode(t, esctl(t, "", "--db", url, "index", "create", "payload"), exitUsage, "give its path")
				r := mustEsctl(t, "", "--db", url, "-o", "json", "index", "create", "payload", "customer.id")
				names = append(names, decodeJSON(t, r.stdout)["name"].(string))
				r = mustEsctl(t, "", "--db", url, "index", "create", "metadata", "correlationId")
				require.Contains(t, r.stderr, "index esctl_idx_metadata_correlationid_")
			} else {
				wantCode(t, esctl(t, "", "--db", url, "index", "create", "payload", "accountId"), exitUsage, "give no path")
				mustEsctl(t, "", "--db", url, "index", "create", "payload")
				mustEsctl(t, "", "--db", url, "index", "create", "metadata")
				names = append(names, "esctl_idx_payload")
			}
			wantCode(t, esctl(t, "", "--db", url, "index", "create", "type"), exitUsage, `"type"`)
			list := mustEsctl(t, "", "--db", url, "index", "list").stdout
			require.Contains(t, list, names[0])
			require.Contains(t, list, "esctl_idx_metadata")
			r := mustEsctl(t, "", "--db", url, "events", "--payload", `{"customer":{"id":7}}`)
			require.Equal(t, strings.SplitAfter(lines, "\n")[0], r.stdout)
			r = mustEsctl(t, "", "--db", url, "events", "--metadata", `{"correlationId":"c-1"}`)
			require.Equal(t, strings.SplitAfter(lines, "\n")[0], r.stdout)

			wantCode(t, esctl(t, "", "--db", url, "index", "drop", "events_pkey"), exitUsage, "not one of the store's indexes")
			mustEsctl(t, "", "--db", url, "index", "drop", names[0])
			wantCode(t, esctl(t, "", "--db", url, "index", "drop", names[0]), 1, "no index")
			require.NotContains(t, mustEsctl(t, "", "--db", url, "index", "list").stdout, names[0])
		})
	}
}
