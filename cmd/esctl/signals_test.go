//go:build unix

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/esctl/esctl/eventstore"
)

// checkpoint returns the store's only import checkpoint.
func checkpoint(t testing.TB, url string) map[string]any {
	t.Helper()
	out := strings.TrimSpace(mustEsctl(t, "", "--db", url, "-o", "json", "imports").stdout)
	return decodeJSON(t, strings.TrimSuffix(strings.TrimPrefix(out, "["), "]"))
}

// TestImportResumeAfterSIGKILL is acceptance 3 for import: an import killed
// with SIGKILL (which prints nothing) three times, each time re-run with
// --resume, ends with exactly the file's events.
func TestImportResumeAfterSIGKILL(t *testing.T) {
	t.Parallel()
	file, _ := bigFixture(t)
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	dst := sqliteURL(t, "dst.db")
	var last int64
	for kill := 1; kill <= 3; kill++ {
		args := []string{"--db", dst, "import", "--in", file}
		if kill > 1 {
			args = append(args, "--resume")
		}
		p := start(t, dir, nil, args...)
		p.waitFor("esctl: imported", 2)
		p.signal(syscall.SIGKILL)
		if code := p.wait(); code != -1 {
			t.Fatalf("kill %d: import was not killed (exit %d):\n%s", kill, code, p.stderrText())
		}
		cp := checkpoint(t, dst)
		offset := num(t, cp, "byteOffset")
		if cp["done"] != false || offset <= last || offset >= int64(len(want)) {
			t.Fatalf("kill %d did not land mid-import after the previous one (offset %d, was %d): %v", kill, offset, last, cp)
		}
		// What is in is exactly a prefix of the file, up to the checkpoint.
		if d := describe(t, dst); num(t, d, "eventCount") != num(t, cp, "lines") {
			t.Fatalf("kill %d: %v events for a checkpoint of %v lines", kill, d["eventCount"], cp["lines"])
		}
		last = offset
	}
	r := binary(t, dir, nil, nil, "--db", dst, "-o", "json", "import", "--in", file, "--resume")
	if r.code != 0 {
		t.Fatalf("final --resume: %s", r)
	}
	s := decodeJSON(t, r.stdout)
	if s["done"] != true || num(t, s, "totalEvents") != bigEvents || num(t, s, "byteOffset") != int64(len(want)) {
		t.Fatalf("final --resume: %v", s)
	}
	got := binary(t, dir, nil, nil, "--db", dst, "export")
	wantBytes(t, "export after three kills and --resume", []byte(got.stdout), want)
}

// TestImportInterrupt: SIGINT stops the import at a batch boundary, prints
// the resume point and exits 130; --resume then finishes the import.
func TestImportInterrupt(t *testing.T) {
	t.Parallel()
	file, _ := bigFixture(t)
	dir := t.TempDir()
	dst := sqliteURL(t, "dst.db")
	p := start(t, dir, nil, "--db", dst, "import", "--in", file)
	p.waitFor("esctl: imported", 1)
	p.signal(syscall.SIGINT)
	if code := p.wait(); code != exitInterrupted {
		t.Fatalf("exit %d:\n%s", code, p.stderrText())
	}
	cp := checkpoint(t, dst)
	stderr := p.stderrText()
	// One line: what is done and the exact command that continues (the
	// progress lines before it aside).
	var said []string
	for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
		if !strings.HasPrefix(l, "esctl: imported ") {
			said = append(said, l)
		}
	}
	want := fmt.Sprintf("esctl: interrupted: %s (%s) of this source committed, through byte offset %d; continue with: esctl --db %s import --in %s --resume",
		plural(num(t, cp, "lines"), "line"), plural(num(t, cp, "events"), "event"), num(t, cp, "byteOffset"), dst, file)
	if len(said) != 1 || said[0] != want {
		t.Fatalf("after the interrupt, want the one line\n%s\ngot:\n%s", want, strings.Join(said, "\n"))
	}
	if p.stdout.Len() != 0 {
		t.Fatalf("stdout: %s", p.stdout.String())
	}
	if cp["done"] != false || num(t, describe(t, dst), "eventCount") != num(t, cp, "lines") {
		t.Fatalf("after the interrupt: %v", cp)
	}
	if r := binary(t, dir, nil, nil, "--db", dst, "import", "--in", file, "--resume"); r.code != 0 {
		t.Fatalf("--resume: %s", r)
	}
	whole, _ := os.ReadFile(file)
	wantBytes(t, "export after interrupt and --resume", []byte(binary(t, dir, nil, nil, "--db", dst, "export").stdout), whole)
}

