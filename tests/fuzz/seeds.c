/*
 * Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/)
 * with the store's own encoders and writers, so that each harness starts
 * from valid files: `make fuzz-seeds` runs it.  Edge cases and regression
 * inputs found by fuzzing are added by hand next to these files and are
 * never overwritten (seed names start with "seed-").
 * Usage: fuzz_seeds <corpus dir> <scratch dir>
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/commitlog.h"
#include "format/consume_queue.h"
#include "fuzz_util.h"
#include "format/index_file.h"
#include "format/message.h"
#include "shm/ring.h"
#include "format/store_files.h"
#include "base/bytes.h"
#include "format/remoting.h"
#include "format/timer.h"

static const char *corpus;
static const char *scratch;

static void put(const char *target, const char *name, const void *d, size_t n)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", corpus, target);
    fuzz_mkdirs(path);
    snprintf(path, sizeof(path), "%s/%s/seed-%s", corpus, target, name);
    fuzz_write_file(path, n ? d : "", n, -1);
}

/* The bytes of a file (at most cap), appended to buf at *len. */
static void slurp(const char *path, uint8_t *buf, size_t cap, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        exit(1);
    }
    *len += fread(buf + *len, 1, cap - *len, f);
    fclose(f);
}

static void seed_record(void)
{
    static const char props[] = "UNIQ_KEY\001AC11000100002A9F0000000000000001\002TAGS\001tagA\002"
                                "KEYS\001k1 k2";
    shmq_msg_in_t m = {.topic = "TopicTest",
                       .topic_len = 9,
                       .queue_id = 1,
                       .born_ts = 1767225600000LL,
                       .body = "hello",
                       .body_len = 5,
                       .props = props,
                       .props_len = sizeof(props) - 1};
    m.born_host.addr[0] = 127;
    m.born_host.addr[3] = 1;
    m.born_host.port = 4321;
    m.store_host = m.born_host;
    m.store_host.port = 10911;
    uint8_t buf[1024];
    buf[0] = SHMQ_DECODE_CHECK_ALL;
    memset(buf + 1, 0, 8); /* expected phys 0 */
    int64_t n = shmq_record_encode(&m, 3, 0, 1767225600123LL, buf + 9, sizeof(buf) - 9);
    put("record", "v1", buf, (size_t)n + 9);
    /* A V2 record (topic > 127 bytes) without properties. */
    char topic[200];
    memset(topic, 'x', sizeof(topic));
    m.topic = topic;
    m.topic_len = sizeof(topic);
    m.props = NULL;
    m.props_len = 0;
    n = shmq_record_encode(&m, 0, 0, 1767225600123LL, buf + 9, sizeof(buf) - 9);
    put("record", "v2", buf, (size_t)n + 9);
    /* A blank record. */
    shmq_record_write_blank(buf + 9, 64);
    memset(buf + 17, 0, 56);
    put("record", "blank", buf, 9 + 64);
}

/* A slave's stream: a log of 4096-byte segments with records of several sizes (and the
 * blanks closing its segments), byte 0 choosing the chunks. */
static void seed_put_raw(void)
{
    char dir[600];
    snprintf(dir, sizeof(dir), "%s/putraw-seed", scratch);
    fuzz_mkdirs(dir);
    shmq_commitlog_t cl;
    if (shmq_commitlog_open(&cl, dir, 4096, 0) != 0) {
        exit(1);
    }
    static uint8_t body[1500];
    memset(body, 'b', sizeof(body));
    for (int i = 0; i < 12; i++) {
        shmq_msg_in_t m = {.topic = "TopicTest",
                           .topic_len = 9,
                           .queue_id = i % 4,
                           .born_ts = 1767225600000LL + i,
                           .body = body,
                           .body_len = (size_t)(i * 131) % sizeof(body),
                           .props = "KEYS\001k\002",
                           .props_len = 7};
        shmq_append_result_t res;
        if (shmq_commitlog_append(&cl, &m, i, 1767225600000LL + i, &res) != 0) {
            exit(1);
        }
    }
    static uint8_t buf[1 + 4 * 4096];
    size_t len = 0;
    for (int64_t p = 0; p < cl.wrote_pos; p += 4096) {
        shmq_mapped_file_t *mf = shmq_mfq_find(&cl.q, p);
        size_t n = (size_t)(cl.wrote_pos - p < 4096 ? cl.wrote_pos - p : 4096);
        if (mf == NULL || 1 + len + n > sizeof(buf)) {
            exit(1);
        }
        memcpy(buf + 1 + len, mf->base, n);
        len += n;
    }
    shmq_commitlog_close(&cl);
    buf[0] = 7;
    put("put_raw", "stream-odd-chunks", buf, 1 + len);
    buf[0] = 8;
    put("put_raw", "stream-big-chunks", buf, 1 + len);
}

