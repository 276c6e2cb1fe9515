package main

// What envd does first as PID 1, before it starts anything: the token leaves its
// initial environment, its process becomes unreadable to the workload, and the
// seccomp filter (seccomp_linux.go) goes on.

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

const (
	tokenVar      = "SANDBAY_ENVD_TOKEN"
	tokenFDVar    = "SANDBAY_ENVD_TOKEN_FD"
	prSetDumpable = 4
)

// harden is envd's first act as PID 1; a step that fails stops envd, since an
// environment weaker than documented is refused rather than run.
func harden() error {
	if err := shedToken(); err != nil {
		return err
	}
	if err := hidePID1(); err != nil {
		return err
	}
	if err := installSeccomp(); err != nil {
		return err
	}
	preloadNoAutomountShim()
	return nil
}

// shedToken re-executes envd with the token moved from its environment into a pipe
// (read once by takeConfig). Unsetting a variable does not erase the initial
// environment block, which /proc/1/environ shows, and gVisor shows it to any
// process whatever PID 1's dumpable flag says.
func shedToken() error {
	token := os.Getenv(tokenVar)
	if token == "" {
		return nil
	}
	var p [2]int
	if err := syscall.Pipe(p[:]); err != nil { // without O_CLOEXEC: the new image keeps p[0]
		return fmt.Errorf("pipe: %w", err)
	}
	if _, err := syscall.Write(p[1], []byte(token)); err != nil {
		return fmt.Errorf("writing the token: %w", err)
	}
	syscall.Close(p[1])
	env := make([]string, 0, len(os.Environ()))
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, tokenVar+"=") {
			env = append(env, kv)
		}
	}
	env = append(env, tokenFDVar+"="+strconv.Itoa(p[0]))
	// By its own path, not /proc/self/exe: the process keeps its name (comm) envd.
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding envd's binary: %w", err)
	}
	err = syscall.Exec(exe, os.Args, env)
	return fmt.Errorf("re-executing envd: %w", err)
}

// tokenFromFD reads the token shedToken left in a pipe, and closes it.
func tokenFromFD(value string) string {
	fd, err := strconv.Atoi(value)
	if value == "" || err != nil {
		return ""
	}
	defer syscall.Close(fd)
	buf := make([]byte, 4096)
	n, err := syscall.Read(fd, buf)
	if err != nil || n <= 0 {
		return ""
	}
	return string(buf[:n])
}

// hidePID1 makes envd's own process non-dumpable, so its memory (which holds the
// token), maps and fds are unreadable to the workload, which shares envd's uid but
// not CAP_SYS_PTRACE. Children get the flag back at exec.
func hidePID1() error {
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, prSetDumpable, 0, 0); e != 0 {
		return fmt.Errorf("prctl(PR_SET_DUMPABLE): %w", e)
	}
	return nil
}
