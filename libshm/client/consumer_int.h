/*
 * Internal to the consumer library: the consumer handle and what the files
 * of the library share.  Not installed.
 *
 *   consumer.c          the handle (open, attach, close), its ConsumeQueue
 *                       handles, reading and checking a unit and its record,
 *                       pulls and long polling;
 *   consumer_offsets.c  queue offsets and a group's committed offsets;
 *   consumer_skip.c     giving up one corrupt message for a group;
 *   consumer_retry.c    send-back, retry topics and group polls; it reads the
 *                       handle through the shmq_consumer_* accessors only.
 */
#ifndef SHMQ_CONSUMER_INT_H
#define SHMQ_CONSUMER_INT_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "client/subscription.h"
#include "format/commitlog.h"
#include "format/config.h"
#include "format/consume_queue.h"
#include "shm/ctl.h"
#include "shmq/consumer.h"

#define CONS_BUCKETS       256
#define CONS_CQ_BLANK_SIZE INT32_MAX
#define CONS_REC_REMOVED   1 /* shmq_cons_record_view(): the record's segment was cleaned */
/*
 * Decompressed bytes one pull holds at most before it stops early (plus the
 * one body past it, at most maxMessageSize): a pull of many compressed
 * bodies, each within maxMessageSize, cannot make the handle hold up to
 * SHMQ_PULL_MAX times that.  The next pull goes on where it stopped.
 */
#define CONS_ZBYTES_MAX (32u << 20)

/* consumer_retry.c's state of a handle: its producer, group settings, poll cursors. */
struct shmq_consumer_retry;

/* A ConsumeQueue opened read-only, on demand. */
typedef struct cons_queue {
    shmq_cq_t cq;
    uint32_t incarnation;    /* the queue table entry's when opened (topic deleted: reopen) */
    struct cons_queue *next; /* hash chain */
} cons_queue_t;

struct shmq_consumer {
    char root[PATH_MAX];
    char group[SHMQ_GROUP_MAX + 1];
    bool has_group;
    bool attached;
    shmq_ctl_t ctl;
    char shm_path[96]; /* /dev/shm/<name>: a new master replaces the object */
    dev_t shm_dev;
    ino_t shm_ino;
    int64_t next_check_ms;
    shmq_config_t cfg; /* the master's configuration, store root made absolute */
    shmq_commitlog_t cl;
    bool cl_open;
    size_t cq_file_size;
    cons_queue_t *buckets[CONS_BUCKETS];
    bool check_crcs; /* shmq_consumer_set_check_crcs(): on by default */
    bool raw_bodies; /* shmq_consumer_set_decompress(false) */
    bool no_ids;     /* shmq_consumer_set_msg_ids(false): views' msg_id left "" */
    /* the decompressed bodies of the last pull's views: freed at the next pull */
    uint8_t **zbodies;
    size_t nzbodies;
    size_t zbodies_cap;
    size_t zbytes;              /* their bytes (CONS_ZBYTES_MAX) */
    shmq_sub_group_t group_cfg; /* the group's settings (subscriptionGroup.json) */
    shmq_sub_t sub;             /* the last subscription parsed */
    uint64_t clean_seen;        /* cleaner: its deleted_seq when we last dropped removed files */
    struct shmq_consumer_retry *retry; /* consumer_retry.c: send-back producer, group polls */
    int reg_fd;         /* connection to the master's socket for offset commits, -1 until needed */
    uint64_t reg_conns; /* connections made so far (a membership is one connection's) */
    struct cons_member *member; /* consumer_group.c: membership of the handle's group */
    uint32_t member_flags;      /* enum shmq_member_flags: shmq_consumer_set_model, _orderly */
    /* aclEnable: config/acl.json and who this process is under it */
    shmq_acl_watch_t acl;
    shmq_acl_ident_t ident;
    bool ident_set;
};

/* ---- consumer.c ------------------------------------------------------------------ */

/* Attached to a running store, re-attaching if it went down; SHMQ_E_NOT_FOUND if none runs. */
int shmq_cons_ensure(shmq_consumer_t *c);

/* The queue's handle, in step with the dispatcher's [min, max) and the writer's segments. */
int shmq_cons_queue_ready(shmq_consumer_t *c, const char *topic, size_t tlen, int32_t queue_id,
                          int64_t min, int64_t max, shmq_cq_t **cq);

/*
 * Fill *bad, and put in front of the error detail, which message the unit at
 * qoff fails to yield and where its record lies (mf: the CommitLog file
 * holding phys, or NULL).  Returns SHMQ_E_CORRUPT.
 */
int shmq_cons_unit_corrupt(shmq_corrupt_t *bad, const char *topic, size_t tlen, int32_t queue_id,
                           int64_t qoff, int64_t phys, const shmq_mapped_file_t *mf, int check);

/*
 * v's record stores its body compressed (sysflag COMPRESSED): point v's
 * body at it decompressed (freed at the next pull), unless the handle gives
 * raw bodies.  SHMQ_E_CORRUPT with *bad filled (mf: the CommitLog file
 * holding the record, or NULL) when it does not decompress or expands past
 * maxMessageSize.
 */
int shmq_cons_view_decompress(shmq_consumer_t *c, const shmq_mapped_file_t *mf,
                              const shmq_cq_unit_t *u, int64_t qoff, const char *topic, size_t tlen,
                              int32_t queue_id, shmq_msg_view_t *v, shmq_corrupt_t *bad);

/* A unit no dispatcher writes: SHMQ_E_CORRUPT with *bad filled. */
int shmq_cons_unit_invalid(shmq_corrupt_t *bad, const char *topic, size_t tlen, int32_t queue_id,
                           int64_t qoff, const shmq_cq_unit_t *u);

