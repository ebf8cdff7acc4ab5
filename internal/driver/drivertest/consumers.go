package drivertest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/esctl/esctl/internal/driver"
)

// testConsumerRows: CreateConsumer creates every member once; a second
// create writes nothing; ListConsumers orders by name and member.
func testConsumerRows(t *testing.T, d driver.Driver) {
	ctx := context.Background()
	now := time.Now().UnixMilli()
	created, err := d.CreateConsumer(ctx, &driver.CreateConsumerParams{Name: "b", Members: 3, Position: 7, Now: now})
	require.NoError(t, err)
	require.True(t, created)
	created, err = d.CreateConsumer(ctx, &driver.CreateConsumerParams{Name: "b", Members: 5, Position: 0, Now: now})
	require.NoError(t, err)
	require.False(t, created, "a consumer that exists is not created again")
	created, err = d.CreateConsumer(ctx, &driver.CreateConsumerParams{Name: "a", Members: 1, Position: 0, Now: now})
	require.NoError(t, err)
	require.True(t, created)

	l, err := d.ListConsumers(ctx, "")
	require.NoError(t, err)
	require.Len(t, l.Rows, 4)
	require.Equal(t, "a", l.Rows[0].Name)
	for i, r := range l.Rows[1:] {
		require.Equal(t, driver.ConsumerRow{Name: "b", Member: i, Members: 3, Position: 7, UpdatedAt: now}, r)
	}
	l, err = d.ListConsumers(ctx, "b")
	require.NoError(t, err)
	require.Len(t, l.Rows, 3)

	require.NoError(t, d.ResizeConsumer(ctx, &driver.CreateConsumerParams{Name: "b", Members: 2, Position: 5, Now: now}))
	l, err = d.ListConsumers(ctx, "b")
	require.NoError(t, err)
	require.Len(t, l.Rows, 2)
	require.Equal(t, driver.ConsumerRow{Name: "b", Member: 1, Members: 2, Position: 5, UpdatedAt: now}, l.Rows[1])

	n, err := d.DeleteConsumer(ctx, "b")
	require.NoError(t, err)
	require.Equal(t, 2, n)
	l, err = d.ListConsumers(ctx, "")
	require.NoError(t, err)
	require.Len(t, l.Rows, 1)
	require.NotZero(t, l.Now|now)
}

// testLeases: a lease is taken when free, held by the taker, or expired;
// the checkpoint is fenced by the holder; a reset clears the leases.
func testLeases(t *testing.T, d driver.Driver) {
	ctx := context.Background()
	now := time.Now().UnixMilli()
	_, err := d.CreateConsumer(ctx, &driver.CreateConsumerParams{Name: "c", Members: 1, Now: now})
	require.NoError(t, err)
	lease := func(holder string, ttl int64) *driver.LeaseParams {
		return &driver.LeaseParams{Name: "c", Member: 0, Holder: holder, TTL: ttl, Now: time.Now().UnixMilli()}
	}
	row, taken, err := d.TakeLease(ctx, lease("A", 60_000))
	require.NoError(t, err)
	require.True(t, taken)
	require.Equal(t, "A", row.Holder)
	require.Greater(t, row.LeaseUntil, now)

	row, taken, err = d.TakeLease(ctx, lease("B", 60_000))
	require.NoError(t, err)
	require.False(t, taken, "a live lease is not taken by another holder")
	require.Equal(t, "A", row.Holder)

	_, taken, err = d.TakeLease(ctx, lease("A", 60_000))
	require.NoError(t, err)
	require.True(t, taken, "the holder renews its lease")

	saved, err := d.SaveCheckpoint(ctx, &driver.CheckpointParams{Name: "c", Holder: "B", Position: 9, Now: now})
	require.NoError(t, err)
	require.False(t, saved, "only the holder saves the checkpoint")
	saved, err = d.SaveCheckpoint(ctx, &driver.CheckpointParams{Name: "c", Holder: "A", Position: 9, Now: now + 1})
	require.NoError(t, err)
	require.True(t, saved)

	require.NoError(t, d.ReleaseLease(ctx, lease("B", 0)), "releasing a lease one does not hold does nothing")
	_, taken, err = d.TakeLease(ctx, lease("B", 60_000))
	require.NoError(t, err)
	require.False(t, taken)
	require.NoError(t, d.ReleaseLease(ctx, lease("A", 0)))
	row, taken, err = d.TakeLease(ctx, lease("B", 50))
	require.NoError(t, err)
	require.True(t, taken, "a released lease is free")
	require.Equal(t, int64(9), row.Position)

	time.Sleep(100 * time.Millisecond)
	_, taken, err = d.TakeLease(ctx, lease("A", 60_000))
	require.NoError(t, err)
	require.True(t, taken, "an expired lease is free")

	n, err := d.ResetConsumer(ctx, &driver.ResetConsumerParams{Name: "c", Position: 3, Now: now})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	renew := lease("A", 60_000)
	renew.Renew = true
	_, taken, err = d.TakeLease(ctx, renew)
	require.NoError(t, err)
	require.False(t, taken, "a renewal does not take back a lease a reset cleared")
	saved, err = d.SaveCheckpoint(ctx, &driver.CheckpointParams{Name: "c", Holder: "A", Position: 10, Now: now})
	require.NoError(t, err)
	require.False(t, saved, "a reset clears the lease: the old holder is fenced out")
	l, err := d.ListConsumers(ctx, "c")
	require.NoError(t, err)
	require.Equal(t, int64(3), l.Rows[0].Position)
	require.Equal(t, "", l.Rows[0].Holder)

	row, taken, err = d.TakeLease(ctx, &driver.LeaseParams{Name: "nope", Holder: "A", TTL: 1000, Now: now})
	require.NoError(t, err)
	require.False(t, taken)
	require.Nil(t, row, "no row for an unknown consumer")
}