static void seed_ring(void)
{
    static const char props[] = "UNIQ_KEY\001AC11000100002A9F0000000000000001\002TAGS\001tagA";
    shmq_ring_msg_t m = {.batch_count = 1,
                         .slot = 3,
                         .req_id = 77,
                         .queue_id = 0,
                         .born_ts = 1767225600000LL,
                         .topic = "TopicTest",
                         .topic_len = 9,
                         .props = props,
                         .props_len = sizeof(props) - 1,
                         .body = (const uint8_t *)"hello",
                         .body_len = 5};
    uint8_t buf[2048] = {0, 0x40, 0, 0}; /* head 0, tail from the entries */
    int64_t n = shmq_ring_encode(buf + 4, sizeof(buf) - 4, &m);
    put("ring", "one", buf, (size_t)n + 4);
    /* A batch of two, then a PAD. */
    m.batch_count = 2;
    n = shmq_ring_encode(buf + 4, sizeof(buf) - 4, &m);
    m.batch_index = 1;
    int64_t n2 = shmq_ring_encode(buf + 4 + n, sizeof(buf) - 4 - (size_t)n, &m);
    shmq_ring_write_pad(buf + 4 + n + n2);
    put("ring", "batch-pad", buf, (size_t)(n + n2 + 8) + 4);
}

static void seed_cq(void)
{
    char root[512], path[700];
    fuzz_fresh_dir("cq-seed", root, sizeof(root));
    shmq_cq_t cq;
    if (shmq_cq_open(&cq, root, "T", 0, 200, 0) != 0) {
        exit(1);
    }
    for (int64_t i = 0; i < 13; i++) {
        shmq_cq_append(&cq, i, 1000 + i * 100, 100, i % 3);
    }
    shmq_cq_close(&cq);
    uint8_t buf[8 + 400] = {0, 0, 0, 0x10, 0, 0, 0, 0x07, 0};
    buf[4] = 0x05; /* truncate_dirty at 0x050000... beyond: a no-op; min at 0x10.. */
    size_t len = 8;
    snprintf(path, sizeof(path), "%s/consumequeue/T/0/%020d", root, 0);
    slurp(path, buf, 8 + 200, &len);
    snprintf(path, sizeof(path), "%s/consumequeue/T/0/%020d", root, 200);
    slurp(path, buf, sizeof(buf), &len);
    put("consume_queue", "two-files", buf, len);
    /* A queue that starts later (pre-filled blank units). */
    fuzz_fresh_dir("cq-seed", root, sizeof(root));
    shmq_cq_open(&cq, root, "T", 0, 200, 0);
    shmq_cq_append(&cq, 4, 5000, 120, 1);
    shmq_cq_append(&cq, 5, 5120, 120, 1);
    shmq_cq_close(&cq);
    len = 8;
    memset(buf, 0, 8);
    snprintf(path, sizeof(path), "%s/consumequeue/T/0/%020d", root, 0);
    slurp(path, buf, 8 + 200, &len);
    put("consume_queue", "prefilled", buf, len);
}

