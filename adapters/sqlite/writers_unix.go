//go:build unix

package sqlite

import (
	"context"
	"errors"
	"os"
	"syscall"
	"time"
)

// errLockTimeout: a lock file was not had within its timeout.
var errLockTimeout = errors.New("sqlite: lock file timeout")

// lockFile is a file held with flock(2).
type lockFile struct {
	path string
	mode os.FileMode
	f    *os.File
}

func openLockFile(path string, mode os.FileMode) (*lockFile, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, mode)
	if err != nil {
		return nil, err
	}
	return &lockFile{path: path, mode: mode, f: f}, nil
}

func (l *lockFile) flock(how int) error {
	for {
		err := syscall.Flock(int(l.f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// tryExclusive takes the lock exclusively if no one holds it.
func (l *lockFile) tryExclusive() (bool, error) {
	switch err := l.flock(syscall.LOCK_EX | syscall.LOCK_NB); {
	case err == nil:
		return true, nil
	case errors.Is(err, syscall.EWOULDBLOCK):
		return false, nil
	default:
		return false, err
	}
}

// shared takes the lock shared (waiting only for a momentary exclusive
// holder).
func (l *lockFile) shared() error { return l.flock(syscall.LOCK_SH) }

func (l *lockFile) unlock() { _ = l.flock(syscall.LOCK_UN) }

// exclusive waits for the lock, in the kernel, for at most timeout or
// until ctx ends. A wait given up leaves the blocked flock call to the
// file it was made on: the lock file is opened anew for the next calls, and
// the old one closed (releasing the lock, if it came) once the call
// returns.
func (l *lockFile) exclusive(ctx context.Context, timeout time.Duration) error {
	f := l.f
	done := make(chan error, 1)
	go func() {
		for {
			err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
			if !errors.Is(err, syscall.EINTR) {
				done <- err
				return
			}
		}
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	case <-timer.C:
	}
	if nf, err := os.OpenFile(l.path, os.O_RDWR|os.O_CREATE, l.mode); err == nil {
		l.f = nf
	}
	go func() {
		<-done
		_ = f.Close()
	}()
	if err := ctx.Err(); err != nil {
		return err
	}
	return errLockTimeout
}

func (l *lockFile) close() { _ = l.f.Close() }

// writeLockHolder returns the process that holds SQLite's WAL write lock on
// the database at path (a POSIX lock on byte 120 of PATH-shm, see SQLite's
// os_unix.c), or 0 when none, or when it cannot be learned.
func writeLockHolder(path string) int {
	f, err := os.Open(path + "-shm")
	if err != nil {
		return 0
	}
	defer f.Close()
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0, Start: 120, Len: 1}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_GETLK, &lk); err != nil || lk.Type == syscall.F_UNLCK {
		return 0
	}
	return int(lk.Pid)
}
