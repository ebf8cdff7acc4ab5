package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v3"
	"golang.org/x/term"
)

// isTerminal reports whether w is a terminal (an *os.File on a tty).
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progressModes are the values of --progress.
var progressModes = []string{"auto", "bar", "plain", "none"}

// plainInterval is how often plain progress prints a line
// (ESCTL_PROGRESS_INTERVAL overrides it, for tests).
const plainInterval = 10 * time.Second

// progress reports a long job on stderr: a bar redrawn in place on a
// terminal, a plain line every plainInterval otherwise, or nothing. It never
// writes to stdout. Safe for concurrent use.
type progress struct {
	mode     string // "bar", "plain" or "none"
	w        io.Writer
	verb     string // "exported", "imported", ...
	unit     string // "events", "secrets", "bytes"
	total    int64  // of unit; 0 when unknown
	start    time.Time
	interval time.Duration

	mu      sync.Mutex
	last    time.Time
	drawn   bool // a bar line is on screen
	dumb    bool // TERM=dumb: no escape codes
	width   int  // the longest bar line drawn
	n       int64
	bytes   int64
	detail  string
	stopped bool
}

// newProgress starts a progress report for verb (past tense) counting unit,
// out of total (0: unknown).
func (e *env) newProgress(cmd *cli.Command, verb, unit string, total int64) *progress {
	p := &progress{mode: e.progressMode(cmd), w: e.stderr, verb: verb, unit: unit, total: total, start: time.Now(), interval: plainInterval, dumb: dumbTerminal()}
	if d, err := time.ParseDuration(os.Getenv("ESCTL_PROGRESS_INTERVAL")); err == nil && d > 0 {
		p.interval = d
	}
	p.last = p.start
	return p
}

// progressMode resolves --progress: auto is a bar when stderr is a terminal,
// plain lines otherwise; --quiet is none.
func (e *env) progressMode(cmd *cli.Command) string {
	root := cmd.Root()
	if root.Bool("quiet") {
		return "none"
	}
	mode := root.String("progress")
	if mode == "auto" {
		mode = "plain"
		if isTerminal(e.stderr) && !e.jsonOutput(cmd) && !dumbTerminal() {
			mode = "bar"
		}
	}
	return mode
}

// dumbTerminal reports TERM=dumb: a terminal that takes no escape codes
// (Emacs shells, some CI consoles). auto progress is then plain lines, and
// a bar asked for with --progress=bar is redrawn with spaces.
func dumbTerminal() bool { return os.Getenv("TERM") == "dumb" }

// update records the job's state: n of unit done, bytes moved, and a short
// detail (a position, a cursor).
func (p *progress) update(n, bytes int64, detail string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n, p.bytes, p.detail = n, bytes, detail
	if p.stopped {
		return
	}
	now := time.Now()
	switch p.mode {
	case "bar":
		if now.Sub(p.last) < 100*time.Millisecond && p.drawn {
			return
		}
		p.last = now
		p.drawBar(now)
	case "plain":
		if now.Sub(p.last) < p.interval {
			return
		}
		p.last = now
		fmt.Fprintf(p.w, "esctl: %s\n", p.status(now))
	}
}

// status is the one-line state: counts, rate, detail.
func (p *progress) status(now time.Time) string {
	elapsed := now.Sub(p.start)
	var b strings.Builder
	count := func(n int64) string { return plural(n, strings.TrimSuffix(p.unit, "s")) }
	if p.unit == "bytes" {
		count = humanBytes
	}
	fmt.Fprintf(&b, "%s %s", p.verb, count(p.n))
	if p.total > 0 {
		fmt.Fprintf(&b, " of %s (%d%%)", count(p.total), percent(p.n, p.total))
	}
	if p.bytes > 0 && p.unit != "bytes" {
		fmt.Fprintf(&b, ", %s", humanBytes(p.bytes))
	}
	if secs := elapsed.Seconds(); secs > 0 {
		fmt.Fprintf(&b, ", %s/s", count(int64(float64(p.n)/secs)))
	}
	fmt.Fprintf(&b, ", %s", elapsed.Round(100*time.Millisecond))
	if p.detail != "" {
		fmt.Fprintf(&b, ", %s", p.detail)
	}
	return b.String()
}

