/*
 * bench/floor: the lower bound of shmq's hot path on this machine, for
 * bench/compare-peers.  It does only the essential work of a store append,
 * with none of shmq's checks, guarantees or bookkeeping, and no durability:
 *
 *   one producer process writes each message (a --size body and the queue
 *   it goes to) into a shared-memory single-producer ring; a second process
 *   takes it off the ring, lays a RocketMQ-shaped record (fixed header,
 *   body, topic, properties with a UNIQ_KEY and a __CRC32# tail) into an
 *   mmapped append file with two CRC32s (ISA-L crc32_gzip_refl, as
 *   libshm/format/message.c: one over the body, one over the record), and
 *   a 20-byte index unit (offset, size, tags code) into a second mmapped
 *   file.  Nothing is flushed.
 *
 * Then a reader process maps both files afresh and reads the backlog
 * through the index units, checking each record's CRC (once with the check,
 * once without), as shmq-bench consume reads shmq's.
 *
 *   floor [--size B] [--count N] [--dir DIR] [--ring-bytes B] [--json]
 *
 * Prints append and read rates (messages per second); files are made in
 * DIR ($TMPDIR or /tmp) and removed at once (unlinked while open).
 * Exit status: 0 measured, 1 failure, 2 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <isa-l/crc.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define FLOOR_TOPIC    "BenchTopic"
#define FLOOR_QUEUES   4
#define FLOOR_UNIT     20 /* index unit: offset 8, size 4, tags code 8 */
#define FLOOR_HDR      96 /* the record's fixed part before the body, as RocketMQ's v1 */
#define FLOOR_PROPS    64 /* "UNIQ_KEY\1<32 hex>\2" + "__CRC32#\1<10 digits>\2" and padding */
#define FLOOR_CRC_TAIL 20 /* "__CRC32#\1" + 10 digits + "\2": outside the record CRC */
#define FLOOR_MAGIC    0xdaa320a7u

/* The ring: one producer, one consumer; positions in bytes, each on a line of its own. */
typedef struct ring {
    _Alignas(64) _Atomic uint64_t tail; /* the producer's: bytes published */
    _Alignas(64) _Atomic uint64_t head; /* the consumer's: bytes taken */
    _Alignas(64) uint64_t size;         /* bytes of data, a power of two */
    _Atomic int64_t done_ns;            /* the appender: when the last record was appended */
    _Atomic int64_t start_ns;           /* the producer: its first send */
    unsigned char data[]; /* size bytes and room for one entry past them: an entry that
                           * starts near the end runs on there (both sides see it so) */
} ring_t;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Spin a little, then yield: the machine may have two cores for three processes. */
static void backoff(unsigned *spins)
{
    if (++*spins < 256) {
        cpu_relax();
    } else {
        sched_yield();
    }
}

static uint64_t entry_bytes(uint64_t size)
{
    return (8 + size + 7) & ~(uint64_t)7; /* u32 length, u32 queue id, body; 8-aligned */
}

static void producer(ring_t *r, uint64_t size, int64_t count)
{
    unsigned char *body = malloc(size + 1);
    if (!body) {
        _exit(1);
    }
    for (uint64_t i = 0; i < size; i++) {
        body[i] = (unsigned char)('a' + i % 26);
    }
    uint64_t need = entry_bytes(size), mask = r->size - 1, tail = 0;
    uint64_t head_seen = 0; /* the consumer's head as last read: re-read only when full */
    atomic_store_explicit(&r->start_ns, now_ns(), memory_order_relaxed);
    for (int64_t n = 0; n < count; n++) {
        unsigned spins = 0;
        while (tail + need - head_seen > r->size) {
            /* Acquire: the consumer is done with the bytes before head. */
            head_seen = atomic_load_explicit(&r->head, memory_order_acquire);
            if (tail + need - head_seen > r->size) {
                backoff(&spins);
            }
        }
        unsigned char *e = r->data + (tail & mask);
        uint32_t len = (uint32_t)size, q = (uint32_t)(n % FLOOR_QUEUES);
        memcpy(e, &len, 4);
        memcpy(e + 4, &q, 4);
        memcpy(e + 8, body, size);
        tail += need;
        /* Release: the entry is written before the tail covers it. */
        atomic_store_explicit(&r->tail, tail, memory_order_release);
    }
    free(body);
    _exit(0);
}

