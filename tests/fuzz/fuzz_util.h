/*
 * Helpers shared by the libFuzzer harnesses in tests/fuzz/: a scratch
 * directory per process (made once, under $SHMQ_FUZZ_TMP, /dev/shm or /tmp,
 * removed at exit) where loaders that take a path find the fuzz input as a
 * file, and small readers of the input.  Header-only: each harness is one
 * translation unit linked with the library.
 */
#ifndef SHMQ_FUZZ_UTIL_H
#define SHMQ_FUZZ_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char fuzz_root[256];

static inline int fuzz_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Remove everything under path (path itself too). */
static inline void fuzz_rm_tree(const char *path)
{
    nftw(path, fuzz_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static inline void fuzz_cleanup(void)
{
    if (fuzz_root[0] != '\0') {
        fuzz_rm_tree(fuzz_root);
    }
}

/* The per-process scratch directory (made at the first call). */
static inline const char *fuzz_dir(void)
{
    if (fuzz_root[0] != '\0') {
        return fuzz_root;
    }
    const char *base = getenv("SHMQ_FUZZ_TMP");
    if (base == NULL || base[0] == '\0') {
        base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    }
    snprintf(fuzz_root, sizeof(fuzz_root), "%s/shmq-fuzz-XXXXXX", base);
    if (mkdtemp(fuzz_root) == NULL) {
        perror("shmq fuzz: mkdtemp");
        abort();
    }
    atexit(fuzz_cleanup);
    return fuzz_root;
}

/* A fresh empty directory <scratch>/<name> (emptied if it exists); its path in out. */
static inline void fuzz_fresh_dir(const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", fuzz_dir(), name);
    fuzz_rm_tree(out);
    if (mkdir(out, 0755) != 0) {
        perror("shmq fuzz: mkdir");
        abort();
    }
}

/* mkdir -p of a path below the scratch directory. */
static inline void fuzz_mkdirs(const char *path)
{
    char tmp[512];
    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(tmp, 0755);
            *p = '/';
        }
    }
    mkdir(tmp, 0755);
}

/* Write len bytes at path (created or truncated); the file is exactly size bytes
 * (zero-filled past len, or cut) when size >= 0. */
static inline void fuzz_write_file(const char *path, const void *data, size_t len, long long size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        perror("shmq fuzz: open");
        abort();
    }
    if (size >= 0 && (long long)len > size) {
        len = (size_t)size;
    }
    const uint8_t *p = data;
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, p + done, len - done);
        if (n <= 0) {
            perror("shmq fuzz: write");
            abort();
        }
        done += (size_t)n;
    }
    if (size >= 0 && ftruncate(fd, (off_t)size) != 0) {
        perror("shmq fuzz: ftruncate");
        abort();
    }
    close(fd);
}

/* Big-endian readers of the input (0 past its end). */
static inline uint64_t fuzz_be64(const uint8_t *d, size_t len, size_t off)
{
    uint64_t v = 0;
    for (size_t i = 0; i < 8; i++) {
        v = v << 8 | (off + i < len ? d[off + i] : 0);
    }
    return v;
}

static inline uint32_t fuzz_be32(const uint8_t *d, size_t len, size_t off)
{
    return (uint32_t)(fuzz_be64(d, len, off) >> 32);
}

#endif
