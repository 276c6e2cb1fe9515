package main

// Content search and replace (POST /v1/files/search, /v1/files/replace), and the
// glob matcher that find and search's include share.

import (
	"bytes"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"syscall"
	"unicode/utf8"
)

const (
	maxSearchFile  = 16 << 20 // larger files are skipped by search
	maxReplaceFile = 64 << 20 // and refused by replace
	binarySniff    = 8 << 10  // a NUL byte this early marks a file as binary
	maxMatchLine   = 1000
)

// globMatch reports whether name matches a shell glob: `*` (any run, `/` included,
// as with find -name and -path), `?` (one character), `[...]` classes with ranges
// and `!` or `^` negation, and `\` escapes. A `[` without its `]` is literal.
func globMatch(pattern, name string) bool {
	px, nx := 0, 0
	nextPx, nextNx := -1, -1
	for px < len(pattern) || nx < len(name) {
		if px < len(pattern) {
			switch c := pattern[px]; c {
			case '*':
				nextPx, nextNx = px, nx
				px++
				continue
			case '?':
				if nx < len(name) {
					_, w := utf8.DecodeRuneInString(name[nx:])
					px++
					nx += w
					continue
				}
			case '[':
				if nx < len(name) {
					r, w := utf8.DecodeRuneInString(name[nx:])
					if ok, end, valid := matchClass(pattern, px, r); valid {
						if ok {
							px = end
							nx += w
							continue
						}
						break
					}
				}
				if nx < len(name) && name[nx] == '[' {
					px++
					nx++
					continue
				}
			case '\\':
				lit := byte('\\')
				step := 1
				if px+1 < len(pattern) {
					lit, step = pattern[px+1], 2
				}
				if nx < len(name) && name[nx] == lit {
					px += step
					nx++
					continue
				}
			default:
				if nx < len(name) && name[nx] == c {
					px++
					nx++
					continue
				}
			}
		}
		// Mismatch: let the last star take one more character, if there was one.
		if nextPx >= 0 && nextNx < len(name) {
			_, w := utf8.DecodeRuneInString(name[nextNx:])
			nextNx += w
			px, nx = nextPx+1, nextNx
			continue
		}
		return false
	}
	return true
}

// matchClass matches r against the class opening at pattern[px] ('['); end is the
// index after its ']'; valid is false when the class is not closed.
func matchClass(pattern string, px int, r rune) (ok bool, end int, valid bool) {
	i := px + 1
	negate := false
	if i < len(pattern) && (pattern[i] == '!' || pattern[i] == '^') {
		negate = true
		i++
	}
	first := true
	for i < len(pattern) {
		if pattern[i] == ']' && !first {
			return ok != negate, i + 1, true
		}
		first = false
		lo, w := classChar(pattern, i)
		i += w
		hi := lo
		if i+1 < len(pattern) && pattern[i] == '-' && pattern[i+1] != ']' {
			hi, w = classChar(pattern, i+1)
			i += 1 + w
		}
		if lo <= r && r <= hi {
			ok = true
		}
	}
	return false, 0, false
}

func classChar(pattern string, i int) (rune, int) {
	if pattern[i] == '\\' && i+1 < len(pattern) {
		r, w := utf8.DecodeRuneInString(pattern[i+1:])
		return r, w + 1
	}
	return utf8.DecodeRuneInString(pattern[i:])
}

// lineMatcher finds the first match in a line (its byte offset, or -1) and, when it
// can, rules out a whole file at once.
type lineMatcher struct {
	literal []byte         // case-sensitive literal search
	re      *regexp.Regexp // otherwise
	// whole is true when a match in the whole text implies one within a line (a
	// literal without a newline), so a file without one is skipped unread line by line.
	whole bool
}

func newLineMatcher(pattern string, isRegex, caseSensitive bool) (*lineMatcher, error) {
	if pattern == "" {
		return nil, invalid("pattern is required")
	}
	if !isRegex && caseSensitive {
		return &lineMatcher{literal: []byte(pattern), whole: true}, nil
	}
	expr := pattern
	if !isRegex {
		expr = regexp.QuoteMeta(pattern)
	}
	if !caseSensitive {
		expr = "(?i)" + expr
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, invalid("invalid regular expression: %v", err)
	}
	return &lineMatcher{re: re, whole: !isRegex}, nil
}

