//go:build unix

package main

import (
	"os"
	"runtime"
	"syscall"
)

// maxRSS returns ru_maxrss of an exited process, in bytes (Linux reports
// KiB, macOS bytes). See rss.go for why it is only a fallback.
func maxRSS(ps *os.ProcessState) (int64, bool) {
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok || ru == nil {
		return 0, false
	}
	if runtime.GOOS == "darwin" || runtime.GOOS == "ios" {
		return int64(ru.Maxrss), true
	}
	return int64(ru.Maxrss) * 1024, true
}
