package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Frame types (docs/envd.md).
const (
	frameStdin      = 0
	frameStdout     = 1
	frameStderr     = 2
	frameExit       = 3
	frameStarted    = 4
	frameCloseStdin = 5
	frameSignal     = 6
	frameResize     = 7
	frameKill       = 8
)

const (
	ringSize  = 256 << 10
	minChunk  = 256
	maxChunks = 2048
	// The output of exited processes is kept up to this much in all, newest first.
	exitedOutput    = 4 << 20
	keepExited      = 10 * time.Minute
	maxExited       = 256
	maxControlFrame = 64 << 10
	readBuffer      = 16 << 10
	// After a terminal's process is reaped, what the master still holds is drained
	// this long at most (a background child may keep the terminal open for ever).
	ttyDrain = 500 * time.Millisecond
)

type processTable struct {
	mu    sync.Mutex
	procs map[string]*process
}

func newProcessTable() *processTable { return &processTable{procs: map[string]*process{}} }

// prune drops exited processes older than keepExited, and the oldest beyond maxExited.
func (t *processTable) prune() {
	var exited []*process
	for id, p := range t.procs {
		at, ok := p.exitTime()
		if !ok {
			continue
		}
		if time.Since(at) > keepExited {
			delete(t.procs, id)
			continue
		}
		exited = append(exited, p)
	}
	sort.Slice(exited, func(i, j int) bool {
		a, _ := exited[i].exitTime()
		b, _ := exited[j].exitTime()
		return a.After(b)
	})
	if len(exited) > maxExited {
		for _, p := range exited[maxExited:] {
			delete(t.procs, p.id)
		}
		exited = exited[:maxExited]
	}
	kept := 0
	for _, p := range exited {
		p.mu.Lock()
		if kept += p.ring.size; kept > exitedOutput {
			p.ring.drop()
		}
		p.mu.Unlock()
	}
}

func (t *processTable) get(id string) (*process, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.prune()
	p, ok := t.procs[id]
	if !ok {
		return nil, errorf(http.StatusNotFound, "not_found", "no process %q", id)
	}
	return p, nil
}

type chunk struct {
	kind byte
	data []byte
}

// outputRing keeps the last ringSize bytes of a process's output, by stream.
type outputRing struct {
	chunks []chunk
	size   int
	start  int64 // offset of the first byte kept
	end    int64 // offset after the last byte
}

func (r *outputRing) add(kind byte, data []byte) {
	// Small writes (a terminal's echo) share a buffer, so the bookkeeping stays a
	// fraction of the data.
	if n := len(r.chunks); n > 0 {
		last := &r.chunks[n-1]
		if last.kind == kind && len(last.data)+len(data) <= cap(last.data) {
			last.data = append(last.data, data...)
			r.grew(len(data))
			return
		}
	}
	size := len(data)
	if size < minChunk {
		size = minChunk
	}
	r.chunks = append(r.chunks, chunk{kind, append(make([]byte, 0, size), data...)})
	r.grew(len(data))
}

func (r *outputRing) grew(n int) {
	r.size += n
	r.end += int64(n)
	for r.size > ringSize || len(r.chunks) > maxChunks {
		over := r.size - ringSize
		first := &r.chunks[0]
		if len(first.data) <= over || over <= 0 {
			r.size -= len(first.data)
			r.start += int64(len(first.data))
			r.chunks[0] = chunk{}
			r.chunks = r.chunks[1:]
			continue
		}
		first.data = first.data[over:]
		r.size -= over
		r.start += int64(over)
	}
}

// compact moves the kept output into one exact buffer (a process that exited
// writes no more).
func (r *outputRing) compact() {
	buf := make([]byte, 0, r.size)
	out := make([]chunk, 0, len(r.chunks))
	for _, c := range r.chunks {
		if n := len(out); n > 0 && out[n-1].kind == c.kind {
			buf = append(buf, c.data...)
			out[n-1].data = buf[len(buf)-len(out[n-1].data)-len(c.data):]
			continue
		}
		buf = append(buf, c.data...)
		out = append(out, chunk{c.kind, buf[len(buf)-len(c.data):]})
	}
	r.chunks = out
}

