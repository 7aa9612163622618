/*
 * Access control lists (see acl.h): parsing config/acl.json strictly,
 * matching a client's identity to an account, the publish / subscribe /
 * group rules, the identities of this process and of socket peers, and the
 * watched copy each process keeps.
 */
#include "format/acl.h"

#include <errno.h>
#include <grp.h>
#include <jansson.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "format/names.h"
#include "shmq/errors.h"
#include "format/store_files.h"

#define ACL_ACCOUNTS_MAX 4096
#define ACL_ENTRIES_MAX  65536 /* per account and list */

/* ---- perms ----------------------------------------------------------------------------- */

static const char *perm_name(uint8_t p)
{
    switch (p & (SHMQ_ACL_PUB | SHMQ_ACL_SUB)) {
    case SHMQ_ACL_PUB:
        return "PUB";
    case SHMQ_ACL_SUB:
        return "SUB";
    case SHMQ_ACL_PUB | SHMQ_ACL_SUB:
        return "PUB|SUB";
    default:
        return "DENY";
    }
}

/* "DENY", "PUB", "SUB", "PUB|SUB" or "SUB|PUB" (RocketMQ's spellings); -1 otherwise. */
static int perm_parse(const char *s, size_t len)
{
    static const struct {
        const char *text;
        int perm;
    } perms[] = {{"DENY", SHMQ_ACL_DENY},
                 {"PUB", SHMQ_ACL_PUB},
                 {"SUB", SHMQ_ACL_SUB},
                 {"PUB|SUB", SHMQ_ACL_PUB | SHMQ_ACL_SUB},
                 {"SUB|PUB", SHMQ_ACL_PUB | SHMQ_ACL_SUB}};
    for (size_t i = 0; i < sizeof(perms) / sizeof(perms[0]); i++) {
        if (strlen(perms[i].text) == len && memcmp(perms[i].text, s, len) == 0) {
            return perms[i].perm;
        }
    }
    return -1;
}

/* ---- parsing ------------------------------------------------------------------------------ */

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const shmq_acl_entry_t *)a)->name, ((const shmq_acl_entry_t *)b)->name);
}

static void account_free(shmq_acl_account_t *a)
{
    for (size_t i = 0; i < a->ntopics; i++) {
        free(a->topics[i].name);
    }
    for (size_t i = 0; i < a->ngroups; i++) {
        free(a->groups[i].name);
    }
    free(a->topics);
    free(a->groups);
    memset(a, 0, sizeof(*a));
}

void shmq_acl_free(shmq_acl_t *acl)
{
    for (size_t i = 0; i < acl->naccounts; i++) {
        account_free(&acl->accounts[i]);
    }
    free(acl->accounts);
    memset(acl, 0, sizeof(*acl));
}

/* An account's "user" or "group": a name the system knows, or a number. */
static int parse_who(shmq_acl_account_t *a, const char *path, const char *key, const char *name)
{
    a->is_group = strcmp(key, "group") == 0;
    char *end = NULL;
    errno = 0;
    unsigned long n = name[0] >= '0' && name[0] <= '9' ? strtoul(name, &end, 10) : 0;
    if (end != NULL && *end == '\0' && errno == 0 && n < UINT32_MAX) {
        a->id = (uint32_t)n;
    } else {
        char buf[4096];
        if (a->is_group) {
            struct group gr, *res = NULL;
            if (getgrnam_r(name, &gr, buf, sizeof(buf), &res) != 0 || res == NULL) {
                return shmq_error_set(SHMQ_E_CONFIG, "%s: accounts[%d]: no such group \"%s\"", path,
                                      a->index, name);
            }
            a->id = (uint32_t)res->gr_gid;
        } else {
            struct passwd pw, *res = NULL;
            if (getpwnam_r(name, &pw, buf, sizeof(buf), &res) != 0 || res == NULL) {
                return shmq_error_set(SHMQ_E_CONFIG, "%s: accounts[%d]: no such user \"%s\"", path,
                                      a->index, name);
            }
            a->id = (uint32_t)res->pw_uid;
        }
    }
    snprintf(a->who, sizeof(a->who), "%s %.64s", key, name);
    return 0;
}

