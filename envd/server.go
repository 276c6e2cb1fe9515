package main

import (
	"bufio"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// apiError is an error answer: {"error": Message, "code": Code} with Status.
type apiError struct {
	Status        int
	Code, Message string
}

func (e *apiError) Error() string { return e.Message }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// fromOSError maps an errno to the wire's status and code; the message keeps the
// operation and path ("open /x: no such file or directory").
func fromOSError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return errorf(http.StatusInternalServerError, "internal", "%s", err.Error())
	}
	switch errno {
	case syscall.EACCES, syscall.EPERM, syscall.EROFS:
		return errorf(http.StatusForbidden, "permission_denied", "%s", err.Error())
	case syscall.ENOENT:
		return errorf(http.StatusNotFound, "not_found", "%s", err.Error())
	case syscall.EEXIST, syscall.ENOTEMPTY, syscall.ENOTDIR, syscall.EISDIR:
		return errorf(http.StatusConflict, "conflict", "%s", err.Error())
	}
	return errorf(http.StatusBadRequest, "invalid", "%s", err.Error())
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = fromOSError(err)
	}
	writeJSON(w, ae.Status, map[string]string{"error": ae.Message, "code": ae.Code})
}

const maxJSONBody = 1 << 20

// decodeJSON reads a JSON request body into v; an empty body leaves v as it is.
func decodeJSON(r *http.Request, v any) error {
	if r.Body == nil {
		return nil
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, maxJSONBody+1))
	if err != nil {
		return errorf(http.StatusBadRequest, "invalid", "reading the request body: %v", err)
	}
	if len(data) > maxJSONBody {
		return errorf(http.StatusBadRequest, "invalid", "the request body is larger than %d bytes", maxJSONBody)
	}
	if len(strings.TrimSpace(string(data))) == 0 {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errorf(http.StatusBadRequest, "invalid", "invalid JSON body: %v", err)
	}
	if dec.More() {
		return errorf(http.StatusBadRequest, "invalid", "invalid JSON body: trailing data")
	}
	return nil
}

// identity is who an operation runs as.
type identity struct {
	UID, GID   uint32
	Groups     []uint32
	Home, Name string
	Self       bool // envd's own identity: nothing to switch
}

type passwdEntry struct {
	name     string
	uid, gid uint32
	home     string
}

func readColonFile(path string) [][]string {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out [][]string
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, strings.Split(line, ":"))
	}
	return out
}

func lookupPasswd(match func(passwdEntry) bool) (passwdEntry, bool) {
	for _, f := range readColonFile("/etc/passwd") {
		if len(f) < 6 {
			continue
		}
		uid, err1 := strconv.ParseUint(f[2], 10, 32)
		gid, err2 := strconv.ParseUint(f[3], 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		e := passwdEntry{name: f[0], uid: uint32(uid), gid: uint32(gid), home: f[5]}
		if match(e) {
			return e, true
		}
	}
	return passwdEntry{}, false
}

// supplementaryGroups lists the gids of /etc/group entries naming the user.
func supplementaryGroups(name string, primary uint32) []uint32 {
	groups := []uint32{primary}
	if name == "" {
		return groups
	}
	for _, f := range readColonFile("/etc/group") {
		if len(f) < 4 {
			continue
		}
		gid, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil || uint32(gid) == primary {
			continue
		}
		for _, m := range strings.Split(f[3], ",") {
			if strings.TrimSpace(m) == name {
				groups = append(groups, uint32(gid))
				break
			}
		}
	}
	return groups
}

func selfIdentity() *identity {
	id := &identity{UID: uint32(os.Getuid()), GID: uint32(os.Getgid()), Self: true}
	if gs, err := os.Getgroups(); err == nil {
		for _, g := range gs {
			id.Groups = append(id.Groups, uint32(g))
		}
	}
	if e, ok := lookupPasswd(func(e passwdEntry) bool { return e.uid == id.UID }); ok {
		id.Name, id.Home = e.name, e.home
	}
	if h := os.Getenv("HOME"); h != "" {
		id.Home = h
	}
	if id.Home == "" {
		id.Home = "/"
	}
	return id
}

// resolveUser turns "", "name", "uid", "name:gid" or "uid:gid" (a group name works
// too) into an identity, the way Docker reads the image's own passwd and group files.
func resolveUser(spec string) (*identity, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return selfIdentity(), nil
	}
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	if userPart == "" {
		return nil, errorf(http.StatusBadRequest, "invalid", "invalid user %q", spec)
	}
	id := &identity{Home: "/"}
	if n, err := strconv.ParseUint(userPart, 10, 32); err == nil {
		id.UID = uint32(n)
		if e, ok := lookupPasswd(func(e passwdEntry) bool { return e.uid == id.UID }); ok {
			id.GID, id.Name, id.Home = e.gid, e.name, e.home
		}
	} else {
		e, ok := lookupPasswd(func(e passwdEntry) bool { return e.name == userPart })
		if !ok {
			return nil, errorf(http.StatusBadRequest, "invalid", "unable to find user %s: no matching entries in passwd file", userPart)
		}
		id.UID, id.GID, id.Name, id.Home = e.uid, e.gid, e.name, e.home
	}
	if hasGroup {
		if groupPart == "" {
			return nil, errorf(http.StatusBadRequest, "invalid", "invalid user %q", spec)
		}
		if n, err := strconv.ParseUint(groupPart, 10, 32); err == nil {
			id.GID = uint32(n)
		} else {
			found := false
			for _, f := range readColonFile("/etc/group") {
				if len(f) >= 3 && f[0] == groupPart {
					if n, err := strconv.ParseUint(f[2], 10, 32); err == nil {
						id.GID, found = uint32(n), true
						break
					}
				}
			}
			if !found {
				return nil, errorf(http.StatusBadRequest, "invalid", "unable to find group %s: no matching entries in group file", groupPart)
			}
		}
	}
	if id.Home == "" {
		id.Home = "/"
	}
	id.Groups = supplementaryGroups(id.Name, id.GID)
	if os.Geteuid() != 0 {
		if id.UID == uint32(os.Getuid()) && id.GID == uint32(os.Getgid()) {
			self := selfIdentity()
			if id.Home != "" {
				self.Home = id.Home
			}
			return self, nil
		}
		return nil, errorf(http.StatusForbidden, "permission_denied", "envd runs as uid %d and cannot act as user %s", os.Getuid(), spec)
	}
	return id, nil
}