func (p *progress) drawBar(now time.Time) {
	line := p.barLine(now, terminalWidth(p.w))
	// \r, the line, then clear to the end of the line (with spaces over
	// the rest of the previous line on a dumb terminal).
	if p.dumb {
		fmt.Fprintf(p.w, "\r%s%s", line, strings.Repeat(" ", max(0, p.width-len(line))))
	} else {
		fmt.Fprintf(p.w, "\r%s\x1b[K", line)
	}
	p.width = max(p.width, len(line))
	p.drawn = true
}

// barLine is the bar's line for a terminal width columns wide, one column
// kept free (a line as wide as the terminal wraps on some): the bar, what
// is done, then bytes, rate, ETA and detail while they fit; the bar
// narrows, then the least useful parts go.
func (p *progress) barLine(now time.Time, width int) string {
	limit := max(width-1, 1)
	elapsed := now.Sub(p.start)
	count := func(n int64) string { return plural(n, strings.TrimSuffix(p.unit, "s")) }
	if p.unit == "bytes" {
		count = humanBytes
	}
	head := p.verb + " " + count(p.n)
	if p.total > 0 {
		done := commas(p.n) // "12,345 of 100,000 events"
		if p.unit == "bytes" {
			done = humanBytes(p.n)
		}
		head = fmt.Sprintf("%s %s of %s (%d%%)", p.verb, done, count(p.total), percent(p.n, p.total))
	}
	// The optional parts, most useful first.
	var parts []string
	if p.total > 0 && p.n > 0 && p.n < p.total && elapsed > 0 {
		rate := float64(p.n) / elapsed.Seconds()
		eta := time.Duration(float64(p.total-p.n) / rate * float64(time.Second))
		parts = append(parts, "ETA "+eta.Round(time.Second).String())
	} else {
		parts = append(parts, elapsed.Round(100*time.Millisecond).String())
	}
	if secs := elapsed.Seconds(); secs > 0 {
		rate := int64(float64(p.n) / secs)
		if p.unit == "bytes" {
			parts = append(parts, humanBytes(rate)+"/s")
		} else {
			parts = append(parts, commas(rate)+"/s")
		}
	}
	if p.bytes > 0 && p.unit != "bytes" {
		parts = append(parts, humanBytes(p.bytes))
	}
	if p.detail != "" {
		parts = append(parts, p.detail)
	}
	text := head
	for _, part := range parts {
		if len(text)+2+len(part) > limit {
			break
		}
		text += ", " + part
	}
	if len(text) > limit {
		return string([]rune(text)[:limit])
	}
	// The bar takes what is left, up to 24 columns; under 8 it is left out.
	if p.total > 0 {
		if w := min(24, limit-len(text)-3); w >= 8 {
			filled := int(int64(w) * min(p.n, p.total) / p.total)
			text = "[" + strings.Repeat("=", filled) + strings.Repeat(" ", w-filled) + "] " + text
		}
	}
	return text
}

// terminalWidth is the width of the terminal w writes to: its size, else
// $COLUMNS, else 80.
func terminalWidth(w io.Writer) int {
	if f, ok := w.(*os.File); ok {
		if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 0 {
			return cols
		}
	}
	if n, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && n > 0 {
		return n
	}
	return 80
}

// stop ends the report, removing the bar from the screen; the caller then
// prints the summary.
func (p *progress) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	p.stopped = true
	switch {
	case p.drawn && p.dumb:
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", p.width))
	case p.drawn:
		fmt.Fprint(p.w, "\r\x1b[K")
	}
}

func percent(n, total int64) int64 {
	if total <= 0 {
		return 0
	}
	return min(100, n*100/total)
}

