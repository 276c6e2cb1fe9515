package main

import (
	"encoding/json"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestGlobMatch(t *testing.T) {
	cases := []struct {
		pattern, name string
		want          bool
	}{
		{"*.py", "main.py", true},
		{"*.py", ".hidden.py", true},
		{"*.py", "main.pyc", false},
		{"*", "", true},
		{"?", "é", true},
		{"??", "é", false},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
		{"[abc].go", "b.go", true},
		{"[!abc].go", "b.go", false},
		{"[^abc].go", "d.go", true},
		{"[a-c]x", "cx", true},
		{"[a-c]x", "dx", false},
		{"[]]", "]", true},
		{"[", "[", true},
		{"[ab", "[ab", true},
		{`\*`, "*", true},
		{`\*`, "a", false},
		{"src/*/x.py", "src/a/x.py", true},
		{"src/*/x.py", "src/a/b/x.py", true}, // like find -path
		{"src/*.py", "lib/a.py", false},
		{"*é*", "café", true},
	}
	for _, c := range cases {
		if got := globMatch(c.pattern, c.name); got != c.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", c.pattern, c.name, got, c.want)
		}
	}
}

func TestGlobTarget(t *testing.T) {
	if got := globTarget("src/*.py", "/w", "/w/src/a.py"); got != "src/a.py" {
		t.Errorf("relative target %q", got)
	}
	if got := globTarget("src/*.py", "/", "/src/a.py"); got != "src/a.py" {
		t.Errorf("relative target from / %q", got)
	}
	if got := globTarget("*.py", "/w", "/w/src/a.py"); got != "a.py" {
		t.Errorf("name target %q", got)
	}
}

func TestAsciiJSON(t *testing.T) {
	b, _ := json.Marshal(map[string]string{"name": "café 😀"})
	got := asciiJSON(b)
	for _, c := range got {
		if c > 127 {
			t.Fatalf("non-ASCII left in %q", got)
		}
	}
	var back map[string]string
	if err := json.Unmarshal([]byte(got), &back); err != nil || back["name"] != "café 😀" {
		t.Fatalf("round trip: %v %q", err, back["name"])
	}
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]uint32{"0644": 0o644, "755": 0o755, "4755": 0o4755, "1777": 0o1777} {
		if got, err := parseMode(in); err != nil || got != want {
			t.Errorf("parseMode(%q) = %o, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "9", "17777", "rw"} {
		if _, err := parseMode(in); err == nil {
			t.Errorf("parseMode(%q) accepted", in)
		}
	}
}

func TestSearchFile(t *testing.T) {
	data := []byte("alpha\r\nBeta alpha\nno\n" + strings.Repeat("x", 1200) + "alpha\n")
	m, err := newLineMatcher("alpha", false, true)
	if err != nil {
		t.Fatal(err)
	}
	var out searchResult
	if !searchFile("/f", data, m, &out, 10) {
		t.Fatal("stopped early")
	}
	if len(out.Matches) != 3 {
		t.Fatalf("matches %+v", out.Matches)
	}
	if out.Matches[0] != (searchMatch{"/f", 1, 1, "alpha"}) || out.Matches[1] != (searchMatch{"/f", 2, 6, "Beta alpha"}) {
		t.Fatalf("matches %+v", out.Matches[:2])
	}
	if m3 := out.Matches[2]; m3.Line != 4 || m3.Column != 1201 || len(m3.Content) != maxMatchLine {
		t.Fatalf("long line %d %d %d", m3.Line, m3.Column, len(m3.Content))
	}

	ci, _ := newLineMatcher("BETA", false, false)
	out = searchResult{}
	searchFile("/f", data, ci, &out, 10)
	if len(out.Matches) != 1 || out.Matches[0].Line != 2 {
		t.Fatalf("case-insensitive %+v", out.Matches)
	}

	re, _ := newLineMatcher(`^a\w+$`, true, true)
	out = searchResult{}
	searchFile("/f", data, re, &out, 10)
	if len(out.Matches) != 1 || out.Matches[0].Line != 1 {
		t.Fatalf("regex %+v", out.Matches)
	}

	out = searchResult{}
	if searchFile("/f", data, m, &out, 2) || !out.Truncated || len(out.Matches) != 2 {
		t.Fatalf("limit %+v", out)
	}
	if _, err := newLineMatcher("(", true, true); err == nil {
		t.Fatal("bad regex accepted")
	}
}

func TestTrimLine(t *testing.T) {
	s := strings.Repeat("a", maxMatchLine-1) + "é"
	if got := trimLine([]byte(s)); got != strings.Repeat("a", maxMatchLine-1) {
		t.Fatalf("split a character: %q", got[len(got)-3:])
	}
}

func TestParseStatus(t *testing.T) {
	out := strings.Join([]string{
		"# branch.oid 1234",
		"# branch.head main",
		"# branch.upstream origin/main",
		"# branch.ab +2 -1",
		"1 .M N... 100644 100644 100644 aaaa bbbb file with space.txt",
		"1 A. N... 000000 100644 100644 0000 cccc new.txt",
		"2 R. N... 100644 100644 100644 dddd eeee R100 renamed.txt",
		"old.txt",
		"u UU N... 100644 100644 100644 100644 ffff gggg hhhh conflict.txt",
		"? untracked.txt",
		"",
	}, "\x00")
	got := parseStatus([]byte(out))
	want := gitStatus{
		CurrentBranch: "main", Ahead: 2, Behind: 1, BranchPublished: true, Upstream: "origin/main",
		FileStatus: []gitFileStatus{
			{"file with space.txt", "Unmodified", "Modified", ""},
			{"new.txt", "Added", "Unmodified", ""},
			{"renamed.txt", "Renamed", "Unmodified", "old.txt"},
			{"conflict.txt", "Updated but unmerged", "Updated but unmerged", "UU"},
			{"untracked.txt", "Untracked", "Untracked", ""},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	detached := parseStatus([]byte("# branch.oid 1234\x00# branch.head (detached)\x00"))
	if detached.CurrentBranch != "HEAD" || !detached.Detached || detached.BranchPublished || len(detached.FileStatus) != 0 {
		t.Fatalf("detached %+v", detached)
	}
}

func TestLastLines(t *testing.T) {
	if got := lastLines([]byte("a\n\n b \nc\n"), 2); got != "b\nc" {
		t.Fatalf("lastLines %q", got)
	}
}

func TestAskpassMain(t *testing.T) {
	t.Setenv("SANDBAY_GIT_USERNAME", "bob")
	t.Setenv("SANDBAY_GIT_PASSWORD", "s3cr3t")
	answer := func(args ...string) string {
		r, w, _ := os.Pipe()
		saved := os.Stdout
		os.Stdout = w
		code := askpassMain(args)
		os.Stdout = saved
		w.Close()
		out, _ := io.ReadAll(r)
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
		return string(out)
	}
	if got := answer("Username for 'https://h': "); got != "bob\n" {
		t.Errorf("username %q", got)
	}
	if got := answer("Password for 'https://bob@h': "); got != "s3cr3t\n" {
		t.Errorf("password %q", got)
	}
	if got := answer(); got != "s3cr3t\n" {
		t.Errorf("no prompt %q", got)
	}
}
