package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/esctl/esctl/internal/testdb"
)

// pgbench runs PostgreSQL's pgbench with a one-statement custom script.
type pgbench struct {
	path    string
	version string // "pgbench (PostgreSQL) 15.x"
	script  string // path of the script file
}

// findPGBench resolves the -pgbench setting: "off" means no pgbench,
// "auto" the first pgbench found next to the server binaries (testdb's
// BinDir, following a symlinked pg_ctl to its real directory) or on PATH,
// anything else the path of pgbench. It writes the script to dir.
func findPGBench(ctx context.Context, setting, dir, sql string) (*pgbench, error) {
	var path string
	switch setting {
	case "off":
		return nil, nil
	case "auto":
		path = autoPGBench()
		if path == "" {
			return nil, nil
		}
	default:
		path = setting
	}
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("-pgbench %s: %w", path, err)
	}
	pb := &pgbench{path: path, version: strings.TrimSpace(string(out)), script: filepath.Join(dir, "ceiling.sql")}
	if err := os.WriteFile(pb.script, []byte(sql+";\n"), 0o644); err != nil {
		return nil, err
	}
	return pb, nil
}

func autoPGBench() string {
	var candidates []string
	if dir, err := testdb.BinDir(); err == nil {
		candidates = append(candidates, filepath.Join(dir, "pgbench"))
		if real, err := filepath.EvalSymlinks(filepath.Join(dir, "pg_ctl")); err == nil {
			candidates = append(candidates, filepath.Join(filepath.Dir(real), "pgbench"))
		}
	}
	if p, err := exec.LookPath("pgbench"); err == nil {
		candidates = append(candidates, p)
	}
	for _, p := range candidates {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

var (
	pgbenchTPS    = regexp.MustCompile(`tps = ([0-9.]+) \((?:without initial connection time|excluding connections establishing)\)`)
	pgbenchFailed = regexp.MustCompile(`number of failed transactions: ([0-9]+)`)
	pgbenchNone   = regexp.MustCompile(`number of transactions actually processed: 0\b`)
)

// run runs the script with clients clients (-j up to 2 threads) for d on
// the database at url, and returns pgbench's tps without connection time.
// pgbench's -T includes the time its clients take to connect, which can
// reach seconds for 64 clients on a busy machine, so -T gets one more
// second per 32 clients; a run in which connecting took the whole time
// (no transaction at all) is repeated with twice the time, up to 3 times.
func (p *pgbench) run(ctx context.Context, url string, clients int, d time.Duration) (float64, error) {
	seconds := int(d/time.Second) + clients/32
	var out []byte
	for attempt := 0; ; attempt++ {
		args := []string{
			"-n", "-f", p.script,
			"-c", strconv.Itoa(clients), "-j", strconv.Itoa(min(clients, 2)),
			"-T", strconv.Itoa(seconds),
			url, // pgbench takes a connection URI as the database name
		}
		var err error
		out, err = exec.CommandContext(ctx, p.path, args...).CombinedOutput()
		if err != nil {
			return 0, fmt.Errorf("pgbench %s: %w\n%s", strings.Join(args, " "), err, out)
		}
		if !pgbenchNone.Match(out) {
			break
		}
		if attempt == 2 {
			return 0, fmt.Errorf("pgbench processed no transaction in %ds: connecting %d clients took the whole run; raise -duration\n%s", seconds, clients, out)
		}
		seconds *= 2
	}
	if m := pgbenchFailed.FindSubmatch(out); m != nil && string(m[1]) != "0" {
		return 0, fmt.Errorf("pgbench: %s failed transactions\n%s", m[1], out)
	}
	m := pgbenchTPS.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("pgbench: no tps in its output\n%s", out)
	}
	return strconv.ParseFloat(string(m[1]), 64)
}
