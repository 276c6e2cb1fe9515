package main

// The git API (POST /v1/git/<op>): the environment's own git, run as the user.
// Credentials reach git only through its askpass protocol, with envd itself as the
// helper (askpassMain) and the secret in the git child's environment: never on a
// command line, never in a file.

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	maxGitStdout = 32 << 20
	maxGitStderr = 64 << 10
	gitErrLines  = 12
)

type gitBase struct {
	Path string `json:"path"`
	User string `json:"user"`
}

type gitAuth struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

func registerGit(s *Server) {
	ops := map[string]func(*http.Request) (any, error){
		"clone":         gitClone,
		"status":        gitStatusOp,
		"add":           gitAdd,
		"commit":        gitCommit,
		"branches":      gitBranches,
		"create_branch": gitCreateBranch,
		"checkout":      gitCheckout,
		"delete_branch": gitDeleteBranch,
		"pull":          gitPull,
		"push":          gitPush,
		"init":          gitInit,
		"reset":         gitReset,
		"restore":       gitRestore,
		"remotes":       gitRemotes,
		"remote_add":    gitRemoteAdd,
		"config_get":    gitConfigGet,
		"config_set":    gitConfigSet,
		"credentials":   gitCredentials,
	}
	for name, op := range ops {
		op := op
		s.handle("/v1/git/"+name, func(w http.ResponseWriter, r *http.Request) error {
			if err := allowMethods(r, http.MethodPost); err != nil {
				return err
			}
			v, err := op(r)
			if err != nil {
				return err
			}
			writeJSON(w, http.StatusOK, v)
			return nil
		})
	}
}

// init catches envd run by git as its askpass helper: git passes the prompt as the
// only argument (GIT_ASKPASS cannot carry a mode word), so the marker that only the
// git child's environment has is what says so. PID 1 and the named modes never are.
func init() {
	if len(os.Args) == 2 && os.Getenv("SANDBAY_GIT_ASKPASS") != "" && os.Getpid() != 1 {
		switch os.Args[1] {
		case "init", "serve", "fs-serve", "askpass", "version":
			return
		}
		os.Exit(askpassMain(os.Args[1:]))
	}
}

// askpassMain answers git's prompt (`envd askpass <prompt>`, or the prompt alone
// through init): the username for a "Username…" prompt, the password for any other.
func askpassMain(args []string) int {
	prompt := ""
	if len(args) > 0 {
		prompt = args[len(args)-1]
	}
	answer := os.Getenv("SANDBAY_GIT_PASSWORD")
	if strings.HasPrefix(prompt, "Username") {
		answer = os.Getenv("SANDBAY_GIT_USERNAME")
	}
	_, _ = os.Stdout.WriteString(answer + "\n")
	return 0
}

// gitCall is one request's way to run git: as its user, in its repository.
type gitCall struct {
	ctx context.Context
	id  *identity
	git string
	dir string
	env []string
}

// newGitCall resolves the user and git; the repository directory must exist unless
// it is made by the call itself (clone).
func newGitCall(r *http.Request, base gitBase, auth *gitAuth, mustExist bool) (*gitCall, error) {
	dir, err := cleanPath("path", base.Path)
	if err != nil {
		return nil, err
	}
	id, err := resolveUser(base.User)
	if err != nil {
		return nil, err
	}
	g := &gitCall{ctx: r.Context(), id: id, dir: dir, env: gitEnv(id)}
	if g.git, err = lookPath("git", envPath(g.env)); err != nil {
		return nil, invalid("git is not installed in this environment")
	}
	if mustExist {
		// "dir/." resolves only if the user may also enter dir, as git's chdir will.
		if err := runAs(id, func() error {
			if err := requireDir(dir); err != nil {
				return err
			}
			_, err := stat(dir + "/.")
			return pathError("chdir", dir, err)
		}); err != nil {
			return nil, err
		}
	}
	if auth != nil && (auth.Username != "" || auth.Password != "") {
		exe, err := os.Executable()
		if err != nil {
			return nil, errorf(http.StatusInternalServerError, "internal", "cannot find envd's own executable: %v", err)
		}
		g.env = append(g.env, "GIT_ASKPASS="+exe, "SANDBAY_GIT_ASKPASS=1",
			"SANDBAY_GIT_USERNAME="+auth.Username, "SANDBAY_GIT_PASSWORD="+auth.Password)
	}
	return g, nil
}

