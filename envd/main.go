// Command envd is the environment agent: PID 1 of every environment container and
// the control plane's way into it (docs/envd.md).
package main

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"time"
)

// version is stamped by scripts/build-envd.sh.
var version = "dev"

const defaultPort = "2280"

func main() {
	args := os.Args[1:]
	mode := ""
	if len(args) > 0 {
		mode, args = args[0], args[1:]
	}
	switch mode {
	case "init":
		os.Exit(initMain(args))
	case "serve":
		os.Exit(serveMain(args))
	case "fs-serve":
		os.Exit(fsServeMain(args))
	case "askpass":
		os.Exit(askpassMain(args))
	case "version":
		fmt.Println(version)
		os.Exit(0)
	}
	fmt.Fprintln(os.Stderr, "usage: envd init [-- argv...] | serve | fs-serve | askpass | version")
	os.Exit(2)
}

// tune keeps an idle agent small: it mostly sleeps, and every byte it holds is
// taken from the environment's memory limit.
func tune() {
	debug.SetGCPercent(50)
	debug.SetMemoryLimit(24 << 20)
	go func() {
		// After a burst (a large output, many processes), hand the freed heap back
		// instead of waiting for the background scavenger.
		var ms runtime.MemStats
		for range time.Tick(20 * time.Second) {
			runtime.ReadMemStats(&ms)
			if ms.HeapIdle-ms.HeapReleased > 1<<20 {
				debug.FreeOSMemory()
			}
		}
	}()
}

// takeConfig reads envd's settings and removes every SANDBAY_ENVD_* variable, so no
// child ever sees the token.
func takeConfig() (token, port string) {
	token, port = os.Getenv(tokenVar), os.Getenv("SANDBAY_ENVD_PORT")
	if token == "" {
		token = tokenFromFD(os.Getenv(tokenFDVar)) // envd init moved it (shedToken)
	}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "SANDBAY_ENVD_") {
			name, _, _ := strings.Cut(kv, "=")
			os.Unsetenv(name)
		}
	}
	if port == "" {
		port = defaultPort
	}
	return token, port
}

// listen binds the API's port on every address (IPv4 and IPv6).
func listen() (net.Listener, string, error) {
	token, port := takeConfig()
	if token == "" {
		return nil, "", fmt.Errorf("SANDBAY_ENVD_TOKEN is not set; refusing to serve without a token")
	}
	ln, err := net.Listen("tcp", ":"+port)
	if err != nil {
		return nil, "", err
	}
	return ln, token, nil
}

func serveMain(args []string) int {
	tune()
	ln, token, err := listen()
	if err != nil {
		fmt.Fprintln(os.Stderr, "envd:", err)
		return 1
	}
	startReaper()
	if err := serve(token, ln); err != nil {
		fmt.Fprintln(os.Stderr, "envd:", err)
		return 1
	}
	return 0
}