static int parse_perm_value(const shmq_acl_account_t *a, const char *path, const char *key,
                            json_t *v, uint8_t *out)
{
    int p = json_is_string(v) ? perm_parse(json_string_value(v), json_string_length(v)) : -1;
    if (p < 0) {
        return shmq_error_set(SHMQ_E_CONFIG,
                              "%s: accounts[%d] (%s): %s must be \"DENY\", \"PUB\", \"SUB\" or "
                              "\"PUB|SUB\"",
                              path, a->index, a->who, key);
    }
    *out = (uint8_t)p;
    return 0;
}

/* "name=PERM" entries of topicPerms or groupPerms, sorted, no name twice. */
static int parse_entries(const shmq_acl_account_t *a, const char *path, const char *key, json_t *v,
                         bool topics, shmq_acl_entry_t **out, size_t *nout)
{
    if (!json_is_array(v)) {
        return shmq_error_set(SHMQ_E_CONFIG, "%s: accounts[%d] (%s): %s must be an array", path,
                              a->index, a->who, key);
    }
    size_t n = json_array_size(v);
    if (n > ACL_ENTRIES_MAX) {
        return shmq_error_set(SHMQ_E_CONFIG,
                              "%s: accounts[%d] (%s): %s has %zu entries (at most %d)", path,
                              a->index, a->who, key, n, ACL_ENTRIES_MAX);
    }
    shmq_acl_entry_t *e = calloc(n ? n : 1, sizeof(*e));
    if (e == NULL) {
        return shmq_error_set(-ENOMEM, "%s: out of memory", path);
    }
    size_t got = 0;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        json_t *s = json_array_get(v, i);
        const char *text = json_is_string(s) ? json_string_value(s) : NULL;
        size_t len = text ? json_string_length(s) : 0;
        const char *eq = text ? memchr(text, '=', len) : NULL;
        if (eq == NULL) {
            rc = shmq_error_set(SHMQ_E_CONFIG,
                                "%s: accounts[%d] (%s): %s[%zu] must be a string \"NAME=PERM\"",
                                path, a->index, a->who, key, i);
            break;
        }
        size_t nlen = (size_t)(eq - text);
        int p = perm_parse(eq + 1, len - nlen - 1);
        int vrc = topics ? shmq_topic_validate(text, nlen, SHMQ_TOPIC_MAX_ANY)
                         : shmq_group_validate(text, nlen);
        if (vrc < 0 || p < 0) {
            rc = shmq_error_set(SHMQ_E_CONFIG, "%s: accounts[%d] (%s): %s[%zu] \"%.*s\": %s", path,
                                a->index, a->who, key, i, (int)(len > 300 ? 300 : len), text,
                                vrc < 0 ? shmq_error_detail()
                                        : "the perm must be DENY, PUB, SUB or PUB|SUB");
            break;
        }
        e[got].name = strndup(text, nlen);
        if (e[got].name == NULL) {
            rc = shmq_error_set(-ENOMEM, "%s: out of memory", path);
            break;
        }
        e[got++].perm = (uint8_t)p;
    }
    if (rc == 0 && got > 1) {
        qsort(e, got, sizeof(*e), entry_cmp);
        for (size_t i = 1; i < got; i++) {
            if (strcmp(e[i - 1].name, e[i].name) == 0) {
                rc = shmq_error_set(SHMQ_E_CONFIG, "%s: accounts[%d] (%s): %s lists \"%s\" twice",
                                    path, a->index, a->who, key, e[i].name);
                break;
            }
        }
    }
    if (rc < 0) {
        for (size_t i = 0; i < got; i++) {
            free(e[i].name);
        }
        free(e);
        return rc;
    }
    *out = e;
    *nout = got;
    return 0;
}

