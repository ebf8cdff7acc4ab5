package main

import (
	"bytes"
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
	"unsafe"
)

// pty is a pseudo-terminal: the test holds the master side, esctl gets the
// slave side as a stream.
type pty struct {
	master, slave *os.File
	mu            sync.Mutex
	out           bytes.Buffer // what esctl wrote to the terminal
	done          chan struct{}
	dumb          bool // run esctl with TERM=dumb
}

func openPTY(t testing.TB) *pty {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	ioctl := func(req uintptr, arg unsafe.Pointer) {
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), req, uintptr(arg)); e != 0 {
			t.Fatalf("ioctl %#x: %v", req, e)
		}
	}
	var unlock int32
	ioctl(syscall.TIOCSPTLCK, unsafe.Pointer(&unlock))
	var n uint32
	ioctl(syscall.TIOCGPTN, unsafe.Pointer(&n))
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Fatal(err)
	}
	p := &pty{master: m, slave: s, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		buf := make([]byte, 32<<10)
		for {
			n, err := m.Read(buf)
			p.mu.Lock()
			p.out.Write(buf[:n])
			p.mu.Unlock()
			if err != nil { // EIO once no process holds the slave side
				return
			}
		}
	}()
	t.Cleanup(func() {
		s.Close()
		m.Close()
	})
	return p
}

// setWidth sets the terminal's width in columns (as stty cols does).
func (p *pty) setWidth(t testing.TB, cols uint16) {
	t.Helper()
	ws := struct{ rows, cols, x, y uint16 }{24, cols, 0, 0}
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, p.master.Fd(), syscall.TIOCSWINSZ, uintptr(unsafe.Pointer(&ws))); e != 0 {
		t.Fatalf("TIOCSWINSZ: %v", e)
	}
}

