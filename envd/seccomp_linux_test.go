package main

import (
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
)

// runBPF interprets the classic BPF subset seccompProgram uses over one
// struct seccomp_data (nr, arch, instruction pointer, args).
func runBPF(t *testing.T, prog []syscall.SockFilter, nr, arch uint32, args ...uint64) uint32 {
	t.Helper()
	data := make([]byte, 64)
	binary.LittleEndian.PutUint32(data[0:], nr)
	binary.LittleEndian.PutUint32(data[4:], arch)
	for i, a := range args {
		binary.LittleEndian.PutUint64(data[16+8*i:], a)
	}
	var acc uint32
	for pc := 0; pc < len(prog); pc++ {
		ins := prog[pc]
		switch ins.Code {
		case syscall.BPF_LD | syscall.BPF_W | syscall.BPF_ABS:
			acc = binary.LittleEndian.Uint32(data[ins.K:])
		case syscall.BPF_JMP | syscall.BPF_JEQ | syscall.BPF_K,
			syscall.BPF_JMP | syscall.BPF_JGE | syscall.BPF_K,
			syscall.BPF_JMP | syscall.BPF_JSET | syscall.BPF_K:
			var taken bool
			switch ins.Code & 0xf0 {
			case syscall.BPF_JEQ:
				taken = acc == ins.K
			case syscall.BPF_JGE:
				taken = acc >= ins.K
			default:
				taken = acc&ins.K != 0
			}
			if taken {
				pc += int(ins.Jt)
			} else {
				pc += int(ins.Jf)
			}
		case syscall.BPF_RET | syscall.BPF_K:
			return ins.K
		default:
			t.Fatalf("instruction %d: unexpected code %#x", pc, ins.Code)
		}
	}
	t.Fatal("program fell off its end")
	return 0
}

var (
	retEperm  = uint32(seccompRetErrno | uint32(syscall.EPERM))
	retEnosys = uint32(seccompRetErrno | uint32(syscall.ENOSYS))
)

func TestSeccompProgramVerdicts(t *testing.T) {
	for name, arch := range seccompArches {
		prog := seccompProgram(arch)
		if len(prog) > 255 {
			t.Fatalf("%s: %d instructions, jumps cannot reach", name, len(prog))
		}
		for call, nr := range arch.denied {
			if got := runBPF(t, prog, nr, arch.audit); got != retEperm {
				t.Errorf("%s %s: %#x, want EPERM", name, call, got)
			}
		}
		for _, nr := range []uint32{0, 1, 2, 3, 59, 60, 231, 202} { // ordinary calls
			isDenied := false
			for _, d := range arch.denied {
				isDenied = isDenied || d == nr
			}
			if got := runBPF(t, prog, nr, arch.audit); !isDenied && got != seccompRetAllow {
				t.Errorf("%s nr %d: %#x, want allow", name, nr, got)
			}
		}
		// clone: a thread or a fork passes, a new namespace does not.
		threadFlags := uint64(0x3d0f00) // CLONE_VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|SETTLS|...
		if got := runBPF(t, prog, arch.clone, arch.audit, threadFlags); got != seccompRetAllow {
			t.Errorf("%s clone(thread): %#x, want allow", name, got)
		}
		if got := runBPF(t, prog, arch.clone, arch.audit, 17); got != seccompRetAllow {
			t.Errorf("%s fork-like clone: %#x, want allow", name, got)
		}
		for _, ns := range []uint64{0x10000000, 0x20000000, 0x40000000, 0x20000, 0x2000000} {
			if got := runBPF(t, prog, arch.clone, arch.audit, ns|17); got != retEperm {
				t.Errorf("%s clone(%#x): %#x, want EPERM", name, ns, got)
			}
		}
		if got := runBPF(t, prog, arch.clone3, arch.audit); got != retEnosys {
			t.Errorf("%s clone3: %#x, want ENOSYS", name, got)
		}
		if got := runBPF(t, prog, 1, 0x40000003); got != retEnosys { // i386 / arm32
			t.Errorf("%s other ABI: %#x, want ENOSYS", name, got)
		}
		if arch.x32 {
			if got := runBPF(t, prog, x32SyscallBit|1, arch.audit); got != retEnosys {
				t.Errorf("%s x32 write: %#x, want ENOSYS", name, got)
			}
		}
	}
}

