/*
 * IndexFile and index service tests: the byte layout RocketMQ reads, bucket
 * chains and the time filter, rollover and file names, the repair of a put
 * or pop a kill interrupted, the exactly-once resume of a restarted indexer
 * (partly indexed message, message split over two files, entries past the
 * log's end, an inconsistent file), and the abnormal-start drop.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/index_service.h"
#include "store/store.h"

#define BASE_TS 1700000000000LL

typedef struct fixture {
    char dir[256];
    char idx[300];
    shmq_config_t cfg;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    strcpy(f->dir, "/tmp/shmq-index-XXXXXX");
    if (!mkdtemp(f->dir)) {
        return -1;
    }
    shmq_config_defaults(&f->cfg);
    snprintf(f->cfg.store_path_root_dir, sizeof(f->cfg.store_path_root_dir), "%s/store", f->dir);
    f->cfg.mapped_file_size_commit_log = 64 * 1024;
    f->cfg.mapped_file_size_consume_queue = 20 * 64;
    f->cfg.max_hash_slot_num = 7;
    f->cfg.max_index_num = 10;
    snprintf(f->idx, sizeof(f->idx), "%s/store/index", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    int rc = system(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const uint8_t *p)
{
    return (uint64_t)be32(p) << 32 | be32(p + 4);
}

/* A single file in f->dir named by name, 4 slots and 5 entries. */
static void make_file(fixture_t *f, shmq_index_file_t *xf, int32_t slots, int32_t num)
{
    shmq_index_header_t init = {0};
    assert_int_equal(shmq_index_file_create(xf, f->dir, "20240101000000000", slots, num, &init), 0);
}

/* ---- file format ------------------------------------------------------------------------ */

static void test_file_layout_matches_rocketmq(void **state)
{
    fixture_t *f = *state;
    shmq_index_file_t xf;
    make_file(f, &xf, 4, 5);
    assert_int_equal(xf.size, 40 + 4 * 4 + 5 * 20);
    assert_int_equal(shmq_index_file_put(&xf, 5, 100, BASE_TS), 0);
    assert_int_equal(shmq_index_file_put(&xf, 9, 200, BASE_TS + 2500), 0);
    const uint8_t *b = xf.base;
    assert_int_equal(be64(b + 0), BASE_TS);        /* beginTimestamp */
    assert_int_equal(be64(b + 8), BASE_TS + 2500); /* endTimestamp */
    assert_int_equal(be64(b + 16), 100);           /* beginPhyOffset */
    assert_int_equal(be64(b + 24), 200);           /* endPhyOffset */
    assert_int_equal(be32(b + 32), 1);             /* hashSlotCount: both in slot 1 */
    assert_int_equal(be32(b + 36), 3);             /* indexCount: next entry */
    assert_int_equal(be32(b + 40 + 4 * 1), 2);     /* slot 1 -> entry 2 */
    const uint8_t *e1 = b + 40 + 16 + 20 * 1, *e2 = b + 40 + 16 + 20 * 2;
    assert_int_equal(be32(e1), 5);
    assert_int_equal(be64(e1 + 4), 100);
    assert_int_equal(be32(e1 + 12), 0);
    assert_int_equal(be32(e1 + 16), 0);
    assert_int_equal(be32(e2), 9);
    assert_int_equal(be64(e2 + 4), 200);
    assert_int_equal(be32(e2 + 12), 2); /* whole seconds after beginTimestamp */
    assert_int_equal(be32(e2 + 16), 1); /* previous entry of the bucket */
    shmq_index_file_close(&xf);
}

static void put_be32(uint8_t *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8) {
        p[i] = (uint8_t)v;
    }
}

static void put_be64(uint8_t *p, uint64_t v)
{
    put_be32(p, (uint32_t)(v >> 32));
    put_be32(p + 4, (uint32_t)v);
}

/*
 * A put written from the format's rules alone, on a copy m of a file's bytes (slot_num
 * slots, index_num entries): no memo of the second, the difference taken exactly.  What
 * shmq_index_file_put() and its inline part must write, byte for byte.
 */
static int ref_put(uint8_t *m, int32_t slot_num, int32_t index_num, int32_t hash, int64_t phys,
                   int64_t ts)
{
    if (hash < 0) {
        return SHMQ_E_ARG;
    }
    int32_t n = (int32_t)be32(m + 36);
    n = n < 1 ? 1 : n;
    if (n >= index_num) {
        return SHMQ_E_RANGE;
    }
    if (n == 1) {
        put_be64(m, (uint64_t)ts);
        put_be64(m + 16, (uint64_t)phys);
    }
    int64_t begin = (int64_t)be64(m), diff = 0;
    if (begin > 0) {
        __int128 d = ((__int128)ts - begin) / 1000;
        diff = d < 0 ? 0 : d > INT32_MAX ? INT32_MAX : (int64_t)d;
    }
    uint8_t *slot = m + 40 + 4 * (hash % slot_num);
    int32_t prev = (int32_t)be32(slot);
    prev = prev <= 0 || prev >= n ? 0 : prev;
    uint8_t *e = m + 40 + 4 * (size_t)slot_num + 20 * (size_t)n;
    put_be32(e, (uint32_t)hash);
    put_be64(e + 4, (uint64_t)phys);
    put_be32(e + 12, (uint32_t)diff);
    put_be32(e + 16, (uint32_t)prev);
    put_be32(slot, (uint32_t)n);
    put_be64(m + 8, (uint64_t)ts);
    put_be64(m + 24, (uint64_t)phys);
    if (prev == 0) {
        put_be32(m + 32, be32(m + 32) + 1);
    }
    put_be32(m + 36, (uint32_t)n + 1);
    return 0;
}

