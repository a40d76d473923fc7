/* Shift the wall clock of one process, for the "wall clock jumps" fault.
 *
 * LD_PRELOADed into the daemon under test. CLOCK_REALTIME (and gettimeofday, time)
 * read the machine's clock plus an offset in nanoseconds held in a shared 8-byte file
 * (STOVE_WALLCLOCK_FILE), so a test can make the clock jump while the process runs.
 * CLOCK_MONOTONIC is left alone, as on a real machine whose clock is stepped by NTP or
 * by hand. Built by hardware/wallclock.py with the system C compiler.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile int64_t *offset_ns = 0;
static int tried = 0;
static int (*real_clock_gettime)(clockid_t, struct timespec *) = 0;

static int64_t offset(void) {
    if (!tried) {
        tried = 1;
        const char *path = getenv("STOVE_WALLCLOCK_FILE");
        if (path) {
            int fd = open(path, O_RDONLY);
            if (fd >= 0) {
                void *p = mmap(0, sizeof(int64_t), PROT_READ, MAP_SHARED, fd, 0);
                close(fd);
                if (p != MAP_FAILED) offset_ns = (volatile int64_t *)p;
            }
        }
    }
    return offset_ns ? *offset_ns : 0;
}

static void shift(struct timespec *ts) {
    int64_t ns = (int64_t)ts->tv_sec * 1000000000LL + ts->tv_nsec + offset();
    ts->tv_sec = ns / 1000000000LL;
    ts->tv_nsec = ns % 1000000000LL;
    if (ts->tv_nsec < 0) {
        ts->tv_nsec += 1000000000LL;
        ts->tv_sec -= 1;
    }
}

int clock_gettime(clockid_t id, struct timespec *ts) {
    if (!real_clock_gettime)
        real_clock_gettime = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
    int rc = real_clock_gettime(id, ts);
    if (rc == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)) shift(ts);
    return rc;
}

int gettimeofday(struct timeval *tv, void *tz) {
    struct timespec ts;
    (void)tz;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return -1;
    if (tv) {
        tv->tv_sec = ts.tv_sec;
        tv->tv_usec = ts.tv_nsec / 1000;
    }
    return 0;
}

time_t time(time_t *out) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (out) *out = ts.tv_sec;
    return ts.tv_sec;
}
