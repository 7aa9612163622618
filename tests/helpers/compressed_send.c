/*
 * compressed_send: store one message whose body is compressed as another
 * RocketMQ client writes it, through the producer's ring as any message,
 * for the tests of reading compressed bodies back.
 *
 *   compressed_send STORE TOPIC KIND
 *
 * KIND:
 *   zlib0    the body as a zlib stream, sysflag COMPRESSED only (pre-5.x clients)
 *   zlib3    the body as a zlib stream, sysflag COMPRESSED | ZLIB (0x301)
 *   zstd     the body as a zstd frame, sysflag COMPRESSED | ZSTD (0x201)
 *   garbage  bytes that are no LZ4 frame, sysflag COMPRESSED | LZ4 (0x101)
 *   bomb     a zlib stream of 8 MiB of zeros (a few KiB stored), sysflag 0x301
 *
 * The body (before compression) is 16 KiB of text: "compressed-<KIND> "
 * repeated.  Prints "ok <phys offset>" and exits 0, or "err <text>" and 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zlib.h>
#include <zstd.h>

#include "client/producer_entry.h"
#include "format/message.h"

#define BODY_LEN (16 * 1024)
#define BOMB_LEN (8 * 1024 * 1024)

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: compressed_send STORE TOPIC zlib0|zlib3|zstd|garbage|bomb\n");
        return 2;
    }
    const char *kind = argv[3];
    bool bomb = strcmp(kind, "bomb") == 0;
    size_t len = bomb ? BOMB_LEN : BODY_LEN;
    uint8_t *body = calloc(1, len);
    if (body == NULL) {
        return 1;
    }
    if (!bomb) {
        char unit[64];
        int ul = snprintf(unit, sizeof(unit), "compressed-%s ", kind);
        for (size_t i = 0; i < len; i++) {
            body[i] = (uint8_t)unit[i % (size_t)ul];
        }
    }
    size_t cap = compressBound(len) + ZSTD_compressBound(len) + 64;
    uint8_t *z = malloc(cap);
    size_t zl = cap;
    int32_t sysflag;
    if (z == NULL) {
        return 1;
    }
    if (!strcmp(kind, "zlib0") || !strcmp(kind, "zlib3") || bomb) {
        uLongf n = cap;
        if (compress2(z, &n, body, len, 5) != Z_OK) {
            printf("err zlib\n");
            return 1;
        }
        zl = n;
        sysflag = !strcmp(kind, "zlib0") ? SHMQ_SYSFLAG_COMPRESSED
                                         : SHMQ_SYSFLAG_COMPRESSED | SHMQ_SYSFLAG_COMPRESS_ZLIB;
    } else if (!strcmp(kind, "zstd")) {
        zl = ZSTD_compress(z, cap, body, len, 3);
        if (ZSTD_isError(zl)) {
            printf("err zstd\n");
            return 1;
        }
        sysflag = SHMQ_SYSFLAG_COMPRESSED | SHMQ_SYSFLAG_COMPRESS_ZSTD;
    } else if (!strcmp(kind, "garbage")) {
        zl = 200;
        for (size_t i = 0; i < zl; i++) {
            z[i] = (uint8_t)(i * 131 + 7);
        }
        sysflag = SHMQ_SYSFLAG_COMPRESSED | SHMQ_SYSFLAG_COMPRESS_LZ4;
    } else {
        fprintf(stderr, "compressed_send: unknown kind %s\n", kind);
        return 2;
    }

    char uniq[SHMQ_UNIQ_KEY_MAX];
    shmq_uniq_key_generate(uniq);
    char props[128];
    int pl = snprintf(props, sizeof(props), "%s%c%s%c", SHMQ_PROP_UNIQ_KEY,
                      SHMQ_PROP_NAME_VALUE_SEP, uniq, SHMQ_PROP_SEP);

    shmq_producer_t *p;
    int rc = shmq_producer_open(argv[1], NULL, &p);
    if (rc < 0) {
        printf("err open: %s: %s\n", shmq_strerror(rc), shmq_error_detail());
        return 1;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    shmq_ring_msg_t rm;
    memset(&rm, 0, sizeof(rm));
    rm.kind = SHMQ_RING_KIND_MSG;
    rm.batch_count = 1;
    rm.queue_id = 0;
    rm.sysflag = sysflag;
    rm.born_ts = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    rm.born_host.addr[0] = 127;
    rm.born_host.addr[3] = 1;
    rm.topic = argv[2];
    rm.topic_len = (uint32_t)strlen(argv[2]);
    rm.props = props;
    rm.props_len = (uint32_t)pl;
    rm.body = z;
    rm.body_len = (uint32_t)zl;
    shmq_send_result_t res;
    rc = shmq_producer_send_entry(p, &rm, &res);
    if (rc < 0) {
        printf("err send: %s: %s\n", shmq_strerror(rc), shmq_error_detail());
        shmq_producer_close(p);
        return 1;
    }
    printf("ok %lld\n", (long long)res.phys_offset);
    shmq_producer_close(p);
    free(z);
    free(body);
    return 0;
}