static int hook_calls;
static void count_hook(enum shmq_index_step step)
{
    (void)step;
    hook_calls++;
}

/* shmq_index_file_put_inline() against shmq_index_file_put() and against ref_put(): the same
 * puts on two files and a copy (the first entry, store times before beginTimestamp, far after
 * it, at the limits, a first entry stored at time 0, runs of store times in one second, hash
 * collisions in 13 slots, negative hashes, a full file, a crash hook, a read-only file): every
 * result, header copy and byte of the files equal. */
static void test_inline_file_put_equals_put(void **state)
{
    fixture_t *f = *state;
    static const int64_t ts_far[] = {0,
                                     -1,
                                     INT64_MIN,
                                     INT64_MAX,
                                     BASE_TS - 1500,
                                     BASE_TS + 999,
                                     BASE_TS + (int64_t)INT32_MAX * 1000 + 5000};
    uint32_t seed = 99;
    int hooked = 0;
    int64_t last_ts = BASE_TS;
    hook_calls = 0;
    for (int form = 0; form < 40; form++) {
        shmq_index_file_t a, b;
        shmq_index_header_t init = {0};
        char na[18], nb[18];
        snprintf(na, sizeof(na), "2024010100%07d", form * 2);
        snprintf(nb, sizeof(nb), "2024010100%07d", form * 2 + 1);
        assert_int_equal(shmq_index_file_create(&a, f->dir, na, 13, 60, &init), 0);
        assert_int_equal(shmq_index_file_create(&b, f->dir, nb, 13, 60, &init), 0);
        uint8_t *m = malloc(a.size);
        assert_non_null(m);
        memcpy(m, a.base, a.size);
        bool pops = form % 3 == 2;
        for (int i = 0; i < (pops ? 110 : 70); i++) {
            seed = seed * 1103515245u + 12345u;
            unsigned r = (seed >> 8) % 32;
            int32_t hash = (int32_t)((seed >> 4) % 1000);
            int64_t ts = BASE_TS + (int64_t)(seed % 5000) * i;
            if (pops && i == 40) {
                /* Every entry popped: the next one begins the file again, in the second the
                 * previous entry's was remembered for (a beginTimestamp of its own). */
                while (shmq_index_file_pop(&a, NULL) == 0) {
                    assert_int_equal(shmq_index_file_pop(&b, NULL), 0);
                }
                assert_int_equal(shmq_index_file_pop(&b, NULL), SHMQ_E_RANGE);
                assert_memory_equal(a.base, b.base, a.size);
                memcpy(m, a.base, a.size);
                ts = (last_ts > 0 && last_ts < INT64_MAX / 2 ? last_ts : BASE_TS) + 1 +
                     (int64_t)(seed % 300);
                r = 31;
            } else if (r == 30 && i > 2 && !pops) {
                /* A slot as a torn put leaves it (at or past indexCount) or as damage (negative):
                 * the chain must not follow it. */
                static const int32_t bad[] = {-1, INT32_MIN, INT32_MAX, 59, 60, 0};
                int32_t n = a.hdr.index_count, v = bad[seed % 6];
                v = v == 0 ? n + (int32_t)(seed % 3) : v;
                size_t off = SHMQ_INDEX_HEADER_SIZE + (size_t)(hash % 13) * SHMQ_INDEX_SLOT_SIZE;
                put_be32(a.base + off, (uint32_t)v);
                put_be32(b.base + off, (uint32_t)v);
                put_be32(m + off, (uint32_t)v);
            }
            if (r == 31 || (r == 30 && i > 2 && !pops)) {
                /* as set above */
            } else if (r == 0) {
                hash = -(int32_t)(seed % 5) - 1;
            } else if (r < 4) {
                ts = ts_far[(seed >> 3) % (sizeof(ts_far) / sizeof(ts_far[0]))];
            } else if (i == 0 && form % 4 == 1) {
                ts = 0; /* a first entry stored at time 0: beginTimestamp 0 */
            } else if (r < 20) {
                /* mostly the previous entry's second */
                ts = (last_ts > 0 && last_ts < INT64_MAX / 2 ? last_ts : BASE_TS) +
                     (int64_t)(seed % 700);
            }
            last_ts = ts;
            bool hook = form % 5 == 4 && r == 5;
            shmq_index_crash_hook = hook ? count_hook : NULL;
            int ra = shmq_index_file_put_inline(&a, hash, 1000 + i, ts);
            int before = hook_calls;
            int rb = shmq_index_file_put(&b, hash, 1000 + i, ts);
            shmq_index_crash_hook = NULL;
            hooked += hook_calls - before;
            int rm = ref_put(m, 13, 60, hash, 1000 + i, ts);
            assert_int_equal(ra, rb);
            assert_int_equal(ra, rm);
            assert_memory_equal(&a.hdr, &b.hdr, sizeof(a.hdr));
            assert_int_equal(a.dirty, b.dirty);
            assert_memory_equal(a.base, b.base, a.size);
            assert_memory_equal(a.base, m, a.size);
            shmq_index_header_t h;
            shmq_index_header_read(&a, &h);
            assert_memory_equal(&a.hdr, &h, sizeof(h)); /* the writer's copy is the file's */
        }
        free(m);
        assert_int_equal(hook_calls, 2 * hooked); /* each hooked put ran the hook as often */
        assert_true(shmq_index_file_full(&a));
        shmq_index_file_close(&a);
        shmq_index_file_close(&b);
    }
    assert_true(hooked > 0);
    /* Read-only: refused. */
    shmq_index_file_t ro;
    char path[400];
    snprintf(path, sizeof(path), "%s/20240101000000000", f->dir);
    assert_int_equal(shmq_index_file_open(&ro, path, 13, 60, true), 0);
    assert_int_equal(shmq_index_file_put_inline(&ro, 1, 5, BASE_TS), SHMQ_E_ARG);
    shmq_index_file_close(&ro);
}

