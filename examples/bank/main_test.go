package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/internal/testdb"
	"github.com/esctl/esctl/secrets"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// TestRun runs the whole example on each engine and checks its outcome.
func TestRun(t *testing.T) {
	for _, eng := range []struct {
		name string
		url  func(testing.TB) string
	}{
		{"sqlite", testdb.SQLiteURL},
		{"postgres", testdb.PostgresURL},
	} {
		t.Run(eng.name, func(t *testing.T) {
			t.Parallel()
			url := eng.url(t)
			var out bytes.Buffer
			rep, err := run(context.Background(), &out, config{URL: url, Commands: 200, Workers: 6})
			t.Log("\n" + out.String())
			require.NoError(t, err)
			checkReport(t, rep, eng.name)

			// A second run on the same URL recreates the store it made.
			out.Reset()
			rep, err = run(context.Background(), &out, config{URL: url, Commands: 20, Workers: 2})
			require.NoError(t, err)
			checkReport(t, rep, eng.name)
		})
	}
}

func checkReport(t *testing.T, rep *report, engine string) {
	t.Helper()
	require.Equal(t, engine, rep.Engine)
	require.Equal(t, rep.Commands, rep.Appended+rep.Refused, "every command appended or was refused")
	require.True(t, rep.TellerConflict)
	require.Positive(t, rep.TellerRetriedToVersion)

	// Snapshots: every account loads from at most one policy's worth of events.
	require.Len(t, rep.SnapshotLoads, 4)
	for id, l := range rep.SnapshotLoads {
		require.Less(t, l.EventsRead, accountSnapshotEvery, id)
		require.Equal(t, l.Version, l.SnapshotVersion+int64(l.EventsRead), id)
	}

	// The projection, resumed from its checkpoint, agrees with the aggregates.
	require.Equal(t, rep.Balances, rep.ProjectionBalances)
	require.Equal(t, 3, rep.ResumedEvents, "the deletion's audit event and two deposits, caught up before the live deposit")
	require.Equal(t, []string{forgetting}, rep.Erased)

	// The forgotten customer cannot be recovered; the others can.
	require.Equal(t, forgetting, rep.Forgotten)
	require.Positive(t, rep.DeleteSecretEventPosition)
	require.ErrorIs(t, rep.EncryptAfterForgetErr, secrets.ErrForgotten)
	for _, p := range people {
		v := rep.Rebuilt[p.id]
		if p.id == forgetting {
			require.True(t, v.Forgotten)
			require.Equal(t, secrets.ForgottenText, v.Name)
			require.Equal(t, secrets.ForgottenText, v.Email)
		} else {
			require.False(t, v.Forgotten)
			require.Equal(t, p.name, v.Name)
		}
		require.Equal(t, accountsOf[p.id], v.Accounts)
	}
	require.Equal(t, rep.Balances["account-carol-1"], rep.Rebuilt[forgetting].Balance, "her account stays")

	if engine == "sqlite" {
		require.True(t, rep.Scanned)
		require.Empty(t, rep.ScanFound, "the forgotten customer's data in the SQLite files")
		require.True(t, rep.ScanControlFound)
	}
}

// Without a URL the example (re)creates bank-example.db in the current
// directory.
func TestDefaultStore(t *testing.T) {
	t.Chdir(t.TempDir())
	for range 2 {
		var out bytes.Buffer
		rep, err := run(context.Background(), &out, config{Commands: 10, Workers: 2})
		require.NoError(t, err)
		require.Contains(t, out.String(), "bank example on "+defaultDB)
		checkReport(t, rep, "sqlite")
	}
	_, err := os.Stat(filepath.Join(".", "bank-example.db"))
	require.NoError(t, err)
}

// A store the example did not create is never dropped.
func TestRefusesForeignStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.SQLiteURL(t)
	s, err := eventstore.Open(ctx, url, nil)
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Init(ctx))
	_, err = s.SaveEvent(ctx, eventstore.Event{AggregateID: "precious", AggregateVersion: 1, Type: "Kept", Payload: []byte(`{}`)})
	require.NoError(t, err)

	var out bytes.Buffer
	_, err = run(ctx, &out, config{URL: url, Commands: 1, Workers: 1})
	require.Error(t, err)
	require.True(t, strings.Contains(err.Error(), "was not created by this example"), err.Error())
	d, err := s.Describe(ctx, nil)
	require.NoError(t, err)
	require.EqualValues(t, 1, d.EventCount)
}