func (m *lineMatcher) index(b []byte) int {
	if m.literal != nil {
		return bytes.Index(b, m.literal)
	}
	if loc := m.re.FindIndex(b); loc != nil {
		return loc[0]
	}
	return -1
}

type searchRequest struct {
	Path          string `json:"path"`
	Pattern       string `json:"pattern"`
	Regex         bool   `json:"regex"`
	CaseSensitive *bool  `json:"case_sensitive"`
	Include       string `json:"include"`
	Limit         int    `json:"limit"`
	User          string `json:"user"`
}

type searchMatch struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Content string `json:"content"`
}

type searchResult struct {
	Matches   []searchMatch `json:"matches"`
	Truncated bool          `json:"truncated"`
}

// readSmall reads a regular file of at most max bytes into buf (reused between
// files); ok is false for anything else, which a search skips.
func readSmall(p string, max int64, buf []byte) (data []byte, ok bool) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return buf, false
	}
	defer f.Close()
	var st syscall.Stat_t
	if syscall.Fstat(int(f.Fd()), &st) != nil || st.Mode&syscall.S_IFMT != syscall.S_IFREG || st.Size > max {
		return buf, false
	}
	if int64(cap(buf)) < st.Size+1 {
		buf = make([]byte, 0, st.Size+512)
	}
	buf = buf[:0]
	for int64(len(buf)) <= max {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := f.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, true
		}
		if err != nil {
			return buf, false
		}
	}
	return buf, false // grew past max while read
}

func isBinary(b []byte) bool {
	if len(b) > binarySniff {
		b = b[:binarySniff]
	}
	return bytes.IndexByte(b, 0) >= 0
}

// trimLine cuts a line to maxMatchLine bytes without splitting a character.
func trimLine(b []byte) string {
	if len(b) <= maxMatchLine {
		return string(b)
	}
	end := maxMatchLine
	for end > 0 && !utf8.RuneStart(b[end]) {
		end--
	}
	return string(b[:end])
}

// searchFile appends the matching lines of data (one match per line: the first)
// and answers false once limit is passed.
func searchFile(file string, data []byte, m *lineMatcher, out *searchResult, limit int) bool {
	if m.whole {
		if m.literal != nil && !bytes.Contains(data, m.literal) {
			return true
		}
		if m.re != nil && !m.re.Match(data) {
			return true
		}
	}
	for line := 1; len(data) > 0; line++ {
		var text []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			text, data = data[:i], data[i+1:]
		} else {
			text, data = data, nil
		}
		text = bytes.TrimSuffix(text, []byte{'\r'})
		col := m.index(text)
		if col < 0 {
			continue
		}
		if len(out.Matches) == limit {
			out.Truncated = true
			return false
		}
		out.Matches = append(out.Matches, searchMatch{File: file, Line: line, Column: col + 1, Content: trimLine(text)})
	}
	return true
}