/* Store times near the ends of int64 after a beginTimestamp near INT64_MAX: the second
 * remembered may not reach past INT64_MAX (a store time far below would take its timeDiff);
 * put_inline and put against ref_put, every byte. */
static void test_put_time_diff_at_the_limits(void **state)
{
    fixture_t *f = *state;
    static const int64_t ts[] = {INT64_MAX - 4500,
                                 INT64_MAX,
                                 INT64_MIN + 5,
                                 INT64_MAX - 600,
                                 INT64_MIN,
                                 INT64_MAX - 4499,
                                 -1,
                                 0,
                                 INT64_MAX - 999,
                                 INT64_MAX - 1000,
                                 INT64_MIN + 998};
    for (int way = 0; way < 2; way++) {
        shmq_index_file_t a;
        shmq_index_header_t init = {0};
        assert_int_equal(shmq_index_file_create(&a, f->dir,
                                                way ? "20240101000000001" : "20240101000000002", 7,
                                                40, &init),
                         0);
        uint8_t *m = malloc(a.size);
        assert_non_null(m);
        memcpy(m, a.base, a.size);
        for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++) {
            int32_t hash = (int32_t)(i * 3);
            int ra = way ? shmq_index_file_put_inline(&a, hash, 100 + (int64_t)i, ts[i])
                         : shmq_index_file_put(&a, hash, 100 + (int64_t)i, ts[i]);
            assert_int_equal(ra, ref_put(m, 7, 40, hash, 100 + (int64_t)i, ts[i]));
            assert_memory_equal(a.base, m, a.size);
        }
        free(m);
        shmq_index_file_close(&a);
    }
}

static void test_file_holds_index_num_minus_one_entries(void **state)
{
    fixture_t *f = *state;
    shmq_index_file_t xf;
    make_file(f, &xf, 4, 5);
    for (int i = 0; i < 4; i++) {
        assert_false(shmq_index_file_full(&xf));
        assert_int_equal(shmq_index_file_put(&xf, i, 100 + i, BASE_TS), 0);
    }
    assert_true(shmq_index_file_full(&xf));
    assert_int_equal(shmq_index_file_put(&xf, 1, 200, BASE_TS), SHMQ_E_RANGE);
    shmq_index_file_close(&xf);
}

typedef struct seen {
    int64_t phys[32];
    int n;
} seen_t;

static int collect(void *arg, int64_t phys, int32_t entry)
{
    (void)entry;
    seen_t *s = arg;
    s->phys[s->n++] = phys;
    return 0;
}

