package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

// handleFS starts a POSIX file session: a child `envd fs-serve` with the user's
// credentials, so the kernel checks every permission, bridged to the connection.
func handleFS(w http.ResponseWriter, r *http.Request) error {
	if err := allowMethods(r, http.MethodGet); err != nil {
		return err
	}
	id, err := resolveUser(r.URL.Query().Get("user"))
	if err != nil {
		return err
	}
	inW, inR, err := parentPipe(false)
	if err != nil {
		return err
	}
	outR, outW, err := parentPipe(true)
	if err != nil {
		inW.Close()
		syscall.Close(inR)
		return err
	}
	sys := &syscall.SysProcAttr{Setsid: true}
	if !id.Self {
		sys.Credential = &syscall.Credential{Uid: id.UID, Gid: id.GID, Groups: id.Groups}
	}
	pid, done, err := spawn("/proc/self/exe", []string{"envd", "fs-serve"}, &syscall.ProcAttr{
		Dir:   defaultCwd(),
		Env:   setEnv(os.Environ(), "HOME", id.Home),
		Files: []uintptr{uintptr(inR), uintptr(outW), 2},
		Sys:   sys,
	})
	syscall.Close(inR)
	syscall.Close(outW)
	if err != nil {
		inW.Close()
		outR.Close()
		return errorf(http.StatusInternalServerError, "internal", "cannot start the file session: %v", err)
	}
	defer func() {
		inW.Close()
		outR.Close()
		go func() {
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				_ = syscall.Kill(pid, syscall.SIGKILL)
				<-done
			}
		}()
	}()
	conn, br, err := upgrade(w)
	if err != nil {
		return nil
	}
	defer conn.Close()
	go func() {
		_, _ = io.Copy(inW, br)
		inW.Close() // the session ends at its input's end
	}()
	_, _ = io.Copy(conn, outR)
	return nil
}

// fsServeMain answers the file session on stdin/stdout exactly like the python3
// agent it replaces (src/sandbay/runtime/docker/fsagent.py), minus its greeting.
func fsServeMain(args []string) int {
	in := bufio.NewReaderSize(os.Stdin, 64<<10)
	out := bufio.NewWriterSize(os.Stdout, 64<<10)
	s := &fsSession{fds: map[int]bool{}}
	var head [8]byte
	for {
		if _, err := io.ReadFull(in, head[:]); err != nil {
			return 0
		}
		hl, pl := binary.BigEndian.Uint32(head[:4]), binary.BigEndian.Uint32(head[4:])
		if hl > 64<<20 || pl > 256<<20 {
			return 1
		}
		hdr := make([]byte, hl)
		if _, err := io.ReadFull(in, hdr); err != nil {
			return 0
		}
		var data []byte
		if pl > 0 {
			data = make([]byte, pl)
			if _, err := io.ReadFull(in, data); err != nil {
				return 0
			}
		}
		var req struct {
			Op   string            `json:"op"`
			Args []json.RawMessage `json:"args"`
		}
		if err := json.Unmarshal(hdr, &req); err != nil {
			fmt.Fprintln(os.Stderr, "envd fs-serve: bad request:", err)
			return 1
		}
		res, payload, err := s.call(req.Op, fsArgs(req.Args), data)
		var answer any
		if err != nil {
			answer = errAnswer(err)
		} else {
			answer = map[string]any{"ok": res}
		}
		h, _ := json.Marshal(answer)
		binary.BigEndian.PutUint32(head[:4], uint32(len(h)))
		binary.BigEndian.PutUint32(head[4:], uint32(len(payload)))
		out.Write(head[:])
		out.Write(h)
		out.Write(payload)
		if out.Flush() != nil {
			return 0
		}
	}
}

// pyError is a non-OSError exception of the python agent: errno 5 and its text.
type pyError string

func (e pyError) Error() string { return string(e) }

func errAnswer(err error) map[string]any {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		n := int(errno)
		if n == 0 {
			n = int(syscall.EIO)
		}
		return map[string]any{"errno": n, "error": strerror(errno)}
	}
	return map[string]any{"errno": int(syscall.EIO), "error": err.Error()}
}

