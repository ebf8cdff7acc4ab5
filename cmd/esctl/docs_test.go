package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v3"
)

// docSection is the text of docs/cli.md under one heading, up to the next
// heading.
type docSection struct {
	heading string
	text    string
}

func readCLIDoc(t *testing.T) []docSection {
	t.Helper()
	b, err := os.ReadFile("../../docs/cli.md")
	if err != nil {
		t.Fatal(err)
	}
	var secs []docSection
	inCode := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "```") {
			inCode = !inCode
		}
		if !inCode && strings.HasPrefix(line, "#") {
			secs = append(secs, docSection{heading: strings.TrimSpace(strings.TrimLeft(line, "#"))})
			continue
		}
		if len(secs) > 0 {
			secs[len(secs)-1].text += line + "\n"
		}
	}
	return secs
}

func section(t *testing.T, secs []docSection, heading string) string {
	t.Helper()
	for _, s := range secs {
		if s.heading == heading {
			return s.text
		}
	}
	t.Errorf("docs/cli.md has no heading %q", heading)
	return ""
}

// helpFlags returns the flag names (--name and -x) of the OPTIONS (or
// GLOBAL OPTIONS) block of a --help text, without help itself, and the
// environment variables the help names.
func helpFlags(help, block string) (flags, envs []string) {
	_, after, ok := strings.Cut(help, "\n"+block+":\n")
	if !ok {
		return nil, nil
	}
	flagRe := regexp.MustCompile(`(?:^|, )(--?[a-z][a-z0-9-]*)`)
	envRe := regexp.MustCompile(`\$([A-Z][A-Z0-9_]+)`)
	for _, line := range strings.Split(after, "\n") {
		if strings.TrimSpace(line) == "" || !strings.HasPrefix(line, "   ") {
			break
		}
		spec := strings.TrimSpace(line)
		if i := strings.Index(spec, "  "); i > 0 {
			spec = spec[:i] // the names, before the usage text
		}
		for _, m := range flagRe.FindAllStringSubmatch(spec, -1) {
			if m[1] != "--help" && m[1] != "-h" {
				flags = append(flags, m[1])
			}
		}
		for _, m := range envRe.FindAllStringSubmatch(line, -1) {
			envs = append(envs, m[1])
		}
	}
	return flags, envs
}

// mentions reports whether text names flag (not as the prefix of a longer
// one: --in is not --in-place).
func mentions(text, flag string) bool {
	return regexp.MustCompile(`(^|[^-\w])` + regexp.QuoteMeta(flag) + `([^-\w]|$)`).MatchString(text)
}

// visibleCommands returns the full names ("esctl migrate up") of every
// command a user can see, as the app is set up to run (completion
// included; help excluded).
func visibleCommands(t *testing.T) (names []string, all map[string]bool) {
	t.Helper()
	var out, errOut bytes.Buffer
	app := newApp(&env{stdin: strings.NewReader(""), stdout: &out, stderr: &errOut})
	if err := app.Run(context.Background(), []string{"esctl", "--help"}); err != nil {
		t.Fatal(err)
	}
	all = map[string]bool{}
	var walk func(prefix string, cmds []*cli.Command, hidden bool)
	walk = func(prefix string, cmds []*cli.Command, hidden bool) {
		for _, c := range cmds {
			if c.Name == "help" {
				continue
			}
			name := prefix + " " + c.Name
			all[name] = true
			if !c.Hidden && !hidden {
				names = append(names, name)
			}
			walk(name, c.Commands, hidden || c.Hidden)
		}
	}
	walk("esctl", app.Commands, false)
	return names, all
}

