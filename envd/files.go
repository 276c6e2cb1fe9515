package main

// The files API (docs/envd.md, "Files"). Every call that reads or changes the tree
// runs inside asUser, so the kernel applies the user's own permissions; contents
// then stream through descriptors opened that way.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"unicode/utf8"
	"unsafe"
)

const (
	defaultLimit = 1000
	maxLimit     = 100000
	copyBuffer   = 1 << 20
)

func registerFiles(s *Server) {
	s.handle("/v1/files", handleDelete)
	s.handle("/v1/files/stat", handleStat)
	s.handle("/v1/files/content", handleContent)
	s.handle("/v1/files/list", handleList)
	s.handle("/v1/files/find", handleFind)
	s.handle("/v1/files/mkdir", handleMkdir)
	s.handle("/v1/files/move", handleMove)
	s.handle("/v1/files/permissions", handlePermissions)
	s.handle("/v1/files/search", handleSearch)
	s.handle("/v1/files/replace", handleReplace)
}

// fileInfo is a file entry on the wire.
type fileInfo struct {
	Name       string  `json:"name"`
	Path       string  `json:"path"`
	Type       string  `json:"type"`
	Size       int64   `json:"size"`
	Mode       string  `json:"mode"`
	Mtime      float64 `json:"mtime"`
	Owner      string  `json:"owner"`
	Group      string  `json:"group"`
	LinkTarget *string `json:"link_target"`
}

// names turns uids and gids into the environment's names, reading /etc/passwd and
// /etc/group at most once per request.
type names struct {
	users, groups map[uint32]string
}

func loadIDNames(file string) map[uint32]string {
	m := map[uint32]string{}
	for _, f := range readColonFile(file) {
		if len(f) < 3 {
			continue
		}
		if n, err := strconv.ParseUint(f[2], 10, 32); err == nil {
			if _, dup := m[uint32(n)]; !dup {
				m[uint32(n)] = f[0]
			}
		}
	}
	return m
}

func (n *names) user(uid uint32) string {
	if n.users == nil {
		n.users = loadIDNames("/etc/passwd")
	}
	if s, ok := n.users[uid]; ok {
		return s
	}
	return strconv.FormatUint(uint64(uid), 10)
}

func (n *names) group(gid uint32) string {
	if n.groups == nil {
		n.groups = loadIDNames("/etc/group")
	}
	if s, ok := n.groups[gid]; ok {
		return s
	}
	return strconv.FormatUint(uint64(gid), 10)
}

func fileType(mode uint32) string {
	switch mode & syscall.S_IFMT {
	case syscall.S_IFREG:
		return "file"
	case syscall.S_IFDIR:
		return "directory"
	case syscall.S_IFLNK:
		return "symlink"
	}
	return "other"
}

func baseName(p string) string {
	if p == "/" {
		return "/"
	}
	return path.Base(p)
}

func newFileInfo(p string, st *syscall.Stat_t, n *names) fileInfo {
	return fileInfo{
		Name:  baseName(p),
		Path:  p,
		Type:  fileType(st.Mode),
		Size:  st.Size,
		Mode:  fmt.Sprintf("%04o", st.Mode&0o7777),
		Mtime: float64(st.Mtim.Sec) + float64(st.Mtim.Nsec)/1e9,
		Owner: n.user(st.Uid),
		Group: n.group(st.Gid),
	}
}

func lstat(p string) (*syscall.Stat_t, error) {
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		return nil, &os.PathError{Op: "lstat", Path: p, Err: err}
	}
	return &st, nil
}

func stat(p string) (*syscall.Stat_t, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: p, Err: err}
	}
	return &st, nil
}

// describe is the entry of p, the link itself unless follow; a symlink's target is
// given either way. Call it as the user.
func describe(p string, follow bool, n *names) (fileInfo, error) {
	st, err := lstat(p)
	if err != nil {
		return fileInfo{}, err
	}
	var target *string
	if st.Mode&syscall.S_IFMT == syscall.S_IFLNK {
		if t, err := os.Readlink(p); err == nil {
			target = &t
		}
		if follow {
			if st, err = stat(p); err != nil {
				return fileInfo{}, err
			}
		}
	}
	info := newFileInfo(p, st, n)
	info.LinkTarget = target
	return info, nil
}

