package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/urfave/cli/v3"

	"github.com/esctl/esctl/consumer"
	"github.com/esctl/esctl/eventstore"
)

// destructive is one invocation of a command that drops, replaces or
// rewrites existing data.
type destructive struct {
	command string   // its full name, as the command tree has it
	args    []string // after --db URL
}

// TestDestructiveCommandsOffTerminal is issue 27's rule, on both engines:
// every command that can drop, replace or rewrite existing data, run off a
// terminal without --yes, refuses with exit 2 and names --yes, and changes
// nothing: the store reads the same (describe, export, secrets, consumers,
// imports, schema), the SQLite files have the same SHA-256, and files it
// would overwrite keep their bytes. The list of commands is checked
// against the command tree: every command that has --yes is in it. (Before
// the rule, restore --force went ahead off a terminal: exit 0, the store
// replaced.)
func TestDestructiveCommandsOffTerminal(t *testing.T) {
	t.Parallel()
	eachEngine(t, func(t *testing.T, engine, url string) {
		dir := t.TempDir()
		lines := eventLines(1, 30, 3)
		in := writeFile(t, dir, "events.ndjson", lines)
		mustEsctl(t, "", "--db", url, "import", "--in", in)
		for i := range 2 {
			mustEsctl(t, "key", "--db", url, "secrets", "set", "subject-"+string(rune('0'+i)))
		}
		mustEsctl(t, "", "--db", url, "snapshots", "set", "aggregate:a:1", "--value-file", writeFile(t, dir, "snap", []byte(`{"n":1}`)))
		stoppedConsumer(t, url, "proj")

		bk := filepath.Join(dir, "store.esbackup")
		mustEsctl(t, "", "--db", url, "backup", "--out", bk)
		exported := filepath.Join(dir, "out.ndjson")
		mustEsctl(t, "", "--db", url, "export", "--out", exported)
		secretsFile := filepath.Join(dir, "secrets.ndjson")
		mustEsctl(t, "", "--db", url, "secrets", "export", "--out", secretsFile)
		latest := num(t, decodeJSON(t, mustEsctl(t, "", "--db", url, "-o", "json", "migrate", "status").stdout), "latest")

		cases := []destructive{
			{"esctl drop", []string{"drop"}},
			{"esctl migrate down", []string{"migrate", "down", "1"}},
			{"esctl migrate force", []string{"migrate", "force", strconv.FormatInt(latest, 10)}},
			{"esctl restore", []string{"restore", "--in", bk, "--force"}},
			{"esctl import", []string{"import", "--in", in, "--maintenance", "auto"}},
			{"esctl import", []string{"import", "--in", in, "--abort"}},
			{"esctl export", []string{"export", "--out", exported, "--force"}},
			{"esctl backup", []string{"backup", "--out", bk, "--force"}},
			{"esctl secrets export", []string{"secrets", "export", "--out", secretsFile, "--force"}},
			{"esctl secrets delete", []string{"secrets", "delete", "subject-0"}},
			{"esctl consumers reset", []string{"consumers", "reset", "proj", "--to", "start"}},
			{"esctl consumers resize", []string{"consumers", "resize", "proj", "--members", "3"}},
			{"esctl consumers delete", []string{"consumers", "delete", "proj"}},
		}
		files := []string{bk, exported, secretsFile}
		before := storeState(t, url)
		sums := fileSums(t, url)
		fileBefore := map[string]string{}
		for _, f := range files {
			fileBefore[f] = fileSums(t, "sqlite://"+f)[filepath.Base(f)]
		}
		for _, c := range cases {
			args := append([]string{"--db", url}, c.args...)
			r := esctl(t, "", args...)
			wantCode(t, r, exitUsage, "refusing to ", "stdin is not a terminal", "pass --yes")
			require.Equal(t, before, storeState(t, url), "%s changed the store", strings.Join(c.args, " "))
			if engine == "sqlite" {
				require.Equal(t, sums, fileSums(t, url), "%s changed the SQLite file", strings.Join(c.args, " "))
			}
			for _, f := range files {
				require.Equal(t, fileBefore[f], fileSums(t, "sqlite://"+f)[filepath.Base(f)], "%s changed %s", strings.Join(c.args, " "), f)
			}
		}

		// The acceptance case as a user runs it: the built binary, stdin
		// from /dev/null.
		null, err := os.Open(os.DevNull)
		require.NoError(t, err)
		defer null.Close()
		r := binary(t, dir, null, nil, "--db", url, "restore", "--in", bk, "--force")
		wantCode(t, r, exitUsage, "refusing to replace everything in", "pass --yes")
		require.Equal(t, before, storeState(t, url))
		if engine == "sqlite" {
			require.Equal(t, sums, fileSums(t, url))
		}
		// With --yes it goes ahead.
		mustEsctl(t, "", "--db", url, "restore", "--in", bk, "--force", "--yes")

		// Every command with --yes is one of the cases above.
		var withYes []string
		var walk func(name string, c *cli.Command)
		walk = func(name string, c *cli.Command) {
			for _, f := range c.Flags {
				if slices.Contains(f.Names(), "yes") {
					withYes = append(withYes, name)
				}
			}
			for _, sub := range c.Commands {
				walk(name+" "+sub.Name, sub)
			}
		}
		walk("esctl", newApp(&env{stdin: strings.NewReader(""), stdout: &strings.Builder{}, stderr: &strings.Builder{}}))
		var tested []string
		for _, c := range cases {
			if !slices.Contains(tested, c.command) {
				tested = append(tested, c.command)
			}
		}
		slices.Sort(withYes)
		slices.Sort(tested)
		require.Equal(t, withYes, tested, "the commands that take --yes and the commands this test runs")
	})
}

// storeState is what the store reads as, through esctl: describe, the
// events, the secrets, the consumers, the imports and the schema version.
func storeState(t testing.TB, url string) string {
	t.Helper()
	var b strings.Builder
	for _, args := range [][]string{
		{"-o", "json", "describe"},
		{"export"},
		{"secrets", "export"},
		{"-o", "json", "consumers", "list"},
		{"-o", "json", "imports"},
		{"-o", "json", "migrate", "status"},
		{"-o", "json", "snapshots", "list"},
	} {
		r := esctl(t, "", append([]string{"--db", url}, args...)...)
		b.WriteString(strings.Join(args, " ") + "\n" + r.stdout + "\n")
	}
	return b.String()
}

// stoppedConsumer runs a consumer named name over the store's events to
// the end, then stops it (its lease released): reset, resize and delete
// then go through, after confirmation.
func stoppedConsumer(t testing.TB, url, name string) {
	t.Helper()
	s := openStore(t, url)
	c, err := consumer.New(s, name, consumer.Func(func(context.Context, *eventstore.StoredEvent) error { return nil }),
		&consumer.Options{CheckpointInterval: 20 * time.Millisecond, LeaseTTL: time.Second})
	require.NoError(t, err)
	d, err := s.Describe(context.Background(), nil)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	deadline := time.Now().Add(time.Minute)
	for c.Stats().Checkpoint < d.LastPosition {
		require.True(t, time.Now().Before(deadline), "the consumer did not reach position %d", d.LastPosition)
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	require.NoError(t, <-done)
}