// interruptedPipeImport starts esctl import reading a pipe, writes lines
// (one batch: then the import waits for more), and interrupts it once the
// batch is committed. It returns the process, the pipe's write end and the
// target store.
func interruptedPipeImport(t *testing.T, lines []byte) (*proc, *os.File, string) {
	t.Helper()
	dst := sqliteURL(t, "dst.db")
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pr.Close(); pw.Close() })
	p := start(t, t.TempDir(), pr, "--db", dst, "import")
	if _, err := pw.Write(lines); err != nil {
		t.Fatal(err)
	}
	p.waitFor("esctl: imported", 1) // the batch is in
	p.signal(syscall.SIGINT)
	p.waitFor("esctl: stopping after the batch in flight (interrupt again to stop at once)", 1)
	return p, pw, dst
}

// TestImportInterruptedInputEnds: interrupted while reading a pipe whose
// writer then stops (as with esctl export | esctl import and Ctrl-C), the
// import must not report success: the input may be cut short.
func TestImportInterruptedInputEnds(t *testing.T) {
	t.Parallel()
	lines := eventLines(1, 5_000, 10)
	p, pw, dst := interruptedPipeImport(t, lines)
	pw.Close() // the input ends
	if code := p.wait(); code != exitInterrupted {
		t.Fatalf("exit %d:\n%s", code, p.stderrText())
	}
	if !strings.Contains(p.stderrText(), "continue with: esctl --db "+dst+" import --resume < SAME-INPUT") {
		t.Fatalf("no resume hint:\n%s", p.stderrText())
	}
	wantBytes(t, "what was read is in", exportOf(t, dst), lines)
}

// TestSecondInterruptExitsAtOnce: while the first SIGINT waits for the
// current batch (here: a read from a pipe nobody writes to), a second one
// exits 130 at once.
func TestSecondInterruptExitsAtOnce(t *testing.T) {
	t.Parallel()
	p, _, dst := interruptedPipeImport(t, eventLines(1, 5_000, 10))
	// Still reading the open, silent pipe: only a second signal ends it.
	p.signal(syscall.SIGINT)
	if code := p.wait(); code != exitInterrupted {
		t.Fatalf("exit %d:\n%s", code, p.stderrText())
	}
	if !strings.Contains(p.stderrText(), "interrupted again: stopping at once") {
		t.Fatalf("stderr:\n%s", p.stderrText())
	}
	// The committed batch stays.
	if n := num(t, describe(t, dst), "eventCount"); n != 5_000 {
		t.Fatalf("%d events after the forced exit", n)
	}
}

// TestExportInterrupt: SIGINT stops an export to stdout after whole lines,
// prints the resume cursor and exits 130; exporting from that cursor gives
// the rest, so that the two outputs make the whole export.
func TestExportInterrupt(t *testing.T) {
	t.Parallel()
	file, src := bigFixture(t)
	want, _ := os.ReadFile(file)
	dir := t.TempDir()
	p := start(t, dir, nil, "--db", src, "export")
	p.waitFor("esctl: exported", 1)
	p.signal(syscall.SIGINT)
	if code := p.wait(); code != exitInterrupted {
		t.Fatalf("exit %d:\n%s", code, p.stderrText())
	}
	stderr := p.stderrText()
	cursor, ok := continueCursor(stderr, "esctl --db "+src+" export --cursor ")
	if !ok {
		t.Fatalf("no resume cursor:\n%s", stderr)
	}
	first := p.stdout.Bytes()
	if len(first) == 0 || len(first) >= len(want) || !bytes.HasPrefix(want, first) {
		t.Fatalf("the interrupted export wrote %d bytes, not a proper prefix of whole lines", len(first))
	}
	pos, err := eventstore.Cursor(cursor).Position()
	if err != nil || int(pos) != bytes.Count(first, []byte("\n")) {
		t.Fatalf("cursor %q (position %d, %v) does not follow the %d lines written", cursor, pos, err, bytes.Count(first, []byte("\n")))
	}
	r := binary(t, dir, nil, nil, "--db", src, "export", "--cursor", cursor)
	if r.code != 0 {
		t.Fatalf("export --cursor: %s", r)
	}
	wantBytes(t, "interrupted export + the rest", append(first, r.stdout...), want)

	// To a file: FILE.part keeps what was written, FILE does not exist.
	out := dir + "/out.ndjson"
	p = start(t, dir, nil, "--db", src, "export", "--out", out)
	p.waitFor("esctl: exported", 1)
	p.signal(syscall.SIGINT)
	if code := p.wait(); code != exitInterrupted {
		t.Fatalf("exit %d:\n%s", code, p.stderrText())
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("an interrupted export left %s: %v", out, err)
	}
	part, err := os.ReadFile(out + ".part")
	if err != nil || !bytes.HasPrefix(want, part) || !strings.Contains(p.stderrText(), "written to "+out+".part") {
		t.Fatalf("%s.part: %v\n%s", out, err, p.stderrText())
	}
	// The command it prints completes the file.
	_, again, ok := strings.Cut(p.stderrText(), "continue with: ")
	if !ok {
		t.Fatalf("no command to continue with:\n%s", p.stderrText())
	}
	again = strings.TrimSpace(again)
	wantCmd := fmt.Sprintf("esctl --db %s export --cursor %s >> %s.part && mv %s.part %s", src, eventstore.CursorAt(int64(bytes.Count(part, []byte("\n")))), out, out, out)
	if again != wantCmd {
		t.Fatalf("continue with:\n%s\nwant:\n%s", again, wantCmd)
	}
	sh := exec.Command("sh", "-c", strings.Replace(again, "esctl ", esctlBin+" --quiet ", 1))
	sh.Dir = dir
	if b, err := sh.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", again, err, b)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	wantBytes(t, "the interrupted export to a file, completed by the command it printed", got, want)
}