// testParked: ParkEvent inserts or updates (attempts add up, the replay
// flag clears); replay requests flag rows; UnparkEvent deletes.
func testParked(t *testing.T, d driver.Driver) {
	ctx := context.Background()
	park := func(pos int64, msg string, attempts int) {
		require.NoError(t, d.ParkEvent(ctx, &driver.ParkedEvent{Name: "p", Position: pos, AggregateID: "agg", Error: msg, Attempts: attempts, ParkedAt: 1000 + pos}))
	}
	park(5, "boom", 3)
	park(2, "bang", 3)
	require.NoError(t, d.ParkEvent(ctx, &driver.ParkedEvent{Name: "q", Position: 1, AggregateID: "x", Error: "e", Attempts: 1, ParkedAt: 1}))
	counts, err := d.CountParked(ctx)
	require.NoError(t, err)
	require.Equal(t, map[string]int64{"p": 2, "q": 1}, counts)

	list, err := d.ListParked(ctx, &driver.ListParkedParams{Name: "p"})
	require.NoError(t, err)
	require.Equal(t, []driver.ParkedEvent{
		{Name: "p", Position: 2, AggregateID: "agg", Error: "bang", Attempts: 3, ParkedAt: 1002},
		{Name: "p", Position: 5, AggregateID: "agg", Error: "boom", Attempts: 3, ParkedAt: 1005},
	}, list)
	list, err = d.ListParked(ctx, &driver.ListParkedParams{Name: "p", After: 2, Limit: 1})
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, int64(5), list[0].Position)

	n, err := d.RequestReplay(ctx, &driver.RequestReplayParams{Name: "p", Positions: []int64{5, 99}})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	list, err = d.ListParked(ctx, &driver.ListParkedParams{Name: "p", ReplayOnly: true})
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.True(t, list[0].Replay)

	park(5, "boom again", 2) // a replay that failed
	list, err = d.ListParked(ctx, &driver.ListParkedParams{Name: "p", After: 4})
	require.NoError(t, err)
	require.Equal(t, driver.ParkedEvent{Name: "p", Position: 5, AggregateID: "agg", Error: "boom again", Attempts: 5, ParkedAt: 1005}, list[0])

	n, err = d.RequestReplay(ctx, &driver.RequestReplayParams{Name: "p"})
	require.NoError(t, err)
	require.Equal(t, 2, n)
	found, err := d.UnparkEvent(ctx, "p", 2)
	require.NoError(t, err)
	require.True(t, found)
	found, err = d.UnparkEvent(ctx, "p", 2)
	require.NoError(t, err)
	require.False(t, found)

	_, err = d.CreateConsumer(ctx, &driver.CreateConsumerParams{Name: "p", Members: 1})
	require.NoError(t, err)
	_, err = d.DeleteConsumer(ctx, "p")
	require.NoError(t, err)
	counts, err = d.CountParked(ctx)
	require.NoError(t, err)
	require.Equal(t, map[string]int64{"q": 1}, counts, "deleting a consumer deletes its parked events")
}

