/*
 * Page-cache state for the durability unit tests: whether a page of a
 * mapping is dirty (written, not yet written back).  A flush that really
 * writes back leaves the page clean; a no-op one leaves it dirty, which a
 * kill -9 test cannot see (PITFALLS 14, 18).  Needs root (/proc/kpageflags
 * and page frame numbers in /proc/self/pagemap); -1 otherwise.
 */
#ifndef SHMQ_TEST_PAGE_CACHE_H
#define SHMQ_TEST_PAGE_CACHE_H

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * The /proc/self/pagemap entry of the page holding p, read without touching it (bit 63:
 * present in this process's page tables; bits 0-54: its page frame, which only root sees).
 * 0 with *ent, -1 when it cannot be read.
 */
static inline int pagemap_entry(const void *p, uint64_t *ent)
{
    long pg = sysconf(_SC_PAGESIZE);
    int pm = open("/proc/self/pagemap", O_RDONLY);
    int rc = -1;
    if (pm >= 0) {
        if (pread(pm, ent, sizeof(*ent), (off_t)((uintptr_t)p / (uintptr_t)pg * sizeof(*ent))) ==
            (ssize_t)sizeof(*ent)) {
            rc = 0;
        }
        close(pm);
    }
    return rc;
}

/*
 * Is the page holding p dirty in the page cache?  1 yes, 0 no, -1 cannot be
 * told (not root: the page frame number and its flags are hidden).
 */
static inline int page_dirty(const void *p)
{
    uint64_t ent = 0, flags = 0;
    int rc = -1;
    (void)*(const volatile uint8_t *)p; /* map the page in this mapping (present in pagemap) */
    int kf = open("/proc/kpageflags", O_RDONLY);
    if (kf >= 0 && pagemap_entry(p, &ent) == 0 && (ent >> 63) != 0 &&
        (ent & ((1ULL << 55) - 1)) != 0 &&
        pread(kf, &flags, sizeof(flags), (off_t)((ent & ((1ULL << 55) - 1)) * sizeof(flags))) ==
            (ssize_t)sizeof(flags)) {
        rc = (flags >> 4) & 1; /* KPF_DIRTY */
    }
    if (kf >= 0) {
        close(kf);
    }
    return rc;
}

/*
 * Is the page holding p mapped in this process's page tables (without touching it)?
 * 1 yes, 0 no, -1 cannot be told (/proc/self/pagemap's present bit needs no root).
 */
static inline int page_present(const void *p)
{
    uint64_t ent = 0;
    return pagemap_entry(p, &ent) == 0 ? (int)(ent >> 63) : -1;
}

/* Dirty a byte of w until the page cache shows it dirty (writeback may race). */
static inline int dirty_page(uint8_t *w, uint8_t v)
{
    for (int i = 0; i < 100; i++) {
        *(volatile uint8_t *)w = (uint8_t)(v + i);
        int d = page_dirty(w);
        if (d != 0) {
            return d;
        }
    }
    return 0;
}

/*
 * Bytes this process has sent for writing (/proc/self/io write_bytes: the page
 * cache counts a piece's whole size when a store dirties it, see SHMQ_MF_FINE);
 * -1 when the kernel does not say.
 */
static inline long long io_write_bytes(void)
{
    FILE *fp = fopen("/proc/self/io", "r");
    char line[128];
    long long v = -1;
    while (fp && fgets(line, sizeof(line), fp)) {
        if (strncmp(line, "write_bytes:", 12) == 0) {
            v = atoll(line + 12);
        }
    }
    if (fp) {
        fclose(fp);
    }
    return v;
}

#endif