static int parse_account(shmq_acl_account_t *a, const char *path, json_t *o)
{
    if (!json_is_object(o)) {
        return shmq_error_set(SHMQ_E_CONFIG, "%s: accounts[%d] must be an object", path, a->index);
    }
    json_t *user = json_object_get(o, "user"), *group = json_object_get(o, "group");
    if ((user == NULL) == (group == NULL)) {
        return shmq_error_set(SHMQ_E_CONFIG,
                              "%s: accounts[%d] must name exactly one \"user\" or \"group\"", path,
                              a->index);
    }
    json_t *who = user ? user : group;
    if (!json_is_string(who) || json_string_length(who) == 0 || json_string_length(who) > 64 ||
        strlen(json_string_value(who)) != json_string_length(who)) {
        return shmq_error_set(SHMQ_E_CONFIG,
                              "%s: accounts[%d]: \"%s\" must be a name or a number of 1..64 bytes",
                              path, a->index, user ? "user" : "group");
    }
    int rc = parse_who(a, path, user ? "user" : "group", json_string_value(who));
    if (rc < 0) {
        return rc;
    }
    a->default_topic_perm = SHMQ_ACL_DENY; /* RocketMQ's defaults */
    a->default_group_perm = SHMQ_ACL_SUB;
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
    {
        if (strcmp(key, "user") == 0 || strcmp(key, "group") == 0) {
            continue;
        } else if (strcmp(key, "admin") == 0) {
            if (!json_is_boolean(v)) {
                return shmq_error_set(SHMQ_E_CONFIG,
                                      "%s: accounts[%d] (%s): admin must be true or false", path,
                                      a->index, a->who);
            }
            a->admin = json_is_true(v);
        } else if (strcmp(key, "defaultTopicPerm") == 0) {
            rc = parse_perm_value(a, path, key, v, &a->default_topic_perm);
        } else if (strcmp(key, "defaultGroupPerm") == 0) {
            rc = parse_perm_value(a, path, key, v, &a->default_group_perm);
        } else if (strcmp(key, "topicPerms") == 0) {
            rc = parse_entries(a, path, key, v, true, &a->topics, &a->ntopics);
        } else if (strcmp(key, "groupPerms") == 0) {
            rc = parse_entries(a, path, key, v, false, &a->groups, &a->ngroups);
        } else {
            return shmq_error_set(SHMQ_E_CONFIG,
                                  "%s: accounts[%d] (%s): unknown key \"%.64s\" (known: user, "
                                  "group, admin, defaultTopicPerm, defaultGroupPerm, topicPerms, "
                                  "groupPerms)",
                                  path, a->index, a->who, key);
        }
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

int shmq_acl_parse(const char *text, size_t len, const char *path, shmq_acl_t *out)
{
    memset(out, 0, sizeof(*out));
    json_error_t jerr;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL) {
        return shmq_error_set(SHMQ_E_CONFIG, "%s: not valid JSON at line %d column %d: %s", path,
                              jerr.line, jerr.column, jerr.text);
    }
    int rc = 0;
    json_t *accounts = json_is_object(doc) ? json_object_get(doc, "accounts") : NULL;
    if (!json_is_array(accounts) || json_object_size(doc) != 1) {
        rc = shmq_error_set(SHMQ_E_CONFIG,
                            "%s: expected an object with one key, \"accounts\", an array", path);
        goto done;
    }
    size_t n = json_array_size(accounts);
    if (n > ACL_ACCOUNTS_MAX) {
        rc = shmq_error_set(SHMQ_E_CONFIG, "%s: %zu accounts (at most %d)", path, n,
                            ACL_ACCOUNTS_MAX);
        goto done;
    }
    out->accounts = calloc(n ? n : 1, sizeof(*out->accounts));
    if (out->accounts == NULL) {
        rc = shmq_error_set(-ENOMEM, "%s: out of memory", path);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        shmq_acl_account_t *a = &out->accounts[i];
        a->index = (int)i;
        out->naccounts = i + 1;
        rc = parse_account(a, path, json_array_get(accounts, i));
        if (rc < 0) {
            goto done;
        }
    }
done:
    json_decref(doc);
    if (rc < 0) {
        shmq_acl_free(out);
    }
    return rc;
}

int shmq_acl_load(const char *root, shmq_acl_t *out)
{
    memset(out, 0, sizeof(*out));
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/config/%s", root, SHMQ_ACL_FILE) >= (int)sizeof(path)) {
        return shmq_error_set(SHMQ_E_CONFIG, "%s: path too long", root);
    }
    char *data = NULL;
    size_t len = 0;
    int rc = shmq_store_file_read_all(path, SHMQ_ACL_FILE_MAX, &data, &len);
    if (rc == -ENOENT) {
        return shmq_error_set(SHMQ_E_CONFIG,
                              "aclEnable is true but %s does not exist (docs/security.md says "
                              "what it holds)",
                              path);
    }
    if (rc < 0) {
        return shmq_error_wrap(SHMQ_E_CONFIG, "aclEnable is true but config/%s cannot be read",
                               SHMQ_ACL_FILE);
    }
    rc = shmq_acl_parse(data, len, path, out);
    free(data);
    return rc;
}

