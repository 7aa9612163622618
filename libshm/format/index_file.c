/*
 * One RocketMQ IndexFile: creation, mapping, put / pop of entries, repair
 * after a kill, and the bucket walk readers use (see index_file.h for the
 * layout and the order of writes every reader and the repair rely on).
 */
#include "format/index_file.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "shmq/errors.h"
#include "format/store_files.h"

#define OFF_BEGIN_TS   SHMQ_INDEX_OFF_BEGIN_TS
#define OFF_END_TS     SHMQ_INDEX_OFF_END_TS
#define OFF_BEGIN_PHYS SHMQ_INDEX_OFF_BEGIN_PHYS
#define OFF_END_PHYS   SHMQ_INDEX_OFF_END_PHYS
#define OFF_SLOT_COUNT SHMQ_INDEX_OFF_SLOT_COUNT
#define OFF_COUNT      SHMQ_INDEX_OFF_COUNT

/* ---- big-endian access to the mapping ----------------------------------------------- */

static uint32_t be32_get(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return __builtin_bswap32(v);
}

static uint64_t be64_get(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return __builtin_bswap64(v);
}

static void be32_put(uint8_t *p, uint32_t v)
{
    v = __builtin_bswap32(v);
    memcpy(p, &v, 4);
}

static void be64_put(uint8_t *p, uint64_t v)
{
    v = __builtin_bswap64(v);
    memcpy(p, &v, 8);
}

/* Header fields are naturally aligned in the mapping: single-copy atomic loads and stores. */
static int64_t hdr_load64(const shmq_index_file_t *f, size_t off)
{
    /* relaxed: a snapshot; readers bound and check everything they derive from it */
    uint64_t v = __atomic_load_n((const uint64_t *)(const void *)(f->base + off), __ATOMIC_RELAXED);
    return (int64_t)__builtin_bswap64(v);
}

static int32_t hdr_load32(const shmq_index_file_t *f, size_t off)
{
    /* acquire: indexCount is stored last (release) after the entries it counts */
    uint32_t v = __atomic_load_n((const uint32_t *)(const void *)(f->base + off), __ATOMIC_ACQUIRE);
    return (int32_t)__builtin_bswap32(v);
}

static size_t slot_off(const shmq_index_file_t *f, int32_t slot)
{
    (void)f;
    return SHMQ_INDEX_HEADER_SIZE + (size_t)slot * SHMQ_INDEX_SLOT_SIZE;
}

static size_t entry_off(const shmq_index_file_t *f, int32_t k)
{
    return SHMQ_INDEX_HEADER_SIZE + (size_t)f->slot_num * SHMQ_INDEX_SLOT_SIZE +
           (size_t)k * SHMQ_INDEX_ENTRY_SIZE;
}

static void slot_store(shmq_index_file_t *f, int32_t slot, int32_t v)
{
    /* release: the entry v names (and its chain) is complete before the slot points at it */
    __atomic_store_n((uint32_t *)(void *)(f->base + slot_off(f, slot)),
                     __builtin_bswap32((uint32_t)v), __ATOMIC_RELEASE);
}

shmq_index_crash_fn shmq_index_crash_hook;

/* ---- names ---------------------------------------------------------------------------- */

int64_t shmq_index_file_size(int32_t slot_num, int32_t index_num)
{
    return SHMQ_INDEX_HEADER_SIZE + (int64_t)slot_num * SHMQ_INDEX_SLOT_SIZE +
           (int64_t)index_num * SHMQ_INDEX_ENTRY_SIZE;
}

bool shmq_index_name_valid(const char *name)
{
    for (int i = 0; i < SHMQ_INDEX_NAME_LEN; i++) {
        if (name[i] < '0' || name[i] > '9') {
            return false;
        }
    }
    return name[SHMQ_INDEX_NAME_LEN] == '\0';
}

void shmq_index_name_format(int64_t ms, char out[SHMQ_INDEX_NAME_LEN + 1])
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    localtime_r(&s, &tm);
    char buf[64];
    snprintf(buf, sizeof(buf), "%04d%02d%02d%02d%02d%02d%03d", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
    memcpy(out, buf, SHMQ_INDEX_NAME_LEN);
    out[SHMQ_INDEX_NAME_LEN] = '\0';
}

