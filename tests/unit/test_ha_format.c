/*
 * What replication reads and writes byte by byte: the epoch file
 * (libshm/format/epoch.h: RocketMQ 5's epochFileCheckpoint, its strict
 * parsing, the .bak fallback, and the offset two logs agree on) and the
 * classic HA frames (libshm/format/ha_frame.h: reports, transfer headers,
 * where a slave starts).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format/epoch.h"
#include "format/ha_frame.h"
#include "shmq/errors.h"

/* RocketMQ's own example (CheckpointFile's documentation): its CRC line is what Java wrote. */
static const char ROCKETMQ_EXAMPLE[] = "2\n773307083\n7-7000\n8-8000\n";

static shmq_epoch_table_t *table(void)
{
    shmq_epoch_table_t *t = calloc(1, sizeof(*t));
    assert_non_null(t);
    return t;
}

static void test_epoch_reads_rocketmq_example(void **state)
{
    (void)state;
    shmq_epoch_table_t *t = table();
    assert_int_equal(shmq_epoch_parse(ROCKETMQ_EXAMPLE, strlen(ROCKETMQ_EXAMPLE), t), 0);
    assert_int_equal(t->n, 2);
    assert_int_equal(t->e[0].epoch, 7);
    assert_int_equal(t->e[0].start, 7000);
    assert_int_equal(t->e[1].epoch, 8);
    assert_int_equal(t->e[1].start, 8000);
    /* And writes it back byte for byte. */
    char buf[256];
    int n = shmq_epoch_format(t, buf, sizeof(buf));
    assert_int_equal(n, (int)strlen(ROCKETMQ_EXAMPLE));
    assert_memory_equal(buf, ROCKETMQ_EXAMPLE, (size_t)n);
    /* Java's reader: \r\n line ends and a last line without \n read the same. */
    const char *crlf = "2\r\n773307083\r\n7-7000\r\n8-8000";
    assert_int_equal(shmq_epoch_parse(crlf, strlen(crlf), t), 0);
    assert_int_equal(t->e[1].start, 8000);
    /* A CRC of 0 is "not checked", as in RocketMQ. */
    const char *nocrc = "1\n0\n3-100\n";
    assert_int_equal(shmq_epoch_parse(nocrc, strlen(nocrc), t), 0);
    assert_int_equal(t->e[0].epoch, 3);
    free(t);
}

static void test_epoch_refuses_bad_files_naming_the_line(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *why; /* a part of the detail */
    } bad[] = {
        {"", "line 1"},
        {"x\n0\n", "line 1"},
        {"-1\n0\n", "line 1"},
        {"99999\n0\n", "line 1"},
        {"1\n", "line 2"},
        {"1\n-5\n1-0\n", "line 2"},
        {"1\n2147483648\n1-0\n", "line 2"},
        {"2\n773307083\n7-7000\n", "announces 2"},
        {"1\n773307083\n7-7000\n8-8000\n", "line 4: more entries"},
        {"2\n773307084\n7-7000\n8-8000\n", "CRC"},
        {"2\n0\n8-7000\n7-8000\n", "line 4: epoch 7"},
        {"2\n0\n7-8000\n8-7000\n", "line 4: epoch 8 from 7000"},
        {"2\n0\n7-7000\n7-8000\n", "does not follow"},
        {"1\n0\n0-10\n", "line 3"},
        {"1\n0\n+1-10\n", "line 3"},
        {"1\n0\n1--10\n", "line 3"},
        {"1\n0\n1-\n", "line 3"},
        {"1\n0\n1-10-2\n", "line 3"},
        {"1\n0\n1-99999999999999999999\n", "line 3"},
        {"1\n0\n2147483648-1\n", "line 3"},
        {"1\n0\n 1-10\n", "line 3"},
        {"1\n0\n\n", "line 3"},
    };
    shmq_epoch_table_t *t = table();
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = shmq_epoch_parse(bad[i].text, strlen(bad[i].text), t);
        if (rc != SHMQ_E_CORRUPT || strstr(shmq_error_detail(), bad[i].why) == NULL) {
            fail_msg("case %zu (%s): rc %d, detail \"%s\", wanted \"%s\"", i, bad[i].text, rc,
                     shmq_error_detail(), bad[i].why);
        }
        assert_int_equal(t->n, 0);
    }
    free(t);
}