static void seed_index(void)
{
    char dir[512], path[700];
    fuzz_fresh_dir("index-seed", dir, sizeof(dir));
    shmq_index_file_t f;
    shmq_index_header_t init = {0};
    if (shmq_index_file_create(&f, dir, "20260101000000000", 8, 16, &init) != 0) {
        exit(1);
    }
    for (int32_t i = 0; i < 10; i++) {
        shmq_index_file_put(&f, i * 3, 4096 + i * 200, 1767225600000LL + i * 1500);
    }
    shmq_index_file_close(&f);
    uint8_t buf[512];
    size_t len = 0;
    snprintf(path, sizeof(path), "%s/20260101000000000", dir);
    slurp(path, buf, sizeof(buf), &len);
    put("index_file", "ten-entries", buf, len);
    /* A torn put: the next entry written and its slot pointing at it, not counted. */
    uint8_t torn[512];
    memcpy(torn, buf, len);
    size_t e11 = 40 + 8 * 4 + 11 * 20;
    memset(torn + e11, 0, 20);
    torn[e11 + 3] = 5;         /* key hash 5: slot 5 */
    torn[e11 + 11] = 1;        /* phys */
    torn[40 + 5 * 4 + 3] = 11; /* slot 5 -> entry 11 */
    put("index_file", "torn-put", torn, len);
}

static void seed_checkpoint(void)
{
    char root[512], path[700];
    fuzz_fresh_dir("cp-seed", root, sizeof(root));
    shmq_checkpoint_t cp = {.physic_msg_ts = 1767225600000LL,
                            .logics_msg_ts = 1767225599000LL,
                            .index_msg_ts = 1767225500000LL,
                            .confirm_phys = 1 << 20};
    shmq_checkpoint_write(root, &cp);
    uint8_t buf[SHMQ_CHECKPOINT_SIZE];
    size_t len = 0;
    snprintf(path, sizeof(path), "%s/checkpoint", root);
    slurp(path, buf, sizeof(buf), &len);
    put("checkpoint", "valid", buf, len);
}

static void seed_timer(void)
{
    char root[512], path[700];
    fuzz_fresh_dir("timer-seed", root, sizeof(root));
    shmq_timer_store_t ts;
    int64_t now = 1767225600000LL;
    if (shmq_timer_open(&ts, root, 1000, 1024, now) != 0) {
        exit(1);
    }
    int64_t slots[4];
    for (int i = 0; i < 4; i++) {
        shmq_timer_enq_t e = {.phys_offset = 4096 + i * 300,
                              .msg_size = 300,
                              .topic_hash = 7,
                              .deliver_ms = now + 5000 + (i / 2) * 1000};
        shmq_timer_enqueue(&ts, &e, now, &slots[i]);
    }
    shmq_timer_checkpoint(&ts);
    /* Checkpoint head, the two slots used, the log. */
    uint8_t buf[81 + 2 * 36 + 1024];
    memcpy(buf, ts.check.base, 80);
    buf[80] = 2;
    size_t len = 81;
    for (int i = 0; i < 4; i += 2) {
        int64_t idx = shmq_timer_slot_index(slots[i], 1000);
        buf[len] = (uint8_t)(idx >> 24);
        buf[len + 1] = (uint8_t)(idx >> 16);
        buf[len + 2] = (uint8_t)(idx >> 8);
        buf[len + 3] = (uint8_t)idx;
        memcpy(buf + len + 4, ts.wheel.base + idx * SHMQ_TIMER_SLOT_SIZE, 32);
        len += 36;
    }
    int64_t end = ts.write_pos;
    shmq_timer_close(&ts);
    snprintf(path, sizeof(path), "%s/timerlog/%020d", root, 0);
    size_t before = len;
    slurp(path, buf, len + (size_t)end, &len);
    put("timer", "four-units", buf, len);
    /* The same with the checkpoint's flush position at 0: every unit is re-applied. */
    memset(buf + 8, 0, 8);
    put("timer", "replay", buf, len);
    /* No wheel slots: recovery must rebuild them from the log. */
    buf[80] = 0;
    memmove(buf + 81, buf + before, len - before);
    put("timer", "lost-slots", buf, 81 + len - before);
}