int64_t shmq_index_name_parse(const char *name)
{
    if (!shmq_index_name_valid(name)) {
        return -1;
    }
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    int ms;
    if (sscanf(name, "%4d%2d%2d%2d%2d%2d%3d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &ms) != 7) {
        return -1;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    tm.tm_isdst = -1;
    time_t s = mktime(&tm);
    if (s == (time_t)-1) {
        return -1;
    }
    return (int64_t)s * 1000 + ms;
}

/* ---- create, open, close ----------------------------------------------------------------- */

static void header_encode(const shmq_index_header_t *h, uint8_t out[SHMQ_INDEX_HEADER_SIZE])
{
    be64_put(out + OFF_BEGIN_TS, (uint64_t)h->begin_ts);
    be64_put(out + OFF_END_TS, (uint64_t)h->end_ts);
    be64_put(out + OFF_BEGIN_PHYS, (uint64_t)h->begin_phys);
    be64_put(out + OFF_END_PHYS, (uint64_t)h->end_phys);
    be32_put(out + OFF_SLOT_COUNT, (uint32_t)h->hash_slot_count);
    be32_put(out + OFF_COUNT, (uint32_t)(h->index_count < 1 ? 1 : h->index_count));
}

int shmq_index_file_create(shmq_index_file_t *f, const char *dir, const char *name,
                           int32_t slot_num, int32_t index_num, const shmq_index_header_t *init)
{
    char path[PATH_MAX], tmp[PATH_MAX + 8];
    if (slot_num <= 0 || index_num <= 1 || !shmq_index_name_valid(name)) {
        return shmq_error_set(SHMQ_E_ARG, "index file %s/%s: bad name or sizes (%d slots, %d)", dir,
                              name, slot_num, index_num);
    }
    int64_t size = shmq_index_file_size(slot_num, index_num);
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path)) {
        return shmq_error_set(-ENAMETOOLONG, "index directory %s: path too long", dir);
    }
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (access(path, F_OK) == 0) {
        return shmq_error_set(-EEXIST, "index file %s exists already", path);
    }
    unlink(tmp); /* left by a creation a kill interrupted (the name only, never a link's target) */
    int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, SHMQ_FILE_MODE);
    if (fd < 0) {
        return shmq_error_set(-errno, "cannot create index file %s: %s", tmp, strerror(errno));
    }
    int rc = shmq_file_allocate(fd, size);
    if (rc < 0) {
        shmq_error_set(rc, "cannot allocate %lld bytes for index file %s: %s", (long long)size, tmp,
                       strerror(-rc));
        goto fail;
    }
    uint8_t hb[SHMQ_INDEX_HEADER_SIZE];
    shmq_index_header_t h = *init;
    h.index_count = 1;
    h.hash_slot_count = 0;
    header_encode(&h, hb);
    if (pwrite(fd, hb, sizeof(hb), 0) != (ssize_t)sizeof(hb) || fsync(fd) != 0) {
        rc = shmq_error_set(-errno ? -errno : -EIO, "cannot write index file %s: %s", tmp,
                            strerror(errno));
        goto fail;
    }
    if (rename(tmp, path) != 0) {
        rc = shmq_error_set(-errno, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
        goto fail;
    }
    close(fd);
    rc = shmq_file_fsync_dir(dir);
    if (rc < 0) {
        return shmq_error_set(rc, "cannot sync directory %s: %s", dir, strerror(-rc));
    }
    return shmq_index_file_open(f, path, slot_num, index_num, false);
fail:
    close(fd);
    unlink(tmp);
    return rc;
}