func handleSearch(w http.ResponseWriter, r *http.Request) error {
	var req searchRequest
	if err := decodePost(r, &req); err != nil {
		return err
	}
	root, err := cleanPath("path", req.Path)
	if err != nil {
		return err
	}
	limit, err := checkLimit(req.Limit)
	if err != nil {
		return err
	}
	m, err := newLineMatcher(req.Pattern, req.Regex, req.CaseSensitive == nil || *req.CaseSensitive)
	if err != nil {
		return err
	}
	include := req.Include
	if len(include) > 1 && include[0] == '/' {
		include = include[1:]
	}
	id, err := resolveUser(req.User)
	if err != nil {
		return err
	}
	out := searchResult{Matches: []searchMatch{}}
	if err := runAs(id, func() error {
		st, err := stat(root)
		if err != nil {
			return err
		}
		var buf []byte
		if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
			// A file as the root is searched by the same rules.
			data, ok := readSmall(root, maxSearchFile, buf)
			if ok && !isBinary(data) && (include == "" || globMatch(include, path.Base(root))) {
				searchFile(root, data, m, &out, limit)
			}
			return nil
		}
		descend := func(full string, d fs.DirEntry) bool {
			return !pruned(full) && d.Name() != ".git"
		}
		return walkTree(r.Context(), root, 0, descend, func(full string, d fs.DirEntry) bool {
			if !d.Type().IsRegular() {
				return true
			}
			if include != "" && !globMatch(include, globTarget(include, root, full)) {
				return true
			}
			data, ok := readSmall(full, maxSearchFile, buf)
			buf = data
			if !ok || isBinary(data) {
				return true
			}
			return searchFile(full, data, m, &out, limit)
		})
	}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

type replaceRequest struct {
	Files    []string `json:"files"`
	Pattern  string   `json:"pattern"`
	NewValue string   `json:"new_value"`
	Regex    bool     `json:"regex"`
	User     string   `json:"user"`
}

type replaceResult struct {
	File         string  `json:"file"`
	Success      bool    `json:"success"`
	Replacements int     `json:"replacements"`
	Error        *string `json:"error"`
}

func handleReplace(w http.ResponseWriter, r *http.Request) error {
	var req replaceRequest
	if err := decodePost(r, &req); err != nil {
		return err
	}
	if req.Pattern == "" {
		return invalid("pattern is required")
	}
	files := make([]string, len(req.Files))
	for i, f := range req.Files {
		p, err := cleanPath("files", f)
		if err != nil {
			return err
		}
		files[i] = p
	}
	var re *regexp.Regexp
	if req.Regex {
		var err error
		if re, err = regexp.Compile(req.Pattern); err != nil {
			return invalid("invalid regular expression: %v", err)
		}
	}
	id, err := resolveUser(req.User)
	if err != nil {
		return err
	}
	results := make([]replaceResult, 0, len(files))
	if err := runAs(id, func() error {
		for i, p := range files {
			res := replaceResult{File: req.Files[i]}
			n, err := replaceInFile(p, []byte(req.Pattern), []byte(req.NewValue), re)
			if err != nil {
				msg := err.Error()
				res.Error = &msg
			} else {
				res.Success, res.Replacements = true, n
			}
			results = append(results, res)
		}
		return nil
	}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"results": results})
	return nil
}

// replaceInFile rewrites p (symlinks followed) with every match replaced: a new
// file beside it with the old one's mode and owner, renamed over it. Where the
// user may change the file but not replace it (a directory it cannot write, a
// file it does not own), the file is rewritten in place instead.
func replaceInFile(p string, pattern, value []byte, re *regexp.Regexp) (int, error) {
	target, err := filepath.EvalSymlinks(p)
	if err != nil {
		return 0, err
	}
	f, st, err := openRegular(target)
	if err != nil {
		return 0, err
	}
	if st.Size > maxReplaceFile {
		f.Close()
		return 0, invalid("%s is larger than %d MiB", p, maxReplaceFile>>20)
	}
	data, err := io.ReadAll(f)
	f.Close()
	if err != nil {
		return 0, err
	}
	var n int
	var out []byte
	if re != nil {
		n = len(re.FindAllIndex(data, -1))
		if n > 0 {
			out = re.ReplaceAll(data, value)
		}
	} else {
		n = bytes.Count(data, pattern)
		if n > 0 {
			out = bytes.ReplaceAll(data, pattern, value)
		}
	}
	if n == 0 {
		return 0, nil
	}
	old := existing{found: true, mode: st.Mode & 0o7777, uid: st.Uid, gid: st.Gid}
	if tmp, err := createTemp(target); err == nil {
		_, werr := tmp.Write(out)
		kept, ferr := old.finish(tmp, old.mode)
		cerr := tmp.Close()
		if werr == nil && ferr == nil && cerr == nil && kept {
			if err := os.Rename(tmp.Name(), target); err == nil {
				return n, nil
			}
		}
		os.Remove(tmp.Name())
		if werr != nil {
			return 0, pathError("write", target, werr)
		}
	}
	// In place: not atomic, but the file stays the user's to change.
	g, err := os.OpenFile(target, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return 0, err
	}
	if _, err := g.Write(out); err != nil {
		g.Close()
		return 0, err
	}
	return n, g.Close()
}