static void test_lookup_walks_bucket_newest_first_matching_hash_only(void **state)
{
    fixture_t *f = *state;
    shmq_index_file_t xf;
    make_file(f, &xf, 4, 10);
    /* hashes 1, 5 and 9 share slot 1 */
    assert_int_equal(shmq_index_file_put(&xf, 1, 10, BASE_TS), 0);
    assert_int_equal(shmq_index_file_put(&xf, 5, 20, BASE_TS), 0);
    assert_int_equal(shmq_index_file_put(&xf, 1, 30, BASE_TS), 0);
    assert_int_equal(shmq_index_file_put(&xf, 9, 40, BASE_TS), 0);
    assert_int_equal(shmq_index_file_put(&xf, 1, 50, BASE_TS), 0);
    seen_t s = {0};
    assert_int_equal(shmq_index_file_lookup(&xf, 1, 0, INT64_MAX, 0, collect, &s), 0);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.phys[0], 50);
    assert_int_equal(s.phys[1], 30);
    assert_int_equal(s.phys[2], 10);
    memset(&s, 0, sizeof(s));
    shmq_index_file_lookup(&xf, 5, 0, INT64_MAX, 0, collect, &s);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.phys[0], 20);
    /* Bounded by an indexCount the slot is past, a walk trusts nothing of the bucket. */
    memset(&s, 0, sizeof(s));
    shmq_index_file_lookup(&xf, 1, 0, INT64_MAX, 4, collect, &s);
    assert_int_equal(s.n, 0);
    memset(&s, 0, sizeof(s));
    shmq_index_file_lookup(&xf, 1, 0, INT64_MAX, 6, collect, &s);
    assert_int_equal(s.n, 3);
    shmq_index_file_close(&xf);
}

static void test_lookup_skips_entries_outside_the_time_range_by_whole_seconds(void **state)
{
    fixture_t *f = *state;
    shmq_index_file_t xf;
    make_file(f, &xf, 4, 10);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(shmq_index_file_put(&xf, 2, 100 * (i + 1), BASE_TS + 1000 * i + 500), 0);
    }
    seen_t s = {0};
    /* Entry times are whole seconds after the first (+500): the entries stored at +2500
     * ([+2500, +3499]) and +3500 ([+3500, +4499]) may lie in [+2700, +3600], no other. */
    shmq_index_file_lookup(&xf, 2, BASE_TS + 2700, BASE_TS + 3600, 0, collect, &s);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.phys[0], 400);
    assert_int_equal(s.phys[1], 300);
    shmq_index_file_close(&xf);
}

static void test_lookup_ends_on_garbage_slots_and_chains(void **state)
{
    fixture_t *f = *state;
    shmq_index_file_t xf;
    make_file(f, &xf, 4, 10);
    /* Every slot and entry byte random: a walk must still end inside the file. */
    srand(7);
    for (size_t i = 40; i < xf.size; i++) {
        xf.base[i] = (uint8_t)rand();
    }
    /* An entry whose prev points at itself and one pointing forward. */
    uint8_t *e3 = xf.base + 40 + 16 + 60;
    e3[16] = 0, e3[17] = 0, e3[18] = 0, e3[19] = 3;
    for (int32_t h = 0; h < 64; h++) {
        seen_t s = {0};
        assert_int_equal(shmq_index_file_lookup(&xf, h, 0, INT64_MAX, 0, collect, &s), 0);
        assert_true(s.n <= 9);
    }
    shmq_index_file_close(&xf);
}

static void test_pop_restores_the_bucket_and_the_count(void **state)
{
    fixture_t *f = *state;
    shmq_index_file_t xf;
    make_file(f, &xf, 4, 10);
    shmq_index_file_put(&xf, 1, 10, BASE_TS);
    shmq_index_file_put(&xf, 2, 20, BASE_TS);
    shmq_index_file_put(&xf, 5, 30, BASE_TS);
    shmq_index_entry_t e;
    assert_int_equal(shmq_index_file_pop(&xf, &e), 0);
    assert_int_equal(e.phys_offset, 30);
    assert_int_equal(xf.hdr.index_count, 3);
    assert_int_equal(shmq_index_slot_read(&xf, 1), 1);
    assert_int_equal(be32(xf.base + 36), 3);
    assert_int_equal(shmq_index_file_pop(&xf, &e), 0);
    assert_int_equal(shmq_index_slot_read(&xf, 2), 0);
    assert_int_equal(be32(xf.base + 32), 1); /* hashSlotCount */
    shmq_index_file_close(&xf);
}

static void test_repair_undoes_an_entry_written_but_not_counted(void **state)
{
    fixture_t *f = *state;
    shmq_index_file_t xf;
    make_file(f, &xf, 4, 10);
    shmq_index_file_put(&xf, 1, 10, BASE_TS);
    shmq_index_file_put(&xf, 5, 20, BASE_TS);
    /* A kill after the slot of entry 2 was set, before indexCount and hashSlotCount. */
    xf.base[39] = 2;
    xf.base[35] = 7;
    shmq_index_file_t again;
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s", xf.path);
    shmq_index_file_close(&xf);
    assert_int_equal(shmq_index_file_open(&again, path, 4, 10, false), 0);
    shmq_index_repair_t r;
    assert_int_equal(shmq_index_file_repair(&again, &r), 0);
    assert_int_equal(r.torn_slots, 1);
    assert_true(r.end_fixed);
    assert_int_equal(shmq_index_slot_read(&again, 1), 1);
    assert_int_equal(be32(again.base + 32), 1);
    assert_int_equal(again.hdr.index_count, 2);
    assert_int_equal(again.hdr.end_phys, 10);
    /* The next put reuses entry 2 with the right chain. */
    assert_int_equal(shmq_index_file_put(&again, 5, 30, BASE_TS), 0);
    seen_t s = {0};
    shmq_index_file_lookup(&again, 5, 0, INT64_MAX, 0, collect, &s);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.phys[0], 30);
    shmq_index_file_close(&again);
}

