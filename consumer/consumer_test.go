package consumer

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestOwner pins the hash that splits a group: stored checkpoints mean
// "every event of my aggregates up to here", so the mapping never changes.
func TestOwner(t *testing.T) {
	for _, tt := range []struct {
		id      string
		members int
		want    int
	}{
		{"acc-17", 4, 1},
		{"anything", 1, 0},
		{"", 3, 2166136261 % 3},
	} {
		require.Equal(t, tt.want, Owner(tt.id, tt.members), "%q over %d", tt.id, tt.members)
	}
	// Spread: 1,000 aggregates over 4 members, none far from 250.
	counts := make([]int, 4)
	for i := range 1000 {
		counts[Owner("agg-"+string(rune('a'+i%26))+string(rune('0'+i/26%10))+string(rune('0'+i/260)), 4)]++
	}
	for m, n := range counts {
		require.InDelta(t, 250, n, 60, "member %d", m)
	}
}

func TestOptions(t *testing.T) {
	o := (*Options)(nil).resolved()
	require.Equal(t, 1, o.Members)
	require.Equal(t, DefaultCheckpointEvery, o.CheckpointEvery)
	require.Equal(t, DefaultLeaseTTL, o.LeaseTTL)
	require.NotEmpty(t, o.Instance)
	for _, bad := range []*Options{
		{Members: 2, Pin: []int{2}},
		{Members: 2, Pin: []int{1, 1}},
		{Pin: []int{-1}},
		{LeaseTTL: time.Second, CheckpointInterval: time.Second},
		{RetryMin: time.Second, RetryMax: time.Millisecond},
	} {
		_, err := New(nil, "x", Func(nil), bad)
		require.Error(t, err, "%+v", bad)
	}
	require.ErrorIs(t, ValidateName("a\x00b"), ErrInvalidName)
	require.NoError(t, ValidateName("projection/balances v2"))
}
