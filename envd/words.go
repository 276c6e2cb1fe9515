package main

import (
	"net/http"
	"os"
	"strings"
)

// shellless rewrites argv ["/bin/sh", "-c", CMD] for an image with no /bin/sh: CMD
// runs as its words (quotes and backslashes as a POSIX shell reads them), so an SSH
// command or a shell-string exec still works where there is no shell. A command that
// needs a shell (pipes, redirections, variables, globs, several commands) is refused
// with a message that says so, rather than run wrong.
func shellless(argv []string) ([]string, error) {
	if len(argv) != 3 || argv[0] != "/bin/sh" || argv[1] != "-c" {
		return argv, nil
	}
	if _, err := os.Stat("/bin/sh"); err == nil {
		return argv, nil
	}
	words, ok := splitWords(argv[2])
	if !ok || len(words) == 0 {
		return nil, errorf(http.StatusBadRequest, "invalid",
			"this environment has no /bin/sh to run %q: send the command as an argv list", argv[2])
	}
	return words, nil
}

// splitWords splits s as a POSIX shell splits a simple command, or reports false
// when s uses anything but words, quotes and backslashes.
func splitWords(s string) ([]string, bool) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, false
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '$' || s[i] == '`' {
					return nil, false
				}
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`\n", s[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, false
			}
			inWord = true
		case c == '\\':
			if i+1 >= len(s) {
				return nil, false
			}
			i++
			cur.WriteByte(s[i])
			inWord = true
		case strings.IndexByte("|&;<>()$`*?[]{}~#=\n", c) >= 0 && !(inWord && (c == '=' || c == '#' || c == '~')):
			return nil, false
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, true
}
