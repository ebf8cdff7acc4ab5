package main

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/esctl/esctl/consumer"
	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/internal/testdb"
)

// TestConsumers: list, parked, replay, reset, resize and delete on a
// consumer a library run created, on both engines, in text and JSON.
func TestConsumers(t *testing.T) {
	t.Parallel()
	eachEngine(t, func(t *testing.T, engine, url string) {
		ctx := context.Background()
		seed(t, url, 40, 4, 0)
		s := openStore(t, url)
		var failing atomic.Bool
		failing.Store(true)
		c, err := consumer.New(s, "proj", consumer.Func(func(_ context.Context, e *eventstore.StoredEvent) error {
			if failing.Load() && e.Position == 10 {
				return errors.New("no balance for\naccount")
			}
			return nil
		}), &consumer.Options{MaxAttempts: 2, RetryMin: time.Millisecond, RetryMax: time.Millisecond, CheckpointInterval: 20 * time.Millisecond, LeaseTTL: time.Second, Instance: "test-instance"})
		require.NoError(t, err)
		rctx, cancel := context.WithCancel(ctx)
		ran := make(chan error, 1)
		go func() { ran <- c.Run(rctx) }()
		for c.Stats().Checkpoint < 40 {
			time.Sleep(10 * time.Millisecond)
		}

		out := mustEsctl(t, "", "--db", url, "consumers", "list").stdout
		require.Contains(t, out, "NAME")
		require.Contains(t, out, "proj")
		require.Contains(t, out, "0:test-instance")
		var infos []map[string]any
		require.NoError(t, json.Unmarshal([]byte(mustEsctl(t, "", "--db", url, "-o", "json", "consumers", "list").stdout), &infos))
		require.Len(t, infos, 1)
		require.EqualValues(t, 40, infos[0]["checkpoint"])
		require.EqualValues(t, 1, infos[0]["active"])
		require.EqualValues(t, 1, infos[0]["parked"])
		require.EqualValues(t, 0, infos[0]["lag"])

		var parked []map[string]any
		require.NoError(t, json.Unmarshal([]byte(mustEsctl(t, "", "--db", url, "-o", "json", "consumers", "parked", "proj").stdout), &parked))
		require.Len(t, parked, 1)
		require.EqualValues(t, 10, parked[0]["position"])
		require.EqualValues(t, 2, parked[0]["attempts"])
		require.Contains(t, mustEsctl(t, "", "--db", url, "consumers", "parked", "proj").stdout, "no balance for account")

		// A reset while it runs is refused (exit 4) with the hint.
		wantCode(t, esctl(t, "", "--db", url, "consumers", "reset", "proj", "--to", "start", "--yes"), exitStoreState, "is running", "--force")
		wantCode(t, esctl(t, "", "--db", url, "consumers", "reset", "nope", "--to", "start", "--yes"), exitStoreState, "not found")
		wantCode(t, esctl(t, "", "--db", url, "consumers", "reset", "proj", "--to", "sideways", "--yes"), exitUsage, "--to")
		// The checks come before the question: what would be refused is
		// not asked (off a terminal, without --yes, it is exit 4, not 2).
		wantCode(t, esctl(t, "", "--db", url, "consumers", "reset", "proj", "--to", "start"), exitStoreState, "is running")
		// A dry run makes the real command's checks: refused alike while a
		// member holds its lease (it said "would reset" and exit 0 before).
		leaseTime := regexp.MustCompile(`until [0-9T:.Z-]+`)
		for _, args := range [][]string{{"reset", "proj", "--to", "start"}, {"resize", "proj", "--members", "2"}, {"delete", "proj"}} {
			cmdArgs := append([]string{"--db", url, "consumers"}, args...)
			real := esctl(t, "", append(cmdArgs, "--yes")...)
			dry := esctl(t, "", append(cmdArgs, "--dry-run")...)
			wantCode(t, real, exitStoreState, "is running", "--force")
			require.Equal(t, real.code, dry.code, "consumers %s --dry-run: %s", args[0], dry)
			require.Equal(t, leaseTime.ReplaceAllString(real.stderr, "until T"), leaseTime.ReplaceAllString(dry.stderr, "until T"))
		}
		wantCode(t, mustEsctl(t, "", "--db", url, "consumers", "reset", "proj", "--to", "start", "--dry-run", "--force"), 0, "would reset")
		// replay --dry-run counts what replay would flag, with the same
		// checks: a position that is not parked is refused by both.
		wantCode(t, mustEsctl(t, "", "--db", url, "consumers", "replay", "proj", "--dry-run"), 0, "would flag 1 parked event of consumer")
		for _, extra := range []string{"--dry-run", ""} {
			args := []string{"--db", url, "consumers", "replay", "proj", "--position", "11"}
			if extra != "" {
				args = append(args, extra)
			}
			wantCode(t, esctl(t, "", args...), exitBadInput, "has no parked event at position 11")
		}
		before, err := consumer.Get(ctx, s, "proj")
		require.NoError(t, err)
		require.EqualValues(t, 40, before.Checkpoint, "a dry run moved the checkpoint")

		failing.Store(false)
		r := mustEsctl(t, "", "--db", url, "-o", "json", "consumers", "replay", "proj")
		require.EqualValues(t, 1, num(t, summaryJSON(t, r.stdout), "flagged"))
		for c.Stats().Replayed < 1 {
			time.Sleep(10 * time.Millisecond)
		}
		require.Equal(t, "[]\n", mustEsctl(t, "", "--db", url, "-o", "json", "consumers", "parked", "proj").stdout)
		cancel()
		require.NoError(t, <-ran)

		// Stopped: reset, resize and delete go through.
		r = mustEsctl(t, "", "--db", url, "consumers", "reset", "proj", "--to", "5", "--dry-run")
		require.Contains(t, r.stderr, "dry run")
		r = mustEsctl(t, "", "--db", url, "-o", "json", "consumers", "reset", "proj", "--to", string(eventstore.CursorAt(7)), "--yes")
		require.EqualValues(t, 7, num(t, summaryJSON(t, r.stdout), "checkpoint"))
		in, err := consumer.Get(ctx, s, "proj")
		require.NoError(t, err)
		require.EqualValues(t, 7, in.Checkpoint)
		require.EqualValues(t, 33, in.Lag)
		r = mustEsctl(t, "", "--db", url, "-o", "json", "consumers", "resize", "proj", "--members", "3", "--yes")
		require.EqualValues(t, 7, num(t, summaryJSON(t, r.stdout), "checkpoint"))
		in, err = consumer.Get(ctx, s, "proj")
		require.NoError(t, err)
		require.Equal(t, 3, in.Members)
		require.Len(t, in.MemberStates, 3)
		mustEsctl(t, "", "--db", url, "consumers", "delete", "proj", "--yes")
		require.Equal(t, "[]\n", mustEsctl(t, "", "--db", url, "-o", "json", "consumers", "list").stdout)
	})
}

