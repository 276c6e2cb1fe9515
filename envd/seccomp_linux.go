package main

// A seccomp filter envd installs on itself at `envd init`, before it starts anything,
// on top of the engine's profile (filters stack; every process of the environment
// descends from PID 1 and inherits both). Docker 20.10's default profile still
// allows io_uring, ptrace and process_vm_*; this filter answers EPERM for them and
// for the other calls a sandbox never needs (namespaces, mounts, modules, keyrings,
// bpf, perf, clocks...), ENOSYS for clone3 (so libc falls back to clone, whose
// namespace flags are checked) and for the 32-bit and x32 ABIs. The program is
// classic BPF, written by hand: the standard library has no libseccomp.

import (
	"fmt"
	"os"
	"runtime"
	"syscall"
	"unsafe"
)

const (
	auditArchX8664   = 0xc000003e
	auditArchAarch64 = 0xc00000b7
	x32SyscallBit    = 0x40000000

	seccompRetAllow = 0x7fff0000
	seccompRetErrno = 0x00050000

	seccompSetModeFilter = 1
	seccompFlagTsync     = 1
	prSetNoNewPrivs      = 38

	// Offsets in struct seccomp_data: nr, arch, then args[6] after the instruction
	// pointer (the low 32 bits of args[0] on a little-endian machine).
	offNr   = 0
	offArch = 4
	offArg0 = 16

	// CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET: the namespace flags
	// of clone (CLONE_NEWTIME shares its bit with the exit signal there).
	cloneNamespaceFlags = 0x7e020000
)

// seccompArch is one architecture's numbers for the filter.
type seccompArch struct {
	audit  uint32
	sysSec uintptr // the seccomp syscall
	clone  uint32
	clone3 uint32
	denied map[string]uint32
	x32    bool // has the x32 ABI (nr | 0x40000000), refused whole
}

// Calls answered EPERM; a name missing from an architecture does not exist there.
var seccompArches = map[string]seccompArch{
	"amd64": {
		audit: auditArchX8664, sysSec: 317, clone: 56, clone3: 435, x32: true,
		denied: map[string]uint32{
			"io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
			"userfaultfd": 323, "keyctl": 250, "add_key": 248, "request_key": 249,
			"bpf": 321, "perf_event_open": 298, "kexec_load": 246, "kexec_file_load": 320,
			"open_by_handle_at": 304, "name_to_handle_at": 303,
			"init_module": 175, "finit_module": 313, "delete_module": 176,
			"mount": 165, "umount2": 166, "pivot_root": 155, "unshare": 272, "setns": 308,
			"open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431,
			"fsmount": 432, "fspick": 433, "mount_setattr": 442,
			"swapon": 167, "swapoff": 168, "reboot": 169, "acct": 163,
			"quotactl": 179, "quotactl_fd": 443, "lookup_dcookie": 212, "syslog": 103,
			"uselib": 134, "ustat": 136, "sysfs": 139, "vhangup": 153,
			"clock_settime": 227, "clock_adjtime": 305, "adjtimex": 159, "settimeofday": 164,
			"iopl": 172, "ioperm": 173,
			"process_vm_readv": 310, "process_vm_writev": 311, "ptrace": 101,
		},
	},
	"arm64": {
		audit: auditArchAarch64, sysSec: 277, clone: 220, clone3: 435,
		denied: map[string]uint32{
			"io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
			"userfaultfd": 282, "keyctl": 219, "add_key": 217, "request_key": 218,
			"bpf": 280, "perf_event_open": 241, "kexec_load": 104, "kexec_file_load": 294,
			"open_by_handle_at": 265, "name_to_handle_at": 264,
			"init_module": 105, "finit_module": 273, "delete_module": 106,
			"mount": 40, "umount2": 39, "pivot_root": 41, "unshare": 97, "setns": 268,
			"open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431,
			"fsmount": 432, "fspick": 433, "mount_setattr": 442,
			"swapon": 224, "swapoff": 225, "reboot": 142, "acct": 89,
			"quotactl": 60, "quotactl_fd": 443, "lookup_dcookie": 18, "syslog": 116,
			"vhangup": 58, "clock_settime": 112, "clock_adjtime": 266, "adjtimex": 171,
			"settimeofday":     170,
			"process_vm_readv": 270, "process_vm_writev": 271, "ptrace": 117,
		},
	},
}

