package transfer

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/esctl/esctl/estype"
	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/internal/driver"
	"github.com/esctl/esctl/internal/ndjson"
)

// The benchmarks below measure the library's own work in an import and an
// export (NDJSON lines, validation, batching, checkpoints), without a
// database: benchDialect stores nothing and serves a fixed page. They are
// what to profile when make bench shows the store far from its limit:
//
//	go test ./transfer -run '^$' -bench 'ImportNoDB|ExportNoDB' -cpuprofile cpu.out

// benchDialect is a driver whose import batches go nowhere and whose read
// transactions serve events from memory. Other methods are not used.
type benchDialect struct {
	driver.Driver
	events []estype.StoredEvent
}

func (d *benchDialect) Name() string { return "bench" }

func (d *benchDialect) Migrate(context.Context, *driver.MigrateParams) (*estype.SchemaStatus, error) {
	return &estype.SchemaStatus{Version: 1, Latest: 1}, nil
}

func (d *benchDialect) Checkpoint(context.Context, string) (*estype.ImportCheckpoint, error) {
	return nil, nil
}

func (d *benchDialect) ReadState(context.Context) (*driver.StoreState, error) {
	return &driver.StoreState{}, nil
}

func (d *benchDialect) Write(_ context.Context, _ *driver.WriteParams, fn func(driver.Tx) error) error {
	return fn(benchTx{})
}

// benchTx writes nothing.
type benchTx struct{ driver.Tx }

func (benchTx) State() driver.State { return driver.State{} }
func (benchTx) InsertEvents(context.Context, *driver.InsertEventsParams) (int, error) {
	return -1, nil
}
func (benchTx) AdvanceState(context.Context, *driver.AdvanceStateParams) error   { return nil }
func (benchTx) UpsertCheckpoint(context.Context, *estype.ImportCheckpoint) error { return nil }

func (d *benchDialect) BeginRead(context.Context) (driver.ReadTx, error) { return benchReadTx{d}, nil }

type benchReadTx struct{ d *benchDialect }

func (t benchReadTx) ListEvents(_ context.Context, p *driver.ListEventsParams) (*driver.ListEventsResult, error) {
	evs := t.d.events
	lo := min(int(p.After), len(evs))
	hi := min(lo+p.Limit, len(evs))
	page := make([]estype.StoredEvent, hi-lo)
	copy(page, evs[lo:hi])
	return &driver.ListEventsResult{Events: page, LastPosition: int64(len(evs))}, nil
}

func (t benchReadTx) ScanEvents(ctx context.Context, p *driver.ListEventsParams, fn func(*estype.StoredEvent) error) (int64, error) {
	evs := t.d.events
	lo := min(int(p.After), len(evs))
	hi := min(lo+p.Limit, len(evs))
	for i := lo; i < hi; i++ {
		e := evs[i]
		if err := fn(&e); err != nil {
			return int64(len(evs)), err
		}
	}
	return int64(len(evs)), nil
}

func (t benchReadTx) ReadState(context.Context) (*driver.StoreState, error) {
	return &driver.StoreState{}, nil
}
func (t benchReadTx) ListSecrets(context.Context, *driver.ListSecretsParams) ([]estype.Secret, error) {
	return nil, nil
}
func (t benchReadTx) ListSnapshots(context.Context, *driver.ListSnapshotsParams) ([]driver.Snapshot, error) {
	return nil, nil
}
func (t benchReadTx) Close(context.Context) error { return nil }

// benchEvents returns n events shaped like make bench's corpus: 100
// aggregates' worth of versions, payloads of about 190 bytes.
func benchEvents(n int) []estype.StoredEvent {
	types := []string{"AccountOpened", "MoneyDeposited", "MoneyWithdrawn", "TransferRequested"}
	out := make([]estype.StoredEvent, n)
	for i := range out {
		pos := int64(i + 1)
		out[i] = estype.StoredEvent{Position: pos, Event: estype.Event{
			AggregateID:      fmt.Sprintf("account-%07d", i%10_000),
			AggregateVersion: int64(i/10_000 + 1),
			Type:             types[i%len(types)],
			Timestamp:        1_735_689_600_000 + 10*pos,
			Payload: fmt.Appendf(nil, `{"amount":%d,"currency":"EUR","memo":"caf\u00e9 alpha bravo %d","tags":["a","b",%d],"ok":true,"rate":1.25e-3,"ref":"%016x","nested":{"k":[1,2,3],"s":"x"}}`,
				i*37%100000, i, i%7, uint64(i)*0x9e3779b97f4a7c15),
		}}
	}
	return out
}

func benchNDJSON(events []estype.StoredEvent) []byte {
	var buf []byte
	for i := range events {
		buf = ndjson.AppendEvent(buf, &events[i])
	}
	return buf
}

func BenchmarkImportNoDB(b *testing.B) {
	src := benchNDJSON(benchEvents(100_000))
	s, err := eventstore.New(&benchDialect{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		res, err := ImportEvents(context.Background(), s, bytes.NewReader(src), nil)
		if err != nil || res.Events != 100_000 {
			b.Fatal(res, err)
		}
	}
}

func BenchmarkExportNoDB(b *testing.B) {
	events := benchEvents(100_000)
	size := len(benchNDJSON(events))
	s, err := eventstore.New(&benchDialect{events: events}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		res, err := ExportEvents(context.Background(), s, io.Discard, nil)
		if err != nil || res.Bytes != int64(size) {
			b.Fatal(res, err)
		}
	}
}