// asUser runs fn with id's filesystem identity. The switch is per thread (raw
// setgroups/setfsgid/setfsuid; the libc-style wrappers would change every thread), on
// a locked thread that is never unlocked, so Go discards it when fn returns.
func asUser(id *identity, fn func() error) error {
	if id == nil || id.Self {
		return fn()
	}
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := setThreadFS(id); err != nil {
			done <- err
			return
		}
		done <- fn()
	}()
	return <-done
}

func setThreadFS(id *identity) error {
	groups := id.Groups
	var ptr uintptr
	if len(groups) > 0 {
		ptr = uintptr(unsafe.Pointer(&groups[0]))
	}
	if _, _, e := syscall.RawSyscall(syscall.SYS_SETGROUPS, uintptr(len(groups)), ptr, 0); e != 0 {
		return fmt.Errorf("setgroups: %w", e)
	}
	runtime.KeepAlive(groups)
	syscall.RawSyscall(syscall.SYS_SETFSGID, uintptr(id.GID), 0, 0)
	syscall.RawSyscall(syscall.SYS_SETFSUID, uintptr(id.UID), 0, 0)
	// Both calls answer the previous value, never an error: read them back.
	minus1 := ^uintptr(0)
	if g, _, _ := syscall.RawSyscall(syscall.SYS_SETFSGID, minus1, 0, 0); uint32(g) != id.GID {
		return fmt.Errorf("setfsgid %d: %w", id.GID, syscall.EPERM)
	}
	if u, _, _ := syscall.RawSyscall(syscall.SYS_SETFSUID, minus1, 0, 0); uint32(u) != id.UID {
		return fmt.Errorf("setfsuid %d: %w", id.UID, syscall.EPERM)
	}
	return nil
}

// Server is envd's HTTP API.
type Server struct {
	token []byte
	mux   *http.ServeMux
	procs *processTable
}

func newServer(token string) *Server {
	s := &Server{token: []byte("Bearer " + token), mux: http.NewServeMux(), procs: newProcessTable()}
	s.handle("/", func(w http.ResponseWriter, r *http.Request) error {
		return errorf(http.StatusNotFound, "not_found", "no route for %s %s", r.Method, r.URL.Path)
	})
	s.handle("/v1/health", s.health)
	s.handle("/v1/release", release)
	registerProcesses(s)
	s.handle("/v1/connect", handleConnect)
	s.handle("/v1/fs", handleFS)
	registerFiles(s)
	registerGit(s)
	return s
}

// handle registers h; authentication happens before any route (ServeHTTP).
func (s *Server) handle(pattern string, h func(w http.ResponseWriter, r *http.Request) error) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			writeError(w, err)
		}
	})
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	got := []byte(r.Header.Get("Authorization"))
	if subtle.ConstantTimeCompare(got, s.token) != 1 {
		writeError(w, errorf(http.StatusUnauthorized, "unauthorized", "missing or wrong bearer token"))
		return
	}
	s.mux.ServeHTTP(w, r)
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) error {
	if err := allowMethods(r, http.MethodGet, http.MethodHead); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"status": "ok", "version": version, "pid": os.Getpid(), "uid": os.Getuid(),
	})
	return nil
}

// holdVar asks `envd init` to hold the workload until the platform releases it.
const holdVar = "SANDBAY_ENVD_HOLD"

var (
	released    = make(chan struct{})
	releaseOnce sync.Once
)

// release lets a held workload start (idempotent; nothing to do when none is held).
func release(w http.ResponseWriter, r *http.Request) error {
	if err := allowMethods(r, http.MethodPost); err != nil {
		return err
	}
	releaseOnce.Do(func() { close(released) })
	writeJSON(w, http.StatusOK, map[string]any{"released": true})
	return nil
}

func allowMethods(r *http.Request, methods ...string) error {
	for _, m := range methods {
		if r.Method == m {
			return nil
		}
	}
	return errorf(http.StatusMethodNotAllowed, "invalid", "method %s not allowed on %s", r.Method, r.URL.Path)
}

// decodePost takes a POST request's JSON body into v (405 for another method).
func decodePost(r *http.Request, v any) error {
	if err := allowMethods(r, http.MethodPost); err != nil {
		return err
	}
	return decodeJSON(r, v)
}

// upgrade switches the connection to a stream. The returned reader holds whatever
// the client sent after the request; the caller owns (and closes) the connection.
func upgrade(w http.ResponseWriter) (net.Conn, *bufio.Reader, error) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return nil, nil, errorf(http.StatusInternalServerError, "internal", "the connection cannot be switched")
	}
	conn, rw, err := hj.Hijack()
	if err != nil {
		return nil, nil, errorf(http.StatusInternalServerError, "internal", "switching the connection: %v", err)
	}
	_ = conn.SetDeadline(time.Time{})
	if _, err := conn.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: sandbay-stream\r\n\r\n")); err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, rw.Reader, nil
}

func serve(token string, ln net.Listener) error {
	s := newServer(token)
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          nil,
	}
	return srv.Serve(ln)
}