// runAs is asUser with a recover: fn runs on a goroutine of its own, where a panic
// would take PID 1 (and the environment) down with it.
func runAs(id *identity, fn func() error) error {
	return asUser(id, func() (err error) {
		defer func() {
			if v := recover(); v != nil {
				err = errorf(http.StatusInternalServerError, "internal", "internal error: %v", v)
			}
		}()
		return fn()
	})
}

func invalid(format string, args ...any) *apiError {
	return errorf(http.StatusBadRequest, "invalid", format, args...)
}

func conflict(format string, args ...any) *apiError {
	return errorf(http.StatusConflict, "conflict", format, args...)
}

// cleanPath checks that p is absolute and returns it cleaned.
func cleanPath(field, p string) (string, error) {
	if p == "" {
		return "", invalid("%s is required", field)
	}
	if !strings.HasPrefix(p, "/") {
		return "", invalid("%s must be absolute: %q", field, p)
	}
	if strings.IndexByte(p, 0) >= 0 {
		return "", invalid("%s must not contain NUL bytes", field)
	}
	return path.Clean(p), nil
}

func queryBool(r *http.Request, name string, def bool) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, invalid("%s must be a boolean, not %q", name, v)
	}
	return b, nil
}

func queryInt(r *http.Request, name string, def, lo, hi int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, invalid("%s must be an integer from %d to %d, not %q", name, lo, hi, v)
	}
	return n, nil
}

func checkLimit(limit int) (int, error) {
	if limit == 0 {
		return defaultLimit, nil
	}
	if limit < 1 || limit > maxLimit {
		return 0, invalid("limit must be from 1 to %d", maxLimit)
	}
	return limit, nil
}

// parseMode reads "0644" or "644": permission bits plus setuid, setgid and sticky.
func parseMode(s string) (uint32, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 8, 32)
	if err != nil || n > 0o7777 || s == "" {
		return 0, invalid("mode must be octal from 0000 to 7777, not %q", s)
	}
	return uint32(n), nil
}

// userFromQuery resolves the `user` query parameter.
func userFromQuery(r *http.Request) (*identity, error) {
	return resolveUser(r.URL.Query().Get("user"))
}

// pathError names the path the client asked about, with the errno of err (which
// may concern a temporary file), so fromOSError maps it and the message makes sense.
func pathError(op, p string, err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return &os.PathError{Op: op, Path: p, Err: errno}
	}
	return err
}

func isNotExist(err error) bool { return errors.Is(err, syscall.ENOENT) }

// --- stat and content ---

func handleStat(w http.ResponseWriter, r *http.Request) error {
	if err := allowMethods(r, http.MethodGet); err != nil {
		return err
	}
	p, err := cleanPath("path", r.URL.Query().Get("path"))
	if err != nil {
		return err
	}
	follow, err := queryBool(r, "follow", false)
	if err != nil {
		return err
	}
	id, err := userFromQuery(r)
	if err != nil {
		return err
	}
	var info fileInfo
	if err := runAs(id, func() (err error) {
		info, err = describe(p, follow, &names{})
		return err
	}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, info)
	return nil
}

func handleContent(w http.ResponseWriter, r *http.Request) error {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return readContent(w, r)
	case http.MethodPut:
		return writeContent(w, r)
	}
	return allowMethods(r, http.MethodGet, http.MethodHead, http.MethodPut)
}

// openRegular opens p for reading (symlinks followed) if it is a regular file.
// O_NONBLOCK keeps a FIFO from blocking the open; it means nothing for a file.
func openRegular(p string) (*os.File, *syscall.Stat_t, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, nil, &os.PathError{Op: "stat", Path: p, Err: err}
	}
	switch st.Mode & syscall.S_IFMT {
	case syscall.S_IFREG:
		return f, &st, nil
	case syscall.S_IFDIR:
		f.Close()
		return nil, nil, invalid("%s is a directory, not a file", p)
	}
	f.Close()
	return nil, nil, invalid("%s is not a regular file", p)
}

func readContent(w http.ResponseWriter, r *http.Request) error {
	p, err := cleanPath("path", r.URL.Query().Get("path"))
	if err != nil {
		return err
	}
	id, err := userFromQuery(r)
	if err != nil {
		return err
	}
	var f *os.File
	var info fileInfo
	if err := runAs(id, func() error {
		file, st, err := openRegular(p)
		if err != nil {
			return err
		}
		f, info = file, newFileInfo(p, st, &names{})
		return nil
	}); err != nil {
		return err
	}
	defer f.Close()
	meta, _ := json.Marshal(info)
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.FormatInt(info.Size, 10))
	h.Set("X-Sandbay-Stat", asciiJSON(meta))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	// Exactly the announced length (the file may grow meanwhile); a LimitedReader of
	// an *os.File still goes out through sendfile(2).
	_, _ = io.CopyN(w, f, info.Size)
	return nil
}

