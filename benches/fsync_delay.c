/* An LD_PRELOAD shim for benches/fsync_delay.sh: every fsync and fdatasync
 * of the process first sleeps FSYNC_DELAY_US microseconds, as a disk whose
 * flush takes that long would make it wait. This VM flushes in about 0.13 ms;
 * consumer NVMe and cloud volumes take 1-3 ms, network disks more. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>

static void wait_like_a_disk(void) {
    static long us = -1;
    if (us < 0) {
        const char *v = getenv("FSYNC_DELAY_US");
        us = v ? atol(v) : 0;
    }
    struct timespec t = {us / 1000000, (us % 1000000) * 1000};
    if (us > 0)
        nanosleep(&t, NULL);
}

/* Waits, then calls the libc function `name` (looked up once into *real). */
static int delayed(const char *name, int (**real)(int), int fd) {
    if (!*real)
        *real = (int (*)(int))dlsym(RTLD_NEXT, name);
    wait_like_a_disk();
    return (*real)(fd);
}

int fsync(int fd) {
    static int (*real)(int);
    return delayed("fsync", &real, fd);
}

int fdatasync(int fd) {
    static int (*real)(int);
    return delayed("fdatasync", &real, fd);
}