// drop forgets the kept output.
func (r *outputRing) drop() {
	r.chunks, r.size, r.start = nil, 0, r.end
}

// since returns the output from offset on (from the oldest kept byte if that is
// gone) and the offset it starts at.
func (r *outputRing) since(off int64) ([]chunk, int64) {
	if off < r.start {
		off = r.start
	}
	if off > r.end {
		off = r.end
	}
	var out []chunk
	pos := r.start
	for _, c := range r.chunks {
		next := pos + int64(len(c.data))
		if next > off {
			skip := int64(0)
			if off > pos {
				skip = off - pos
			}
			out = append(out, chunk{c.kind, c.data[skip:]})
		}
		pos = next
	}
	return out, off
}

type process struct {
	id, user, cwd string
	argv          []string
	pid           int
	tty, keep     bool
	hasStdin      bool
	startedAt     time.Time

	stdin     *os.File // pipe to the process, or the terminal's master; nil for /dev/null
	stdinOnce sync.Once
	master    *os.File
	reaped    atomic.Bool
	reapedAt  atomic.Int64

	mu       sync.Mutex
	ring     outputRing
	conns    map[*attachment]struct{}
	exited   bool
	exitedAt time.Time
	status   syscall.WaitStatus
}

func (p *process) exitTime() (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exitedAt, p.exited
}

type processInfo struct {
	ID        string   `json:"id"`
	PID       int      `json:"pid"`
	Argv      []string `json:"argv"`
	Cwd       string   `json:"cwd"`
	User      string   `json:"user"`
	TTY       bool     `json:"tty"`
	Stdin     bool     `json:"stdin"`
	Keep      bool     `json:"keep"`
	StartedAt string   `json:"started_at"`
	Running   bool     `json:"running"`
	ExitCode  *int     `json:"exit_code"`
	Signal    *string  `json:"signal"`
	EndedAt   *string  `json:"ended_at"`
	Offset    int64    `json:"offset"`
	Attached  int      `json:"attached"`
}

func (p *process) info() processInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	in := processInfo{
		ID: p.id, PID: p.pid, Argv: p.argv, Cwd: p.cwd, User: p.user, TTY: p.tty,
		Stdin: p.hasStdin, Keep: p.keep, StartedAt: p.startedAt.UTC().Format(time.RFC3339Nano),
		Running: !p.exited, Offset: p.ring.end, Attached: len(p.conns),
	}
	if p.exited {
		e := exitInfoOf(p.status)
		in.ExitCode, in.Signal = &e.ExitCode, e.Signal
		ended := p.exitedAt.UTC().Format(time.RFC3339Nano)
		in.EndedAt = &ended
	}
	return in
}

type exitInfo struct {
	ExitCode int     `json:"exit_code"`
	Signal   *string `json:"signal"`
}

func exitInfoOf(ws syscall.WaitStatus) exitInfo {
	e := exitInfo{ExitCode: exitCode(ws)}
	if ws.Signaled() {
		name := signalName(ws.Signal())
		e.Signal = &name
	}
	return e
}

// attachment is one connection following a process.
type attachment struct {
	conn net.Conn
	wmu  sync.Mutex
	dead bool
}

func (a *attachment) send(kind byte, payload []byte) error {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	return a.sendLocked(kind, payload)
}

func (a *attachment) sendLocked(kind byte, payload []byte) error {
	if a.dead {
		return net.ErrClosed
	}
	var head [5]byte
	head[0] = kind
	binary.BigEndian.PutUint32(head[1:], uint32(len(payload)))
	bufs := net.Buffers{head[:], payload}
	if _, err := bufs.WriteTo(a.conn); err != nil {
		a.dead = true
		a.conn.Close()
		return err
	}
	return nil
}

