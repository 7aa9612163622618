/*
 * Fuzz target: config/acl.json (shmq_acl_parse) and the rules it gives.
 * What the parser accepts must be consistent: every account's lists sorted
 * and without a name twice, and each listed topic or group decided exactly
 * as its entry says for an identity that account matches.
 */
#include <stdlib.h>
#include <string.h>

#include "format/acl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The identity the account names (a user, or a stranger uid in that group). */
static void ident_for(const shmq_acl_account_t *a, shmq_acl_ident_t *id)
{
    memset(id, 0, sizeof(*id));
    id->uid = a->is_group ? (uid_t)4000000000u : (uid_t)a->id;
    id->ngroups = 1;
    id->groups[0] = a->is_group ? (gid_t)a->id : (gid_t)4000000001u;
}

static void check_entries(const shmq_acl_t *acl, const shmq_acl_account_t *a, bool topics)
{
    const shmq_acl_entry_t *e = topics ? a->topics : a->groups;
    size_t n = topics ? a->ntopics : a->ngroups;
    shmq_acl_ident_t id;
    ident_for(a, &id);
    /* Only when this account is the one the identity gets (an earlier one may match). */
    bool decides = shmq_acl_match(acl, &id) == a;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && strcmp(e[i - 1].name, e[i].name) >= 0) {
            abort(); /* unsorted or a name twice */
        }
        if (!decides || a->admin) {
            continue;
        }
        size_t len = strlen(e[i].name);
        if (topics && strncmp(e[i].name, "%RETRY%", 7) != 0 &&
            strncmp(e[i].name, "%DLQ%", 5) != 0) {
            bool pub = shmq_acl_may_publish(a, &id, e[i].name, len) == 0;
            bool sub = shmq_acl_may_subscribe(a, &id, e[i].name, len, NULL) == 0;
            if (pub != ((e[i].perm & SHMQ_ACL_PUB) != 0) ||
                sub != ((e[i].perm & SHMQ_ACL_SUB) != 0)) {
                abort();
            }
        } else if (!topics) {
            bool use = shmq_acl_may_use_group(a, &id, e[i].name) == 0;
            if (use != ((e[i].perm & SHMQ_ACL_SUB) != 0)) {
                abort();
            }
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    shmq_acl_t acl;
    if (shmq_acl_parse((const char *)data, size, "acl.json", &acl) != 0) {
        if (acl.naccounts != 0 || acl.accounts != NULL) {
            abort(); /* a refused file leaves nothing behind */
        }
        return 0;
    }
    for (size_t i = 0; i < acl.naccounts; i++) {
        check_entries(&acl, &acl.accounts[i], true);
        check_entries(&acl, &acl.accounts[i], false);
    }
    /* An identity no account names may do nothing. */
    shmq_acl_ident_t nobody = {.uid = 4000000002u, .ngroups = 1, .groups = {4000000003u}};
    if (shmq_acl_match(&acl, &nobody) == NULL &&
        (shmq_acl_may_publish(NULL, &nobody, "T", 1) == 0 ||
         shmq_acl_may_subscribe(NULL, &nobody, "T", 1, "G") == 0)) {
        abort();
    }
    shmq_acl_free(&acl);
    return 0;
}