// strerror is the C library's text (Go's table is the same, lower-cased).
func strerror(e syscall.Errno) string {
	s := e.Error()
	if s != "" && s[0] >= 'a' && s[0] <= 'z' {
		s = string(s[0]-'a'+'A') + s[1:]
	}
	return s
}

// pyFuncError prefixes a path's "embedded null" error with the os function the
// python agent called first for op, as python does.
func pyFuncError(op string, err error) error {
	if err.Error() != "embedded null character in path" {
		return err
	}
	fn := map[string]string{"scandir": "lstat", "remove": "unlink", "realpath": "lstat",
		"posix_rename": "replace", "setstat": "truncate"}[op]
	if fn == "" {
		fn = op
	}
	return pyError(fn + ": " + err.Error())
}

type fsArgs []json.RawMessage

func (a fsArgs) need(n int) error {
	if len(a) < n {
		return pyError(fmt.Sprintf("missing %d required positional argument(s)", n-len(a)))
	}
	if len(a) > n {
		return pyError(fmt.Sprintf("takes %d positional argument(s) but %d were given", n, len(a)))
	}
	return nil
}

// path decodes a latin-1 string of raw bytes.
func (a fsArgs) path(i int) (string, error) {
	var s string
	if err := json.Unmarshal(a[i], &s); err != nil {
		return "", pyError("'int' object has no attribute 'encode'")
	}
	b := make([]byte, 0, len(s))
	pos := 0
	for _, r := range s {
		if r > 0xff {
			return "", pyError(fmt.Sprintf("'latin-1' codec can't encode character '\\u%04x' in position %d: ordinal not in range(256)", r, pos))
		}
		b = append(b, byte(r))
		pos++
	}
	if strings.IndexByte(string(b), 0) >= 0 {
		return "", pyError("embedded null character in path")
	}
	return string(b), nil
}

func (a fsArgs) int(i int) (int64, error) {
	var n int64
	if err := json.Unmarshal(a[i], &n); err != nil {
		return 0, pyError("an integer is required")
	}
	return n, nil
}

// latin1 encodes raw bytes as the string the python agent would send.
func latin1(b string) string {
	r := make([]rune, len(b))
	for i := 0; i < len(b); i++ {
		r[i] = rune(b[i])
	}
	return string(r)
}

type fsSession struct {
	fds map[int]bool // descriptors this session opened: the others are not the client's
}

func (s *fsSession) fd(a fsArgs, i int) (int, error) {
	n, err := a.int(i)
	if err != nil {
		return 0, err
	}
	if !s.fds[int(n)] {
		return 0, syscall.EBADF
	}
	return int(n), nil
}

