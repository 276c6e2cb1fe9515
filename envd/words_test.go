package main

import (
	"reflect"
	"testing"
)

func TestSplitWords(t *testing.T) {
	good := map[string][]string{
		`/bin/busybox echo hi`:     {"/bin/busybox", "echo", "hi"},
		`a 'b c' "d \"e\"" f\ g`:   {"a", "b c", `d "e"`, "f g"},
		`  x  `:                    {"x"},
		`env A=1 cmd`:              {"env", "A=1", "cmd"},
		`busybox httpd -f -p 8080`: {"busybox", "httpd", "-f", "-p", "8080"},
	}
	for in, want := range good {
		got, ok := splitWords(in)
		if !ok || !reflect.DeepEqual(got, want) {
			t.Errorf("splitWords(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{`a | b`, `echo $HOME`, `a; b`, `ls *`, `echo "$x"`, `'open`, "a\nb", `a > f`} {
		if got, ok := splitWords(in); ok {
			t.Errorf("splitWords(%q) = %q; want a refusal", in, got)
		}
	}
}
