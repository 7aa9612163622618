/*
 * Internals shared by json_meta.c (reading, choosing between a file and its
 * .bak, findings, saving, the store's view) and json_meta_tables.c (what
 * each of the four files holds).  Not for use outside these two files.
 */
#ifndef SHMQ_JSON_META_INT_H
#define SHMQ_JSON_META_INT_H

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "format/json_meta.h"

#define META_QUEUE_ID_MAX   65535
#define META_QUEUE_NUMS_MAX 65535

/* One of the four files. */
typedef struct meta_kind {
    const char *name;            /* "topics.json" */
    const char *table_key;       /* "topicConfigTable" */
    const char *const *top_keys; /* every top-level key shmq knows, NULL-terminated */
    const char *if_lost;         /* what removing both files does (for a refusal) */
} meta_kind_t;

typedef enum meta_state {
    META_MISSING, /* no file, or only whitespace */
    META_DAMAGED, /* content, but not a usable document (why says how) */
    META_OK,
} meta_state_t;

typedef struct meta_file {
    char path[PATH_MAX];
    meta_state_t state;
    char why[400];
    json_t *doc;   /* META_OK: the document */
    json_t *table; /* META_OK: its table (borrowed from doc) */
} meta_file_t;

/* One load: the file, its .bak, which one is read, what was reported. */
typedef struct meta_load {
    const meta_kind_t *kind;
    const char *root;
    bool quiet;
    meta_file_t main;
    meta_file_t bak;
    meta_file_t *base;  /* the file read: &main, &bak, or NULL (neither exists: empty) */
    meta_file_t *other; /* .bak when base is the main file and .bak is usable, else NULL */
    shmq_meta_report_t rep;
    int shown; /* findings emitted (the rest are counted) */
} meta_load_t;

/* Read the file and its .bak and choose; a refusal is SHMQ_E_JSON naming both. */
int meta_open(meta_load_t *ml, const meta_kind_t *k, const char *root, bool quiet);
void meta_close(meta_load_t *ml, shmq_meta_report_t *rep);

/* Report a finding (the message names the file itself). */
void meta_finding(meta_load_t *ml, enum shmq_meta_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The file name to show for the base, the .bak and the main file. */
const char *meta_base_path(const meta_load_t *ml);

/* dataVersion of the file read (else of its .bak, else zeros), reporting damage. */
void meta_data_version(meta_load_t *ml, int64_t *counter, int64_t *state);

/* Top-level keys one bit away from a known one: reported. */
void meta_check_top_keys(meta_load_t *ml);

/*
 * Write doc (reference stolen) to <root>/config/<name>.  carry_version:
 * its dataVersion continues the file's being replaced (counter + 1, same
 * stateVersion).  A save that adds entries (table keys, or keys of their
 * object values) to what the file held is written twice, so that .bak
 * holds every entry too.
 */
int meta_save(const char *root, const meta_kind_t *k, json_t *doc, bool carry_version);

/* A new dataVersion object. */
json_t *meta_data_version_new(int64_t counter, int64_t state);

/* ---- entry fields: false with why set when present and wrong ----------------- */

bool meta_opt_int(const json_t *obj, const char *field, long long lo, long long hi, long long *out,
                  char *why, size_t why_len);
bool meta_opt_bool(const json_t *obj, const char *field, bool *out, char *why, size_t why_len);
/* A field name one bit away from a known field that obj lacks: the entry is damaged. */
bool meta_damaged_field_name(const json_t *obj, const char *const *known, char *why,
                             size_t why_len);
/* A strict decimal object key (optional '-', digits only) in [lo, hi]. */
bool meta_int_key(const char *s, long long lo, long long hi, long long *out);

/* ---- the store's view ----------------------------------------------------------- */

/* A topic directory of <root>/consumequeue and 1 + its largest queue directory. */
typedef struct meta_cq_topic {
    char name[256];
    int32_t queues;
} meta_cq_topic_t;

typedef struct meta_cq_topics {
    meta_cq_topic_t *t;
    size_t count;
} meta_cq_topics_t;

int meta_cq_topics_scan(const char *root, meta_cq_topics_t *out);
const meta_cq_topic_t *meta_cq_topics_get(const meta_cq_topics_t *s, const char *name);
void meta_cq_topics_free(meta_cq_topics_t *s);

#endif