/* ---- rules ------------------------------------------------------------------------------- */

bool shmq_acl_ident_in_group(const shmq_acl_ident_t *id, gid_t gid)
{
    for (int i = 0; i < id->ngroups; i++) {
        if (id->groups[i] == gid) {
            return true;
        }
    }
    return false;
}

const shmq_acl_account_t *shmq_acl_match(const shmq_acl_t *acl, const shmq_acl_ident_t *id)
{
    for (size_t i = 0; i < acl->naccounts; i++) {
        const shmq_acl_account_t *a = &acl->accounts[i];
        if (a->is_group ? shmq_acl_ident_in_group(id, (gid_t)a->id) : a->id == (uint32_t)id->uid) {
            return a;
        }
    }
    return NULL;
}

/* The entry for name in a sorted list, or NULL. */
static const shmq_acl_entry_t *entry_find(const shmq_acl_entry_t *e, size_t n, const char *name,
                                          size_t len)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strncmp(e[mid].name, name, len);
        if (c == 0 && e[mid].name[len] != '\0') {
            c = 1; /* longer than name: after it */
        }
        if (c == 0) {
            return &e[mid];
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

/* The consumer group a retry or dead-letter topic belongs to (NULL for another topic). */
static const char *topic_group(const char *topic, size_t len, size_t *glen)
{
    static const char *const pfx[] = {"%RETRY%", "%DLQ%"};
    for (int i = 0; i < 2; i++) {
        size_t p = strlen(pfx[i]);
        if (len > p && memcmp(topic, pfx[i], p) == 0) {
            *glen = len - p;
            return topic + p;
        }
    }
    return NULL;
}

/* Says who id is and which rule refused it; always -EACCES. */
static int refuse(const shmq_acl_account_t *acct, const shmq_acl_ident_t *id, const char *what,
                  const char *kind, const char *name, size_t len, const shmq_acl_entry_t *e,
                  uint8_t dflt)
{
    char who[96];
    shmq_acl_ident_name(id->uid, who, sizeof(who));
    if (acct == NULL) {
        return shmq_error_set(-EACCES,
                              "%s may not %s %s %.*s: no account in config/%s names its user or "
                              "one of its groups",
                              who, what, kind, (int)len, name, SHMQ_ACL_FILE);
    }
    if (e != NULL) {
        return shmq_error_set(-EACCES,
                              "%s may not %s %s %.*s: accounts[%d] (%s) in config/%s has %s=%s",
                              who, what, kind, (int)len, name, acct->index, acct->who,
                              SHMQ_ACL_FILE, e->name, perm_name(e->perm));
    }
    return shmq_error_set(-EACCES,
                          "%s may not %s %s %.*s: accounts[%d] (%s) in config/%s has no entry for "
                          "it and %s %s",
                          who, what, kind, (int)len, name, acct->index, acct->who, SHMQ_ACL_FILE,
                          strcmp(kind, "topic") == 0 ? "defaultTopicPerm" : "defaultGroupPerm",
                          perm_name(dflt));
}

/* Group or topic rule: the name's entry, else the account's default for its
 * kind (defaultGroupPerm, defaultTopicPerm), must hold want. */
static int check_name(const shmq_acl_account_t *acct, const shmq_acl_ident_t *id, const char *what,
                      bool group, const char *name, size_t len, uint8_t want)
{
    const char *kind = group ? "consumer group" : "topic";
    if (acct == NULL) {
        return refuse(NULL, id, what, kind, name, len, NULL, 0);
    }
    const shmq_acl_entry_t *e = group ? entry_find(acct->groups, acct->ngroups, name, len)
                                      : entry_find(acct->topics, acct->ntopics, name, len);
    uint8_t dflt = group ? acct->default_group_perm : acct->default_topic_perm;
    uint8_t p = e ? e->perm : dflt;
    if ((p & want) != want) {
        return refuse(acct, id, what, kind, name, len, e, dflt);
    }
    return 0;
}

static int check_group(const shmq_acl_account_t *acct, const shmq_acl_ident_t *id, const char *what,
                       const char *group, size_t len, uint8_t want)
{
    return check_name(acct, id, what, true, group, len, want);
}

/* Topic rule; retry and dead-letter topics take their group's rule (SUB). */
static int check_topic(const shmq_acl_account_t *acct, const shmq_acl_ident_t *id, const char *what,
                       const char *topic, size_t len, uint8_t want)
{
    size_t glen = 0;
    const char *group = topic_group(topic, len, &glen);
    if (group != NULL) {
        return check_group(acct, id, what, group, glen, SHMQ_ACL_SUB);
    }
    return check_name(acct, id, what, false, topic, len, want);
}

int shmq_acl_may_publish(const shmq_acl_account_t *acct, const shmq_acl_ident_t *id,
                         const char *topic, size_t len)
{
    if (id->owner || (acct != NULL && acct->admin)) {
        return 0;
    }
    return check_topic(acct, id, "publish to", topic, len, SHMQ_ACL_PUB);
}

int shmq_acl_may_subscribe(const shmq_acl_account_t *acct, const shmq_acl_ident_t *id,
                           const char *topic, size_t len, const char *group)
{
    if (id->owner || (acct != NULL && acct->admin)) {
        return 0;
    }
    if (group != NULL) {
        int rc = check_group(acct, id, "consume as", group, strlen(group), SHMQ_ACL_SUB);
        if (rc < 0) {
            return rc;
        }
    }
    return check_topic(acct, id, "subscribe to", topic, len, SHMQ_ACL_SUB);
}

int shmq_acl_may_use_group(const shmq_acl_account_t *acct, const shmq_acl_ident_t *id,
                           const char *group)
{
    if (id->owner || (acct != NULL && acct->admin)) {
        return 0;
    }
    return check_group(acct, id, "consume as", group, strlen(group), SHMQ_ACL_SUB);
}

/* ---- identities ------------------------------------------------------------------------ */

void shmq_acl_ident_name(uid_t uid, char *out, size_t len)
{
    struct passwd pw, *res = NULL;
    char buf[1024];
    if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) == 0 && res != NULL) {
        snprintf(out, len, "uid %ld (%.64s)", (long)uid, res->pw_name);
    } else {
        snprintf(out, len, "uid %ld", (long)uid);
    }
}

