package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/transfer"
)

// maintenanceFlag is --maintenance auto|manual.
func maintenanceFlag(usage string) cli.Flag {
	return &cli.StringFlag{
		Name:  "maintenance",
		Usage: usage,
		Value: "manual",
		Validator: func(s string) error {
			if s != "auto" && s != "manual" {
				return fmt.Errorf("--maintenance must be auto or manual, not %q", s)
			}
			return nil
		},
	}
}

func maintenanceMode(cmd *cli.Command) transfer.MaintenanceMode {
	if cmd.String("maintenance") == "auto" {
		return transfer.MaintenanceAuto
	}
	return transfer.MaintenanceManual
}

// inFlag is --in FILE ("-", the default: stdin).
func inFlag() cli.Flag {
	return &cli.StringFlag{Name: "in", Value: "-", Usage: "input file, or - for stdin"}
}

// outFlag is --out FILE ("-", the default: stdout), and forceFlag lets it
// overwrite a file.
func outFlag() cli.Flag {
	return &cli.StringFlag{Name: "out", Value: "-", Usage: "output file, or - for stdout"}
}

func forceFlag() cli.Flag {
	return &cli.BoolFlag{Name: "force", Usage: "overwrite an existing output file (asks first; --yes answers)"}
}

// outputFile is a file written as PATH.part and renamed to PATH when
// complete, so that PATH never holds a partial file; "-" is stdout.
type outputFile struct {
	path string // "" for stdout
	f    *os.File
	w    *bufio.Writer
}

// createOutput opens path for writing ("-": stdout). An existing path is
// refused unless --force, and then confirmed (overwrite).
func (e *env) createOutput(ctx context.Context, cmd *cli.Command, path string) (*outputFile, error) {
	if isStdio(path) {
		return &outputFile{w: bufio.NewWriterSize(e.stdout, 256<<10)}, nil
	}
	if err := e.overwrite(ctx, cmd, path); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path+".part", os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	return &outputFile{path: path, f: f, w: bufio.NewWriterSize(f, 256<<10)}, nil
}

func (o *outputFile) Write(p []byte) (int, error) { return o.w.Write(p) }

// commit flushes, syncs and renames the file into place.
func (o *outputFile) commit() error {
	if err := o.w.Flush(); err != nil {
		return err
	}
	if o.f == nil {
		return nil
	}
	if err := o.f.Sync(); err != nil {
		return err
	}
	if err := o.f.Close(); err != nil {
		return err
	}
	return os.Rename(o.path+".part", o.path)
}

// abandon flushes what was written and leaves it in PATH.part.
func (o *outputFile) abandon() {
	_ = o.w.Flush()
	if o.f != nil {
		_ = o.f.Close()
	}
}

