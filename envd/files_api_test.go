package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The files and git APIs end to end over HTTP, as envd's own identity, in a
// temporary directory.

type apiClient struct {
	t   *testing.T
	srv *httptest.Server
}

func newAPIClient(t *testing.T) *apiClient {
	srv := httptest.NewServer(newServer("t"))
	t.Cleanup(srv.Close)
	return &apiClient{t, srv}
}

func (c *apiClient) do(method, path string, query url.Values, body []byte) (int, http.Header, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.srv.URL+path+"?"+query.Encode(), bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer t")
	resp, err := c.srv.Client().Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, out
}

// post sends v as JSON and decodes the answer into out (when given); it answers
// the status.
func (c *apiClient) post(path string, v any, out any) int {
	c.t.Helper()
	body, _ := json.Marshal(v)
	status, _, data := c.do(http.MethodPost, path, nil, body)
	if out != nil && status == http.StatusOK {
		if err := json.Unmarshal(data, out); err != nil {
			c.t.Fatalf("%s: %v: %s", path, err, data)
		}
	}
	return status
}

func q(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

func entryNames(entries []fileInfo) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e.Name)
	}
	return out
}

func TestFilesAPI(t *testing.T) {
	c := newAPIClient(t)
	dir := t.TempDir()
	file := dir + "/sub/f.txt"

	status, _, body := c.do(http.MethodPut, "/v1/files/content", q("path", file), []byte("hello"))
	var info fileInfo
	if status != 200 || json.Unmarshal(body, &info) != nil || info.Size != 5 || info.Mode != "0644" || info.Type != "file" {
		t.Fatalf("put: %d %s", status, body)
	}
	status, hdr, body := c.do(http.MethodGet, "/v1/files/content", q("path", file), nil)
	if status != 200 || string(body) != "hello" || !strings.Contains(hdr.Get("X-Sandbay-Stat"), `"size":5`) {
		t.Fatalf("get: %d %q %v", status, body, hdr)
	}
	if status, _, _ := c.do(http.MethodGet, "/v1/files/content", q("path", dir), nil); status != 400 {
		t.Fatalf("get of a directory: %d", status)
	}
	if status, _, _ := c.do(http.MethodGet, "/v1/files/stat", q("path", dir+"/missing"), nil); status != 404 {
		t.Fatalf("stat of a missing file: %d", status)
	}
	if status, _, _ := c.do(http.MethodGet, "/v1/files/stat", q("path", "relative"), nil); status != 400 {
		t.Fatalf("stat of a relative path: %d", status)
	}

	// A body shorter than announced: 400, and nothing left in the directory.
	conn, err := net.Dial("tcp", c.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	target := url.QueryEscape(dir + "/sub/short")
	_, _ = io.WriteString(conn, "PUT /v1/files/content?path="+target+" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\nContent-Length: 10\r\n\r\nabc")
	_ = conn.(*net.TCPConn).CloseWrite()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != 400 {
		t.Fatalf("short body: %v %v", resp, err)
	}
	conn.Close()
	if got, _ := os.ReadDir(dir + "/sub"); len(got) != 1 {
		t.Fatalf("left behind: %v", got)
	}

	var made fileInfo
	if c.post("/v1/files/mkdir", map[string]any{"path": dir + "/d/e", "mode": "0700"}, &made) != 200 || made.Mode != "0700" {
		t.Fatalf("mkdir: %+v", made)
	}
	if c.post("/v1/files/mkdir", map[string]any{"path": dir + "/d/e", "parents": false}, nil) != 409 {
		t.Fatal("mkdir of an existing directory without parents")
	}
	var list entryList
	_, _, body = c.do(http.MethodGet, "/v1/files/list", q("path", dir, "depth", "2"), nil)
	if json.Unmarshal(body, &list) != nil || strings.Join(entryNames(list.Entries), ",") != "d,e,sub,f.txt" || list.Truncated {
		t.Fatalf("list: %s", body)
	}
	_, _, body = c.do(http.MethodGet, "/v1/files/list", q("path", dir, "depth", "2", "limit", "1"), nil)
	if json.Unmarshal(body, &list) != nil || len(list.Entries) != 1 || !list.Truncated {
		t.Fatalf("list with a limit: %s", body)
	}
	_, _, body = c.do(http.MethodGet, "/v1/files/find", q("path", dir, "pattern", "*.txt"), nil)
	if json.Unmarshal(body, &list) != nil || len(list.Entries) != 1 || list.Entries[0].Path != file {
		t.Fatalf("find: %s", body)
	}

	var moved fileInfo
	if c.post("/v1/files/move", map[string]any{"source": file, "destination": dir + "/d/g.txt"}, &moved) != 200 || moved.Size != 5 {
		t.Fatalf("move: %+v", moved)
	}
	if c.post("/v1/files/move", map[string]any{"source": dir + "/d/g.txt", "destination": dir + "/d/e"}, nil) != 409 {
		t.Fatal("move onto an existing directory")
	}
	var changed fileInfo
	if c.post("/v1/files/permissions", map[string]any{"path": dir + "/d/g.txt", "mode": "0600"}, &changed) != 200 || changed.Mode != "0600" {
		t.Fatalf("permissions: %+v", changed)
	}

	var found searchResult
	if c.post("/v1/files/search", map[string]any{"path": dir, "pattern": "LL", "case_sensitive": false}, &found) != 200 ||
		len(found.Matches) != 1 || found.Matches[0] != (searchMatch{dir + "/d/g.txt", 1, 3, "hello"}) {
		t.Fatalf("search: %+v", found)
	}
	var replaced struct{ Results []replaceResult }
	if c.post("/v1/files/replace", map[string]any{"files": []string{dir + "/d/g.txt"}, "pattern": "l", "new_value": "L"}, &replaced) != 200 ||
		!replaced.Results[0].Success || replaced.Results[0].Replacements != 2 {
		t.Fatalf("replace: %+v", replaced)
	}
	if data, _ := os.ReadFile(dir + "/d/g.txt"); string(data) != "heLLo" {
		t.Fatalf("replaced content %q", data)
	}
	if st, _ := os.Stat(dir + "/d/g.txt"); st.Mode().Perm() != 0o600 {
		t.Fatalf("replace lost the mode: %v", st.Mode())
	}

	if status, _, _ := c.do(http.MethodDelete, "/v1/files", q("path", dir+"/d"), nil); status != 409 {
		t.Fatalf("delete of a full directory: %d", status)
	}
	if status, _, _ := c.do(http.MethodDelete, "/v1/files", q("path", dir+"/d", "recursive", "true"), nil); status != 200 {
		t.Fatalf("recursive delete: %d", status)
	}
	if _, err := os.Stat(dir + "/d"); !os.IsNotExist(err) {
		t.Fatal("still there")
	}
}

func TestGitAPI(t *testing.T) {
	gitPath, err := lookPath("git", os.Getenv("PATH"))
	if err != nil {
		t.Skip("no git here")
	}
	startReaper()
	c := newAPIClient(t)
	dir := t.TempDir()
	bare, work := filepath.Join(dir, "bare.git"), filepath.Join(dir, "work")
	self, _ := resolveUser("")
	if _, _, ws, err := runChild(context.Background(), gitPath, []string{"git", "init", "-q", "--bare", bare}, "/", gitEnv(self), self); err != nil || ws.ExitStatus() != 0 {
		t.Fatalf("git init: %v %v", err, ws)
	}
	if c.post("/v1/git/clone", map[string]any{"url": bare, "path": work}, nil) != 200 {
		t.Fatal("clone")
	}
	if err := os.WriteFile(work+"/a.txt", []byte("a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var st gitStatus
	if c.post("/v1/git/status", map[string]any{"path": work}, &st) != 200 || len(st.FileStatus) != 1 || st.FileStatus[0].Worktree != "Untracked" {
		t.Fatalf("status: %+v", st)
	}
	if c.post("/v1/git/add", map[string]any{"path": work, "files": []string{"a.txt"}}, nil) != 200 {
		t.Fatal("add")
	}
	var commit struct{ Sha string }
	if c.post("/v1/git/commit", map[string]any{"path": work, "message": "one", "author": "A", "email": "a@x"}, &commit) != 200 || len(commit.Sha) != 40 {
		t.Fatalf("commit: %+v", commit)
	}
	if c.post("/v1/git/push", map[string]any{"path": work}, nil) != 200 {
		t.Fatal("push")
	}
	if c.post("/v1/git/status", map[string]any{"path": work}, &st) != 200 || !st.BranchPublished || len(st.FileStatus) != 0 {
		t.Fatalf("status after push: %+v", st)
	}
	main := st.CurrentBranch
	if c.post("/v1/git/create_branch", map[string]any{"path": work, "name": "feature"}, nil) != 200 {
		t.Fatal("create_branch")
	}
	var br struct{ Branches []string }
	if c.post("/v1/git/branches", map[string]any{"path": work}, &br) != 200 || len(br.Branches) != 2 {
		t.Fatalf("branches: %+v", br)
	}
	if c.post("/v1/git/checkout", map[string]any{"path": work, "branch": main}, nil) != 200 {
		t.Fatal("checkout")
	}
	if c.post("/v1/git/delete_branch", map[string]any{"path": work, "name": "feature"}, nil) != 200 {
		t.Fatal("delete_branch")
	}
	var failed map[string]string
	body, _ := json.Marshal(map[string]any{"path": work, "branch": "nope"})
	status, _, data := c.do(http.MethodPost, "/v1/git/checkout", nil, body)
	if json.Unmarshal(data, &failed); status != 400 || failed["code"] != "git_failed" || failed["error"] == "" {
		t.Fatalf("failed checkout: %d %s", status, data)
	}
}