func (s *fsSession) call(op string, a fsArgs, data []byte) (res any, payload []byte, err error) {
	arity := map[string]int{
		"open": 3, "close": 1, "read": 3, "write": 2, "stat": 1, "lstat": 1, "fstat": 1,
		"setstat": 2, "fsetstat": 2, "scandir": 1, "remove": 1, "mkdir": 2, "rmdir": 1,
		"realpath": 1, "rename": 2, "posix_rename": 2, "readlink": 1, "symlink": 2,
		"link": 2, "statvfs": 1, "fstatvfs": 1, "fsync": 1,
	}
	n, ok := arity[op]
	if !ok {
		return nil, nil, pyError(fmt.Sprintf("'%s'", op))
	}
	if op == "read" {
		if len(a) < 3 {
			return nil, nil, pyError("list index out of range")
		}
	} else if err := a.need(n); err != nil {
		return nil, nil, err
	}
	// Path and descriptor arguments, decoded up front.
	var p1, p2 string
	switch op {
	case "open", "stat", "lstat", "setstat", "scandir", "remove", "mkdir", "rmdir",
		"realpath", "readlink", "statvfs":
		if p1, err = a.path(0); err != nil {
			return nil, nil, pyFuncError(op, err)
		}
	case "rename", "posix_rename", "symlink", "link":
		if p1, err = a.path(0); err != nil {
			return nil, nil, pyFuncError(op, err)
		}
		if p2, err = a.path(1); err != nil {
			return nil, nil, pyFuncError(op, err)
		}
	}
	var fd int
	switch op {
	case "close", "read", "write", "fstat", "fsetstat", "fstatvfs", "fsync":
		if fd, err = s.fd(a, 0); err != nil {
			return nil, nil, err
		}
	}
	switch op {
	case "open":
		flags, err := a.int(1)
		if err != nil {
			return nil, nil, err
		}
		mode, err := a.int(2)
		if err != nil {
			return nil, nil, err
		}
		nfd, err := syscall.Open(p1, int(flags)|syscall.O_CLOEXEC, uint32(mode))
		if err != nil {
			return nil, nil, err
		}
		s.fds[nfd] = true
		return nfd, nil, nil
	case "close":
		delete(s.fds, fd)
		return nil, nil, syscall.Close(fd)
	case "read":
		off, err := a.int(1)
		if err != nil {
			return nil, nil, err
		}
		size, err := a.int(2)
		if err != nil {
			return nil, nil, err
		}
		if size < 0 {
			return nil, nil, pyError("negative buffersize in pread")
		}
		if size > 64<<20 {
			size = 64 << 20
		}
		buf := make([]byte, size)
		for {
			m, err := syscall.Pread(fd, buf, off)
			if err == syscall.EINTR {
				continue
			}
			if err != nil {
				return nil, nil, err
			}
			return nil, buf[:m], nil
		}
	case "write":
		off, err := a.int(1)
		if err != nil {
			return nil, nil, err
		}
		for len(data) > 0 {
			m, err := syscall.Pwrite(fd, data, off)
			if err == syscall.EINTR {
				continue
			}
			if err != nil {
				return nil, nil, err
			}
			data, off = data[m:], off+int64(m)
		}
		return nil, nil, nil
	case "stat", "lstat", "fstat":
		var st syscall.Stat_t
		switch op {
		case "stat":
			err = syscall.Stat(p1, &st)
		case "lstat":
			err = syscall.Lstat(p1, &st)
		default:
			err = syscall.Fstat(fd, &st)
		}
		if err != nil {
			return nil, nil, err
		}
		return statMap(&st), nil, nil
	case "setstat", "fsetstat":
		var attrs setAttrs
		if err := json.Unmarshal(a[1], &attrs); err != nil {
			return nil, nil, pyError("'list' object has no attribute 'get'")
		}
		if op == "setstat" {
			return nil, nil, attrs.apply(p1, -1)
		}
		return nil, nil, attrs.apply("", fd)
	case "scandir":
		out, err := scanDir(p1)
		return out, nil, err
	case "remove":
		return nil, nil, syscall.Unlink(p1)
	case "mkdir":
		mode, err := a.int(1)
		if err != nil {
			return nil, nil, err
		}
		return nil, nil, syscall.Mkdir(p1, uint32(mode))
	case "rmdir":
		return nil, nil, syscall.Rmdir(p1)
	case "realpath":
		rp, err := realPath(p1)
		if err != nil {
			return nil, nil, err
		}
		return latin1(rp), nil, nil
	case "rename":
		var st syscall.Stat_t
		if syscall.Lstat(p2, &st) == nil {
			return nil, nil, syscall.EEXIST
		}
		return nil, nil, syscall.Rename(p1, p2)
	case "posix_rename":
		return nil, nil, syscall.Rename(p1, p2)
	case "readlink":
		target, err := readLink(p1)
		if err != nil {
			return nil, nil, err
		}
		return latin1(target), nil, nil
	case "symlink":
		return nil, nil, syscall.Symlink(p1, p2)
	case "link":
		return nil, nil, syscall.Link(p1, p2)
	case "statvfs", "fstatvfs":
		var st syscall.Statfs_t
		if op == "statvfs" {
			err = syscall.Statfs(p1, &st)
		} else {
			err = syscall.Fstatfs(fd, &st)
		}
		if err != nil {
			return nil, nil, err
		}
		return vfsList(&st), nil, nil
	case "fsync":
		return nil, nil, syscall.Fsync(fd)
	}
	return nil, nil, pyError(fmt.Sprintf("'%s'", op))
}