int shmq_index_file_open(shmq_index_file_t *f, const char *path, int32_t slot_num,
                         int32_t index_num, bool readonly)
{
    memset(f, 0, sizeof(*f));
    f->fd = -1;
    if (slot_num <= 0 || index_num <= 1) {
        return shmq_error_set(SHMQ_E_ARG, "index file %s: bad sizes (%d slots, %d entries)", path,
                              slot_num, index_num);
    }
    if (snprintf(f->path, sizeof(f->path), "%s", path) >= (int)sizeof(f->path)) {
        return shmq_error_set(-ENAMETOOLONG, "index file path too long: %s", path);
    }
    const char *slash = strrchr(path, '/');
    snprintf(f->name, sizeof(f->name), "%s", slash ? slash + 1 : path);
    f->slot_num = slot_num;
    f->index_num = index_num;
    f->readonly = readonly;
    int64_t want = shmq_index_file_size(slot_num, index_num);
    int fd = shmq_store_file_open(path, readonly ? O_RDONLY : O_RDWR, 0);
    if (fd == -ENOENT) {
        return shmq_error_set(fd, "cannot open index file %s: %s", path, strerror(-fd));
    }
    if (fd < 0) {
        return fd;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = -errno;
        close(fd);
        return shmq_error_set(e, "cannot stat index file %s: %s", path, strerror(-e));
    }
    if (st.st_size != want) {
        close(fd);
        return shmq_error_set(SHMQ_E_SEGMENT,
                              "index file %s has %lld bytes, expected %lld (maxHashSlotNum %d, "
                              "maxIndexNum %d)",
                              path, (long long)st.st_size, (long long)want, slot_num, index_num);
    }
    void *p =
        mmap(NULL, (size_t)want, readonly ? PROT_READ : PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        int e = -errno;
        close(fd);
        return shmq_error_set(e, "cannot map index file %s: %s", path, strerror(-e));
    }
    f->fd = fd;
    f->base = p;
    f->entries = f->base + SHMQ_INDEX_HEADER_SIZE + (size_t)slot_num * SHMQ_INDEX_SLOT_SIZE;
    f->size = (size_t)want;
    shmq_index_header_read(f, &f->hdr);
    return 0;
}

void shmq_index_file_close(shmq_index_file_t *f)
{
    shmq_store_file_unmap(&f->base, f->size, &f->fd);
    f->entries = NULL;
}

int shmq_index_file_destroy(shmq_index_file_t *f)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", f->path);
    shmq_index_file_close(f);
    if (unlink(f->path) != 0 && errno != ENOENT) {
        return shmq_error_set(-errno, "cannot remove index file %s: %s", f->path, strerror(errno));
    }
    int rc = shmq_file_fsync_dir(dirname(dir));
    return rc < 0 ? shmq_error_set(rc, "cannot sync the directory of %s", f->path) : 0;
}

/* ---- reading ---------------------------------------------------------------------------- */

void shmq_index_header_read(const shmq_index_file_t *f, shmq_index_header_t *h)
{
    h->index_count = hdr_load32(f, OFF_COUNT);
    h->begin_ts = hdr_load64(f, OFF_BEGIN_TS);
    h->end_ts = hdr_load64(f, OFF_END_TS);
    h->begin_phys = hdr_load64(f, OFF_BEGIN_PHYS);
    h->end_phys = hdr_load64(f, OFF_END_PHYS);
    h->hash_slot_count = hdr_load32(f, OFF_SLOT_COUNT);
    if (h->index_count < 1) {
        h->index_count = 1; /* a zeroed header (RocketMQ writes it at the first put) */
    }
}

int shmq_index_entry_read(const shmq_index_file_t *f, int32_t k, shmq_index_entry_t *e)
{
    if (k < 1 || k >= f->index_num) {
        return SHMQ_E_RANGE;
    }
    const uint8_t *p = f->base + entry_off(f, k);
    e->key_hash = (int32_t)be32_get(p);
    e->phys_offset = (int64_t)be64_get(p + 4);
    e->time_diff = (int32_t)be32_get(p + 12);
    e->prev = (int32_t)be32_get(p + 16);
    return 0;
}

static int32_t slot_load(const shmq_index_file_t *f, int32_t slot)
{
    /* acquire: pairs with the release store of the slot after its entry */
    uint32_t v = __atomic_load_n((const uint32_t *)(const void *)(f->base + slot_off(f, slot)),
                                 __ATOMIC_ACQUIRE);
    return (int32_t)__builtin_bswap32(v);
}