// openInput opens path for reading ("-": stdin, refused when stdin is a
// terminal: esctl would wait for input nobody is typing). size is the
// file's size, 0 for stdin.
func (e *env) openInput(cmd *cli.Command, path string) (io.ReadCloser, int64, error) {
	if isStdio(path) {
		if isTerminal(e.stdin) {
			// Help on stderr: stdout is for data.
			cli.HelpPrinter(e.stderr, cli.CommandHelpTemplate, cmd)
			return nil, 0, usagef("%s reads NDJSON from stdin, which is a terminal: pipe a file in or pass --in FILE", cmd.FullName())
		}
		return io.NopCloser(e.stdin), 0, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, st.Size(), nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func exportCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "export",
		Usage: "write the store's events as NDJSON to a file or stdout",
		Description: "Writes every event after --cursor (all by default) in the NDJSON format of\n" +
			"docs/ndjson-format.md, from one consistent snapshot of the store. A file is written as\n" +
			"FILE.part and renamed when complete. The summary names the cursor to continue from\n" +
			"(esctl export --cursor C) to get the events appended since.\n\n" +
			"Examples:\n  esctl export > events.ndjson\n  esctl export --out events.ndjson --maintenance auto\n" +
			"  esctl --db \"$PG_URL\" export | esctl --db sqlite://./copy.db import",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "cursor", Usage: "export the events after this cursor (default: from the start)"},
			outFlag(),
			forceFlag(),
			yesFlag(),
			maintenanceFlag("auto freezes the store for the export's duration (unfreezing only if it froze it); manual leaves it alone"),
		},
		Action: e.storeAction(func(ctx context.Context, cmd *cli.Command, s *eventstore.Store) error {
			cursor := eventstore.Cursor(cmd.String("cursor"))
			from, err := cursor.Position()
			if err != nil {
				return err
			}
			d, err := s.Describe(ctx, nil)
			if err != nil {
				return err
			}
			out, err := e.createOutput(ctx, cmd, cmd.String("out"))
			if err != nil {
				return err
			}
			p := e.newProgress(cmd, "exported", "events", max(0, d.LastPosition-from))
			res, err := transfer.ExportEvents(ctx, s, out, &transfer.ExportOptions{
				Cursor: cursor,
				Mode:   maintenanceMode(cmd),
				ProgressFunc: func(ep transfer.ExportProgress) {
					p.update(ep.Events, ep.Bytes, "")
				},
			})
			p.stop()
			if err == nil {
				err = out.commit()
			}
			if err != nil {
				out.abandon()
				return withHint(err, e.exportResumeHint(cmd, out, res))
			}
			dest := "stdout"
			if out.path != "" {
				dest = out.path
			}
			return e.printSummary(cmd, (&summary{Command: "export"}).
				add("events", res.Events, fmt.Sprintf("%s, %s to %s", plural(res.Events, "event"), humanBytes(res.Bytes), dest)).
				add("bytes", res.Bytes, "").
				add("lastPosition", res.LastPosition, "").
				add("cursor", res.Cursor, "continue with --cursor "+string(res.Cursor)), out.path == "")
		}),
	}
}

// exportResumeHint says what an interrupted or failed export wrote and
// the command that continues it.
func (e *env) exportResumeHint(cmd *cli.Command, out *outputFile, res *transfer.ExportResult) string {
	if res == nil {
		return ""
	}
	if out.path == "" {
		return fmt.Sprintf("%s written to stdout, through cursor %s; continue with: %s",
			plural(res.Events, "event"), orStart(res.Cursor), e.rerun(cmd, []string{"cursor"}, "--cursor", string(res.Cursor)))
	}
	part := shellQuote(out.path + ".part")
	return fmt.Sprintf("%s written to %s, through cursor %s; continue with: %s >> %s && mv %s %s",
		plural(res.Events, "event"), out.path+".part", orStart(res.Cursor),
		e.rerun(cmd, []string{"cursor", "out", "force", "yes", "y"}, "--cursor", string(res.Cursor)), part, part, shellQuote(out.path))
}

// isStdio reports whether a file argument means stdin or stdout.
func isStdio(path string) bool { return path == "-" || path == "" }

