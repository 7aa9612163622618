/* Topic and consumer group names (see names.h). */
#include "format/names.h"

#include <stdbool.h>
#include <string.h>

#include "shmq/errors.h"

static bool name_char_ok(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '%' ||
           c == '-' || c == '_' || c == '|';
}

static bool has_prefix(const char *s, size_t len, const char *prefix)
{
    size_t pl = strlen(prefix);
    return len >= pl && memcmp(s, prefix, pl) == 0;
}

int shmq_topic_validate(const char *topic, size_t len, int32_t max_len)
{
    size_t limit = max_len > 0 ? (size_t)max_len : 0;
    if (has_prefix(topic, len, SHMQ_RETRY_PREFIX) || has_prefix(topic, len, SHMQ_DLQ_PREFIX)) {
        limit = SHMQ_TOPIC_MAX_ANY;
    }
    if (len == 0 || len > limit) {
        return shmq_error_set(SHMQ_E_TOPIC, "topic length %zu outside 1..%zu", len, limit);
    }
    for (size_t i = 0; i < len; i++) {
        if (!name_char_ok((unsigned char)topic[i])) {
            return shmq_error_set(SHMQ_E_TOPIC,
                                  "topic has a character outside [A-Za-z0-9%%_|-] at byte %zu", i);
        }
    }
    return 0;
}

bool shmq_topic_is_system(const char *topic, size_t len)
{
    if (len < 8 || (topic[0] != 'S' && topic[0] != 'R' && topic[0] != 'r')) {
        return false; /* the common case: one look */
    }
    return (len == sizeof(SHMQ_SCHEDULE_TOPIC) - 1 &&
            memcmp(topic, SHMQ_SCHEDULE_TOPIC, len) == 0) ||
           has_prefix(topic, len, "RMQ_SYS_TRANS_") || has_prefix(topic, len, "rmq_sys_");
}

int shmq_group_validate(const char *group, size_t len)
{
    if (len == 0 || len > SHMQ_GROUP_MAX) {
        return shmq_error_set(SHMQ_E_ARG, "consumer group name of %zu bytes: expected 1..%d", len,
                              SHMQ_GROUP_MAX);
    }
    for (size_t i = 0; i < len; i++) {
        if (!name_char_ok((unsigned char)group[i])) {
            return shmq_error_set(SHMQ_E_ARG,
                                  "consumer group name has byte 0x%02x at %zu: group names "
                                  "hold only A-Z a-z 0-9 %% - _ |",
                                  (unsigned char)group[i], i);
        }
    }
    return 0;
}