int32_t shmq_index_slot_read(const shmq_index_file_t *f, int32_t slot)
{
    return slot_load(f, slot);
}

/* ---- writing ---------------------------------------------------------------------------- */

/* shmq_index_file_put_entry() with a crash hook (crash tests only), out of line. */
static __attribute__((noinline)) int index_put_hooked(shmq_index_file_t *f, int32_t key_hash,
                                                      int64_t phys, int64_t store_ts,
                                                      shmq_index_crash_fn hook)
{
    return shmq_index_file_put_entry(f, key_hash, phys, store_ts, hook, true);
}

int shmq_index_file_put(shmq_index_file_t *f, int32_t key_hash, int64_t phys, int64_t store_ts)
{
    if (f->readonly || key_hash < 0) {
        return shmq_error_set(SHMQ_E_ARG, "index file %s: put on a read-only file or hash < 0",
                              f->path);
    }
    shmq_index_crash_fn hook = shmq_index_crash_hook;
    if (hook != NULL) {
        return index_put_hooked(f, key_hash, phys, store_ts, hook);
    }
    return shmq_index_file_put_entry(f, key_hash, phys, store_ts, NULL, true);
}

int shmq_index_file_pop(shmq_index_file_t *f, shmq_index_entry_t *out)
{
    int32_t n = f->hdr.index_count;
    if (f->readonly || n <= 1) {
        return f->readonly ? SHMQ_E_ARG : SHMQ_E_RANGE;
    }
    int32_t k = n - 1;
    shmq_index_entry_t e;
    shmq_index_entry_read(f, k, &e);
    if (e.key_hash < 0) {
        return shmq_error_set(SHMQ_E_CORRUPT, "index file %s: entry %d has hash %d", f->path, k,
                              e.key_hash);
    }
    int32_t slot = e.key_hash % f->slot_num;
    if (shmq_index_slot_read(f, slot) != k) {
        return shmq_error_set(SHMQ_E_CORRUPT,
                              "index file %s: slot %d does not point at the newest entry %d",
                              f->path, slot, k);
    }
    /* indexCount first: a kill before the slot is restored leaves the state repair undoes. */
    f->hdr.index_count = k;
    shmq_index_hdr_store32(f, OFF_COUNT, k);
    int32_t prev = e.prev > 0 && e.prev < k ? e.prev : 0;
    slot_store(f, slot, prev);
    if (prev == 0 && f->hdr.hash_slot_count > 0) {
        f->hdr.hash_slot_count--;
        shmq_index_hdr_store32(f, OFF_SLOT_COUNT, f->hdr.hash_slot_count);
    }
    memset(f->base + entry_off(f, k), 0, SHMQ_INDEX_ENTRY_SIZE);
    f->dirty = true;
    if (out) {
        *out = e;
    }
    return 0;
}

void shmq_index_file_set_end(shmq_index_file_t *f, int64_t end_phys, int64_t end_ts)
{
    f->hdr.end_phys = end_phys;
    f->hdr.end_ts = end_ts;
    shmq_index_hdr_store64(f, OFF_END_PHYS, end_phys);
    shmq_index_hdr_store64(f, OFF_END_TS, end_ts);
    if (f->hdr.index_count <= 1) {
        f->hdr.begin_phys = end_phys;
        f->hdr.begin_ts = end_ts;
        shmq_index_hdr_store64(f, OFF_BEGIN_PHYS, end_phys);
        shmq_index_hdr_store64(f, OFF_BEGIN_TS, end_ts);
    }
    f->dirty = true;
}

