/*
 * shmq-bench: what this machine can do, measured in the same run as the
 * figures it is compared with: memcpy bandwidth over buffers much larger
 * than the caches, and the latency of a 4 KiB write + fdatasync in the
 * store's directory (the floor of a SYNC_FLUSH acknowledgement).  Also the
 * description printed with every result: cores, CPU model, kernel and the
 * filesystem of the store.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "bench.h"

#define MEMCPY_BYTES  (64u << 20) /* far beyond any cache of this machine */
#define MEMCPY_ROUNDS 6
#define FSYNC_SAMPLES 200
#define FSYNC_PAGE    4096

static void cpu_model(char *out, size_t len)
{
    snprintf(out, len, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) {
        return;
    }
    char line[512];
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *c = strchr(line, ':');
            if (c) {
                c++;
                while (*c == ' ' || *c == '\t') {
                    c++;
                }
                c[strcspn(c, "\n")] = '\0';
                snprintf(out, len, "%s", c);
            }
            break;
        }
    }
    fclose(f);
}

static void fs_type(const char *dir, char *out, size_t len)
{
    struct statfs sf;
    snprintf(out, len, "unknown");
    if (statfs(dir, &sf) != 0) {
        return;
    }
    switch ((unsigned long)sf.f_type) {
    case 0xEF53:
        snprintf(out, len, "ext4");
        break;
    case 0x58465342:
        snprintf(out, len, "xfs");
        break;
    case 0x9123683E:
        snprintf(out, len, "btrfs");
        break;
    case 0x01021994:
        snprintf(out, len, "tmpfs");
        break;
    case 0x794c7630:
        snprintf(out, len, "overlayfs");
        break;
    default:
        snprintf(out, len, "0x%lx", (unsigned long)sf.f_type);
    }
}

/* Best of a few rounds of copying a 64 MiB buffer: bytes per second. */
static double measure_memcpy(void)
{
    uint8_t *a = malloc(MEMCPY_BYTES), *b = malloc(MEMCPY_BYTES);
    if (!a || !b) {
        free(a);
        free(b);
        return 0;
    }
    memset(a, 1, MEMCPY_BYTES);
    memset(b, 2, MEMCPY_BYTES);
    double best = 0;
    for (int r = 0; r < MEMCPY_ROUNDS; r++) {
        int64_t t0 = bench_now_ns();
        memcpy(r & 1 ? a : b, r & 1 ? b : a, MEMCPY_BYTES);
        int64_t t1 = bench_now_ns();
        /* Keep the copy observable. */
        __asm__ __volatile__("" : : "r"(a), "r"(b) : "memory");
        double bps = (double)MEMCPY_BYTES / ((double)(t1 - t0) / 1e9);
        if (bps > best) {
            best = bps;
        }
    }
    free(a);
    free(b);
    return best;
}

/* 4 KiB pwrite + fdatasync of one block of a file in dir: p50 and p99 in us. */
static void measure_fdatasync(const char *dir, double *p50, double *p99)
{
    *p50 = *p99 = 0;
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/.shmq-bench-fsync.XXXXXX", dir);
    int fd = mkstemp(path);
    if (fd < 0) {
        bench_warn("fdatasync baseline: cannot create a file in %s: %s", dir, strerror(errno));
        return;
    }
    unlink(path);
    static uint8_t page[FSYNC_PAGE] __attribute__((aligned(4096)));
    bench_hist_t *h = malloc(sizeof(*h));
    if (!h) {
        close(fd);
        return;
    }
    bench_hist_init(h);
    /* The file's block is allocated first: later writes only overwrite data. */
    if (pwrite(fd, page, sizeof(page), 0) == (ssize_t)sizeof(page) && fsync(fd) == 0) {
        for (int i = 0; i < FSYNC_SAMPLES && !bench_interrupted; i++) {
            page[0] = (uint8_t)i;
            int64_t t0 = bench_now_ns();
            if (pwrite(fd, page, sizeof(page), 0) != (ssize_t)sizeof(page) || fdatasync(fd) != 0) {
                bench_warn("fdatasync baseline: %s", strerror(errno));
                break;
            }
            bench_hist_add(h, (uint64_t)(bench_now_ns() - t0));
        }
    }
    *p50 = (double)bench_hist_quantile(h, 0.5) / 1000.0;
    *p99 = (double)bench_hist_quantile(h, 0.99) / 1000.0;
    free(h);
    close(fd);
}

void bench_machine_measure(const char *dir, bool skip, bench_machine_t *m)
{
    memset(m, 0, sizeof(*m));
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    m->nproc = n > 0 ? (int)n : 0;
    cpu_model(m->cpu, sizeof(m->cpu));
    struct utsname u;
    if (uname(&u) == 0) {
        snprintf(m->kernel, sizeof(m->kernel), "%s %s", u.sysname, u.release);
    }
    fs_type(dir, m->fs, sizeof(m->fs));
    FILE *la = fopen("/proc/loadavg", "r");
    if (la) {
        if (fscanf(la, "%lf", &m->load1) != 1) {
            m->load1 = -1;
        }
        fclose(la);
    }
    if (skip) {
        return;
    }
    m->memcpy_bytes_per_sec = measure_memcpy();
    measure_fdatasync(dir, &m->fdatasync_p50_us, &m->fdatasync_p99_us);
    m->measured = true;
}