// TestReadDB: --read-db serves the event reads of the --db store (here a
// second URL of the same SQLite file stands in for a replica); a read URL
// that cannot be opened is an error that names it, password masked.
func TestReadDB(t *testing.T) {
	t.Parallel()
	url := sqliteURL(t, "store.db")
	seed(t, url, 25, 3, 0)
	out := mustEsctl(t, "", "--db", url, "--read-db", "file:"+strings.TrimPrefix(url, "sqlite://"), "events")
	require.Equal(t, 25, ndjsonLines(t, out.stdout))
	r := esctl(t, "", "--db", url, "--read-db", "postgres://reader:s3cret@127.0.0.1:1/none?connect_timeout=2", "events")
	require.NotEqual(t, 0, r.code)
	require.Contains(t, r.stderr, "read URL")
	require.NotContains(t, r.stderr+r.stdout, "s3cret")
}

// TestReplicaCommands: esctl on a primary and a hot standby: a multi-host
// --db (host=primary,standby, target_session_attrs=read-write) reaches the
// primary for init and writes; --read-db on the standby serves events and
// backup; after a promotion the same --db reaches the new primary.
func TestReplicaCommands(t *testing.T) {
	t.Parallel()
	r := testdb.NewReplicated(t, true)
	testdb.CreateDatabase(t, r.PrimaryURL, "app")
	both := testdb.WithDatabase(r.BothURL, "app")
	standby := testdb.WithDatabase(r.StandbyURL, "app")
	testdb.WaitForDatabase(t, standby)

	mustEsctl(t, "", "--db", both, "init")
	seed(t, both, 30, 3, 0)
	// Synchronous commit means flushed on the standby; replay follows
	// within moments: read until the standby shows all 30.
	var out result
	for deadline := time.Now().Add(time.Minute); ; {
		out = mustEsctl(t, "", "--db", both, "--read-db", standby, "events")
		if ndjsonLines(t, out.stdout) == 30 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	require.Equal(t, 30, ndjsonLines(t, out.stdout), "the standby shows every acknowledged event")
	bk := filepath.Join(t.TempDir(), "s.esbackup")
	mustEsctl(t, "", "--db", both, "--read-db", standby, "backup", "--out", bk)
	mustEsctl(t, "", "verify", "--in", bk)

	require.NoError(t, r.StopPrimary("immediate"))
	require.NoError(t, r.Promote())
	require.EqualValues(t, 30, num(t, describe(t, both), "eventCount"))
	seed2(t, both, 5)
	require.EqualValues(t, 35, num(t, describe(t, standby), "eventCount"))
}