static void seed_json(void)
{
    char root[512], path[700];
    fuzz_fresh_dir("json-seed", root, sizeof(root));
    shmq_topic_table_t tt = {0};
    shmq_topic_config_t tc = {.name = "T", .read_queue_nums = 2, .write_queue_nums = 2, .perm = 6};
    shmq_topic_table_put(&tt, &tc);
    snprintf(tc.name, sizeof(tc.name), "%%RETRY%%G");
    tc.read_queue_nums = tc.write_queue_nums = 1;
    shmq_topic_table_put(&tt, &tc);
    shmq_topics_save(root, &tt);
    shmq_topic_table_free(&tt);
    shmq_offset_table_t ot = {0};
    shmq_offset_table_set(&ot, "T@G", 0, 5);
    shmq_offset_table_set(&ot, "T@G", 1, 7);
    shmq_consumer_offsets_save(root, &ot);
    shmq_offset_table_free(&ot);
    shmq_offset_table_set(&ot, "", 1, 5);
    shmq_offset_table_set(&ot, "", 3, 0);
    shmq_delay_offsets_save(root, &ot);
    shmq_offset_table_free(&ot);
    shmq_group_table_t gt = {0};
    shmq_group_config_t g;
    shmq_group_config_init(&g, "G");
    shmq_group_table_put(&gt, &g);
    shmq_groups_save(root, &gt);
    shmq_group_table_free(&gt);
    static const char *files[][2] = {{"json_topics", "topics.json"},
                                     {"json_consumer_offsets", "consumerOffset.json"},
                                     {"json_delay_offsets", "delayOffset.json"},
                                     {"json_groups", "subscriptionGroup.json"}};
    for (size_t i = 0; i < 4; i++) {
        static uint8_t buf[16384];
        size_t len = 0;
        snprintf(path, sizeof(path), "%s/config/%s", root, files[i][1]);
        slurp(path, buf, sizeof(buf), &len);
        put(files[i][0], "saved", buf, len);
        /* With a .bak after a NUL: a damaged main file falls back to it. */
        size_t mlen = len;
        buf[len++] = 0;
        memcpy(buf + len, buf, mlen);
        buf[mlen / 2] ^= 0x20;
        put(files[i][0], "with-bak", buf, len + mlen);
    }
}

/* Remoting frames as RocketMQ clients send them: a route request, a send, a pull, two in one
 * read, and a header that is no JSON. */
static void seed_remoting(void)
{
    static const char *const hdrs[] = {
        "{\"code\":105,\"language\":\"JAVA\",\"version\":317,\"opaque\":1,\"flag\":0,"
        "\"extFields\":{\"topic\":\"TopicTest\"}}",
        "{\"code\":310,\"language\":\"JAVA\",\"opaque\":2,\"flag\":0,\"extFields\":{"
        "\"a\":\"PG\",\"b\":\"TopicTest\",\"c\":\"TBW102\",\"d\":\"4\",\"e\":\"1\","
        "\"f\":\"0\",\"g\":\"1700000000000\",\"h\":\"0\","
        "\"i\":\"KEYS\\u0001k1\\u0002TAGS\\u0001TagA\\u0002\",\"j\":\"0\",\"k\":\"false\"}}",
        "{\"code\":11,\"opaque\":3,\"flag\":0,\"extFields\":{\"consumerGroup\":\"G\","
        "\"topic\":\"TopicTest\",\"queueId\":\"0\",\"queueOffset\":\"0\",\"maxMsgNums\":"
        "\"32\",\"sysFlag\":\"2\",\"commitOffset\":\"0\",\"suspendTimeoutMillis\":\"15000\","
        "\"subscription\":\"TagA || TagB\",\"subVersion\":\"1\"}}",
        "{\"code\":34,\"opaque\":4,\"flag\":0,\"remark\":null}",
        "{\"code\":12,\"opaque\":5,",
    };
    static const char *const names[] = {"route", "send", "pull", "heartbeat", "broken-json"};
    uint8_t two[4096];
    size_t two_len = 0;
    for (size_t i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++) {
        uint8_t f[2048];
        const char *body = i == 3 ? "{\"clientID\":\"127.0.0.1@1\"}" : "hello";
        size_t hl = strlen(hdrs[i]), bl = i == 1 || i == 3 ? strlen(body) : 0;
        shmq_put_be32(f, (uint32_t)(4 + hl + bl));
        shmq_put_be32(f + 4, (uint32_t)hl);
        memcpy(f + 8, hdrs[i], hl);
        memcpy(f + 8 + hl, body, bl);
        put("remoting", names[i], f, 8 + hl + bl);
        if (i < 2) {
            memcpy(two + two_len, f, 8 + hl + bl);
            two_len += 8 + hl + bl;
        }
    }
    put("remoting", "two-frames", two, two_len);
    uint8_t huge[8] = {0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 16};
    put("remoting", "2gb-length", huge, sizeof(huge));
}

