package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/urfave/cli/v3"

	_ "github.com/esctl/esctl/adapters/postgres"
	_ "github.com/esctl/esctl/adapters/sqlite" // the embedded default engine
	"github.com/esctl/esctl/consumer"
	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/transfer"
)

// Exit codes (docs/cli.md).
const (
	exitOK          = 0
	exitFailure     = 1
	exitUsage       = 2
	exitBadInput    = 3
	exitStoreState  = 4
	exitResources   = 5
	exitInterrupted = 130
)

// DefaultDB is the store esctl uses when neither --db, ESCTL_DB nor
// DATABASE_URL is set.
const DefaultDB = "sqlite://./esctl.db"

// env carries the process's streams; commands never touch os.Std*.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	log    *slog.Logger
	// notFound is set by CommandNotFound (esctl help NAME with an unknown NAME).
	notFound string
	// current is the full name of the command being run ("esctl export").
	current string
	// args are the arguments esctl was given, without the program name
	// (rerun builds the command that continues a job from them).
	args []string
	// db and readDB are --db and --read-db: a store opened on db reads
	// its events from readDB when set.
	db, readDB string
	// redactor masks the passwords of the database URLs esctl was given
	// (and any URL's password) in every message (see redact).
	redactor func(string) string
}

// usageError marks errors in how esctl was called (exit code 2).
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// run is esctl's main, testable: it parses args, runs the command and returns
// the exit code. Data goes to stdout; logs, progress and errors to stderr.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, log: slog.New(slog.DiscardHandler), args: args[min(1, len(args)):]}
	e.redactor = eventstore.RedactFunc(append(args, os.Getenv("ESCTL_DB"), os.Getenv("DATABASE_URL"), os.Getenv("ESCTL_READ_DB"))...)
	app := newApp(e)
	err := app.Run(ctx, args)
	if err == nil && e.notFound != "" {
		err = usagef("unknown command %q", e.notFound)
	}
	code := exitCode(ctx, err)
	if err == nil {
		return code
	}
	if code == exitInterrupted {
		// One line: what is done and the command that continues (the
		// error itself is the interrupt; it goes to the debug log).
		e.log.Debug("interrupted", "err", e.redact(err.Error()))
		line := "interrupted"
		if hint := hintFor(err); hint != "" {
			line += ": " + hint
		}
		fmt.Fprintf(stderr, "esctl: %s\n", e.redact(line))
		return code
	}
	fmt.Fprintf(stderr, "esctl: %s\n", e.redact(err.Error()))
	if hint := hintFor(err); hint != "" {
		fmt.Fprintf(stderr, "esctl: %s\n", e.redact(hint))
	}
	if code == exitUsage {
		fmt.Fprintf(stderr, "Try: %s --help\n", cmp.Or(e.current, "esctl"))
	}
	return code
}

// hintFor is the line printed after an error: the command's own hint, or
// what to do about a store state.
func hintFor(err error) string {
	var h *hintError
	switch {
	case errors.As(err, &h):
		return h.hint
	case errors.Is(err, eventstore.ErrFrozen):
		return "the store is frozen (esctl describe shows why); esctl unfreeze lifts the freeze"
	case errors.Is(err, eventstore.ErrNotInitialized):
		return "create the store with: esctl --db URL init"
	}
	return consumerHint(err)
}

