package main

import (
	"slices"
	"strings"

	"github.com/urfave/cli/v3"
)

// rerun is the exact command line that continues an interrupted or failed
// job: "esctl" and the arguments esctl was given (passwords masked, each
// quoted for a POSIX shell where needed), without the flags named in drop
// (and their values), with add appended. A job that resumes by itself
// (backup, restore, copy, import --resume) is continued by the same
// command: rerun(cmd, nil).
func (e *env) rerun(cmd *cli.Command, drop []string, add ...string) string {
	var out []string
	args := e.args
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			out = append(out, args[i:]...)
			break
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || a == "-" || !slices.Contains(drop, name) {
			out = append(out, a)
			continue
		}
		if !hasValue && !isBoolFlag(cmd, name) && i+1 < len(args) {
			i++ // the flag's value
		}
	}
	out = append(out, add...)
	quoted := make([]string, 0, len(out)+1)
	quoted = append(quoted, "esctl")
	for _, a := range out {
		quoted = append(quoted, shellQuote(e.redact(a)))
	}
	return strings.Join(quoted, " ")
}

// isBoolFlag reports whether name is a boolean flag of cmd or of a command
// above it (a flag that takes no value).
func isBoolFlag(cmd *cli.Command, name string) bool {
	for _, c := range cmd.Lineage() {
		for _, f := range c.Flags {
			if slices.Contains(f.Names(), name) {
				_, ok := f.(*cli.BoolFlag)
				return ok
			}
		}
	}
	return false
}

// shellQuote quotes s for a POSIX shell unless it is made only of
// characters that need no quoting.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@,+%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