static void test_repair_refuses_a_slot_past_the_count(void **state)
{
    fixture_t *f = *state;
    shmq_index_file_t xf;
    make_file(f, &xf, 4, 10);
    shmq_index_file_put(&xf, 1, 10, BASE_TS);
    xf.base[40 + 8 + 3] = 6; /* slot 2 -> entry 6, never written */
    assert_int_equal(shmq_index_file_repair(&xf, NULL), SHMQ_E_CORRUPT);
    shmq_index_file_close(&xf);
}

static void test_names_are_local_time_and_parse_back(void **state)
{
    (void)state;
    char name[SHMQ_INDEX_NAME_LEN + 1];
    shmq_index_name_format(BASE_TS + 123, name);
    assert_int_equal(strlen(name), 17);
    assert_true(shmq_index_name_valid(name));
    assert_int_equal(shmq_index_name_parse(name), BASE_TS + 123);
    assert_false(shmq_index_name_valid("2024010100000000"));
    assert_false(shmq_index_name_valid("2024010100000000x"));
}

/* ---- a store with keyed messages -------------------------------------------------------- */

/* Message i of topic T: KEYS "k<i> shared <extra>", UNIQ_KEY "U<i>", stored at BASE + i*ms_step. */
static void write_store(fixture_t *f, int n, int ms_step, int64_t *phys)
{
    shmq_store_t st;
    assert_int_equal(shmq_store_open(&st, &f->cfg, 0, NULL), 0);
    for (int i = 0; i < n; i++) {
        char props[256], keys[64], uniq[32], body[32];
        size_t plen = 0;
        snprintf(keys, sizeof(keys), "k%d shared", i);
        snprintf(uniq, sizeof(uniq), "U%d", i);
        assert_int_equal(
            shmq_props_append(props, sizeof(props), &plen, SHMQ_PROP_KEYS, keys, strlen(keys)), 0);
        assert_int_equal(
            shmq_props_append(props, sizeof(props), &plen, SHMQ_PROP_UNIQ_KEY, uniq, strlen(uniq)),
            0);
        int blen = snprintf(body, sizeof(body), "body %d", i);
        shmq_msg_in_t m;
        memset(&m, 0, sizeof(m));
        m.topic = "T";
        m.topic_len = 1;
        m.born_ts = BASE_TS;
        shmq_local_host(&m.born_host, 1);
        m.body = body;
        m.body_len = (size_t)blen;
        m.props = props;
        m.props_len = plen;
        shmq_append_result_t res;
        assert_int_equal(shmq_commitlog_append(&st.cl, &m, i, BASE_TS + (int64_t)i * ms_step, &res),
                         0);
        if (phys) {
            phys[i] = res.phys_offset;
        }
    }
    assert_int_equal(shmq_store_close(&st), 0);
}

typedef struct index_env {
    shmq_store_t st; /* read-only: its CommitLog */
    shmq_index_service_t svc;
    int64_t end;
} index_env_t;

static void env_open(fixture_t *f, index_env_t *env)
{
    assert_int_equal(shmq_store_open(&env->st, &f->cfg, SHMQ_STORE_READONLY, NULL), 0);
    int64_t pos = shmq_commitlog_min_offset(&env->st.cl);
    shmq_record_t r;
    while (shmq_commitlog_next(&env->st.cl, &pos, INT64_MAX, 0, &r) > 0) {
    }
    env->end = pos;
    shmq_commitlog_set_positions(&env->st.cl, env->end, env->end);
    assert_int_equal(
        shmq_index_open(&env->svc, f->idx, f->cfg.max_hash_slot_num, f->cfg.max_index_num, false),
        0);
}

static void env_close(index_env_t *env)
{
    shmq_index_close(&env->svc);
    shmq_store_close(&env->st);
}

/* Entries for key of topic T that point at phys, over every file of the set. */
static int count_entries(const shmq_index_service_t *svc, const char *key, int64_t phys)
{
    int32_t h = shmq_index_topic_key_hash("T", 1, key, strlen(key));
    int n = 0;
    for (size_t i = 0; i < svc->count; i++) {
        seen_t s = {0};
        shmq_index_file_lookup(svc->files[i], h, 0, INT64_MAX, 0, collect, &s);
        for (int j = 0; j < s.n; j++) {
            n += s.phys[j] == phys;
        }
    }
    return n;
}

/* Every message 0..n-1 has exactly one entry for each of its three keys. */
static void assert_each_key_once(const shmq_index_service_t *svc, int n, const int64_t *phys)
{
    for (int i = 0; i < n; i++) {
        char k[16], u[16];
        snprintf(k, sizeof(k), "k%d", i);
        snprintf(u, sizeof(u), "U%d", i);
        assert_int_equal(count_entries(svc, k, phys[i]), 1);
        assert_int_equal(count_entries(svc, u, phys[i]), 1);
        assert_int_equal(count_entries(svc, "shared", phys[i]), 1);
    }
}

