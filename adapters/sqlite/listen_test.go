package sqlite_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/internal/testdb"
)

// TestSubscribeWokenByAnotherProcess: a subscription whose poll interval
// is an hour sees the commits of another process at once (PRAGMA
// data_version, Dialect.Listen). It first idles 5.5 s, so that its
// polling has backed off to waits of 2.6 s and more: without the
// wake-up, the next event would arrive about 4.7 s after its append.
func TestSubscribeWokenByAnotherProcess(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := testdb.SQLiteURL(t)
	s, err := eventstore.Open(ctx, url, &eventstore.Options{PollInterval: time.Hour})
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Init(ctx))

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envAppendChild+"="+url)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	defer func() { _ = stdin.Close(); _ = cmd.Wait() }()
	acks := bufio.NewScanner(stdout)
	appendN := func(n int) time.Time {
		start := time.Now()
		_, err := fmt.Fprintln(stdin, n)
		require.NoError(t, err)
		require.True(t, acks.Scan(), "the child stopped")
		require.Equal(t, "ok", acks.Text())
		return start
	}

	got := make(chan time.Time, 200)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		want := int64(1)
		for d, err := range s.Subscribe(sctx, eventstore.Filter{}) {
			if err != nil {
				return
			}
			if d.Event == nil {
				continue
			}
			if d.Event.Position != want {
				t.Errorf("delivered position %d, want %d", d.Event.Position, want)
				return
			}
			want++
			got <- time.Now()
		}
	}()
	time.Sleep(5500 * time.Millisecond)

	start := appendN(1)
	select {
	case at := <-got:
		t.Logf("delivered %s after the other process's append began", at.Sub(start))
	case <-time.After(2 * time.Second):
		t.Fatal("the other process's commit did not wake the subscription within 2 s")
	}
	appendN(100)
	for i := range 100 {
		select {
		case <-got:
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of the burst's 100 events delivered", i)
		}
	}
}

// appendChild appends, on its own Store, N events to aggregate "child"
// for each line "N" it reads, and answers "ok" once they are committed.
func appendChild(url string) error {
	ctx := context.Background()
	s, err := eventstore.Open(ctx, url, nil)
	if err != nil {
		return err
	}
	defer s.Close()
	in := bufio.NewScanner(os.Stdin)
	var v int64
	for in.Scan() {
		n, err := strconv.Atoi(in.Text())
		if err != nil {
			return err
		}
		for range n {
			v++
			if _, err := s.SaveEvent(ctx, eventstore.Event{AggregateID: "child", AggregateVersion: v, Type: "T", Payload: []byte(`{}`)}); err != nil {
				return err
			}
		}
		fmt.Println("ok")
	}
	return in.Err()
}
