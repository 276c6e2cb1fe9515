package main

import (
	"reflect"
	"testing"
)

func TestUnsetEnv(t *testing.T) {
	env := []string{"PATH=/bin", "FOO=1", "FOOD=2", "BAR=x=y"}
	got := unsetEnv(env, []string{"FOO", "BAR", "MISSING"})
	want := []string{"PATH=/bin", "FOOD=2"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("unsetEnv = %v, want %v", got, want)
	}
	if got := unsetEnv([]string{"A=1"}, nil); !reflect.DeepEqual(got, []string{"A=1"}) {
		t.Fatalf("unsetEnv with no names = %v", got)
	}
}