static void build_all(index_env_t *env, int64_t from)
{
    int64_t pos = from;
    assert_true(shmq_index_build(&env->svc, &env->st.cl, &pos, env->end) >= 0);
    assert_int_equal(pos, env->end);
}

static void test_rollover_creates_files_in_name_order_with_inherited_begin(void **state)
{
    fixture_t *f = *state;
    int64_t phys[12];
    write_store(f, 12, 10, phys);
    index_env_t env;
    env_open(f, &env);
    build_all(&env, 0);
    /* 36 entries, 9 per file: 4 files, names strictly increasing. */
    assert_int_equal(env.svc.count, 4);
    for (size_t i = 1; i < env.svc.count; i++) {
        assert_true(strcmp(env.svc.files[i - 1]->name, env.svc.files[i]->name) < 0);
    }
    assert_each_key_once(&env.svc, 12, phys);
    shmq_index_header_t h;
    shmq_index_header_read(env.svc.files[1], &h);
    assert_int_equal(h.begin_phys, phys[3]); /* message 3's keys start file 2 */
    env_close(&env);
}

static void test_resume_after_a_complete_message_goes_on_after_it(void **state)
{
    fixture_t *f = *state;
    int64_t phys[6];
    write_store(f, 6, 10, phys);
    index_env_t env;
    env_open(f, &env);
    int64_t pos = 0;
    shmq_index_build(&env.svc, &env.st.cl, &pos, phys[4]); /* messages 0..3 */
    shmq_index_close(&env.svc);
    shmq_index_open(&env.svc, f->idx, 7, 10, false);
    shmq_index_resume_report_t rep;
    assert_int_equal(shmq_index_resume(&env.svc, &env.st.cl, env.end, 0, &rep), 0);
    assert_true(rep.last_complete);
    assert_int_equal(rep.pos, phys[4]);
    assert_int_equal(rep.entries_removed, 0);
    build_all(&env, rep.pos);
    assert_each_key_once(&env.svc, 6, phys);
    env_close(&env);
}

static void test_resume_reindexes_a_partly_indexed_message_once(void **state)
{
    fixture_t *f = *state;
    int64_t phys[6];
    write_store(f, 6, 10, phys);
    index_env_t env;
    env_open(f, &env);
    build_all(&env, 0);
    /* A kill after the first two of message 5's three entries. */
    shmq_index_file_pop(shmq_index_last(&env.svc), NULL);
    shmq_index_close(&env.svc);
    shmq_index_open(&env.svc, f->idx, 7, 10, false);
    shmq_index_resume_report_t rep;
    assert_int_equal(shmq_index_resume(&env.svc, &env.st.cl, env.end, 0, &rep), 0);
    assert_false(rep.last_complete);
    assert_int_equal(rep.entries_removed, 2);
    assert_int_equal(rep.pos, phys[5]);
    build_all(&env, rep.pos);
    assert_each_key_once(&env.svc, 6, phys);
    env_close(&env);
}

static void test_resume_handles_a_message_split_over_two_files(void **state)
{
    fixture_t *f = *state;
    int64_t phys[4];
    write_store(f, 4, 10, phys);
    index_env_t env;
    env_open(f, &env);
    /* 9 entries fill file 1; message 3's first entry opens file 2: then a kill. */
    int64_t pos = 0;
    shmq_index_build(&env.svc, &env.st.cl, &pos, env.end);
    assert_int_equal(env.svc.count, 2);
    shmq_index_file_pop(env.svc.files[1], NULL);
    shmq_index_file_pop(env.svc.files[1], NULL);
    /* ... and, worse, one of the message's entries in the full file is left over too. */
    shmq_index_close(&env.svc);
    shmq_index_open(&env.svc, f->idx, 7, 10, false);
    shmq_index_resume_report_t rep;
    assert_int_equal(shmq_index_resume(&env.svc, &env.st.cl, env.end, 0, &rep), 0);
    assert_int_equal(rep.pos, phys[3]);
    assert_int_equal(rep.entries_removed, 1);
    build_all(&env, rep.pos);
    assert_each_key_once(&env.svc, 4, phys);
    env_close(&env);
}

static void test_resume_removes_entries_past_the_log_end(void **state)
{
    fixture_t *f = *state;
    int64_t phys[5];
    write_store(f, 5, 10, phys);
    index_env_t env;
    env_open(f, &env);
    build_all(&env, 0);
    /* Recovery cut the log before message 3. */
    shmq_commitlog_set_positions(&env.st.cl, phys[3], phys[3]);
    shmq_index_resume_report_t rep;
    assert_int_equal(shmq_index_resume(&env.svc, &env.st.cl, phys[3], 0, &rep), 0);
    assert_int_equal(rep.entries_removed, 6);
    assert_int_equal(rep.pos, phys[3]);
    assert_int_equal(count_entries(&env.svc, "U3", phys[3]), 0);
    assert_int_equal(count_entries(&env.svc, "U2", phys[2]), 1);
    env_close(&env);
}

