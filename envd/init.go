package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The reaper owns every wait in envd: as PID 1 it also collects orphans, and two
// waiters for one pid would race (so nothing calls exec.Cmd.Wait or Process.Wait).
type reaperState struct {
	mu      sync.Mutex
	waiters map[int]chan syscall.WaitStatus
	stash   map[int]stashedStatus // reaped before anyone registered the pid
	once    sync.Once
}

type stashedStatus struct {
	status syscall.WaitStatus
	at     time.Time
}

// A stashed status nobody claims this long is an orphan's.
const stashTTL = 30 * time.Second
const maxStash = 1024

var reaper = &reaperState{
	waiters: map[int]chan syscall.WaitStatus{},
	stash:   map[int]stashedStatus{},
}

func startReaper() {
	reaper.once.Do(func() {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGCHLD)
		go func() {
			for {
				reaper.reapAll()
				<-ch
			}
		}()
	})
}

func (r *reaperState) reapAll() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		r.dispatch(pid, ws)
	}
}

func (r *reaperState) dispatch(pid int, ws syscall.WaitStatus) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ch, ok := r.waiters[pid]; ok {
		delete(r.waiters, pid)
		ch <- ws
		return
	}
	now := time.Now()
	for p, s := range r.stash {
		if now.Sub(s.at) > stashTTL || len(r.stash) >= maxStash {
			delete(r.stash, p)
		}
	}
	r.stash[pid] = stashedStatus{ws, now}
}

// watch registers interest in pid's exit (a process started some other way than
// spawn); the channel receives its status once, even if it was already reaped.
func watch(pid int) <-chan syscall.WaitStatus {
	ch := make(chan syscall.WaitStatus, 1)
	reaper.mu.Lock()
	defer reaper.mu.Unlock()
	if s, ok := reaper.stash[pid]; ok {
		delete(reaper.stash, pid)
		ch <- s.status
		return ch
	}
	reaper.waiters[pid] = ch
	return ch
}

// spawn starts argv with syscall.ForkExec and registers it with the reaper in the
// same critical section, so its status cannot be taken for an orphan's (and a stale
// orphan status of a reused pid is not taken for its).
func spawn(path string, argv []string, attr *syscall.ProcAttr) (int, <-chan syscall.WaitStatus, error) {
	reaper.mu.Lock()
	defer reaper.mu.Unlock()
	pid, err := syscall.ForkExec(path, argv, attr)
	if err != nil {
		return 0, nil, err
	}
	delete(reaper.stash, pid)
	ch := make(chan syscall.WaitStatus, 1)
	reaper.waiters[pid] = ch
	return pid, ch, nil
}

// exitCode is a status as a shell reports it: the code, or 128+signal.
func exitCode(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

var errNotFound = errors.New("executable file not found in $PATH")

// lookPath resolves file through pathEnv like a shell (and Docker) does; a name
// with a slash is used as it is, relative to the child's working directory.
func lookPath(file, pathEnv string) (string, error) {
	if strings.Contains(file, "/") {
		return file, nil
	}
	if file == "" {
		return "", &lookError{file}
	}
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, file)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", &lookError{file}
}

type lookError struct{ name string }

func (e *lookError) Error() string { return fmt.Sprintf("exec: %q: %v", e.name, errNotFound) }

func envPath(env []string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if strings.HasPrefix(env[i], "PATH=") {
			return env[i][5:]
		}
	}
	return defaultPath
}

// Signals forwarded to the workload.
var forwarded = []os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP,
	syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2}

// Signals whose default Go handling would end or crash PID 1 when sent from inside
// the container (kill -ABRT 1, kill -SEGV 1): caught and dropped. A fault of envd's
// own still panics. Handlers, unlike SIG_IGN, are not inherited across exec, so
// children keep the defaults.
var dropped = []os.Signal{syscall.SIGILL, syscall.SIGTRAP, syscall.SIGABRT,
	syscall.SIGBUS, syscall.SIGFPE, syscall.SIGSEGV, syscall.SIGSTKFLT, syscall.SIGSYS,
	syscall.SIGPIPE}

// initMain is PID 1: serve the API, run the workload (if any) and exit with its
// status, forwarding the stop signals to it.
func initMain(args []string) int {
	// First, so nothing envd starts escapes it; an environment weaker than
	// documented is refused rather than run.
	if err := harden(); err != nil {
		fmt.Fprintln(os.Stderr, "envd:", err)
		return 1
	}
	tune()
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, forwarded...)
	drop := make(chan os.Signal, 1)
	signal.Notify(drop, dropped...)
	go func() {
		for range drop {
		}
	}()
	startReaper()
	hold := os.Getenv(holdVar) == "1" // read before listen() clears SANDBAY_ENVD_*
	ln, token, err := listen()
	if err != nil {
		fmt.Fprintln(os.Stderr, "envd:", err)
		return 1
	}
	go func() {
		if err := serve(token, ln); err != nil {
			fmt.Fprintln(os.Stderr, "envd: serving stopped:", err)
		}
	}()
	if len(args) == 0 {
		for s := range sigs {
			if s == syscall.SIGTERM || s == syscall.SIGINT {
				return 128 + int(s.(syscall.Signal))
			}
		}
	}
	if hold {
		// The platform loads the environment's network policy into its namespace
		// after the engine started it: the workload starts only once it says so
		// (POST /v1/release), never in the moment before the policy holds.
		select {
		case <-released:
		case s := <-sigs:
			if s == syscall.SIGTERM || s == syscall.SIGINT {
				return 128 + int(s.(syscall.Signal))
			}
			<-released
		}
	}
	env := os.Environ()
	path, err := lookPath(args[0], envPath(env))
	if err != nil {
		fmt.Fprintln(os.Stderr, "envd:", err)
		return 127
	}
	attr := &syscall.ProcAttr{
		Env:   env,
		Files: []uintptr{0, 1, 2},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	}
	if isTerminal(0) {
		// docker run -t: the workload's group must own the terminal to read it.
		attr.Sys.Foreground, attr.Sys.Ctty = true, 0
	}
	pid, done, err := spawn(path, args, attr)
	if err != nil && attr.Sys.Foreground {
		attr.Sys.Foreground = false
		pid, done, err = spawn(path, args, attr)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "envd: exec %s: %v\n", args[0], err)
		if errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.ENOEXEC) {
			return 126
		}
		return 127
	}
	for {
		select {
		case s := <-sigs:
			_ = syscall.Kill(pid, s.(syscall.Signal))
		case ws := <-done:
			return exitCode(ws)
		}
	}
}

func isTerminal(fd int) bool {
	var t syscall.Termios
	_, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.TCGETS, uintptrOf(&t))
	return e == 0
}