// output records a piece of output and hands it to every attached connection; a
// blocked connection holds the process back (as a terminal would).
func (p *process) output(kind byte, data []byte) {
	p.mu.Lock()
	p.ring.add(kind, data)
	conns := make([]*attachment, 0, len(p.conns))
	for a := range p.conns {
		conns = append(conns, a)
	}
	p.mu.Unlock()
	for _, a := range conns {
		if a.send(kind, data) != nil {
			p.detach(a)
		}
	}
}

func (p *process) detach(a *attachment) {
	p.mu.Lock()
	delete(p.conns, a)
	p.mu.Unlock()
}

// pump copies one output stream until every writer has closed it (a terminal: EIO,
// or the drain after the reap ran out).
func (p *process) pump(f *os.File, kind byte, wg *sync.WaitGroup) {
	defer wg.Done()
	buf := make([]byte, readBuffer)
	for {
		if p.tty && p.reaped.Load() {
			limit := time.Unix(0, p.reapedAt.Load()).Add(ttyDrain)
			next := time.Now().Add(20 * time.Millisecond)
			if next.After(limit) {
				next = limit
			}
			_ = f.SetReadDeadline(next)
		}
		n, err := f.Read(buf)
		if n > 0 {
			p.output(kind, buf[:n])
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && !p.reaped.Load() {
				continue
			}
			return
		}
	}
}

// finish waits for the reap and the end of the output, then tells every attached
// connection and lets them go.
func (p *process) finish(done <-chan syscall.WaitStatus, outputs *sync.WaitGroup) {
	ws := <-done
	p.reapedAt.Store(time.Now().UnixNano())
	p.reaped.Store(true)
	if p.master != nil {
		_ = p.master.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	}
	outputs.Wait()
	p.closeStdin(true)
	if p.master != nil {
		p.master.Close()
	}
	p.mu.Lock()
	p.exited, p.exitedAt, p.status = true, time.Now(), ws
	p.ring.compact()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	payload, _ := json.Marshal(exitInfoOf(ws))
	for a := range conns {
		go a.end(payload)
	}
}

// end sends the exit frame and half-closes, so the frame is read before the close
// (closing with unread input would reset the connection and could lose it).
func (a *attachment) end(exitPayload []byte) {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	if a.sendLocked(frameExit, exitPayload) != nil {
		return
	}
	if cw, ok := a.conn.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = a.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
}

// closeStdin ends the process's input: the pipe closes; a terminal gets its EOF
// character unless the process is gone (the master is closed separately).
func (p *process) closeStdin(final bool) {
	if p.stdin == nil {
		return
	}
	if p.tty {
		if !final {
			_, _ = p.stdin.Write([]byte{4})
		}
		return
	}
	p.stdinOnce.Do(func() { p.stdin.Close() })
}

// signalTree signals the process's group and every process carrying its marker
// (children that started their own session or group).
func (p *process) signalTree(sig syscall.Signal) {
	_ = syscall.Kill(-p.pid, sig)
	if !p.reaped.Load() {
		_ = syscall.Kill(p.pid, sig)
	}
	marker := []byte("SANDBAY_PROCESS=" + p.id + "\x00")
	dir, err := os.Open("/proc")
	if err != nil {
		return
	}
	names, _ := dir.Readdirnames(-1)
	dir.Close()
	self := os.Getpid()
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil || pid == self || pid <= 1 {
			continue
		}
		env, err := os.ReadFile("/proc/" + name + "/environ")
		if err != nil {
			continue
		}
		if bytes.HasPrefix(env, marker) || bytes.Contains(env, append([]byte{0}, marker...)) {
			_ = syscall.Kill(pid, sig)
		}
	}
}

// killTree sends SIGKILL in three rounds, catching children forked meanwhile.
func (p *process) killTree() {
	for i := 0; i < 3; i++ {
		if i > 0 {
			time.Sleep(50 * time.Millisecond)
		}
		p.signalTree(syscall.SIGKILL)
	}
}

