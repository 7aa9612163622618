/*
 * Access control lists: which Unix users and groups may publish to and
 * subscribe to which topics, and use which consumer groups, in the spirit
 * of RocketMQ's plain ACL (plain_acl.yml: accounts with topicPerms,
 * groupPerms, defaultTopicPerm, defaultGroupPerm, admin) but with the
 * kernel's identities (SO_PEERCRED, a process's groups) in place of access
 * keys.  Off unless broker.conf says aclEnable=true; then the file
 * <root>/config/acl.json decides, for every client but the store's own
 * user:
 *
 *   {
 *     "accounts": [
 *       { "user": "alice", "topicPerms": ["orders=PUB|SUB", "audit=SUB"],
 *         "groupPerms": ["billing=SUB"] },
 *       { "group": "analytics", "defaultTopicPerm": "SUB" },
 *       { "user": "ops", "admin": true }
 *     ]
 *   }
 *
 * An account names exactly one "user" or "group" (a name or a number).  A
 * client takes the first account, in file order, that names its user or
 * one of its groups (primary or supplementary); a client no account names
 * may do nothing.  Perms are DENY, PUB, SUB and PUB|SUB; a topic without an
 * entry takes defaultTopicPerm (DENY unless given), a group without one
 * defaultGroupPerm (SUB unless given), as in RocketMQ.  An admin account
 * may do everything.  Retry and dead-letter topics (%RETRY%G, %DLQ%G)
 * belong to their consumer group: publishing or subscribing to them needs
 * SUB on group G, as RocketMQ checks them.
 *
 * Who enforces what: the writer refuses a send to a topic the ring's
 * owner may not publish to (before any topic is created); the master
 * refuses offset commits and retry topics for groups and topics the
 * client may not use; the consumer library refuses pulls.  Every refusal
 * is -EACCES with a detail naming the client, the rule and the file.
 * Reading is not kernel-enforced per topic: a member of the client group
 * can read the files (docs/security.md).
 *
 * The file is the store user's configuration: it is read with the store's
 * file rules (no link, regular file, at most SHMQ_ACL_FILE_MAX bytes) and
 * strictly: an unknown key, a bad perm, a malformed topic or group name, a
 * user or group the system does not know, a name listed twice is refused
 * with a detail naming the account and the entry.
 */
#ifndef SHMQ_ACL_H
#define SHMQ_ACL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "format/store_files.h"

#define SHMQ_ACL_FILE       "acl.json" /* in <root>/config/ */
#define SHMQ_ACL_FILE_MAX   (4 << 20)  /* bytes */
#define SHMQ_ACL_GROUPS_MAX 64         /* a client's groups considered (primary first) */
#define SHMQ_ACL_CHECK_MS   1000       /* a watcher looks at the file at most this often */

enum shmq_acl_perm { SHMQ_ACL_DENY = 0, SHMQ_ACL_PUB = 1, SHMQ_ACL_SUB = 2 };

/* Who a client is: its uid and its groups (groups[0] the primary group). */
typedef struct shmq_acl_ident {
    bool owner; /* the store's user: allowed everything, whatever the file says */
    uid_t uid;
    int ngroups;
    gid_t groups[SHMQ_ACL_GROUPS_MAX];
} shmq_acl_ident_t;

typedef struct shmq_acl_entry {
    char *name; /* topic or consumer group */
    uint8_t perm;
} shmq_acl_entry_t;

typedef struct shmq_acl_account {
    int index;     /* in the file's accounts array */
    bool is_group; /* names a group (else a user) */
    uint32_t id;   /* its uid or gid */
    char who[80];  /* "user alice", "group analytics" (for messages) */
    bool admin;
    uint8_t default_topic_perm;
    uint8_t default_group_perm;
    shmq_acl_entry_t *topics; /* sorted by name */
    size_t ntopics;
    shmq_acl_entry_t *groups; /* sorted by name */
    size_t ngroups;
} shmq_acl_account_t;

typedef struct shmq_acl {
    shmq_acl_account_t *accounts;
    size_t naccounts;
} shmq_acl_t;

/*
 * Parse the text of an ACL file (path names it in errors) into out (freed
 * with shmq_acl_free).  0, or SHMQ_E_CONFIG with a detail naming the
 * account and the entry that is wrong; out is empty then.
 */