// gitEnv is envd's environment with the user's HOME, prompts off, and no askpass
// settings but ours.
func gitEnv(id *identity) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case name == "HOME", name == "GIT_ASKPASS", name == "SSH_ASKPASS", name == "GIT_TERMINAL_PROMPT",
			strings.HasPrefix(name, "SANDBAY_GIT_"):
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+id.Home, "GIT_TERMINAL_PROMPT=0")
}

// run runs git with args in the repository directory and answers its stdout; a
// non-zero exit is a 400 git_failed with the last lines git wrote to stderr.
func (g *gitCall) run(args ...string) ([]byte, error) {
	return g.runIn(g.dir, nil, args...)
}

func (g *gitCall) runIn(dir string, extraEnv []string, args ...string) ([]byte, error) {
	return g.runInput(dir, extraEnv, nil, args...)
}

// probe runs git and answers its stdout and whether it exited 0: for the commands
// whose status is the answer (a config key or a remote that is not there).
func (g *gitCall) probe(args ...string) ([]byte, bool, error) {
	stdout, _, ws, err := runChildInput(g.ctx, g.git, append([]string{"git"}, args...), g.dir, g.env, g.id, nil)
	if err != nil {
		return nil, false, err
	}
	return stdout, exitCode(ws) == 0, nil
}

// runInput is runIn with input on git's stdin (nil: /dev/null).
func (g *gitCall) runInput(dir string, extraEnv []string, input []byte, args ...string) ([]byte, error) {
	env := append(append([]string(nil), g.env...), extraEnv...)
	stdout, stderr, ws, err := runChildInput(g.ctx, g.git, append([]string{"git"}, args...), dir, env, g.id, input)
	if err != nil {
		return nil, err
	}
	if code := exitCode(ws); code != 0 {
		msg := lastLines(stderr, gitErrLines)
		if msg == "" {
			msg = lastLines(stdout, gitErrLines)
		}
		if msg == "" {
			msg = "git " + args[0] + " exited with status " + strconv.Itoa(code)
		}
		return nil, errorf(http.StatusBadRequest, "git_failed", "%s", msg)
	}
	return stdout, nil
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var kept []string
	for _, l := range lines {
		if l = strings.TrimSpace(l); l != "" {
			kept = append(kept, l)
		}
	}
	if len(kept) > n {
		kept = kept[len(kept)-n:]
	}
	return strings.Join(kept, "\n")
}

// runChild starts argv as id (its own process group, stdin on /dev/null) through
// the core's spawn, so the reaper owns the wait, and collects its output. A request
// that goes away kills the group.
func runChild(ctx context.Context, exe string, argv []string, dir string, env []string, id *identity) (stdout, stderr []byte, ws syscall.WaitStatus, err error) {
	return runChildInput(ctx, exe, argv, dir, env, id, nil)
}

// runChildInput is runChild with input written to the child's stdin (nil: /dev/null).
func runChildInput(ctx context.Context, exe string, argv []string, dir string, env []string, id *identity, input []byte) (stdout, stderr []byte, ws syscall.WaitStatus, err error) {
	var stdin *os.File
	if input == nil {
		if stdin, err = os.Open(os.DevNull); err != nil {
			return nil, nil, 0, err
		}
	} else {
		inR, inW, err := os.Pipe()
		if err != nil {
			return nil, nil, 0, err
		}
		stdin = inR
		go func() { _, _ = inW.Write(input); inW.Close() }()
	}
	defer stdin.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, nil, 0, err
	}
	defer outR.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		outW.Close()
		return nil, nil, 0, err
	}
	defer errR.Close()
	attr := &syscall.ProcAttr{
		Dir:   dir,
		Env:   env,
		Files: []uintptr{stdin.Fd(), outW.Fd(), errW.Fd()},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	}
	if !id.Self {
		attr.Sys.Credential = &syscall.Credential{Uid: id.UID, Gid: id.GID, Groups: id.Groups}
	}
	pid, done, err := spawn(exe, argv, attr)
	outW.Close()
	errW.Close()
	if err != nil {
		return nil, nil, 0, &os.PathError{Op: "exec", Path: exe, Err: err}
	}

	var wg sync.WaitGroup
	var outBuf, errBuf tailBuffer
	outBuf.max, outBuf.keepHead = maxGitStdout, true
	errBuf.max = maxGitStderr
	wg.Add(2)
	go func() { defer wg.Done(); _, _ = io.Copy(&outBuf, outR) }()
	go func() { defer wg.Done(); _, _ = io.Copy(&errBuf, errR) }()

	select {
	case ws = <-done:
	case <-ctx.Done():
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		ws = <-done
	}
	// A helper git left behind (a credential cache daemon) may hold the pipes open:
	// give the output a moment to drain, then stop reading.
	drained := make(chan struct{})
	go func() { wg.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(3 * time.Second):
		outR.Close()
		errR.Close()
		<-drained
	}
	return outBuf.Bytes(), errBuf.Bytes(), ws, nil
}

