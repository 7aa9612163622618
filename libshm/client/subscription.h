/*
 * Tag subscriptions: RocketMQ's "*" or "TagA || TagB" expressions, parsed
 * once and matched against ConsumeQueue tagsCodes (a cheap prefilter: hash
 * collisions are possible) and then against a record's exact TAGS value.
 *
 * And who may consume at all, as RocketMQ's PullMessageProcessor decides it
 * (ROCKETMQ-FACTS §20): a group whose consumeEnable is false in
 * subscriptionGroup.json, or a topic whose perm lacks PERM_READ, gets no
 * message; the consumer's pull refuses with an error naming the rule, as
 * the writer refuses a send to a topic without PERM_WRITE.
 */
#ifndef SHMQ_SUBSCRIPTION_H
#define SHMQ_SUBSCRIPTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "format/store_files.h"

#define SHMQ_SUB_MAX_LEN  4096 /* bytes of an expression */
#define SHMQ_SUB_MAX_TAGS 64

/* A parsed subscription: every message, or a set of tags. */
typedef struct shmq_sub {
    bool cached; /* text holds the expression parsed below */
    bool all;
    int ntags;
    int32_t codes[SHMQ_SUB_MAX_TAGS];    /* tagsCode of each tag, as the int the unit holds */
    const char *tags[SHMQ_SUB_MAX_TAGS]; /* into buf */
    size_t lens[SHMQ_SUB_MAX_TAGS];
    char text[SHMQ_SUB_MAX_LEN + 1];
    char buf[SHMQ_SUB_MAX_LEN + 1];
} shmq_sub_t;

/*
 * Parse expr into s (zero it before the first use): NULL, "", blanks or "*"
 * mean every message; otherwise tags separated by "||", whitespace around
 * each ignored.  SHMQ_E_ARG for an empty tag, a single '|', a '*' among
 * tags, whitespace or a control character inside a tag, more than
 * SHMQ_SUB_MAX_TAGS tags or more than SHMQ_SUB_MAX_LEN bytes.  Parsing the
 * expression s already holds is free.
 */
int shmq_sub_parse(shmq_sub_t *s, const char *expr);

/* Prefilter on a unit's tagsCode: true for "*" or if one tag has that code. */
bool shmq_sub_code_matches(const shmq_sub_t *s, int64_t tags_code);

/* Exact test on a record's TAGS value (tags NULL: the record has none). */
bool shmq_sub_tags_match(const shmq_sub_t *s, const char *tags, size_t len);

/* ---- who may consume ---------------------------------------------------------- */

/*
 * May a consumer of group gc pull topic?  topic_perm: the topic's perm
 * (topics.json, the control block's topic table), or -1 when the store has
 * no such topic (nothing to refuse: the pull finds no queue).  gc: the
 * group's settings, NULL for a consumer without a group or a group
 * subscriptionGroup.json lacks (RocketMQ's defaults: consumeEnable true).
 * The group is checked first, then the topic, as RocketMQ does.  Returns 0,
 * or -EACCES with a detail naming the rule ("consumer group G may not
 * consume: consumeEnable is false in subscriptionGroup.json", "topic T is
 * not readable (perm 2, PERM_READ 4 not set): pulls are refused").  Pure:
 * no I/O, any thread.
 */
int shmq_sub_may_consume(const char *topic, int32_t topic_perm, const shmq_group_config_t *gc);

/*
 * One group's settings from <root>/config/subscriptionGroup.json, kept by a
 * consumer and re-read only when the file changes (another inode, size or
 * mtime), looked at most every SHMQ_SUB_GROUP_CHECK_MS.  Zero it before the
 * first use; it holds no resource.
 */
#define SHMQ_SUB_GROUP_CHECK_MS 1000

typedef struct shmq_sub_group {
    bool loaded;             /* the file was looked at */
    bool known;              /* the file has the group: cfg holds its settings */
    shmq_group_config_t cfg; /* valid when known */
    shmq_file_stamp_t stamp; /* the file read last (zero: missing) */
    int64_t next_check_ms;   /* monotonic */
} shmq_sub_group_t;

/*
 * The settings of group in the store at root as the file holds them now
 * (now_ms: a monotonic clock in ms): NULL when the file lacks the group, is
 * missing, or cannot be loaded (damaged with no usable .bak: the defaults
 * apply, as for the store).  The pointer is into g, valid until the next
 * call.  Loading reports findings as every loader does (json_meta.h).
 */
const shmq_group_config_t *shmq_sub_group_get(shmq_sub_group_t *g, const char *root,
                                              const char *group, int64_t now_ms);

#endif