// TestDocsMatchHelp keeps docs/cli.md in step with --help: every visible
// command has a heading with an example, every flag its --help lists is
// named under that heading, every global flag and environment variable is
// documented, every exit code is in the table, and every command the page
// documents exists.
func TestDocsMatchHelp(t *testing.T) {
	t.Parallel()
	secs := readCLIDoc(t)
	names, all := visibleCommands(t)
	if len(names) < 30 {
		t.Fatalf("only %d commands found: %v", len(names), names)
	}

	root := mustEsctl(t, "", "--help").stdout
	globals, envs := helpFlags(root, "GLOBAL OPTIONS")
	if len(globals) < 6 || len(envs) < 3 {
		t.Fatalf("global flags %v and variables %v from:\n%s", globals, envs, root)
	}
	gsec := section(t, secs, "Global flags")
	for _, f := range globals {
		if !mentions(gsec, f) {
			t.Errorf("docs/cli.md, Global flags: %s is not documented", f)
		}
	}
	esec := section(t, secs, "Environment")
	for _, v := range append(envs, "ESCTL_PROGRESS_INTERVAL") {
		if !strings.Contains(esec, "`"+v+"`") {
			t.Errorf("docs/cli.md, Environment: $%s is not documented", v)
		}
	}
	xsec := section(t, secs, "Exit codes")
	for _, code := range []int{exitOK, exitFailure, exitUsage, exitBadInput, exitStoreState, exitInterrupted} {
		if !strings.Contains(xsec, fmt.Sprintf("\n| %d |", code)) {
			t.Errorf("docs/cli.md, Exit codes: %d is not in the table", code)
		}
	}

	for _, name := range names {
		path := strings.Fields(name)[1:]
		if len(path) == 2 && path[0] == "completion" {
			// The shells are listed in the completion section.
			if !strings.Contains(section(t, secs, "esctl completion"), "`"+name+"`") {
				t.Errorf("docs/cli.md, esctl completion: %s is not named", name)
			}
			continue
		}
		text := section(t, secs, name)
		if text == "" {
			continue
		}
		help := mustEsctl(t, "", append(path, "--help")...).stdout
		flags, _ := helpFlags(help, "OPTIONS")
		for _, f := range flags {
			if !mentions(text, f) {
				t.Errorf("docs/cli.md, %s: %s (from its --help) is not documented", name, f)
			}
		}
		// An example: a command line in a code block that runs it.
		example := false
		inCode := false
		for _, line := range strings.Split(text, "\n") {
			if strings.HasPrefix(line, "```") {
				inCode = !inCode
				continue
			}
			words := strings.Fields(line)
			runsEsctl := slices.ContainsFunc(words, func(w string) bool { return strings.HasSuffix(w, "esctl") })
			if inCode && runsEsctl && containsRun(words, path) {
				example = true
			}
		}
		if !example {
			t.Errorf("docs/cli.md, %s: no example", name)
		}
	}

	// Every command the page documents exists.
	for _, s := range secs {
		if strings.HasPrefix(s.heading, "esctl ") && !all[s.heading] {
			t.Errorf("docs/cli.md documents %q, which esctl does not have", s.heading)
		}
	}
}

// containsRun reports whether words holds path as consecutive words.
func containsRun(words, path []string) bool {
	for i := 0; i+len(path) <= len(words); i++ {
		if slices.Equal(words[i:i+len(path)], path) {
			return true
		}
	}
	return false
}

// TestHelpFlagsParser checks the parser the docs test relies on.
func TestHelpFlagsParser(t *testing.T) {
	t.Parallel()
	help := mustEsctl(t, "", "import", "--help").stdout
	flags, _ := helpFlags(help, "OPTIONS")
	want := []string{"--in", "--byte-offset", "--resume", "--maintenance", "--renumber", "--source-id", "--abort", "--yes", "-y", "--dry-run"}
	if !slices.Equal(flags, want) {
		t.Fatalf("import flags %v, want %v", flags, want)
	}
	globals, envs := helpFlags(mustEsctl(t, "", "--help").stdout, "GLOBAL OPTIONS")
	for _, f := range []string{"--db", "--output", "-o", "--progress", "--quiet", "-q", "--log-level", "--version"} {
		if !slices.Contains(globals, f) {
			t.Fatalf("global flags %v lack %s", globals, f)
		}
	}
	if !slices.Equal(envs, []string{"ESCTL_DB", "DATABASE_URL", "ESCTL_READ_DB", "ESCTL_PROGRESS", "ESCTL_LOG_LEVEL"}) {
		t.Fatalf("environment variables %v", envs)
	}
	if mentions("use --in-place", "--in") || !mentions("`--in FILE`", "--in") {
		t.Fatal("mentions")
	}
}