int shmq_acl_parse(const char *text, size_t len, const char *path, shmq_acl_t *out);

/* Load <root>/config/acl.json.  A missing file is SHMQ_E_CONFIG too ("aclEnable is true but"). */
int shmq_acl_load(const char *root, shmq_acl_t *out);

void shmq_acl_free(shmq_acl_t *acl);

/* The first account naming id's user or one of its groups, or NULL. */
const shmq_acl_account_t *shmq_acl_match(const shmq_acl_t *acl, const shmq_acl_ident_t *id);

/*
 * May id (whose account is acct, from shmq_acl_match: NULL for none)
 * publish to topic, or subscribe to it as consumer group (NULL: a consumer
 * without a group; then only the topic is checked), or use group (commit
 * its offsets, create its retry topics)?  0, or -EACCES with a detail
 * naming the client, the account and the rule.  Pure: no I/O, any thread.
 */
int shmq_acl_may_publish(const shmq_acl_account_t *acct, const shmq_acl_ident_t *id,
                         const char *topic, size_t len);
int shmq_acl_may_subscribe(const shmq_acl_account_t *acct, const shmq_acl_ident_t *id,
                           const char *topic, size_t len, const char *group);
int shmq_acl_may_use_group(const shmq_acl_account_t *acct, const shmq_acl_ident_t *id,
                           const char *group);

/* ---- identities ----------------------------------------------------------------- */

/* This process: its effective uid, effective gid and supplementary groups. */
void shmq_acl_ident_self(shmq_acl_ident_t *id, uid_t store_uid);

/*
 * A peer (from SO_PEERCRED): uid, gid and the supplementary groups of pid
 * as /proc/<pid>/status shows them while pid is still uid's process, else
 * uid's groups in the group database.
 */
void shmq_acl_ident_peer(shmq_acl_ident_t *id, uid_t store_uid, uid_t uid, gid_t gid, pid_t pid);

/* Is gid among id's groups? */
bool shmq_acl_ident_in_group(const shmq_acl_ident_t *id, gid_t gid);

/* "uid 1001 (alice)" for messages. */
void shmq_acl_ident_name(uid_t uid, char *out, size_t len);

/* ---- a watched file ------------------------------------------------------------------ */

/*
 * The ACL of a running store, as a process keeps it: loaded on first use,
 * looked at again at most every SHMQ_ACL_CHECK_MS and reloaded when the file
 * changed (another inode, size or mtime).  A change that does not load
 * keeps the rules in force (the caller logs the error); until the first
 * load succeeds nobody but the store's user is allowed anything.  Zero it
 * before first use; free it with shmq_acl_watch_free.
 */
typedef struct shmq_acl_watch {
    bool loaded;  /* acl holds a loaded file */
    uint64_t gen; /* bumped at each successful load */
    shmq_acl_t acl;
    bool looked; /* stamp is the last file seen */
    shmq_file_stamp_t stamp;
    int64_t next_check_ms; /* monotonic */
    int last_rc;           /* the last load's result (0, or why the rules are old/none) */
    char last_error[256];
} shmq_acl_watch_t;

/*
 * Look at the file if due (now_ms: monotonic ms).  Returns 1 when new rules
 * were loaded, 0 when nothing changed, or the negative error of a load that
 * failed just now (detail set; the rules in force stay).
 */
int shmq_acl_watch_poll(shmq_acl_watch_t *w, const char *root, int64_t now_ms);

/*
 * The account of id under the watched rules: 0 with *acct (NULL when no
 * account names id), or the error of the first load when no rules were
 * ever loaded (-EACCES, detail saying why).
 */
int shmq_acl_watch_account(const shmq_acl_watch_t *w, const shmq_acl_ident_t *id,
                           const shmq_acl_account_t **acct);

/*
 * The checks above under the watched rules, in one call (the account is
 * looked up each time: for a caller that checks one identity rarely).
 * With no rules ever loaded: -EACCES naming why, except for the owner.
 */
int shmq_acl_watch_may_subscribe(const shmq_acl_watch_t *w, const shmq_acl_ident_t *id,
                                 const char *topic, size_t len, const char *group);
int shmq_acl_watch_may_use_group(const shmq_acl_watch_t *w, const shmq_acl_ident_t *id,
                                 const char *group);

void shmq_acl_watch_free(shmq_acl_watch_t *w);

#endif
