//go:build unix

package main

import (
	"fmt"
	"syscall"
)

// raiseNoFile makes sure this process may hold need open files (one socket
// per client plus slack), raising the soft RLIMIT_NOFILE up to the hard
// limit if needed. Go already raises the soft limit at start on Linux; this
// also covers other systems and reports a hard limit that is too low.
func raiseNoFile(need uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("getrlimit: %w", err)
	}
	if uint64(lim.Cur) >= need {
		return nil
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("setrlimit(NOFILE, %d): %w", lim.Max, err)
	}
	if uint64(lim.Cur) < need {
		return fmt.Errorf("RLIMIT_NOFILE hard limit %d is below the %d this run needs (raise it with ulimit -Hn as root, or lower -c)", lim.Max, need)
	}
	return nil
}