func (p *process) resize(cols, rows int) error {
	if !p.tty {
		return errorf(http.StatusBadRequest, "invalid", "process %s has no terminal", p.id)
	}
	if p.reaped.Load() {
		return nil
	}
	return setWinsize(p.master, cols, rows)
}

var signals = map[string]syscall.Signal{
	"HUP": syscall.SIGHUP, "INT": syscall.SIGINT, "QUIT": syscall.SIGQUIT,
	"ILL": syscall.SIGILL, "TRAP": syscall.SIGTRAP, "ABRT": syscall.SIGABRT,
	"IOT": syscall.SIGIOT, "BUS": syscall.SIGBUS, "FPE": syscall.SIGFPE,
	"KILL": syscall.SIGKILL, "USR1": syscall.SIGUSR1, "SEGV": syscall.SIGSEGV,
	"USR2": syscall.SIGUSR2, "PIPE": syscall.SIGPIPE, "ALRM": syscall.SIGALRM,
	"TERM": syscall.SIGTERM, "STKFLT": syscall.SIGSTKFLT, "CHLD": syscall.SIGCHLD,
	"CONT": syscall.SIGCONT, "STOP": syscall.SIGSTOP, "TSTP": syscall.SIGTSTP,
	"TTIN": syscall.SIGTTIN, "TTOU": syscall.SIGTTOU, "URG": syscall.SIGURG,
	"XCPU": syscall.SIGXCPU, "XFSZ": syscall.SIGXFSZ, "VTALRM": syscall.SIGVTALRM,
	"PROF": syscall.SIGPROF, "WINCH": syscall.SIGWINCH, "IO": syscall.SIGIO,
	"POLL": syscall.SIGIO, "PWR": syscall.SIGPWR, "SYS": syscall.SIGSYS,
}

// parseSignal accepts TERM, SIGTERM (any case) or 15.
func parseSignal(s string) (syscall.Signal, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65 {
		return syscall.Signal(n), nil
	}
	name := strings.TrimPrefix(strings.ToUpper(s), "SIG")
	if sig, ok := signals[name]; ok {
		return sig, nil
	}
	return 0, errorf(http.StatusBadRequest, "invalid", "unknown signal %q", s)
}

func signalName(sig syscall.Signal) string {
	best := ""
	for name, s := range signals {
		// IOT and POLL are aliases; the usual name wins.
		if s == sig && name != "IOT" && name != "POLL" {
			best = name
		}
	}
	if best == "" {
		return strconv.Itoa(int(sig))
	}
	return "SIG" + best
}

type startRequest struct {
	Argv  []string          `json:"argv"`
	Env   map[string]string `json:"env"`
	Unset []string          `json:"unset"`
	Cwd   *string           `json:"cwd"`
	User  string            `json:"user"`
	TTY   bool              `json:"tty"`
	Stdin bool              `json:"stdin"`
	Cols  int               `json:"cols"`
	Rows  int               `json:"rows"`
	Keep  bool              `json:"keep"`
	ID    *string           `json:"id"`
}

func defaultCwd() string {
	if fi, err := os.Stat("/workspace"); err == nil && fi.IsDir() {
		return "/workspace"
	}
	return "/"
}

func setEnv(env []string, key, value string) []string {
	prefix := key + "="
	for i, kv := range env {
		if strings.HasPrefix(kv, prefix) {
			env[i] = prefix + value
			return env
		}
	}
	return append(env, prefix+value)
}

// unsetEnv drops the named variables: ones the environment was created with that
// have since been unset must not reach a child through envd's own environment.
func unsetEnv(env []string, names []string) []string {
	if len(names) == 0 {
		return env
	}
	drop := make(map[string]bool, len(names))
	for _, n := range names {
		drop[n] = true
	}
	kept := env[:0]
	for _, kv := range env {
		name := kv
		if i := strings.IndexByte(kv, '='); i >= 0 {
			name = kv[:i]
		}
		if !drop[name] {
			kept = append(kept, kv)
		}
	}
	return kept
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func validID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_.:", c)) {
			return false
		}
	}
	return true
}