static void test_epoch_append_keeps_the_order(void **state)
{
    (void)state;
    shmq_epoch_table_t *t = table();
    assert_int_equal(shmq_epoch_last(t), 0);
    assert_int_equal(shmq_epoch_append(t, 1, 0), 0);
    assert_int_equal(shmq_epoch_append(t, 2, 5000), 0);
    assert_int_equal(shmq_epoch_append(t, 2, 6000), SHMQ_E_RANGE); /* not a new epoch */
    assert_int_equal(shmq_epoch_append(t, 3, 4000), SHMQ_E_RANGE); /* offset falls */
    assert_int_equal(shmq_epoch_append(t, 0, 9000), SHMQ_E_RANGE);
    assert_int_equal(shmq_epoch_append(t, 4, 5000), 0); /* a master that wrote nothing */
    assert_int_equal(t->n, 3);
    assert_int_equal(shmq_epoch_last(t), 4);
    assert_int_equal(shmq_epoch_end(t, 0, 9999), 5000);
    assert_int_equal(shmq_epoch_end(t, 2, 9999), 9999);
    t->n = 0;
    for (int32_t e = 1; e <= SHMQ_EPOCH_MAX; e++) {
        assert_int_equal(shmq_epoch_append(t, e, e * 10LL), 0);
    }
    assert_int_equal(shmq_epoch_append(t, SHMQ_EPOCH_MAX + 1, 1LL << 40), SHMQ_E_TOO_BIG);
    /* A full table at its widest still fits the file. */
    for (size_t i = 0; i < t->n; i++) {
        t->e[i].epoch = INT32_MAX - (int32_t)(t->n - i);
        t->e[i].start = INT64_MAX - (int64_t)(t->n - i);
    }
    static char buf[SHMQ_EPOCH_FILE_MAX];
    int n = shmq_epoch_format(t, buf, sizeof(buf));
    assert_true(n > 0);
    shmq_epoch_table_t *u = table();
    assert_int_equal(shmq_epoch_parse(buf, (size_t)n, u), 0);
    assert_int_equal(u->n, SHMQ_EPOCH_MAX);
    assert_memory_equal(u->e, t->e, sizeof(t->e));
    free(u);
    free(t);
}

/* Epochs as in the failover tests: A masters epoch 1, B takes over in 2 at 3000, ... */
static void set(shmq_epoch_table_t *t, size_t n, const shmq_epoch_entry_t *e)
{
    t->n = n;
    memcpy(t->e, e, n * sizeof(*e));
}

static void test_consistent_point(void **state)
{
    (void)state;
    shmq_epoch_table_t *a = table(), *b = table();
    /* Old master A wrote epoch 1 up to 5000; B was promoted at 3000 (what it had) and wrote
     * on to 4200: they agree up to 3000; A's [3000, 5000) is its divergent tail. */
    set(a, 1, (shmq_epoch_entry_t[]){{1, 0}});
    set(b, 2, (shmq_epoch_entry_t[]){{1, 0}, {2, 3000}});
    assert_int_equal(shmq_epoch_consistent_point(a, 5000, b, 4200), 3000);
    assert_int_equal(shmq_epoch_consistent_point(b, 4200, a, 5000), 3000);
    /* A slave behind its master: the slave's end. */
    assert_int_equal(shmq_epoch_consistent_point(a, 1000, a, 5000), 1000);
    /* The newest shared epoch decides, not an older one. */
    set(a, 3, (shmq_epoch_entry_t[]){{1, 0}, {2, 3000}, {3, 7000}});
    set(b, 3, (shmq_epoch_entry_t[]){{1, 0}, {2, 3000}, {4, 6000}});
    assert_int_equal(shmq_epoch_consistent_point(a, 9000, b, 8000), 6000);
    /* The same epoch number from another start: not the same history. */
    set(a, 2, (shmq_epoch_entry_t[]){{1, 0}, {2, 3100}});
    set(b, 2, (shmq_epoch_entry_t[]){{1, 0}, {2, 3000}});
    assert_int_equal(shmq_epoch_consistent_point(a, 5000, b, 5000), 3000);
    /* Nothing shared. */
    set(a, 1, (shmq_epoch_entry_t[]){{5, 0}});
    set(b, 1, (shmq_epoch_entry_t[]){{6, 0}});
    assert_int_equal(shmq_epoch_consistent_point(a, 5000, b, 5000), -1);
    b->n = 0;
    assert_int_equal(shmq_epoch_consistent_point(a, 5000, b, 0), -1);
    free(a);
    free(b);
}