// defaultSourceID names an import's source in the store's checkpoints: the
// file's absolute path, or "stdin".
func defaultSourceID(kind, path string) string {
	if isStdio(path) {
		return kind + ":stdin"
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	return kind + ":" + path
}

func importCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "import",
		Usage: "read NDJSON events from a file or stdin into the store, resumable",
		Description: "Reads events in the format of docs/ndjson-format.md (esctl's or reSolve's exports) and\n" +
			"commits them in batches, each with a checkpoint of the source's byte offset, so a crash\n" +
			"at any instant loses nothing and doubles nothing. The first bad line stops the import\n" +
			"with its line number and byte offset (exit 3); the lines before it stay committed.\n\n" +
			"Resume an interrupted import by running it again with --resume (the file from its start:\n" +
			"esctl checks that its first bytes are the ones it imported) or with --byte-offset N (the\n" +
			"input starts at byte N, the offset the summary or the error gave).\n\n" +
			"--maintenance auto replaces the store's events and snapshots with the file's (secrets are\n" +
			"untouched), never leaving a mix; manual (the default) appends.\n\n" +
			"Examples:\n  esctl import --in events.ndjson\n  esctl import --in events.ndjson --resume\n" +
			"  esctl --db \"$PG_URL\" export | esctl --db sqlite://./copy.db import\n" +
			"  esctl import --in events.ndjson --maintenance auto --yes",
		Flags: []cli.Flag{
			inFlag(),
			&cli.Int64Flag{Name: "byte-offset", Usage: "the input starts at this byte of the source: the offset recorded by the interrupted import"},
			&cli.BoolFlag{Name: "resume", Usage: "continue the interrupted import of this source, reading the input from its start"},
			maintenanceFlag("auto replaces the store's events and snapshots with the file's; manual appends"),
			&cli.BoolFlag{Name: "renumber", Usage: "give the events new positions in file order, continuing the store"},
			sourceIDFlag("events"),
			&cli.BoolFlag{Name: "abort", Usage: "undo the unfinished import of this source instead (see docs/ndjson-format.md) and forget it"},
			yesFlag(),
			dryRunFlag(),
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			dry := cmd.Bool("dry-run")
			if dry && cmd.Bool("abort") {
				return usagef("--dry-run checks an import; it does not go with --abort")
			}
			if cmd.Bool("resume") && cmd.Int64("byte-offset") != 0 {
				return usagef("--resume and --byte-offset are two ways to resume: pass one")
			}
			if cmd.Int64("byte-offset") < 0 {
				return usagef("--byte-offset must not be negative")
			}
			s, sourceID, err := e.openForImport(ctx, cmd, "events")
			if err != nil {
				return err
			}
			defer s.Close()
			if cmd.Bool("abort") {
				if err := e.confirm(ctx, cmd, abortQuestion(ctx, s, sourceID)); err != nil {
					return err
				}
				if err := transfer.AbortImport(ctx, s, sourceID); err != nil {
					return err
				}
				return e.printSummary(cmd, (&summary{Command: "import"}).add("aborted", sourceID, "import of "+sourceID+" aborted"), false)
			}
			mode := maintenanceMode(cmd)
			if mode == transfer.MaintenanceAuto && !dry && !cmd.Bool("resume") && cmd.Int64("byte-offset") == 0 {
				d, err := s.Describe(ctx, nil)
				if err != nil {
					return err
				}
				if d.EventCount > 0 {
					if err := e.confirm(ctx, cmd, fmt.Sprintf("replace the %s of %s with the file's", plural(d.EventCount, "event"), eventstore.RedactURL(dbURL(cmd)))); err != nil {
						return err
					}
				}
			}
			in, size, err := e.openInput(cmd, cmd.String("in"))
			if err != nil {
				return err
			}
			defer in.Close()
			start := cmd.Int64("byte-offset")
			if start > 0 && size > 0 {
				if sk, ok := in.(io.Seeker); ok {
					if _, err := sk.Seek(start, io.SeekStart); err != nil {
						return err
					}
				}
			}
			p := e.newProgress(cmd, "imported", "bytes", size)
			res, err := transfer.ImportEvents(ctx, s, in, &transfer.ImportOptions{
				Mode:       mode,
				SourceID:   sourceID,
				ByteOffset: start,
				Resume:     cmd.Bool("resume"),
				Renumber:   cmd.Bool("renumber"),
				DryRun:     dry,
				ProgressFunc: func(ip transfer.ImportProgress) {
					p.update(ip.ByteOffset, ip.ByteOffset, (plural(ip.Events, "event")))
				},
			})
			p.stop()
			if dry {
				if res == nil {
					return err
				}
				if err != nil {
					return fmt.Errorf("%w (dry run: nothing was written; a real import would commit the %s before it)", err, plural(res.Lines, "line"))
				}
				return e.printDryRun(cmd, (&summary{Command: "import"}).
					add("events", res.Events, "").add("lines", res.Lines, "").add("byteOffset", res.ByteOffset, "").
					add("lastPosition", res.LastPosition, "").add("sourceId", sourceID, ""),
					fmt.Sprintf("every line checked: would import %s (%s, %s, last position %s); nothing written",
						plural(res.Events, "event"), plural(res.Lines, "line"), plural(res.ByteOffset, "byte"), commas(res.LastPosition)))
			}
			if err != nil {
				return withHint(err, e.importResumeHint(cmd, res, err))
			}
			if ctx.Err() != nil && isStdio(cmd.String("in")) {
				// Interrupted, then the input ended: the writer of the pipe
				// was interrupted too, so the input may be cut short.
				return withHint(ctx.Err(), e.importResumeHint(cmd, res, nil))
			}
			return e.printSummary(cmd, (&summary{Command: "import"}).
				add("events", res.Events, fmt.Sprintf("%s imported (%s in all for this source)", plural(res.Events, "event"), commas(res.TotalEvents))).
				add("totalEvents", res.TotalEvents, "").
				add("lines", res.Lines, plural(res.Lines, "line")).
				add("byteOffset", res.ByteOffset, fmt.Sprintf("byte offset %d", res.ByteOffset)).
				add("lastPosition", res.LastPosition, "").
				add("done", res.Done, "").
				add("sourceId", sourceID, ""), false)
		},
	}
}