// asciiJSON escapes every non-ASCII character of a JSON text, so it can travel in
// an HTTP header whatever the file's name.
func asciiJSON(b []byte) string {
	var sb strings.Builder
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r < utf8.RuneSelf {
			sb.WriteByte(b[0])
		} else if r > 0xffff {
			r -= 0x10000
			fmt.Fprintf(&sb, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
		} else {
			fmt.Fprintf(&sb, `\u%04x`, r)
		}
		b = b[size:]
	}
	return sb.String()
}

// tempName is a fresh hidden name beside target; the random suffix makes a clash
// (EEXIST) practically impossible, and every creation uses O_EXCL anyway.
func tempName(target, tag string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return path.Join(path.Dir(target), "."+path.Base(target)+".sandbay-"+tag+"-"+hex.EncodeToString(b[:]))
}

func createTemp(target string) (*os.File, error) {
	for i := 0; ; i++ {
		f, err := os.OpenFile(tempName(target, "tmp"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil || !errors.Is(err, syscall.EEXIST) || i == 5 {
			return f, err
		}
	}
}

// existing is what a replaced file keeps: its mode and owner.
type existing struct {
	found    bool
	mode     uint32
	uid, gid uint32
}

// finish gives the temporary file the mode and, when the caller may change it,
// the owner of the file it replaces (false if it could not). chown goes first: it
// clears the set-id bits the mode may carry.
func (e existing) finish(f *os.File, mode uint32) (ownerKept bool, err error) {
	fd := int(f.Fd())
	ownerKept = true
	if e.found {
		var st syscall.Stat_t
		if err := syscall.Fstat(fd, &st); err != nil {
			return false, err
		}
		if st.Uid != e.uid || st.Gid != e.gid {
			ownerKept = syscall.Fchown(fd, int(e.uid), int(e.gid)) == nil
		}
	}
	return ownerKept, syscall.Fchmod(fd, mode)
}

// Linux's O_TMPFILE (generic value: amd64, arm64) and linkat's AT_SYMLINK_FOLLOW.
const (
	oTmpfile        = 0x410000
	atSymlinkFollow = 0x400
)

// openUnnamed opens a file in dir that has no name until linkUnnamed gives it one,
// so an upload that fails leaves nothing behind, whatever a listing sees meanwhile.
// ok is false where the file system (or kernel) cannot, and a named temporary
// must do.
func openUnnamed(dir string) (f *os.File, ok bool, err error) {
	fd, err := syscall.Open(dir, oTmpfile|syscall.O_WRONLY|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		switch err {
		case syscall.EOPNOTSUPP, syscall.EISDIR, syscall.EINVAL:
			return nil, false, nil
		}
		return nil, false, &os.PathError{Op: "create", Path: dir, Err: err}
	}
	return os.NewFile(uintptr(fd), dir), true, nil
}

// linkUnnamed names an O_TMPFILE file through /proc/self/fd. It runs as envd itself:
// the kernel lets only the process's owner follow those links, and the user has
// already shown it may create files in the directory by opening one there.
func linkUnnamed(f *os.File, name string) error {
	from, err := syscall.BytePtrFromString("/proc/self/fd/" + strconv.Itoa(int(f.Fd())))
	if err != nil {
		return err
	}
	to, err := syscall.BytePtrFromString(name)
	if err != nil {
		return err
	}
	_, _, e := syscall.Syscall6(syscall.SYS_LINKAT, uintptr(atFdcwd), uintptr(unsafe.Pointer(from)),
		uintptr(atFdcwd), uintptr(unsafe.Pointer(to)), atSymlinkFollow, 0)
	if e != 0 {
		return &os.PathError{Op: "link", Path: name, Err: e}
	}
	return nil
}

// atFdcwd is AT_FDCWD; a variable, since the negative constant cannot be a uintptr.
var atFdcwd = -0x64

func writeContent(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	p, err := cleanPath("path", q.Get("path"))
	if err != nil {
		return err
	}
	if p == "/" {
		return invalid("cannot write to /")
	}
	if r.Header.Get("Content-Length") == "" || r.ContentLength < 0 {
		return errorf(http.StatusLengthRequired, "invalid", "Content-Length is required")
	}
	size := r.ContentLength
	var mode uint32
	modeGiven := q.Get("mode") != ""
	if modeGiven {
		if mode, err = parseMode(q.Get("mode")); err != nil {
			return err
		}
	}
	id, err := userFromQuery(r)
	if err != nil {
		return err
	}

	// Every check and the file's creation come before the body is read, so a refusal
	// is answered before the client sends it (Expect: 100-continue).
	target := p
	var old existing
	var tmp *os.File
	unnamed := false
	if err := runAs(id, func() error {
		// A write is about the content: through a symlink, it lands on the target.
		if resolved, err := filepath.EvalSymlinks(p); err == nil {
			target = resolved
		}
		st, err := lstat(target)
		switch {
		case err == nil && st.Mode&syscall.S_IFMT == syscall.S_IFDIR:
			return conflict("%s is a directory", target)
		case err == nil && st.Mode&syscall.S_IFMT == syscall.S_IFREG:
			old = existing{found: true, mode: st.Mode & 0o7777, uid: st.Uid, gid: st.Gid}
		case err == nil && st.Mode&syscall.S_IFMT != syscall.S_IFLNK: // a dangling link is replaced
			return conflict("%s is not a regular file", target)
		case err != nil && !isNotExist(err):
			return err
		}
		dir := path.Dir(target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if tmp, unnamed, err = openUnnamed(dir); err != nil || unnamed {
			return pathError("create", target, err)
		}
		tmp, err = createTemp(target)
		return pathError("create", target, err)
	}); err != nil {
		return err
	}
	name := tmp.Name() // of a named temporary; set once an unnamed one is linked
	removeName := func() { _ = runAs(id, func() error { return os.Remove(name) }) }
	discard := func() {
		tmp.Close()
		if !unnamed {
			removeName()
		}
	}

	// The copy runs outside asUser: the descriptor already carries the permission.
	var written int64
	buf := make([]byte, copyBuffer)
	for written < size {
		n, rerr := r.Body.Read(buf)
		if n > 0 {
			if _, werr := tmp.Write(buf[:n]); werr != nil {
				discard()
				return pathError("write", target, werr)
			}
			written += int64(n)
		}
		if rerr != nil {
			break
		}
	}
	if written != size {
		discard()
		return invalid("the body ended after %d of %d bytes", written, size)
	}

	if !modeGiven {
		mode = 0o644
		if old.found {
			mode = old.mode
		}
	}
	if err := runAs(id, func() error {
		_, err := old.finish(tmp, mode)
		return pathError("chmod", target, err)
	}); err != nil {
		discard()
		return err
	}
	if unnamed {
		name = tempName(target, "tmp")
		if err := linkUnnamed(tmp, name); err != nil {
			tmp.Close()
			return pathError("create", target, err)
		}
		unnamed = false
	}
	if err := tmp.Close(); err != nil {
		removeName()
		return pathError("write", target, err)
	}
	var info fileInfo
	if err := runAs(id, func() error {
		if err := os.Rename(name, target); err != nil {
			return pathError("rename", target, err)
		}
		var err error
		info, err = describe(target, false, &names{})
		return err
	}); err != nil {
		removeName()
		return err
	}
	writeJSON(w, http.StatusOK, info)
	return nil
}

// --- listing and finding ---

// walkTree visits the entries below root in path order (each directory's entries by
// name, a directory's contents right after it), at most maxDepth levels deep (0: no
// limit), never through a symlink. descend, if set, says whether to enter a
// directory. An unreadable root is an error; unreadable directories below it are
// skipped. visit answers false to stop.
func walkTree(ctx context.Context, root string, maxDepth int,
	descend func(full string, d fs.DirEntry) bool,
	visit func(full string, d fs.DirEntry) bool) error {
	entries, err := os.ReadDir(root)
	if err != nil {
		return err
	}
	var walk func(dir string, entries []fs.DirEntry, depth int) bool
	walk = func(dir string, entries []fs.DirEntry, depth int) bool {
		if ctx.Err() != nil {
			return false
		}
		for _, d := range entries {
			full := path.Join(dir, d.Name())
			if !visit(full, d) {
				return false
			}
			if !d.IsDir() || (maxDepth > 0 && depth >= maxDepth) {
				continue
			}
			if descend != nil && !descend(full, d) {
				continue
			}
			children, err := os.ReadDir(full)
			if err != nil {
				continue
			}
			if !walk(full, children, depth+1) {
				return false
			}
		}
		return true
	}
	walk(root, entries, 1)
	return nil
}

// entryInfo describes a directory entry met while walking; false when it vanished.
func entryInfo(full string, d fs.DirEntry, n *names) (fileInfo, bool) {
	fi, err := d.Info()
	if err != nil {
		return fileInfo{}, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileInfo{}, false
	}
	info := newFileInfo(full, st, n)
	if d.Type()&fs.ModeSymlink != 0 {
		if t, err := os.Readlink(full); err == nil {
			info.LinkTarget = &t
		}
	}
	return info, true
}

type entryList struct {
	Entries   []fileInfo `json:"entries"`
	Truncated bool       `json:"truncated"`
}

// requireDir checks, as the user, that p (followed) is a directory.
func requireDir(p string) error {
	st, err := stat(p)
	if err != nil {
		return err
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return invalid("%s is not a directory", p)
	}
	return nil
}

func handleList(w http.ResponseWriter, r *http.Request) error {
	if err := allowMethods(r, http.MethodGet); err != nil {
		return err
	}
	p, err := cleanPath("path", r.URL.Query().Get("path"))
	if err != nil {
		return err
	}
	depth, err := queryInt(r, "depth", 1, 1, 1<<16)
	if err != nil {
		return err
	}
	limit, err := queryInt(r, "limit", defaultLimit, 1, maxLimit)
	if err != nil {
		return err
	}
	id, err := userFromQuery(r)
	if err != nil {
		return err
	}
	out := entryList{Entries: []fileInfo{}}
	if err := runAs(id, func() error {
		if err := requireDir(p); err != nil {
			return err
		}
		n := &names{}
		return walkTree(r.Context(), p, depth, nil, func(full string, d fs.DirEntry) bool {
			if len(out.Entries) == limit {
				out.Truncated = true
				return false
			}
			if info, ok := entryInfo(full, d, n); ok {
				out.Entries = append(out.Entries, info)
			}
			return true
		})
	}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// pruned are the kernel's trees, which a recursive search never enters.
func pruned(full string) bool {
	return full == "/proc" || full == "/sys" || full == "/dev"
}

// relativeTo is full below root, without the leading slash.
func relativeTo(root, full string) string {
	if root == "/" {
		return full[1:]
	}
	return strings.TrimPrefix(full[len(root):], "/")
}

// globTarget is what a find or include pattern is matched against: the entry's
// name, or its path below root when the pattern has a slash (where `*` may cross
// directories, as with find -path).
func globTarget(pattern, root, full string) string {
	if strings.Contains(pattern, "/") {
		return relativeTo(root, full)
	}
	return path.Base(full)
}

func handleFind(w http.ResponseWriter, r *http.Request) error {
	if err := allowMethods(r, http.MethodGet); err != nil {
		return err
	}
	q := r.URL.Query()
	p, err := cleanPath("path", q.Get("path"))
	if err != nil {
		return err
	}
	pattern := q.Get("pattern")
	if pattern == "" {
		return invalid("pattern is required")
	}
	pattern = strings.TrimPrefix(pattern, "/")
	limit, err := queryInt(r, "limit", defaultLimit, 1, maxLimit)
	if err != nil {
		return err
	}
	id, err := userFromQuery(r)
	if err != nil {
		return err
	}
	out := entryList{Entries: []fileInfo{}}
	if err := runAs(id, func() error {
		if err := requireDir(p); err != nil {
			return err
		}
		n := &names{}
		descend := func(full string, _ fs.DirEntry) bool { return !pruned(full) }
		return walkTree(r.Context(), p, 0, descend, func(full string, d fs.DirEntry) bool {
			if !globMatch(pattern, globTarget(pattern, p, full)) {
				return true
			}
			if len(out.Entries) == limit {
				out.Truncated = true
				return false
			}
			if info, ok := entryInfo(full, d, n); ok {
				out.Entries = append(out.Entries, info)
			}
			return true
		})
	}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// --- mkdir, move, delete, permissions ---

type mkdirRequest struct {
	Path    string `json:"path"`
	Mode    string `json:"mode"`
	Parents *bool  `json:"parents"`
	User    string `json:"user"`
}

func handleMkdir(w http.ResponseWriter, r *http.Request) error {
	var req mkdirRequest
	if err := decodePost(r, &req); err != nil {
		return err
	}
	p, err := cleanPath("path", req.Path)
	if err != nil {
		return err
	}
	mode := uint32(0o755)
	if req.Mode != "" {
		if mode, err = parseMode(req.Mode); err != nil {
			return err
		}
	}
	parents := req.Parents == nil || *req.Parents
	id, err := resolveUser(req.User)
	if err != nil {
		return err
	}
	var info fileInfo
	if err := runAs(id, func() error {
		if parents {
			if st, err := stat(p); err == nil {
				if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
					return conflict("%s exists and is not a directory", p)
				}
				info, err = describe(p, false, &names{})
				return err
			}
			if err := os.MkdirAll(path.Dir(p), 0o755); err != nil {
				return err
			}
		}
		if err := syscall.Mkdir(p, mode); err != nil {
			if errors.Is(err, syscall.EEXIST) && parents {
				if err := requireDir(p); err != nil {
					return err
				}
			} else {
				return &os.PathError{Op: "mkdir", Path: p, Err: err}
			}
		} else if err := syscall.Chmod(p, mode); err != nil { // past the umask
			return &os.PathError{Op: "chmod", Path: p, Err: err}
		}
		var err error
		info, err = describe(p, false, &names{})
		return err
	}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, info)
	return nil
}

type moveRequest struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
	Overwrite   bool   `json:"overwrite"`
	User        string `json:"user"`
}

func handleMove(w http.ResponseWriter, r *http.Request) error {
	var req moveRequest
	if err := decodePost(r, &req); err != nil {
		return err
	}
	src, err := cleanPath("source", req.Source)
	if err != nil {
		return err
	}
	dst, err := cleanPath("destination", req.Destination)
	if err != nil {
		return err
	}
	if src == "/" || dst == "/" {
		return invalid("cannot move /")
	}
	id, err := resolveUser(req.User)
	if err != nil {
		return err
	}
	var info fileInfo
	if err := runAs(id, func() error {
		if _, err := lstat(src); err != nil {
			return err
		}
		if src != dst {
			if st, err := lstat(dst); err == nil {
				if !req.Overwrite {
					return conflict("%s already exists", dst)
				}
				if st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
					return conflict("%s is a directory", dst)
				}
			} else if !isNotExist(err) {
				return err
			}
			if err := moveEntry(src, dst); err != nil {
				return err
			}
		}
		var err error
		info, err = describe(dst, false, &names{})
		return err
	}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, info)
	return nil
}

// moveEntry renames src to dst; across file systems it copies to a temporary name
// beside dst, renames that over dst (so dst changes at once) and removes src.
func moveEntry(src, dst string) error {
	err := syscall.Rename(src, dst)
	if err == nil {
		return nil
	}
	if err != syscall.EXDEV {
		return &os.LinkError{Op: "rename", Old: src, New: dst, Err: err}
	}
	tmp := tempName(dst, "move")
	if err := copyTree(src, tmp); err != nil {
		_ = os.RemoveAll(tmp)
		var errno syscall.Errno
		if errors.As(err, &errno) { // named by the paths asked for, not the temporary one
			return &os.LinkError{Op: "move", Old: src, New: dst, Err: errno}
		}
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		_ = os.RemoveAll(tmp)
		return err
	}
	return os.RemoveAll(src)
}

// copyTree copies src to the new path dst with modes, times and (when permitted)
// owners, symlinks as symlinks.
func copyTree(src, dst string) error {
	st, err := lstat(src)
	if err != nil {
		return err
	}
	perm := st.Mode & 0o7777
	switch st.Mode & syscall.S_IFMT {
	case syscall.S_IFDIR:
		if err := syscall.Mkdir(dst, 0o700); err != nil {
			return &os.PathError{Op: "mkdir", Path: dst, Err: err}
		}
		entries, err := os.ReadDir(src)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := copyTree(path.Join(src, e.Name()), path.Join(dst, e.Name())); err != nil {
				return err
			}
		}
	case syscall.S_IFREG:
		if err := copyFile(src, dst); err != nil {
			return err
		}
	case syscall.S_IFLNK:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if err := os.Symlink(target, dst); err != nil {
			return err
		}
		_ = os.Lchown(dst, int(st.Uid), int(st.Gid))
		return nil
	default:
		if err := syscall.Mknod(dst, st.Mode, int(st.Rdev)); err != nil {
			return &os.PathError{Op: "mknod", Path: dst, Err: err}
		}
	}
	_ = os.Lchown(dst, int(st.Uid), int(st.Gid))
	if err := syscall.Chmod(dst, perm); err != nil {
		return &os.PathError{Op: "chmod", Path: dst, Err: err}
	}
	ts := []syscall.Timespec{st.Atim, st.Mtim}
	_ = syscall.UtimesNano(dst, ts)
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.CopyBuffer(out, in, make([]byte, copyBuffer)); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func handleDelete(w http.ResponseWriter, r *http.Request) error {
	if err := allowMethods(r, http.MethodDelete); err != nil {
		return err
	}
	p, err := cleanPath("path", r.URL.Query().Get("path"))
	if err != nil {
		return err
	}
	if p == "/" {
		return invalid("cannot delete /")
	}
	recursive, err := queryBool(r, "recursive", false)
	if err != nil {
		return err
	}
	id, err := userFromQuery(r)
	if err != nil {
		return err
	}
	if err := runAs(id, func() error {
		st, err := lstat(p)
		if err != nil {
			return err
		}
		if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
			return os.Remove(p)
		}
		if recursive {
			return os.RemoveAll(p)
		}
		if err := syscall.Rmdir(p); err != nil {
			if err == syscall.ENOTEMPTY || err == syscall.EEXIST {
				return conflict("%s is a directory that is not empty (delete it recursively)", p)
			}
			return &os.PathError{Op: "rmdir", Path: p, Err: err}
		}
		return nil
	}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct{}{})
	return nil
}

// idSpec is an owner or group: a name, or a number given as text or as a number.
type idSpec string

func (s *idSpec) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch t := v.(type) {
	case string:
		*s = idSpec(t)
	case float64:
		*s = idSpec(strconv.FormatFloat(t, 'f', -1, 64))
	case nil:
		*s = ""
	default:
		return fmt.Errorf("must be a name or a number")
	}
	return nil
}

type permissionsRequest struct {
	Path  string  `json:"path"`
	Mode  *string `json:"mode"`
	Owner idSpec  `json:"owner"`
	Group idSpec  `json:"group"`
	User  string  `json:"user"`
}

// lookupID resolves a name or number in /etc/passwd or /etc/group (-1: unchanged).
func lookupID(kind string, spec idSpec) (int, error) {
	s := strings.TrimSpace(string(spec))
	if s == "" {
		return -1, nil
	}
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return int(n), nil
	}
	file := "/etc/passwd"
	if kind == "group" {
		file = "/etc/group"
	}
	for _, f := range readColonFile(file) {
		if len(f) >= 3 && f[0] == s {
			if n, err := strconv.ParseUint(f[2], 10, 32); err == nil {
				return int(n), nil
			}
		}
	}
	return 0, invalid("unknown %s %q", kind, s)
}

func handlePermissions(w http.ResponseWriter, r *http.Request) error {
	var req permissionsRequest
	if err := decodePost(r, &req); err != nil {
		return err
	}
	p, err := cleanPath("path", req.Path)
	if err != nil {
		return err
	}
	var mode uint32
	if req.Mode != nil {
		if mode, err = parseMode(*req.Mode); err != nil {
			return err
		}
	}
	uid, err := lookupID("user", req.Owner)
	if err != nil {
		return err
	}
	gid, err := lookupID("group", req.Group)
	if err != nil {
		return err
	}
	id, err := resolveUser(req.User)
	if err != nil {
		return err
	}
	var info fileInfo
	if err := runAs(id, func() error {
		if _, err := lstat(p); err != nil {
			return err
		}
		// Owner first: chown clears the set-id bits a chmod may be setting.
		if uid >= 0 || gid >= 0 {
			if err := os.Lchown(p, uid, gid); err != nil {
				return err
			}
		}
		if req.Mode != nil {
			if err := syscall.Chmod(p, mode); err != nil {
				return &os.PathError{Op: "chmod", Path: p, Err: err}
			}
		}
		var err error
		info, err = describe(p, false, &names{})
		return err
	}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, info)
	return nil
}
