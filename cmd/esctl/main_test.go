package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/internal/testdb"
)

// esctlBin is the esctl binary built once for the tests that run it as a
// process (signals, pipes, terminals). Built without the race detector, so
// that the long crash tests stay fast under go test -race.
var esctlBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "esctl-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	esctlBin = filepath.Join(dir, "esctl")
	build := exec.Command("go", "build", "-o", esctlBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building esctl:", err)
		os.Exit(1)
	}
	testdb.InitStoreFunc = func(ctx context.Context, url string) error {
		s, err := eventstore.Open(ctx, url, nil)
		if err != nil {
			return err
		}
		defer s.Close()
		return s.Init(ctx)
	}
	code := m.Run()
	testdb.Stop()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// result is what one esctl run produced.
type result struct {
	code   int
	stdout string
	stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// esctl runs esctl in-process with args (without the program name) and
// stdin, in the test's own working directory (see chdir).
func esctl(t testing.TB, stdin string, args ...string) result {
	t.Helper()
	return esctlReader(t, strings.NewReader(stdin), args...)
}

func esctlReader(t testing.TB, stdin io.Reader, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), append([]string{"esctl"}, args...), stdin, &out, &errOut)
	return result{code: code, stdout: out.String(), stderr: errOut.String()}
}

// mustEsctl runs esctl and fails the test unless it exits 0.
func mustEsctl(t testing.TB, stdin string, args ...string) result {
	t.Helper()
	r := esctl(t, stdin, args...)
	if r.code != 0 {
		t.Fatalf("esctl %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// wantCode fails the test unless r exited with code and stderr contains
// every fragment.
func wantCode(t testing.TB, r result, code int, fragments ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("want exit %d, got %s", code, r)
	}
	for _, f := range fragments {
		if !strings.Contains(r.stderr, f) {
			t.Fatalf("stderr lacks %q: %s", f, r)
		}
	}
}

// binary runs the built esctl binary with args, stdin and extra environment,
// in dir.
func binary(t testing.TB, dir string, stdin io.Reader, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(esctlBin, args...)
	cmd.Dir = dir
	cmd.Stdin = stdin
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running esctl: %v", err)
	}
	return result{code: code, stdout: out.String(), stderr: errOut.String()}
}

// sqliteURL is a fresh SQLite store URL in the test's temporary directory.
func sqliteURL(t testing.TB, name string) string {
	return "sqlite://" + filepath.Join(t.TempDir(), name)
}

// seed fills the store at url with n events over aggregates and a few
// secrets, through the library.
func seed(t testing.TB, url string, n, aggregates, secrets int) {
	t.Helper()
	ctx := context.Background()
	s, err := eventstore.Open(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Init(ctx); err != nil {
		t.Fatal(err)
	}
	batch := make([]eventstore.Event, 0, 500)
	for i := range n {
		batch = append(batch, eventstore.Event{
			AggregateID:      fmt.Sprintf("agg-%d", i%aggregates),
			AggregateVersion: int64(i/aggregates) + 1,
			Type:             fmt.Sprintf("Type%d", i%5),
			Payload:          []byte(fmt.Sprintf(`{"n":%d,"text":"caf\u00e9 %d"}`, i, i*7)),
		})
		if len(batch) == cap(batch) || i == n-1 {
			if _, err := s.SaveEvents(ctx, batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	for i := range secrets {
		if err := s.Secrets().SetSecret(ctx, fmt.Sprintf("subject-%d", i), fmt.Sprintf("key-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if secrets > 1 {
		if _, err := s.Secrets().DeleteSecret(ctx, "subject-1"); err != nil {
			t.Fatal(err)
		}
	}
}
