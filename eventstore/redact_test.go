package eventstore_test

import (
	"context"
	"strings"
	"testing"

	_ "github.com/esctl/esctl/adapters/postgres" // links the PostgreSQL engine into Open
	"github.com/esctl/esctl/eventstore"
)

// dsnForms writes a password into a database URL or libpq string, as an
// operator would type it: raw, not escaped.
var dsnForms = []func(user, pw string) string{
	func(u, pw string) string { return "postgres://" + u + ":" + pw + "@127.0.0.1:1/db?sslmode=disable" },
	func(u, pw string) string {
		return "postgresql://" + u + "@127.0.0.1:1/db?sslmode=disable&password=" + pw
	},
	func(u, pw string) string {
		return "host=127.0.0.1 port=1 user=" + u + " password='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(pw) + "' dbname=db"
	},
	func(u, pw string) string { return "host=127.0.0.1 port=1 user=" + u + " password=" + pw + " dbname=db" },
	func(u, pw string) string { return "postgres://" + u + ":" + pw + "@127.0.0.1:1/db?password=" + pw },
}

// redactedOutputs is everything the module prints about dsn: RedactURL,
// a message quoting the DSN as given and percent-decoded, and Open's
// error. Open runs with a cancelled context, so it never dials (nor looks
// up a host named by a malformed URL).
func redactedOutputs(dsn string) []string {
	redactMsg := eventstore.RedactFunc(dsn)
	out := []string{
		eventstore.RedactURL(dsn),
		redactMsg("failed to connect to " + dsn + ": refused"),
		redactMsg(`cannot parse "` + strings.ReplaceAll(dsn, "%40", "@") + `"`),
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if s, err := eventstore.Open(ctx, dsn, nil); err != nil {
		out = append(out, err.Error())
	} else {
		_ = s.Close()
	}
	return out
}

// FuzzRedact: for any DSN (URL or key=value form, parsable or not) that
// holds a password, no output of RedactURL, of a RedactFunc made from it or
// of Open's error contains the password. Passwords shorter than 4 bytes are
// masked only where the patterns find them, and a password that the
// output contains even when the DSN holds another one in its place (it is
// part of the fixed text) proves nothing: both are skipped.
func FuzzRedact(f *testing.F) {
	for _, seed := range []struct {
		user, pw string
		form     uint8
	}{
		{"u", "sec ret", 0},
		{"app", "s3cretPassw0rd", 0},
		{"app", "p@ss:w@rd", 0},
		{"app", "p%zzsecret", 0},
		{"app", "pa/ss?wo#rd", 0},
		{"app", "it's a 'secret'", 2},
		{"app", `back\slash\'quote`, 2},
		{"app", "secretpw", 3},
		{"app", "secret pw'=1", 1},
		{"app", "Zoë-geheim", 4},
		{"", "[::1]secret", 0},
		{"app", "\x00\xffsecret", 2},
	} {
		f.Add(seed.user, seed.pw, seed.form)
	}
	f.Fuzz(func(t *testing.T, user, pw string, form uint8) {
		if len(pw) < 4 || strings.ContainsAny(user, ":@/?#&= \t\n'\\") {
			t.Skip() // a user name that moves the password is another DSN than intended
		}
		form %= uint8(len(dsnForms))
		if form == 3 && strings.ContainsAny(pw, " \t\n\v\f\r'\\") {
			t.Skip() // not one unquoted libpq value: libpq reads only its first word
		}
		if (form == 1 || form == 4) && strings.ContainsAny(pw, "&#") {
			t.Skip() // not one query value: & starts the next parameter, # the fragment
		}
		build := dsnForms[form]
		// The control holds a plain password of the same length: an output
		// that holds pw even then (pw is part of the fixed text, or of the
		// user name as printed) proves nothing.
		control := strings.Join(redactedOutputs(build(user, strings.Repeat("Q", len(pw)))), "\n")
		if strings.Contains(control, pw) || strings.Contains(user, pw) || strings.Contains(pw, "Q") {
			t.Skip()
		}
		dsn := build(user, pw)
		for _, out := range redactedOutputs(dsn) {
			if strings.Contains(out, pw) {
				t.Fatalf("DSN %q: the password %q is in the output %q", dsn, pw, out)
			}
		}
	})
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"postgres://u:pw@h/db":                     "postgres://u:xxxxx@h/db",
		"postgres://u@h/db?password=pw&sslmode=x":  "postgres://u@h/db?password=xxxxx&sslmode=x",
		"postgres://u:sec ret@h/x":                 "postgres://u:xxxxx@h/x",
		"host=h password='sec ret' dbname=d":       "host=h password=xxxxx dbname=d",
		"host=h password = pw dbname=d":            "host=h password = xxxxx dbname=d",
		"sqlite:///var/lib/app.db":                 "sqlite:///var/lib/app.db",
		"postgres://u@h/db":                        "postgres://u@h/db",
		"postgres://u:p@ss@h/db?application_name=": "postgres://u:xxxxx@h/db?application_name=",
	} {
		if got := eventstore.RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