static void test_truncate_and_drop(void **state)
{
    (void)state;
    shmq_epoch_table_t *t = table();
    set(t, 4, (shmq_epoch_entry_t[]){{1, 0}, {2, 3000}, {3, 7000}, {4, 7000}});
    assert_int_equal(shmq_epoch_truncate(t, 7000), 2);
    assert_int_equal(t->n, 2);
    assert_int_equal(shmq_epoch_truncate(t, 3001), 0);
    assert_int_equal(shmq_epoch_drop_before(t, 2999), 0);
    assert_int_equal(shmq_epoch_drop_before(t, 3000), 1);
    assert_int_equal(t->n, 1);
    assert_int_equal(t->e[0].epoch, 2);
    assert_int_equal(shmq_epoch_drop_before(t, 1LL << 40), 0); /* the newest stays */
    free(t);
}

static char dir[PATH_MAX];

static int dir_setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/shmq-test-epoch-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int dir_teardown(void **state)
{
    (void)state;
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_text(const char *name, const char *text)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_load_save_and_bak(void **state)
{
    (void)state;
    shmq_epoch_table_t *t = table();
    /* Neither file: an empty table. */
    assert_int_equal(shmq_epoch_load(dir, t), 0);
    assert_int_equal(t->n, 0);
    assert_int_equal(shmq_epoch_save(dir, t), 0); /* nothing written */
    char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/%s", dir, SHMQ_EPOCH_FILE);
    assert_int_not_equal(access(path, F_OK), 0);
    assert_int_equal(shmq_epoch_append(t, 1, 0), 0);
    assert_int_equal(shmq_epoch_save(dir, t), 0);
    assert_int_equal(shmq_epoch_append(t, 2, 4096), 0);
    assert_int_equal(shmq_epoch_save(dir, t), 0); /* the first version becomes the .bak */
    shmq_epoch_table_t *u = table();
    assert_int_equal(shmq_epoch_load(dir, u), 0);
    assert_int_equal(u->n, 2);
    /* A damaged main file: the .bak's entries. */
    write_text(SHMQ_EPOCH_FILE, "2\n1\n1-0\n2-4096\n");
    assert_int_equal(shmq_epoch_load(dir, u), 0);
    assert_int_equal(u->n, 1);
    assert_int_equal(u->e[0].epoch, 1);
    /* Both damaged: refused, naming both. */
    write_text(SHMQ_EPOCH_FILE ".bak", "garbage");
    assert_int_equal(shmq_epoch_load(dir, u), SHMQ_E_CORRUPT);
    assert_non_null(strstr(shmq_error_detail(), "CRC"));
    assert_non_null(strstr(shmq_error_detail(), ".bak: line 1"));
    assert_int_equal(u->n, 0);
    /* The main file missing, the .bak good. */
    unlink(path);
    write_text(SHMQ_EPOCH_FILE ".bak", ROCKETMQ_EXAMPLE);
    assert_int_equal(shmq_epoch_load(dir, u), 0);
    assert_int_equal(u->n, 2);
    assert_int_equal(u->e[1].start, 8000);
    free(u);
    free(t);
}

static void test_ha_frames(void **state)
{
    (void)state;
    uint8_t buf[3 * SHMQ_HA_REPORT_SIZE + 5];
    shmq_ha_report_encode(0x0102030405060708LL, buf);
    /* Big-endian, as Java's ByteBuffer writes a long. */
    assert_int_equal(buf[0], 1);
    assert_int_equal(buf[7], 8);
    shmq_ha_report_encode(4096, buf + 8);
    shmq_ha_report_encode(8192, buf + 16);
    int64_t latest = -1;
    assert_int_equal(shmq_ha_report_scan(buf, 7, &latest), 0);
    assert_int_equal(latest, -1);
    assert_int_equal(shmq_ha_report_scan(buf, sizeof(buf), &latest), 3);
    assert_int_equal(latest, 8192);
    shmq_ha_report_encode(-1, buf + 8);
    assert_int_equal(shmq_ha_report_scan(buf, sizeof(buf), &latest), SHMQ_E_CORRUPT);

    uint8_t h[SHMQ_HA_HEADER_SIZE];
    shmq_ha_header_t in = {.offset = 1LL << 33, .size = 32768}, out;
    shmq_ha_header_encode(&in, h);
    assert_int_equal(h[3], 2);     /* 2^33: byte 3 of the long */
    assert_int_equal(h[10], 0x80); /* 32768 */
    assert_int_equal(shmq_ha_header_decode(h, 32768, &out), 0);
    assert_int_equal(out.offset, in.offset);
    assert_int_equal(out.size, in.size);
    assert_int_equal(shmq_ha_header_decode(h, 32767, &out), SHMQ_E_CORRUPT);
    in = (shmq_ha_header_t){.offset = -4, .size = 0};
    shmq_ha_header_encode(&in, h);
    assert_int_equal(shmq_ha_header_decode(h, 32768, &out), SHMQ_E_CORRUPT);
    in = (shmq_ha_header_t){.offset = 8, .size = -1};
    shmq_ha_header_encode(&in, h);
    assert_int_equal(shmq_ha_header_decode(h, 32768, &out), SHMQ_E_CORRUPT);
    in = (shmq_ha_header_t){.offset = INT64_MAX - 10, .size = 11};
    shmq_ha_header_encode(&in, h);
    assert_int_equal(shmq_ha_header_decode(h, 32768, &out), SHMQ_E_CORRUPT);
    in = (shmq_ha_header_t){.offset = 4096, .size = 0}; /* a heartbeat */
    shmq_ha_header_encode(&in, h);
    assert_int_equal(shmq_ha_header_decode(h, 32768, &out), 0);
}

static void test_ha_start_offset(void **state)
{
    (void)state;
    int64_t start = -1;
    const int64_t seg = 1 << 20;
    /* An empty slave gets the master's last segment first. */
    assert_int_equal(shmq_ha_start_offset(0, 0, 3 * seg + 500, seg, &start), 0);
    assert_int_equal(start, 3 * seg);
    assert_int_equal(shmq_ha_start_offset(0, 0, 0, seg, &start), 0);
    assert_int_equal(start, 0);
    /* Otherwise where its log ends. */
    assert_int_equal(shmq_ha_start_offset(seg + 7, seg, 3 * seg, seg, &start), 0);
    assert_int_equal(start, seg + 7);
    assert_int_equal(shmq_ha_start_offset(3 * seg, 0, 3 * seg, seg, &start), 0);
    assert_int_equal(start, 3 * seg);
    /* Beyond this master's end, or cleaned here. */
    assert_int_equal(shmq_ha_start_offset(3 * seg + 1, 0, 3 * seg, seg, &start), SHMQ_E_RANGE);
    assert_non_null(strstr(shmq_error_detail(), "never wrote"));
    assert_int_equal(shmq_ha_start_offset(5, seg, 3 * seg, seg, &start), SHMQ_E_RANGE);
    assert_non_null(strstr(shmq_error_detail(), "cleaned"));
}

/* ---- requests on the HA port ---------------------------------------------------------- */

static void test_ha_request_frames(void **state)
{
    (void)state;
    uint8_t req[SHMQ_HA_REQ_SIZE];
    shmq_ha_request_encode(SHMQ_HA_REQ_META, req);
    const uint8_t want[SHMQ_HA_REQ_SIZE] = {0xFF, 'S', 'H', 'M', 'Q', 'R', 'Q', '1', 0, 0, 0, 1};
    assert_memory_equal(req, want, sizeof(want));
    assert_true(shmq_ha_is_request(req));
    int32_t code = 0;
    assert_int_equal(shmq_ha_request_decode(req, &code), 0);
    assert_int_equal(code, SHMQ_HA_REQ_META);
    /* As a slave's report the magic is negative: no slave can send it. */
    int64_t r;
    assert_int_equal(shmq_ha_report_scan(req, SHMQ_HA_REPORT_SIZE, &r), SHMQ_E_CORRUPT);
    /* A report of 0 or any offset is not a request. */
    uint8_t rep[SHMQ_HA_REPORT_SIZE];
    shmq_ha_report_encode(0, rep);
    assert_false(shmq_ha_is_request(rep));
    shmq_ha_report_encode(INT64_MAX, rep);
    assert_false(shmq_ha_is_request(rep));
    req[7] = '2';
    assert_int_equal(shmq_ha_request_decode(req, &code), SHMQ_E_CORRUPT);
    /* The epoch request: code 2. */
    shmq_ha_request_encode(SHMQ_HA_REQ_EPOCH, req);
    assert_int_equal(req[11], 2);
    assert_int_equal(shmq_ha_request_decode(req, &code), 0);
    assert_int_equal(code, SHMQ_HA_REQ_EPOCH);
}

/* The slave hello: a brokerId in 1..2^40, never mistaken for a report or a request. */
static void test_ha_hello(void **state)
{
    (void)state;
    uint8_t h[SHMQ_HA_HELLO_SIZE];
    int64_t id = 0;
    shmq_ha_hello_encode(3, h);
    assert_true(shmq_ha_is_hello(h));
    assert_false(shmq_ha_is_request(h));
    assert_int_equal(shmq_ha_hello_decode(h, &id), 0);
    assert_int_equal(id, 3);
    /* As a report its first 8 bytes are negative: an old master refuses it. */
    int64_t r = 0;
    assert_int_equal(shmq_ha_report_scan(h, SHMQ_HA_REPORT_SIZE, &r), SHMQ_E_CORRUPT);
    /* Ids out of range are refused and change nothing. */
    int64_t bad[] = {0, -1, SHMQ_HA_BROKER_ID_MAX + 1, INT64_MIN};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        shmq_ha_hello_encode(bad[i], h);
        id = 7;
        assert_int_equal(shmq_ha_hello_decode(h, &id), SHMQ_E_CORRUPT);
        assert_int_equal(id, 7);
    }
    /* A report is not a hello. */
    uint8_t rep[SHMQ_HA_HELLO_SIZE] = {0};
    shmq_ha_report_encode(4096, rep);
    assert_false(shmq_ha_is_hello(rep));
    assert_int_equal(shmq_ha_hello_decode(rep, &id), SHMQ_E_CORRUPT);
}