// output closes the test's copy of the slave side and returns everything
// written to the terminal, once esctl (which must have ended) has no copy
// open either.
func (p *pty) output() string {
	p.slave.Close()
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// runOnTerminal runs the built esctl with the given streams, nil ones being
// the terminal, and returns its exit code.
func runOnTerminal(t testing.TB, p *pty, stdin io.Reader, stdout, stderr io.Writer, args ...string) int {
	t.Helper()
	cmd := exec.Command(esctlBin, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "ESCTL_PROGRESS_INTERVAL=1ms", "ESCTL_PROGRESS=auto", "TERM=xterm")
	if p.dumb {
		cmd.Env = append(cmd.Env, "TERM=dumb")
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	if stdin == nil {
		cmd.Stdin = p.slave
	}
	if stdout == nil {
		cmd.Stdout = p.slave
	}
	if stderr == nil {
		cmd.Stderr = p.slave
	}
	err := cmd.Run()
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		return ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return 0
}

// TestProgressBarOnTerminal is acceptance 5: with stderr on a terminal, a
// long export draws a bar redrawn in place (carriage return, clear to end of
// line), then clears it for the one-line summary. stdout, redirected, holds
// only the data.
func TestProgressBarOnTerminal(t *testing.T) {
	t.Parallel()
	file, src := bigFixture(t)
	p := openPTY(t)
	var stdout bytes.Buffer
	if code := runOnTerminal(t, p, strings.NewReader(""), &stdout, nil, "--db", src, "export"); code != 0 {
		t.Fatalf("export on a terminal: exit %d\n%s", code, p.output())
	}
	screen := p.output()
	for _, want := range []string{"\r[", "] exported ", " of 100,000 events (", "\x1b[K", "esctl export: 100,000 events"} {
		if !strings.Contains(screen, want) {
			t.Fatalf("the terminal lacks %q:\n%q", want, screen)
		}
	}
	want, _ := os.ReadFile(file)
	wantBytes(t, "stdout of an export with a bar", stdout.Bytes(), want)

	// The bar fits the terminal's width (stty cols): every line drawn
	// leaves the last column free, narrower terminals get shorter lines.
	for _, cols := range []uint16{80, 50, 30} {
		p = openPTY(t)
		p.setWidth(t, cols)
		if code := runOnTerminal(t, p, strings.NewReader(""), io.Discard, nil, "--db", src, "export"); code != 0 {
			t.Fatalf("export on a %d-column terminal: exit %d", cols, code)
		}
		screen := p.output()
		drawn := 0
		for _, seg := range strings.Split(screen, "\r") {
			line, _, _ := strings.Cut(seg, "\x1b[K")
			line, _, _ = strings.Cut(line, "\n")
			if !strings.Contains(line, "exported") {
				continue
			}
			drawn++
			if n := len([]rune(line)); n >= int(cols) {
				t.Fatalf("%d-column terminal: a %d-column bar line %q", cols, n, line)
			}
		}
		if drawn == 0 {
			t.Fatalf("%d-column terminal: no bar drawn: %q", cols, screen)
		}
	}

	// TERM=dumb takes no escape codes: auto progress is plain lines, and
	// --progress=bar redraws with spaces.
	for _, mode := range []string{"auto", "bar"} {
		p = openPTY(t)
		p.dumb = true
		if code := runOnTerminal(t, p, strings.NewReader(""), io.Discard, nil, "--db", src, "--progress", mode, "export"); code != 0 {
			t.Fatalf("export on a dumb terminal: exit %d", code)
		}
		screen := p.output()
		if strings.Contains(screen, "\x1b") || !strings.Contains(screen, "esctl export: 100,000 events") {
			t.Fatalf("TERM=dumb, --progress=%s: %q", mode, screen)
		}
	}

	// --quiet: nothing at all on the terminal.
	p = openPTY(t)
	if code := runOnTerminal(t, p, strings.NewReader(""), io.Discard, nil, "--db", src, "--quiet", "export"); code != 0 {
		t.Fatalf("export --quiet: exit %d", code)
	}
	if screen := p.output(); screen != "" {
		t.Fatalf("export --quiet wrote to the terminal: %q", screen)
	}
}

// TestTerminalStdin: a command that reads stdin refuses a terminal instead
// of waiting for input nobody types (help and error on stderr, exit 2), and
// a destructive command asks there.
func TestTerminalStdin(t *testing.T) {
	t.Parallel()
	url := importedStore(t, eventLines(1, 5, 1))
	for _, args := range [][]string{
		{"import"},
		{"secrets", "import"},
		{"incremental-import"},
		{"secrets", "set", "id"},
		{"snapshots", "set", "key"},
	} {
		p := openPTY(t)
		var stdout, stderr bytes.Buffer
		code := runOnTerminal(t, p, nil, &stdout, &stderr, append([]string{"--db", url}, args...)...)
		p.output()
		if code != exitUsage || stdout.Len() != 0 || !strings.Contains(stderr.String(), "which is a terminal") {
			t.Fatalf("%v with a terminal on stdin: exit %d\nstdout: %s\nstderr: %s", args, code, stdout.String(), stderr.String())
		}
		if args[0] == "import" && !strings.Contains(stderr.String(), "USAGE:") {
			t.Fatalf("import shows no help: %s", stderr.String())
		}
	}

	// drop asks on the terminal; "n" (or end of input) keeps the store.
	for _, answer := range []string{"n\n", "\n", "maybe\n"} {
		p := openPTY(t)
		if _, err := p.master.Write([]byte(answer)); err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		code := runOnTerminal(t, p, nil, io.Discard, &stderr, "--db", url, "drop")
		p.output()
		if code != exitFailure || !strings.Contains(stderr.String(), "drop the store at") || !strings.Contains(stderr.String(), "[y/N]") || !strings.Contains(stderr.String(), "not confirmed") {
			t.Fatalf("drop answered %q: exit %d\n%s", answer, code, stderr.String())
		}
		if n := num(t, describe(t, url), "eventCount"); n != 5 {
			t.Fatalf("drop answered %q changed the store", answer)
		}
	}
	p := openPTY(t)
	if _, err := p.master.Write([]byte("y\n")); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	if code := runOnTerminal(t, p, nil, io.Discard, &stderr, "--db", url, "drop"); code != 0 {
		t.Fatalf("drop answered y: exit %d\n%s", code, stderr.String())
	}
	p.output()
	wantCode(t, esctl(t, "", "--db", url, "describe"), exitStoreState, "not initialized")
}

// TestPromptInterrupted: Ctrl-C while a prompt waits for an answer stops
// at once (exit 130), changing nothing.
func TestPromptInterrupted(t *testing.T) {
	t.Parallel()
	url := importedStore(t, eventLines(1, 3, 1))
	p := openPTY(t)
	cmd := exec.Command(esctlBin, "--db", url, "drop")
	cmd.Stdin = p.slave
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		// Wait for the prompt, interrupt, then read the rest.
		var seen []byte
		buf := make([]byte, 4096)
		for !bytes.Contains(seen, []byte("[y/N] ")) {
			n, err := stderr.Read(buf)
			seen = append(seen, buf[:n]...)
			if err != nil {
				done <- fmt.Errorf("no prompt: %v: %q", err, seen)
				return
			}
		}
		if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
			done <- err
			return
		}
		_, _ = io.Copy(io.Discard, stderr)
		done <- cmd.Wait()
	}()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted {
			t.Fatalf("drop interrupted at its prompt: %v", err)
		}
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatal("drop did not stop when interrupted at its prompt")
	}
	p.output()
	if n := num(t, describe(t, url), "eventCount"); n != 3 {
		t.Fatalf("the store changed: %d events", n)
	}
}
