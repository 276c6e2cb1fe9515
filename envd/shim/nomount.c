/* Preloaded into the processes of environments whose kernel refuses the
 * AT_NO_AUTOMOUNT flag of statx and fstatat with EINVAL: gVisor release 20221219
 * (Debian's runsc) does, and coreutils 9 passes it, so `ls` and `stat` failed on
 * every path. The flag only stops an automount point from being mounted, and there
 * are none inside an environment: it is dropped and the call made as asked.
 * No libc is linked (only its errno is used), so it loads under glibc and musl.
 * x86_64 only; envd sets LD_PRELOAD only when it finds the kernel refusing. */

#define AT_NO_AUTOMOUNT 0x800
#define SYS_NEWFSTATAT 262
#define SYS_STATX 332

extern int *__errno_location(void);

static long raw5(long nr, long a, long b, long c, long d, long e) {
    long ret;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8)
                     : "rcx", "r11", "memory");
    return ret;
}

static int result(long ret) {
    if (ret < 0 && ret > -4096) {
        *__errno_location() = (int)-ret;
        return -1;
    }
    return (int)ret;
}

int statx(int dirfd, const char *path, int flags, unsigned int mask, void *buf) {
    return result(raw5(SYS_STATX, dirfd, (long)path, flags & ~AT_NO_AUTOMOUNT, mask, (long)buf));
}

int fstatat(int dirfd, const char *path, void *buf, int flags) {
    return result(raw5(SYS_NEWFSTATAT, dirfd, (long)path, (long)buf, flags & ~AT_NO_AUTOMOUNT, 0));
}

int fstatat64(int dirfd, const char *path, void *buf, int flags)
    __attribute__((alias("fstatat")));
