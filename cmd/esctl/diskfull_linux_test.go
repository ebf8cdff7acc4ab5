package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/esctl/esctl/internal/testdb"
)

// smallDisk mounts a tmpfs of size (mount's syntax: "4m") at a new
// directory, owned by uid:gid, unmounted when the test ends. It skips, saying
// why, where mounting is not allowed (esctl's CI runs as root, and mounts).
func smallDisk(t *testing.T, size string, uid, gid int) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "esctl-full-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := fmt.Sprintf("size=%s,mode=0755,uid=%d,gid=%d", size, uid, gid)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", opts, "tmpfs", dir).CombinedOutput(); err != nil {
		_ = os.Remove(dir)
		t.Skipf("\n*** cannot mount a small tmpfs here (%v: %s): the full-disk test needs root\n", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
		_ = os.Remove(dir)
	})
	return dir
}

// growDisk gives the tmpfs at dir a new size: the operator freed space.
func growDisk(t *testing.T, dir, size string) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "remount,size="+size, dir).CombinedOutput(); err != nil {
		t.Fatalf("remount %s: %v: %s", dir, err, out)
	}
}

// TestDiskFull is issue 27's full-disk case: an import into a store whose
// disk fills stops with a typed error that names the cause and what to do
// (exit 5) and the command that continues it; once space is freed, that
// command finishes the import, nothing lost or doubled. SQLite's file and a
// PostgreSQL tablespace each live on a 4 MiB tmpfs.
func TestDiskFull(t *testing.T) {
	if testing.Short() {
		t.Skip("mounts a tmpfs")
	}
	t.Parallel()
	file, _ := bigFixture(t)
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	fill := func(t *testing.T, dir, url string) {
		r := binary(t, t.TempDir(), nil, nil, "--db", url, "--quiet", "import", "--in", file)
		wantCode(t, r, exitResources, "out of disk space", "free space on the disk")
		again := "esctl --db " + shellQuote(url) + " --quiet import --in " + file
		if !strings.Contains(r.stderr, "continue with: "+again+" --resume") && !strings.Contains(r.stderr, "run it again with: "+again+"\n") {
			t.Fatalf("no command to continue with: %s", r)
		}
		if strings.Contains(r.stderr, "\nesctl: eventstore:") {
			t.Fatalf("the error took more than a line and its hint: %s", r)
		}
		// Reads still work on the full disk, and describe says what is in.
		d := describe(t, url)
		if n := num(t, d, "eventCount"); n >= bigEvents {
			t.Fatalf("%d events in a store on a full disk", n)
		}
		growDisk(t, dir, "512m")
		args := []string{"--db", url, "--quiet", "import", "--in", file}
		if strings.Contains(r.stderr, "--resume") {
			args = append(args, "--resume")
		}
		r = binary(t, t.TempDir(), nil, nil, args...)
		if r.code != 0 {
			t.Fatalf("import --resume after space was freed: %s", r)
		}
		wantBytes(t, "export after the full disk and --resume", []byte(binary(t, t.TempDir(), nil, nil, "--db", url, "export").stdout), want)
	}
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		dir := smallDisk(t, "4m", os.Getuid(), os.Getgid())
		fill(t, dir, "sqlite://"+filepath.Join(dir, "full.db"))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		u := testdb.PostgresURL(t)
		conn, err := pgx.Connect(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var dataDir string
		if err := conn.QueryRow(ctx, `SHOW data_directory`).Scan(&dataDir); err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(dataDir)
		if err != nil {
			t.Skipf("\n*** the PostgreSQL server's data directory %s is not on this machine (%v): no tablespace can be made on a small disk here\n", dataDir, err)
		}
		owner := st.Sys().(*syscall.Stat_t)
		dir := smallDisk(t, "4m", int(owner.Uid), int(owner.Gid))
		name := "esctl_full_" + strings.TrimPrefix(filepath.Base(dir), "esctl-full-")
		name = strings.ToLower(strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
				return r
			}
			return '_'
		}, name))
		for _, q := range []string{
			fmt.Sprintf(`CREATE TABLESPACE %s LOCATION '%s'`, name, dir),
			fmt.Sprintf(`CREATE DATABASE %s TABLESPACE %s`, name, name),
		} {
			if _, err := conn.Exec(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		t.Cleanup(func() {
			conn, err := pgx.Connect(ctx, u)
			if err != nil {
				t.Errorf("drop the tablespace's database: %v", err)
				return
			}
			defer conn.Close(ctx)
			for _, q := range []string{
				fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, name),
				fmt.Sprintf(`DROP TABLESPACE IF EXISTS %s`, name),
			} {
				if _, err := conn.Exec(ctx, q); err != nil {
					t.Errorf("%s: %v", q, err)
				}
			}
		})
		fill(t, dir, testdb.WithDatabase(u, name))
	})
}