/* Append gid unless present. */
static void ident_add(shmq_acl_ident_t *id, gid_t gid)
{
    if (!shmq_acl_ident_in_group(id, gid) && id->ngroups < SHMQ_ACL_GROUPS_MAX) {
        id->groups[id->ngroups++] = gid;
    }
}

void shmq_acl_ident_self(shmq_acl_ident_t *id, uid_t store_uid)
{
    memset(id, 0, sizeof(*id));
    id->uid = geteuid();
    id->owner = id->uid == store_uid;
    ident_add(id, getegid());
    gid_t g[SHMQ_ACL_GROUPS_MAX];
    int n = getgroups(SHMQ_ACL_GROUPS_MAX, g);
    for (int i = 0; i < n; i++) {
        ident_add(id, g[i]);
    }
}

/* Supplementary groups of pid from /proc/<pid>/status, if it is still uid's process. */
static bool proc_groups(shmq_acl_ident_t *id, pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        return false;
    }
    char line[4096];
    bool uid_ok = false, seen = false;
    shmq_acl_ident_t got = *id;
    while (fgets(line, sizeof(line), f) != NULL) {
        long ruid, euid;
        if (sscanf(line, "Uid: %ld %ld", &ruid, &euid) == 2) {
            uid_ok = euid == (long)id->uid;
        } else if (strncmp(line, "Groups:", 7) == 0) {
            seen = true;
            char *save = NULL;
            for (char *tok = strtok_r(line + 7, " \t\n", &save); tok != NULL;
                 tok = strtok_r(NULL, " \t\n", &save)) {
                char *end;
                long g = strtol(tok, &end, 10);
                if (*end == '\0' && g >= 0) {
                    ident_add(&got, (gid_t)g);
                }
            }
        }
    }
    fclose(f);
    if (uid_ok && seen) {
        *id = got;
    }
    return uid_ok && seen;
}