/*
 * Decode the record unit u (queue offset qoff of topic/queue_id) points at
 * into v, its CRCs checked if check_crcs: 0, CONS_REC_REMOVED (segment
 * cleaned) or SHMQ_E_CORRUPT with *bad filled.
 */
int shmq_cons_record_view(shmq_consumer_t *c, const shmq_cq_unit_t *u, int64_t qoff,
                          const char *topic, size_t tlen, int32_t queue_id, bool check_crcs,
                          shmq_msg_view_t *v, shmq_corrupt_t *bad);

/*
 * The pull's fast path (tests): the record at buf (avail bytes readable) when
 * it is V1 with two IPv4 hosts and passes every check against unit u (CRC too
 * if check_crcs): true with v filled as shmq_cons_record_view() fills it.
 * False: that function decides.
 */
bool shmq_cons_record_view_v1(const uint8_t *buf, size_t avail, const shmq_cq_unit_t *u,
                              int64_t qoff, const char *topic, size_t tlen, int32_t queue_id,
                              bool check_crcs, shmq_msg_view_t *v);
/* The same with ids: msg_id formatted (true) or left "" (false, shmq_consumer_set_msg_ids). */
bool shmq_cons_record_view_v1_ids(const uint8_t *buf, size_t avail, const shmq_cq_unit_t *u,
                                  int64_t qoff, const char *topic, size_t tlen, int32_t queue_id,
                                  bool check_crcs, bool ids, shmq_msg_view_t *v);

/* The fast path's shmq_record_crc_tail_value() (tests). */
int64_t shmq_cons_crc_tail_value(const uint8_t *props, uint32_t len);

/* shmq_cons_record_view() with mf, the CommitLog file holding u->phys_offset (tests). */
int shmq_cons_record_view_in(shmq_consumer_t *c, const shmq_mapped_file_t *mf,
                             const shmq_cq_unit_t *u, int64_t qoff, const char *topic, size_t tlen,
                             int32_t queue_id, bool check_crcs, shmq_msg_view_t *v,
                             shmq_corrupt_t *bad);

/* A blank pre-fill unit: no message. */
static inline bool shmq_cons_unit_is_blank(const shmq_cq_unit_t *u)
{
    return u->phys_offset == 0 && u->size == CONS_CQ_BLANK_SIZE && u->tags_code == 0;
}

static inline bool shmq_cons_unit_is_valid(const shmq_cq_unit_t *u)
{
    return u->phys_offset >= 0 && u->size > 0 && u->phys_offset <= INT64_MAX - u->size;
}

/* ---- consumer_offsets.c ---------------------------------------------------------- */

/* topic/queue_id's entry in the control block (arguments checked, store attached). */
int shmq_cons_queue_entry(shmq_consumer_t *c, const char *topic, int32_t queue_id,
                          const shmq_ctl_queue_t **out);

/* One request to the master over the handle's connection (shm/reg.h): 0 or an error. */
struct shmq_reg_msg;
int shmq_cons_reg_call(shmq_consumer_t *c, const struct shmq_reg_msg *req,
                       struct shmq_reg_msg *rep);

/* Commit the group's offset of topic/queue_id through the master's socket. */
int shmq_cons_offset_commit(shmq_consumer_t *c, const char *topic, int32_t queue_id,
                            int64_t offset);

/* ---- consumer.c, for consumer_retry.c --------------------------------------------- */

/* The store root the handle was opened with. */
const char *shmq_consumer_root(const shmq_consumer_t *c);

/* The handle's group, or NULL when it was opened without one. */
const char *shmq_consumer_group(const shmq_consumer_t *c);

/* The running store's configuration as the handle last attached to it. */
const shmq_config_t *shmq_consumer_config(const shmq_consumer_t *c);

/* Whether the handle's pulls format the views' msg_id (shmq_consumer_set_msg_ids). */
bool shmq_consumer_msg_ids(const shmq_consumer_t *c);

/* Where the handle keeps consumer_retry.c's state (NULL until first used). */
struct shmq_consumer_retry **shmq_consumer_retry_state(shmq_consumer_t *c);

/* ---- consumer_group.c ------------------------------------------------------------ */

/*
 * Membership of the handle's group for topic with subscription sub (NULL or
 * "" for every tag), joined when the handle is not a member yet or its
 * membership ended (a new connection, a new store) or it subscribes
 * otherwise now; *own is set to the member entry's copy (what the store
 * gives it), after the queues the group asks back were given back (the
 * caller committed what it processed of them).  Returns 1 when the queues
 * held changed, 0 when not, or an error.  Two loads from shared memory when
 * nothing changed.
 */
int shmq_cons_member_queues(shmq_consumer_t *c, const char *topic, const char *sub,
                            const shmq_ctl_member_t **own);

/* The handle's membership version: moves whenever the queues held change (seen by
 * shmq_cons_member_queues, whoever called it); 0 before the first join. */
uint64_t shmq_cons_member_version(const shmq_consumer_t *c);

/* Give up topic/queue_id, which the store asked this member to release. */
int shmq_cons_member_release(shmq_consumer_t *c, const char *topic, int32_t queue_id);

/* Release the handle's membership state (shmq_consumer_close). */
void shmq_cons_member_free(shmq_consumer_t *c);

/* ---- consumer_retry.c ------------------------------------------------------------ */

/* Release a handle's consumer_retry.c state (shmq_consumer_close). */
void shmq_consumer_retry_free(struct shmq_consumer_retry *r);

/*
 * The group's offset of topic/queue_id was moved to offset outside a poll
 * (shmq_consumer_skip_corrupt): the poll's cursor of that queue follows.
 */
void shmq_consumer_poll_moved(shmq_consumer_t *c, const char *topic, int32_t queue_id,
                              int64_t offset);

#endif
