/*
 * Tag subscriptions: RocketMQ's "*" or "TagA || TagB" expressions, parsed
 * once and matched against ConsumeQueue tagsCodes (a cheap prefilter: hash
 * collisions are possible) and then against a record's exact TAGS value.
 */
#ifndef SHMQ_SUBSCRIPTION_H
#define SHMQ_SUBSCRIPTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

#endif