// pySeconds is int(st_atime) of a python stat: the float truncated toward zero.
func pySeconds(ts syscall.Timespec) int64 {
	if ts.Sec < 0 && ts.Nsec > 0 {
		return ts.Sec + 1
	}
	return ts.Sec
}

func statMap(s *syscall.Stat_t) map[string]any {
	return map[string]any{
		"size": s.Size, "uid": s.Uid, "gid": s.Gid, "mode": s.Mode,
		"atime": pySeconds(s.Atim), "mtime": pySeconds(s.Mtim), "nlink": s.Nlink,
	}
}

// vfsList is python's os.statvfs as the agent lists it (glibc's conversion from
// statfs: f_favail is f_ffree, f_fsid both words, f_flag without ST_VALID).
func vfsList(s *syscall.Statfs_t) []any {
	const stValid = 0x20
	flag := uint64(s.Flags)
	if flag&stValid != 0 {
		flag ^= stValid
	}
	return []any{
		uint64(s.Bsize), uint64(s.Frsize), s.Blocks, s.Bfree, s.Bavail, s.Files,
		s.Ffree, s.Ffree, uint64(uint32(s.Fsid.X__val[0])) | uint64(uint32(s.Fsid.X__val[1]))<<32, flag, uint64(s.Namelen),
	}
}

func scanDir(p string) ([][2]any, error) {
	out := make([][2]any, 0, 16)
	for _, n := range []string{".", ".."} {
		var st syscall.Stat_t
		if err := syscall.Lstat(pyJoin(p, n), &st); err != nil {
			return nil, err
		}
		out = append(out, [2]any{n, statMap(&st)})
	}
	dirfd, err := syscall.Open(p, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	d := os.NewFile(uintptr(dirfd), p)
	defer d.Close()
	for {
		names, err := d.Readdirnames(256)
		for _, name := range names {
			var st syscall.Stat_t
			if syscall.Lstat(pyJoin(p, name), &st) != nil {
				continue
			}
			out = append(out, [2]any{latin1(name), statMap(&st)})
		}
		if err == io.EOF || len(names) == 0 {
			break
		}
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				return nil, pe.Err
			}
			return nil, err
		}
	}
	return out, nil
}

type setAttrs struct {
	Size  *int64   `json:"size"`
	UID   *int64   `json:"uid"`
	GID   *int64   `json:"gid"`
	Mode  *int64   `json:"mode"`
	Atime *float64 `json:"atime"`
	Mtime *float64 `json:"mtime"`
}