// testConsumerTx: a handler's transaction saves the checkpoint and parks
// and unparks events only when it commits.
func testConsumerTx(t *testing.T, d driver.Driver) {
	ctx := context.Background()
	_, err := d.CreateConsumer(ctx, &driver.CreateConsumerParams{Name: "t", Members: 1})
	require.NoError(t, err)
	_, taken, err := d.TakeLease(ctx, &driver.LeaseParams{Name: "t", Holder: "A", TTL: 60_000, Now: time.Now().UnixMilli()})
	require.NoError(t, err)
	require.True(t, taken)
	require.NoError(t, d.ParkEvent(ctx, &driver.ParkedEvent{Name: "t", Position: 1, AggregateID: "x", Error: "e", Attempts: 1}))

	for _, commit := range []bool{false, true} {
		tx, err := d.BeginConsumerTx(ctx)
		require.NoError(t, err)
		require.NotNil(t, tx.Raw())
		saved, err := tx.SaveCheckpoint(ctx, &driver.CheckpointParams{Name: "t", Holder: "A", Position: 4})
		require.NoError(t, err)
		require.True(t, saved)
		saved, err = tx.SaveCheckpoint(ctx, &driver.CheckpointParams{Name: "t", Holder: "B", Position: 5})
		require.NoError(t, err)
		require.False(t, saved)
		require.NoError(t, tx.ParkEvent(ctx, &driver.ParkedEvent{Name: "t", Position: 3, AggregateID: "x", Error: "e", Attempts: 1}))
		found, err := tx.UnparkEvent(ctx, "t", 1)
		require.NoError(t, err)
		require.True(t, found)
		if commit {
			require.NoError(t, tx.Commit(ctx))
		} else {
			require.NoError(t, tx.Rollback(ctx))
		}
		require.NoError(t, tx.Rollback(ctx), "Rollback after the end is a no-op")

		l, err := d.ListConsumers(ctx, "t")
		require.NoError(t, err)
		parked, err := d.ListParked(ctx, &driver.ListParkedParams{Name: "t"})
		require.NoError(t, err)
		if commit {
			require.Equal(t, int64(4), l.Rows[0].Position)
			require.Len(t, parked, 1)
			require.Equal(t, int64(3), parked[0].Position)
		} else {
			require.Equal(t, int64(0), l.Rows[0].Position, "a rolled back transaction saves nothing")
			require.Len(t, parked, 1)
			require.Equal(t, int64(1), parked[0].Position)
		}
	}
	// The store's own writes go on after a handler's transaction.
	write(t, d, func(ctx context.Context, tx driver.Tx) error {
		_, err := tx.InsertEvents(ctx, &driver.InsertEventsParams{Events: events("after", 0, tx.State().LastPosition, 1)})
		if err != nil {
			return err
		}
		return tx.AdvanceState(ctx, &driver.AdvanceStateParams{LastPosition: tx.State().LastPosition + 1, Events: 1})
	})
}

// testInstances: Heartbeat registers an instance and lists the live ones,
// ordered, without the expired; LeaveGroup and DeleteConsumer forget them;
// instances of other consumers are apart.
func testInstances(t *testing.T, d driver.Driver) {
	ctx := context.Background()
	beat := func(name, holder string, ttl int64) []string {
		t.Helper()
		l, err := d.Heartbeat(ctx, &driver.InstanceParams{Name: name, Holder: holder, TTL: ttl, Now: time.Now().UnixMilli()})
		require.NoError(t, err)
		require.NotZero(t, l.Now)
		return l.Instances
	}
	require.Equal(t, []string{"B"}, beat("i", "B", 60_000))
	require.Equal(t, []string{"A", "B"}, beat("i", "A", 60_000))
	require.Equal(t, []string{"A", "B"}, beat("i", "B", 60_000), "a renewal is one instance")
	require.Equal(t, []string{"Z"}, beat("other", "Z", 60_000))
	require.Equal(t, []string{"A", "B", "C"}, beat("i", "C", 1))
	time.Sleep(20 * time.Millisecond)
	require.Equal(t, []string{"A", "B"}, beat("i", "A", 60_000), "an instance whose time ran out is not listed")
	require.Equal(t, []string{"A", "B", "C"}, beat("i", "C", 60_000), "it is back with its next heartbeat")

	require.NoError(t, d.LeaveGroup(ctx, &driver.InstanceParams{Name: "i", Holder: "B"}))
	require.Equal(t, []string{"A", "C"}, beat("i", "A", 60_000))

	_, err := d.CreateConsumer(ctx, &driver.CreateConsumerParams{Name: "i", Members: 1, Now: time.Now().UnixMilli()})
	require.NoError(t, err)
	_, err = d.DeleteConsumer(ctx, "i")
	require.NoError(t, err)
	require.Equal(t, []string{"D"}, beat("i", "D", 60_000), "DeleteConsumer forgets the instances")
	require.Equal(t, []string{"Z"}, beat("other", "Z", 60_000))
}