// TestInterruptsHandler: the first signal cancels, the second exits 130.
func TestInterruptsHandler(t *testing.T) {
	t.Parallel()
	sigs := make(chan os.Signal, 2)
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan int, 1)
	var stderr lockedBuffer
	go interrupts(sigs, cancel, &stderr, func(code int) { exited <- code })
	sigs <- os.Interrupt
	<-ctx.Done()
	// A command still running a while later is told that it is stopping.
	for deadline := time.Now().Add(time.Minute); !strings.Contains(stderr.String(), "interrupt again"); {
		if time.Now().After(deadline) {
			t.Fatalf("no word of stopping: %q", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case code := <-exited:
		t.Fatalf("exited (%d) on the first signal", code)
	default:
	}
	sigs <- syscall.SIGTERM
	select {
	case code := <-exited:
		if code != exitInterrupted {
			t.Fatalf("exit %d", code)
		}
	case <-time.After(time.Minute):
		t.Fatal("the second signal did not exit")
	}
	if !strings.Contains(stderr.String(), "interrupt again") || !strings.Contains(stderr.String(), "stopping at once") {
		t.Fatalf("stderr: %s", stderr.String())
	}
}

// continueCursor returns the cursor of the "continue with: " command in
// stderr, which must begin with prefix (up to and including "--cursor ").
func continueCursor(stderr, prefix string) (string, bool) {
	_, after, ok := strings.Cut(stderr, "continue with: "+prefix)
	if !ok {
		return "", false
	}
	cursor, _, _ := strings.Cut(after, " ")
	cursor, _, _ = strings.Cut(cursor, "\n")
	return cursor, true
}

// lockedBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestEventsInterrupt: SIGINT stops esctl events after whole lines and
// prints the cursor to continue from. The test holds stdout back until the
// signal is sent, so that the read cannot end first.
func TestEventsInterrupt(t *testing.T) {
	t.Parallel()
	file, src := bigFixture(t)
	want, _ := os.ReadFile(file)
	cmd := exec.Command(esctlBin, "--db", src, "events")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	first := make([]byte, 1)
	if _, err := io.ReadFull(stdout, first); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(stdout)
	if err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	if ee := (*exec.ExitError)(nil); !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted {
		t.Fatalf("events interrupted: %v\n%s", err, stderr.String())
	}
	got := append(first, rest...)
	cursor, ok := continueCursor(stderr.String(), "esctl --db "+src+" events --cursor ")
	if !ok || len(got) == 0 || len(got) >= len(want) || !bytes.HasPrefix(want, got) {
		t.Fatalf("%d bytes printed, not a proper prefix of whole lines, or no cursor:\n%s", len(got), stderr.String())
	}
	if pos, err := eventstore.Cursor(cursor).Position(); err != nil || int(pos) != bytes.Count(got, []byte("\n")) {
		t.Fatalf("cursor %q (position %d, %v) does not follow the %d lines printed", cursor, pos, err, bytes.Count(got, []byte("\n")))
	}
}