func exitCode(ctx context.Context, err error) int {
	var ue *usageError
	var se *storeStateError
	var lhe *consumer.LeaseHeldError
	switch {
	case err == nil:
		return exitOK
	case ctx.Err() != nil:
		// Interrupted (Ctrl-C, SIGTERM): whatever failed, failed because
		// of it, and the hint says where to resume.
		return exitInterrupted
	case errors.Is(err, eventstore.ErrResources):
		return exitResources
	case errors.As(err, &ue), errors.Is(err, eventstore.ErrUnknownScheme), errors.Is(err, eventstore.ErrInvalidIndex):
		return exitUsage
	case errors.As(err, &se):
		return exitStoreState
	case errors.Is(err, transfer.ErrBadInput), errors.Is(err, transfer.ErrResumeMismatch),
		errors.Is(err, transfer.ErrOlderEvents), errors.Is(err, errBadBackup):
		return exitBadInput
	case errors.Is(err, eventstore.ErrInvalidEvent), errors.Is(err, eventstore.ErrInvalidFilter),
		errors.Is(err, eventstore.ErrInvalidCursor), errors.Is(err, eventstore.ErrInvalidSecret),
		errors.Is(err, eventstore.ErrInvalidSnapshot), errors.Is(err, eventstore.ErrCursorBeyondEnd):
		return exitBadInput
	case errors.Is(err, eventstore.ErrFrozen), errors.Is(err, eventstore.ErrAlreadyFrozen),
		errors.Is(err, eventstore.ErrAlreadyUnfrozen), errors.Is(err, eventstore.ErrNotInitialized),
		errors.Is(err, eventstore.ErrSchemaVersion), errors.Is(err, eventstore.ErrSecretExists),
		errors.Is(err, eventstore.ErrConflict), errors.Is(err, consumer.ErrNotFound), errors.As(err, &lhe),
		errors.Is(err, transfer.ErrImportRecorded):
		return exitStoreState
	}
	return exitFailure
}

// redact masks passwords in a message: those of URLs in it, and those of
// the URLs esctl was given wherever they appear.
func (e *env) redact(msg string) string { return e.redactor(msg) }

// redactingWriter masks passwords in everything written through it (log
// lines).
type redactingWriter struct{ e *env }