// tailBuffer keeps at most max bytes of what is written: the first ones (stdout,
// which is parsed) or the last ones (stderr, whose end says what went wrong).
type tailBuffer struct {
	mu       sync.Mutex
	buf      []byte
	max      int
	keepHead bool
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.keepHead {
		if room := t.max - len(t.buf); room > 0 {
			if len(p) < room {
				room = len(p)
			}
			t.buf = append(t.buf, p[:room]...)
		}
		return len(p), nil
	}
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) Bytes() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buf
}

// --- operations ---

func gitClone(r *http.Request) (any, error) {
	var req struct {
		gitBase
		gitAuth
		URL             string `json:"url"`
		Branch          string `json:"branch"`
		CommitID        string `json:"commit_id"`
		Depth           int    `json:"depth"`
		InsecureSkipTLS bool   `json:"insecure_skip_tls"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return nil, err
	}
	if req.URL == "" || strings.HasPrefix(req.URL, "-") {
		return nil, invalid("url is required")
	}
	if req.Depth < 0 {
		return nil, invalid("depth must not be negative")
	}
	if err := refName("branch", req.Branch); err != nil {
		return nil, err
	}
	g, err := newGitCall(r, req.gitBase, &req.gitAuth, false)
	if err != nil {
		return nil, err
	}
	var args []string
	if req.InsecureSkipTLS {
		// For this command only: nothing of it is kept in the clone's config.
		args = append(args, "-c", "http.sslVerify=false")
	}
	args = append(args, "clone", "--quiet")
	if req.Branch != "" {
		args = append(args, "--branch", req.Branch)
	}
	if req.Depth > 0 {
		args = append(args, "--depth", strconv.Itoa(req.Depth))
	}
	args = append(args, "--", req.URL, g.dir)
	if _, err := g.runIn("/", nil, args...); err != nil {
		return nil, err
	}
	if req.CommitID != "" {
		if _, err := g.run("-c", "advice.detachedHead=false", "checkout", "--detach", req.CommitID, "--"); err != nil {
			return nil, err
		}
	}
	return struct{}{}, nil
}

// refName refuses a name git would read as an option (an empty one is "not given").
func refName(field, name string) error {
	if strings.HasPrefix(name, "-") || strings.ContainsAny(name, "\x00\n") {
		return invalid("%s must be a name, not %q", field, name)
	}
	return nil
}

type gitFileStatus struct {
	Name     string `json:"name"`
	Staging  string `json:"staging"`
	Worktree string `json:"worktree"`
	Extra    string `json:"extra"`
}

type gitStatus struct {
	CurrentBranch   string          `json:"current_branch"`
	Ahead           int             `json:"ahead"`
	Behind          int             `json:"behind"`
	BranchPublished bool            `json:"branch_published"`
	Detached        bool            `json:"detached"`
	Upstream        string          `json:"upstream"`
	FileStatus      []gitFileStatus `json:"file_status"`
}

// statusName names a porcelain status letter as Daytona's toolbox does.
func statusName(c byte) string {
	switch c {
	case 'M', 'T':
		return "Modified"
	case 'A':
		return "Added"
	case 'D':
		return "Deleted"
	case 'R':
		return "Renamed"
	case 'C':
		return "Copied"
	case 'U':
		return "Updated but unmerged"
	case '?':
		return "Untracked"
	}
	return "Unmodified"
}

// parseStatus reads `git status --porcelain=v2 --branch -z`.
func parseStatus(out []byte) gitStatus {
	st := gitStatus{FileStatus: []gitFileStatus{}}
	recs := strings.Split(string(out), "\x00")
	for i := 0; i < len(recs); i++ {
		rec := recs[i]
		if len(rec) < 2 {
			continue
		}
		switch rec[0] {
		case '#':
			f := strings.Fields(rec)
			if len(f) < 3 {
				continue
			}
			switch f[1] {
			case "branch.head":
				st.CurrentBranch = f[2]
				if f[2] == "(detached)" {
					st.CurrentBranch, st.Detached = "HEAD", true
				}
			case "branch.upstream":
				st.BranchPublished, st.Upstream = true, f[2]
			case "branch.ab":
				if len(f) >= 4 {
					st.Ahead, _ = strconv.Atoi(strings.TrimPrefix(f[2], "+"))
					st.Behind, _ = strconv.Atoi(strings.TrimPrefix(f[3], "-"))
				}
			}
		case '1':
			if f := strings.SplitN(rec, " ", 9); len(f) == 9 && len(f[1]) == 2 {
				st.FileStatus = append(st.FileStatus, gitFileStatus{Name: f[8], Staging: statusName(f[1][0]), Worktree: statusName(f[1][1])})
			}
		case '2':
			if f := strings.SplitN(rec, " ", 10); len(f) == 10 && len(f[1]) == 2 {
				fs := gitFileStatus{Name: f[9], Staging: statusName(f[1][0]), Worktree: statusName(f[1][1])}
				if i+1 < len(recs) { // -z: the original path is the next record
					i++
					fs.Extra = recs[i]
				}
				st.FileStatus = append(st.FileStatus, fs)
			}
		case 'u':
			if f := strings.SplitN(rec, " ", 11); len(f) == 11 {
				u := statusName('U')
				st.FileStatus = append(st.FileStatus, gitFileStatus{Name: f[10], Staging: u, Worktree: u, Extra: f[1]})
			}
		case '?':
			u := statusName('?')
			st.FileStatus = append(st.FileStatus, gitFileStatus{Name: rec[2:], Staging: u, Worktree: u})
		}
	}
	return st
}

func gitStatusOp(r *http.Request) (any, error) {
	var req gitBase
	if err := decodeJSON(r, &req); err != nil {
		return nil, err
	}
	g, err := newGitCall(r, req, nil, true)
	if err != nil {
		return nil, err
	}
	out, err := g.run("status", "--porcelain=v2", "--branch", "-z")
	if err != nil {
		return nil, err
	}
	return parseStatus(out), nil
}

func gitAdd(r *http.Request) (any, error) {
	var req struct {
		gitBase
		Files []string `json:"files"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return nil, err
	}
	if len(req.Files) == 0 {
		return nil, invalid("files is required (\".\" for everything)")
	}
	g, err := newGitCall(r, req.gitBase, nil, true)
	if err != nil {
		return nil, err
	}
	if _, err := g.run(append([]string{"add", "--"}, req.Files...)...); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func gitCommit(r *http.Request) (any, error) {
	var req struct {
		gitBase
		Message    string `json:"message"`
		Author     string `json:"author"`
		Email      string `json:"email"`
		AllowEmpty bool   `json:"allow_empty"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return nil, err
	}
	if req.Message == "" {
		return nil, invalid("message is required")
	}
	g, err := newGitCall(r, req.gitBase, nil, true)
	if err != nil {
		return nil, err
	}
	// The author travels in the environment, so no git config is needed.
	var env []string
	if req.Author != "" {
		env = append(env, "GIT_AUTHOR_NAME="+req.Author, "GIT_COMMITTER_NAME="+req.Author)
	}
	if req.Email != "" {
		env = append(env, "GIT_AUTHOR_EMAIL="+req.Email, "GIT_COMMITTER_EMAIL="+req.Email)
	}
	args := []string{"commit", "--quiet", "-m", req.Message}
	if req.AllowEmpty {
		args = append(args, "--allow-empty")
	}
	if _, err := g.runIn(g.dir, env, args...); err != nil {
		return nil, err
	}
	out, err := g.run("rev-parse", "HEAD")
	if err != nil {
		return nil, err
	}
	return map[string]string{"sha": strings.TrimSpace(string(out))}, nil
}

func gitBranches(r *http.Request) (any, error) {
	var req gitBase
	if err := decodeJSON(r, &req); err != nil {
		return nil, err
	}
	g, err := newGitCall(r, req, nil, true)
	if err != nil {
		return nil, err
	}
	out, err := g.run("branch", "--format=%(refname:short)")
	if err != nil {
		return nil, err
	}
	branches := []string{}
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			branches = append(branches, l)
		}
	}
	// Empty when HEAD is detached (symbolic-ref fails then).
	current, _, err := g.probe("symbolic-ref", "--quiet", "--short", "HEAD")
	if err != nil {
		return nil, err
	}
	return map[string]any{"branches": branches, "current": strings.TrimSpace(string(current))}, nil
}

type branchRequest struct {
	gitBase
	Name  string `json:"name"`
	Force bool   `json:"force"`
}

func decodeBranch(r *http.Request) (*branchRequest, *gitCall, error) {
	var req branchRequest
	if err := decodeJSON(r, &req); err != nil {
		return nil, nil, err
	}
	if req.Name == "" || strings.HasPrefix(req.Name, "-") {
		return nil, nil, invalid("name must be a branch name")
	}
	g, err := newGitCall(r, req.gitBase, nil, true)
	return &req, g, err
}

// gitCreateBranch creates the branch from HEAD and checks it out (as Daytona's
// toolbox and E2B do).
func gitCreateBranch(r *http.Request) (any, error) {
	req, g, err := decodeBranch(r)
	if err != nil {
		return nil, err
	}
	if _, err := g.run("checkout", "--quiet", "-b", req.Name); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func gitDeleteBranch(r *http.Request) (any, error) {
	req, g, err := decodeBranch(r)
	if err != nil {
		return nil, err
	}
	flag := "-d"
	if req.Force {
		flag = "-D"
	}
	if _, err := g.run("branch", flag, "--", req.Name); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func gitCheckout(r *http.Request) (any, error) {
	var req struct {
		gitBase
		Branch string `json:"branch"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return nil, err
	}
	if req.Branch == "" || strings.HasPrefix(req.Branch, "-") {
		return nil, invalid("branch must be a branch name")
	}
	g, err := newGitCall(r, req.gitBase, nil, true)
	if err != nil {
		return nil, err
	}
	// "--" makes the name a branch (or commit), never a path.
	if _, err := g.run("checkout", "--quiet", req.Branch, "--"); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

type remoteRequest struct {
	gitBase
	gitAuth
	Remote      string `json:"remote"`
	Branch      string `json:"branch"`
	SetUpstream bool   `json:"set_upstream"`
}

func decodeRemote(r *http.Request) (*remoteRequest, *gitCall, error) {
	var req remoteRequest
	if err := decodeJSON(r, &req); err != nil {
		return nil, nil, err
	}
	if err := refName("remote", req.Remote); err != nil {
		return nil, nil, err
	}
	if err := refName("branch", req.Branch); err != nil {
		return nil, nil, err
	}
	g, err := newGitCall(r, req.gitBase, &req.gitAuth, true)
	return &req, g, err
}

// gitPull pulls the current branch's upstream, or `branch` of `remote` ("origin"
// when only the branch is named).
func gitPull(r *http.Request) (any, error) {
	req, g, err := decodeRemote(r)
	if err != nil {
		return nil, err
	}
	args := []string{"pull", "--quiet"}
	if req.Remote != "" || req.Branch != "" {
		args = append(args, orDefault(req.Remote, "origin"))
		if req.Branch != "" {
			args = append(args, req.Branch)
		}
	}
	if _, err := g.run(args...); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// gitPush pushes the current branch; one that has no upstream yet is published to
// the first remote under its own name and tracks it from then on. A named remote or
// branch is pushed as asked (the remote "origin", the branch the current one when
// not named), tracked only with set_upstream.
func gitPush(r *http.Request) (any, error) {
	req, g, err := decodeRemote(r)
	if err != nil {
		return nil, err
	}
	args := []string{"push", "--quiet"}
	if req.Remote != "" || req.Branch != "" || req.SetUpstream {
		if req.SetUpstream {
			args = append(args, "--set-upstream")
		}
		args = append(args, orDefault(req.Remote, "origin"), orDefault(req.Branch, "HEAD"))
	} else if _, err := g.run("rev-parse", "--abbrev-ref", "--symbolic-full-name", "@{upstream}"); err != nil {
		out, err := g.run("remote")
		if err != nil {
			return nil, err
		}
		remote := strings.TrimSpace(string(bytes.SplitN(out, []byte("\n"), 2)[0]))
		if remote == "" {
			return nil, errorf(http.StatusBadRequest, "git_failed", "the repository has no remote to push to")
		}
		args = append(args, "--set-upstream", remote, "HEAD")
	}
	if _, err := g.run(args...); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// gitInit makes a repository at path (and the directories leading to it).
func gitInit(r *http.Request) (any, error) {
	var req struct {
		gitBase
		Bare          bool   `json:"bare"`
		InitialBranch string `json:"initial_branch"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return nil, err
	}
	if err := refName("initial_branch", req.InitialBranch); err != nil {
		return nil, err
	}
	g, err := newGitCall(r, req.gitBase, nil, false)
	if err != nil {
		return nil, err
	}
	args := []string{"init", "--quiet"}
	if req.Bare {
		args = append(args, "--bare")
	}
	if req.InitialBranch != "" {
		args = append(args, "--initial-branch="+req.InitialBranch)
	}
	if _, err := g.runIn("/", nil, append(args, "--", g.dir)...); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

var resetModes = map[string]bool{"soft": true, "mixed": true, "hard": true, "merge": true, "keep": true}

// gitReset moves HEAD to target (HEAD when not given) in mode (mixed by default);
// with files, it resets only their index entries (mixed only, as git allows).
func gitReset(r *http.Request) (any, error) {
	var req struct {
		gitBase
		Mode   string   `json:"mode"`
		Target string   `json:"target"`
		Files  []string `json:"files"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return nil, err
	}
	mode := orDefault(req.Mode, "mixed")
	if !resetModes[mode] {
		return nil, invalid("mode must be one of soft, mixed, hard, merge, keep")
	}
	if len(req.Files) > 0 && mode != "mixed" {
		return nil, invalid("files can only be reset in mixed mode")
	}
	if err := refName("target", req.Target); err != nil {
		return nil, err
	}
	g, err := newGitCall(r, req.gitBase, nil, true)
	if err != nil {
		return nil, err
	}
	args := []string{"reset", "--quiet"}
	if len(req.Files) > 0 {
		args = append(append(args, orDefault(req.Target, "HEAD"), "--"), req.Files...)
	} else {
		args = append(args, "--"+mode)
		if req.Target != "" {
			args = append(args, req.Target, "--")
		}
	}
	if _, err := g.run(args...); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// gitRestore restores files in the worktree (the default), the index, or both,
// from the index or from source.
func gitRestore(r *http.Request) (any, error) {
	var req struct {
		gitBase
		Files    []string `json:"files"`
		Staged   bool     `json:"staged"`
		Worktree bool     `json:"worktree"`
		Source   string   `json:"source"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return nil, err
	}
	if len(req.Files) == 0 {
		return nil, invalid("files is required")
	}
	if err := refName("source", req.Source); err != nil {
		return nil, err
	}
	g, err := newGitCall(r, req.gitBase, nil, true)
	if err != nil {
		return nil, err
	}
	args := []string{"restore"}
	if req.Staged {
		args = append(args, "--staged")
	}
	if req.Worktree {
		args = append(args, "--worktree")
	}
	if req.Source != "" {
		args = append(args, "--source="+req.Source)
	}
	if _, err := g.run(append(append(args, "--"), req.Files...)...); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

type gitRemote struct {
	Name string `json:"name"`
	URL  string `json:"url"`
}

func listRemotes(g *gitCall) ([]gitRemote, error) {
	out, ok, err := g.probe("config", "--local", "--get-regexp", `^remote\..*\.url$`)
	if err != nil || !ok { // status 1: no remote at all
		return []gitRemote{}, err
	}
	remotes := []gitRemote{}
	for _, l := range strings.Split(string(out), "\n") {
		key, url, found := strings.Cut(l, " ")
		if !found || !strings.HasPrefix(key, "remote.") || !strings.HasSuffix(key, ".url") {
			continue
		}
		remotes = append(remotes, gitRemote{Name: key[len("remote.") : len(key)-len(".url")], URL: url})
	}
	return remotes, nil
}

func gitRemotes(r *http.Request) (any, error) {
	var req gitBase
	if err := decodeJSON(r, &req); err != nil {
		return nil, err
	}
	g, err := newGitCall(r, req, nil, true)
	if err != nil {
		return nil, err
	}
	remotes, err := listRemotes(g)
	if err != nil {
		return nil, err
	}
	return map[string]any{"remotes": remotes}, nil
}

// gitRemoteAdd adds a remote (409 if it exists, unless overwrite replaces its URL)
// and fetches it with fetch.
func gitRemoteAdd(r *http.Request) (any, error) {
	var req struct {
		gitBase
		Name      string `json:"name"`
		URL       string `json:"url"`
		Fetch     bool   `json:"fetch"`
		Overwrite bool   `json:"overwrite"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return nil, err
	}
	if req.Name == "" || req.URL == "" {
		return nil, invalid("name and url are required")
	}
	if err := refName("name", req.Name); err != nil {
		return nil, err
	}
	g, err := newGitCall(r, req.gitBase, nil, true)
	if err != nil {
		return nil, err
	}
	_, exists, err := g.probe("remote", "get-url", "--", req.Name)
	if err != nil {
		return nil, err
	}
	switch {
	case exists && !req.Overwrite:
		return nil, conflict("remote %s already exists", req.Name)
	case exists:
		_, err = g.run("remote", "set-url", "--", req.Name, req.URL)
	default:
		_, err = g.run("remote", "add", "--", req.Name, req.URL)
	}
	if err != nil {
		return nil, err
	}
	if req.Fetch {
		if _, err := g.run("fetch", "--quiet", "--", req.Name); err != nil {
			return nil, err
		}
	}
	return struct{}{}, nil
}

type configRequest struct {
	Path  string  `json:"path"`
	User  string  `json:"user"`
	Scope string  `json:"scope"`
	Key   string  `json:"key"`
	Value *string `json:"value"`
}

// decodeConfig reads a config request: scope global (the default) or system run in
// the user's home, local in the repository at path.
func decodeConfig(r *http.Request) (*configRequest, *gitCall, error) {
	var req configRequest
	if err := decodeJSON(r, &req); err != nil {
		return nil, nil, err
	}
	req.Scope = orDefault(req.Scope, "global")
	if req.Scope != "global" && req.Scope != "local" && req.Scope != "system" {
		return nil, nil, invalid("scope must be global, local or system")
	}
	if req.Key == "" || strings.HasPrefix(req.Key, "-") {
		return nil, nil, invalid("key must be a config key such as user.name")
	}
	base, local := gitBase{Path: req.Path, User: req.User}, req.Scope == "local"
	if local && req.Path == "" {
		return nil, nil, invalid("path is required for the local scope")
	}
	if !local {
		base.Path = "/"
	}
	g, err := newGitCall(r, base, nil, local)
	if err == nil && !local && g.id.Home != "" {
		g.dir = g.id.Home
	}
	return &req, g, err
}

// gitConfigGet answers a key's value, null when it is not set.
func gitConfigGet(r *http.Request) (any, error) {
	req, g, err := decodeConfig(r)
	if err != nil {
		return nil, err
	}
	out, ok, err := g.probe("config", "--"+req.Scope, "--get", "--", req.Key)
	if err != nil {
		return nil, err
	}
	if !ok {
		return map[string]any{"value": nil}, nil
	}
	return map[string]any{"value": strings.TrimSuffix(string(out), "\n")}, nil
}

func gitConfigSet(r *http.Request) (any, error) {
	req, g, err := decodeConfig(r)
	if err != nil {
		return nil, err
	}
	if req.Value == nil {
		return nil, invalid("value is required")
	}
	if _, err := g.run("config", "--"+req.Scope, "--", req.Key, *req.Value); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// gitCredentials stores a username and password for protocol://host in the user's
// git credential store (~/.git-credentials, plain text: what Daytona's
// dangerously_authenticate asks for) and makes that store the global helper.
func gitCredentials(r *http.Request) (any, error) {
	var req struct {
		User     string `json:"user"`
		Username string `json:"username"`
		Password string `json:"password"`
		Host     string `json:"host"`
		Protocol string `json:"protocol"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return nil, err
	}
	host, protocol := orDefault(req.Host, "github.com"), orDefault(req.Protocol, "https")
	for _, v := range []string{req.Username, req.Password, host, protocol} {
		if strings.ContainsAny(v, "\x00\n") {
			return nil, invalid("credentials must not contain newlines")
		}
	}
	if req.Username == "" || req.Password == "" {
		return nil, invalid("username and password are required")
	}
	g, err := newGitCall(r, gitBase{Path: "/", User: req.User}, nil, false)
	if err != nil {
		return nil, err
	}
	if g.id.Home != "" {
		g.dir = g.id.Home
	}
	if _, err := g.run("config", "--global", "credential.helper", "store"); err != nil {
		return nil, err
	}
	input := "protocol=" + protocol + "\nhost=" + host + "\nusername=" + req.Username + "\npassword=" + req.Password + "\n\n"
	if _, err := g.runInput(g.dir, nil, []byte(input), "credential", "approve"); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}