static void test_resume_rebuilds_a_file_that_cannot_be_repaired(void **state)
{
    fixture_t *f = *state;
    int64_t phys[5];
    write_store(f, 5, 10, phys);
    index_env_t env;
    env_open(f, &env);
    build_all(&env, 0);
    assert_int_equal(env.svc.count, 2);
    shmq_index_file_t *last = shmq_index_last(&env.svc);
    last->base[40 + 3] = 9; /* slot 0 -> entry 9, past indexCount */
    shmq_index_resume_report_t rep;
    assert_int_equal(shmq_index_resume(&env.svc, &env.st.cl, env.end, 0, &rep), 0);
    assert_int_equal(rep.files_rebuilt, 1);
    assert_int_equal(env.svc.count, 1);
    assert_int_equal(rep.pos, phys[3]); /* messages 3 and 4 had their entries there */
    build_all(&env, rep.pos);
    assert_each_key_once(&env.svc, 5, phys);
    env_close(&env);
}

static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        n += shmq_index_name_valid(de->d_name);
    }
    if (d) {
        closedir(d);
    }
    return n;
}

static void test_abnormal_start_drops_files_newer_than_the_checkpoint(void **state)
{
    fixture_t *f = *state;
    int64_t phys[12];
    write_store(f, 12, 1000, phys); /* one message a second */
    index_env_t env;
    env_open(f, &env);
    build_all(&env, 0);
    assert_int_equal(env.svc.count, 4);
    shmq_index_header_t h1;
    shmq_index_header_read(env.svc.files[1], &h1);
    env_close(&env);
    shmq_checkpoint_t cp;
    assert_int_equal(shmq_checkpoint_read(f->cfg.store_path_root_dir, &cp), 0);
    cp.index_msg_ts = h1.end_ts; /* files 1 and 2 are covered */
    assert_int_equal(shmq_checkpoint_write(f->cfg.store_path_root_dir, &cp), 0);
    shmq_index_abnormal_report_t rep;
    assert_int_equal(shmq_index_recover_abnormal(&f->cfg, &rep), 0);
    assert_int_equal(rep.dropped, 2);
    assert_int_equal(rep.kept, 2);
    assert_int_equal(count_files(f->idx), 2);
    assert_int_equal(shmq_checkpoint_read(f->cfg.store_path_root_dir, &cp), 0);
    assert_int_equal(cp.index_msg_ts, h1.end_ts - 1); /* file 2 will be written again */
    /* The indexer resumes and rebuilds: every key once. */
    env_open(f, &env);
    shmq_index_resume_report_t rr;
    assert_int_equal(shmq_index_resume(&env.svc, &env.st.cl, env.end, 0, &rr), 0);
    build_all(&env, rr.pos);
    assert_each_key_once(&env.svc, 12, phys);
    env_close(&env);
}

typedef struct keys_seen {
    char k[8][8];
    bool uniq[8];
    int n;
} keys_seen_t;

static int collect_key(void *arg, bool uniq, const char *key, size_t len)
{
    keys_seen_t *ks = arg;
    assert_true(ks->n < 8 && len < 8);
    memcpy(ks->k[ks->n], key, len);
    ks->uniq[ks->n++] = uniq;
    return 0;
}

static void test_keys_are_uniq_key_then_keys_tokens(void **state)
{
    (void)state;
    char props[128];
    size_t plen = 0;
    shmq_props_append(props, sizeof(props), &plen, SHMQ_PROP_KEYS, "  a bb  a ", 10);
    shmq_props_append(props, sizeof(props), &plen, SHMQ_PROP_UNIQ_KEY, "U1", 2);
    keys_seen_t ks = {0};
    assert_int_equal(shmq_index_foreach_key(props, plen, collect_key, &ks), 0);
    assert_int_equal(ks.n, 4);
    assert_string_equal(ks.k[0], "U1");
    assert_true(ks.uniq[0]);
    assert_string_equal(ks.k[1], "a");
    assert_false(ks.uniq[1]);
    assert_string_equal(ks.k[2], "bb");
    assert_string_equal(ks.k[3], "a"); /* RocketMQ indexes a repeated token twice */
    /* Java hashCode: "Aa" and "BB" collide, so do "T#Aa" and "T#BB". */
    assert_int_equal(shmq_index_topic_key_hash("T", 1, "Aa", 2),
                     shmq_index_topic_key_hash("T", 1, "BB", 2));
    assert_int_equal(shmq_index_topic_key_hash("TopicTest", 9, "KEY1", 4),
                     shmq_index_key_hash("TopicTest#KEY1", 14));
}