static void put_be32(unsigned char *p, uint32_t v)
{
    v = __builtin_bswap32(v);
    memcpy(p, &v, 4);
}

static void put_be64(unsigned char *p, uint64_t v)
{
    v = __builtin_bswap64(v);
    memcpy(p, &v, 8);
}

/* Two hex digits of each byte value. */
static char hex2[256][2];

static void hex_init(void)
{
    static const char hex[] = "0123456789ABCDEF";
    for (int i = 0; i < 256; i++) {
        hex2[i][0] = hex[i >> 4];
        hex2[i][1] = hex[i & 15];
    }
}

static uint32_t get_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get_be64(const unsigned char *p)
{
    return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

static uint32_t crc(const void *p, uint64_t n)
{
    return crc32_gzip_refl(0, (const unsigned char *)p, n) & 0x7fffffffu;
}

static uint64_t record_bytes(uint64_t size)
{
    return FLOOR_HDR + size + 1 + strlen(FLOOR_TOPIC) + 2 + FLOOR_PROPS;
}

/* Lay one record at log + off and its unit; the record's bytes. */
static uint64_t append(unsigned char *log, unsigned char *units, uint64_t off, int64_t n,
                       const unsigned char *e, int64_t *qoff)
{
    uint32_t len, q;
    memcpy(&len, e, 4);
    memcpy(&q, e + 4, 4);
    const unsigned char *body = e + 8;
    uint64_t total = record_bytes(len);
    unsigned char *p = log + off;
    put_be32(p, (uint32_t)total);
    put_be32(p + 4, FLOOR_MAGIC);
    put_be32(p + 8, crc(body, len));
    put_be32(p + 12, q);
    put_be32(p + 16, 0);
    put_be64(p + 20, (uint64_t)qoff[q]++);
    put_be64(p + 28, off);
    put_be32(p + 36, 0);
    put_be64(p + 40, 0); /* born time: the producer's, not taken here */
    memset(p + 48, 0, FLOOR_HDR - 48 - 4);
    put_be32(p + FLOOR_HDR - 4, len);
    p += FLOOR_HDR;
    memcpy(p, body, len);
    p += len;
    *p++ = (unsigned char)strlen(FLOOR_TOPIC);
    memcpy(p, FLOOR_TOPIC, strlen(FLOOR_TOPIC));
    p += strlen(FLOOR_TOPIC);
    p[0] = 0;
    p[1] = FLOOR_PROPS;
    p += 2;
    /* UNIQ_KEY: a fixed prefix and the message number in hex. */
    memcpy(p, "UNIQ_KEY\001", 9);
    memset(p + 9, '0', 16);
    for (int i = 0; i < 8; i++) {
        memcpy(p + 9 + 16 + 2 * i, hex2[((uint64_t)n >> (56 - 8 * i)) & 255], 2);
    }
    p[41] = '\002';
    memset(p + 42, ' ', FLOOR_PROPS - 42 - FLOOR_CRC_TAIL);
    unsigned char *t = p + FLOOR_PROPS - FLOOR_CRC_TAIL;
    uint32_t c = crc(log + off, total - FLOOR_CRC_TAIL);
    memcpy(t, "__CRC32#\001", 9);
    for (int i = 9 + 9; i >= 9; i--) {
        t[i] = (unsigned char)('0' + c % 10);
        c /= 10;
    }
    t[19] = '\002';
    unsigned char *u = units + (uint64_t)n * FLOOR_UNIT;
    put_be64(u, off);
    put_be32(u + 8, (uint32_t)total);
    put_be64(u + 12, 0x12345678); /* tags code */
    return total;
}

static void appender(ring_t *r, unsigned char *log, unsigned char *units, int64_t count)
{
    uint64_t head = 0, mask = r->size - 1, off = 0;
    int64_t qoff[FLOOR_QUEUES] = {0};
    int64_t n = 0;
    while (n < count) {
        unsigned spins = 0;
        uint64_t tail;
        /* Acquire: pairs with the producer's release of tail. */
        while ((tail = atomic_load_explicit(&r->tail, memory_order_acquire)) == head) {
            backoff(&spins);
        }
        while (head < tail) {
            const unsigned char *e = r->data + (head & mask);
            uint32_t len;
            memcpy(&len, e, 4);
            off += append(log, units, off, n++, e, qoff);
            head += entry_bytes(len);
        }
        /* Release: the entries are copied out before the producer may reuse them. */
        atomic_store_explicit(&r->head, head, memory_order_release);
    }
    atomic_store_explicit(&r->done_ns, now_ns(), memory_order_release);
    _exit(0);
}

/* Read every record through its unit; 0 or the number of bad records. */
static int64_t read_backlog(int log_fd, int unit_fd, uint64_t log_len, int64_t count, bool check,
                            int64_t *ns, uint64_t *touch)
{
    unsigned char *log = mmap(NULL, log_len, PROT_READ, MAP_SHARED, log_fd, 0);
    unsigned char *units =
        mmap(NULL, (size_t)count * FLOOR_UNIT, PROT_READ, MAP_SHARED, unit_fd, 0);
    if (log == MAP_FAILED || units == MAP_FAILED) {
        return -1;
    }
    int64_t bad = 0, t0 = now_ns();
    uint64_t sum = 0;
    for (int64_t n = 0; n < count; n++) {
        const unsigned char *u = units + (uint64_t)n * FLOOR_UNIT;
        uint64_t off = get_be64(u);
        uint32_t size = get_be32(u + 8);
        if (off + size > log_len || size < FLOOR_HDR + FLOOR_CRC_TAIL) {
            bad++;
            continue;
        }
        const unsigned char *p = log + off;
        if (check) {
            uint32_t c = crc(p, size - FLOOR_CRC_TAIL), d = 0;
            const unsigned char *t = p + size - FLOOR_CRC_TAIL + 9;
            for (int i = 0; i < 10; i++) {
                d = d * 10 + (uint32_t)(t[i] - '0');
            }
            bad += c != d;
        }
        uint32_t blen = get_be32(p + FLOOR_HDR - 4);
        sum += p[FLOOR_HDR] + p[FLOOR_HDR + blen - 1];
    }
    *ns = now_ns() - t0;
    *touch = sum;
    munmap(log, log_len);
    munmap(units, (size_t)count * FLOOR_UNIT);
    return bad;
}

static int temp_file(const char *dir, const char *what, uint64_t len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/floor-%s.XXXXXX", dir, what);
    int fd = mkstemp(path);
    if (fd < 0) {
        fprintf(stderr, "floor: cannot create %s: %s\n", path, strerror(errno));
        return -1;
    }
    unlink(path);
    int rc = posix_fallocate(fd, 0, (off_t)len);
    if (rc != 0) {
        fprintf(stderr, "floor: cannot allocate %llu bytes in %s: %s\n", (unsigned long long)len,
                dir, strerror(rc));
        close(fd);
        return -1;
    }
    return fd;
}

static int wait_child(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR) {
            return -1;
        }
    }
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