// openForImport opens the store at --db for an import of kind ("events",
// "secrets"), creating and initializing it if needed, and names the
// source in the store's checkpoints (--source-id, or the default).
func (e *env) openForImport(ctx context.Context, cmd *cli.Command, kind string) (*eventstore.Store, string, error) {
	sourceID := cmd.String("source-id")
	if sourceID == "" {
		sourceID = defaultSourceID(kind, cmd.String("in"))
	}
	if cmd.Bool("dry-run") {
		// Checked against the store as it is: nothing is created.
		s, err := e.openExisting(ctx, cmd)
		return s, sourceID, err
	}
	s, err := e.openURL(ctx, dbURL(cmd), true)
	if err != nil {
		return nil, "", err
	}
	if err := s.Init(ctx); err != nil {
		s.Close()
		return nil, "", err
	}
	return s, sourceID, nil
}

// sourceIDFlag is the --source-id flag of imports of kind.
func sourceIDFlag(kind string) cli.Flag {
	return &cli.StringFlag{Name: "source-id", Usage: fmt.Sprintf("the name of this source in the store's checkpoints (default: %s:ABSOLUTE-PATH or %s:stdin)", kind, kind)}
}

// importResumeHint says what an interrupted or failed import (of events or
// of secrets) committed and the command that continues it.
func (e *env) importResumeHint(cmd *cli.Command, res *transfer.ImportResult, err error) string {
	if errors.Is(err, transfer.ErrResumeMismatch) {
		return "nothing was written; esctl imports lists the imports this store recorded"
	}
	var rec *transfer.ImportRecordedError
	if errors.As(err, &rec) {
		if rec.Done {
			return fmt.Sprintf("it is done: nothing was written. If the input grew since, %s imports what was added; to import it from its start again on purpose, forget the record first: %s",
				e.rerun(cmd, []string{"resume", "byte-offset"}, "--resume"), e.rerun(cmd, []string{"resume", "byte-offset", "renumber", "maintenance"}, "--abort"))
		}
		return fmt.Sprintf("nothing was written; continue it with: %s (or forget it with: %s)",
			e.rerun(cmd, []string{"resume", "byte-offset"}, "--resume"), e.rerun(cmd, []string{"resume", "byte-offset", "renumber"}, "--abort"))
	}
	if res == nil {
		return ""
	}
	if res.Lines == 0 {
		again := e.rerun(cmd, []string{"resume", "byte-offset"})
		if isStdio(cmd.String("in")) {
			again += " < SAME-INPUT"
		}
		return "nothing of this source was committed; run it again with: " + again
	}
	again := e.rerun(cmd, []string{"resume", "byte-offset", "yes", "y"}, "--resume")
	if isStdio(cmd.String("in")) {
		again += " < SAME-INPUT"
		if hasFlag(cmd, "byte-offset") {
			again += fmt.Sprintf(" (or, with the input starting at byte %d: %s)", res.ByteOffset,
				e.rerun(cmd, []string{"resume", "byte-offset", "yes", "y"}, "--byte-offset", strconv.FormatInt(res.ByteOffset, 10)))
		}
	}
	return fmt.Sprintf("%s (%s) of this source committed, through byte offset %d; continue with: %s",
		plural(res.Lines, "line"), plural(res.TotalEvents, importNoun(cmd)), res.ByteOffset, again)
}

