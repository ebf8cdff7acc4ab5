package sqlite_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/internal/conformance"
	"github.com/esctl/esctl/internal/conformance/tooltest"
	"github.com/esctl/esctl/transfer"
)

var (
	templateOnce sync.Once
	templateDB   []byte
	validFile    []byte // a valid export of 300 corpus events
	templateErr  error
)

// prepareTemplates makes, once, an initialized empty store file to copy and
// a valid NDJSON file to cut.
func prepareTemplates() error {
	templateOnce.Do(func() {
		ctx := context.Background()
		dir, err := os.MkdirTemp("", "esctl-fuzz")
		if err != nil {
			templateErr = err
			return
		}
		defer os.RemoveAll(dir)
		for _, name := range []string{"empty.db", "full.db"} {
			s, err := eventstore.Open(ctx, "sqlite://"+filepath.Join(dir, name), nil)
			if err != nil {
				templateErr = err
				return
			}
			if err := s.Init(ctx); err != nil {
				templateErr = err
				return
			}
			if name == "full.db" {
				events := conformance.GenerateEvents(3, 300)
				for i := range events {
					events[i].Payload = bytes.ReplaceAll(events[i].Payload, []byte("x"), nil) // keep lines short
				}
				if _, err := s.SaveEvents(ctx, events); err != nil {
					templateErr = err
					return
				}
				var buf bytes.Buffer
				if _, err := transfer.ExportEvents(ctx, s, &buf, nil); err != nil {
					templateErr = err
					return
				}
				validFile = buf.Bytes()
			}
			if err := s.Close(); err != nil { // checkpoints the WAL into the file
				templateErr = err
				return
			}
		}
		templateDB, templateErr = os.ReadFile(filepath.Join(dir, "empty.db"))
	})
	return templateErr
}

// freshStore returns an initialized, empty store on a copy of the template.
func freshStore(t *testing.T) *eventstore.Store {
	if err := prepareTemplates(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "es.db")
	if err := os.WriteFile(path, templateDB, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := eventstore.Open(context.Background(), "sqlite://"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// FuzzImport feeds arbitrary bytes to ImportEvents. Whatever happens, the
// outcome is consistent: success imports every line; a failure is a
// *LineError at a line start, the committed offset is that line's start,
// and the store holds exactly the lines before it. The seeds are every bad
// input of the conformance suite.
func FuzzImport(f *testing.F) {
	for _, data := range tooltest.BadInputs() {
		f.Add(data)
	}
	f.Add([]byte(""))
	f.Add([]byte("{}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx := context.Background()
		s := freshStore(t)
		res, err := transfer.ImportEvents(ctx, s, bytes.NewReader(data), &transfer.ImportOptions{MaxLineBytes: 1000, BatchEvents: 2})
		d, derr := s.Describe(ctx, nil)
		if derr != nil {
			t.Fatal(derr)
		}
		if err == nil {
			lines := int64(bytes.Count(data, []byte("\n")))
			if !res.Done || res.ByteOffset != int64(len(data)) || res.Lines != lines || d.EventCount != lines {
				t.Fatalf("success: %+v with %d events, input of %d lines, %d bytes", res, d.EventCount, lines, len(data))
			}
			return
		}
		var le *transfer.LineError
		if !errors.As(err, &le) {
			t.Fatalf("not a *LineError: %v", err)
		}
		if le.Offset < 0 || le.Offset > int64(len(data)) || (le.Offset > 0 && data[le.Offset-1] != '\n') {
			t.Fatalf("offset %d is not a line start: %v", le.Offset, err)
		}
		before := int64(bytes.Count(data[:le.Offset], []byte("\n")))
		if le.Line != before+1 || res.ByteOffset != le.Offset || res.Lines != before || d.EventCount != before {
			t.Fatalf("%v: result %+v, %d events stored, %d lines before the offset", err, res, d.EventCount, before)
		}
	})
}

// FuzzImportCut imports a valid file cut at a random byte, then resumes
// from the reported offset with the whole file: a cut at a line boundary
// imports exactly the lines before it; any other cut is a truncated last
// line at the right line and offset, with exactly the complete lines
// stored; the resume imports the rest, and the store re-exports the file
// byte for byte.
func FuzzImportCut(f *testing.F) {
	for _, cut := range []uint32{0, 1, 150, 151, 5000, 1 << 31} {
		f.Add(cut)
	}
	f.Fuzz(func(t *testing.T, cut uint32) {
		ctx := context.Background()
		s := freshStore(t)
		file := validFile
		at := int(cut % uint32(len(file)+1))
		data := file[:at]
		res, err := transfer.ImportEvents(ctx, s, bytes.NewReader(data), &transfer.ImportOptions{BatchEvents: 7})
		complete := bytes.LastIndexByte(data, '\n') + 1
		lines := int64(bytes.Count(data, []byte("\n")))
		if at == complete {
			if err != nil || !res.Done || res.Lines != lines {
				t.Fatalf("cut at a line boundary (%d): %+v, %v", at, res, err)
			}
		} else {
			var le *transfer.LineError
			if !errors.As(err, &le) || le.Line != lines+1 || le.Offset != int64(complete) || res.ByteOffset != int64(complete) {
				t.Fatalf("cut at %d: %+v, %v; want a truncated line %d at offset %d", at, res, err, lines+1, complete)
			}
		}
		d, err := s.Describe(ctx, nil)
		if err != nil || d.EventCount != lines {
			t.Fatalf("%d events stored, %d complete lines (%v)", d.EventCount, lines, err)
		}
		res2, err := transfer.ImportEvents(ctx, s, bytes.NewReader(file[res.ByteOffset:]), &transfer.ImportOptions{ByteOffset: res.ByteOffset, BatchEvents: 7})
		if err != nil || !res2.Done {
			t.Fatalf("resume from %d: %+v, %v", res.ByteOffset, res2, err)
		}
		var out bytes.Buffer
		if _, err := transfer.ExportEvents(ctx, s, &out, nil); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), file) {
			t.Fatalf("after a cut at %d and a resume, the export differs from the file", at)
		}
	})
}
