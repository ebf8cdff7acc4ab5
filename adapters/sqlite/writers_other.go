//go:build !unix

package sqlite

import (
	"context"
	"errors"
	"os"
	"time"
)

// Without flock(2), writers in several processes share SQLite's lock through
// its busy handler alone.

var errLockTimeout = errors.New("sqlite: lock file timeout")

type lockFile struct{}

func openLockFile(string, os.FileMode) (*lockFile, error) {
	return nil, errors.New("sqlite: no lock files on this system")
}

func (*lockFile) tryExclusive() (bool, error)                    { return false, errors.ErrUnsupported }
func (*lockFile) shared() error                                  { return errors.ErrUnsupported }
func (*lockFile) unlock()                                        {}
func (*lockFile) exclusive(context.Context, time.Duration) error { return errors.ErrUnsupported }
func (*lockFile) close()                                         {}
func writeLockHolder(string) int                                 { return 0 }