void shmq_acl_ident_peer(shmq_acl_ident_t *id, uid_t store_uid, uid_t uid, gid_t gid, pid_t pid)
{
    memset(id, 0, sizeof(*id));
    id->uid = uid;
    id->owner = uid == store_uid;
    ident_add(id, gid);
    if (proc_groups(id, pid)) {
        return;
    }
    /* The process is gone or changed: ask the group database instead. */
    struct passwd pw, *res = NULL;
    char buf[1024];
    gid_t g[SHMQ_ACL_GROUPS_MAX];
    int n = SHMQ_ACL_GROUPS_MAX;
    if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) == 0 && res != NULL &&
        getgrouplist(res->pw_name, res->pw_gid, g, &n) >= 0) {
        for (int i = 0; i < n; i++) {
            ident_add(id, g[i]);
        }
    }
}

/* ---- the watched file ----------------------------------------------------------------- */

int shmq_acl_watch_poll(shmq_acl_watch_t *w, const char *root, int64_t now_ms)
{
    if (w->looked && now_ms < w->next_check_ms) {
        return 0;
    }
    w->next_check_ms = now_ms + SHMQ_ACL_CHECK_MS;
    char path[PATH_MAX];
    bool fits =
        snprintf(path, sizeof(path), "%s/config/%s", root, SHMQ_ACL_FILE) < (int)sizeof(path);
    /* A missing file stamps zero: the load below says so. */
    if (!shmq_file_stamp_update(&w->stamp, w->looked, fits ? path : NULL)) {
        return 0;
    }
    w->looked = true;
    shmq_acl_t acl;
    int rc = shmq_acl_load(root, &acl);
    w->last_rc = rc;
    if (rc < 0) {
        snprintf(w->last_error, sizeof(w->last_error), "%s", shmq_error_detail());
        return rc;
    }
    w->last_error[0] = '\0';
    shmq_acl_free(&w->acl);
    w->acl = acl;
    w->loaded = true;
    w->gen++;
    return 1;
}

int shmq_acl_watch_account(const shmq_acl_watch_t *w, const shmq_acl_ident_t *id,
                           const shmq_acl_account_t **acct)
{
    *acct = NULL;
    if (id->owner) {
        return 0;
    }
    if (!w->loaded) {
        char who[96];
        shmq_acl_ident_name(id->uid, who, sizeof(who));
        return shmq_error_set(-EACCES, "%s is refused: aclEnable is true and no ACL is loaded: %s",
                              who, w->last_error[0] ? w->last_error : "not read yet");
    }
    *acct = shmq_acl_match(&w->acl, id);
    return 0;
}

int shmq_acl_watch_may_subscribe(const shmq_acl_watch_t *w, const shmq_acl_ident_t *id,
                                 const char *topic, size_t len, const char *group)
{
    const shmq_acl_account_t *acct;
    int rc = shmq_acl_watch_account(w, id, &acct);
    return rc < 0 ? rc : shmq_acl_may_subscribe(acct, id, topic, len, group);
}

int shmq_acl_watch_may_use_group(const shmq_acl_watch_t *w, const shmq_acl_ident_t *id,
                                 const char *group)
{
    const shmq_acl_account_t *acct;
    int rc = shmq_acl_watch_account(w, id, &acct);
    return rc < 0 ? rc : shmq_acl_may_use_group(acct, id, group);
}

void shmq_acl_watch_free(shmq_acl_watch_t *w)
{
    shmq_acl_free(&w->acl);
    memset(w, 0, sizeof(*w));
}