int shmq_index_file_repair(shmq_index_file_t *f, shmq_index_repair_t *rep)
{
    shmq_index_repair_t r = {0};
    if (f->readonly) {
        return shmq_error_set(SHMQ_E_ARG, "index file %s: repair of a read-only file", f->path);
    }
    uint32_t raw = __builtin_bswap32(*(const uint32_t *)(const void *)(f->base + OFF_COUNT));
    int32_t c = (int32_t)raw;
    if (c < 0 || c > f->index_num) {
        return shmq_error_set(SHMQ_E_CORRUPT, "index file %s: indexCount %d outside 0..%d", f->path,
                              c, f->index_num);
    }
    if (c < 1) {
        c = 1;
    }
    int32_t nonempty = 0;
    for (int32_t s = 0; s < f->slot_num; s++) {
        int32_t v = (int32_t)be32_get(f->base + slot_off(f, s));
        if (v == 0) {
            continue;
        }
        if (v > 0 && v < c) {
            nonempty++;
            continue;
        }
        shmq_index_entry_t e;
        if (v == c && shmq_index_entry_read(f, v, &e) == 0 && e.key_hash >= 0 &&
            e.key_hash % f->slot_num == s && e.prev >= 0 && e.prev < c) {
            /* Written and pointed at, never counted (or popped halfway): undo it. */
            slot_store(f, s, e.prev);
            nonempty += e.prev > 0;
            r.torn_slots++;
            continue;
        }
        return shmq_error_set(SHMQ_E_CORRUPT,
                              "index file %s: slot %d holds entry %d, but indexCount is %d",
                              f->path, s, v, c);
    }
    shmq_index_header_t h;
    shmq_index_header_read(f, &h);
    int64_t diff = (int64_t)nonempty - h.hash_slot_count; /* the file's count may be INT32_MIN */
    r.slot_count_diff = diff > INT32_MAX ? INT32_MAX : (int32_t)diff;
    f->hdr = h;
    f->hdr.index_count = c;
    f->hdr.hash_slot_count = nonempty;
    shmq_index_hdr_store32(f, OFF_SLOT_COUNT, nonempty);
    shmq_index_hdr_store32(f, OFF_COUNT, c);
    if (c > 1) {
        shmq_index_entry_t last;
        shmq_index_entry_read(f, c - 1, &last);
        if (last.phys_offset != h.end_phys) {
            r.end_fixed = true;
            f->hdr.end_phys = last.phys_offset;
            shmq_index_hdr_store64(f, OFF_END_PHYS, last.phys_offset);
        }
    }
    f->dirty = true;
    if (rep) {
        *rep = r;
    }
    return 0;
}

int shmq_index_file_flush(shmq_index_file_t *f)
{
    if (!f->dirty || f->readonly) {
        return 0;
    }
    if (msync(f->base, f->size, MS_SYNC) != 0) {
        return shmq_error_set(-errno, "msync of index file %s failed: %s", f->path,
                              strerror(errno));
    }
    f->dirty = false;
    return 0;
}

/* ---- lookup ------------------------------------------------------------------------------- */

int shmq_index_file_lookup(const shmq_index_file_t *f, int32_t key_hash, int64_t begin_ts,
                           int64_t end_ts, int32_t limit_count, shmq_index_visit_fn visit,
                           void *arg)
{
    if (key_hash < 0) {
        return 0;
    }
    int32_t cap = f->index_num;
    if (limit_count > 0 && limit_count < cap) {
        cap = limit_count;
    }
    int32_t cur = shmq_index_slot_read(f, key_hash % f->slot_num);
    int64_t base_ts = hdr_load64(f, OFF_BEGIN_TS);
    while (cur > 0 && cur < cap) {
        shmq_index_entry_t e;
        shmq_index_entry_read(f, cur, &e);
        /* Entry times are whole seconds after begin_ts; entry 1 of a file RocketMQ rolled may
         * carry a time computed against an older begin: no time filter for it. */
        bool timed = base_ts > 0 && cur != 1 && e.time_diff >= 0 && e.time_diff < INT32_MAX &&
                     base_ts <= INT64_MAX - 1000 - (int64_t)e.time_diff * 1000; /* from the file */
        int64_t lo = timed ? base_ts + (int64_t)e.time_diff * 1000 : 0;
        if (timed && lo + 999 < begin_ts) {
            break; /* this entry and every older one of the chain are before the range */
        }
        if (e.key_hash == key_hash && (!timed || lo <= end_ts)) {
            int rc = visit(arg, e.phys_offset, cur);
            if (rc != 0) {
                return rc;
            }
        }
        if (e.prev <= 0 || e.prev >= cur) {
            break;
        }
        cur = e.prev;
    }
    return 0;
}
