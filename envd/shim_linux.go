package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"unsafe"
)

// shimName is built next to envd (scripts/build-envd.sh) from shim/nomount.c.
const shimName = "nomount.so"

// preloadNoAutomountShim makes every process envd starts preload the shim when the
// kernel refuses statx's AT_NO_AUTOMOUNT flag with EINVAL. gVisor release 20221219
// (Debian's runsc) does, in statx and fstatat, and coreutils 9 passes it: without
// the shim `ls` and `stat` fail on every path under runsc. Elsewhere it does nothing.
func preloadNoAutomountShim() {
	if !statxRefusesNoAutomount() {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	shim := filepath.Join(filepath.Dir(exe), shimName)
	if _, err := os.Stat(shim); err != nil {
		fmt.Fprintln(os.Stderr, "envd: this kernel refuses AT_NO_AUTOMOUNT and", shim, "is missing: ls will fail")
		return
	}
	preload := shim
	if prev := os.Getenv("LD_PRELOAD"); prev != "" {
		preload += ":" + prev
	}
	os.Setenv("LD_PRELOAD", preload)
}

func statxRefusesNoAutomount() bool {
	const sysStatx, atFdcwd, atNoAutomount, statxBasicStats = 332, -100, 0x800, 0x7ff
	if runtime.GOARCH != "amd64" {
		return false
	}
	var buf [256]byte
	path := []byte("/\x00")
	fd := atFdcwd
	_, _, e := syscall.Syscall6(sysStatx, uintptr(fd), uintptr(unsafe.Pointer(&path[0])),
		atNoAutomount, statxBasicStats, uintptr(unsafe.Pointer(&buf[0])), 0)
	return e == syscall.EINVAL
}