/* One reader process reads the backlog: rate in msgs/s, or -1. */
static double reader(int log_fd, int unit_fd, uint64_t log_len, int64_t count, bool check)
{
    _Atomic int64_t *res =
        mmap(NULL, 2 * sizeof(int64_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (res == MAP_FAILED) {
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        int64_t ns = 0;
        uint64_t touch = 0;
        int64_t bad = read_backlog(log_fd, unit_fd, log_len, count, check, &ns, &touch);
        res[0] = bad == 0 ? ns : -1;
        res[1] = (int64_t)(touch & 1);
        _exit(bad == 0 ? 0 : 1);
    }
    double rate = -1;
    if (pid > 0 && wait_child(pid) == 0 && res[0] > 0) {
        rate = (double)count / ((double)res[0] / 1e9);
    }
    munmap(res, 2 * sizeof(int64_t));
    return rate;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: floor [--size B] [--count N] [--dir DIR] [--ring-bytes B] [--json]\n"
               "  the minimal shared-memory ring + mmap append of shmq's hot path (no\n"
               "  durability): append rate with two CRC32s and an index unit per message,\n"
               "  then a backlog read through the units with and without the record CRC.\n");
}

int main(int argc, char **argv)
{
    uint64_t size = 128, ring_bytes = 4u << 20;
    int64_t count = 1000000;
    const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    bool json = false;
    static const struct option opts[] = {
        {"size", required_argument, NULL, 's'},
        {"count", required_argument, NULL, 'n'},
        {"dir", required_argument, NULL, 'd'},
        {"ring-bytes", required_argument, NULL, 'r'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            size = strtoull(optarg, NULL, 10);
            break;
        case 'n':
            count = strtoll(optarg, NULL, 10);
            break;
        case 'd':
            dir = optarg;
            break;
        case 'r':
            ring_bytes = strtoull(optarg, NULL, 10);
            break;
        case 'j':
            json = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc || size < 1 || size > (1u << 20) || count < 1 || count > (1LL << 32) ||
        ring_bytes < 2 * entry_bytes(size) || (ring_bytes & (ring_bytes - 1)) != 0) {
        fprintf(stderr, "floor: --size 1..1048576, --count 1..2^32, --ring-bytes a power of two "
                        "holding two messages\n");
        return 2;
    }
    uint64_t log_len = record_bytes(size) * (uint64_t)count;
    int log_fd = temp_file(dir, "log", log_len);
    int unit_fd = log_fd < 0 ? -1 : temp_file(dir, "units", (uint64_t)count * FLOOR_UNIT);
    if (unit_fd < 0) {
        return 1;
    }
    unsigned char *log = mmap(NULL, log_len, PROT_READ | PROT_WRITE, MAP_SHARED, log_fd, 0);
    unsigned char *units =
        mmap(NULL, (size_t)count * FLOOR_UNIT, PROT_READ | PROT_WRITE, MAP_SHARED, unit_fd, 0);
    ring_t *r = mmap(NULL, sizeof(ring_t) + ring_bytes + entry_bytes(size), PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (log == MAP_FAILED || units == MAP_FAILED || r == MAP_FAILED) {
        fprintf(stderr, "floor: mmap: %s\n", strerror(errno));
        return 1;
    }
    r->size = ring_bytes;
    hex_init();
    pid_t app = fork();
    if (app == 0) {
        appender(r, log, units, count);
    }
    pid_t prod = app > 0 ? fork() : -1;
    if (prod == 0) {
        producer(r, size, count);
    }
    if (app < 0 || prod < 0 || wait_child(prod) < 0 || wait_child(app) < 0) {
        fprintf(stderr, "floor: the producer or the appender failed\n");
        return 1;
    }
    int64_t ns = atomic_load(&r->done_ns) - atomic_load(&r->start_ns);
    double append_rate = ns > 0 ? (double)count / ((double)ns / 1e9) : 0;
    munmap(log, log_len);
    munmap(units, (size_t)count * FLOOR_UNIT);
    double read_check = reader(log_fd, unit_fd, log_len, count, true);
    double read_nocheck = reader(log_fd, unit_fd, log_len, count, false);
    if (read_check < 0 || read_nocheck < 0) {
        fprintf(stderr, "floor: the backlog read failed (a record's CRC or unit is wrong)\n");
        return 1;
    }
    if (json) {
        printf("{\"size\":%llu,\"count\":%lld,\"record_bytes\":%llu,\"append_msgs_per_sec\":%.0f,"
               "\"read_msgs_per_sec\":%.0f,\"read_nocheck_msgs_per_sec\":%.0f}\n",
               (unsigned long long)size, (long long)count, (unsigned long long)record_bytes(size),
               append_rate, read_check, read_nocheck);
    } else {
        printf("floor: %lld messages of %llu B (%llu-byte records)\n"
               "  append  %.0f msgs/s  (ring hand-over, record, 2 CRC32s, index unit)\n"
               "  read    %.0f msgs/s with the record CRC, %.0f without\n",
               (long long)count, (unsigned long long)size, (unsigned long long)record_bytes(size),
               append_rate, read_check, read_nocheck);
    }
    close(log_fd);
    close(unit_fd);
    return 0;
}