// start launches a process and registers it; errors are the 400s of the wire.
func (t *processTable) start(req *startRequest) (*process, error) {
	if len(req.Argv) == 0 || req.Argv[0] == "" {
		return nil, errorf(http.StatusBadRequest, "invalid", "argv must name a command")
	}
	argv, err := shellless(req.Argv)
	if err != nil {
		return nil, err
	}
	req.Argv = argv
	id, err := resolveUser(req.User)
	if err != nil {
		return nil, err
	}
	cwd := defaultCwd()
	if req.Cwd != nil && *req.Cwd != "" {
		cwd = *req.Cwd
		if !filepath.IsAbs(cwd) {
			cwd = filepath.Join(defaultCwd(), cwd)
		}
		fi, err := os.Stat(cwd)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return nil, errorf(http.StatusBadRequest, "invalid", "chdir %s: %v", cwd, err)
		}
		if !fi.IsDir() {
			return nil, errorf(http.StatusBadRequest, "invalid", "chdir %s: %v", cwd, syscall.ENOTDIR)
		}
	}
	pid := ""
	if req.ID != nil {
		pid = *req.ID
		if !validID(pid) {
			return nil, errorf(http.StatusBadRequest, "invalid", "invalid process id %q", pid)
		}
	} else {
		pid = newID()
	}
	for _, k := range req.Unset {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return nil, errorf(http.StatusBadRequest, "invalid", "invalid environment variable name %q", k)
		}
	}
	env := unsetEnv(os.Environ(), req.Unset)
	env = setEnv(env, "HOME", id.Home)
	if req.TTY {
		env = setEnv(env, "TERM", "xterm")
	}
	keys := make([]string, 0, len(req.Env))
	for k := range req.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return nil, errorf(http.StatusBadRequest, "invalid", "invalid environment variable name %q", k)
		}
		env = setEnv(env, k, req.Env[k])
	}
	env = setEnv(env, "SANDBAY_PROCESS", pid)
	path, err := lookPath(req.Argv[0], envPath(env))
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "invalid", "%v", err)
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	t.prune()
	if old, ok := t.procs[pid]; ok {
		if _, exited := old.exitTime(); !exited {
			return nil, errorf(http.StatusConflict, "conflict", "process %s is running", pid)
		}
	}
	p := &process{
		id: pid, user: req.User, cwd: cwd, argv: req.Argv, tty: req.TTY, keep: req.Keep,
		hasStdin: req.Stdin || req.TTY, conns: map[*attachment]struct{}{},
	}
	sys := &syscall.SysProcAttr{Setsid: true}
	if !id.Self {
		sys.Credential = &syscall.Credential{Uid: id.UID, Gid: id.GID, Groups: id.Groups}
	}
	attr := &syscall.ProcAttr{Dir: cwd, Env: env, Sys: sys}
	var outputs []*os.File
	var childFDs []int
	closeChild := func() {
		for _, fd := range childFDs {
			syscall.Close(fd)
		}
	}
	fail := func(err error) (*process, error) {
		closeChild()
		for _, f := range outputs {
			f.Close()
		}
		if p.stdin != nil && p.stdin != p.master {
			p.stdin.Close()
		}
		return nil, err
	}
	if req.TTY {
		master, slave, err := openPTY(req.Cols, req.Rows)
		if err != nil {
			return fail(errorf(http.StatusInternalServerError, "internal", "%v", err))
		}
		childFDs = append(childFDs, slave)
		p.master, p.stdin = master, master
		outputs = append(outputs, master)
		sys.Setctty, sys.Ctty = true, 0
		attr.Files = []uintptr{uintptr(slave), uintptr(slave), uintptr(slave)}
	} else {
		var in int
		if req.Stdin {
			w, r, err := parentPipe(false)
			if err != nil {
				return fail(err)
			}
			childFDs = append(childFDs, r)
			p.stdin, in = w, r
		} else {
			in, err = syscall.Open("/dev/null", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
			if err != nil {
				return fail(err)
			}
			childFDs = append(childFDs, in)
		}
		outR, outW, err := parentPipe(true)
		if err != nil {
			return fail(err)
		}
		childFDs = append(childFDs, outW)
		outputs = append(outputs, outR)
		errR, errW, err := parentPipe(true)
		if err != nil {
			return fail(err)
		}
		childFDs = append(childFDs, errW)
		outputs = append(outputs, errR)
		attr.Files = []uintptr{uintptr(in), uintptr(outW), uintptr(errW)}
	}
	p.startedAt = time.Now()
	pidNum, done, err := spawn(path, req.Argv, attr)
	if err != nil {
		return fail(errorf(http.StatusBadRequest, "invalid", "exec %s: %v", req.Argv[0], err))
	}
	closeChild()
	p.pid = pidNum
	var wg sync.WaitGroup
	wg.Add(len(outputs))
	for i, f := range outputs {
		go p.pump(f, byte(frameStdout+i), &wg)
	}
	go func() {
		defer func() {
			for _, f := range outputs {
				if f != p.master {
					f.Close()
				}
			}
		}()
		p.finish(done, &wg)
	}()
	t.procs[pid] = p
	return p, nil
}