// apply sets the attributes in the python agent's order: size, owner, mode, times.
func (a *setAttrs) apply(path string, fd int) error {
	if a.Size != nil {
		var err error
		if fd >= 0 {
			err = syscall.Ftruncate(fd, *a.Size)
		} else {
			err = syscall.Truncate(path, *a.Size)
		}
		if err != nil {
			return err
		}
	}
	if a.UID != nil && a.GID != nil {
		var err error
		if fd >= 0 {
			err = syscall.Fchown(fd, int(*a.UID), int(*a.GID))
		} else {
			err = syscall.Chown(path, int(*a.UID), int(*a.GID))
		}
		if err != nil {
			return err
		}
	}
	if a.Mode != nil {
		var err error
		m := uint32(*a.Mode & 0o7777)
		if fd >= 0 {
			err = syscall.Fchmod(fd, m)
		} else {
			err = syscall.Chmod(path, m)
		}
		if err != nil {
			return err
		}
	}
	if a.Atime != nil && a.Mtime != nil {
		ts := [2]syscall.Timespec{toTimespec(*a.Atime), toTimespec(*a.Mtime)}
		var pathPtr uintptr
		dirfd := fd
		if fd < 0 {
			b, err := syscall.BytePtrFromString(path)
			if err != nil {
				return err
			}
			pathPtr, dirfd = uintptr(unsafe.Pointer(b)), -100 // AT_FDCWD
		}
		// utimensat(fd, NULL, ...) is futimens: syscall has no wrapper for it.
		_, _, e := syscall.Syscall6(syscall.SYS_UTIMENSAT, uintptr(dirfd), pathPtr,
			uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
		if e != 0 {
			return e
		}
	}
	return nil
}

func toTimespec(f float64) syscall.Timespec {
	sec := math.Floor(f)
	return syscall.Timespec{Sec: int64(sec), Nsec: int64((f - sec) * 1e9)}
}

func readLink(p string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := syscall.Readlink(p, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// pyJoin is posixpath.join of two components.
func pyJoin(a, b string) string {
	if strings.HasPrefix(b, "/") {
		return b
	}
	if a == "" || strings.HasSuffix(a, "/") {
		return a + b
	}
	return a + "/" + b
}

// pySplit is posixpath.split.
func pySplit(p string) (string, string) {
	i := strings.LastIndexByte(p, '/') + 1
	head, tail := p[:i], p[i:]
	if head != "" && head != strings.Repeat("/", len(head)) {
		head = strings.TrimRight(head, "/")
	}
	return head, tail
}

// pyNormpath is posixpath.normpath.
func pyNormpath(p string) string {
	if p == "" {
		return "."
	}
	initial := 0
	if strings.HasPrefix(p, "/") {
		initial = 1
		if strings.HasPrefix(p, "//") && !strings.HasPrefix(p, "///") {
			initial = 2
		}
	}
	var comps []string
	for _, c := range strings.Split(p, "/") {
		if c == "" || c == "." {
			continue
		}
		if c != ".." || (initial == 0 && len(comps) == 0) || (len(comps) > 0 && comps[len(comps)-1] == "..") {
			comps = append(comps, c)
		} else if len(comps) > 0 {
			comps = comps[:len(comps)-1]
		}
	}
	out := strings.Repeat("/", initial) + strings.Join(comps, "/")
	if out == "" {
		return "."
	}
	return out
}

// realPath is python 3.11's os.path.realpath (not strict): symlinks resolved,
// missing components kept, relative to the working directory.
func realPath(p string) (string, error) {
	path, _, err := joinRealPath("", p, map[string]*string{})
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(path, "/") {
		cwd, err := syscall.Getwd()
		if err != nil {
			return "", err
		}
		path = pyJoin(cwd, path)
	}
	return pyNormpath(path), nil
}

func joinRealPath(path, rest string, seen map[string]*string) (string, bool, error) {
	if strings.HasPrefix(rest, "/") {
		rest, path = rest[1:], "/"
	}
	for rest != "" {
		name, after, _ := strings.Cut(rest, "/")
		rest = after
		if name == "" || name == "." {
			continue
		}
		if name == ".." {
			if path != "" {
				var last string
				path, last = pySplit(path)
				if last == ".." {
					path = pyJoin(pyJoin(path, ".."), "..")
				}
			} else {
				path = ".."
			}
			continue
		}
		newpath := pyJoin(path, name)
		var st syscall.Stat_t
		if syscall.Lstat(newpath, &st) != nil || st.Mode&syscall.S_IFMT != syscall.S_IFLNK {
			path = newpath
			continue
		}
		if resolved, ok := seen[newpath]; ok {
			if resolved != nil {
				path = *resolved
				continue
			}
			return pyJoin(newpath, rest), false, nil // a symlink loop
		}
		seen[newpath] = nil
		target, err := readLink(newpath)
		if err != nil {
			return "", false, err
		}
		var ok bool
		path, ok, err = joinRealPath(path, target, seen)
		if err != nil {
			return "", false, err
		}
		if !ok {
			return pyJoin(path, rest), false, nil
		}
		resolved := path
		seen[newpath] = &resolved
	}
	return path, true, nil
}