// commas formats n with thousands separators.
func commas(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// plural is n with thousands separators and noun, in the plural unless n is
// 1: "1 event", "2,000 events", "0 parked events".
func plural(n int64, noun string) string {
	if n == 1 || n == -1 {
		return commas(n) + " " + noun
	}
	return commas(n) + " " + noun + "s"
}

// humanBytes formats a byte count in binary units.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// summary is a command's final report: one line on stderr, or, with -o
// json, one JSON object (on stdout when stdout is not carrying the
// command's data, else on stderr). --quiet suppresses it.
type summary struct {
	Command string `json:"command"`
	// Fields in order, for the text line and the JSON object.
	fields []summaryField
}

type summaryField struct {
	key  string // JSON key
	text string // text form ("" when only in JSON)
	val  any
}

func (s *summary) add(key string, val any, text string) *summary {
	s.fields = append(s.fields, summaryField{key: key, val: val, text: text})
	return s
}

// print writes the summary. dataOnStdout: the command's data went to stdout.
func (e *env) printSummary(cmd *cli.Command, s *summary, dataOnStdout bool) error {
	if cmd.Root().Bool("quiet") {
		return nil
	}
	if e.jsonOutput(cmd) {
		obj := make(map[string]any, len(s.fields)+1)
		obj["command"] = s.Command
		for _, f := range s.fields {
			obj[f.key] = f.val
		}
		w := e.stdout
		if dataOnStdout {
			w = e.stderr
		}
		b, err := json.Marshal(obj)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	parts := make([]string, 0, len(s.fields))
	for _, f := range s.fields {
		if f.text != "" {
			parts = append(parts, f.text)
		}
	}
	_, err := fmt.Fprintf(e.stderr, "esctl %s: %s\n", s.Command, strings.Join(parts, ", "))
	return err
}

// confirm is the one rule of every command that drops, replaces or
// rewrites existing data (docs/cli.md, "Destructive commands"): on a
// terminal it asks question (default no, and no at end of input); off a
// terminal it refuses with a usage error (exit 2) naming --yes; --yes
// answers yes. An interrupt while it waits is an interrupt, not an answer.
// Callers ask before they write anything, and never skip it: the tests
// run every command that has --yes off a terminal.
func (e *env) confirm(ctx context.Context, cmd *cli.Command, question string) error {
	if cmd.Bool("yes") {
		return nil
	}
	if !isTerminal(e.stdin) {
		return usagef("refusing to %s: stdin is not a terminal, so esctl cannot ask; pass --yes to go ahead", question)
	}
	fmt.Fprintf(e.stderr, "%s? [y/N] ", capitalize(question))
	answer := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(e.stdin).ReadString('\n')
		answer <- line
	}()
	var line string
	select {
	case line = <-answer:
	case <-ctx.Done():
		fmt.Fprintln(e.stderr)
		return ctx.Err()
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return nil
	}
	return &refusedError{question: question}
}

// capitalize upper-cases the first letter of an ASCII question.
func capitalize(s string) string {
	if s != "" && s[0] >= 'a' && s[0] <= 'z' {
		return string(s[0]-'a'+'A') + s[1:]
	}
	return s
}

// overwrite is the check before a command replaces the file at path
// (export --out, secrets export --out, backup --out): a missing file goes
// ahead; an existing one needs --force, then confirm.
func (e *env) overwrite(ctx context.Context, cmd *cli.Command, path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return nil
	}
	if !cmd.Bool("force") {
		return usagef("%s exists: pass --force to overwrite it", path)
	}
	return e.confirm(ctx, cmd, fmt.Sprintf("overwrite %s (%s)", path, humanBytes(st.Size())))
}

// refusedError: the operator answered no.
type refusedError struct{ question string }

func (e *refusedError) Error() string { return "not confirmed: " + e.question }

// yesFlag is the --yes flag of commands that ask for confirmation. Flags
// hold their parsed values, so every command gets its own.
func yesFlag() cli.Flag {
	return &cli.BoolFlag{Name: "yes", Aliases: []string{"y"}, Usage: "do not ask for confirmation (required when stdin is not a terminal)"}
}

// printDryRun prints the summary of a --dry-run: text says what would be
// done.
func (e *env) printDryRun(cmd *cli.Command, s *summary, text string) error {
	return e.printSummary(cmd, s.add("dryRun", true, text+" (dry run)"), false)
}

// dryRunFlag is the --dry-run flag of mutating commands.
func dryRunFlag() cli.Flag {
	return &cli.BoolFlag{Name: "dry-run", Usage: "print what would be done and change nothing"}
}
