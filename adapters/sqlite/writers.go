package sqlite

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/esctl/esctl/estype"
	"github.com/esctl/esctl/internal/redact"
)

// Writers in several processes share SQLite's write lock through a queue of
// their own: SQLite's busy handler polls with sleeps growing to 100 ms,
// while a process whose group commit takes the lock again microseconds
// after releasing it can keep it for seconds; a waiting process then loses
// every race and its append times out (docs/architecture.md, "Writers in
// several processes").
//
// The queue is two lock files next to the database, held with flock(2)
// (released by the kernel when a process dies):
//
//   - PATH-esctl-writers: held exclusively by the process whose writer is in
//     a write transaction. A writer of another process blocks on it in the
//     kernel, woken at once when it is released; no polling.
//   - PATH-esctl-waiting: held shared by every writer blocked on the first.
//
// After each commit the holder checks the second file; when a writer
// waits there, it gives the lock up for handoffPause before taking it again,
// long enough for a woken waiter to take it: each waiting process gets a
// turn instead of the holder keeping the lock. A lone process pays two
// non-blocking flock calls per transaction. SQLite's own lock (BEGIN
// IMMEDIATE, busy_timeout) stays the protocol that counts, and guards
// against writers that do not use the queue (another tool, an older esctl).

// handoffPause is how long a holder that saw a waiting writer stays out
// after its commit.
const handoffPause = 200 * time.Microsecond

// writerQueue is a dialect's side of the queue. Its methods are called with
// the dialect's wmu held.
type writerQueue struct {
	once    sync.Once
	lock    *lockFile // PATH-esctl-writers; nil when the files cannot be had
	waiting *lockFile // PATH-esctl-waiting
	held    bool
}

// open opens the queue's files for the database at path ("" or a
// read-only directory: no queue, SQLite's busy handler alone).
func (q *writerQueue) open(path string) {
	q.once.Do(func() {
		if path == "" {
			return
		}
		mode := os.FileMode(0o644)
		if st, err := os.Stat(path); err == nil {
			mode = st.Mode().Perm()
		}
		l, err := openLockFile(path+"-esctl-writers", mode)
		if err != nil {
			return
		}
		w, err := openLockFile(path+"-esctl-waiting", mode)
		if err != nil {
			l.close()
			return
		}
		q.lock, q.waiting = l, w
	})
}

// close closes the queue's files (releasing its locks).
func (q *writerQueue) close() {
	if q.lock != nil {
		q.lock.close()
		q.waiting.close()
		q.lock, q.waiting = nil, nil
	}
}

// acquire takes the queue's lock, waiting in line for at most timeout. A
// writer that takes it is the only one of the processes using the queue
// that can be in a write transaction; the SQLite lock it then asks for is
// free but for other writers. Without a queue it does nothing.
func (q *writerQueue) acquire(ctx context.Context, path string, timeout time.Duration) error {
	if q.lock == nil || q.held {
		return nil
	}
	if ok, err := q.lock.tryExclusive(); err != nil || ok {
		q.held = ok
		return nil // on an error, SQLite's lock alone serializes
	}
	if err := q.waiting.shared(); err != nil {
		return nil
	}
	defer q.waiting.unlock()
	err := q.lock.exclusive(ctx, timeout)
	switch {
	case err == nil:
		q.held = true
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case err == errLockTimeout:
		return fmt.Errorf("%w: the store's write lock was held for %s by %s: it stays held while a transaction runs; stop or wait for that writer",
			estype.ErrTimeout, timeout, holderOf(path))
	}
	return nil // the queue failed: SQLite's lock alone serializes
}

// release gives the queue's lock back after a transaction ended. If
// another process's writer waits, it stays out for handoffPause so that
// the waiter gets the lock first.
func (q *writerQueue) release() {
	if !q.held {
		return
	}
	q.held = false
	q.lock.unlock()
	if free, err := q.waiting.tryExclusive(); err == nil && free {
		q.waiting.unlock()
		return
	}
	time.Sleep(handoffPause)
}

// holderOf names the process that holds SQLite's write lock on the database
// at path, as far as the system tells: "process 123 (esctl import ...)", or
// "another writer" when it does not.
func holderOf(path string) string {
	pid := writeLockHolder(path)
	if pid <= 0 {
		return "another writer (its process could not be learned)"
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(cmdline) == 0 {
		return fmt.Sprintf("process %d", pid)
	}
	cmd := redact.New().Redact(strings.TrimSpace(strings.ReplaceAll(string(cmdline), "\x00", " ")))
	if len(cmd) > 120 {
		cmd = cmd[:120] + "..."
	}
	return fmt.Sprintf("process %d (%s)", pid, cmd)
}
