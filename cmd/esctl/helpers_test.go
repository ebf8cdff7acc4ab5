package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/transfer"
)

// eventLines returns n events in the export format with positions
// first..first+n-1, over aggregates aggregates, timestamps 1000*position
// (so that time filters are predictable), the bytes esctl export writes
// for them.
func eventLines(first, n int64, aggregates int) []byte {
	var b []byte
	for pos := first; pos < first+n; pos++ {
		i := pos - 1
		b = transfer.AppendEventLine(b, eventstore.StoredEvent{
			Event: eventstore.Event{
				AggregateID:      fmt.Sprintf("agg-%d", i%int64(aggregates)),
				AggregateVersion: i/int64(aggregates) + 1,
				Type:             fmt.Sprintf("Type%d", i%5),
				Timestamp:        1000 * pos,
				Payload:          []byte(fmt.Sprintf(`{"n":%d,"text":"caf\u00e9 \"%d\"","list":[1,2.50,-3e2]}`, i, i*7)),
			},
			Position: pos,
		})
	}
	return b
}

// writeFile writes b to name in dir and returns its path.
func writeFile(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// importedStore returns a new SQLite store holding the events of lines
// (imported through the library, positions kept).
func importedStore(t testing.TB, lines []byte) string {
	t.Helper()
	url := sqliteURL(t, "src.db")
	importInto(t, url, lines)
	return url
}

// openStore opens the store at url through the library, closed when the
// test ends.
func openStore(t testing.TB, url string) *eventstore.Store {
	t.Helper()
	s, err := eventstore.Open(context.Background(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// importInto imports lines into the store at url through the library.
func importInto(t testing.TB, url string, lines []byte) {
	t.Helper()
	ctx := context.Background()
	s := openStore(t, url)
	if err := s.Init(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := transfer.ImportEvents(ctx, s, bytes.NewReader(lines), &transfer.ImportOptions{SourceID: "fixture"}); err != nil {
		t.Fatal(err)
	}
	if err := transfer.AbortImport(ctx, s, "fixture"); err != nil {
		t.Fatal(err)
	}
}

// exportOf returns the store's export, through the library.
func exportOf(t testing.TB, url string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := transfer.ExportEvents(context.Background(), openStore(t, url), &buf, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// secretsOf returns the store's secrets export, through the library.
func secretsOf(t testing.TB, url string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := transfer.ExportSecrets(context.Background(), openStore(t, url), &buf, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// describe returns esctl -o json describe of the store at url.
func describe(t testing.TB, url string) map[string]any {
	t.Helper()
	r := mustEsctl(t, "", "--db", url, "-o", "json", "describe")
	return decodeJSON(t, r.stdout)
}

func decodeJSON(t testing.TB, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("not one JSON object: %v\n%s", err, s)
	}
	return m
}

// summaryJSON returns the -o json summary of a run: the last line of
// stderr (commands whose data is on stdout) or of stdout.
func summaryJSON(t testing.TB, out string) map[string]any {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return decodeJSON(t, lines[len(lines)-1])
}

// num returns m[key] as an int64 (JSON numbers decode as float64).
func num(t testing.TB, m map[string]any, key string) int64 {
	t.Helper()
	v, ok := m[key].(float64)
	if !ok {
		t.Fatalf("%s is %T (%v), not a number, in %v", key, m[key], m[key], m)
	}
	return int64(v)
}

// wantBytes fails unless got equals want, naming where they differ.
func wantBytes(t testing.TB, what string, got, want []byte) {
	t.Helper()
	if bytes.Equal(got, want) {
		return
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	line := bytes.Count(want[:i], []byte("\n")) + 1
	t.Fatalf("%s: %d bytes, want %d; first difference at byte %d (line %d)", what, len(got), len(want), i, line)
}

// ndjsonLines fails unless every line of s is a JSON object and returns
// the number of lines.
func ndjsonLines(t testing.TB, s string) int {
	t.Helper()
	if s == "" {
		return 0
	}
	if !strings.HasSuffix(s, "\n") {
		t.Fatalf("output does not end with a newline: %q", s[max(0, len(s)-80):])
	}
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	for i, l := range lines {
		if !json.Valid([]byte(l)) || !strings.HasPrefix(l, "{") {
			t.Fatalf("line %d is not a JSON object: %q", i+1, l)
		}
	}
	return len(lines)
}

// noJSONLines fails if a line of s is a JSON object (stderr must not
// carry data).
func noJSONLines(t testing.TB, what, s string) {
	t.Helper()
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "{") && json.Valid([]byte(l)) {
			t.Fatalf("%s carries a JSON line: %q", what, l)
		}
	}
}

// bigFixture is a store of bigEvents events (and its export file), built
// once per test binary with the built esctl and shared read-only by the
// tests that need a long import or export.
const bigEvents = 100_000

var (
	bigOnce sync.Once
	bigFile string // the export, canonical NDJSON
	bigURL  string // a SQLite store holding it
	bigErr  error
)

func bigFixture(t testing.TB) (file, url string) {
	t.Helper()
	bigOnce.Do(func() {
		// Next to the binary: TestMain removes the directory at the end.
		dir, err := os.MkdirTemp(filepath.Dir(esctlBin), "big-")
		if err != nil {
			bigErr = err
			return
		}
		bigFile = filepath.Join(dir, "big.ndjson")
		if err := os.WriteFile(bigFile, eventLines(1, bigEvents, 1000), 0o600); err != nil {
			bigErr = err
			return
		}
		bigURL = "sqlite://" + filepath.Join(dir, "big.db")
		cmd := exec.Command(esctlBin, "--db", bigURL, "--quiet", "import", "--in", bigFile)
		if out, err := cmd.CombinedOutput(); err != nil {
			bigErr = fmt.Errorf("importing the big fixture: %v\n%s", err, out)
		}
	})
	if bigErr != nil {
		t.Fatal(bigErr)
	}
	return bigFile, bigURL
}

// proc is a running esctl binary whose stderr is read line by line.
type proc struct {
	t      testing.TB
	cmd    *exec.Cmd
	stdout bytes.Buffer
	mu     sync.Mutex
	stderr strings.Builder
	lines  chan string // stderr lines, closed at EOF
	done   chan struct{}
	code   int
}

// start runs the built esctl with args in dir, stdin from stdin (nil: none),
// extra environment, and plain progress every millisecond so that every
// committed batch shows on stderr.
func start(t testing.TB, dir string, stdin io.Reader, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, lines: make(chan string, 1<<16), done: make(chan struct{})}
	p.cmd = exec.Command(esctlBin, args...)
	p.cmd.Dir = dir
	p.cmd.Stdin = stdin
	p.cmd.Env = append(os.Environ(), "ESCTL_PROGRESS_INTERVAL=1ms", "ESCTL_PROGRESS=plain")
	p.cmd.Stdout = &p.stdout
	errPipe, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	go func() {
		sc := bufio.NewScanner(errPipe)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.stderr.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			select {
			case p.lines <- sc.Text():
			default: // nobody is waiting for lines any more
			}
		}
		close(p.lines)
		err := p.cmd.Wait()
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			p.code = ee.ExitCode()
			if ee.ExitCode() < 0 { // killed by a signal
				p.code = -1
			}
		} else if err != nil {
			p.code = -2
		}
		close(p.done)
	}()
	return p
}

// waitFor waits until n stderr lines containing fragment have been read and
// returns the last one. The deadline only stops a hung test: nothing is
// asserted about how long it takes.
func (p *proc) waitFor(fragment string, n int) string {
	p.t.Helper()
	deadline := time.After(2 * time.Minute)
	seen := 0
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				p.t.Fatalf("esctl ended before printing %q %d times:\n%s", fragment, n, p.stderrText())
			}
			if strings.Contains(l, fragment) {
				seen++
				if seen == n {
					return l
				}
			}
		case <-deadline:
			p.t.Fatalf("esctl did not print %q %d times:\n%s", fragment, n, p.stderrText())
		}
	}
}

// wait waits for the process to end and returns its exit code (-1: killed
// by a signal).
func (p *proc) wait() int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(2 * time.Minute):
		_ = p.cmd.Process.Kill()
		p.t.Fatalf("esctl did not end:\n%s", p.stderrText())
	}
	return p.code
}

func (p *proc) stderrText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

func (p *proc) signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
}

func execLookPath(name string) (string, error) { return exec.LookPath(name) }

// checkShellSyntax fails unless shell -n accepts script.
func checkShellSyntax(t testing.TB, shell, script string) {
	t.Helper()
	cmd := exec.Command(shell, "-n")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s -n rejects the completion script: %v\n%s", shell, err, out)
	}
}