// The table's numbers agree with the standard library's where it has them.
func TestSeccompNumbersMatchSyscallPackage(t *testing.T) {
	arch, ok := seccompArches[runtime.GOARCH]
	if !ok {
		t.Skip("no table for", runtime.GOARCH)
	}
	known := map[string]uintptr{
		"keyctl": syscall.SYS_KEYCTL, "add_key": syscall.SYS_ADD_KEY,
		"request_key": syscall.SYS_REQUEST_KEY, "mount": syscall.SYS_MOUNT,
		"umount2": syscall.SYS_UMOUNT2, "pivot_root": syscall.SYS_PIVOT_ROOT,
		"unshare": syscall.SYS_UNSHARE, "swapon": syscall.SYS_SWAPON,
		"swapoff": syscall.SYS_SWAPOFF, "reboot": syscall.SYS_REBOOT, "acct": syscall.SYS_ACCT,
		"init_module": syscall.SYS_INIT_MODULE, "delete_module": syscall.SYS_DELETE_MODULE,
		"kexec_load": syscall.SYS_KEXEC_LOAD, "syslog": syscall.SYS_SYSLOG,
		"ptrace": syscall.SYS_PTRACE, "vhangup": syscall.SYS_VHANGUP,
		"settimeofday": syscall.SYS_SETTIMEOFDAY, "adjtimex": syscall.SYS_ADJTIMEX,
		"clock_settime": syscall.SYS_CLOCK_SETTIME, "quotactl": syscall.SYS_QUOTACTL,
		"lookup_dcookie": syscall.SYS_LOOKUP_DCOOKIE,
	}
	for name, nr := range known {
		if got, ok := arch.denied[name]; !ok || uintptr(got) != nr {
			t.Errorf("%s: table has %d (%v), syscall package %d", name, got, ok, nr)
		}
	}
	if uintptr(arch.clone) != syscall.SYS_CLONE {
		t.Errorf("clone: table %d, syscall package %d", arch.clone, syscall.SYS_CLONE)
	}
}

// The filter installed for real, in a child process of the test binary: the
// denied calls answer EPERM, ordinary ones and starting a process still work.
func TestInstalledFilterRefusesAndAllows(t *testing.T) {
	if _, ok := seccompArches[runtime.GOARCH]; !ok {
		t.Skip("no table for", runtime.GOARCH)
	}
	if os.Getenv("ENVD_SECCOMP_CHILD") == "1" {
		if err := installSeccomp(); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Unshare(syscall.CLONE_NEWUSER); !errors.Is(err, syscall.EPERM) {
			t.Fatalf("unshare: %v, want EPERM", err)
		}
		arch := seccompArches[runtime.GOARCH]
		_, _, e := syscall.Syscall(uintptr(arch.denied["io_uring_setup"]), 8, 0, 0)
		if e != syscall.EPERM {
			t.Fatalf("io_uring_setup: %v, want EPERM", e)
		}
		if _, _, e := syscall.Syscall(syscall.SYS_PTRACE, syscall.PTRACE_ATTACH, 1, 0); e != syscall.EPERM {
			t.Fatalf("ptrace: %v, want EPERM", e)
		}
		if out, err := exec.Command("/bin/sh", "-c", "echo ok").Output(); err != nil || string(out) != "ok\n" {
			t.Fatalf("a child process under the filter: %q %v", out, err)
		}
		return
	}
	// Through the reaper: other tests of this package start it, and it then takes
	// every child's status (exec.Cmd.Wait would race it).
	startReaper()
	out, err := os.CreateTemp(t.TempDir(), "child")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	argv := []string{os.Args[0], "-test.run=^TestInstalledFilterRefusesAndAllows$", "-test.v"}
	_, done, err := spawn(argv[0], argv, &syscall.ProcAttr{
		Env:   append(os.Environ(), "ENVD_SECCOMP_CHILD=1"),
		Files: []uintptr{0, out.Fd(), out.Fd()},
	})
	if err != nil {
		t.Fatal(err)
	}
	if status := <-done; status.ExitStatus() != 0 {
		text, _ := os.ReadFile(out.Name())
		t.Fatalf("child: %v\n%s", status, text)
	}
}