func (r redactingWriter) Write(p []byte) (int, error) {
	if _, err := io.WriteString(r.e.stderr, r.e.redact(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}

func newApp(e *env) *cli.Command {
	app := &cli.Command{
		Name:      "esctl",
		Usage:     "move, back up and inspect esctl event stores",
		Version:   buildVersion(),
		Writer:    e.stdout,
		ErrWriter: e.stderr,
		Reader:    e.stdin,
		// run() prints errors and picks exit codes; urfave/cli must not exit.
		ExitErrHandler: func(context.Context, *cli.Command, error) {},
		// The completion command is listed, and an unknown shell is a
		// usage error.
		ConfigureShellCompletionCommand: func(c *cli.Command) {
			c.Hidden = false
			c.Usage = "print the shell completion script for bash, zsh, fish or pwsh"
			c.Action = groupAction
			prepareCommands(e, c)
		},
		CommandNotFound: func(_ context.Context, _ *cli.Command, name string) {
			e.notFound = name
		},
		Action:                groupAction,
		EnableShellCompletion: true,
		Flags: []cli.Flag{
			&cli.StringFlag{
				Name:    "db",
				Usage:   "database URL: " + eventstore.AcceptedURLs(),
				Value:   DefaultDB,
				Sources: cli.EnvVars("ESCTL_DB", "DATABASE_URL"),
			},
			&cli.StringFlag{
				Name:    "read-db",
				Usage:   "a streaming replica of --db (or several hosts in one multi-host URL) to read events from: events, export and backup read there; writes, and reads that decide something, go to --db",
				Sources: cli.EnvVars("ESCTL_READ_DB"),
			},
			&cli.StringFlag{
				Name:    "output",
				Aliases: []string{"o"},
				Usage:   "output format: text or json",
				Value:   "text",
				Validator: func(s string) error {
					if s != "text" && s != "json" {
						return fmt.Errorf("--output must be text or json, not %q", s)
					}
					return nil
				},
			},
			&cli.StringFlag{
				Name:    "progress",
				Usage:   "progress on stderr: auto (a bar on a terminal, plain lines otherwise), bar, plain or none",
				Value:   "auto",
				Sources: cli.EnvVars("ESCTL_PROGRESS"),
				Validator: func(s string) error {
					if !slices.Contains(progressModes, s) {
						return fmt.Errorf("--progress must be one of %s, not %q", strings.Join(progressModes, ", "), s)
					}
					return nil
				},
			},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print no progress and no summary (errors still go to stderr)"},
			&cli.StringFlag{
				Name:    "log-level",
				Usage:   "log level on stderr: debug, info, warn, error",
				Value:   "warn",
				Sources: cli.EnvVars("ESCTL_LOG_LEVEL"),
			},
		},
		Before: func(ctx context.Context, cmd *cli.Command) (context.Context, error) {
			e.db, e.readDB = cmd.String("db"), cmd.String("read-db")
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(cmd.String("log-level"))); err != nil {
				return ctx, usagef("--log-level: %v", err)
			}
			e.log = slog.New(slog.NewTextHandler(redactingWriter{e}, &slog.HandlerOptions{Level: lvl}))
			return ctx, nil
		},
		Commands: []*cli.Command{
			initCommand(e),
			migrateCommand(e),
			dropCommand(e),
			describeCommand(e),
			freezeCommand(e),
			unfreezeCommand(e),
			eventsCommand(e),
			exportCommand(e),
			importCommand(e),
			importsCommand(e),
			incrementalImportCommand(e),
			copyCommand(e),
			backupCommand(e),
			restoreCommand(e),
			verifyCommand(e),
			secretsCommand(e),
			consumersCommand(e),
			snapshotsCommand(e),
			indexCommand(e),
			demoCommand(e),
			versionCommand(e),
		},
	}
	prepareCommands(e, app)
	return app
}

// prepareCommands sets what every command of the tree below c shares: flag
// errors are usage errors, the running command is recorded for the "Try:"
// line, and a command that takes no arguments refuses them (instead of
// ignoring a misplaced value: esctl import events.ndjson).
func prepareCommands(e *env, c *cli.Command) {
	// Flag errors are usage errors (exit 2), printed by run without the
	// help text that urfave/cli would print on stdout.
	c.OnUsageError = func(_ context.Context, cmd *cli.Command, err error, _ bool) error {
		e.current = cmd.FullName()
		return &usageError{err}
	}
	if action := c.Action; action != nil {
		takesArgs := c.ArgsUsage != "" || len(c.Commands) > 0
		c.Action = func(ctx context.Context, cmd *cli.Command) error {
			e.current = cmd.FullName()
			if !takesArgs && cmd.Args().Present() {
				use := ""
				for _, f := range cmd.Flags {
					if n := f.Names()[0]; n == "in" || n == "out" {
						use = fmt.Sprintf("; name a file with --%s FILE", n)
					}
				}
				return usagef("%s takes no arguments (got %q)%s", cmd.FullName(), cmd.Args().First(), use)
			}
			return action(ctx, cmd)
		}
	}
	for _, sub := range c.Commands {
		prepareCommands(e, sub)
	}
}

// groupAction is the action of commands that only hold subcommands: an
// unknown subcommand is a usage error, no subcommand shows the help.
func groupAction(_ context.Context, cmd *cli.Command) error {
	if cmd.Args().Present() {
		return usagef("unknown command %q for %q", cmd.Args().First(), cmd.FullName())
	}
	return cli.ShowSubcommandHelp(cmd)
}

func (e *env) jsonOutput(cmd *cli.Command) bool { return cmd.Root().String("output") == "json" }

func (e *env) printJSON(v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// openStore opens the store named by --db.
func (e *env) openStore(ctx context.Context, cmd *cli.Command) (*eventstore.Store, error) {
	return eventstore.Open(ctx, cmd.Root().String("db"), e.storeOptions(cmd.Root().String("db")))
}

// storeOptions are the options of a store opened on rawURL: --read-db
// serves its reads when rawURL is --db.
func (e *env) storeOptions(rawURL string) *eventstore.Options {
	o := &eventstore.Options{Logger: e.log}
	if e.readDB != "" && rawURL == e.db {
		o.ReadURL = e.readDB
	}
	return o
}