/* The indexer's inline put against shmq_index_put_head(): the same answers, the same files,
 * over records of every shape the inline one hands on (KEYS, no UNIQ_KEY, a full file, a
 * rolled back transaction, a position already indexed) and a read-only service. */
static void test_inline_put_equals_put_head(void **state)
{
    fixture_t *f = *state;
    char da[320], db[320];
    snprintf(da, sizeof(da), "%s/a", f->dir);
    snprintf(db, sizeof(db), "%s/b", f->dir);
    shmq_index_service_t a, b;
    assert_int_equal(shmq_index_open(&a, da, 7, 10, false), 0);
    assert_int_equal(shmq_index_open(&b, db, 7, 10, false), 0);
    uint64_t seed = 7;
    int64_t phys = 1000;
    for (int i = 0; i < 400; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        unsigned shape = (unsigned)(seed >> 33);
        char props[256], v[64];
        size_t plen = 0;
        if (shape % 7 != 0) {
            int n = snprintf(v, sizeof(v), "C0A80001%08X%d", (unsigned)i, i % 3);
            assert_int_equal(
                shmq_props_append(props, sizeof(props), &plen, SHMQ_PROP_UNIQ_KEY, v, (size_t)n),
                0);
        }
        if (shape % 23 == 0 && plen > 12) {
            props[plen - 2] = (char)0xC3; /* a UNIQ_KEY value that is not ASCII */
        }
        if (shape % 5 == 0) {
            int n = snprintf(v, sizeof(v), "k%d  shared", i);
            assert_int_equal(
                shmq_props_append(props, sizeof(props), &plen, SHMQ_PROP_KEYS, v, (size_t)n), 0);
        }
        if (shape % 3 == 0) {
            /* shmq's __CRC32# property last, as the store writes it */
            assert_int_equal(
                shmq_props_append(props, sizeof(props), &plen, SHMQ_PROP_CRC32, "0123456789", 10),
                0);
        }
        shmq_record_head_t h;
        memset(&h, 0, sizeof(h));
        h.topic = (shape % 11 == 0) ? "AnotherTopicName" : "BenchTopic";
        h.topic_len = (uint32_t)strlen(h.topic);
        h.props = props;
        h.props_len = (uint32_t)plen;
        h.sysflag = (shape % 13 == 0)   ? SHMQ_SYSFLAG_TX_ROLLBACK
                    : (shape % 17 == 0) ? SHMQ_SYSFLAG_TX_PREPARED
                                        : 0;
        phys += (shape % 19 == 0) ? -300 : 291; /* now and then a position already indexed */
        h.phys_offset = phys;
        h.store_ts = BASE_TS + i * 7;
        int ra = shmq_index_put_head_inline(&a, &h);
        int rb = shmq_index_put_head(&b, &h);
        assert_int_equal(ra, rb);
        assert_int_equal(a.last_phys, b.last_phys);
    }
    assert_int_equal(a.count, b.count);
    assert_true(a.count > 10);
    for (size_t i = 0; i < a.count; i++) {
        assert_int_equal(a.files[i]->size, b.files[i]->size);
        assert_memory_equal(a.files[i]->base, b.files[i]->base, a.files[i]->size);
    }
    shmq_index_close(&a);
    shmq_index_close(&b);
    /* Read-only: the same refusal. */
    assert_int_equal(shmq_index_open(&a, da, 7, 10, true), 0);
    shmq_record_head_t h;
    memset(&h, 0, sizeof(h));
    h.topic = "T";
    h.topic_len = 1;
    h.phys_offset = 1 << 30;
    assert_int_equal(shmq_index_put_head_inline(&a, &h), SHMQ_E_ARG);
    assert_int_equal(shmq_index_put_head(&a, &h), SHMQ_E_ARG);
    shmq_index_close(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_file_layout_matches_rocketmq, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_time_diff_at_the_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_holds_index_num_minus_one_entries, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_lookup_walks_bucket_newest_first_matching_hash_only,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_lookup_skips_entries_outside_the_time_range_by_whole_seconds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lookup_ends_on_garbage_slots_and_chains, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pop_restores_the_bucket_and_the_count, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_repair_undoes_an_entry_written_but_not_counted, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_repair_refuses_a_slot_past_the_count, setup, teardown),
        cmocka_unit_test(test_names_are_local_time_and_parse_back),
        cmocka_unit_test_setup_teardown(
            test_rollover_creates_files_in_name_order_with_inherited_begin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume_after_a_complete_message_goes_on_after_it,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume_reindexes_a_partly_indexed_message_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_resume_handles_a_message_split_over_two_files, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_resume_removes_entries_past_the_log_end, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_resume_rebuilds_a_file_that_cannot_be_repaired, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_abnormal_start_drops_files_newer_than_the_checkpoint,
                                        setup, teardown),
        cmocka_unit_test(test_keys_are_uniq_key_then_keys_tokens),
        cmocka_unit_test_setup_teardown(test_inline_put_equals_put_head, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inline_file_put_equals_put, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