/* The controller: requests as frames (first byte even) and a snapshot (odd). */
static void seed_controller(void)
{
    static const char elect[] = "{\"cmd\":\"elect_master\",\"brokerName\":\"b\",\"unclean\":true,"
                                "\"alive\":[{\"brokerId\":3,\"maxOffset\":5,\"epoch\":1}]}";
    static const char alter[] =
        "{\"cmd\":\"alter_sync_state_set\",\"brokerName\":\"b\",\"masterId\":1,"
        "\"masterEpoch\":1,\"syncStateSet\":[1,2,3],\"syncStateSetEpoch\":2}";
    static const char *const bodies[] = {
        "{\"cmd\":\"register\",\"brokerName\":\"b\",\"brokerAddress\":\"127.0.0.1:9\"}",
        "{\"cmd\":\"heartbeat\",\"brokerName\":\"b\",\"brokerId\":2,\"maxOffset\":7}",
        elect,
        alter,
        "{\"cmd\":\"member\",\"memberId\":2,\"address\":\"127.0.0.1:9880\"}",
        "{\"cmd\":\"status\"}",
        "{\"cmd\":\"register\",\"brokerName\":\"b\",\"brokerAddress\":\"127.0.0.1:9\","
        "\"gatewayAddress\":\"127.0.0.1:8\"}",
    };
    static const char snapshot[] =
        "\x01{\"version\":1,\"applied\":6,\"brokerSets\":[{\"brokerName\":\"b\",\"clusterName\":"
        "\"c\",\"nextBrokerId\":3,\"masterId\":1,\"masterAddress\":\"127.0.0.1:1\",\"masterEpoch\":"
        "1,\"syncStateSet\":[1],\"syncStateSetEpoch\":1,\"replicas\":[{\"brokerId\":1,\"address\":"
        "\"127.0.0.1:1\",\"maxOffset\":0,\"epoch\":0},{\"brokerId\":2,\"address\":\"127.0.0.1:2\","
        "\"maxOffset\":9,\"epoch\":1}]}],\"members\":[{\"id\":1,\"address\":\"127.0.0.1:9880\"}]}";
    /* a replica's gateway address (snapshots before it have none) */
    static const char snapshot_gw[] =
        "\x01{\"version\":1,\"applied\":2,\"brokerSets\":[{\"brokerName\":\"b\",\"clusterName\":"
        "\"c\",\"nextBrokerId\":2,\"masterId\":1,\"masterEpoch\":1,\"syncStateSet\":[1],"
        "\"syncStateSetEpoch\":1,\"replicas\":[{\"brokerId\":1,\"address\":\"127.0.0.1:1\","
        "\"maxOffset\":0,\"epoch\":1,\"gatewayAddress\":\"127.0.0.1:2\"}]}],\"members\":[]}";
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        uint8_t frame[512];
        size_t len = strlen(bodies[i]);
        char name[32];
        frame[0] = 0;
        frame[1] = 0;
        frame[2] = 0;
        frame[3] = (uint8_t)(len >> 8);
        frame[4] = (uint8_t)len;
        memcpy(frame + 5, bodies[i], len);
        snprintf(name, sizeof(name), "frame-%zu", i);
        put("controller", name, frame, len + 5);
    }
    put("controller", "snapshot", snapshot, sizeof(snapshot) - 1);
    put("controller", "snapshot-gateway", snapshot_gw, sizeof(snapshot_gw) - 1);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s <corpus dir> <scratch dir>\n", argv[0]);
        return 2;
    }
    corpus = argv[1];
    setenv("SHMQ_FUZZ_TMP", argv[2], 1);
    scratch = argv[2];
    seed_record();
    seed_put_raw();
    seed_ring();
    seed_cq();
    seed_index();
    seed_checkpoint();
    seed_timer();
    seed_json();
    seed_remoting();
    seed_controller();
    return 0;
}
