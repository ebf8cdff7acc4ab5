package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestVerifyBackup: verify --in checks a backup with no store at all (none
// is opened or created), and fails (exit 3) on a damaged one.
func TestVerifyBackup(t *testing.T) {
	t.Parallel()
	src := sqliteURL(t, "src.db")
	seed(t, src, 30, 3, 2)
	dir := t.TempDir()
	bk := filepath.Join(dir, "s.bk")
	mustEsctl(t, "", "--db", src, "backup", "--out", bk)
	r := binary(t, dir, nil, nil, "verify", "--in", bk)
	require.Equal(t, 0, r.code, r.String())
	require.Contains(t, r.stdout, "s.bk: sound (33 events, 2 secrets, 0 snapshots, last position 33)")
	_, err := os.Stat(filepath.Join(dir, "esctl.db"))
	require.True(t, os.IsNotExist(err), "verify --in opened the default store")

	b, err := os.ReadFile(bk)
	require.NoError(t, err)
	b[len(b)/2] ^= 0x40
	bad := writeFile(t, t.TempDir(), "bad.bk", b)
	wantCode(t, esctl(t, "", "verify", "--in", bad), exitBadInput)
	// The sidecar is checked too.
	require.NoError(t, os.WriteFile(bk+".sha256", []byte("0000000000000000000000000000000000000000000000000000000000000000  s.bk\n"), 0o644))
	wantCode(t, esctl(t, "", "verify", "--in", bk), exitBadInput, "sidecar")
}

// TestVerifyStore: verify checks a store's invariants on both engines, and
// names each one that a damaged store breaks (exit 4).
func TestVerifyStore(t *testing.T) {
	t.Parallel()
	eachEngine(t, func(t *testing.T, _, url string) {
		seed(t, url, 40, 4, 3)
		r := mustEsctl(t, "", "--db", url, "verify")
		require.Contains(t, r.stdout, ": consistent (44 events, last position 44, 3 secrets of which 1 deleted, 0 import checkpoints)")
		d := decodeJSON(t, mustEsctl(t, "", "--db", url, "-o", "json", "verify").stdout)
		require.Empty(t, d["store"].(map[string]any)["problems"])

		raw := openRaw(t, url)
		raw.exec(`DELETE FROM events WHERE position = 7`)
		raw.exec(`UPDATE store_state SET secret_count = secret_count + 1`)
		raw.exec(`INSERT INTO events_quarantine (position, aggregate_id, aggregate_version, type, timestamp, payload, reason) VALUES (0, 'ghost', 1, 'T', 1, '{}', 'test')`)
		r = esctl(t, "", "--db", url, "verify")
		wantCode(t, r, exitStoreState, "fails 3 check(s)")
		for _, want := range []string{
			"problem the state row counts 44 events, the events table holds 43",
			"problem positions are not dense from 1 to the last position 44: 43 events from position 1 to 44",
			"problem the state row counts 4 secrets, the secrets table holds 3",
			"note    1 events in events_quarantine",
		} {
			require.Contains(t, r.stdout, want)
		}
	})
}

// TestChecksumsLabelled: verify and restore name each checksum for what it
// covers, in text and in JSON: the file's (the sidecar's, sha256sum -c)
// and the content's (the manifest's). restore -q prints nothing, and a
// count of one is singular. (verify printed the file's sum as "sha256"
// and -o json only the manifest's, both unlabelled; restore -q printed
// its "verified" line.)
func TestChecksumsLabelled(t *testing.T) {
	t.Parallel()
	src := sqliteURL(t, "src.db")
	seed(t, src, 1, 1, 1) // one event, one secret (whose audit event is the second event)
	dir := t.TempDir()
	bk := filepath.Join(dir, "s.bk")
	mustEsctl(t, "", "--db", src, "backup", "--out", bk)
	side, err := os.ReadFile(bk + ".sha256")
	require.NoError(t, err)
	fileSum := strings.Fields(string(side))[0]

	var man struct {
		SHA256        string `json:"sha256"`
		FileSHA256    string `json:"fileSha256"`
		ContentSHA256 string `json:"contentSha256"`
		Sidecar       bool   `json:"sidecar"`
	}
	var out struct {
		Backup json.RawMessage `json:"backup"`
	}
	r := mustEsctl(t, "", "-o", "json", "verify", "--in", bk)
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &out))
	require.NoError(t, json.Unmarshal(out.Backup, &man))
	require.Equal(t, fileSum, man.FileSHA256)
	require.NotEmpty(t, man.ContentSHA256)
	require.NotEqual(t, man.FileSHA256, man.ContentSHA256)
	require.Empty(t, man.SHA256, "an unlabelled sha256 in verify -o json")
	require.True(t, man.Sidecar)

	r = mustEsctl(t, "", "verify", "--in", bk)
	require.Contains(t, r.stdout, "(2 events, 1 secret, 0 snapshots, last position 2)")
	require.Contains(t, r.stdout, "file sha256 "+fileSum+" (matches s.bk.sha256), content sha256 "+man.ContentSHA256+" (matches its manifest)")

	dst := sqliteURL(t, "dst.db")
	r = mustEsctl(t, "", "--db", dst, "restore", "--in", bk)
	require.Contains(t, r.stderr, "verified: 2 events, 1 secret, 0 snapshots; file sha256 "+fileSum)
	require.Contains(t, r.stderr, "2 events, 1 secret, 0 snapshots restored into")
	require.Contains(t, r.stderr, "content sha256 "+man.ContentSHA256)
	var sum map[string]any
	r = mustEsctl(t, "", "--db", sqliteURL(t, "dst2.db"), "-o", "json", "restore", "--in", bk)
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &sum))
	require.Equal(t, fileSum, sum["fileSha256"])
	require.Equal(t, man.ContentSHA256, sum["contentSha256"])
	require.NotContains(t, sum, "sha256")

	r = mustEsctl(t, "", "--db", sqliteURL(t, "dst3.db"), "-q", "restore", "--in", bk)
	require.Empty(t, r.stderr, "restore -q")
	require.Empty(t, r.stdout, "restore -q")
}