static void test_ha_answer_heads(void **state)
{
    (void)state;
    uint8_t h[SHMQ_HA_ANSWER_HEAD_SIZE];
    int32_t st;
    uint32_t len;
    shmq_ha_answer_encode(0, 1234, h);
    const uint8_t want[SHMQ_HA_ANSWER_HEAD_SIZE] = {0, 0, 0, 0, 0, 0, 0x04, 0xd2};
    assert_memory_equal(h, want, sizeof(want));
    assert_int_equal(shmq_ha_answer_decode(h, &st, &len), 0);
    assert_int_equal(st, 0);
    assert_int_equal(len, 1234);
    shmq_ha_answer_encode(SHMQ_E_ARG, 5, h);
    assert_int_equal(shmq_ha_answer_decode(h, &st, &len), 0);
    assert_int_equal(st, SHMQ_E_ARG);
    assert_int_equal(len, 5);
    /* 16 MiB is taken, one byte more is not; a positive status is no status. */
    shmq_ha_answer_encode(0, SHMQ_HA_ANSWER_MAX, h);
    assert_int_equal(shmq_ha_answer_decode(h, &st, &len), 0);
    shmq_ha_answer_encode(0, SHMQ_HA_ANSWER_MAX + 1u, h);
    assert_int_equal(shmq_ha_answer_decode(h, &st, &len), SHMQ_E_CORRUPT);
    shmq_ha_answer_encode(0, UINT32_MAX, h);
    assert_int_equal(shmq_ha_answer_decode(h, &st, &len), SHMQ_E_CORRUPT);
    shmq_ha_answer_encode(7, 0, h);
    assert_int_equal(shmq_ha_answer_decode(h, &st, &len), SHMQ_E_CORRUPT);
}

