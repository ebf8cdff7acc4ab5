package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runToFile runs the built esctl with stderr redirected to a file, as in
// esctl export -o out.ndjson 2>err.txt, and returns stderr's bytes.
func runToFile(t testing.TB, env []string, args ...string) (int, string) {
	t.Helper()
	dir := t.TempDir()
	errFile, err := os.Create(filepath.Join(dir, "err.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer errFile.Close()
	cmd := exec.Command(esctlBin, args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "ESCTL_PROGRESS=auto"), env...)
	cmd.Stderr = errFile
	code := 0
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatal(err)
		}
		code = ee.ExitCode()
	}
	b, err := os.ReadFile(errFile.Name())
	if err != nil {
		t.Fatal(err)
	}
	return code, string(b)
}

// TestProgressRedirected is acceptance 5's other half: with stderr
// redirected, progress is plain periodic lines, never a carriage return;
// --progress none and --quiet silence it; --progress bar forces the bar.
func TestProgressRedirected(t *testing.T) {
	t.Parallel()
	_, src := bigFixture(t)
	out := filepath.Join(t.TempDir(), "out.ndjson")
	fast := []string{"ESCTL_PROGRESS_INTERVAL=1ms"}

	code, stderr := runToFile(t, fast, "--db", src, "export", "--out", out)
	if code != 0 {
		t.Fatalf("export: exit %d\n%s", code, stderr)
	}
	if strings.Contains(stderr, "\r") || strings.Contains(stderr, "\x1b") {
		t.Fatalf("redirected stderr holds a carriage return or an escape:\n%q", stderr)
	}
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	if len(lines) < 3 || !strings.HasPrefix(lines[0], "esctl: exported ") || !strings.Contains(lines[0], "events of 100,000 events") {
		t.Fatalf("no plain progress lines:\n%s", stderr)
	}
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "esctl export: 100,000 events") {
		t.Fatalf("the last line is not the summary: %q", last)
	}

	// Import too, from a file: plain lines in bytes.
	dst := sqliteURL(t, "dst.db")
	in := writeFile(t, t.TempDir(), "in.ndjson", eventLines(1, 20_000, 10))
	code, stderr = runToFile(t, fast, "--db", dst, "import", "--in", in)
	if code != 0 || strings.Contains(stderr, "\r") || !strings.Contains(stderr, "esctl: imported ") || !strings.Contains(stderr, "esctl import: 20,000 events imported") {
		t.Fatalf("import: exit %d\n%q", code, stderr)
	}

	// --progress none: the summary only. --quiet: nothing.
	code, stderr = runToFile(t, fast, "--db", src, "--progress", "none", "export", "--out", out, "--force", "--yes")
	if code != 0 || !strings.HasPrefix(stderr, "esctl export: 100,000 events") || strings.Count(stderr, "\n") != 1 {
		t.Fatalf("--progress none: exit %d\n%q", code, stderr)
	}
	code, stderr = runToFile(t, fast, "--db", src, "-q", "export", "--out", out, "--force", "--yes")
	if code != 0 || stderr != "" {
		t.Fatalf("--quiet: exit %d\n%q", code, stderr)
	}
	// ESCTL_PROGRESS=none works like the flag.
	code, stderr = runToFile(t, append(fast, "ESCTL_PROGRESS=none"), "--db", src, "export", "--out", out, "--force", "--yes")
	if code != 0 || strings.Count(stderr, "\n") != 1 {
		t.Fatalf("ESCTL_PROGRESS=none: exit %d\n%q", code, stderr)
	}
	// --progress bar draws the bar even on a file.
	code, stderr = runToFile(t, fast, "--db", src, "--progress", "bar", "export", "--out", out, "--force", "--yes")
	if code != 0 || !strings.Contains(stderr, "\r[") {
		t.Fatalf("--progress bar: exit %d\n%q", code, stderr)
	}
}

func TestFormatting(t *testing.T) {
	t.Parallel()
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -45000: "-45,000"} {
		if got := commas(n); got != want {
			t.Errorf("commas(%d) = %q, want %q", n, got, want)
		}
	}
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 5 << 20: "5.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