// parentPipe makes a pipe whose parent end is pollable and whose child end is a
// raw blocking descriptor. read says which end the parent keeps.
func parentPipe(read bool) (parent *os.File, child int, err error) {
	var fds [2]int
	if err := syscall.Pipe2(fds[:], syscall.O_CLOEXEC); err != nil {
		return nil, -1, err
	}
	mine, theirs := fds[1], fds[0]
	if read {
		mine, theirs = fds[0], fds[1]
	}
	if err := syscall.SetNonblock(mine, true); err != nil {
		syscall.Close(fds[0])
		syscall.Close(fds[1])
		return nil, -1, err
	}
	return os.NewFile(uintptr(mine), "pipe"), theirs, nil
}

// attach follows p on conn: the started frame, the output from offset, then live
// output, while the frames from the connection drive the process.
func (p *process) attach(conn net.Conn, br *bufio.Reader, offset int64) {
	a := &attachment{conn: conn}
	a.wmu.Lock()
	p.mu.Lock()
	replay, from := p.ring.since(offset)
	exited, status := p.exited, p.status
	if !exited {
		p.conns[a] = struct{}{}
	}
	p.mu.Unlock()
	started, _ := json.Marshal(map[string]any{"id": p.id, "pid": p.pid, "offset": from})
	ok := a.sendLocked(frameStarted, started) == nil
	for _, c := range replay {
		if !ok {
			break
		}
		ok = a.sendLocked(c.kind, c.data) == nil
	}
	a.wmu.Unlock()
	if exited && ok {
		payload, _ := json.Marshal(exitInfoOf(status))
		a.end(payload)
	}
	p.serveFrames(a, br)
	p.detach(a)
	conn.Close()
	if !p.keep {
		p.mu.Lock()
		done := p.exited
		p.mu.Unlock()
		if !done && !p.tty {
			p.closeStdin(false)
		}
	}
}

// copyStdin passes one stdin frame's payload to the process (or drops it when the
// process has no input any more); false when the connection failed.
func (p *process) copyStdin(br *bufio.Reader, size int64) bool {
	var buf [4096]byte
	writable := p.stdin != nil
	for size > 0 {
		n := int64(len(buf))
		if n > size {
			n = size
		}
		if _, err := io.ReadFull(br, buf[:n]); err != nil {
			return false
		}
		size -= n
		if writable {
			if _, err := p.stdin.Write(buf[:n]); err != nil {
				writable = false
			}
		}
	}
	return true
}