static void test_ha_named_files(void **state)
{
    (void)state;
    uint8_t body[256];
    size_t n = shmq_ha_file_encode(body, "topics.json", "{}", 2);
    assert_int_equal(n, shmq_ha_file_size(11, 2));
    n += shmq_ha_file_encode(body + n, "delayOffset.json", "", 0);
    assert_int_equal(n, 2 + 11 + 4 + 2 + 2 + 16 + 4);
    assert_int_equal(body[0], 0);
    assert_int_equal(body[1], 11);
    assert_int_equal(body[13], 0);
    assert_int_equal(body[16], 2);
    size_t pos = 0;
    shmq_ha_file_t f;
    assert_int_equal(shmq_ha_file_next(body, n, &pos, &f), 1);
    assert_string_equal(f.name, "topics.json");
    assert_int_equal(f.len, 2);
    assert_memory_equal(f.data, "{}", 2);
    assert_int_equal(shmq_ha_file_next(body, n, &pos, &f), 1);
    assert_string_equal(f.name, "delayOffset.json");
    assert_int_equal(f.len, 0);
    assert_int_equal(shmq_ha_file_next(body, n, &pos, &f), 0);
    assert_int_equal(pos, n);
    /* An empty body holds no file. */
    pos = 0;
    assert_int_equal(shmq_ha_file_next(body, 0, &pos, &f), 0);
    /* Every cut of the body short of a file's end is refused. */
    for (size_t cut = 1; cut < n; cut++) {
        pos = 0;
        int rc;
        while ((rc = shmq_ha_file_next(body, cut, &pos, &f)) == 1) {
        }
        if (cut == shmq_ha_file_size(11, 2)) {
            assert_int_equal(rc, 0);
        } else {
            assert_int_equal(rc, SHMQ_E_CORRUPT);
        }
    }
    /* A data length past the body, a name of 0 or 65 bytes, a name with '/'. */
    uint8_t bad[128];
    size_t m = shmq_ha_file_encode(bad, "a.json", "xyz", 3);
    bad[2 + 6 + 3] = 4;
    pos = 0;
    assert_int_equal(shmq_ha_file_next(bad, m, &pos, &f), SHMQ_E_CORRUPT);
    assert_non_null(strstr(shmq_error_detail(), "a.json of 4 bytes"));
    memset(bad, 0, sizeof(bad));
    pos = 0;
    assert_int_equal(shmq_ha_file_next(bad, 10, &pos, &f), SHMQ_E_CORRUPT);
    bad[1] = 65;
    pos = 0;
    assert_int_equal(shmq_ha_file_next(bad, sizeof(bad), &pos, &f), SHMQ_E_CORRUPT);
    m = shmq_ha_file_encode(bad, "../x", "", 0);
    pos = 0;
    assert_int_equal(shmq_ha_file_next(bad, m, &pos, &f), SHMQ_E_CORRUPT);
    assert_non_null(strstr(shmq_error_detail(), "0x2f"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_epoch_reads_rocketmq_example),
        cmocka_unit_test(test_epoch_refuses_bad_files_naming_the_line),
        cmocka_unit_test(test_epoch_append_keeps_the_order),
        cmocka_unit_test(test_consistent_point),
        cmocka_unit_test(test_truncate_and_drop),
        cmocka_unit_test_setup_teardown(test_load_save_and_bak, dir_setup, dir_teardown),
        cmocka_unit_test(test_ha_frames),
        cmocka_unit_test(test_ha_start_offset),
        cmocka_unit_test(test_ha_request_frames),
        cmocka_unit_test(test_ha_hello),
        cmocka_unit_test(test_ha_answer_heads),
        cmocka_unit_test(test_ha_named_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