func stmt(code uint16, k uint32) syscall.SockFilter { return syscall.SockFilter{Code: code, K: k} }

// seccompProgram is the filter for arch: every denied number jumps to the EPERM
// return; other architectures' calls (i386 on x86_64, arm32 on aarch64) get ENOSYS.
func seccompProgram(arch seccompArch) []syscall.SockFilter {
	const (
		ld   = syscall.BPF_LD | syscall.BPF_W | syscall.BPF_ABS
		jeq  = syscall.BPF_JMP | syscall.BPF_JEQ | syscall.BPF_K
		jge  = syscall.BPF_JMP | syscall.BPF_JGE | syscall.BPF_K
		jset = syscall.BPF_JMP | syscall.BPF_JSET | syscall.BPF_K
		ret  = syscall.BPF_RET | syscall.BPF_K
	)
	nrs := make([]uint32, 0, len(arch.denied))
	for _, nr := range arch.denied {
		nrs = append(nrs, nr)
	}
	// Jumps are forward and relative: build the checks, then point them at the
	// returns appended at the end.
	type target int
	const (
		toAllow target = iota
		toEperm
		toEnosys
	)
	var prog []syscall.SockFilter
	var jt, jf []target // per instruction; -1 means fall through
	add := func(ins syscall.SockFilter, t, f target) {
		prog, jt, jf = append(prog, ins), append(jt, t), append(jf, f)
	}
	const next target = -1
	add(stmt(ld, offArch), next, next)
	add(stmt(jeq, arch.audit), next, toEnosys)
	add(stmt(ld, offNr), next, next)
	if arch.x32 {
		add(stmt(jge, x32SyscallBit), toEnosys, next)
	}
	for _, nr := range nrs {
		add(stmt(jeq, nr), toEperm, next)
	}
	add(stmt(jeq, arch.clone3), toEnosys, next)
	add(stmt(jeq, arch.clone), next, toAllow)
	add(stmt(ld, offArg0), next, next)
	add(stmt(jset, cloneNamespaceFlags), toEperm, toAllow)
	returns := map[target]int{toAllow: len(prog), toEperm: len(prog) + 1, toEnosys: len(prog) + 2}
	for i := range prog {
		if prog[i].Code&0x07 != syscall.BPF_JMP {
			continue
		}
		for _, edge := range []struct {
			t   target
			out *uint8
		}{{jt[i], &prog[i].Jt}, {jf[i], &prog[i].Jf}} {
			if edge.t != next {
				*edge.out = uint8(returns[edge.t] - i - 1)
			}
		}
	}
	prog = append(prog,
		stmt(ret, seccompRetAllow),
		stmt(ret, seccompRetErrno|uint32(syscall.EPERM)),
		stmt(ret, seccompRetErrno|uint32(syscall.ENOSYS)),
	)
	return prog
}

// installSeccomp loads the filter on every thread of envd (TSYNC: Go's runtime
// already runs several), so everything envd starts from now on inherits it. On an
// architecture without a table it logs and leaves the engine's profile alone.
func installSeccomp() error {
	arch, ok := seccompArches[runtime.GOARCH]
	if !ok {
		fmt.Fprintf(os.Stderr, "envd: no seccomp filter for %s; only the engine's profile applies\n", runtime.GOARCH)
		return nil
	}
	prog := seccompProgram(arch)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// The engine sets no-new-privileges for the container already; without it (and
	// without CAP_SYS_ADMIN) the kernel refuses a filter.
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, prSetNoNewPrivs, 1, 0); e != 0 {
		return fmt.Errorf("prctl(PR_SET_NO_NEW_PRIVS): %w", e)
	}
	fprog := syscall.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	r, _, e := syscall.RawSyscall(arch.sysSec, seccompSetModeFilter, seccompFlagTsync,
		uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(prog)
	if e != 0 {
		return fmt.Errorf("seccomp(SET_MODE_FILTER): %w", e)
	}
	if r != 0 {
		return fmt.Errorf("seccomp(SET_MODE_FILTER): thread %d could not be synchronised", r)
	}
	return nil
}