// abortQuestion is what import --abort asks: what it removes depends on
// the import's mode and state.
func abortQuestion(ctx context.Context, s *eventstore.Store, sourceID string) string {
	cps, err := transfer.Imports(ctx, s)
	if err == nil {
		for _, cp := range cps {
			switch {
			case cp.SourceID != sourceID:
			case cp.Done:
				return fmt.Sprintf("forget the finished import of %s (its %s stay)", sourceID, plural(cp.Events, "event"))
			case cp.Mode == transfer.CheckpointManual:
				return fmt.Sprintf("forget the unfinished import of %s (its %s committed so far stay)", sourceID, plural(cp.Events, "event"))
			default:
				return fmt.Sprintf("abort the unfinished replacing import of %s (its %s are removed and the store is as before it)", sourceID, plural(cp.Events, "event"))
			}
		}
	}
	return fmt.Sprintf("abort the unfinished import of %s", sourceID)
}

// importNoun is what an import command reads: events or secrets.
func importNoun(cmd *cli.Command) string {
	if strings.HasPrefix(cmd.FullName(), "esctl secrets") {
		return "secret"
	}
	return "event"
}

// hasFlag reports whether cmd defines the flag name.
func hasFlag(cmd *cli.Command, name string) bool {
	for _, f := range cmd.Flags {
		if slices.Contains(f.Names(), name) {
			return true
		}
	}
	return false
}

func importsCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "imports",
		Usage: "list the store's import checkpoints (finished and unfinished imports)",
		Action: e.storeAction(func(ctx context.Context, cmd *cli.Command, s *eventstore.Store) error {
			list, err := transfer.Imports(ctx, s)
			if err != nil {
				return err
			}
			if e.jsonOutput(cmd) {
				type item struct {
					SourceID     string `json:"sourceId"`
					Kind         string `json:"kind"`
					Mode         string `json:"mode"`
					ByteOffset   int64  `json:"byteOffset"`
					Lines        int64  `json:"lines"`
					Events       int64  `json:"events"`
					LastPosition int64  `json:"lastPosition"`
					Done         bool   `json:"done"`
					UpdatedAt    string `json:"updatedAt"`
				}
				out := make([]item, 0, len(list))
				for _, c := range list {
					out = append(out, item{c.SourceID, string(c.Kind), string(c.Mode), c.ByteOffset, c.Line, c.Events, c.LastPosition, c.Done,
						time.UnixMilli(c.UpdatedAt).UTC().Format(time.RFC3339Nano)})
				}
				return e.printJSON(out)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "SOURCE\tKIND\tMODE\tBYTE OFFSET\tLINES\tEVENTS\tDONE\tUPDATED")
			for _, c := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%t\t%s\n", c.SourceID, c.Kind, c.Mode, c.ByteOffset, c.Line, c.Events, c.Done,
					time.UnixMilli(c.UpdatedAt).UTC().Format(time.RFC3339))
			}
			return tw.Flush()
		}),
	}
}

// hintError carries a line for the operator after the error itself.
type hintError struct {
	err  error
	hint string
}

func (h *hintError) Error() string { return h.err.Error() }
func (h *hintError) Unwrap() error { return h.err }

func withHint(err error, hint string) error {
	if err == nil || hint == "" {
		return err
	}
	return &hintError{err: err, hint: hint}
}
