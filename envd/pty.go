package main

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

func ioctl(fd, req, arg uintptr) error {
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, req, arg); e != 0 {
		return e
	}
	return nil
}

func uintptrOf(t *syscall.Termios) uintptr { return uintptr(unsafe.Pointer(t)) }

// openPTY opens a terminal pair. The master is pollable (reads honour deadlines);
// the slave is a raw blocking descriptor for the child's 0, 1 and 2, closed by the
// caller after the fork.
func openPTY(cols, rows int) (*os.File, int, error) {
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, -1, err
	}
	var n uint32
	var ctlErr error
	rc, err := master.SyscallConn()
	if err == nil {
		err = rc.Control(func(fd uintptr) {
			var unlock int32
			if ctlErr = ioctl(fd, syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); ctlErr != nil {
				return
			}
			ctlErr = ioctl(fd, syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n)))
		})
	}
	if err == nil {
		err = ctlErr
	}
	if err != nil {
		master.Close()
		return nil, -1, fmt.Errorf("ptmx: %w", err)
	}
	if err := setWinsize(master, cols, rows); err != nil {
		master.Close()
		return nil, -1, err
	}
	slave, err := syscall.Open(fmt.Sprintf("/dev/pts/%d", n), syscall.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		master.Close()
		return nil, -1, fmt.Errorf("open /dev/pts/%d: %w", n, err)
	}
	return master, slave, nil
}

func setWinsize(master *os.File, cols, rows int) error {
	if cols <= 0 {
		cols = 80
	}
	if rows <= 0 {
		rows = 24
	}
	ws := struct{ Row, Col, X, Y uint16 }{uint16(rows), uint16(cols), 0, 0}
	rc, err := master.SyscallConn()
	if err != nil {
		return err
	}
	var ctlErr error
	if err := rc.Control(func(fd uintptr) {
		ctlErr = ioctl(fd, syscall.TIOCSWINSZ, uintptr(unsafe.Pointer(&ws)))
	}); err != nil {
		return err
	}
	if ctlErr != nil {
		return fmt.Errorf("resize: %w", ctlErr)
	}
	return nil
}
