package main

import (
	"context"
	"strings"
	"testing"
)

// FuzzRedactedOutput: for a database URL or libpq string holding a
// password, nothing esctl prints (stdout or stderr) contains the password.
// The URL forms point at 127.0.0.1 port 1 (refused at once), and their
// passwords hold none of / ? # @ or spaces, which would move the host part
// and could make the driver look a name up; those cases, and Open's errors
// for any string, are FuzzRedact's in package eventstore, which never
// dials.
func FuzzRedactedOutput(f *testing.F) {
	for _, seed := range []struct {
		pw   string
		form uint8
	}{
		{"s3cretPassw0rd", 0}, {"p%zzsecret", 0}, {"pa:ss:word", 0}, {"Zoë-geheim", 1},
		{"it's a 'secret'", 2}, {`back\slash`, 2}, {"secretpw", 3}, {"secretpw", 4},
	} {
		f.Add(seed.pw, seed.form)
	}
	forms := []func(pw string) []string{
		func(pw string) []string {
			return []string{"--db", "postgres://app:" + pw + "@127.0.0.1:1/db?connect_timeout=2", "describe"}
		},
		func(pw string) []string {
			return []string{"--db", "postgresql://app@127.0.0.1:1/db?connect_timeout=2&password=" + pw, "-o", "json", "init"}
		},
		func(pw string) []string {
			return []string{"--db", "host=127.0.0.1 port=1 password='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(pw) + "' dbname=db", "describe"}
		},
		func(pw string) []string {
			return []string{"--db", "host=127.0.0.1 port=1 password=" + pw + " dbname=db", "migrate", "status"}
		},
		func(pw string) []string {
			return []string{"copy", "--from", "postgres://app:" + pw + "@127.0.0.1:1/db?connect_timeout=2", "--to", "postgres://b:" + pw + "@127.0.0.1:1/x?connect_timeout=2"}
		},
	}
	f.Fuzz(func(t *testing.T, pw string, form uint8) {
		form %= uint8(len(forms))
		if len(pw) < 4 || strings.ContainsAny(pw, "\x00") {
			t.Skip()
		}
		if (form == 0 || form == 1 || form == 4) && strings.ContainsAny(pw, "/?#@&% \t\n\r\v\f") {
			t.Skip() // would move the URL's host part: FuzzRedact's domain
		}
		if form == 3 && strings.ContainsAny(pw, " \t\n\r\v\f'\\") {
			t.Skip() // not one unquoted libpq value
		}
		out := func(pw string) string {
			var stdout, stderr strings.Builder
			run(context.Background(), append([]string{"esctl"}, forms[form](pw)...), strings.NewReader(""), &stdout, &stderr)
			return stdout.String() + stderr.String()
		}
		if strings.Contains(out(strings.Repeat("Q", len(pw))), pw) {
			t.Skip() // the password is part of esctl's fixed text
		}
		if got := out(pw); strings.Contains(got, pw) {
			t.Fatalf("esctl %v printed the password:\n%s", forms[form](pw), got)
		}
	})
}
