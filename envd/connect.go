package main

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// handleConnect dials a TCP port from inside the environment (its network policy
// applies) and then copies raw bytes both ways, half-closes included.
func handleConnect(w http.ResponseWriter, r *http.Request) error {
	if err := allowMethods(r, http.MethodGet); err != nil {
		return err
	}
	q := r.URL.Query()
	port, err := strconv.Atoi(q.Get("port"))
	if err != nil || port < 1 || port > 65535 {
		return errorf(http.StatusBadRequest, "invalid", "invalid port %q", q.Get("port"))
	}
	host := q.Get("host")
	if host == "" {
		host = "127.0.0.1"
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	up, err := d.DialContext(r.Context(), "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return errorf(http.StatusBadGateway, "unreachable", "%v", err)
	}
	noDelay(up)
	conn, br, err := upgrade(w)
	if err != nil {
		up.Close()
		return nil
	}
	noDelay(conn)
	var wg sync.WaitGroup
	wg.Add(2)
	go pipeHalf(up, br, conn, &wg)
	go pipeHalf(conn, up, up, &wg)
	wg.Wait()
	conn.Close()
	up.Close()
	return nil
}

func noDelay(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
}

// pipeHalf copies src (reading from srcConn) to dst; at EOF it half-closes dst, on
// an error it closes both connections (which ends the other direction too).
func pipeHalf(dst net.Conn, src io.Reader, srcConn net.Conn, wg *sync.WaitGroup) {
	defer wg.Done()
	if _, err := io.Copy(dst, src); err != nil {
		srcConn.Close()
		dst.Close()
		return
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	} else {
		dst.Close()
	}
}