// serveFrames reads the connection's frames until it ends.
func (p *process) serveFrames(a *attachment, br *bufio.Reader) {
	var head [5]byte
	for {
		if _, err := io.ReadFull(br, head[:]); err != nil {
			return
		}
		kind, size := head[0], int64(binary.BigEndian.Uint32(head[1:]))
		if kind == frameStdin {
			if !p.copyStdin(br, size) {
				return
			}
			continue
		}
		if size > maxControlFrame {
			return
		}
		payload := make([]byte, size)
		if _, err := io.ReadFull(br, payload); err != nil {
			return
		}
		switch kind {
		case frameCloseStdin:
			p.closeStdin(false)
		case frameSignal:
			if sig, err := parseSignal(string(payload)); err == nil {
				p.signalTree(sig)
			}
		case frameResize:
			var sz struct{ Cols, Rows int }
			if json.Unmarshal(payload, &sz) == nil {
				_ = p.resize(sz.Cols, sz.Rows)
			}
		case frameKill:
			go p.killTree()
		}
	}
}

func registerProcesses(s *Server) {
	s.handle("/v1/processes", s.processesRoot)
	s.handle("/v1/processes/", s.processByID)
}

func (s *Server) processesRoot(w http.ResponseWriter, r *http.Request) error {
	switch r.Method {
	case http.MethodGet:
		s.procs.mu.Lock()
		s.procs.prune()
		list := make([]*process, 0, len(s.procs.procs))
		for _, p := range s.procs.procs {
			list = append(list, p)
		}
		s.procs.mu.Unlock()
		out := make([]processInfo, 0, len(list))
		for _, p := range list {
			out = append(out, p.info())
		}
		sort.Slice(out, func(i, j int) bool { return out[i].StartedAt < out[j].StartedAt })
		writeJSON(w, http.StatusOK, out)
		return nil
	case http.MethodPost:
		var req startRequest
		if err := decodeJSON(r, &req); err != nil {
			return err
		}
		p, err := s.procs.start(&req)
		if err != nil {
			return err
		}
		conn, br, err := upgrade(w)
		if err != nil {
			if !p.keep && !p.tty {
				p.closeStdin(false)
			}
			return nil
		}
		p.attach(conn, br, 0)
		return nil
	}
	return allowMethods(r, http.MethodGet, http.MethodPost)
}

// processByID serves /v1/processes/{id}[/attach|/signal|/resize|/kill].
func (s *Server) processByID(w http.ResponseWriter, r *http.Request) error {
	rest := strings.TrimPrefix(r.URL.Path, "/v1/processes/")
	id, action, _ := strings.Cut(rest, "/")
	p, err := s.procs.get(id)
	if err != nil {
		return err
	}
	switch action {
	case "":
		if err := allowMethods(r, http.MethodGet); err != nil {
			return err
		}
	case "attach":
		if err := allowMethods(r, http.MethodGet, http.MethodPost); err != nil {
			return err
		}
		var offset int64
		if v := r.URL.Query().Get("offset"); v != "" {
			if offset, err = strconv.ParseInt(v, 10, 64); err != nil || offset < 0 {
				return errorf(http.StatusBadRequest, "invalid", "invalid offset %q", v)
			}
		}
		conn, br, err := upgrade(w)
		if err != nil {
			return nil
		}
		p.attach(conn, br, offset)
		return nil
	case "signal":
		if err := allowMethods(r, http.MethodPost); err != nil {
			return err
		}
		var req struct {
			Signal string `json:"signal"`
		}
		if err := decodeJSON(r, &req); err != nil {
			return err
		}
		sig, err := parseSignal(req.Signal)
		if err != nil {
			return err
		}
		p.signalTree(sig)
	case "resize":
		if err := allowMethods(r, http.MethodPost); err != nil {
			return err
		}
		var req struct {
			Cols int `json:"cols"`
			Rows int `json:"rows"`
		}
		if err := decodeJSON(r, &req); err != nil {
			return err
		}
		if err := p.resize(req.Cols, req.Rows); err != nil {
			return err
		}
	case "kill":
		if err := allowMethods(r, http.MethodPost); err != nil {
			return err
		}
		p.killTree()
	default:
		return errorf(http.StatusNotFound, "not_found", "no route for %s %s", r.Method, r.URL.Path)
	}
	writeJSON(w, http.StatusOK, p.info())
	return nil
}
